"""Writing a `Batch`: fenced script calls, many messages each, and the verdicts they return.

The write reads nothing but the batch, which the round froze when it took it,
so a round may go on with the same messages while the write is in flight.
Every message's write is fenced on this consumer still owning its dispatch
entry (`worker/commit_script.py` says what the script checks and writes).

One call carries every message of a round (up to `FRAMES_PER_CALL` frames):
in live traffic a round holds about one event per message, and a call per
message cost Redis more than the writes themselves. All keys of a call share
the partition's hash slot, so it is valid on a cluster too; there the dead
letters, whose stream lives in another slot, are written after the call,
only for the commits it reports written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError
from redis.typing import EncodableT, FieldT

from lcstream.streams.cluster import RedisClient
from lcstream.streams.events import now_ms
from lcstream.streams.keys import Keyspace
from lcstream.worker.engine.batch import Batch, MessageWrite, Verdict, WriteVerdict, lifecycle_notice
from lcstream.worker.engine.commit_script import COMMIT_LUA
from lcstream.worker.engine.raw_commands import Command, RawCommands

# Frames one script call carries at most: Redis runs a script to the end, so a round's writes are
# split to keep other clients' commands from waiting long behind one.
FRAMES_PER_CALL = 2_000

DEAD_LETTER_MAX_LEN = 100_000

# A message's script mode: frames only, an ending, an ending that writes only to keys of the right type.
MODE_FRAMES, MODE_ENDING, MODE_WRONG_TYPE = 0, 1, 2


class FramePublisher:
    """Turns a `Batch` into fenced script calls on the node that owns the partition.

    `dead_letters` routes by key: with `dead_letters_in_script` off (a cluster)
    it writes `P:dead` after the call.
    """

    def __init__(
        self,
        wire: RawCommands,
        node: Redis,
        dead_letters: RedisClient,
        keyspace: Keyspace,
        *,
        group: str,
        consumer: str,
        retention_s: int,
        live_publish: bytes,
        dead_letters_in_script: bool,
    ) -> None:
        self._wire = wire
        self._node = node
        self._dead_letters = dead_letters
        self._keyspace = keyspace
        self._group = group
        self._consumer = consumer
        self._retention_s = retention_s
        self._live_publish = live_publish
        self._dead_in_script = dead_letters_in_script
        self._sha = ""

    async def load_script(self) -> None:
        """Load the script before its first `EVALSHA` (and again after a restart lost it)."""
        self._sha = await self._node.script_load(COMMIT_LUA)

    async def publish(self, batch: Batch[Any]) -> list[WriteVerdict]:
        """Write the batch; return one verdict per write, in order."""
        notices = [(b"PUBLISH", self._keyspace.notices, started) for started in batch.started]
        calls = _chunks(batch.writes)
        scripts = [self._script_call(chunk) for chunk in calls]
        replies = (await self._wire.execute([*notices, *scripts]))[len(notices) :]
        if any(isinstance(reply, NoScriptError) for reply in replies):  # none of the calls ran
            await self.load_script()
            replies = await self._wire.execute([self._script_call(chunk) for chunk in calls])
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        verdicts = [_verdict(item) for reply in replies for item in reply]
        if not self._dead_in_script:
            await self._dead_letters_after(batch.writes, verdicts)
        return verdicts

    def _script_call(self, writes: Sequence[MessageWrite[Any]]) -> Command:
        keys: list[EncodableT] = [writes[0].keys.dispatch]
        if self._dead_in_script:
            keys.append(self._keyspace.dead)
        args: list[EncodableT] = [
            self._consumer, self._group, self._keyspace.notices, self._retention_s, self._live_publish,
            now_ms(), int(self._dead_in_script), DEAD_LETTER_MAX_LEN,
        ]  # fmt: skip
        for write in writes:
            message, ending, frames = write.keys, write.ending, write.frames
            keys += [message.out, message.result, message.events]
            mode = MODE_FRAMES if ending is None else MODE_WRONG_TYPE if ending.wrong_type else MODE_ENDING
            terminal = b"" if ending is None or ending.terminal_id is None else ending.terminal_id
            args += [
                write.delivery_id,
                message.live,
                frames[0].seq if frames else 1,
                len(frames),
                mode,
                terminal,
            ]
            args += [frame.body_json() for frame in frames]
            if ending is not None:
                dead = ending.dead
                status = ending.outcome.status
                args += [
                    ending.outcome.to_json(), lifecycle_notice(message.message_id, status, write.run_id),
                    dead.reason if dead else b"", dead.error if dead else b"", ending.deliveries,
                    message.message_id,
                ]  # fmt: skip
        return (b"EVALSHA", self._sha, len(keys), *keys, *args)

    async def _dead_letters_after(
        self, writes: Sequence[MessageWrite[Any]], verdicts: list[WriteVerdict]
    ) -> None:
        """On a cluster: the dead letters of the commits the script wrote (never of a lost claim)."""
        for write, verdict in zip(writes, verdicts, strict=True):
            if verdict.verdict is Verdict.WRITTEN and write.ending is not None and write.ending.dead:
                dead = write.ending.dead
                await self.dead_letter(
                    write.keys.message_id, dead.reason, dead.error,
                    deliveries=write.ending.deliveries, dispatch_id=write.delivery_id,
                )  # fmt: skip

    async def reject(self, dispatch: str, entries: list[tuple[bytes, str, str, str]]) -> None:
        """Dead-letter and ack dispatch entries that name no usable message (id, m, reason, error)."""
        for delivery_id, raw_id, reason, error in entries:
            await self.dead_letter(raw_id, reason, error, deliveries=1, dispatch_id=delivery_id)
        await self._node.xack(dispatch, self._group, *[delivery_id for delivery_id, *_ in entries])

    async def dead_letter(
        self, message_id: str, reason: str, error: str, *, deliveries: int, dispatch_id: bytes
    ) -> None:
        """Write a `P:dead` entry: what failed, why, and where it came from."""
        fields: dict[FieldT, EncodableT] = {
            b"m": message_id, b"reason": reason, b"error": error,
            b"deliveries": deliveries, b"dispatch_id": dispatch_id, b"t": now_ms(),
        }  # fmt: skip
        await self._dead_letters.xadd(self._keyspace.dead, fields, maxlen=DEAD_LETTER_MAX_LEN)


def _verdict(item: Any) -> WriteVerdict:
    verdict, detail = item
    return WriteVerdict(Verdict(verdict), detail.decode(errors="replace") if detail else "")


def _chunks(writes: Sequence[MessageWrite[Any]]) -> list[list[MessageWrite[Any]]]:
    """The writes in script calls of about `FRAMES_PER_CALL` frames (a message is never split)."""
    chunks: list[list[MessageWrite[Any]]] = []
    size = 0
    for write in writes:
        if not chunks or size + len(write.frames) > FRAMES_PER_CALL:
            chunks.append([])
            size = 0
        chunks[-1].append(write)
        size += len(write.frames)
    return chunks
