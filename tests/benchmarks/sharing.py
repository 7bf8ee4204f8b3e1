"""Fair sharing (issue 16): two workers started together on a backlog each take 40-60% of its events."""

from __future__ import annotations

from tests.benchmarks.results import Result

FAIR_SHARE = (0.4, 0.6)


def shares(result: Result) -> list[float]:
    """Each worker's fraction of the run's events (empty when the run did not finish)."""
    split = [int(n) for n in result.extra.get("events_per_worker", [])]
    total = sum(split)
    return [n / total for n in split] if total else []


def sharing_lines(results: list[Result]) -> list[str]:
    """Per sharing workload: every run's split, and whether each stayed within `FAIR_SHARE`."""
    lines = []
    low, high = FAIR_SHARE
    for workload in dict.fromkeys(r.workload for r in results if r.workload.startswith("sharing")):
        runs = [shares(r) for r in results if r.workload == workload]
        fair = all(split and all(low <= share <= high for share in split) for split in runs)
        splits = ", ".join(" / ".join(f"{share:.0%}" for share in split) or "failed" for split in runs)
        verdict = ": met" if fair else ": NOT met"
        lines.append(
            f"{workload}: 2 workers started together, each run's split of the events: {splits} "
            f"(target: each {low:.0%}-{high:.0%}){verdict}"
        )
    return lines
