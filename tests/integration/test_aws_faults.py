"""AWS backends through the control loop under faults, with real boto3 over real HTTP:

* the SQS queue's server goes away (the moto process is terminated) and comes back (a new
  process on the same port): no scale-down on missing data, the fallback after
  ``failureThreshold`` failed runs, recovery when the queue answers again;
* a storm of throttling or 5xx answers from the Auto Scaling API (a fault-injecting proxy in front
  of moto): capped, jittered backoff, a bounded number of calls, and the desired count applied
  once the storm ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from autoscaler.api import BackendContext, HorizontalAutoscaler, MetricsProducer, ScalableNodeGroup
from autoscaler.clock import FakeClock, system_clock
from autoscaler.config import SpecSet
from autoscaler.decisions import DecisionRecord
from autoscaler.errors import AutoscalerError, RetryableError
from autoscaler.loop import ControlLoop
from autoscaler.settings import LoopSettings
from tests.fault_proxy import FaultProxy
from tests.moto_server import AWS_ENV, MotoServer
from tests.prometheus_server import wait_for
from tests.support import Backends, schedule_producer

pytestmark = pytest.mark.integration


def _autoscaler(producer: str, **spec: Any) -> HorizontalAutoscaler:
    return HorizontalAutoscaler.model_validate(
        {
            "metadata": {"name": "workers"},
            "spec": {
                "scaleTargetRef": {"name": "workers"},
                "minReplicas": 1,
                "maxReplicas": 20,
                "metrics": [
                    {
                        "producer": {"name": producer, "metric": "queue_length"},
                        "target": {"type": "AverageValue", "averageValue": 4},
                    }
                ],
                **spec,
            },
        }
    )


def _group(spec: dict[str, Any]) -> ScalableNodeGroup:
    return ScalableNodeGroup.model_validate({"metadata": {"name": "workers"}, "spec": spec})


# --------------------------------------------------------------------------- the queue goes away


@pytest.fixture
def own_moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """A moto process of this test's own, which it may stop and restart."""
    server = MotoServer()
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    try:
        yield server
    finally:
        server.stop()


def _queue_with(server: MotoServer, messages: int) -> str:
    sqs = boto3.client("sqs", endpoint_url=server.url, region_name=AWS_ENV["AWS_REGION"])
    url = str(sqs.create_queue(QueueName="jobs")["QueueUrl"])
    for start in range(0, messages, 10):
        entries = [{"Id": str(i), "MessageBody": "job"} for i in range(min(10, messages - start))]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    return url


def test_when_the_queue_server_dies_the_group_holds_then_falls_back_then_recovers(
    own_moto: MotoServer,
) -> None:
    url = _queue_with(own_moto, 40)
    clock = FakeClock()
    backends = Backends()
    loop = ControlLoop(
        clock,
        LoopSettings(),
        context=BackendContext(clock=clock),
        create_provider=backends.create_provider,  # an in-memory group; the queue is real
    )
    producer = MetricsProducer.model_validate(
        {
            "metadata": {"name": "jobs"},
            "spec": {"intervalSeconds": 15, "queue": {"type": "AWSSQSQueue", "id": url}},
        }
    )
    specs = SpecSet(
        node_groups={"default/workers": _group({"type": "Simulated", "id": "w", "replicas": 1})},
        producers={"default/jobs": producer},
        autoscalers={
            "default/workers": _autoscaler("jobs", fallback={"failureThreshold": 3, "replicas": 12})
        },
    )
    loop.apply(specs)
    loop.run_until(clock() + 16, clock.set)
    assert backends.providers["workers"].desired == 10  # 40 messages, 4 per node

    own_moto.stop()  # the queue service is gone: connection refused
    loop.run_until(clock() + 30, clock.set)  # two failed runs, below the threshold
    runtime = loop.producers["default/jobs"]
    assert isinstance(runtime.error, RetryableError)
    assert runtime.consecutive_failures == 2
    assert backends.providers["workers"].desired == 10  # missing data never scales down
    view = loop.autoscaler_view(loop.autoscalers["default/workers"])
    active = next(c for c in view["status"]["conditions"] if c["type"] == "ScalingActive")
    assert active["status"] == "False"

    loop.run_until(clock() + 15, clock.set)  # the third failed run: the fallback applies
    assert backends.providers["workers"].desired == 12

    own_moto.restart()  # a new, empty server on the same port
    assert _queue_with(own_moto, 8) == url
    loop.run_until(clock() + 15, clock.set)
    assert runtime.error is None  # recovered
    assert backends.providers["workers"].desired == 12  # the 300 s window holds the scale-down
    loop.run_until(clock() + 300, clock.set)
    assert backends.providers["workers"].desired == 2  # 8 messages: following the queue again


# --------------------------------------------------------------------------- error storms


@pytest.fixture
def proxy(aws: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A fault proxy in front of the shared moto server; boto3 in the loop goes through it."""
    proxy = FaultProxy(aws.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        yield proxy
    finally:
        proxy.close()


def _asg(aws: MotoServer, desired: int) -> Callable[[], int]:
    autoscaling = boto3.client("autoscaling", endpoint_url=aws.url)
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="workers", ImageId="ami-12345678", InstanceType="t3.micro"
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="workers-asg",
        LaunchConfigurationName="workers",
        MinSize=0,
        MaxSize=20,
        DesiredCapacity=desired,
        AvailabilityZones=["us-east-1a"],
    )

    def current() -> int:
        groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["workers-asg"])
        return int(groups["AutoScalingGroups"][0]["DesiredCapacity"])

    return current


ASG_ACTIONS = ("DescribeAutoScalingGroups", "SetDesiredCapacity")


class ProviderCalls:
    """A loop observer that keeps the outcome of every provider call."""

    def __init__(self) -> None:
        self.errors: list[AutoscalerError | None] = []

    def producer_run(self, producer: str, seconds: float, error: AutoscalerError | None) -> None:
        return None

    def provider_call(self, node_group: str, seconds: float, error: AutoscalerError | None) -> None:
        self.errors.append(error)

    def loop_pass(self, seconds: float) -> None:
        return None

    def decision(self, record: DecisionRecord) -> None:
        return None


@pytest.mark.parametrize(
    ("status", "code", "storm"),
    # boto3 waits up to 3 s between its own retries of a throttled call: a longer storm.
    [(400, "Throttling", 6.0), (503, "ServiceUnavailable", 3.0)],
    ids=["throttling", "5xx"],
)
def test_an_error_storm_is_retried_at_a_bounded_rate_and_the_desired_count_survives_it(
    aws: MotoServer, proxy: FaultProxy, status: int, code: str, storm: float
) -> None:
    desired = _asg(aws, 1)
    backends = Backends()
    backends.create_producer(schedule_producer("plan"), None).value = 24  # type: ignore[arg-type]
    retry_max = 1.0
    calls = ProviderCalls()
    loop = ControlLoop(
        system_clock,
        LoopSettings(retry_initial_seconds=0.2, retry_max_seconds=retry_max),
        context=BackendContext(clock=system_clock),
        observer=calls,
        create_producer=backends.create_producer,
    )
    proxy.fail(set(ASG_ACTIONS), seconds=storm, status=status, code=code)
    started = time.monotonic()
    loop.apply(
        SpecSet(
            node_groups={
                "default/workers": _group({"type": "AWSEC2AutoScalingGroup", "id": "workers-asg"})
            },
            producers={"default/plan": schedule_producer("plan")},
            autoscalers={
                "default/workers": _autoscaler(
                    "plan",
                    behavior={
                        "scaleUp": {
                            "policies": [{"type": "Pods", "value": 10, "periodSeconds": 15}]
                        }
                    },
                )
            },
        )
    )
    group = loop.node_groups["default/workers"]
    while time.monotonic() - started < storm:
        loop.run_once()
        time.sleep(0.02)  # a pass every 20 ms: without backoff, 150 attempts
    during = proxy.count(*ASG_ACTIONS, since=started, until=started + storm)
    injected = [c for c in proxy.calls if c.injected]
    assert injected and all(c.status == status for c in injected)
    failed = [error for error in calls.errors if error is not None]
    assert failed and {error.code for error in failed} == {code}
    # Our delays are 0.1–0.2, 0.2–0.4, 0.4–0.8, then 0.5–1 s (at least half the capped delay),
    # and boto3 retries each call twice itself: three requests a call.
    most_calls = 3 + (storm - 0.7) / 0.5 + 1
    assert 3 <= during <= 3 * most_calls, during

    wait_for(lambda: (loop.run_once(), desired())[1] == 6, 10, "desired capacity 6 after the storm")
    assert group.error is None
    assert time.monotonic() - started < storm + retry_max + 3
