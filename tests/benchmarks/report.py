"""The benchmark's output: a terminal table (rich), Markdown for docs/performance.md, and JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from tests.benchmarks.results import CEILING, LCSTREAM_1, LCSTREAM_2, NAIVE, Latency, Result
from tests.benchmarks.sharing import sharing_lines

# issue 6's targets, checked only on its own sizes (a --quick run says so instead)
P99_TARGETS_MS = {"paced-100": 3.0, "paced-500": 20.0}
BACKLOG_TARGET_EVENTS_PER_S = 100_000
NAIVE_TARGET_RATIO = 6.0
TWO_WORKERS_TARGET_RATIO = 1.6
RSS_TARGET_MB = 1024


@dataclass
class Report:
    """One benchmark run."""

    machine: dict[str, Any]
    quick: bool
    results: list[Result]
    work_dir: str = ""
    comparisons: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    @classmethod
    def from_json(cls, text: str) -> Report:
        raw = json.loads(text)
        results = []
        for row in raw["results"]:
            latency = row.pop("latency")
            results.append(Result(**row, latency=Latency(**latency) if latency else None))
        return cls(raw["machine"], raw["quick"], results, raw.get("work_dir", ""), raw.get("comparisons", []))


COLUMNS = (
    "workload", "system", "events", "events/s", "vs naive", "worker µs/ev", "Redis µs/ev", "Redis cmd/ev",
    "latency ms p50/p99/p99.9/max", "RSS/open msg", "ended (checked)", "notes",
)  # fmt: skip


def rows(results: list[Result]) -> Iterator[list[str]]:
    """The table's cells, one list per result."""
    naive_rate = {r.workload: r.events_per_s for r in results if r.system == NAIVE and r.events_per_s}
    for r in results:
        ratio = ""
        # paced runs are all offered the same rate: their latency compares them instead
        lcstream = r.system in (LCSTREAM_1, LCSTREAM_2) and r.target_events_per_s is None
        if lcstream and r.events_per_s and naive_rate.get(r.workload):
            ratio = f"{r.events_per_s / naive_rate[r.workload]:.1f}x"
        latency = ""
        if r.latency:
            figures = (r.latency.p50_ms, r.latency.p99_ms, r.latency.p999_ms, r.latency.max_ms)
            latency = "/".join(_ms(x) for x in figures)
        rate = _int(r.events_per_s)
        if r.target_events_per_s:
            rate = f"{rate} of {_int(r.target_events_per_s)}"
        ended = f"{r.completed}/{r.expected}" if r.expected is not None else ""
        if r.verified:
            ended += f" ({r.verified})"
        rss = ""
        if r.rss_per_open_message_kb is not None:
            rss = f"{r.rss_per_open_message_kb:,.0f} KiB ({r.rss_mb:,.0f} MiB in all)"
        yield [
            r.workload, r.system, _int(r.events), rate, ratio,
            _num(r.worker_cpu_us_per_event), _num(r.redis_cpu_us_per_event), _num(r.redis_commands_per_event),
            latency, rss, ended, "; ".join(_busy(r) + r.notes),
        ]  # fmt: skip


def _busy(result: Result) -> list[str]:
    """How busy the whole machine was (all cores): a run near 100% is limited by the machine."""
    busy = result.extra.get("machine_cpu_busy")
    return [f"machine {busy:.0%} busy"] if isinstance(busy, float) else []


def comparisons(results: list[Result], quick: bool) -> list[str]:
    """The ratios and targets of issue 6, in words."""
    by = {(r.workload, r.system): r for r in results}
    lines: list[str] = []
    suffix = " (quick sizes: the issue's targets apply to a full run)" if quick else ""

    def rate(workload: str, system: str) -> float | None:
        found = by.get((workload, system))
        return found.events_per_s if found else None

    for workload in ("backlog", "tools", "long"):
        one, naive, ceiling = rate(workload, LCSTREAM_1), rate(workload, NAIVE), rate(workload, CEILING)
        if one and naive:
            check = _check(one / naive >= NAIVE_TARGET_RATIO) if workload == "backlog" else ""
            lines.append(f"{workload}: lcstream (1 worker) = {one / naive:.1f}x the naive worker{check}")
        if one and ceiling:
            lines.append(
                f"{workload}: lcstream (1 worker) = {one / ceiling:.0%} of the in-process dispatch ceiling"
            )
    one, two = rate("backlog", LCSTREAM_1), rate("backlog", LCSTREAM_2)
    if one:
        met = one >= BACKLOG_TARGET_EVENTS_PER_S
        lines.append(
            f"backlog: {one:,.0f} events/s through one worker process (target >= 100,000){_check(met)}"
        )
    if one and two:
        met = two / one >= TWO_WORKERS_TARGET_RATIO
        split = by[("backlog", LCSTREAM_2)].extra.get("events_per_worker", [])
        alone = " (but one worker did all the work: no scaling shown)" if split and min(split) == 0 else ""
        lines.append(f"backlog: 2 workers = {two / one:.2f}x 1 worker (target >= 1.6x){_check(met)}{alone}")
    backlog_one = by.get(("backlog", LCSTREAM_1))
    if backlog_one and "redis_bytes_per_event" in backlog_one.extra:
        lines.append(
            f"backlog: Redis memory per event: {backlog_one.extra['redis_bytes_per_event']} bytes in E(M), "
            f"{backlog_one.extra['redis_bytes_per_event_out']} more in O(M) and R(M) once processed"
        )
    lines += sharing_lines(results)
    for workload, target_ms in P99_TARGETS_MS.items():
        found = by.get((workload, LCSTREAM_1))
        if found and found.latency:
            met = found.latency.p99_ms <= target_ms
            p99 = _ms(found.latency.p99_ms)
            lines.append(f"{workload}: lcstream p99 {p99} ms (target <= {target_ms:g} ms){_check(met)}")
    rss = by.get(("rss", LCSTREAM_1))
    if rss and rss.rss_mb is not None:
        met = rss.rss_mb < RSS_TARGET_MB
        lines.append(f"rss: {rss.shape}: worker RSS {rss.rss_mb:,.0f} MiB (target < 1 GiB){_check(met)}")
    return [line + suffix for line in lines]


def table(report: Report) -> Table:
    """The results as a rich table."""
    grid = Table(title=f"lcstream benchmark{' (--quick)' if report.quick else ''}: {machine_line(report)}")
    for column in COLUMNS:
        grid.add_column(column, overflow="fold")
    for cells in rows(report.results):
        grid.add_row(*cells)
    return grid


def markdown(report: Report) -> str:
    """The results as a Markdown table with the machine and the comparisons, for docs/performance.md."""
    lines = [f"Machine: {machine_line(report)}", ""]
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "---|" * len(COLUMNS))
    for cells in rows(report.results):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines.append("")
    lines += [f"- {line}" for line in report.comparisons]
    return "\n".join(lines) + "\n"


def machine_line(report: Report) -> str:
    m = report.machine
    changed = " + uncommitted changes" if m.get("lcstream_changed") else ""
    if m.get("lcstream_settings"):
        changed += " with " + " ".join(f"{k}={v}" for k, v in m["lcstream_settings"].items())
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; Python {m['python']}, redis-server "
        f"{m['redis_server']}, langchain-core {m['langchain_core']}; "
        f"lcstream {m['lcstream_commit']}{changed}; {m['date']}; load average "
        f"{m['load_average_at_start'][0]} at start, {m.get('load_average_at_end', ['?'])[0]} at end"
    )


def write(report: Report, json_path: Path, markdown_path: Path) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(report.to_json())
    markdown_path.write_text(markdown(report))


def _check(met: bool) -> str:
    return ": met" if met else ": NOT met"


def _fmt(value: float | None, render: Callable[[float], str]) -> str:
    return "" if value is None else render(value)


def _int(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:,.0f}")


def _num(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:,.1f}" if v >= 10 else f"{v:.2f}")


def _ms(value: float) -> str:
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"
