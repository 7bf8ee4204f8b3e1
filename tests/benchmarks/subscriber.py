"""The live subscriber: end-to-end latency of text frames on `L(M)`.

    python -m tests.benchmarks.subscriber --redis-url URL --messages 500 --timeout-s 60

SUBSCRIBEs to `L(M)` of every paced message (on its own connection, in its own
process), and for each `text` frame, whose text is the producer's send time in
unix µs, records receive time minus that. It stops when every message's terminal
frame (`output` or `error`) arrived, on SIGTERM, or after `--timeout-s`, and logs
`started` (once subscribed) and `stopped` (the percentiles) JSON lines to stderr.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from array import array
from types import FrameType

import orjson

from lcstream.streams.keys import Keyspace
from tests.benchmarks.jsonlog import log
from tests.benchmarks.measure import percentile
from tests.benchmarks.resp import RespConnection, pack
from tests.benchmarks.workloads import paced_message_ids

TERMINAL_KINDS = (b"output", b"error")


class Latencies:
    def __init__(self) -> None:
        self.samples_us = array("q")
        self.frames = 0
        self.terminal = 0
        self.errors: list[str] = []

    def add(self, received_us: int, reply: list[bytes]) -> None:
        if reply[0] != b"message":
            return
        frame = orjson.loads(reply[2])
        self.frames += 1
        kind = frame["kind"]
        if kind == "text":
            self.samples_us.append(received_us - int(frame["data"]))
        elif kind.encode() in TERMINAL_KINDS:
            self.terminal += 1
            if kind == "error" and len(self.errors) < 5:
                self.errors.append(str(frame["data"]))

    def summary(self) -> dict[str, object]:
        ordered = sorted(self.samples_us)
        figures: dict[str, object] = {
            "frames": self.frames,
            "terminal": self.terminal,
            "samples": len(ordered),
        }
        for name, fraction in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999), ("max", 1.0)):
            figures[f"{name}_ms"] = round(percentile(ordered, fraction) / 1000, 3)
        figures["errors"] = self.errors
        return figures


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="End-to-end latency of paced messages' live frames.")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--timeout-s", type=float, required=True)
    args = parser.parse_args(argv)
    stopping: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    channels = [Keyspace().message(m).live for m in paced_message_ids(args.messages)]
    connection = RespConnection(args.redis_url)
    connection.send(pack("SUBSCRIBE", *channels))
    connection.replies(len(channels))  # one confirmation per channel
    log("started", channels=len(channels))
    latencies = Latencies()
    cpu_started_s = time.process_time()
    for received_us, replies in connection.stream(poll_s=0.1, until=time.monotonic() + args.timeout_s):
        for reply in replies:
            latencies.add(received_us, reply)
        if stopping or latencies.terminal >= args.messages:
            break
    connection.close()
    log("stopped", cpu_s=round(time.process_time() - cpu_started_s, 3), **latencies.summary())


if __name__ == "__main__":
    main(sys.argv[1:])
