"""The paced load generator: `messages` concurrent messages at `tokens_per_s` text tokens each.

    python -m tests.benchmarks.generator --redis-url URL --messages 500 --tokens-per-s 50 --duration-s 10

Each message is announced through lcstream's producer (`publish_events` writes
`message-start` and the text block's start as `E(M)` entries 0-1 and 0-2 and
announces M on `D(k)`). Then one ticker loop writes the tokens: token j of message
i is due at `t0 + (j * messages + i) / (messages * tokens_per_s)`, which spreads
the messages' phases evenly over a token period; each pass writes every token due
by then as one pipelined batch of `XADD E(M) NOMKSTREAM 0-<seq> e <event> t <ms>`,
the wire format's explicit-id write. Each token's text is its own send time in
unix µs (taken right before the batch is written), so a subscriber on `L(M)`
measures end-to-end latency. After the last token, every message gets its
`content-block-finish` and `message-finish`.

It logs `started` (after the announcements) and `stopped` (achieved rate, lag
behind the schedule, errors) JSON lines to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from array import array

import orjson
from redis.asyncio import Redis

from lcstream.streams.events import now_ms
from lcstream.streams.keys import Keyspace
from tests.benchmarks.jsonlog import log
from tests.benchmarks.measure import percentile
from tests.benchmarks.messages import finish_events, start_events, text_delta, usage
from tests.benchmarks.preload import publish_all
from tests.benchmarks.resp import RespConnection, pack
from tests.benchmarks.workloads import paced_message_ids

# As wide as a unix time in µs until the year 2286, so swapping it in keeps every RESP length right.
PLACEHOLDER = b"@" * 16
FIRST_TOKEN_SEQ = 3  # entries 0-1 and 0-2 are the announcement


class Schedule:
    """Which writes are due: slot g = j * messages + i is token j of message i (j == tokens: its end)."""

    def __init__(self, messages: int, tokens: int, tokens_per_s: float) -> None:
        self.messages = messages
        self.tokens = tokens
        self.token_slots = messages * tokens
        self.slots = messages * (tokens + 1)
        self.period_s = 1.0 / (messages * tokens_per_s)

    def due(self, elapsed_s: float, done: int) -> int:
        """Slots due after `elapsed_s`; token slots and end slots never share a batch."""
        due = min(self.slots, int(elapsed_s / self.period_s) + 1)
        return min(due, self.token_slots) if done < self.token_slots else due


class Generator:
    def __init__(self, redis_url: str, message_ids: list[str], schedule: Schedule) -> None:
        self.connection = RespConnection(redis_url)
        self.keys = [Keyspace().message(m).events.encode() for m in message_ids]
        self.schedule = schedule
        self.stamps: list[list[bytes]] = [[] for _ in message_ids]  # each message's token texts so far
        self.delta = orjson.dumps(text_delta(PLACEHOLDER.decode() + " "))
        self.lags_ms = array("d")
        self.written = 0

    def run(self) -> float:
        """Write every slot on schedule; return the seconds from t0 to the last token batch."""
        schedule = self.schedule
        t0 = time.monotonic()
        done = 0
        tokens_done_s = 0.0
        while done < schedule.slots:
            now = time.monotonic()
            due = schedule.due(now - t0, done)
            if due <= done:
                time.sleep(max(0.0, t0 + done * schedule.period_s - now))  # pacing: until the next slot
                continue
            self.lags_ms.append((now - (t0 + done * schedule.period_s)) * 1000)
            if done < schedule.token_slots:
                self.write_tokens(done, due)
                tokens_done_s = time.monotonic() - t0
            else:
                self.write_ends(done, due)
            done = due
        return tokens_done_s

    def write_tokens(self, first: int, end: int) -> None:
        messages, t_ms = self.schedule.messages, str(now_ms()).encode()
        commands = []
        for slot in range(first, end):
            j, i = divmod(slot, messages)
            seq = f"0-{j + FIRST_TOKEN_SEQ}"
            commands.append(pack("XADD", self.keys[i], "NOMKSTREAM", seq, "e", self.delta, "t", t_ms))
        stamp = str(time.time_ns() // 1000).encode()
        for slot in range(first, end):
            self.stamps[slot % messages].append(stamp)
        self.send(b"".join(commands).replace(PLACEHOLDER, stamp), len(commands))

    def write_ends(self, first: int, end: int) -> None:
        schedule, t_ms = self.schedule, str(now_ms()).encode()
        commands = []
        for slot in range(first, end):
            i = slot - schedule.token_slots
            text = b"".join(stamp + b" " for stamp in self.stamps[i]).decode()
            for offset, event in enumerate(finish_events(text, usage(10, schedule.tokens))):
                seq = f"0-{schedule.tokens + FIRST_TOKEN_SEQ + offset}"
                fields = ("e", orjson.dumps(event), "t", t_ms)
                commands.append(pack("XADD", self.keys[i], "NOMKSTREAM", seq, *fields))
        self.send(b"".join(commands), len(commands))

    def send(self, payload: bytes, count: int) -> None:
        self.connection.write(payload, count)
        self.written += count


async def announce(redis_url: str, message_ids: list[str]) -> None:
    """`message-start` and the text block's start of every message, through lcstream's producer."""
    redis = Redis.from_url(redis_url)
    try:
        await publish_all(redis, [start_events(m) for m in message_ids])
    finally:
        await redis.aclose()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="Paced live traffic for the benchmark.")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--tokens-per-s", type=float, default=50.0)
    parser.add_argument("--duration-s", type=float, required=True)
    args = parser.parse_args(argv)
    message_ids = paced_message_ids(args.messages)
    tokens = max(1, round(args.duration_s * args.tokens_per_s))
    asyncio.run(announce(args.redis_url, message_ids))
    generator = Generator(args.redis_url, message_ids, Schedule(args.messages, tokens, args.tokens_per_s))
    log("started", messages=args.messages, tokens=tokens)
    cpu_started_s = time.process_time()
    tokens_s = generator.run()
    token_events = args.messages * tokens
    lags = sorted(generator.lags_ms)
    log(
        "stopped",
        events=generator.written + 2 * args.messages,
        token_events=token_events,
        tokens_s=round(tokens_s, 3),
        target_events_per_s=args.messages * args.tokens_per_s,
        achieved_events_per_s=round(token_events / tokens_s) if tokens_s else None,
        batches=len(lags),
        lag_p99_ms=round(percentile(lags, 0.99), 3),
        lag_max_ms=round(lags[-1], 3) if lags else math.nan,
        cpu_s=round(time.process_time() - cpu_started_s, 3),
        errors=generator.connection.errors,
        first_error=generator.connection.first_error,
    )
    generator.connection.close()


if __name__ == "__main__":
    main(sys.argv[1:])
