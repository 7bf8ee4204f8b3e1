"""The run side of `lcstream tail --run R` and `lcstream replay --run R`: a run's messages, one after
another as they stream, or each rebuilt from its events and compared with what the worker stored."""

from __future__ import annotations

import sys

import orjson
import typer

from lcstream.config import Settings
from lcstream.streams.cluster import RedisClient
from lcstream.streams.errors import RunFailedError
from lcstream.streams.keys import Keyspace
from lcstream.streams.reader import read_outcome
from lcstream.streams.run_index import RunMember, index_entries
from lcstream.streams.subscribe_run import subscribe_run
from lcstream.worker.cli.common import ExitCode, fail, out, print_json, with_redis
from lcstream.worker.cli.printing import TailPrinter, compare_outcomes
from lcstream.worker.jobs.reassembly import rebuild


def tail_run(settings: Settings, run_id: str, *, wait_for_start_s: float | None, as_json: bool) -> None:
    """Follow run R: each frame of each message, a header whenever the message changes; exit 1 if R
    failed, 4 if it never appeared."""
    printer = TailPrinter(out)

    async def work(redis: RedisClient, keyspace: Keyspace) -> RunFailedError | None:
        shown: str | None = None
        try:
            async for item in subscribe_run(
                redis, run_id, keyspace=keyspace, wait_for_start_s=wait_for_start_s
            ):
                if as_json:
                    line = {
                        "message_id": item.message_id,
                        **orjson.loads(item.frame.live_json()),
                        "id": item.cursor,
                    }
                    sys.stdout.buffer.write(orjson.dumps(line) + b"\n")
                    sys.stdout.flush()
                    continue
                if item.message_id != shown:
                    printer.interrupt()
                    node = item.frame.data.get("node") if item.frame.seq == 1 else None
                    out.print(f"[bold]── {node or 'message'} {item.message_id}[/]", highlight=False)
                    shown = item.message_id
                printer.show(item.frame)
        except RunFailedError as exc:
            return exc
        return None

    failure = with_redis(settings, work)
    if failure is not None:
        fail(ExitCode.FAILED, f"run {run_id} {failure.status} ({failure.code}): {failure.error_message}")


def replay_run(settings: Settings, run_id: str, *, diff: bool, as_json: bool) -> None:
    """Rebuild each message of run R from its events; with `diff`, compare each with its stored outcome
    (exit 1 if any differs)."""

    async def work(redis: RedisClient, keyspace: Keyspace) -> list[tuple[str, str | None, str]]:
        members = index_entries(await redis.xrange(keyspace.run(run_id).index))
        rows = []
        for member in members:
            if not isinstance(member, RunMember):
                continue
            keys = keyspace.message(member.message_id)
            handler, _ = rebuild(keys, await redis.xrange(keys.events), settings)
            stored = await read_outcome(redis, keys.message_id, keyspace)
            verdict = compare_outcomes(handler.outcome, stored) if diff else "rebuilt"
            rows.append((keys.message_id, member.node, verdict))
        return rows

    rows = with_redis(settings, work)
    if not rows:
        fail(ExitCode.ABSENT, f"no messages indexed for run {run_id} (never run, or expired)")
    if as_json:
        print_json([{"message_id": m, "node": node, "comparison": verdict} for m, node, verdict in rows])
    else:
        sys.stdout.writelines(f"{m}\t{node or '-'}\t{verdict}\n" for m, node, verdict in rows)
    if any(verdict == "different" for _, _, verdict in rows):
        raise typer.Exit(ExitCode.FAILED)
