"""Every setting of the model reaches the deployments, or the README says why it doesn't; the gateway
alone gets its two credentials, from a Secret (Kubernetes) or an env file git ignores (compose)."""

from __future__ import annotations

import os

import pytest

from lcstream.config import Settings, load_settings
from lcstream.worker.gateway.auth import exposure_problem
from tests.deploy.files import (
    DEPLOY,
    DOCKERIGNORE,
    REPO,
    SETTING_NAME,
    absent_settings,
    compose,
    compose_env,
    compose_env_files,
    configmap,
    container,
    container_env,
    env_file,
    image_env,
    k8s_object,
    secret_env_names,
    setting_names,
)

DEPLOYMENTS = ("lcstream-worker", "lcstream-gateway")
SERVICES = ("worker", "gateway")
GATEWAY_SECRETS = {"LCSTREAM_GATEWAY_OPERATOR_TOKEN", "LCSTREAM_GATEWAY_TOKEN_KEYS"}
GATEWAY_SECRET = "lcstream-gateway"  # noqa: S105 - the name of a Kubernetes Secret, not a secret
LISTEN = "0.0.0.0"  # noqa: S104 - what both deployments pass to `serve --host`, inside the container


def kubernetes_settings(deployment: str) -> set[str]:
    """Settings a Deployment sets: the ConfigMap's and those it takes from Secrets."""
    return set(configmap()) | secret_env_names(k8s_object("Deployment", deployment))


def gateway_env_example() -> dict[str, str]:
    """The committed template of the compose gateway's env file (the file itself is git-ignored)."""
    (path,) = compose_env_files("gateway")
    assert path.name == "gateway.env"
    return env_file(path.with_name(f"{path.name}.example"))


def test_every_setting_is_wired_or_documented_as_absent() -> None:
    settings = setting_names()
    absent = set(absent_settings())
    wired = kubernetes_settings("lcstream-worker")
    gateway = kubernetes_settings("lcstream-gateway")
    assert not absent - settings, "the README lists settings the model does not have"
    assert not wired & GATEWAY_SECRETS, "workers need no gateway credential"
    assert gateway == wired | GATEWAY_SECRETS, "the gateway: the workers' settings and its credentials"
    assert not gateway & absent, "listed as absent, yet set"
    assert gateway | absent == settings, f"neither set nor absent: {sorted(settings - gateway - absent)}"
    for service in SERVICES:
        assert set(compose_env(service)) == wired, f"compose {service} and the ConfigMap/Secret differ"
    assert compose_env_files("worker") == []
    assert set(gateway_env_example()) == GATEWAY_SECRETS


def test_the_gateway_credentials_come_from_their_own_secret_or_an_ignored_file() -> None:
    values = k8s_object("Secret", GATEWAY_SECRET)["stringData"]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container(k8s_object("Deployment", "lcstream-gateway"))["env"]
        if e["name"] in GATEWAY_SECRETS
    }
    assert set(refs) == GATEWAY_SECRETS
    for name, ref in refs.items():
        assert ref["name"] == GATEWAY_SECRET and ref["key"] in values, name
    assert set(values) == {ref["key"] for ref in refs.values()}, "the Secret holds these and nothing else"
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "deploy/gateway.env" in ignored, "real credentials must not be committed"


def test_absent_settings_say_why() -> None:
    for name, reason in absent_settings().items():
        assert len(reason.split()) >= 5, f"{name}: give the reason"


def test_every_lcstream_name_in_deploy_is_a_setting() -> None:
    settings = setting_names()
    files = [p for p in DEPLOY.rglob("*") if p.is_file()] + [DOCKERIGNORE]
    used = {(name, p.name) for p in files for name in SETTING_NAME.findall(p.read_text())}
    assert {name for name, _ in used} >= {"LCSTREAM_PARTITIONS", "LCSTREAM_GRACE_PERIOD_S"}  # it sees them
    unknown = sorted((name, file) for name, file in used if name not in settings)
    assert not unknown, f"not settings of config/settings.py: {unknown}"


def test_compose_and_kubernetes_give_the_same_values() -> None:
    data = configmap()
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values are strings"
    for service in SERVICES:
        env = compose_env(service)
        assert {k: v for k, v in env.items() if k in data} == data, service
    assert compose()["services"]["worker"]["environment"] == compose()["services"]["gateway"]["environment"]


def test_the_images_defaults_agree_with_the_configmap() -> None:
    defaults = {k: v for k, v in image_env().items() if k.startswith("LCSTREAM_")}
    assert defaults, "the image sets container defaults (JSON logs, metrics on 0.0.0.0)"
    assert {k: configmap()[k] for k in defaults} == defaults


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_each_deployments_environment_passes_the_settings_model(
    deployment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = container_env(k8s_object("Deployment", deployment))
    use_only(env, monkeypatch)
    settings = load_settings()
    assert settings.metrics_port == int(configmap()["LCSTREAM_METRICS_PORT"])
    assert settings.partitions == int(configmap()["LCSTREAM_PARTITIONS"])
    assert settings.gateway_cors_origins == []
    if deployment == "lcstream-gateway":
        assert_the_gateway_starts(settings)


@pytest.mark.parametrize("service", SERVICES)
def test_each_compose_services_environment_passes_the_settings_model(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = gateway_env_example() if service == "gateway" else {}
    use_only({**image_env(), **credentials, **compose_env(service)}, monkeypatch)  # environment wins
    settings = load_settings()
    assert settings.redis_url == "redis://redis:6379/0"
    if service == "gateway":
        assert_the_gateway_starts(settings)


def assert_the_gateway_starts(settings: Settings) -> None:
    """`serve --host 0.0.0.0` accepts these settings: both credentials set, and demanded."""
    assert settings.gateway_operator_token is not None and settings.gateway_token_keys
    assert settings.gateway_auth == "auto"
    assert exposure_problem(settings, LISTEN) is None


def use_only(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `env` the only LCSTREAM_* variables of this process, for the test."""
    for name in [n for n in os.environ if n.startswith("LCSTREAM_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
