"""The files of deploy/, parsed: Kubernetes objects, the compose file, the Dockerfile, the README.

Shared by the deploy tests, which check them offline (no Docker engine, no cluster).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import dockerfile
import yaml

from lcstream.config.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
README = DEPLOY / "README.md"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
USERS_ACL = K8S / "users.acl"
REDIS_CONF = DEPLOY / "redis.conf"
ABSENT_HEADING = "## Settings deliberately absent from the ConfigMap"
SETTING_NAME = re.compile(r"\bLCSTREAM_[A-Z0-9_]+\b")

Manifest = dict[str, Any]


def setting_names() -> set[str]:
    """`LCSTREAM_<FIELD>` for every field of the settings model."""
    return {f"LCSTREAM_{name.upper()}" for name in Settings.model_fields}


def project() -> dict[str, Any]:
    """The `[project]` table of pyproject.toml."""
    table = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return cast(dict[str, Any], table)


def yaml_documents(path: Path) -> list[Manifest]:
    """Every non-empty document of a YAML file, each a mapping."""
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert all(isinstance(doc, dict) for doc in documents), f"{path}: every document is a mapping"
    return documents


def k8s_manifest_files() -> list[Path]:
    """The Kubernetes manifests of deploy/k8s (not the kustomization)."""
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def k8s_objects() -> list[Manifest]:
    """Every Kubernetes object of deploy/k8s, the Secret template included."""
    return [doc for path in k8s_manifest_files() for doc in yaml_documents(path)]


def k8s_object(kind: str, name: str) -> Manifest:
    """The one object of `kind` named `name`."""
    found = [o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def configmap() -> dict[str, str]:
    """The data of the ConfigMap the Deployments take their environment from."""
    return cast(dict[str, str], k8s_object("ConfigMap", "lcstream")["data"])


def secret() -> dict[str, str]:
    """The Secret template's values."""
    return cast(dict[str, str], k8s_object("Secret", "lcstream-redis")["stringData"])


def container(deployment: Manifest) -> Manifest:
    """The Deployment's one container."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return cast(Manifest, containers[0])


def secret_env_names(deployment: Manifest) -> set[str]:
    """Environment variables of the container that come from a Secret."""
    return {
        e["name"] for e in container(deployment).get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
    }


def container_env(deployment: Manifest) -> dict[str, str]:
    """The environment the container starts with: the image's, then envFrom ConfigMaps, then env."""
    env = image_env()
    maps = {o["metadata"]["name"]: o.get("data", {}) for o in k8s_objects() if o["kind"] == "ConfigMap"}
    secrets = {o["metadata"]["name"]: o.get("stringData", {}) for o in k8s_objects() if o["kind"] == "Secret"}
    spec = container(deployment)
    for source in spec.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]])
    for entry in spec.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def compose() -> Manifest:
    """The compose file."""
    (document,) = yaml_documents(COMPOSE)
    return document


def compose_env(service: str) -> dict[str, str]:
    """A compose service's environment (a mapping, every value a string)."""
    env = compose()["services"][service]["environment"]
    assert isinstance(env, dict) and all(isinstance(v, str) for v in env.values()), service
    return cast(dict[str, str], env)


def compose_env_files(service: str) -> list[Path]:
    """The env files a compose service reads (`env_file`), as paths."""
    value = compose()["services"][service].get("env_file", [])
    entries = [value] if isinstance(value, str | dict) else value
    return [DEPLOY / (e if isinstance(e, str) else e["path"]) for e in entries]


def env_file(path: Path) -> dict[str, str]:
    """The `KEY=VALUE` lines of an env file (comments and blank lines skipped)."""
    pairs = [line.split("=", 1) for line in path.read_text().splitlines() if line.strip()]
    pairs = [pair for pair in pairs if not pair[0].lstrip().startswith("#")]
    assert all(len(pair) == 2 for pair in pairs), f"{path}: KEY=VALUE lines only"
    return {key.strip(): value for key, value in pairs}


def absent_settings() -> dict[str, str]:
    """Setting -> reason, of the README's list of settings deliberately left out."""
    text = README.read_text()
    assert text.count(f"\n{ABSENT_HEADING}\n") == 1, f"deploy/README.md needs one '{ABSENT_HEADING}'"
    section = text.split(f"\n{ABSENT_HEADING}\n", 1)[1].split("\n## ", 1)[0]
    bullets = [line for line in section.splitlines() if line.startswith("- ")]
    entries = [re.fullmatch(r"- `(LCSTREAM_[A-Z0-9_]+)`: (.+)", line) for line in bullets]
    assert all(entries), f"each entry reads '- `LCSTREAM_X`: reason': {bullets}"
    return {m[1]: m[2] for m in entries if m}


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, as BuildKit's parser reads it."""

    cmd: str
    value: tuple[str, ...]
    flags: tuple[str, ...]
    json: bool


def dockerfile_stages() -> list[list[Instruction]]:
    """The Dockerfile's stages, each from its FROM on."""
    stages: list[list[Instruction]] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        instruction = Instruction(
            str(command.cmd).upper(), tuple(command.value), tuple(command.flags), command.json
        )
        if instruction.cmd == "FROM":
            stages.append([])
        assert stages, "the Dockerfile starts with FROM"
        stages[-1].append(instruction)
    return stages


def image_env() -> dict[str, str]:
    """The ENV of the image's final stage."""
    env: dict[str, str] = {}
    for instruction in dockerfile_stages()[-1]:
        if instruction.cmd == "ENV":
            pairs = instruction.value
            env.update(zip(pairs[::2], pairs[1::2], strict=True))
    return env


def image_uid() -> int:
    """The numeric user id the image runs as (its final USER)."""
    users = [i.value[0] for i in dockerfile_stages()[-1] if i.cmd == "USER"]
    assert users, "the final stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), f"USER {users[-1]}: numeric, so Kubernetes' runAsNonRoot can check it"
    return int(uid)


@dataclass(frozen=True)
class RedisUrl:
    """The parts of a redis:// URL that other files repeat."""

    user: str
    password: str
    host: str
    port: int
    db: int

    @classmethod
    def parse(cls, url: str) -> RedisUrl:
        parts = urlsplit(url)
        assert parts.scheme in ("redis", "rediss") and parts.hostname and parts.username, url
        return cls(
            user=unquote(parts.username),
            password=unquote(parts.password or ""),
            host=parts.hostname,
            port=parts.port or 6379,
            db=int(parts.path.lstrip("/") or 0),
        )


def acl_file_users(path: Path = USERS_ACL) -> dict[str, list[str]]:
    """User name -> rules, of an ACL file (`user <name> <rule> ...` per line)."""
    users: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        keyword, name, *rules = line.split()
        assert keyword == "user", f"Redis ACL files hold only 'user' lines (no comments): {line}"
        assert name not in users, f"user {name} twice"
        users[name] = rules
    return users


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity (`500m`, `2`, `1Gi`) as a number."""
    factors = {"m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|k|M|G|Ki|Mi|Gi|)", str(value))
    assert match, f"unexpected quantity {value!r}"
    return float(match[1]) * factors[match[2]]


def duration_s(value: str) -> float:
    """A compose duration (`45s`, `1m30s`) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"unexpected duration {value!r}"
    return sum(float(n) * units[u] for n, u in parts)
