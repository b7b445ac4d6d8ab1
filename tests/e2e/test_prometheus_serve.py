"""Acceptance: a producer's signal travels through a real Prometheus and drives an autoscaler.

``autoscaler serve`` runs as a process with a schedule MetricsProducer ``plan``, whose signal it
exports on its own ``/metrics`` as ``autoscaler_signal_value{producer="plan",signal="replicas"}``.
A real Prometheus scrapes that endpoint every second, and the autoscaler's only metric is the
prometheus query of that series, with the service setting pointing at this Prometheus. When the
schedule's value is edited, the node group's ``spec.replicas`` follows it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.prometheus_server import PrometheusServer, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
QUERY = 'autoscaler_signal_value{producer="plan",signal="replicas"}'

SPEC = """
apiVersion: autoscaler.dev/v1alpha1
kind: ScalableNodeGroup
metadata: {{name: workers}}
spec:
  type: Simulated
  id: workers
  replicas: 1
  simulated: {{provisioningDelaySeconds: 1}}
---
apiVersion: autoscaler.dev/v1alpha1
kind: MetricsProducer
metadata: {{name: plan}}
spec:
  intervalSeconds: 0.5
  schedule: {{defaultReplicas: {replicas}}}
---
apiVersion: autoscaler.dev/v1alpha1
kind: HorizontalAutoscaler
metadata: {{name: workers}}
spec:
  scaleTargetRef: {{name: workers}}
  minReplicas: 1
  maxReplicas: 10
  metrics:
    - prometheus:
        query: '{query}'
      target: {{type: AverageValue, averageValue: 1}}
  behavior:
    scaleDown: {{stabilizationWindowSeconds: 0}}
"""


class Service:
    """``autoscaler serve`` as a subprocess on a port chosen before it starts."""

    def __init__(self, config: Path, port: int, prometheus_url: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "AUTOSCALER_RELOAD__INTERVAL_SECONDS": "0.3",
            "AUTOSCALER_PROMETHEUS__URL": prometheus_url,
            "AUTOSCALER_PROMETHEUS__INTERVAL_SECONDS": "1",
        }
        command = [sys.executable, "-m", "autoscaler.cli", "serve", "--config", str(config)]
        self.process = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_for(lambda: httpx.get(self.url + "/readyz").status_code == 200, 20, "readiness")
        except AssertionError:
            self.kill()
            raise

    def json(self, path: str) -> Any:
        response = httpx.get(self.url + path, timeout=5)
        response.raise_for_status()
        return response.json()

    def replicas(self) -> int:
        return int(self.json("/api/v1/scalablenodegroups")["items"][0]["spec"]["replicas"])

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=15)
        return self.process.returncode, output

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def test_a_producer_signal_travels_through_prometheus_and_drives_an_autoscaler(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    port = free_port()
    prometheus.scrape(f"127.0.0.1:{port}")
    config = tmp_path / "specs.yaml"
    config.write_text(SPEC.format(replicas=3, query=QUERY))
    service = Service(config, port, prometheus.url)
    try:
        wait_for(lambda: service.replicas() == 3, 60, "spec.replicas to follow the schedule: 3")
        autoscaler = service.json("/api/v1/horizontalautoscalers/default/workers")
        (metric,) = autoscaler["status"]["currentMetrics"]
        assert (metric["name"], metric["value"]) == (f"prometheus:{QUERY}", 3)
        producers = service.json("/api/v1/metricsproducers")["items"]
        assert [p["name"] for p in producers] == ["plan"]  # the implicit producer is not listed

        config.write_text(SPEC.format(replicas=5, query=QUERY))
        wait_for(lambda: service.replicas() == 5, 30, "spec.replicas to follow the schedule: 5")
        config.write_text(SPEC.format(replicas=2, query=QUERY))
        wait_for(lambda: service.replicas() == 2, 30, "spec.replicas to follow the schedule: 2")

        decisions = service.json("/api/v1/decisions")["items"]
        assert [(d["from"], d["to"]) for d in reversed(decisions) if d["from"] != d["to"]] == [
            (1, 3),
            (3, 5),
            (5, 2),
        ]
        assert all(d["metrics"][0]["name"] == f"prometheus:{QUERY}" for d in decisions)
        code, output = service.stop()
        assert code == 0, output
    finally:
        service.kill()
