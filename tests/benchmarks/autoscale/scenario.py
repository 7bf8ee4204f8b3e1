"""One scenario on a fresh redis-server: workers, the probe, the load, and the controller ticking.

Every `polling_s` the controller reads the group (XINFO) and the workers' CPU,
asks the rule for replicas and, when autoscaled, scales the fleet; either way
it records a `Row`. Once the load process has written every message's end, it
waits until every message has an outcome `R(M)` or `drain_s` passes, stops the
workers (SIGTERM) and counts the outcomes.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from lcstream.streams.keys import Keyspace
from tests.benchmarks.autoscale import histogram, worker_delay
from tests.benchmarks.autoscale.cpu_limit import CpuLimits
from tests.benchmarks.autoscale.fleet import Fleet
from tests.benchmarks.autoscale.keda import Timing
from tests.benchmarks.autoscale.observe import CpuMeter, GroupReading, ProbeReader, read_group
from tests.benchmarks.autoscale.outcomes import count_outcomes, with_outcome
from tests.benchmarks.autoscale.probe import live_pattern
from tests.benchmarks.autoscale.profile import RateProfile, streaming
from tests.benchmarks.autoscale.rule import Autoscaler, Metrics, Spec
from tests.benchmarks.autoscale.timeline import Row, ScenarioResult
from tests.benchmarks.processes import LoggedProcess, ProcessError, Processes
from tests.procfs import MachineCpu

START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Config:
    """Everything both scenarios share."""

    profile: RateProfile
    tokens: int
    tokens_per_s: float
    keyspace: Keyspace
    group: str
    spec: Spec
    timing: Timing
    settings: dict[str, str]  # LCSTREAM_* of every worker
    grace_s: float
    drain_s: float
    sample: float  # the share of messages the probe listens to
    worker_cpu: float  # each worker's CPU limit and request, in cores


def _module(name: str, *args: object) -> list[str]:
    return [sys.executable, "-m", f"tests.benchmarks.autoscale.{name}", *map(str, args)]


async def _started(process: LoggedProcess) -> None:
    await asyncio.to_thread(process.wait_started, START_TIMEOUT_S)


class Scenario:
    """One run of the profile, autoscaled or on one fixed worker, in its own log directory."""

    def __init__(self, config: Config, name: str, autoscaled: bool, directory: Path) -> None:
        self.config = config
        self.autoscaled = autoscaled
        self.directory = directory
        self.arrivals = config.profile.arrivals()
        self.result = ScenarioResult(name, autoscaled, len(self.arrivals))
        self.autoscaler = Autoscaler(config.spec)
        self.meter = CpuMeter(config.worker_cpu)  # the replicas' utilization, as the HPA sees it
        self.limits = CpuLimits(config.worker_cpu)
        self.delays = worker_delay.DelayDeltas()
        self.own_meter = CpuMeter()  # every process of the scenario, to tell others' use of the machine
        self.t0_unix = time.time()
        self.helpers: list[int] = []  # pids of redis-server, the probe and the load process

    async def run(self) -> ScenarioResult:
        started = time.monotonic()
        if not self.limits.available:
            self.result.notes.append(
                "no cgroup cpu controller (or not root): workers ran without a CPU limit"
            )
        with Processes(self.directory) as processes:
            server = processes.redis()
            self.helpers.append(server.process.pid)
            redis = Redis.from_url(server.url)
            fleet = Fleet(
                processes, server.url, self.config.settings, self.config.grace_s, time.time, self.limits
            )
            try:
                await self._run(processes, server.url, redis, fleet)
            finally:
                await redis.aclose()
        self.limits.close()
        self.result.wall_s = round(time.monotonic() - started, 1)
        return self.result

    async def _run(self, processes: Processes, url: str, redis: Redis, fleet: Fleet) -> None:
        config = self.config
        fleet.scale(config.spec.min_replicas if self.autoscaled else 1)
        await asyncio.gather(*(_started(worker) for worker in fleet.running))
        probe_out = self.directory / "probe.jsonl"
        pattern = live_pattern(config.keyspace.prefix, config.sample)
        probe = processes.start(
            "probe", _module("probe", "--redis-url", url, "--pattern", pattern, "--out", probe_out)
        )
        await _started(probe)
        load = processes.start(
            "load",
            _module(
                "load", "--redis-url", url, "--profile", config.profile, "--tokens", config.tokens,
                "--tokens-per-s", config.tokens_per_s, "--prefix", config.keyspace.prefix,
                "--partitions", config.keyspace.partitions,
            ),
        )  # fmt: skip
        await _started(load)
        self.helpers += [probe.pid, load.pid]
        for pid in (*self.helpers, *(w.pid for w in fleet.running)):
            self.own_meter.utilization(pid)
        assert load.started_line is not None
        self.t0_unix = float(load.started_line["t0_unix"])
        reader = ProbeReader(probe_out)
        await self._control(redis, fleet, load, reader)
        await asyncio.to_thread(probe.stop, 10)
        self.result.notes += [f"at the end: {note}" for note in await fleet.stop_all()]
        self.result.probe_seconds += [self._relative(s) for s in reader.read()]
        ids = [f"auto-{n}" for n in range(len(self.arrivals))]
        self.result.outcomes = await count_outcomes(redis, config.keyspace, ids)
        t0 = self.t0_unix
        self.result.workers = [
            {**vars(e), "started_s": round(e.started_s - t0, 2), "stopped_s": round(e.stopped_s - t0, 2)}
            for e in fleet.ended
        ]
        self.result.load = dict(load.stopped_line or {})
        if fleet.crashes:
            self.result.notes.append(f"{fleet.crashes} workers exited on their own and were replaced")
        if self.result.load.get("errors"):
            self.result.notes.append(f"load writes refused: {self.result.load['first_error']}")

    async def _control(self, redis: Redis, fleet: Fleet, load: LoggedProcess, probe: ProbeReader) -> None:
        """Tick until the load has ended and every message has an outcome (or the drain deadline)."""
        config, interval = self.config, self.config.timing.polling_s
        ids = [f"auto-{n}" for n in range(len(self.arrivals))]
        machine = MachineCpu()
        last = GroupReading((), (), 0, {})
        ended_at: float | None = None
        while True:  # on the tick grid from time 0; a tick that ran late skips the ones it overran
            tick = math.floor((time.time() - self.t0_unix) / interval) + 1
            await asyncio.sleep(max(0.0, self.t0_unix + tick * interval - time.time()))
            now = time.time() - self.t0_unix
            self.result.notes += [f"t={now:.0f} s: {note}" for note in fleet.reap()]
            reading = await read_group(redis, config.keyspace, config.group)
            seconds = [self._relative(s) for s in probe.read()]
            self.result.probe_seconds += seconds
            await self._record(now, fleet, reading, last, seconds, machine.busy_fraction() * 100)
            machine, last = MachineCpu(), reading
            if ended_at is None and load.process.poll() is not None:
                if load.process.returncode != 0:
                    raise ProcessError(
                        f"the load process exited {load.process.returncode}: {load.log_tail()}"
                    )
                ended_at = now
            if ended_at is not None:
                done = await with_outcome(redis, config.keyspace, ids)
                if done == len(ids):
                    self.result.drained_s = round(now - ended_at, 1)
                    return
                if now - ended_at > config.drain_s:
                    missing = len(ids) - done
                    self.result.notes.append(
                        f"{missing} messages had no outcome {config.drain_s:g} s after the load's end: "
                        "the workers were stopped anyway"
                    )
                    return

    async def _record(
        self,
        now: float,
        fleet: Fleet,
        reading: GroupReading,
        last: GroupReading,
        seconds: list[dict[str, Any]],
        machine_busy: float,
    ) -> None:
        config = self.config
        cpu = [self.meter.utilization(w.pid) if w.started_line else None for w in fleet.running]
        ours = (*self.helpers, *(w.pid for w in (*fleet.running, *fleet.stopping)))
        own = sum(self.own_meter.utilization(pid) or 0.0 for pid in ours)
        decision = self.autoscaler.decide(now, fleet.replicas, Metrics(reading.lags, cpu))
        if self.autoscaled and decision.replicas != fleet.replicas:
            self.autoscaler.scaled(now, fleet.replicas, decision.replicas)
            self.result.scale_events.append(
                {"t": round(now, 2), "from": fleet.replicas, "to": decision.replicas, "lag": reading.lag,
                 "lag_asks": decision.lag_asks, "cpu_ask": decision.cpu_ask, "cpu": cpu}
            )  # fmt: skip
            fleet.scale(decision.replicas)
        merged = histogram.merge(histogram.from_json(s["hist"]) for s in seconds)
        texts = sum(int(s["texts"]) for s in seconds)
        ports = [fleet.metrics_ports[w] for w in (*fleet.running, *fleet.stopping) if w.started_line]
        own_delay = await asyncio.to_thread(self.delays.since_last, ports)
        interval = config.timing.polling_s
        self.result.rows.append(
            Row(
                t=round(now, 2),
                offered_messages_per_s=round(config.profile.rate(now), 2),
                offered_events_per_s=streaming(self.arrivals, now, config.tokens / config.tokens_per_s)
                * config.tokens_per_s,
                announced_per_s=round(max(0, reading.announced - last.announced) / interval, 2),
                open=reading.open,
                lag=reading.lag,
                lags=list(reading.lags),
                workers=len(fleet.running),
                ready=fleet.ready,
                stopping=len(fleet.stopping),
                desired=decision.replicas,
                raw=decision.raw,
                cpu=cpu,
                machine_busy=round(machine_busy, 1),
                foreign_cpu=round(max(0.0, machine_busy * (os.cpu_count() or 1) - own), 1),
                events_per_s=round(texts / config.sample / len(seconds)) if seconds else None,
                p50_ms=histogram.percentile_ms(merged, 0.5),
                p99_ms=histogram.percentile_ms(merged, 0.99),
                open_by_consumer=reading.open_by_consumer,
                worker_delay=own_delay,
            )
        )

    def _relative(self, second: dict[str, Any]) -> dict[str, Any]:
        """A probe second with `t` in s since the profile's time 0."""
        return {**second, "t": round(float(second["t"]) - self.t0_unix, 3)}
