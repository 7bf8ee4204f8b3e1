"""Tests of config/settings.py: defaults, sources and their precedence, validation, redaction."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pydantic
import pytest

from lcstream.config.settings import load_settings, redact_url

PASSWORD = "hunter2"  # noqa: S105 - a made-up secret to look for


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No LCSTREAM_* variable of the machine leaks into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("LCSTREAM_"):
            monkeypatch.delenv(name)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lcstream.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    settings = load_settings()
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.prefix == "lcstream"
    assert settings.partitions == 1
    assert settings.group == "workers"
    assert settings.consumer == f"{socket.gethostname()}-{os.getpid()}"
    assert settings.max_open_messages == 1000
    assert settings.block_ms == 1000
    assert settings.socket_timeout_s == 10.0
    assert settings.retention_s == 86400
    assert settings.max_event_bytes == 1_048_576
    assert settings.max_events_per_message == 100_000
    assert settings.max_json_depth == 32
    assert settings.idle_timeout_s == 300
    assert settings.takeover_after_ms == 30_000
    assert settings.max_deliveries == 5
    assert settings.grace_period_s == 30
    assert settings.log_level == "info"
    assert settings.log_format == "auto"


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LCSTREAM_REDIS_URL", "rediss://cache.internal:6380/2")
    monkeypatch.setenv("LCSTREAM_PREFIX", "acme")
    monkeypatch.setenv("LCSTREAM_PARTITIONS", "16")
    monkeypatch.setenv("LCSTREAM_CONSUMER", "worker-7")
    monkeypatch.setenv("LCSTREAM_MAX_DELIVERIES", "3")
    monkeypatch.setenv("LCSTREAM_GRACE_PERIOD_S", "2.5")
    monkeypatch.setenv("LCSTREAM_LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.redis_url == "rediss://cache.internal:6380/2"
    assert settings.prefix == "acme"
    assert settings.partitions == 16
    assert settings.consumer == "worker-7"
    assert settings.max_deliveries == 3
    assert settings.grace_period_s == 2.5
    assert settings.log_level == "debug"
    assert settings.group == "workers"  # untouched


def test_toml_file_sets_values(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        'redis_url = "redis://db:6379/1"\npartitions = 8\nretention_s = 600\nlog_format = "json"\n',
    )
    settings = load_settings(path)
    assert settings.redis_url == "redis://db:6379/1"
    assert settings.partitions == 8
    assert settings.retention_s == 600
    assert settings.log_format == "json"
    assert settings.prefix == "lcstream"


def test_environment_wins_over_the_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_toml(tmp_path, 'partitions = 8\nprefix = "from-file"\n')
    monkeypatch.setenv("LCSTREAM_PARTITIONS", "4")
    settings = load_settings(path)
    assert settings.partitions == 4
    assert settings.prefix == "from-file"


def test_overrides_win_over_environment_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_toml(tmp_path, 'redis_url = "redis://file:6379/0"\npartitions = 8\n')
    monkeypatch.setenv("LCSTREAM_REDIS_URL", "redis://env:6379/0")
    monkeypatch.setenv("LCSTREAM_PARTITIONS", "4")
    settings = load_settings(path, redis_url="redis://cli:6379/0", partitions=None)
    assert settings.redis_url == "redis://cli:6379/0"
    assert settings.partitions == 4  # a None override means "not given"


def test_lcstream_config_names_the_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_toml(tmp_path, "partitions = 8\n")
    monkeypatch.setenv("LCSTREAM_CONFIG", str(path))
    assert load_settings().partitions == 8


def test_the_file_is_read_only_for_the_call_that_names_it(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "partitions = 8\n")
    assert load_settings(path).partitions == 8
    assert load_settings().partitions == 1


def test_a_missing_config_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.toml"):
        load_settings(tmp_path / "nope.toml")


def test_a_missing_file_named_by_lcstream_config_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Same failure as --config: a mistyped path must not silently fall back to the defaults.
    monkeypatch.setenv("LCSTREAM_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(FileNotFoundError, match=r"nope\.toml"):
        load_settings()


def test_an_unknown_key_in_the_toml_file_is_an_error(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "partitionz = 4\n")
    with pytest.raises(pydantic.ValidationError, match="partitionz"):
        load_settings(path)


def test_an_invalid_value_in_the_environment_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LCSTREAM_PARTITIONS", "many")
    with pytest.raises(pydantic.ValidationError, match="partitions"):
        load_settings()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"partitions": 0}, "partitions"),
        ({"partitions": 16385}, "partitions"),
        ({"redis_url": "http://localhost:6379/0"}, "redis_url"),
        ({"redis_url": "localhost:6379"}, "redis_url"),
        ({"prefix": "lc{0}"}, "prefix"),
        ({"prefix": "a b"}, "prefix"),
        ({"prefix": ""}, "prefix"),
        ({"group": "g*"}, "group"),
        ({"consumer": "x" * 65}, "consumer"),
        ({"block_ms": 10_000, "socket_timeout_s": 10.0}, "block_ms"),
        ({"block_ms": 5_000, "socket_timeout_s": 2.0}, "block_ms"),
        ({"max_event_bytes": 10}, "max_event_bytes"),
        ({"takeover_after_ms": 10}, "takeover_after_ms"),
        ({"max_deliveries": 0}, "max_deliveries"),
        ({"grace_period_s": -1}, "grace_period_s"),
        ({"log_level": "trace"}, "log_level"),
        ({"retention_s": 0}, "retention_s"),
    ],
)
def test_invalid_values_raise_validation_error(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        load_settings(**overrides)


def test_block_ms_just_below_the_socket_timeout_is_fine() -> None:
    settings = load_settings(block_ms=1999, socket_timeout_s=2.0)
    assert settings.block_ms == 1999


def test_unix_and_tls_urls_are_accepted() -> None:
    assert load_settings(redis_url="unix:///run/redis.sock?db=0").redis_url == "unix:///run/redis.sock?db=0"
    assert load_settings(redis_url="rediss://h:6380/0").redis_url == "rediss://h:6380/0"


def test_cluster_urls_are_accepted_and_other_schemes_refused() -> None:
    for url in ("redis+cluster://node-1:7000/0", "rediss+cluster://node-1:7000"):
        assert load_settings(redis_url=url).redis_url == url
    with pytest.raises(pydantic.ValidationError, match="redis\\+cluster://"):
        load_settings(redis_url="cluster://node-1:7000")


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(pydantic.ValidationError):
        settings.partitions = 4


def test_the_password_is_not_in_the_repr() -> None:
    settings = load_settings(redis_url=f"redis://user:{PASSWORD}@redis.internal:6379/0")
    assert settings.redis_url == f"redis://user:{PASSWORD}@redis.internal:6379/0"
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)
    assert "redis://user:***@redis.internal:6379/0" in repr(settings)


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{PASSWORD}@host/0",
        f"ftp://:{PASSWORD}@host:21/0",
        f"redis//:{PASSWORD}@host:6379/0",  # a typo: the scheme's colon is missing
        f"user:{PASSWORD}@host:6379",  # no scheme at all
    ],
    ids=["http", "ftp", "missing-colon", "no-scheme"],
)
def test_the_password_is_not_in_the_validation_error(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        load_settings(redis_url=url)
    text = str(caught.value)
    assert "redis_url" in text
    assert PASSWORD not in text
    assert PASSWORD not in repr(caught.value)

    monkeypatch.setenv("LCSTREAM_REDIS_URL", url)
    with pytest.raises(pydantic.ValidationError) as from_env:
        load_settings()
    assert PASSWORD not in str(from_env.value)


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{PASSWORD}@host:notaport/0",  # a bad port
        f"redis://:{PASSWORD}+/=@host:6379/0",  # base64 secrets carry / + =, unencoded here
        f"redis://user:{PASSWORD}#x@host/0",
        f"redis://:{PASSWORD}?x@host/0",
        f"redis:/:{PASSWORD}@host/0",  # a typo: one slash
    ],
    ids=["bad-port", "slash", "hash", "question-mark", "one-slash"],
)
def test_a_malformed_url_never_shows_its_password(url: str) -> None:
    # Either the settings refuse the URL, or they hold it and never show the password.
    assert PASSWORD not in redact_url(url)
    try:
        shown = repr(load_settings(redis_url=url))
    except pydantic.ValidationError as exc:
        shown = str(exc)
    assert PASSWORD not in shown


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://user@host:6379/0", "redis://user@host:6379/0"),
        (f"redis://user:{PASSWORD}@host:6379/0", "redis://user:***@host:6379/0"),
        (f"redis://:{PASSWORD}@host/0", "redis://:***@host/0"),
        (
            f"rediss://default:{PASSWORD}@cache.example.com:6380/2?ssl_cert_reqs=none",
            "rediss://default:***@cache.example.com:6380/2?ssl_cert_reqs=none",
        ),
        (f"redis://user:p%40ss{PASSWORD}@host:6379/0", "redis://user:***@host:6379/0"),
        (f"unix://:{PASSWORD}@/run/redis.sock?db=1", "unix://:***@/run/redis.sock?db=1"),
        (f"redis://:{PASSWORD}@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted
    assert PASSWORD not in redact_url(url)
