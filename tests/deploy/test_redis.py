"""deploy/redis.conf and deploy/k8s/users.acl: durable, and exactly the ACL users of docs/security.md."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest
import redis

from lcstream.streams.keys import Keyspace
from tests.conftest import start_redis_server, stop_redis_server
from tests.deploy.files import (
    REDIS_CONF,
    USERS_ACL,
    RedisUrl,
    acl_file_users,
    configmap,
    container,
    k8s_object,
    secret,
)
from tests.integration.test_acl import documented_users

PLACEHOLDER = re.compile(r"^><([a-z]+-password)>$")


def redis_conf() -> dict[str, str]:
    """Directive -> value of redis.conf (comments and blank lines left out)."""
    lines = (line.strip() for line in REDIS_CONF.read_text().splitlines())
    pairs = (line.split(None, 1) for line in lines if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def test_redis_keeps_acknowledged_writes_and_never_evicts() -> None:
    conf = redis_conf()
    wanted = {"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"}
    assert {key: conf.get(key) for key in wanted} == wanted


def test_acl_file_holds_the_documented_lines_and_an_administrator_with_a_password() -> None:
    users = acl_file_users()
    documented = documented_users()
    assert set(users) == {"default", *documented}, "the three users of docs/security.md, and default"
    assert {name: rules for name, rules in users.items() if name != "default"} == documented
    admin = users["default"]
    assert "nopass" not in admin and [r for r in admin if r.startswith(">")] == ["><admin-password>"], (
        "a file that leaves `default` out keeps it passwordless with every right"
    )


def test_each_part_logs_in_as_its_documented_user() -> None:
    users = acl_file_users()
    urls = {"lcstream-worker": "worker-url", "lcstream-gateway": "reader-url"}
    roles = {"worker-url": "lcstream-worker", "reader-url": "lcstream-reader"}
    for deployment, key in urls.items():
        env = container(k8s_object("Deployment", deployment))["env"]
        (entry,) = [e for e in env if e["name"] == "LCSTREAM_REDIS_URL"]
        assert entry["valueFrom"]["secretKeyRef"] == {"name": "lcstream-redis", "key": key}
    for key, user in roles.items():
        url = RedisUrl.parse(secret()[key])
        assert url.user == user and f">{url.password}" in users[user], f"{key}: {user} with its placeholder"


def loadable_acl_file(directory: Path) -> tuple[Path, dict[str, str]]:
    """users.acl with a fresh password per placeholder (the administrator's line made `nopass`, so
    the fixture's PING needs no login); placeholder -> password."""
    passwords: dict[str, str] = {}
    lines = []
    for line in USERS_ACL.read_text().splitlines():
        rules = line.split()
        for i, rule in enumerate(rules):
            if match := PLACEHOLDER.fullmatch(rule):
                if match[1] == "admin-password":
                    rules[i] = "nopass"
                else:
                    passwords[f"<{match[1]}>"] = passwords.get(f"<{match[1]}>") or secrets.token_hex(16)
                    rules[i] = f">{passwords[f'<{match[1]}>']}"
        lines.append(" ".join(rules))
    path = directory / "users.acl"
    path.write_text("\n".join(lines) + "\n")
    return path, passwords


def granted(admin: redis.Redis, user: str) -> dict[str, object]:
    """ACL GETUSER, each list as a set (redis-py lists a user's commands in no fixed order)."""
    info = admin.acl_getuser(user)
    assert isinstance(info, dict), f"no user {user}"
    return {key: frozenset(v) if isinstance(v, list) else v for key, v in info.items()}


@pytest.mark.redis
def test_redis_loads_the_file_as_the_documented_lines_and_keda_reads_the_lag(tmp_path: Path) -> None:
    acl_file, passwords = loadable_acl_file(tmp_path)
    server = start_redis_server(tmp_path, "--aclfile", str(acl_file))
    try:
        with redis.Redis(port=server.port, decode_responses=True) as admin:
            for user, rules in documented_users().items():
                loaded = granted(admin, user)
                rules = [f">{passwords[r[1:]]}" if PLACEHOLDER.fullmatch(r) else r for r in rules]
                assert admin.execute_command("ACL", "SETUSER", user, *rules) in ("OK", True)
                assert granted(admin, user) == loaded, f"{user}: the file grants what the page's line grants"
            data = configmap()
            streams = Keyspace(data["LCSTREAM_PREFIX"], int(data["LCSTREAM_PARTITIONS"])).all_dispatch()
            for stream in streams:
                admin.xgroup_create(stream, data["LCSTREAM_GROUP"], id="0", mkstream=True)
                admin.xadd(stream, {"m": "lc_run--1"})
        values = secret()
        username, password = values["reader-username"], passwords[values["reader-password"]]
        with redis.Redis(
            port=server.port, username=username, password=password, decode_responses=True
        ) as keda:
            for stream in streams:  # what KEDA's redis-streams scaler issues for lagCount
                lags = [(g["name"], g["lag"]) for g in keda.xinfo_groups(stream)]
                assert lags == [(data["LCSTREAM_GROUP"], 1)], stream
    finally:
        stop_redis_server(server)
