"""Tests of streams/jobcodec.py: arq jobs and results as JSON, exceptions by name only."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from lcstream.streams.jobcodec import JobFailedError, dumps_job, loads_job

# pickle.dumps({"f": "generate"}, protocol=4), as arq's default serializer would write it
PICKLED = b"\x80\x04\x95\x13\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01f\x94\x8c\x08generate\x94s."


def test_a_job_definition_round_trips_as_plain_json() -> None:
    job = {"t": 1, "f": "generate", "a": ("hi",), "k": {"model": None, "message_id": "lc_run--1"}, "et": 5}
    raw = dumps_job(job)
    assert orjson.loads(raw) == {**job, "a": ["hi"]}
    assert loads_job(raw) == {**job, "a": ["hi"]}


def test_exceptions_come_back_as_an_abort_or_a_job_failure_only() -> None:
    aborted = loads_job(dumps_job({"s": False, "r": asyncio.CancelledError()}))["r"]
    assert type(aborted) is asyncio.CancelledError
    failed = loads_job(dumps_job({"s": False, "r": KeyError("model")}))["r"]
    assert isinstance(failed, JobFailedError)
    assert (failed.kind, str(failed)) == ("KeyError", "KeyError: 'model'")
    # A result that merely looks like one is rebuilt as JobFailedError too, never as the named type.
    forged = loads_job(orjson.dumps({"r": {"__exception__": "SystemExit", "message": "bye"}}))["r"]
    assert isinstance(forged, JobFailedError) and forged.kind == "SystemExit"
    assert loads_job(dumps_job({"r": {"status": "completed"}}))["r"] == {"status": "completed"}


def test_what_json_cannot_carry_is_refused_and_pickle_is_never_loaded() -> None:
    with pytest.raises(TypeError):
        dumps_job({"a": (object(),)})
    with pytest.raises(orjson.JSONDecodeError):
        loads_job(PICKLED)
