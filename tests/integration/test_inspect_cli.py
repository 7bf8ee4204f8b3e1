"""`lcstream tail`, `replay`, `export` and `stats` against the real redis-server."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis

from tests.conftest import conformance_cases
from tests.integration.processes import LCSTREAM
from tests.integration.test_cli import PROCESSES_AT_ONCE, run, write_jsonl

CASES = {c["name"]: c for c in conformance_cases()}


def publish(case_name: str, env: dict[str, str], tmp_path: Path, *args: str) -> str:
    path = write_jsonl(tmp_path / f"{case_name}.jsonl", CASES[case_name]["events"])
    done = run("publish", str(path), *args, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_export_flush_publish_reproduces_the_identical_outcome(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    case = CASES["parallel_tool_calls"]
    publish("parallel_tool_calls", worker_env, tmp_path)
    assert run("worker", "--burst", env=worker_env).returncode == 0
    original = run("result", case["message_id"], env=worker_env).stdout
    exported = run("export", case["message_id"], env=worker_env)
    assert exported.returncode == 0, exported.stderr
    assert [json.loads(line) for line in exported.stdout.splitlines()] == case["events"]
    archive = tmp_path / "archive.jsonl"
    archive.write_text(exported.stdout)

    with redis.Redis.from_url(worker_env["LCSTREAM_REDIS_URL"]) as client:
        client.flushdb()  # the message is gone from Redis; only the archive is left
    assert run("publish", str(archive), env=worker_env).returncode == 0
    assert run("worker", "--burst", env=worker_env).returncode == 0
    restored = run("result", case["message_id"], env=worker_env)
    assert restored.returncode == 0
    assert restored.stdout == original
    assert json.loads(restored.stdout) == {"status": "completed", "message": case["expected"]["output"]}
    missing = run("export", "never-published", env=worker_env)
    assert (missing.returncode, missing.stdout) == (4, "")


def test_replay_diff_agrees_on_every_conformance_message(worker_env: dict[str, str], tmp_path: Path) -> None:
    with ThreadPoolExecutor(PROCESSES_AT_ONCE) as pool:  # independent processes: the suite's wall time
        list(pool.map(lambda name: publish(name, worker_env, tmp_path), CASES))
    assert run("worker", "--burst", env=worker_env).returncode == 0
    with ThreadPoolExecutor(PROCESSES_AT_ONCE) as pool:
        replays = list(pool.map(lambda case: run("replay", case["message_id"], "--diff", env=worker_env),
                                CASES.values()))  # fmt: skip
    for case, done in zip(CASES.values(), replays, strict=True):
        assert done.returncode == 0, (case["name"], done.stdout, done.stderr)


def test_replay_rebuilds_offline_and_diff_catches_a_changed_outcome(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    case = CASES["reasoning_then_text"]
    publish("reasoning_then_text", worker_env, tmp_path)
    assert run("worker", "--burst", env=worker_env).returncode == 0
    shown = run("replay", case["message_id"], env={**worker_env, "COLUMNS": "400"})
    assert shown.returncode == 0, shown.stderr
    assert case["expected"]["text"] in shown.stdout
    assert case["expected"]["reasoning"] in shown.stdout
    same = run("replay", case["message_id"], "--diff", env=worker_env)
    assert same.returncode == 0 and "equals the stored one" in same.stdout

    tampered = dict(case["expected"]["output"])
    tampered["data"] = {**tampered["data"], "usage_metadata": None}
    with redis.Redis.from_url(worker_env["LCSTREAM_REDIS_URL"]) as client:
        key = f"lcstream:{{0}}:{case['message_id']}:result"
        client.set(key, json.dumps({"status": "completed", "message": tampered}), keepttl=True)
    different = run("replay", case["message_id"], "--diff", env=worker_env)
    assert different.returncode == 1
    assert "--- stored R(M)" in different.stdout and "usage_metadata" in different.stdout


def test_tail_follows_a_message_to_its_outcome(worker_env: dict[str, str], tmp_path: Path) -> None:
    ok, bad = CASES["single_tool_call"], CASES["error_mid_stream"]
    env = {**worker_env, "COLUMNS": "400"}
    tails = {}
    for name in ("single_tool_call", "error_mid_stream"):
        command = [LCSTREAM, "tail", CASES[name]["message_id"]]
        tails[name] = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    for name in tails:
        publish(name, worker_env, tmp_path)
    assert run("worker", "--burst", env=worker_env).returncode == 0
    out, errors = tails["single_tool_call"].communicate(timeout=30)
    assert tails["single_tool_call"].returncode == 0, errors
    assert ok["expected"]["text"] in out and "-> get_weather" in out
    assert '{"city": "Paris", "unit": "C"}' in out and "completed" in out
    out, _ = tails["error_mid_stream"].communicate(timeout=30)
    assert tails["error_mid_stream"].returncode == 1
    assert "failed (overloaded): provider overloaded" in out
    assert bad["expected"]["text_deltas"][1] in out


def test_stats_reports_lag_pending_and_dead_letters(worker_env: dict[str, str], tmp_path: Path) -> None:
    publish("plain_text", worker_env, tmp_path)
    assert (
        run("worker", "--burst", env={**worker_env, "LCSTREAM_MAX_EVENTS_PER_MESSAGE": "5"}).returncode == 0
    )
    publish("unicode_text", worker_env, tmp_path)
    publish("single_tool_call", worker_env, tmp_path)
    done = run("stats", "--json", "--sample-s", "0.2", env=worker_env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["lag"], report["open_messages"], report["dead_letters"]) == (2, 0, 1)
    assert report["partitions"][0]["claimed_per_s"] == 0.0
    table = run("stats", "--sample-s", "0", env={**worker_env, "COLUMNS": "200"})
    assert "group workers: 0 open, lag 2" in table.stdout
