"""Background jobs with arq: generate a message with a chat model, or reassemble a stored one.

`arq lcstream.worker.jobs.WorkerSettings` runs them on their own; `lcstream worker --with-jobs`
beside a stream worker.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    """`WorkerSettings` for arq, built from the settings only when arq asks for it."""
    if name == "WorkerSettings":
        from lcstream.worker.jobs.tasks import worker_settings

        return worker_settings()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
