"""The plot: offered load and workers, lag, and delay, for both scenarios on one time axis (matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

from tests.benchmarks.autoscale.timeline import ScenarioResult

COLORS = {True: "tab:blue", False: "tab:orange"}


def plot(results: Sequence[ScenarioResult], path: Path, title: str) -> None:
    """Three panels sharing the time axis, written as a PNG to `path`."""
    figure, (load, lag, delay) = plt.subplots(
        3, 1, sharex=True, figsize=(11, 9), height_ratios=(1.2, 1, 1.2), layout="constrained"
    )
    figure.suptitle(title, fontsize=11)
    first = results[0].rows
    load.fill_between(
        [r.t for r in first], [r.offered_events_per_s / 1000 for r in first], step="post",
        color="0.85", label="offered (k events/s)",
    )  # fmt: skip
    load.set_ylabel("offered k events/s")
    workers = load.twinx()
    for result in results:
        color, rows = COLORS[result.autoscaled], result.rows
        style = {
            "color": color,
            "zorder": 3 if result.autoscaled else 2,
            "ls": "-" if result.autoscaled else "--",
        }
        workers.step([r.t for r in rows], [r.workers for r in rows], where="post", lw=2,
                     label=f"{result.name}: workers", **style)  # fmt: skip
        if not result.autoscaled:
            workers.step([r.t for r in rows], [r.desired for r in rows], where="post", color=color, lw=1.2,
                         ls=":", zorder=4, label=f"{result.name}: the rule's ask (not applied)")  # fmt: skip
        lag.plot([r.t for r in rows], [r.lag for r in rows], color=color, lw=1.8, label=f"{result.name}: lag")
        lag.plot([r.t for r in rows], [r.open for r in rows], color=color, lw=0.9, ls=":",
                 label=f"{result.name}: open")  # fmt: skip
        seconds = sorted(result.probe_seconds, key=lambda s: float(s["t"]))
        with_delay = [s for s in seconds if s.get("p99_ms") is not None]
        delay.plot([s["t"] for s in with_delay], [s["p99_ms"] for s in with_delay], color=color, lw=1.5,
                   label=f"{result.name}: p99")  # fmt: skip
        delay.plot([s["t"] for s in with_delay], [s["p50_ms"] for s in with_delay], color=color, lw=0.9,
                   ls="--", label=f"{result.name}: p50")  # fmt: skip
    workers.set_ylabel("workers")
    workers.set_ylim(
        0, max(max((max(r.workers, r.desired) for r in res.rows), default=1) for res in results) + 1
    )
    workers.yaxis.get_major_locator().set_params(integer=True)
    handles, labels = load.get_legend_handles_labels()
    more_handles, more_labels = workers.get_legend_handles_labels()
    load.legend(handles + more_handles, labels + more_labels, loc="upper left", fontsize=8)
    lag.set_ylabel("messages")
    lag.set_title("lag (not taken by any worker) and open (held by workers, dotted)", fontsize=9, loc="left")
    lag.legend(loc="upper left", fontsize=8)
    delay.set_yscale("log")
    delay.set_ylabel("delay ms (log)")
    delay.set_title("end-to-end delay of text frames, per second", fontsize=9, loc="left")
    delay.legend(loc="upper left", fontsize=8)
    delay.set_xlabel("time s (profile's time 0 = first arrival possible)")
    for axis in (load, lag, delay):
        axis.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
