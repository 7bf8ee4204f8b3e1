"""Every workload, every system, one after the other on the same machine; a failed run becomes a row."""

from __future__ import annotations

import time
import traceback
from collections.abc import Awaitable
from pathlib import Path

import orjson
from rich.console import Console

from tests.benchmarks.ceiling import REDIS_CASES, dispatch_ceiling, redis_ceiling
from tests.benchmarks.messages import Event, text_delta
from tests.benchmarks.paced import run_paced
from tests.benchmarks.preload import snapshot
from tests.benchmarks.preloaded import run_preloaded
from tests.benchmarks.processes import Processes
from tests.benchmarks.results import CEILING, LCSTREAM_1, LCSTREAM_2, NAIVE, Result, median_run
from tests.benchmarks.rss import run_rss
from tests.benchmarks.workloads import Plan, Preloaded


class Suite:
    """Runs the selected workloads of `plan`, each system in a directory of its own under `work_dir`."""

    def __init__(
        self, plan: Plan, selected: set[str], work_dir: Path, console: Console, settings: dict[str, str]
    ) -> None:
        self.plan = plan
        self.settings = settings  # LCSTREAM_* for every lcstream worker (`--set`)
        self.selected = selected
        self.work_dir = work_dir
        self.console = console
        self.results: list[Result] = []

    async def run(self) -> list[Result]:
        plan = self.plan
        if "redis" in self.selected:
            await self._redis()
        for workload in (plan.backlog, plan.tools, plan.long):
            if workload.name in self.selected:
                await self._preloaded(workload)
        if "sharing" in self.selected:
            for workload in plan.sharing:
                await self._sharing(workload)
        if "paced" in self.selected:
            for paced in plan.paced:
                for system in (LCSTREAM_1, NAIVE):
                    where = self._dir(paced.name, system)
                    await self._record(
                        paced.name,
                        system,
                        run_paced(paced, system, where, sample=plan.sample, settings=self.settings),
                    )
        if "rss" in self.selected:
            # lcstream only: the naive worker needs ~120 µs per event, minutes for the full 2M events.
            where = self._dir("rss", LCSTREAM_1)
            await self._record(
                "rss",
                LCSTREAM_1,
                run_rss(plan.rss, LCSTREAM_1, where, sample=plan.sample, settings=self.settings),
            )
        return self.results

    async def _redis(self) -> None:
        payload = orjson.dumps(text_delta("m123t456 "))  # the most common event of every workload
        with Processes(self.work_dir / "redis-benchmark") as processes:
            for command, pipeline in REDIS_CASES:
                run = redis_ceiling(processes, command, pipeline, self.plan.redis_requests, payload)
                await self._record("redis", f"redis-benchmark {command} -P {pipeline}", run)

    async def _preloaded(self, workload: Preloaded) -> None:
        started = time.monotonic()
        events = workload.events()
        seed = await snapshot(self.work_dir / workload.name / "seed", events)
        self.console.print(
            f"[dim]{workload.name}: {workload.shape} preloaded in {time.monotonic() - started:.1f}s"
        )
        await self._record(workload.name, CEILING, dispatch_ceiling(workload, events))
        systems = [LCSTREAM_1, LCSTREAM_2, NAIVE] if workload.two_workers else [LCSTREAM_1, NAIVE]
        for system in systems:
            await self._record(workload.name, system, self._median_run(workload, events, system, seed))
        seed.unlink()  # RDB copies are big and not needed afterwards; the logs stay

    async def _sharing(self, workload: Preloaded) -> None:
        """Two workers on the same backlog, `plan.sharing_runs` times: every run is a row."""
        events = workload.events()
        seed = await snapshot(self.work_dir / workload.name / "seed", events)
        for attempt in range(self.plan.sharing_runs):
            where = self._dir(workload.name, LCSTREAM_2) / f"run-{attempt}"
            run = run_preloaded(
                workload, events, LCSTREAM_2, seed, where, sample=self.plan.sample, settings=self.settings
            )
            await self._record(workload.name, LCSTREAM_2, run)
        seed.unlink()

    async def _median_run(
        self, workload: Preloaded, events: list[list[Event]], system: str, seed: Path
    ) -> Result:
        """`plan.repeat` runs, each on a fresh copy of the snapshot; the median one by events/s."""
        runs = []
        for attempt in range(self.plan.repeat):
            where = self._dir(workload.name, system) / f"run-{attempt}"
            runs.append(
                await run_preloaded(
                    workload, events, system, seed, where, sample=self.plan.sample, settings=self.settings
                )
            )
        return median_run(runs)

    async def _record(self, workload: str, system: str, run: Awaitable[Result]) -> None:
        started = time.monotonic()
        try:
            result = await run
        except Exception as exc:  # one broken run must not cost the others: it becomes a row saying so
            with (self.work_dir / "errors.log").open("a") as errors:
                errors.write(f"== {workload} / {system}\n{traceback.format_exc()}\n")
            result = Result(
                workload, system, "", events=0, notes=[f"FAILED: {type(exc).__name__}: {exc}"[:300]]
            )
        self._done(result, time.monotonic() - started)

    def _done(self, result: Result, elapsed_s: float) -> None:
        self.results.append(result)
        rate = f"{result.events_per_s:,.0f} events/s" if result.events_per_s else ""
        latency = f" p99 {result.latency.p99_ms:.2f} ms" if result.latency else ""
        notes = f" [yellow]{'; '.join(result.notes)}" if result.notes else ""
        self.console.print(
            f"{result.workload:<10} {result.system:<36} {rate}{latency} ({elapsed_s:.1f}s){notes}"
        )

    def _dir(self, workload: str, system: str) -> Path:
        slug = system.replace(",", "").replace(":", "").replace(" ", "-")
        return self.work_dir / workload / slug
