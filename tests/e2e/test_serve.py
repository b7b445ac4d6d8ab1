"""``autoscaler serve`` as a real process: the quickstart, hot reload, bad edits, SIGTERM."""

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
pytestmark = pytest.mark.integration


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
    def __init__(self, config: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "AUTOSCALER_RELOAD__INTERVAL_SECONDS": "0.3"}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "autoscaler.cli",
                "serve",
                "--config",
                str(config),
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _wait_for(lambda: self.get("/readyz").status_code == 200, 20, "readiness")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

    def json(self, path: str) -> Any:
        response = self.get(path)
        response.raise_for_status()
        return response.json()

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=15)
        return self.process.returncode, output


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Path], Server]]:
    servers: list[Server] = []

    def start(config: Path) -> Server:
        server = Server(config)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.process.kill()
            server.process.communicate()


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
    - producer: {{name: plan, metric: replicas}}
      target: {{type: AverageValue, averageValue: 1}}
  behavior:
    scaleDown: {{stabilizationWindowSeconds: 0}}
"""


def _replicas(server: Server) -> tuple[int, int]:
    group = server.json("/api/v1/scalablenodegroups")["items"][0]
    return group["spec"]["replicas"], group["status"].get("replicas", -1)


def test_the_quickstart_resizes_its_node_group_and_explains_why(
    serve: Callable[[Path], Server],
) -> None:
    server = serve(ROOT / "examples" / "quickstart.yaml")
    autoscalers = server.json("/api/v1/horizontalautoscalers")["items"]
    assert [(a["namespace"], a["name"]) for a in autoscalers] == [("default", "workers")]
    _wait_for(lambda: _replicas(server)[0] != 1, 60, "spec.replicas to change")
    decisions = _wait_for(lambda: server.json("/api/v1/decisions")["items"], 10, "a decision")
    assert decisions[0]["autoscaler"] == "default/workers"
    assert decisions[0]["from"] == 1 and decisions[0]["to"] in (2, 5, 6)
    assert any("office-hours/replicas" in reason for reason in decisions[0]["reasons"])
    one = server.json("/api/v1/horizontalautoscalers/default/workers")
    assert one["spec"]["maxReplicas"] == 10
    missing = server.get("/api/v1/horizontalautoscalers/default/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    metrics = server.get("/metrics").text
    assert (
        'autoscaler_signal_value{labels="",namespace="default",producer="office-hours",signal="replicas"}'
        in metrics
    )
    assert "autoscaler_decisions_total" in metrics
    assert server.get("/").status_code == 200
    assert server.get("/openapi.json").json()["info"]["title"] == "Node autoscaler"
    code, output = server.stop()
    assert code == 0
    assert "decision default/workers" in output


def test_an_edited_spec_is_reloaded_and_a_bad_edit_keeps_the_last_good_specs(
    serve: Callable[[Path], Server], tmp_path: Path
) -> None:
    config = tmp_path / "specs.yaml"
    config.write_text(SPEC.format(replicas=3))
    server = serve(config)
    _wait_for(lambda: _replicas(server) == (3, 3), 20, "3 ready nodes")

    config.write_text(SPEC.format(replicas=5))
    _wait_for(lambda: _replicas(server) == (5, 5), 20, "5 ready nodes after an edit")

    config.write_text(SPEC.format(replicas=5).replace("maxReplicas: 10", "maxReplicas: -1"))
    status = _wait_for(
        lambda: (c := server.json("/api/v1/config"))["issues"] and c, 20, "the bad edit reported"
    )
    assert not status["valid"]
    assert status["issues"][0]["path"] == "spec.maxReplicas"
    assert status["issues"][0]["line"] > 0
    time.sleep(1)
    assert server.json("/api/v1/horizontalautoscalers")["items"][0]["spec"]["maxReplicas"] == 10
    assert _replicas(server) == (5, 5)
    assert server.get("/healthz").status_code == 200

    config.write_text(SPEC.format(replicas=2))
    _wait_for(lambda: _replicas(server) == (2, 2), 20, "the fixed spec to apply")
    assert server.json("/api/v1/config")["valid"]
    code, output = server.stop()
    assert code == 0, output
    assert "invalid spec" in output


def test_sigterm_stops_the_service_promptly(
    serve: Callable[[Path], Server], tmp_path: Path
) -> None:
    config = tmp_path / "specs.yaml"
    config.write_text(SPEC.format(replicas=2))
    server = serve(config)
    started = time.monotonic()
    code, _ = server.stop()
    assert code == 0
    assert time.monotonic() - started < 10


def test_the_service_binds_loopback_by_default() -> None:
    from autoscaler.settings import Settings

    assert Settings().server.host == "127.0.0.1"
    assert Settings().server.port == 8080


def test_an_invalid_setting_stops_the_start_with_the_variable_named() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", "serve", "--config", "examples/quickstart.yaml"],
        cwd=ROOT,
        env={**os.environ, "AUTOSCALER_LOOP__WORKERS": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "AUTOSCALER_LOOP__WORKERS" in result.stderr
    assert "Traceback" not in result.stderr
