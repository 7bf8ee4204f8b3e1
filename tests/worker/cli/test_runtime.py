"""The worker process's runtime policy: garbage-collector thresholds and the event loop."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from lcstream.worker.cli import runtime


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_tune_gc_freezes_start_up_objects_and_raises_thresholds() -> None:
    runtime.tune_gc()
    assert gc.get_threshold() == runtime.GC_THRESHOLDS
    assert gc.get_freeze_count() > 0


def test_run_uses_uvloop_when_installed() -> None:
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert runtime.run(loop_module()).startswith("uvloop")
