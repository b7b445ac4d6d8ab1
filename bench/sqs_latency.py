"""Benchmark: signal-to-actuation latency, SQS message burst → SetDesiredCapacity at the server.

A moto server runs inside this process, instrumented to timestamp every GetQueueAttributes and
SetDesiredCapacity request it serves. ``autoscaler serve`` runs as a separate process with an SQS
producer polling every second, an AverageValue target of 1 message per node and an ASG.

For each trial the benchmark sends a burst of messages and measures:

- ``latency``: burst sent → SetDesiredCapacity received by the server;
- ``polling wait``: burst sent → the first GetQueueAttributes that started after it (the wait for
  the producer's next interval, 0–1 s by design);
- ``overhead``: that GetQueueAttributes → SetDesiredCapacity, i.e. everything the service adds
  beyond the polling wait (the SQS round trip, the store, the decision, the ASG read and write).

Baseline, measured in the same run: the same three API calls (GetQueueAttributes,
DescribeAutoScalingGroups, SetDesiredCapacity) issued back to back by a bare boto3 client: the
floor that any implementation pays.

    .venv/bin/python bench/sqs_latency.py [--trials 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

SPEC = """
apiVersion: autoscaler.dev/v1alpha1
kind: ScalableNodeGroup
metadata: {{name: workers}}
spec: {{type: AWSEC2AutoScalingGroup, id: bench-asg}}
---
apiVersion: autoscaler.dev/v1alpha1
kind: MetricsProducer
metadata: {{name: jobs}}
spec:
  intervalSeconds: 1
  queue: {{type: AWSSQSQueue, id: "{queue_url}"}}
---
apiVersion: autoscaler.dev/v1alpha1
kind: HorizontalAutoscaler
metadata: {{name: workers}}
spec:
  scaleTargetRef: {{name: workers}}
  minReplicas: 1
  maxReplicas: 100
  metrics:
    - producer: {{name: jobs}}
      target: {{type: AverageValue, averageValue: 1}}
  behavior:
    scaleUp:
      policies: [{{type: Pods, value: 100, periodSeconds: 1}}]
    scaleDown:
      stabilizationWindowSeconds: 0
      policies: [{{type: Pods, value: 100, periodSeconds: 1}}]
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Recorder:
    """Wall-clock times of the requests the moto server served, by action."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, float, Any]] = []

    def add(self, action: str, value: Any = None) -> None:
        with self.lock:
            self.events.append((action, time.time(), value))

    def first(self, action: str, after: float, value: Any = None) -> float | None:
        with self.lock:
            for name, when, got in self.events:
                if name == action and when >= after and (value is None or got == value):
                    return when
        return None


def instrument(recorder: Recorder) -> None:
    from moto.autoscaling.models import AutoScalingBackend
    from moto.sqs.models import SQSBackend

    set_desired = AutoScalingBackend.set_desired_capacity
    get_attributes = SQSBackend.get_queue_attributes

    def timed_set(self: Any, group_name: str, desired_capacity: int | None) -> None:
        recorder.add("SetDesiredCapacity", desired_capacity)
        set_desired(self, group_name, desired_capacity)

    def timed_get(self: Any, *args: Any, **kwargs: Any) -> Any:
        recorder.add("GetQueueAttributes")
        return get_attributes(self, *args, **kwargs)

    AutoScalingBackend.set_desired_capacity = timed_set  # type: ignore[method-assign]
    SQSBackend.get_queue_attributes = timed_get  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60)
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    recorder = Recorder()
    instrument(recorder)
    moto_port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    server.start()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})

    import boto3

    sqs = boto3.client("sqs")
    asg = boto3.client("autoscaling")
    queue_url = sqs.create_queue(QueueName="bench-jobs")["QueueUrl"]
    asg.create_launch_configuration(
        LaunchConfigurationName="bench", ImageId="ami-12345678", InstanceType="t3.micro"
    )
    asg.create_auto_scaling_group(
        AutoScalingGroupName="bench-asg",
        LaunchConfigurationName="bench",
        MinSize=0,
        MaxSize=100,
        DesiredCapacity=1,
        AvailabilityZones=["us-east-1a"],
    )

    # Baseline: the bare API calls an actuation needs, back to back.
    baseline = []
    for _ in range(args.trials):
        started = time.perf_counter()
        sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])
        asg.describe_auto_scaling_groups(AutoScalingGroupNames=["bench-asg"])
        asg.set_desired_capacity(AutoScalingGroupName="bench-asg", DesiredCapacity=1)
        baseline.append(time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "bench.yaml"
        spec.write_text(SPEC.format(queue_url=queue_url))
        port = _free_port()
        service = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "autoscaler.cli",
                "serve",
                "--config",
                str(spec),
                "--port",
                str(port),
                "--log-level",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
        )
        try:
            latencies, waits, overheads = run_trials(args.trials, sqs, asg, queue_url, recorder)
        finally:
            service.terminate()
            service.wait(15)
    server.stop()

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return {
            "p50_ms": round(statistics.median(ordered) * 1e3, 1),
            "p99_ms": round(p99 * 1e3, 1),
            "max_ms": round(ordered[-1] * 1e3, 1),
        }

    overhead, floor = summary(overheads), summary(baseline)
    print(
        json.dumps(
            {
                "machine": f"{platform.platform()}, {os.cpu_count()} cores",
                "python": platform.python_version(),
                "trials": len(latencies),
                "latency": summary(latencies),
                "polling_wait": summary(waits),
                "overhead": overhead,
                "baseline_bare_api_calls": floor,
                "overhead_p50_over_baseline_p50": round(overhead["p50_ms"] / floor["p50_ms"], 2),
            },
            indent=2,
        )
    )


def drain(sqs: Any, queue_url: str, count: int) -> None:
    """Receive and delete ``count`` messages (PurgeQueue is limited to once a minute)."""
    deleted = 0
    while deleted < count:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if messages:
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
            deleted += len(messages)


def run_trials(
    trials: int, sqs: Any, asg: Any, queue_url: str, recorder: Recorder
) -> tuple[list[float], list[float], list[float]]:
    def desired() -> int:
        groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["bench-asg"])
        return int(groups["AutoScalingGroups"][0]["DesiredCapacity"])

    def wait_until(check: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(0.02)
        return False

    if not wait_until(lambda: desired() == 1, 30):
        raise SystemExit("the service did not take over the group")
    latencies, waits, overheads = [], [], []
    for trial in range(trials):
        burst = 3 + trial % 5  # 3..7 messages → desired 3..7
        time.sleep(0.1 + (trial % 10) / 10)  # spread the send time over the polling interval
        sent = time.time()
        sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "MessageBody": "job"} for i in range(burst)],
        )

        def actuated_now(sent: float = sent, burst: int = burst) -> float | None:
            return recorder.first("SetDesiredCapacity", sent, burst)

        if not wait_until(actuated_now, 20):
            raise SystemExit(f"trial {trial}: no SetDesiredCapacity({burst}) within 20 s")
        actuated = recorder.first("SetDesiredCapacity", sent, burst)
        observed = recorder.first("GetQueueAttributes", sent)
        assert actuated is not None and observed is not None
        latencies.append(actuated - sent)
        waits.append(observed - sent)
        overheads.append(actuated - observed)
        drain(sqs, queue_url, burst)
        if not wait_until(lambda: desired() == 1, 20):
            raise SystemExit(f"trial {trial}: the group did not scale back to 1")
    return latencies, waits, overheads


if __name__ == "__main__":
    main()
