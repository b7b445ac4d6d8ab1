"""``autoscaler serve`` under a stream of bad edits: each is reported with its file, line and field
path, the service stays healthy, and the autoscaler that was already running keeps scaling on its
(real SQS) signal. A 10 MB file is refused at once; a large file that must be parsed is parsed on
the spec watcher's thread, so the loop keeps deciding meanwhile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.moto_server import MotoServer
from tests.prometheus_server import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

GOOD = """
apiVersion: autoscaler.dev/v1alpha1
kind: ScalableNodeGroup
metadata: {{name: workers}}
spec: {{type: Simulated, id: workers, replicas: 1, simulated: {{provisioningDelaySeconds: 0.2}}}}
---
apiVersion: autoscaler.dev/v1alpha1
kind: MetricsProducer
metadata: {{name: jobs}}
spec:
  intervalSeconds: 0.5
  queue: {{type: AWSSQSQueue, id: "{queue_url}"}}
---
apiVersion: autoscaler.dev/v1alpha1
kind: HorizontalAutoscaler
metadata: {{name: workers}}
spec:
  scaleTargetRef: {{name: workers}}
  maxReplicas: 40
  metrics:
    - producer: {{name: jobs}}
      target: {{type: AverageValue, averageValue: 4}}
  behavior:
    scaleUp:
      tolerance: 0.01
      policies: [{{type: Pods, value: 40, periodSeconds: 15}}]
"""

AUTOSCALER = """apiVersion: autoscaler.dev/v1alpha1
kind: HorizontalAutoscaler
metadata: {{name: other}}
spec:
  scaleTargetRef: {{name: {target}}}
  maxReplicas: {max_replicas}
  metrics:
    - producer: {{name: {producer}}}
      target: {{type: AverageValue, averageValue: 4}}
"""
PRODUCER = """apiVersion: autoscaler.dev/v1alpha1
kind: MetricsProducer
metadata: {{name: plan}}
spec:
  schedule:
    timezone: {timezone}
    defaultReplicas: 1
    behaviors: [{{start: "{cron}", end: "0 17 * * *", replicas: 3}}]
"""
LAUGHS = "\n".join(
    ["apiVersion: autoscaler.dev/v1alpha1", "kind: ScalableNodeGroup", "a0: &a0 [x, x, x, x]"]
    + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
)

#: (what, file content, expected path, a word of the expected message)
BAD_EDITS = [
    (
        "wrong type",
        AUTOSCALER.format(target="workers2", max_replicas="ten", producer="jobs"),
        "spec.maxReplicas",
        "integer",
    ),
    (
        "huge number",
        AUTOSCALER.format(target="workers2", max_replicas=10**30, producer="jobs"),
        "spec.maxReplicas",
        "less than",
    ),
    (
        "unknown field",
        AUTOSCALER.format(target="w", max_replicas=5, producer="jobs") + "  maxReplica: 4\n",
        "spec.maxReplica",
        "unknown field",
    ),
    (
        "bad cron",
        PRODUCER.format(timezone="UTC", cron="0 25 * * *"),
        "spec.schedule.behaviors[0].start",
        "cron",
    ),
    (
        "bad timezone",
        PRODUCER.format(timezone="Mars/Olympus", cron="0 9 * * *"),
        "spec.schedule.timezone",
        "IANA",
    ),
    (
        "dangling reference",
        AUTOSCALER.format(target="nowhere", max_replicas=5, producer="jobs"),
        "spec.scaleTargetRef.name",
        "no valid ScalableNodeGroup",
    ),
    (
        "duplicate name",
        "apiVersion: autoscaler.dev/v1alpha1\nkind: ScalableNodeGroup\n"
        "metadata: {name: workers}\nspec: {type: Simulated, id: x}\n",
        "metadata.name",
        "duplicate name",
    ),
    (
        "deep nesting",
        "apiVersion: autoscaler.dev/v1alpha1\nkind: MetricsProducer\nspec: "
        + "[" * 500
        + "]" * 500,
        "",
        "nested more than",
    ),
    ("alias bomb", LAUGHS, "", "document too large"),
    ("not YAML", "kind: [unclosed\n", "", "invalid YAML"),
]


class Server:
    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        command = [sys.executable, "-m", "autoscaler.cli", "serve", "--config", str(config)]
        self.process = subprocess.Popen(
            [*command, "--port", self.url.rsplit(":", 1)[1]],
            cwd=ROOT,
            env={**os.environ, **env, "AUTOSCALER_RELOAD__INTERVAL_SECONDS": "0.2"},
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

    def desired(self) -> int:
        return int(self.json("/api/v1/scalablenodegroups")["items"][0]["spec"]["replicas"])

    def issues(self) -> list[dict[str, Any]]:
        return list(self.json("/api/v1/config")["issues"])


@pytest.fixture
def server_factory() -> Iterator[list[Server]]:
    servers: list[Server] = []
    yield servers
    for server in servers:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGKILL)
            server.process.communicate()


def test_a_stream_of_bad_edits_is_reported_while_the_good_autoscaler_keeps_scaling(
    aws: MotoServer, tmp_path: Path, server_factory: list[Server]
) -> None:
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="bad-edits")["QueueUrl"]

    def send(count: int) -> None:
        for start in range(0, count, 10):
            entries = [{"Id": str(i), "MessageBody": "job"} for i in range(min(10, count - start))]
            sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)

    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "good.yaml").write_text(GOOD.format(queue_url=queue_url))
    server = Server(specs, aws.env)
    server_factory.append(server)
    send(8)
    wait_for(lambda: server.desired() == 2, 15, "2 nodes for 8 messages")

    bad = specs / "edit.yaml"
    for what, content, path, word in BAD_EDITS:
        bad.write_text(content)
        issues = wait_for(
            lambda path=path, word=word: [  # type: ignore[misc]
                i for i in server.issues() if i["path"] == path and word in i["message"]
            ],
            10,
            f"the {what} edit to be reported",
        )
        assert issues[0]["file"] == str(bad) or what == "duplicate name", issues
        assert issues[0]["line"] > 0, issues
        assert server.get("/healthz").status_code == 200
        send(8)  # the signal keeps moving: 2 more nodes per edit
    wait_for(
        lambda: server.desired() == 2 + 2 * len(BAD_EDITS), 15, "scaling through the bad edits"
    )
    decisions = server.json("/api/v1/decisions?limit=1000")["items"]
    ups = [d for d in decisions if d["direction"] == "up"]
    assert len(ups) >= 4, ups  # step by step as the messages came, not once at the end

    # A 10 MB file: refused by its size at once, before it is read.
    staging = tmp_path / "edit.yaml.new"  # written whole, then renamed in (as a ConfigMap is)
    staging.write_text("# padding\n" * 1_000_000)
    staging.replace(bad)
    written = time.monotonic()
    issue = wait_for(
        lambda: [i for i in server.issues() if "file too large" in i["message"]],
        5,
        "the 10 MB file to be refused",
    )[0]
    refused_after = time.monotonic() - written
    assert issue["file"] == str(bad) and issue["line"] == 0
    assert refused_after < 2, refused_after

    # A 3 MB file that must be parsed (several seconds on the watcher thread): the loop is not
    # stalled meanwhile, new messages are acted on within a second or two.
    staging.write_text("# padding\n" * 1_000 + "a: '" + "x" * 3_000_000 + "'\n")
    staging.replace(bad)
    time.sleep(0.5)  # the watcher has picked it up and is parsing
    send(16)
    sent = time.monotonic()
    expected = 2 + 2 * len(BAD_EDITS) + 4
    wait_for(lambda: server.desired() == expected, 10, "scaling while the big file is parsed")
    reaction = time.monotonic() - sent
    assert reaction < 5, reaction
    assert server.json("/api/v1/horizontalautoscalers")["items"][0]["name"] == "workers"
    assert [a["name"] for a in server.json("/api/v1/horizontalautoscalers")["items"]] == ["workers"]
