"""Every setting of the model reaches the deployments, or the README says why it doesn't."""

from __future__ import annotations

import os

import pytest

from lcstream.config import load_settings
from tests.deploy.files import (
    DEPLOY,
    DOCKERIGNORE,
    SETTING_NAME,
    absent_settings,
    compose,
    compose_env,
    configmap,
    container_env,
    image_env,
    k8s_object,
    secret_env_names,
    setting_names,
)

DEPLOYMENTS = ("lcstream-worker", "lcstream-gateway")
SERVICES = ("worker", "gateway")


def kubernetes_settings(deployment: str) -> set[str]:
    """Settings a Deployment sets: the ConfigMap's and those it takes from the Secret."""
    return set(configmap()) | secret_env_names(k8s_object("Deployment", deployment))


def test_every_setting_is_wired_or_documented_as_absent() -> None:
    settings = setting_names()
    absent = set(absent_settings())
    wired = kubernetes_settings("lcstream-worker")
    assert not absent - settings, "the README lists settings the model does not have"
    assert not wired & absent, "listed as absent, yet set"
    assert wired | absent == settings, f"neither set nor absent: {sorted(settings - wired - absent)}"
    for service in SERVICES:
        assert set(compose_env(service)) == wired, f"compose {service} and the ConfigMap/Secret differ"
    assert kubernetes_settings("lcstream-gateway") == wired


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


@pytest.mark.parametrize("service", SERVICES)
def test_each_compose_services_environment_passes_the_settings_model(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_only({**image_env(), **compose_env(service)}, monkeypatch)
    assert load_settings().redis_url == "redis://redis:6379/0"


def use_only(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `env` the only LCSTREAM_* variables of this process, for the test."""
    for name in [n for n in os.environ if n.startswith("LCSTREAM_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
