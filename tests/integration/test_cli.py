"""The `lcstream` command line end to end: demo without Redis, publish, worker, result."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis

from lcstream.streams.keys import Keyspace
from tests.conftest import conformance_cases, free_port
from tests.integration.processes import LCSTREAM, run_lcstream

CASES = {c["name"]: c for c in conformance_cases()}
PROCESSES_AT_ONCE = 4
run = run_lcstream


def test_demo_runs_with_no_redis_server(worker_env: dict[str, str]) -> None:
    # Point the environment at a port nothing listens on: the demo must not need it.
    env = {**worker_env, "LCSTREAM_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "COLUMNS": "100"}
    done = run("demo", "--messages", "4", "--pace-ms", "5", env=env)
    assert done.returncode == 0, done.stderr
    assert "4 messages through Redis: all outcomes equal the in-process stream" in done.stdout
    assert done.stdout.count("matches in-process stream: yes") == 4
    # The agent: a three-node graph run in the background, followed live as a run, checked message by message.
    assert "plan lc_run--" in done.stdout and "-> get_weather({'city': 'Paris'})" in done.stdout
    assert "answer lc_run--" in done.stdout
    assert "completed: each equals the worker's stored outcome" in done.stdout


def write_jsonl(path: Path, events: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_publish_worker_result_round_trip(worker_env: dict[str, str], tmp_path: Path) -> None:
    ok, bad = CASES["single_tool_call"], CASES["error_mid_stream"]
    for case in (ok, bad):
        done = run(
            "publish", str(write_jsonl(tmp_path / f"{case['name']}.jsonl", case["events"])), env=worker_env
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == case["message_id"]
    renamed = run(
        "publish", str(tmp_path / "single_tool_call.jsonl"), "--message-id", "renamed-1", env=worker_env
    )
    assert renamed.stdout.strip() == "renamed-1"

    assert run("worker", "--burst", env=worker_env).returncode == 0

    done = run("result", ok["message_id"], env=worker_env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"status": "completed", "message": ok["expected"]["output"]}
    failed = run("result", bad["message_id"], env=worker_env)
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["error"] == {"message": "provider overloaded", "code": "overloaded"}
    absent = run("result", "never-published", env=worker_env)
    assert (absent.returncode, absent.stdout) == (4, "")
    assert "no outcome for never-published" in absent.stderr


def test_publish_refuses_bad_input_with_its_line_number(worker_env: dict[str, str], tmp_path: Path) -> None:
    events = CASES["plain_text"]["events"][:3]
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(events[0]) + "\n" + json.dumps(events[1]) + "\n{oops\n")
    done = run("publish", str(path), env=worker_env)
    assert done.returncode == 2
    assert "bad.jsonl:3" in done.stderr and "invalid_json" in done.stderr
    order = tmp_path / "order.jsonl"
    write_jsonl(order, [events[1], events[0]])
    done = run("publish", str(order), env=worker_env)
    assert done.returncode == 2
    assert "order.jsonl:1" in done.stderr and "missing_start" in done.stderr


def test_invalid_settings_exit_2_without_leaking_the_password(worker_env: dict[str, str]) -> None:
    env = {**worker_env, "LCSTREAM_REDIS_URL": "http://user:hunter2@localhost/0"}
    done = run("result", "x", env=env)
    assert done.returncode == 2
    assert "invalid settings" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


def test_result_rejects_an_invalid_message_id(worker_env: dict[str, str]) -> None:
    done = run("result", "bad{id}", env=worker_env)
    assert done.returncode == 2
    assert "invalid message id" in done.stderr


def test_a_wrong_password_exits_3_without_a_traceback(worker_env: dict[str, str], redis_server: Any) -> None:
    url = f"redis://nobody:s3cr3t-pw@127.0.0.1:{redis_server.port}/0"
    done = run("result", "x", env={**worker_env, "LCSTREAM_REDIS_URL": url})
    assert done.returncode == 3
    assert "refused" in done.stderr and "Traceback" not in done.stderr
    assert "s3cr3t-pw" not in done.stderr + done.stdout


def test_export_and_publish_round_trip_every_completed_message(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    """`lcstream export M | lcstream publish -` reproduces M (here under another prefix); publishing the
    same events again is a no-op; other events under M are refused and write nothing."""

    def publish_case(case: dict[str, Any]) -> int:
        return run("publish", str(write_jsonl(tmp_path / f"{case['name']}.jsonl", case["events"])),
                   env=worker_env).returncode  # fmt: skip

    with ThreadPoolExecutor(PROCESSES_AT_ONCE) as pool:  # independent processes: the suite's wall time
        assert list(pool.map(publish_case, CASES.values())) == [0] * len(CASES)
    assert run("worker", "--burst", env=worker_env).returncode == 0
    copy_env = {**worker_env, "LCSTREAM_PREFIX": "copy"}
    completed = [c for c in CASES.values() if "output" in c["expected"]]
    assert len(completed) >= 6
    with redis.Redis.from_url(worker_env["LCSTREAM_REDIS_URL"]) as client:

        def export_then_publish(case: dict[str, Any]) -> None:
            message_id, events_key = case["message_id"], Keyspace().message(case["message_id"]).events
            exported = run("export", message_id, env=worker_env)
            assert exported.returncode == 0, exported.stderr
            stored = client.xrange(events_key)
            again = publish_stdin(exported.stdout, env=worker_env)
            assert (again.returncode, again.stdout.strip()) == (0, message_id), again.stderr
            assert client.xrange(events_key) == stored  # nothing written twice
            copied = publish_stdin(exported.stdout, env=copy_env)
            assert copied.returncode == 0, copied.stderr

        def same_result(case: dict[str, Any]) -> bool:
            original = json.loads(run("result", case["message_id"], env=worker_env).stdout)
            return bool(json.loads(run("result", case["message_id"], env=copy_env).stdout) == original)

        with ThreadPoolExecutor(PROCESSES_AT_ONCE) as pool:
            list(pool.map(export_then_publish, completed))  # re-raises the first failed assertion
        assert run("worker", "--burst", env=copy_env).returncode == 0
        with ThreadPoolExecutor(PROCESSES_AT_ONCE) as pool:
            assert all(pool.map(same_result, completed))

        plain = CASES["plain_text"]
        before = client.xrange(Keyspace().message(plain["message_id"]).events)
        other = write_jsonl(tmp_path / "other.jsonl", CASES["unicode_text"]["events"])
        conflict = run("publish", str(other), "--message-id", plain["message_id"], env=worker_env)
        assert conflict.returncode == 5 and "nothing written" in conflict.stderr
        assert client.xrange(Keyspace().message(plain["message_id"]).events) == before


def publish_stdin(events_jsonl: str, *, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LCSTREAM, "publish", "-"], input=events_jsonl, env=env, capture_output=True, text=True, timeout=60
    )


def test_tail_past_the_end_of_an_ended_message_ends_at_once(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    plain = CASES["plain_text"]
    assert (
        run("publish", str(write_jsonl(tmp_path / "p.jsonl", plain["events"])), env=worker_env).returncode
        == 0
    )
    assert run("worker", "--burst", env=worker_env).returncode == 0
    frames = run("tail", plain["message_id"], "--json", env=worker_env)
    last = len(frames.stdout.splitlines())
    assert frames.returncode == 0 and json.loads(frames.stdout.splitlines()[-1])["kind"] == "output"
    for after in (last, last + 100):
        done = run("tail", plain["message_id"], "--after", str(after), env=worker_env, timeout_s=10)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
