"""Reading a dispatch entry of `D(k)`: which message it announces, with its namespace and node.

An entry that names no usable message (no `m`, an invalid id, another
partition's message) can't get frames or an outcome: it is only dead-lettered
and acked. An entry whose message is fine but whose `ns` or `node` is not
fails that message (`invalid_dispatch`), so its producer hears of it; so does an invalid `run` (v1.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from lcstream.streams.errors import InvalidMessageIdError
from lcstream.streams.keys import Keyspace, MessageKeys, validate_message_id
from lcstream.worker.engine.batch import DeadLetter

MAX_NODE_CHARS = 256
MAX_NAMESPACE_BYTES = 4_096


@dataclass(frozen=True, slots=True)
class Announcement:
    """A message announced in `D(k)`; `problem` says why it must fail at once, if it must."""

    keys: MessageKeys
    namespace: list[str] | None
    node: str | None
    problem: DeadLetter | None = None
    run_id: str | None = None  # v1.1: the run M belongs to


@dataclass(frozen=True, slots=True)
class Rejection:
    """A dispatch entry naming no usable message: `m` as written (maybe empty) and why."""

    raw_id: str
    reason: str
    error: str


def read_announcement(
    fields: Mapping[bytes, bytes], keyspace: Keyspace, dispatch: str
) -> Announcement | Rejection:
    """Parse one dispatch entry of the stream `dispatch`."""
    raw = fields.get(b"m")
    if raw is None:
        return Rejection("", "missing_message_id", "dispatch entry has no 'm' field")
    raw_id = raw.decode(errors="replace")
    try:
        keys = keyspace.message(raw_id)
    except InvalidMessageIdError as exc:
        return Rejection(raw_id, "invalid_message_id", str(exc))
    if keys.dispatch != dispatch:
        return Rejection(
            raw_id, "wrong_partition", f"message {raw_id} belongs to {keys.dispatch}, not {dispatch}"
        )
    namespace, ns_problem = _namespace(fields.get(b"ns"))
    node, node_problem = _node(fields.get(b"node"))
    run_id, run_problem = _run(fields.get(b"run"))
    problem = ns_problem or node_problem or run_problem
    dead = DeadLetter("invalid_dispatch", f"dispatch entry of {raw_id}: {problem}") if problem else None
    return Announcement(keys, namespace, node, dead, run_id)


def _namespace(raw: bytes | None) -> tuple[list[str] | None, str | None]:
    if raw is None:
        return None, None
    if len(raw) > MAX_NAMESPACE_BYTES:
        return None, f"'ns' is {len(raw)} bytes, limit is {MAX_NAMESPACE_BYTES}"
    try:
        namespace = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, "'ns' is not JSON"
    if not (isinstance(namespace, list) and all(isinstance(part, str) for part in namespace)):
        return None, "'ns' must be a JSON list of strings"
    return namespace, None


def _node(raw: bytes | None) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    try:
        node = raw.decode()
    except UnicodeDecodeError:
        return None, "'node' is not UTF-8"
    if len(node) > MAX_NODE_CHARS:
        return None, f"'node' is {len(node)} characters, limit is {MAX_NODE_CHARS}"
    return node, None


def _run(raw: bytes | None) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    try:
        return validate_message_id(raw.decode()), None
    except (UnicodeDecodeError, InvalidMessageIdError):
        return None, "'run' is not a valid run id (the message id alphabet, 1-256 characters)"
