"""`python -m tests.benchmarks.autoscale` (`make autoscale`): KEDA autoscaling of lcstream workers, simulated.

Runs the same arrival profile twice, each on a fresh redis-server: autoscaled by
the rule of deploy/k8s/keda.yaml (times compressed), then with one fixed worker
(the rule only observes). Writes results.json, autoscale.md and autoscale.png
in --work-dir, and prints the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from rich.console import Console

from lcstream.config import Settings
from lcstream.streams.keys import Keyspace
from tests.benchmarks.autoscale import report
from tests.benchmarks.autoscale.keda import ScaledObject, Timing
from tests.benchmarks.autoscale.probe import SAMPLES
from tests.benchmarks.autoscale.profile import DEFAULT_PROFILE, RateProfile
from tests.benchmarks.autoscale.scenario import Config, Scenario
from tests.benchmarks.autoscale.timeline import ScenarioResult
from tests.benchmarks.processes import setting_arg
from tests.procfs import MachineCpu

SCENARIOS = {"autoscaled": True, "fixed-1": False}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.autoscale", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    add = parser.add_argument
    add(
        "--profile",
        default=DEFAULT_PROFILE,
        type=RateProfile.parse,
        help="arrivals: time_s:messages_per_s,...",
    )
    add("--duration-s", type=float, help="stretch or compress the profile's times to this length")
    add("--tokens", type=int, default=150, help="text tokens per message")
    add("--tokens-per-s", type=float, default=50.0, help="tokens per second of each message")
    add("--min-workers", type=int, default=1)
    add("--max-workers", type=int, default=3)
    add("--compression", type=float, default=10.0, help="Kubernetes periods divided by this")
    add("--polling-s", type=float, help="controller tick (default: 15 s / compression)")
    add("--down-window-s", type=float, help="scale-down stabilization (default: keda.yaml's / compression)")
    add("--down-period-s", type=float, help="scale-down policy period (default: keda.yaml's / compression)")
    add("--set", action="append", default=[], type=setting_arg, metavar="LCSTREAM_NAME=VALUE",
        help="a setting for every worker (repeatable), e.g. LCSTREAM_TARGET_DELAY_MS=100")  # fmt: skip
    add("--worker-cpu", type=float, default=0.4, help="each worker's CPU limit, in cores (a pod's)")
    add("--grace-s", type=float, default=10.0, help="the workers' LCSTREAM_GRACE_PERIOD_S")
    add("--drain-s", type=float, default=45.0, help="after the load's end, longest wait for every outcome")
    add(
        "--sample", type=float, default=0.1, choices=sorted(SAMPLES), help="share of messages the probe hears"
    )
    add("--scenario", action="append", choices=list(SCENARIOS), help="run only this one (repeatable)")
    add("--window-s", type=float, default=20.0, help="width of the report's table rows")
    add("--work-dir", type=Path, default=Path("/tmp/lcstream-autoscale"))  # noqa: S108 - its own dir
    add("--plot", type=Path, help="also write the plot here (e.g. docs/images/autoscale.png)")
    args = parser.parse_args(argv)
    if not 1 <= args.min_workers <= args.max_workers:
        parser.error("need 1 <= --min-workers <= --max-workers (scaling to zero is not simulated)")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds every `with Processes(...)`: workers and redis-servers are stopped


def config_of(args: argparse.Namespace, scaled: ScaledObject) -> Config:
    prefix = scaled.streams[0].partition(":{")[0]
    keyspace = Keyspace(prefix, len(scaled.streams))
    if list(scaled.streams) != keyspace.all_dispatch():
        raise SystemExit(f"keda.yaml's streams {scaled.streams} are not D(0..N-1) of one prefix")
    timing = Timing.compressed(
        scaled, args.compression, polling_s=args.polling_s, down_window_s=args.down_window_s,
        down_period_s=args.down_period_s,
    )  # fmt: skip
    settings = {
        "LCSTREAM_PREFIX": prefix,
        "LCSTREAM_PARTITIONS": str(keyspace.partitions),
        "LCSTREAM_GROUP": scaled.group,
        "LCSTREAM_GRACE_PERIOD_S": f"{args.grace_s:g}",
        **dict(args.set),
    }
    profile = args.profile.stretched(args.duration_s) if args.duration_s else args.profile
    return Config(
        profile=profile, tokens=args.tokens, tokens_per_s=args.tokens_per_s, keyspace=keyspace,
        group=scaled.group, spec=timing.spec(scaled, args.min_workers, args.max_workers), timing=timing,
        settings=settings, grace_s=args.grace_s, drain_s=args.drain_s, sample=args.sample,
        worker_cpu=args.worker_cpu,
    )  # fmt: skip


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if importlib.util.find_spec("matplotlib") is None:
        raise SystemExit("matplotlib is missing: pip install -e '.[dev,bench]' (make autoscale does)")
    signal.signal(signal.SIGTERM, _terminate)
    scaled = ScaledObject.load()
    config = config_of(args, scaled)
    work_dir: Path = args.work_dir.resolve()
    logs = work_dir / f"run-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    console = Console(stderr=True)
    unknown = [
        name
        for name in config.settings
        if name.removeprefix("LCSTREAM_").lower() not in Settings.model_fields
    ]
    for name in unknown:
        console.print(f"[yellow]warning[/]: {name} is not a setting of this lcstream: the workers ignore it")
    console.print(f"[bold]autoscaling simulation[/]: {config.profile.arrivals().__len__():,} messages, "
                  f"profile {config.profile}, logs in {logs}")  # fmt: skip
    idle = MachineCpu()
    time.sleep(1)
    busy_before = idle.busy_fraction()
    if busy_before > 0.2:
        console.print(f"[yellow]warning[/]: the machine was {busy_before:.0%} busy before the start: "
                      "other processes will skew the figures")  # fmt: skip
    started = time.monotonic()
    results: list[ScenarioResult] = []
    for name in args.scenario or list(SCENARIOS):
        console.print(f"scenario [bold]{name}[/] ...")
        results.append(asyncio.run(Scenario(config, name, SCENARIOS[name], logs / name).run()))
        console.print(f"  done in {results[-1].wall_s:.0f} s: {results[-1].summary()}")
    extra = {
        "started": datetime.now(UTC).isoformat(),
        "argv": argv,
        "cpus": os.cpu_count(),
        "machine_busy_before": round(busy_before, 3),
        "settings_the_workers_ignore": unknown,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "wall_s": round(time.monotonic() - started, 1),
        "logs": str(logs),
    }
    report.write(work_dir / "results.json", report.to_json(config, scaled, results, extra))
    text = report.markdown(config, scaled, results, args.window_s)
    report.write(work_dir / "autoscale.md", text)
    from tests.benchmarks.autoscale.plot import plot  # matplotlib only here

    compression = config.timing.compression
    title = f"lcstream workers under KEDA's rule (times / {compression:g}), profile {config.profile}"
    for path in [work_dir / "autoscale.png", *([args.plot] if args.plot else [])]:
        plot(results, path, title)
    out = Console(width=max(Console().width, 160))
    report.show(out, scaled, config, results, args.window_s)
    out.print(f"\n{work_dir / 'results.json'}   {work_dir / 'autoscale.md'}   {work_dir / 'autoscale.png'}"
              f"{'   ' + str(args.plot) if args.plot else ''}   ({extra['wall_s']:.0f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.stderr.write(
            "interrupted: every worker, load process, probe and redis-server it started is stopped\n"
        )
        sys.exit(130)
