"""The SQS queue producer against a real moto server over HTTP."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from autoscaler import registry
from autoscaler.api import BackendContext, MetricsProducer, Observation
from autoscaler.aws import AWSClients
from autoscaler.clock import FakeClock
from autoscaler.errors import NotFoundError
from producers.sqs import AGE_SIGNAL, LENGTH_SIGNAL, SQSQueueProducer, create
from tests.moto_server import MotoServer

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"  # moto's default account


def wall_clock_now() -> float:
    """A fixed moment inside the last whole minute: CloudWatch datapoints carry real times."""
    return math.floor(time.time() / 60) * 60 - 30.0


def producer(**queue: Any) -> SQSQueueProducer:
    resource = MetricsProducer.model_validate(
        {"metadata": {"name": "jobs"}, "spec": {"queue": {"type": "AWSSQSQueue", **queue}}}
    )
    return create(resource, BackendContext(clock=FakeClock(), aws=AWSClients()))


def length(observation: Observation) -> float:
    signal = next(s for s in observation.signals if s.name == LENGTH_SIGNAL)
    assert observation.status["queue"]["length"] == signal.value
    return signal.value


def fill(sqs: Any, url: str, *, visible: int, in_flight: int = 0, delayed: int = 0) -> None:
    """Leave ``visible`` visible, ``in_flight`` received and ``delayed`` delayed messages."""
    for index in range(visible + in_flight):
        sqs.send_message(QueueUrl=url, MessageBody=f"job {index}")
    received = 0
    while received < in_flight:
        answer = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=min(10, in_flight - received), VisibilityTimeout=600
        )
        received += len(answer.get("Messages", []))
    for index in range(delayed):
        sqs.send_message(QueueUrl=url, MessageBody=f"later {index}", DelaySeconds=600)


@pytest.fixture
def sqs(aws: MotoServer) -> Any:
    return boto3.client("sqs", region_name="us-east-1")


@pytest.fixture
def jobs(sqs: Any) -> str:
    """A queue with 3 visible, 2 in-flight and 1 delayed message; returns its URL."""
    url: str = sqs.create_queue(QueueName="jobs")["QueueUrl"]
    fill(sqs, url, visible=3, in_flight=2, delayed=1)
    return url


@pytest.mark.parametrize(
    ("queue", "expected"),
    [
        pytest.param({}, 5, id="visible and in flight count by default"),
        pytest.param({"includeInFlight": False}, 3, id="in flight excluded on request"),
        pytest.param({"includeDelayed": True}, 6, id="delayed counted only on request"),
        pytest.param(
            {"includeInFlight": False, "includeDelayed": True}, 4, id="visible and delayed"
        ),
    ],
)
def test_the_length_counts_what_the_spec_asks_for(
    jobs: str, queue: dict[str, Any], expected: int
) -> None:
    observation = producer(id=jobs, **queue).observe(1_000.0)
    assert length(observation) == expected
    (signal,) = observation.signals
    assert (signal.timestamp, dict(signal.labels)) == (1_000.0, {"queue": "jobs"})
    assert observation.status == {"queue": {"length": expected, "oldestMessageAgeSeconds": None}}


def test_the_length_follows_the_queue_between_observations(sqs: Any, jobs: str) -> None:
    built = producer(id=jobs)
    assert length(built.observe(0.0)) == 5
    fill(sqs, jobs, visible=4)
    assert length(built.observe(15.0)) == 9
    sqs.purge_queue(QueueUrl=jobs)
    assert length(built.observe(30.0)) == 0


def test_an_arn_is_resolved_to_the_queue_url(jobs: str) -> None:
    observation = producer(id=f"arn:aws:sqs:us-east-1:{ACCOUNT}:jobs").observe(0.0)
    assert length(observation) == 5


@pytest.mark.parametrize(
    "queue_id",
    [
        pytest.param(f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/jobs", id="from a url"),
        pytest.param(f"arn:aws:sqs:eu-west-1:{ACCOUNT}:jobs", id="from an arn"),
    ],
)
def test_the_region_named_by_the_id_is_the_one_asked(sqs: Any, queue_id: str) -> None:
    # The same queue name in the default region holds other messages.
    fill(sqs, sqs.create_queue(QueueName="jobs")["QueueUrl"], visible=1)
    ireland = boto3.client("sqs", region_name="eu-west-1")
    fill(ireland, ireland.create_queue(QueueName="jobs")["QueueUrl"], visible=7)

    assert length(producer(id=queue_id).observe(0.0)) == 7


def test_the_spec_region_wins_over_the_region_in_the_id(sqs: Any) -> None:
    fill(sqs, sqs.create_queue(QueueName="jobs")["QueueUrl"], visible=2)
    frankfurt = boto3.client("sqs", region_name="eu-central-1")
    fill(frankfurt, frankfurt.create_queue(QueueName="jobs")["QueueUrl"], visible=8)

    queue_id = f"arn:aws:sqs:us-east-1:{ACCOUNT}:jobs"
    assert length(producer(id=queue_id, region="eu-central-1").observe(0.0)) == 8


@pytest.mark.parametrize(
    ("queue_id", "action"),
    [
        pytest.param(
            f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/missing",
            "GetQueueAttributes on https://sqs.us-east-1.amazonaws.com/123456789012/missing",
            id="by url",
        ),
        pytest.param(
            f"arn:aws:sqs:us-east-1:{ACCOUNT}:missing",
            "GetQueueUrl on arn:aws:sqs:us-east-1:123456789012:missing",
            id="by arn",
        ),
    ],
)
def test_a_queue_that_does_not_exist_is_not_found_with_the_aws_code(
    aws: MotoServer, queue_id: str, action: str
) -> None:
    with pytest.raises(NotFoundError) as caught:
        producer(id=queue_id).observe(0.0)
    assert caught.value.code == "AWS.SimpleQueueService.NonExistentQueue"
    assert caught.value.message.startswith(f"{action}: AWS.SimpleQueueService.NonExistentQueue")


def test_a_queue_created_after_a_failed_arn_lookup_is_found_next_time(sqs: Any) -> None:
    built = producer(id=f"arn:aws:sqs:us-east-1:{ACCOUNT}:late")
    with pytest.raises(NotFoundError):
        built.observe(0.0)
    fill(sqs, sqs.create_queue(QueueName="late")["QueueUrl"], visible=2)
    assert length(built.observe(15.0)) == 2


def test_the_oldest_message_age_comes_from_cloudwatch(jobs: str) -> None:
    now = wall_clock_now()
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    for seconds_ago, age in ((200, 40.0), (70, 95.0)):
        cloudwatch.put_metric_data(
            Namespace="AWS/SQS",
            MetricData=[
                {
                    "MetricName": "ApproximateAgeOfOldestMessage",
                    "Dimensions": [{"Name": "QueueName", "Value": "jobs"}],
                    "Timestamp": datetime.fromtimestamp(now - seconds_ago, UTC),
                    "Value": age,
                }
            ],
        )

    observation = producer(id=jobs, oldestMessageAge=True).observe(now)

    assert [(s.name, s.value, dict(s.labels)) for s in observation.signals] == [
        (LENGTH_SIGNAL, 5.0, {"queue": "jobs"}),
        (AGE_SIGNAL, 95.0, {"queue": "jobs"}),
    ]
    assert observation.status == {"queue": {"length": 5, "oldestMessageAgeSeconds": 95.0}}


def test_the_age_of_another_queue_is_not_taken(jobs: str) -> None:
    now = wall_clock_now()
    boto3.client("cloudwatch", region_name="us-east-1").put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": "other"}],
                "Timestamp": datetime.fromtimestamp(now - 70, UTC),
                "Value": 500.0,
            }
        ],
    )
    observation = producer(id=jobs, oldestMessageAge=True).observe(now)
    assert [s.name for s in observation.signals] == [LENGTH_SIGNAL]


def test_without_a_cloudwatch_datapoint_the_age_is_left_out(jobs: str) -> None:
    observation = producer(id=jobs, oldestMessageAge=True).observe(wall_clock_now())
    assert [s.name for s in observation.signals] == [LENGTH_SIGNAL]
    assert observation.status == {"queue": {"length": 5, "oldestMessageAgeSeconds": None}}


def test_the_registry_builds_a_working_queue_producer(jobs: str) -> None:
    resource = MetricsProducer.model_validate(
        {"metadata": {"name": "jobs"}, "spec": {"queue": {"type": "AWSSQSQueue", "id": jobs}}}
    )
    built = registry.create_producer(resource, BackendContext(clock=FakeClock()))
    assert length(built.observe(0.0)) == 5
