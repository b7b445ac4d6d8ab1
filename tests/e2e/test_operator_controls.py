"""``autoscaler serve`` as a real process with a token file: pause and resume over HTTP with the
token (the node group stops changing, then follows again), an override, and dry-run mode."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-operator-token-4d2a9c"
pytestmark = pytest.mark.integration

SPEC = """
apiVersion: autoscaler.dev/v1alpha1
kind: ScalableNodeGroup
metadata: {{name: workers}}
spec:
  type: Simulated
  id: workers
  replicas: 1
  simulated: {{provisioningDelaySeconds: 0.5, maxSize: 10}}
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
    - producer: {{name: plan, metric: replicas}}
      target: {{type: AverageValue, averageValue: 1}}
  behavior:
    scaleDown: {{stabilizationWindowSeconds: 0}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Server:
    """``autoscaler serve --config CONFIG`` on a free loopback port, with extra flags and env."""

    def __init__(self, config: Path, *flags: str, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {**os.environ, "AUTOSCALER_RELOAD__INTERVAL_SECONDS": "0.3", **(env or {})}
        command = [sys.executable, "-m", "autoscaler.cli", "serve", "--config", str(config)]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port), *flags],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _wait_for(lambda: httpx.get(self.url + "/readyz").status_code == 200, 20, "readiness")

    def call(self, method: str, path: str, body: Any = None, token: str | None = TOKEN) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, self.url + path, json=body, headers=headers, timeout=5)

    def replicas(self) -> tuple[int, int]:
        group = self.call("GET", "/api/v1/scalablenodegroups").json()["items"][0]
        return group["spec"]["replicas"], group["status"].get("replicas", -1)

    def latest_decision(self) -> dict[str, Any]:
        item: dict[str, Any] = self.call("GET", "/api/v1/decisions?limit=1").json()["items"][0]
        return item

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=15)
        return output


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(config: Path, *flags: str, env: dict[str, str] | None = None) -> Server:
        server = Server(config, *flags, env=env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.process.kill()
            server.process.communicate()


def test_pause_resume_and_override_over_http_with_the_token(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    config = tmp_path / "specs.yaml"
    config.write_text(SPEC.format(replicas=3))
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN},ops\n")
    server = serve(config, env={"AUTOSCALER_SERVER__TOKEN_FILE": str(token_file)})
    _wait_for(lambda: server.replicas() == (3, 3), 20, "3 ready nodes")

    refused = server.call("POST", "/api/v1/horizontalautoscalers/default/workers/pause", token=None)
    assert refused.status_code == 401
    paused = server.call(
        "POST", "/api/v1/horizontalautoscalers/default/workers/pause", {"reason": "e2e"}
    )
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"]["paused"]["by"] == "ops"

    config.write_text(SPEC.format(replicas=5))  # the plan asks for more: a paused group holds
    _wait_for(
        lambda: any("would scale 3 → 5" in r for r in server.latest_decision()["reasons"]),
        20,
        "a paused decision that would scale to 5",
    )
    time.sleep(1.5)
    assert server.replicas() == (3, 3)
    assert server.latest_decision()["limitedBy"] == "paused"

    resumed = server.call("POST", "/api/v1/horizontalautoscalers/default/workers/resume")
    assert resumed.status_code == 200
    _wait_for(lambda: server.replicas() == (5, 5), 20, "5 ready nodes after resume")

    pinned = server.call(
        "PUT",
        "/api/v1/scalablenodegroups/default/workers/override",
        {"replicas": 2, "reason": "e2e override", "durationSeconds": 300},
    )
    assert pinned.status_code == 200, pinned.text
    _wait_for(lambda: server.replicas() == (2, 2), 20, "2 ready nodes under the override")
    time.sleep(1.5)
    assert server.replicas() == (2, 2)
    assert server.latest_decision()["limitedBy"] == "override"

    removed = server.call("DELETE", "/api/v1/scalablenodegroups/default/workers/override")
    assert removed.status_code == 200
    _wait_for(lambda: server.replicas() == (5, 5), 20, "back to 5 after the override")

    output = server.stop()
    assert "ops paused autoscaler default/workers: e2e" in output
    assert "ops resumed autoscaler default/workers" in output
    assert "ops set an override on node group default/workers: 2 replicas" in output
    assert TOKEN not in output


def test_without_a_token_file_the_operator_endpoints_are_disabled(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    config = tmp_path / "specs.yaml"
    config.write_text(SPEC.format(replicas=2))
    server = serve(config)
    response = server.call("POST", "/api/v1/horizontalautoscalers/default/workers/pause")
    assert response.status_code == 403
    assert "AUTOSCALER_SERVER__TOKEN_FILE" in response.json()["detail"]
    assert "pause, resume and override are disabled" in server.stop()


def test_dry_run_records_what_it_would_do_and_leaves_the_node_group_alone(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    config = tmp_path / "specs.yaml"
    config.write_text(SPEC.format(replicas=4))
    server = serve(config, "--dry-run")
    decision = _wait_for(
        lambda: (d := server.latest_decision())["to"] == 4 and d, 20, "a dry-run decision for 4"
    )
    assert decision["limitedBy"] == "dryRun" and decision["from"] == 1
    time.sleep(1.5)
    group = server.call("GET", "/api/v1/scalablenodegroups").json()["items"][0]
    assert group["status"]["dryRun"] is True
    assert group["spec"]["replicas"] == 4  # what it would ask for
    assert group["status"]["desiredReplicas"] == 1  # what the group was left at
    assert group["status"]["replicas"] == 1
    server.stop()
