"""The JSON codec of arq jobs and results: arq's default is pickle, which runs code from Redis.

A job's arguments and its result are JSON. A failed or aborted job's result is
an exception: it is stored as its type name and text, and read back as
`asyncio.CancelledError` (an abort, which `arq.jobs.Job.abort()` looks for) or
as `JobFailedError`. No other type is ever built from what Redis holds.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from lcstream.streams.errors import LcstreamError

_EXCEPTION = "__exception__"


class JobFailedError(LcstreamError):
    """A job raised: `kind` is the exception's type name, the text its message."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(f"{kind}: {message}" if message else kind)


def _encode_extra(value: object) -> Any:
    if isinstance(value, BaseException):
        return {_EXCEPTION: type(value).__name__, "message": str(value)}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps_job(data: dict[str, Any]) -> bytes:
    """arq `job_serializer`: a job definition or result as JSON."""
    return orjson.dumps(data, default=_encode_extra)


def loads_job(raw: bytes) -> dict[str, Any]:
    """arq `job_deserializer`: the inverse of `dumps_job`."""
    data: dict[str, Any] = orjson.loads(raw)
    result = data.get("r")
    if isinstance(result, dict) and isinstance(result.get(_EXCEPTION), str):
        kind, message = result[_EXCEPTION], str(result.get("message", ""))
        aborted = kind == "CancelledError"
        data["r"] = asyncio.CancelledError(message) if aborted else JobFailedError(kind, message)
    return data
