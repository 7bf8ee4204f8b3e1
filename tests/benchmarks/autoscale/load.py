"""The load process: LLM-like messages arriving by a rate profile, each streaming paced tokens.

    python -m tests.benchmarks.autoscale.load --redis-url URL --profile 0:5,60:50 --tokens 200

Message n (`auto-<n>`) is announced through lcstream's producer (`publish_events`
of its `message-start` and text block start) at its arrival time, then writes
`--tokens` text tokens `--tokens-per-s` apart, then its finish events. As in
tests/benchmarks/generator.py, tokens are raw RESP
`XADD E(M) NOMKSTREAM 0-<seq> e <event> t <ms>` and a token's text is its send
time in unix µs. One single-threaded loop writes everything due each tick as
one pipelined batch; it logs `started` (with `t0_unix`, the profile's time 0)
and `stopped` JSON lines to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from array import array
from collections import defaultdict

import orjson
from redis.asyncio import Redis

from lcstream.streams.events import now_ms
from lcstream.streams.keys import Keyspace
from lcstream.streams.publish import publish_events
from tests.benchmarks.autoscale.profile import RateProfile
from tests.benchmarks.jsonlog import log
from tests.benchmarks.messages import finish_events, start_events, text_delta, usage
from tests.benchmarks.resp import RespConnection, pack

PLACEHOLDER = b"@" * 16  # as wide as a unix time in µs: swapping it in keeps every RESP length right
FIRST_TOKEN_SEQ = 3  # entries 0-1 and 0-2 are the announcement
TICK_S = 0.005


def message_id(n: int) -> str:
    return f"auto-{n}"


class Wheel:
    """Items due at a time, in `TICK_S` buckets; an item is never handed out before it is due."""

    def __init__(self) -> None:
        self._buckets: defaultdict[int, list[int]] = defaultdict(list)
        self._next = 0
        self.size = 0

    def add(self, due_s: float, item: int) -> None:
        self._buckets[max(self._next, math.ceil(due_s / TICK_S))].append(item)
        self.size += 1

    def due(self, now_s: float) -> list[int]:
        found: list[int] = []
        last = int(now_s / TICK_S)
        while self._next <= last:
            found += self._buckets.pop(self._next, ())
            self._next += 1
        self.size -= len(found)
        return found


class Load:
    """The messages of one profile: who is due, what each has written, one RESP connection for tokens."""

    def __init__(self, redis_url: str, keyspace: Keyspace, arrivals: list[float], tokens: int, tps: float):
        self.redis = Redis.from_url(redis_url)
        self.connection = RespConnection(redis_url)
        self.keyspace = keyspace
        self.arrivals = arrivals
        self.tokens = tokens
        self.period_s = 1.0 / tps
        self.keys: list[bytes] = []
        self.stamps: list[list[bytes]] = []
        self.written: list[int] = []  # tokens written per message
        self.wheel = Wheel()
        self.delta = orjson.dumps(text_delta(PLACEHOLDER.decode() + " "))
        self.late_ms = array("d")  # per batch
        self.events = 0

    async def run(self, t0: float) -> None:
        """Announce and write on schedule from monotonic `t0` until every message has ended."""
        announced = 0
        while announced < len(self.arrivals) or self.wheel.size:
            now = time.monotonic() - t0
            due = self._arrived_by(now, announced)
            if due > announced:
                await self.announce(range(announced, due))
                announced = due
            items = self.wheel.due(time.monotonic() - t0)
            if items:
                self.write(items, time.monotonic() - t0)
            await asyncio.sleep(max(0.0, TICK_S - (time.monotonic() - t0 - now)))

    def _arrived_by(self, now: float, start: int) -> int:
        n = start
        while n < len(self.arrivals) and self.arrivals[n] <= now:
            n += 1
        return n

    async def announce(self, numbers: range) -> None:
        """`message-start` and the text block's start through lcstream's producer, then the tokens."""
        ids = [message_id(n) for n in numbers]
        await asyncio.gather(
            *(publish_events(self.redis, start_events(m), keyspace=self.keyspace) for m in ids)
        )
        self.events += 2 * len(ids)
        for n, m in zip(numbers, ids, strict=True):
            self.keys.append(self.keyspace.message(m).events.encode())
            self.stamps.append([])
            self.written.append(0)
            self.wheel.add(self.arrivals[n] + self.period_s, n)

    def write(self, items: list[int], now: float) -> None:
        """One pipelined batch: the next token of each item, or its end after the last token."""
        t_ms = str(now_ms()).encode()
        commands: list[bytes] = []
        tokened: list[int] = []
        first = items[0]  # the earliest due: how late this batch is
        self.late_ms.append((now - (self.arrivals[first] + (self.written[first] + 1) * self.period_s)) * 1000)
        for n in items:
            j = self.written[n]
            if j < self.tokens:
                seq = f"0-{j + FIRST_TOKEN_SEQ}"
                commands.append(pack("XADD", self.keys[n], "NOMKSTREAM", seq, "e", self.delta, "t", t_ms))
                tokened.append(n)
                self.written[n] = j + 1
                self.wheel.add(self.arrivals[n] + (j + 2) * self.period_s, n)
            else:
                commands += self._ends(n, t_ms)
        stamp = str(time.time_ns() // 1000).encode()
        for n in tokened:
            self.stamps[n].append(stamp)
        self.send(b"".join(commands).replace(PLACEHOLDER, stamp), len(commands))

    def _ends(self, n: int, t_ms: bytes) -> list[bytes]:
        text = b"".join(stamp + b" " for stamp in self.stamps[n]).decode()
        self.stamps[n] = []
        return [
            pack("XADD", self.keys[n], "NOMKSTREAM", f"0-{self.tokens + FIRST_TOKEN_SEQ + i}", "e",
                 orjson.dumps(event), "t", t_ms)
            for i, event in enumerate(finish_events(text, usage(10, self.tokens)))
        ]  # fmt: skip

    def send(self, payload: bytes, count: int) -> None:
        self.connection.write(payload, count)
        self.events += count


async def main_async(args: argparse.Namespace) -> None:
    profile = RateProfile.parse(args.profile)
    arrivals = profile.arrivals()
    if not arrivals:
        raise SystemExit("the profile brings no message")
    load = Load(
        args.redis_url, Keyspace(args.prefix, args.partitions), arrivals, args.tokens, args.tokens_per_s
    )
    t0, t0_unix = time.monotonic(), time.time()
    log("started", t0_unix=t0_unix, messages=len(arrivals), profile=str(profile), tokens=args.tokens)
    cpu_started_s = time.process_time()
    try:
        await load.run(t0)
    finally:
        await load.redis.aclose()
        load.connection.close()
    late = sorted(load.late_ms)
    log(
        "stopped",
        messages=len(arrivals),
        events=load.events,
        elapsed_s=round(time.monotonic() - t0, 3),
        late_p99_ms=round(late[min(len(late) - 1, int(0.99 * len(late)))], 3) if late else None,
        late_max_ms=round(late[-1], 3) if late else None,
        cpu_s=round(time.process_time() - cpu_started_s, 3),
        errors=load.connection.errors,
        first_error=load.connection.first_error,
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description="Messages arriving by a rate profile, streaming paced tokens."
    )
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--profile", required=True, help="time_s:messages_per_s,... (piecewise linear)")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--tokens-per-s", type=float, default=50.0)
    parser.add_argument("--prefix", default="lcstream")
    parser.add_argument("--partitions", type=int, default=4)
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
