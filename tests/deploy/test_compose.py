"""deploy/compose.yaml: valid against the compose-spec schema, and wired as the deployment needs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.deploy.files import COMPOSE, DEPLOY, REDIS_CONF, compose, compose_env, configmap, duration_s

SHUTDOWN_MARGIN_S = 5


def check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema against the compose-spec schema it bundles (no download)."""
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_compose_file_is_valid_against_the_compose_spec(tmp_path: Path) -> None:
    result = check_compose_schema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    document = compose()
    document["services"]["worker"]["stop_grace"] = document["services"]["worker"].pop("stop_grace_period")
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(document))
    assert check_compose_schema(broken).returncode == 1, "the schema check must see a misspelt key"


def test_services_and_their_commands() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "worker", "gateway"}
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    gateway = services["gateway"]["command"]
    assert gateway[:3] == ["serve", "--host", "0.0.0.0"]  # noqa: S104 - inside the container
    port = gateway[gateway.index("--port") + 1]
    assert services["gateway"]["ports"] == [f"{port}:{port}"]
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(services["gateway"]["healthcheck"]["test"])


def test_worker_replicas_get_distinct_consumer_names() -> None:
    worker = compose()["services"]["worker"]
    assert not {"container_name", "hostname"} & set(worker), "replicas would share one consumer name"
    assert "LCSTREAM_CONSUMER" not in compose_env("worker")


def test_workers_are_checked_with_lcstream_health() -> None:
    worker = compose()["services"]["worker"]
    assert worker["healthcheck"]["test"] == ["CMD", "lcstream", "health"]
    assert compose_env("worker")["LCSTREAM_METRICS_PORT"] != "0", "lcstream health asks that port"


def test_services_outlive_their_grace_period() -> None:
    services = compose()["services"]
    grace_s = float(compose_env("worker")["LCSTREAM_GRACE_PERIOD_S"])
    assert duration_s(services["worker"]["stop_grace_period"]) >= grace_s + SHUTDOWN_MARGIN_S
    assert services["worker"]["stop_signal"] == "SIGTERM"
    assert duration_s(services["gateway"]["stop_grace_period"]) > 5, "uvicorn's graceful shutdown"


def test_apps_wait_for_a_healthy_redis_at_the_url_they_use() -> None:
    services = compose()["services"]
    assert services["redis"]["healthcheck"]["test"]
    for name in ("worker", "gateway"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert compose_env(name)["LCSTREAM_REDIS_URL"].startswith("redis://redis:6379/")
    assert compose_env("worker")["LCSTREAM_PARTITIONS"] == configmap()["LCSTREAM_PARTITIONS"]


def test_redis_runs_with_the_durable_config() -> None:
    redis = compose()["services"]["redis"]
    assert re.fullmatch(r"redis:7\.\d+\.\d+(-\w+)?", redis["image"]), "Redis 7 or later, pinned"
    (config_path,) = [a for a in redis["command"] if a.endswith(".conf")]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in redis["volumes"]}
    assert (DEPLOY / mounts[config_path]).resolve() == REDIS_CONF


def test_the_build_points_at_the_dockerfile_from_the_repository_root() -> None:
    for name in ("worker", "gateway"):
        build = compose()["services"][name]["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert context == DEPLOY.parent and (context / build["dockerfile"]).is_file()
