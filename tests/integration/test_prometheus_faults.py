"""A prometheus metric source whose server goes down and comes back (a real Prometheus process,
stopped and started again on the same port): the autoscaler holds its count, asks for
``fallback.replicas`` after ``failureThreshold`` failed queries, and follows the metric again
once the server answers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autoscaler.api import BackendContext, HorizontalAutoscaler, ScalableNodeGroup
from autoscaler.clock import system_clock
from autoscaler.config import SpecSet
from autoscaler.errors import RetryableError
from autoscaler.loop import ControlLoop
from autoscaler.prometheus import create
from autoscaler.settings import PrometheusSettings, Settings
from tests.prometheus_server import MetricsTarget, PrometheusServer, wait_for
from tests.support import Backends

pytestmark = pytest.mark.integration
QUERY = "sum(fallback_jobs)"


def _specs(url: str) -> SpecSet:
    group = ScalableNodeGroup.model_validate(
        {"metadata": {"name": "g"}, "spec": {"type": "Simulated", "id": "g", "replicas": 2}}
    )
    autoscaler = HorizontalAutoscaler.model_validate(
        {
            "metadata": {"name": "a"},
            "spec": {
                "scaleTargetRef": {"name": "g"},
                "minReplicas": 1,
                "maxReplicas": 20,
                "metrics": [
                    {
                        "prometheus": {"query": QUERY, "serverUrl": url},
                        "target": {"type": "AverageValue", "averageValue": 1},
                    }
                ],
                "behavior": {
                    "scaleUp": {"policies": [{"type": "Pods", "value": 100, "periodSeconds": 1}]},
                    "scaleDown": {"stabilizationWindowSeconds": 0},
                },
                "fallback": {"failureThreshold": 3, "replicas": 9},
            },
        }
    )
    return SpecSet(node_groups={"default/g": group}, autoscalers={"default/a": autoscaler})


def _drive(loop: ControlLoop, until: Callable[[], Any], timeout: float, what: str) -> Any:
    def step() -> Any:
        loop.run_once()
        return until()

    return wait_for(step, timeout, what, interval=0.05)


def test_a_prometheus_outage_holds_then_falls_back_then_recovers(
    tmp_path: Path, metrics_target: MetricsTarget
) -> None:
    server = PrometheusServer(tmp_path, [metrics_target.address])
    server.start()
    try:
        metrics_target.set("fallback_jobs", 6)
        server.wait_for_value(QUERY, 6)
        backends = Backends()
        settings = Settings(prometheus=PrometheusSettings(interval_seconds=0.3, timeout_seconds=1))
        loop = ControlLoop(
            system_clock,
            context=BackendContext(clock=system_clock, settings=settings),
            create_provider=backends.create_provider,
            create_query_producer=create,
        )
        loop.apply(_specs(server.url))
        group = backends.providers
        _drive(loop, lambda: group["g"].desired == 6, 20, "a scale-up to 6")

        server.stop()
        metrics_target.set("fallback_jobs", 2)
        (query,) = loop.query_producers.values()
        _drive(loop, lambda: query.consecutive_failures == 2, 10, "two failed queries")
        assert isinstance(query.error, RetryableError)
        assert group["g"].desired == 6  # below the threshold: held, never scaled down
        _drive(loop, lambda: group["g"].desired == 9, 10, "the fallback after three failures")
        (metric,) = loop.autoscaler_view(loop.autoscalers["default/a"])["status"]["currentMetrics"]
        assert metric["reason"] == "Fallback"

        server.start()  # same port and storage
        _drive(loop, lambda: group["g"].desired == 2, 30, "the metric followed again")
        assert query.error is None
    finally:
        server.stop()
