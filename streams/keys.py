"""Every Redis key, channel and group name of wire format v1 (and v1.1's runs), and the partition function.

No key is built anywhere else. A message id is validated before any key is
built from it, so it can never inject braces, glob characters or separators.
"""

from __future__ import annotations

import functools
import os
import re
import zlib
from dataclasses import dataclass

from lcstream.config import Settings, load_settings
from lcstream.streams.errors import InvalidMessageIdError

MESSAGE_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,256}")


def validate_message_id(message_id: str) -> str:
    """Return `message_id` if it fits the protocol's alphabet, else raise `InvalidMessageIdError`."""
    if not isinstance(message_id, str) or not MESSAGE_ID_PATTERN.fullmatch(message_id):
        shown = repr(message_id)[:80]
        raise InvalidMessageIdError(f"invalid message id {shown}: use 1-256 characters from [A-Za-z0-9._:-]")
    return message_id


def partition_of(message_id: str, partitions: int) -> int:
    """Partition k of a message: zlib CRC-32 of its UTF-8 bytes, unsigned, modulo N."""
    return zlib.crc32(message_id.encode()) % partitions


@dataclass(frozen=True, slots=True)
class MessageKeys:
    """The keys of one message, all in its partition's hash slot."""

    message_id: str
    partition: int
    events: str
    out: str
    live: str
    result: str
    dispatch: str


@dataclass(frozen=True, slots=True)
class RunKeys:
    """The keys of one run R (wire format v1.1): its index `X(R)`, in R's partition's hash slot."""

    run_id: str
    partition: int
    index: str


@dataclass(frozen=True, slots=True)
class Keyspace:
    """Key names under prefix P with N partitions.

    `Keyspace()` is the built-in default (`lcstream`, one partition); the library's
    functions use `default_keyspace()`, what the environment configures, as workers do.
    """

    prefix: str = "lcstream"
    partitions: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyspace:
        """The keyspace of `settings` (`LCSTREAM_PREFIX`, `LCSTREAM_PARTITIONS`)."""
        return cls(settings.prefix, settings.partitions)

    def dispatch(self, partition: int) -> str:
        """D(k): the dispatch stream of partition k."""
        return f"{self.prefix}:{{{partition}}}:dispatch"

    def all_dispatch(self) -> list[str]:
        """D(k) for every partition, in order."""
        return [self.dispatch(k) for k in range(self.partitions)]

    def message(self, message_id: str) -> MessageKeys:
        """E(M), O(M), L(M), R(M) and D(k) of message M."""
        validate_message_id(message_id)
        k = partition_of(message_id, self.partitions)
        base = f"{self.prefix}:{{{k}}}:{message_id}"
        return MessageKeys(
            message_id=message_id,
            partition=k,
            events=f"{base}:events",
            out=f"{base}:out",
            live=f"{base}:live",
            result=f"{base}:result",
            dispatch=self.dispatch(k),
        )

    def run(self, run_id: str) -> RunKeys:
        """X(R) of run R: R takes message ids' alphabet and partition function."""
        validate_message_id(run_id)
        k = partition_of(run_id, self.partitions)
        return RunKeys(run_id=run_id, partition=k, index=f"{self.prefix}:{{{k}}}:{run_id}:run")

    @property
    def run_notices(self) -> str:
        """The run notices channel (v1.1): a run started, completed, failed, was interrupted."""
        return f"{self.prefix}:runs"

    @property
    def notices(self) -> str:
        """The lifecycle notices channel."""
        return f"{self.prefix}:messages"

    @property
    def partitions_key(self) -> str:
        """`P:partitions`: N, as the first worker of the prefix recorded it; producers and workers
        configured for another N refuse to start writing."""
        return f"{self.prefix}:partitions"

    @property
    def dead(self) -> str:
        """The dead-letter stream."""
        return f"{self.prefix}:dead"

    @property
    def workers(self) -> str:
        """`P:workers`: a hash of each running worker's published figures, by consumer name (the
        operations page reads it; not part of the message protocol)."""
        return f"{self.prefix}:workers"

    @property
    def job_queue(self) -> str:
        """The arq queue of generation jobs (arq names its own per-job keys `arq:job:<id>`, ...)."""
        return f"{self.prefix}:jobs"


def default_keyspace() -> Keyspace:
    """The keyspace the environment configures for workers and clients alike: `LCSTREAM_PREFIX` and
    `LCSTREAM_PARTITIONS`, or the TOML file `LCSTREAM_CONFIG` names (read again when they change)."""
    environment = tuple(os.environ.get(name) for name in _KEYSPACE_ENVIRONMENT)
    return _keyspace_of(environment)


_KEYSPACE_ENVIRONMENT = ("LCSTREAM_PREFIX", "LCSTREAM_PARTITIONS", "LCSTREAM_CONFIG")


@functools.lru_cache(maxsize=8)
def _keyspace_of(environment: tuple[str | None, ...]) -> Keyspace:
    return Keyspace.from_settings(load_settings())
