"""The CloudWatch producer against a real moto server over HTTP.

moto keeps the timestamps datapoints are put with and filters on them, so every test picks a
``now`` from the wall clock (a fixed moment inside the last whole minute) and puts its datapoints
relative to it. With the default 60-second period the query window is then
``[end − 300 s, end)`` where ``end`` is the start of ``now``'s minute.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from autoscaler import registry
from autoscaler.api import BackendContext, MetricsProducer
from autoscaler.aws import AWSClients
from autoscaler.clock import FakeClock
from autoscaler.errors import RetryableError
from producers.cloudwatch import CloudWatchProducer, create
from tests.moto_server import MotoServer

pytestmark = pytest.mark.integration

QUEUE_JOBS = [{"Name": "QueueName", "Value": "jobs"}]


@pytest.fixture
def now() -> float:
    """30 seconds into the last whole minute (so ``end`` = the start of that minute)."""
    return math.floor(time.time() / 60) * 60 - 30.0


@pytest.fixture
def cloudwatch(aws: MotoServer) -> Any:
    return boto3.client("cloudwatch", region_name="us-east-1")


def put(
    cloudwatch: Any,
    at: float,
    *values: float,
    metric: str = "Depth",
    dimensions: list[dict[str, str]] | None = None,
    namespace: str = "App",
) -> None:
    cloudwatch.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": QUEUE_JOBS if dimensions is None else dimensions,
                "Timestamp": datetime.fromtimestamp(at, UTC),
                "Value": value,
            }
            for value in values
        ],
    )


def producer(**cloud_watch: Any) -> CloudWatchProducer:
    spec = {
        "namespace": "App",
        "metricName": "Depth",
        "dimensions": [{"name": "QueueName", "value": "jobs"}],
        **cloud_watch,
    }
    resource = MetricsProducer.model_validate(
        {"metadata": {"name": "depth"}, "spec": {"cloudWatch": spec}}
    )
    return create(resource, BackendContext(clock=FakeClock(), aws=AWSClients()))


def value(built: CloudWatchProducer, now: float) -> float:
    observation = built.observe(now)
    (signal,) = observation.signals
    assert observation.status["values"]["value"] == signal.value
    return signal.value


@pytest.mark.parametrize(
    ("statistic", "expected"),
    [
        pytest.param("Average", 4.0, id="average"),
        pytest.param("Sum", 20.0, id="sum"),
        pytest.param("Maximum", 10.0, id="maximum"),
        pytest.param("Minimum", 1.0, id="minimum"),
        pytest.param("SampleCount", 5.0, id="sample count"),
    ],
)
def test_the_statistic_is_computed_over_the_newest_period(
    cloudwatch: Any, now: float, statistic: str, expected: float
) -> None:
    put(cloudwatch, now - 60, 1.0, 2.0, 3.0, 4.0, 10.0)
    assert value(producer(statistic=statistic), now) == expected


def test_the_signal_is_labelled_and_the_status_gives_the_datapoint_age(
    cloudwatch: Any, now: float
) -> None:
    put(cloudwatch, now - 60, 8.0)
    observation = producer().observe(now)
    (signal,) = observation.signals
    assert (signal.name, signal.value, signal.timestamp, dict(signal.labels)) == (
        "value",
        8.0,
        now,
        {"namespace": "App", "metric": "Depth"},
    )
    # The datapoint is stamped with the start of its period: 90 s before now.
    assert observation.status == {"values": {"value": 8.0, "datapointAgeSeconds": 90.0}}


def test_the_newest_datapoint_wins(cloudwatch: Any, now: float) -> None:
    put(cloudwatch, now - 240, 50.0)
    put(cloudwatch, now - 60, 7.0)
    put(cloudwatch, now - 180, 90.0)
    assert value(producer(), now) == 7.0


def test_only_the_named_dimensions_are_read(cloudwatch: Any, now: float) -> None:
    put(cloudwatch, now - 60, 3.0)
    put(cloudwatch, now - 60, 300.0, dimensions=[{"Name": "QueueName", "Value": "other"}])
    assert value(producer(statistic="Sum"), now) == 3.0
    other = [{"name": "QueueName", "value": "other"}]
    assert value(producer(statistic="Sum", dimensions=other), now) == 300.0


def test_the_unfinished_current_period_is_left_out(cloudwatch: Any, now: float) -> None:
    put(cloudwatch, now - 60, 5.0)
    put(cloudwatch, now, 99.0)  # inside the current minute: not complete yet
    assert value(producer(), now) == 5.0


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        pytest.param(0, 5.0, id="no offset reads the last whole minute"),
        pytest.param(30, 5.0, id="an offset within the current minute changes nothing"),
        pytest.param(31, 4.0, id="an offset past the minute start skips a minute"),
        pytest.param(120, 3.0, id="two minutes of offset skip two minutes"),
    ],
)
def test_the_end_offset_moves_the_window_back_in_whole_periods(
    cloudwatch: Any, now: float, offset: int, expected: float
) -> None:
    put(cloudwatch, now - 60, 5.0)
    put(cloudwatch, now - 120, 4.0)
    put(cloudwatch, now - 180, 3.0)
    assert value(producer(endOffsetSeconds=offset), now) == expected


def test_datapoints_older_than_the_window_are_not_read(cloudwatch: Any, now: float) -> None:
    put(cloudwatch, now - 400, 6.0)  # the window starts 330 s before now
    assert value(producer(collectionWindowSeconds=600, emptyValue=0), now) == 6.0
    assert value(producer(collectionWindowSeconds=300, emptyValue=0), now) == 0.0


def test_an_empty_window_reports_the_empty_value(cloudwatch: Any, now: float) -> None:
    put(cloudwatch, now - 60, 5.0, metric="Other")
    observation = producer(emptyValue=1.5).observe(now)
    assert [s.value for s in observation.signals] == [1.5]
    assert observation.status == {"values": {"value": 1.5, "emptyValue": 1.5}}


def test_an_empty_window_without_an_empty_value_is_retryable(cloudwatch: Any, now: float) -> None:
    with pytest.raises(RetryableError, match=r"App Depth\{QueueName=jobs\} Average/60s") as caught:
        producer().observe(now)
    assert caught.value.code == "NoDatapoints"
    assert "no datapoints between" in caught.value.message


def test_later_observations_find_datapoints_that_arrive_late(cloudwatch: Any, now: float) -> None:
    built = producer()
    with pytest.raises(RetryableError):
        built.observe(now)
    put(cloudwatch, now - 60, 12.0)
    assert value(built, now) == 12.0


def test_the_registry_builds_a_working_cloudwatch_producer(cloudwatch: Any, now: float) -> None:
    put(cloudwatch, now - 60, 2.0, namespace="AWS/SQS", metric="NumberOfMessagesSent")
    resource = MetricsProducer.model_validate(
        {
            "metadata": {"name": "sent"},
            "spec": {
                "cloudWatch": {
                    "namespace": "AWS/SQS",
                    "metricName": "NumberOfMessagesSent",
                    "dimensions": [{"name": "QueueName", "value": "jobs"}],
                    "statistic": "Sum",
                }
            },
        }
    )
    built = registry.create_producer(resource, BackendContext(clock=FakeClock()))
    assert built.observe(now).signals[0].value == 2.0
