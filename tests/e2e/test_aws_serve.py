"""End to end on AWS APIs: `autoscaler serve` + SQS producer → autoscaler → ASG, all over HTTP
against a moto server process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.moto_server import MotoServer

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

SPEC = """
apiVersion: autoscaler.dev/v1alpha1
kind: ScalableNodeGroup
metadata: {{name: workers}}
spec:
  type: AWSEC2AutoScalingGroup
  id: {group}
---
apiVersion: autoscaler.dev/v1alpha1
kind: MetricsProducer
metadata: {{name: jobs}}
spec:
  intervalSeconds: 1
  queue:
    type: AWSSQSQueue
    id: {queue_url}
---
apiVersion: autoscaler.dev/v1alpha1
kind: HorizontalAutoscaler
metadata: {{name: workers}}
spec:
  scaleTargetRef: {{name: workers}}
  minReplicas: 1
  maxReplicas: 20
  metrics:
    - producer: {{name: jobs, metric: queue_length}}
      target: {{type: AverageValue, averageValue: 4}}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 5
"""


def _wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def test_a_queue_burst_scales_an_asg_out_and_a_drained_queue_scales_it_back_in(
    aws: MotoServer, tmp_path: Path
) -> None:
    sqs = boto3.client("sqs")
    autoscaling = boto3.client("autoscaling")
    queue_url = sqs.create_queue(QueueName="jobs")["QueueUrl"]
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="workers", ImageId="ami-12345678", InstanceType="t3.micro"
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="workers-asg",
        LaunchConfigurationName="workers",
        MinSize=0,
        MaxSize=20,
        DesiredCapacity=1,
        AvailabilityZones=["us-east-1a"],
    )

    def desired() -> int:
        groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["workers-asg"])
        return int(groups["AutoScalingGroups"][0]["DesiredCapacity"])

    spec = tmp_path / "aws.yaml"
    spec.write_text(SPEC.format(group="workers-asg", queue_url=queue_url))
    process = subprocess.Popen(
        [sys.executable, "-m", "autoscaler.cli", "serve", "--config", str(spec), "--port", "0"],
        cwd=ROOT,
        env={**os.environ, **aws.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for batch in range(4):
            sqs.send_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "MessageBody": f"job {batch}-{i}"} for i in range(10)],
            )
        # 40 messages / 4 per node = 10 nodes: 1 → 5 (4 pods per 15 s beats 100 %) → 10.
        _wait_for(lambda: desired() == 10, 40, "desired capacity 10")

        # Receive half of them: in flight messages still count, so nothing scales in.
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
        received += sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
        time.sleep(8)
        assert desired() == 10

        for message in received:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        sqs.purge_queue(QueueUrl=queue_url)
        drained = time.monotonic()
        _wait_for(lambda: desired() == 1, 40, "scale-in to minReplicas after the queue drained")
        assert time.monotonic() - drained >= 4  # not before the 5 s stabilization window
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert "decision default/workers" in output
