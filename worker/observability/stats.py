"""Counters a worker keeps since start: logged when it stops, exported as metrics while it runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class WorkerStats:
    """Counters since start."""

    events: int = 0
    frames: int = 0
    completed: int = 0
    failed: int = 0
    taken_over: int = 0
    lost_claims: int = 0
