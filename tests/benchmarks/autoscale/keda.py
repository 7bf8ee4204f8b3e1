"""The ScaledObject of deploy/k8s/keda.yaml, read into the rule's `Spec` with its times compressed.

The simulation runs minutes, not hours, so every period (polling, stabilization
windows, policy periods) is divided by one factor; the thresholds (`lagCount`,
`activationLagCount`, the cpu target) are kept as they are. The replica bounds
are the simulation's own: a 2-core machine runs a handful of workers, not ten.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.benchmarks.autoscale.rule import DEFAULT_SCALE_UP, Policy, Rules, Spec
from tests.benchmarks.processes import REPO_ROOT

KEDA_YAML = REPO_ROOT / "deploy" / "k8s" / "keda.yaml"
HPA_SYNC_S = 15.0  # the HPA controller's sync period: how often it reads KEDA's metrics


@dataclass(frozen=True)
class ScaledObject:
    """The fields of the ScaledObject the simulation mirrors, in real (uncompressed) seconds."""

    streams: tuple[str, ...]
    group: str
    lag_count: int
    activation_lag_count: int
    cpu_target: float
    polling_s: float
    scale_down: Rules

    @classmethod
    def load(cls, path: Path = KEDA_YAML) -> ScaledObject:
        """Read the one ScaledObject of `path` (raises ValueError if its triggers disagree)."""
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        (scaled,) = [d for d in documents if d.get("kind") == "ScaledObject"]
        spec: dict[str, Any] = scaled["spec"]
        triggers = spec["triggers"]
        lag_triggers = [t["metadata"] for t in triggers if t["type"] == "redis-streams"]
        (cpu,) = [t for t in triggers if t["type"] == "cpu"]
        for key in ("consumerGroup", "lagCount", "activationLagCount"):
            if len({m[key] for m in lag_triggers}) != 1:
                raise ValueError(f"{path}: the redis-streams triggers differ in {key}")
        down = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
        policies = tuple(
            Policy(p["type"], int(p["value"]), float(p["periodSeconds"])) for p in down["policies"]
        )
        return cls(
            streams=tuple(m["stream"] for m in lag_triggers),
            group=lag_triggers[0]["consumerGroup"],
            lag_count=int(lag_triggers[0]["lagCount"]),
            activation_lag_count=int(lag_triggers[0]["activationLagCount"]),
            cpu_target=float(cpu["metadata"]["value"]),
            polling_s=float(spec.get("pollingInterval", 30)),
            scale_down=Rules(float(down["stabilizationWindowSeconds"]), policies),
        )


@dataclass(frozen=True)
class Timing:
    """The simulation's periods: each real one divided by `compression` unless given."""

    compression: float
    polling_s: float
    down_window_s: float
    down_period_s: float
    up_period_s: float

    @classmethod
    def compressed(
        cls,
        scaled: ScaledObject,
        compression: float,
        *,
        polling_s: float | None = None,
        down_window_s: float | None = None,
        down_period_s: float | None = None,
    ) -> Timing:
        real_period = scaled.scale_down.policies[0].period_s
        return cls(
            compression=compression,
            polling_s=polling_s or max(scaled.polling_s, HPA_SYNC_S) / compression,
            down_window_s=down_window_s
            if down_window_s is not None
            else scaled.scale_down.window_s / compression,
            down_period_s=down_period_s or real_period / compression,
            up_period_s=DEFAULT_SCALE_UP.policies[0].period_s / compression,
        )

    def spec(self, scaled: ScaledObject, min_replicas: int, max_replicas: int) -> Spec:
        """The rule's spec: keda.yaml's thresholds and policy values on these periods."""
        down = Rules(
            self.down_window_s,
            tuple(Policy(p.kind, p.value, self.down_period_s) for p in scaled.scale_down.policies),
        )
        up = Rules(0.0, tuple(Policy(p.kind, p.value, self.up_period_s) for p in DEFAULT_SCALE_UP.policies))
        return Spec(
            lag_count=scaled.lag_count,
            activation_lag_count=scaled.activation_lag_count,
            cpu_target=scaled.cpu_target,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            scale_down=down,
            scale_up=up,
        )

    def table(self, scaled: ScaledObject) -> list[tuple[str, str, str]]:
        """(what, Kubernetes, simulated) rows for the report."""
        real_period = scaled.scale_down.policies[0].period_s

        def s(x: float) -> str:
            return f"{x:g} s"

        return [
            (
                "metrics polling (KEDA pollingInterval / HPA sync)",
                s(max(scaled.polling_s, HPA_SYNC_S)),
                s(self.polling_s),
            ),
            ("scale-down stabilization window", s(scaled.scale_down.window_s), s(self.down_window_s)),
            ("scale-down policy period", s(real_period), s(self.down_period_s)),
            (
                "scale-up policy period (HPA default)",
                s(DEFAULT_SCALE_UP.policies[0].period_s),
                s(self.up_period_s),
            ),
        ]
