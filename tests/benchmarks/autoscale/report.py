"""The report: results.json, a Markdown summary (written and printed with rich)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tests.benchmarks.autoscale.keda import ScaledObject
from tests.benchmarks.autoscale.scenario import Config
from tests.benchmarks.autoscale.timeline import ScenarioResult, Window, windows

Cells = list[list[str]]


def to_json(
    config: Config, scaled: ScaledObject, results: Sequence[ScenarioResult], extra: dict[str, Any]
) -> str:
    """Both timelines, their summaries and the settings, as JSON."""
    document = {
        **extra,
        "config": {
            "profile": str(config.profile),
            "tokens": config.tokens,
            "tokens_per_s": config.tokens_per_s,
            "partitions": config.keyspace.partitions,
            "group": config.group,
            "worker_settings": config.settings,
            "probe_sample": config.sample,
            "grace_s": config.grace_s,
            "drain_s": config.drain_s,
            "spec": dataclasses.asdict(config.spec),
            "timing": dataclasses.asdict(config.timing),
            "compression": config.timing.table(scaled),
        },
        "summary": {r.name: r.summary() for r in results},
        "scenarios": {r.name: dataclasses.asdict(r) for r in results},
    }
    return json.dumps(document, indent=1, default=str)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def summary_cells(results: Sequence[ScenarioResult]) -> Cells:
    figures = [r.summary() for r in results]

    def row(label: str, key: str, fmt: str = "{}") -> list[str]:
        return [label, *("-" if f[key] is None else fmt.format(f[key]) for f in figures)]

    return [
        ["", *(r.name for r in results)],
        row("peak workers", "peak_workers"),
        row("rule's peak ask (applied only when autoscaled)", "peak_desired"),
        row("worker-seconds", "worker_seconds", "{:,.0f}"),
        ["scale ups / downs", *(f"{f['scale_ups']} / {f['scale_downs']}" for f in figures)],
        row("peak lag (messages)", "peak_lag", "{:,}"),
        row("peak open (messages)", "peak_open", "{:,}"),
        ["delay, end to end (lag included): p50 / p99 / p99.9 (ms)",
         *(" / ".join(_ms(f[k]) for k in ("p50_ms", "p99_ms", "p999_ms")) for f in figures)],
        ["workers' own delay, per write: p50 / p99 under (ms)",
         *(" / ".join(_ms(f[k]) for k in ("worker_p50_le_ms", "worker_p99_le_ms")) for f in figures)],
        ["completed / failed / missing", *(" / ".join(f"{f[k]:,}" for k in ("completed", "failed", "missing"))
                                           for f in figures)],
        row("all outcomes in (s after the load's end)", "drained_s", "{:.1f}"),
        ["workers stopped / longest SIGTERM to exit (s) / killed",
         *(f"{f['stops']} / {_ms(f['stop_s_max'])} / {f['killed']}" for f in figures)],
        row("machine busy, mean (% of all cores)", "machine_busy_mean", "{:.0f}"),
        row("other processes' CPU, mean (% of a core)", "foreign_cpu_mean", "{:.0f}"),
    ]  # fmt: skip


def window_cells(results: Sequence[ScenarioResult], width_s: float, end_s: float) -> Cells:
    per = [windows(r, width_s, end_s) for r in results]
    header = ["window (s)", "offered msg/s"]
    for r in results:
        header += [f"{r.name}: workers", "lag max", "p50 ms", "p99 ms", "own p99 under ms"]
    cells = [header]
    for i, first in enumerate(per[0]):
        line = [f"{first.start:g}-{first.end:g}", f"{first.offered_messages_per_s:.0f}"]
        for scenario in per:
            w: Window = scenario[i]
            line += [
                f"{w.workers_mean:.1f} (max {w.workers_max})",
                f"{w.lag_max:,}",
                _ms(w.p50_ms),
                _ms(w.p99_ms),
                _ms(w.worker_p99_le_ms),
            ]
        cells.append(line)
    return cells


def markdown_table(cells: Cells) -> str:
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    return "\n".join(lines) + "\n"


def rich_table(title: str, cells: Cells) -> Table:
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(cells[0]):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in cells[1:]:
        table.add_row(*row)
    return table


def markdown(config: Config, scaled: ScaledObject, results: Sequence[ScenarioResult], width_s: float) -> str:
    spec, end_s = config.spec, max((r.rows[-1].t for r in results if r.rows), default=0.0)
    peak = max(rate for _, rate in config.profile.points)
    parts = [
        "# Autoscaling simulation\n",
        f"Arrivals `{config.profile}` (time s: messages/s), {config.tokens} tokens at "
        f"{config.tokens_per_s:g} tokens/s each: peak {peak:g} messages/s = "
        f"{peak * config.tokens:,.0f} events/s. "
        f"KEDA rule of deploy/k8s/keda.yaml: lagCount {spec.lag_count}, activationLagCount "
        f"{spec.activation_lag_count}, cpu {spec.cpu_target:g}% of the {config.worker_cpu:g} core each "
        "worker may use (its limit, a cgroup quota), "
        f"{spec.min_replicas}-{spec.max_replicas} workers. Worker settings: "
        + (", ".join(f"`{k}={v}`" for k, v in config.settings.items()) or "defaults")
        + ".\n",
        "A worker takes new messages while its own delay stays under its target "
        "(`LCSTREAM_TARGET_DELAY_MS`); the rest wait in the lag the triggers read. The end-to-end delay "
        "is the probe's (token written to frame received, so time spent waiting in the lag counts); the "
        "workers' own delay is their `lcstream_worker_delay_seconds` histogram.\n",
        f"Time compressed {config.timing.compression:g}x:\n",
        markdown_table([["", "Kubernetes", "simulated"], *map(list, config.timing.table(scaled))]),
        "## Summary\n",
        markdown_table(summary_cells(results)),
        f"## Per {width_s:g} s\n",
        markdown_table(window_cells(results, width_s, end_s)),
    ]
    notes = [f"- {r.name}: {note}" for r in results for note in r.notes]
    for r in results:
        foreign = r.summary()["foreign_cpu_mean"]
        if foreign > 10:
            notes.append(
                f"- {r.name}: other processes used {foreign:.0f}% of a core on average: figures skewed"
            )
    lost = [r for r in results if r.outcomes.failed or r.outcomes.missing]
    notes += [f"- **{r.name} lost messages**: {r.outcomes.failed} failed {r.outcomes.failures}, "
              f"{r.outcomes.missing} without an outcome" for r in lost]  # fmt: skip
    if notes:
        parts += ["## Notes\n", "\n".join(notes) + "\n"]
    return "\n".join(parts)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def show(console: Console, scaled: ScaledObject, config: Config, results: Sequence[ScenarioResult],
         width_s: float) -> None:  # fmt: skip
    end_s = max((r.rows[-1].t for r in results if r.rows), default=0.0)
    compression = [["", "Kubernetes", "simulated"], *map(list, config.timing.table(scaled))]
    console.print(rich_table(f"Time compressed {config.timing.compression:g}x", compression))
    console.print(rich_table("Summary", summary_cells(results)))
    console.print(rich_table(f"Per {width_s:g} s", window_cells(results, width_s, end_s)))
    for r in results:
        for note in r.notes:
            console.print(f"- {r.name}: {note}")
