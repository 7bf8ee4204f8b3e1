"""The delay probe: end-to-end delay of a sample of the simulation's live frames, second by second.

    python -m tests.benchmarks.autoscale.probe --redis-url URL --pattern 'lcstream:*:auto-*0:live' --out F

PSUBSCRIBEs to the pattern (on its own connection, in its own process) and, for
each `text` frame, whose text is the load process's send time in unix µs,
records receive time minus that (decoded as in tests/benchmarks/subscriber.py).
After each wall-clock second it appends a JSON line to `--out`: the second
`t` (unix), frame counts, p50/p99 and the delay histogram (histogram.py).
It runs until SIGTERM and logs `started`/`stopped` JSON lines to stderr.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

import orjson

from tests.benchmarks.autoscale import histogram
from tests.benchmarks.jsonlog import log
from tests.benchmarks.resp import RespConnection, pack

# Which last digits of `auto-<n>` a sample keeps: glob patterns can only pick by the id's text.
SAMPLES = {1.0: "", 0.5: "[02468]", 0.2: "[05]", 0.1: "0", 0.01: "00"}


def live_pattern(prefix: str, fraction: float) -> str:
    """The pattern of L(M) for the sampled messages (`fraction` one of `SAMPLES`)."""
    return f"{prefix}:*:auto-*{SAMPLES[fraction]}:live"


class Second:
    """What arrived in one wall-clock second."""

    def __init__(self, t: int) -> None:
        self.t = t
        self.frames = 0
        self.texts = 0
        self.terminal = 0
        self.errors = 0
        self.hist: Counter[int] = Counter()

    def add(self, received_us: int, frame: dict[str, Any]) -> None:
        self.frames += 1
        kind = frame["kind"]
        if kind == "text":  # a frame carrying several tokens counts its oldest
            self.texts += 1
            self.hist[histogram.bucket(received_us - int(frame["data"].split(None, 1)[0]))] += 1
        elif kind in ("output", "error"):
            self.terminal += 1
            self.errors += kind == "error"

    def line(self) -> bytes:
        figures = {
            "t": self.t, "frames": self.frames, "texts": self.texts, "terminal": self.terminal,
            "errors": self.errors, "p50_ms": histogram.percentile_ms(self.hist, 0.5),
            "p99_ms": histogram.percentile_ms(self.hist, 0.99), "hist": dict(self.hist),
        }  # fmt: skip
        return orjson.dumps(figures, option=orjson.OPT_NON_STR_KEYS) + b"\n"


def listen(connection: RespConnection, out: BinaryIO, stopping: list[int]) -> int:
    """Record until SIGTERM; return the frames seen."""
    second = Second(int(time.time()))
    total = 0
    for received_us, replies in connection.stream(poll_s=0.1, until=float("inf")):
        now = received_us // 1_000_000
        if now > second.t:  # the second is over: report it (and any silent one since)
            while second.t < now:
                out.write(second.line())
                second = Second(second.t + 1)
            out.flush()
        for reply in replies:
            if reply[0] == b"pmessage":
                second.add(received_us, orjson.loads(reply[3]))
                total += 1
        if stopping:
            break
    out.write(second.line())
    return total


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="End-to-end delay of sampled live frames, per second.")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--pattern", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    stopping: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    connection = RespConnection(args.redis_url)
    connection.send(pack("PSUBSCRIBE", args.pattern))
    connection.replies(1)
    log("started", pattern=args.pattern)
    cpu_started_s = time.process_time()
    with args.out.open("ab") as out:
        frames = listen(connection, out, stopping)
    connection.close()
    log("stopped", frames=frames, cpu_s=round(time.process_time() - cpu_started_s, 3))


if __name__ == "__main__":
    main(sys.argv[1:])
