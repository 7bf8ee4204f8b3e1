"""`python -m tests.benchmarks [--quick] [--only WORKLOAD ...] [--json PATH]` (`make bench`)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from rich.console import Console

from tests.benchmarks.machine import machine_info
from tests.benchmarks.messages import check_text_builder
from tests.benchmarks.processes import REPO_ROOT, setting_arg
from tests.benchmarks.report import Report, comparisons, markdown, table, write
from tests.benchmarks.suite import Suite
from tests.benchmarks.workloads import WORKLOAD_NAMES, full_plan, quick_plan

DEFAULT_JSON = REPO_ROOT / "artifacts" / "bench" / "latest.json"
QUICK_JSON = DEFAULT_JSON.with_name("quick.json")  # a smoke run never overwrites the last full one


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a smoke run of a minute or two")
    parser.add_argument(
        "--only", action="append", choices=WORKLOAD_NAMES, metavar="WORKLOAD",
        help=f"run only this workload (repeatable): {', '.join(WORKLOAD_NAMES)}",
    )  # fmt: skip
    parser.add_argument(
        "--set", action="append", default=[], metavar="LCSTREAM_NAME=VALUE", type=setting_arg,
        help="a setting for every lcstream worker (repeatable), e.g. LCSTREAM_MAX_OPEN_MESSAGES=100",
    )  # fmt: skip
    parser.add_argument(
        "--repeat", type=int, metavar="N", help="runs per system on preloaded workloads, median reported "
        "(default 3, --quick 1)",
    )  # fmt: skip
    parser.add_argument(
        "--json",
        type=Path,
        help=f"where to write the results (default {DEFAULT_JSON}, --quick: {QUICK_JSON.name})",
    )
    parser.add_argument(
        "--markdown-from", type=Path, metavar="JSON", help="print a saved run as Markdown and exit"
    )
    return parser.parse_args(argv)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds every `with Processes(...)`: children and redis-servers are stopped


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.markdown_from:
        sys.stdout.write(markdown(Report.from_json(args.markdown_from.read_text())))
        return 0
    signal.signal(signal.SIGTERM, _terminate)
    json_path: Path = args.json or (QUICK_JSON if args.quick else DEFAULT_JSON)
    check_text_builder()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work_dir = json_path.resolve().parent / f"run-{stamp}"
    work_dir.mkdir(parents=True)
    console = Console(stderr=True)
    console.print(f"[bold]lcstream benchmark{' --quick' if args.quick else ''}[/] (logs in {work_dir})")
    machine = machine_info()
    settings = dict(args.set)
    machine["lcstream_settings"] = settings
    plan = quick_plan() if args.quick else full_plan()
    if args.repeat:
        plan = dataclasses.replace(plan, repeat=args.repeat)
    suite = Suite(plan, set(args.only or WORKLOAD_NAMES), work_dir, console, settings)
    results = asyncio.run(suite.run())
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report = Report(machine, args.quick, results, str(work_dir), comparisons(results, args.quick))
    write(report, json_path, json_path.with_suffix(".md"))
    out = Console(width=max(Console().width, 200))
    out.print(table(report))
    for line in report.comparisons:
        out.print(f"- {line}")
    out.print(f"\nJSON: {json_path}   Markdown: {json_path.with_suffix('.md')}   logs: {work_dir}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: every worker, generator and redis-server it started is stopped\n")
        sys.exit(130)
