"""``autoscaler serve --state-file``: a process killed with SIGKILL mid-loop and started again
keeps the scale-down window it was in; the window is measured from before the kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.prometheus_server import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

SPEC = """
apiVersion: autoscaler.dev/v1alpha1
kind: ScalableNodeGroup
metadata: {{name: workers}}
spec:
  type: Simulated
  id: workers
  replicas: 1
  simulated: {{provisioningDelaySeconds: 0.5}}
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
    scaleUp:
      policies: [{{type: Pods, value: 10, periodSeconds: 15}}]
    scaleDown:
      stabilizationWindowSeconds: 300
"""


class Server:
    """``autoscaler serve --config C --state-file S`` as a process."""

    def __init__(self, config: Path, state: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        env = {**os.environ, "AUTOSCALER_RELOAD__INTERVAL_SECONDS": "0.3"}
        command = [sys.executable, "-m", "autoscaler.cli", "serve", "--config", str(config)]
        self.process = subprocess.Popen(
            [*command, "--state-file", str(state), "--port", self.url.rsplit(":", 1)[1]],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for(lambda: self.get("/readyz").status_code == 200, 20, "readiness")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

    def json(self, path: str) -> Any:
        response = self.get(path)
        response.raise_for_status()
        return response.json()

    def replicas(self) -> tuple[int, int]:
        group = self.json("/api/v1/scalablenodegroups")["items"][0]
        return group["spec"]["replicas"], group["status"].get("replicas", -1)

    def kill(self) -> str:
        self.process.send_signal(signal.SIGKILL)
        output, _ = self.process.communicate(timeout=10)
        return output


@pytest.fixture
def serve() -> Iterator[Callable[[Path, Path], Server]]:
    servers: list[Server] = []

    def start(config: Path, state: Path) -> Server:
        servers.append(Server(config, state))
        return servers[-1]

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.process.kill()
            server.process.communicate()


def _saved_recommendations(state: Path) -> list[int]:
    try:
        document = json.loads(state.read_text())
    except (OSError, ValueError):
        return []
    return [r["replicas"] for r in document["autoscalers"]["default/workers"]["recommendations"]]


def _shift(state: Path, seconds: float) -> None:
    """Move every time in the state file ``seconds`` into the past, as if the kill had
    happened that long ago."""

    def earlier(text: str) -> str:
        return (datetime.fromisoformat(text) - timedelta(seconds=seconds)).isoformat()

    document = json.loads(state.read_text())
    document["savedAt"] = earlier(document["savedAt"])
    for history in document["autoscalers"].values():
        for record in history["recommendations"] + history["scaleEvents"]:
            record["time"] = earlier(record["time"])
        if "lastScaleTime" in history:
            history["lastScaleTime"] = earlier(history["lastScaleTime"])
    state.write_text(json.dumps(document))


def test_a_sigkilled_service_restarts_inside_its_scale_down_window_without_scaling_down(
    serve: Callable[[Path, Path], Server], tmp_path: Path
) -> None:
    config, state = tmp_path / "specs.yaml", tmp_path / "state.json"
    config.write_text(SPEC.format(replicas=6))
    server = serve(config, state)
    wait_for(lambda: server.replicas() == (6, 6), 20, "6 ready nodes")

    config.write_text(SPEC.format(replicas=2))  # the signal drops: 2 wanted, the window holds 6
    wait_for(lambda: _saved_recommendations(state)[-1:] == [2], 20, "the held decision to be saved")
    assert server.replicas()[0] == 6
    killed_at = time.time()
    output = server.kill()
    assert "decision default/workers" in output

    restarted = serve(config, state)
    view = restarted.json("/api/v1/horizontalautoscalers/default/workers")
    restored = [
        r
        for r in view["status"]["recommendations"]
        if r["replicas"] == 6 and datetime.fromisoformat(r["time"]).timestamp() < killed_at
    ]
    assert restored, view["status"]["recommendations"]
    deadline = time.monotonic() + 4
    seen: set[int] = set()
    while time.monotonic() < deadline:  # no scale-down the window forbids, no flapping
        seen.add(restarted.replicas()[0])
        time.sleep(0.1)
    assert seen == {6}
    assert restarted.replicas() == (6, 6)
    (latest, *_) = restarted.json("/api/v1/decisions")["items"]
    assert latest["limitedBy"] == "stabilization", latest
    restarted.kill()

    _shift(state, 300)  # as if the kill had been 300 s ago: the window has passed
    again = serve(config, state)
    wait_for(lambda: again.replicas() == (2, 2), 20, "the scale-down once the window passed")
