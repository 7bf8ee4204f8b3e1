"""The figures a worker publishes in `P:workers` for the operations page: one JSON object per worker,
written by `lcstream.worker.engine.figures`, read by the gateway's sampler."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, model_validator

FIGURES_VERSION = 1


class WorkerFigures(BaseModel):
    """One worker's counters since it started (cumulative), at `time_ms` on its own clock."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    v: int = FIGURES_VERSION
    consumer: str
    host: str
    pid: int
    started_ms: int
    time_ms: int
    stopping: bool = False
    open_messages: int
    waiting_messages: int = 0
    events: int
    frames: int
    ended: dict[str, int]  # messages ended, by `completed` or `failed:<reason>`
    delay_le: list[float | None]  # the delay histogram's upper bounds in seconds; None is +Inf
    delay_counts: list[int]  # its cumulative counts

    @model_validator(mode="after")
    def _buckets_match(self) -> Self:
        if len(self.delay_le) != len(self.delay_counts):
            raise ValueError("delay_le and delay_counts differ in length")
        return self
