"""deploy/k8s: schema-valid objects that agree with the settings, the image and each other."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest

from lcstream.streams.keys import Keyspace
from lcstream.worker.cli.serve import GRACEFUL_SHUTDOWN_S
from tests.deploy.files import (
    K8S,
    README,
    Manifest,
    RedisUrl,
    compose,
    configmap,
    container,
    image_uid,
    k8s_manifest_files,
    k8s_object,
    k8s_objects,
    project,
    quantity,
    secret,
    setting_names,
    yaml_documents,
)

# The oldest Kubernetes the manifests are for (PodDisruptionBudget's unhealthyPodEvictionPolicy is
# on by default from 1.27) and the newest whose schemas kubernetes-validate bundles here.
KUBERNETES_VERSIONS = ("1.27", "1.37")
KEDA_API = "keda.sh/v1alpha1"
# Time a worker needs past its grace period: a blocking read in flight, closing connections, exit.
SHUTDOWN_MARGIN_S = 5
SCALED_OBJECT_FIELDS = {
    "scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount",
    "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers",
}  # fmt: skip
# Where LCSTREAM_TLS_* point (deploy/README.md, TLS): a Secret the pods mount whether or not it exists.
TLS_VOLUME = {"secretName": "lcstream-redis-tls", "optional": True, "defaultMode": 0o440}
TRIGGER_FIELDS = {"type", "name", "metadata", "metricType", "authenticationRef", "useCachedMetrics"}


def deployment(name: str) -> Manifest:
    return k8s_object("Deployment", name)


def pod_spec(name: str) -> Manifest:
    spec: Manifest = deployment(name)["spec"]["template"]["spec"]
    return spec


def port_number(spec: Manifest, port: int | str) -> int:
    """A probe's or Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in spec.get("ports", []) if p.get("name") == port]
    assert isinstance(number, int)
    return number


def grace_period_s() -> float:
    return float(configmap()["LCSTREAM_GRACE_PERIOD_S"])


def gateway_port() -> int:
    args = container(deployment("lcstream-gateway"))["args"]
    assert args[0] == "serve" and args[args.index("--host") + 1] == "0.0.0.0"  # noqa: S104 - in a pod
    return int(args[args.index("--port") + 1])


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_kubernetes_object_is_valid_against_the_bundled_schemas(version: str) -> None:
    objects = k8s_objects()
    core = [o for o in objects if o["apiVersion"] != KEDA_API]
    assert {o["kind"] for o in core} >= {"ConfigMap", "Secret", "Deployment", "PodDisruptionBudget"}
    for manifest in core:  # strict: a misspelt or misplaced field is an error, not ignored
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{manifest['kind']} {manifest['metadata']['name']}: {where}: {exc.message}")
    keda = {o["kind"] for o in objects if o["apiVersion"] == KEDA_API}
    assert keda == {"ScaledObject", "TriggerAuthentication"}


def test_the_validator_refuses_a_misplaced_field() -> None:
    broken = deployment("lcstream-worker")
    broken["spec"]["template"]["spec"]["containers"][0]["terminationGracePeriodSeconds"] = 45
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_keda_objects_have_the_fields_keda_reads() -> None:
    """KEDA's CRD schemas are not bundled anywhere offline: its required fields, checked by hand."""
    scaled = k8s_object("ScaledObject", "lcstream-worker")
    spec = scaled["spec"]
    assert set(spec) <= SCALED_OBJECT_FIELDS, f"unknown fields {set(spec) - SCALED_OBJECT_FIELDS}"
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "lcstream-worker"}
    assert spec["scaleTargetRef"] == target
    assert 2 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], "a drain or rollout leaves a worker"
    for trigger in spec["triggers"]:
        assert set(trigger) <= TRIGGER_FIELDS and isinstance(trigger["type"], str)
        metadata = trigger["metadata"]
        assert all(isinstance(v, str) for v in metadata.values()), f"strings only: {metadata}"
    auth = k8s_object("TriggerAuthentication", "lcstream-redis")
    assert set(auth["spec"]) == {"secretTargetRef"}
    for ref in auth["spec"]["secretTargetRef"]:
        assert set(ref) == {"parameter", "name", "key"}, ref


def test_keda_watches_every_dispatch_stream_of_the_group() -> None:
    data = configmap()
    keyspace = Keyspace(data["LCSTREAM_PREFIX"], int(data["LCSTREAM_PARTITIONS"]))
    triggers = k8s_object("ScaledObject", "lcstream-worker")["spec"]["triggers"]
    streams = [t for t in triggers if t["type"] == "redis-streams"]
    assert [t["metadata"]["stream"] for t in streams] == keyspace.all_dispatch()
    reader = RedisUrl.parse(secret()["reader-url"])
    for trigger in streams:
        metadata = trigger["metadata"]
        assert metadata["consumerGroup"] == data["LCSTREAM_GROUP"]
        assert int(metadata["lagCount"]) >= 1 and int(metadata["activationLagCount"]) >= 1  # on lag, not PEL
        assert not {"pendingEntriesCount", "streamLength"} & set(metadata)
        assert metadata["address"] == f"{reader.host}:{reader.port}", "the Redis of the Secret's URLs"
        assert int(metadata["databaseIndex"]) == reader.db
        assert trigger["authenticationRef"] == {"name": "lcstream-redis"}


def test_keda_authenticates_as_the_secrets_reader() -> None:
    values = secret()
    auth = k8s_object("TriggerAuthentication", "lcstream-redis")
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    assert set(refs) == {"username", "password"}
    assert {r["name"] for r in refs.values()} == {"lcstream-redis"}
    reader = RedisUrl.parse(values["reader-url"])
    assert values[refs["username"]["key"]] == reader.user
    assert values[refs["password"]["key"]] == reader.password


def test_busy_workers_are_kept_by_a_cpu_trigger_on_their_requests() -> None:
    triggers = k8s_object("ScaledObject", "lcstream-worker")["spec"]["triggers"]
    (cpu,) = [t for t in triggers if t["type"] == "cpu"]
    assert cpu["metricType"] == "Utilization" and 0 < int(cpu["metadata"]["value"]) <= 100
    assert quantity(container(deployment("lcstream-worker"))["resources"]["requests"]["cpu"]) > 0


def test_pods_outlive_their_grace_period() -> None:
    worker = pod_spec("lcstream-worker")["terminationGracePeriodSeconds"]
    assert worker >= grace_period_s() + SHUTDOWN_MARGIN_S, "the kubelet would SIGKILL a draining worker"
    pre_stop = container(deployment("lcstream-gateway"))["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    gateway = pod_spec("lcstream-gateway")["terminationGracePeriodSeconds"]
    assert gateway > int(pre_stop[1]) + GRACEFUL_SHUTDOWN_S, "open requests get GRACEFUL_SHUTDOWN_S"


def test_worker_probes_and_scrapes_use_the_metrics_port() -> None:
    metrics_port = int(configmap()["LCSTREAM_METRICS_PORT"])
    spec = container(deployment("lcstream-worker"))
    assert spec["args"] == ["worker"]
    assert [p["containerPort"] for p in spec["ports"]] == [metrics_port]
    assert [p["name"] for p in spec["ports"]] == ["metrics"]
    paths = {"startupProbe": "/livez", "livenessProbe": "/livez", "readinessProbe": "/readyz"}
    for probe, path in paths.items():
        check = spec[probe]["httpGet"]
        assert (check["path"], port_number(spec, check["port"])) == (path, metrics_port), probe
    annotations = deployment("lcstream-worker")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(metrics_port)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_gateway_probes_serve_and_expose_one_port() -> None:
    port = gateway_port()
    spec = container(deployment("lcstream-gateway"))
    assert [p["containerPort"] for p in spec["ports"]] == [port]
    assert spec["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert port_number(spec, spec["readinessProbe"]["httpGet"]["port"]) == port
    assert port_number(spec, spec["livenessProbe"]["tcpSocket"]["port"]) == port  # not /healthz: Redis-bound
    annotations = deployment("lcstream-gateway")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    service = k8s_object("Service", "lcstream-gateway")
    assert [port_number(spec, p["targetPort"]) for p in service["spec"]["ports"]] == [port]


def test_selectors_pick_their_own_pods_only() -> None:
    names = ("lcstream-worker", "lcstream-gateway")
    labels = {name: deployment(name)["spec"]["template"]["metadata"]["labels"] for name in names}

    def picks(selector: dict[str, str]) -> set[str]:
        return {name for name, pod in labels.items() if selector.items() <= pod.items()}

    for name in names:
        assert picks(deployment(name)["spec"]["selector"]["matchLabels"]) == {name}
        budget = k8s_object("PodDisruptionBudget", name)
        assert picks(budget["spec"]["selector"]["matchLabels"]) == {name}
    assert picks(k8s_object("Service", "lcstream-gateway")["spec"]["selector"]) == {"lcstream-gateway"}


def test_worker_disruptions_take_one_pod_at_a_time() -> None:
    budget = k8s_object("PodDisruptionBudget", "lcstream-worker")["spec"]
    assert budget["maxUnavailable"] == 1
    assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow", "a Redis outage must not block node drains"
    assert deployment("lcstream-worker")["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("name", ["lcstream-worker", "lcstream-gateway"])
def test_pods_run_locked_down(name: str) -> None:
    pod = pod_spec(name)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == image_uid() != 0
    assert pod["enableServiceLinks"] is False, "Service links put <SERVICE>_PORT variables into LCSTREAM_*"
    assert pod["automountServiceAccountToken"] is False
    spec = container(deployment(name))
    context = spec["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (tmp,) = [m for m in spec["volumeMounts"] if m["mountPath"] == "/tmp"]  # noqa: S108 - the pod's own
    assert "emptyDir" in volumes[tmp["name"]], "a writable /tmp on a read-only root"


@pytest.mark.parametrize("name", ["lcstream-worker", "lcstream-gateway"])
def test_containers_request_and_limit_cpu_and_memory(name: str) -> None:
    resources = container(deployment(name))["resources"]
    for kind in ("cpu", "memory"):
        assert quantity(resources["requests"][kind]) <= quantity(resources["limits"][kind]), kind


def test_one_image_everywhere_tagged_with_the_project_version() -> None:
    images = {container(o)["image"] for o in k8s_objects() if o["kind"] == "Deployment"}
    images |= {s["image"] for name, s in compose()["services"].items() if name != "redis"}
    assert images == {f"lcstream:{project()['version']}"}


def test_tls_files_come_from_the_optional_secret_volume() -> None:
    documented = dict(re.findall(r"^\s+(LCSTREAM_TLS_[A-Z_]+): (\S+)$", README.read_text(), re.MULTILINE))
    assert set(documented) == {n for n in setting_names() if n.startswith("LCSTREAM_TLS_")}
    for name in ("lcstream-worker", "lcstream-gateway"):
        volumes = {v["name"]: v for v in pod_spec(name)["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container(deployment(name))["volumeMounts"]}
        for path in documented.values():
            directory, _, _ = path.rpartition("/")
            assert mounts[directory]["secret"] == TLS_VOLUME, name


def test_services_inject_no_setting_into_pods_with_service_links() -> None:
    """A Service S puts S_SERVICE_HOST, S_PORT, ... into every pod of its namespace that keeps
    service links (your producers', say): none of those names may be a setting."""
    settings = setting_names()
    for service in (o for o in k8s_objects() if o["kind"] == "Service"):
        base = service["metadata"]["name"].upper().replace("-", "_")
        names = {f"{base}_SERVICE_HOST", f"{base}_SERVICE_PORT", f"{base}_PORT"}
        for port in service["spec"]["ports"]:
            proto = port.get("protocol", "TCP")
            names.add(f"{base}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}")
            prefix = f"{base}_PORT_{port['port']}_{proto}"
            names |= {prefix, f"{prefix}_PROTO", f"{prefix}_PORT", f"{prefix}_ADDR"}
        assert not names & settings, f"Service {service['metadata']['name']} would set {names & settings}"


def test_secret_references_resolve() -> None:
    values = secret()
    secrets = {o["metadata"]["name"]: o["stringData"] for o in k8s_objects() if o["kind"] == "Secret"}
    for name in ("lcstream-worker", "lcstream-gateway"):
        for entry in container(deployment(name)).get("env", []):
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["key"] in secrets.get(ref["name"], {}), entry
        for source in container(deployment(name))["envFrom"]:
            k8s_object("ConfigMap", source["configMapRef"]["name"])
    for ref in k8s_object("TriggerAuthentication", "lcstream-redis")["spec"]["secretTargetRef"]:
        assert ref["name"] == "lcstream-redis" and ref["key"] in values, ref


def test_kustomization_applies_every_manifest_but_the_secret_template() -> None:
    (kustomization,) = yaml_documents(K8S / "kustomization.yaml")
    resources: list[Any] = kustomization["resources"]
    assert sorted(resources) == sorted(p.name for p in k8s_manifest_files() if p.name != "secret.yaml")
    assert len(set(resources)) == len(resources)
