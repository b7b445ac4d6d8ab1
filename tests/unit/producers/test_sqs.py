"""The SQS queue producer without a server: id parsing, length arithmetic, the AWS boundary."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, NoRegionError

from autoscaler.api import BackendContext, MetricsProducer, Producer
from autoscaler.clock import FakeClock
from autoscaler.errors import NotFoundError, PermanentError, RetryableError, SpecError
from producers.sqs import (
    AGE_SIGNAL,
    DELAYED,
    IN_FLIGHT,
    LENGTH_SIGNAL,
    VISIBLE,
    QueueRef,
    SQSQueueProducer,
    age_request,
    age_window,
    attribute_names,
    create,
    parse_queue_id,
    queue_length,
    region_from_host,
)

URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs"
ARN = "arn:aws:sqs:eu-west-1:123456789012:jobs"
NOW = 1_767_225_630.0  # 2026-01-01T00:00:30Z
ROOT = Path(__file__).resolve().parents[3]


def client_error(
    code: str, status: int = 400, operation: str = "GetQueueAttributes"
) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} says no"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


class FakeSQS:
    """Answers GetQueueAttributes / GetQueueUrl from fixed values, or raises ``error``."""

    def __init__(self, attributes: dict[str, Any] | None = None) -> None:
        self.attributes = (
            attributes if attributes is not None else {VISIBLE: "3", IN_FLIGHT: "2", DELAYED: "1"}
        )
        self.error: Exception | None = None
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def get_queue_attributes(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("GetQueueAttributes", kwargs))
        if self.error is not None:
            raise self.error
        wanted = kwargs["AttributeNames"]
        return {"Attributes": {k: v for k, v in self.attributes.items() if k in wanted}}

    def get_queue_url(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("GetQueueUrl", kwargs))
        return {
            "QueueUrl": f"https://sqs.eu-west-1.amazonaws.com/{kwargs['QueueOwnerAWSAccountId']}/{kwargs['QueueName']}"
        }


class FakeCloudWatch:
    """Answers GetMetricData with ``points`` (timestamp, value), or raises ``error``."""

    def __init__(self, points: list[tuple[float, float]] | None = None) -> None:
        self.points = points or []
        self.error: Exception | None = None
        self.status = "Complete"
        self.calls: list[dict[str, Any]] = []

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        query_id = kwargs["MetricDataQueries"][0]["Id"]
        return {
            "MetricDataResults": [
                {
                    "Id": query_id,
                    "Timestamps": [datetime.fromtimestamp(t, UTC) for t, _ in self.points],
                    "Values": [v for _, v in self.points],
                    "StatusCode": self.status,
                }
            ]
        }


class FakeAWS:
    """Stands in for ``autoscaler.aws.AWSClients``: records which clients were asked for."""

    def __init__(
        self, sqs: FakeSQS | None = None, cloudwatch: FakeCloudWatch | None = None
    ) -> None:
        self.sqs = sqs or FakeSQS()
        self.cloudwatch = cloudwatch or FakeCloudWatch()
        self.requests: list[tuple[str, str | None]] = []
        self.error: Exception | None = None

    def client(self, service: str, region: str | None = None) -> Any:
        self.requests.append((service, region))
        if self.error is not None:
            raise self.error
        return {"sqs": self.sqs, "cloudwatch": self.cloudwatch}[service]


def resource(queue: dict[str, Any]) -> MetricsProducer:
    return MetricsProducer.model_validate(
        {"metadata": {"name": "jobs"}, "spec": {"queue": {"type": "AWSSQSQueue", **queue}}}
    )


def producer(aws: FakeAWS, **queue: Any) -> SQSQueueProducer:
    queue.setdefault("id", URL)
    return create(resource(queue), BackendContext(clock=FakeClock(), aws=aws))


# --------------------------------------------------------------------------- queue ids


@pytest.mark.parametrize(
    ("queue_id", "expected"),
    [
        pytest.param(URL, QueueRef("jobs", "eu-west-1", url=URL), id="an aws queue url"),
        pytest.param(
            "https://sqs.us-east-1.amazonaws.com/123456789012/orders.fifo",
            QueueRef(
                "orders.fifo",
                "us-east-1",
                url="https://sqs.us-east-1.amazonaws.com/123456789012/orders.fifo",
            ),
            id="a fifo queue url",
        ),
        pytest.param(
            "http://127.0.0.1:4566/000000000000/jobs",
            QueueRef("jobs", None, url="http://127.0.0.1:4566/000000000000/jobs"),
            id="an emulator url has no region",
        ),
        pytest.param(
            "http://localhost:9324/queue/jobs",
            QueueRef("jobs", None, url="http://localhost:9324/queue/jobs"),
            id="an elasticmq style url",
        ),
        pytest.param(
            ARN,
            QueueRef("jobs", "eu-west-1", account="123456789012", arn=ARN),
            id="an arn is resolved later",
        ),
        pytest.param(
            "arn:aws-cn:sqs:cn-north-1:123456789012:jobs",
            QueueRef(
                "jobs",
                "cn-north-1",
                account="123456789012",
                arn="arn:aws-cn:sqs:cn-north-1:123456789012:jobs",
            ),
            id="an arn in the china partition",
        ),
        pytest.param(
            f"  {URL}  ",
            QueueRef("jobs", "eu-west-1", url=URL),
            id="surrounding spaces are ignored",
        ),
    ],
)
def test_a_queue_id_is_a_url_or_an_arn(queue_id: str, expected: QueueRef) -> None:
    assert parse_queue_id(queue_id) == expected


@pytest.mark.parametrize(
    "queue_id",
    [
        pytest.param("jobs", id="a bare queue name"),
        pytest.param("arn:aws:sns:eu-west-1:123456789012:jobs", id="an sns arn"),
        pytest.param("arn:aws:sqs:eu-west-1::jobs", id="an arn without account"),
        pytest.param("arn:aws:sqs:eu-west-1:123456789012:", id="an arn without name"),
        pytest.param("arn:aws:sqs:eu-west-1:123456789012:jobs:extra", id="an arn with a suffix"),
        pytest.param("https://sqs.eu-west-1.amazonaws.com/", id="a url without a queue"),
        pytest.param("https://sqs.eu-west-1.amazonaws.com/jobs", id="an aws url without account"),
        pytest.param(f"{URL}?Action=GetQueueAttributes", id="a url with a query"),
        pytest.param("ftp://sqs.eu-west-1.amazonaws.com/123456789012/jobs", id="not http"),
        pytest.param("http://[::1/123456789012/jobs", id="a broken host"),
        pytest.param(
            "https://sqs.eu-west-1.amazonaws.com/123456789012/jo bs", id="a space in the name"
        ),
    ],
)
def test_anything_else_is_a_spec_error_on_the_id(queue_id: str) -> None:
    with pytest.raises(SpecError, match="is not an SQS queue URL or ARN") as caught:
        parse_queue_id(queue_id)
    assert caught.value.path == "spec.queue.id"


@pytest.mark.parametrize(
    ("host", "region"),
    [
        pytest.param("sqs.eu-west-1.amazonaws.com", "eu-west-1", id="regional"),
        pytest.param("SQS.EU-WEST-1.AMAZONAWS.COM", "eu-west-1", id="upper case"),
        pytest.param("sqs-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1", id="fips"),
        pytest.param("sqs.cn-north-1.amazonaws.com.cn", "cn-north-1", id="china"),
        pytest.param("sqs.ap-southeast-2.api.aws", "ap-southeast-2", id="dual stack"),
        pytest.param("eu-central-1.queue.amazonaws.com", "eu-central-1", id="legacy regional"),
        pytest.param("queue.amazonaws.com", "us-east-1", id="legacy us-east-1"),
        pytest.param(
            "vpce-0a1b-2c3d.sqs.eu-west-1.vpce.amazonaws.com", "eu-west-1", id="vpc endpoint"
        ),
        pytest.param("127.0.0.1", None, id="an ip address"),
        pytest.param("localstack", None, id="an emulator"),
        pytest.param("sqs.eu-west-1.example.com", None, id="not an aws domain"),
    ],
)
def test_the_region_is_read_from_an_aws_host_name(host: str, region: str | None) -> None:
    assert region_from_host(host) == region


@pytest.mark.parametrize(
    ("queue", "region"),
    [
        pytest.param({"id": URL}, "eu-west-1", id="the url names the region"),
        pytest.param({"id": ARN}, "eu-west-1", id="the arn names the region"),
        pytest.param(
            {"id": ARN, "region": "us-west-2"}, "us-west-2", id="spec region beats the arn"
        ),
        pytest.param(
            {"id": URL, "region": "us-west-2"}, "us-west-2", id="spec region beats the url"
        ),
        pytest.param(
            {"id": "http://localhost:9324/000000000000/jobs"},
            None,
            id="an emulator uses the default chain",
        ),
    ],
)
def test_the_client_region_comes_from_the_spec_then_the_id(
    queue: dict[str, Any], region: str | None
) -> None:
    aws = FakeAWS()
    producer(aws, **queue).observe(NOW)
    assert aws.requests == [("sqs", region)]


def test_a_malformed_id_fails_when_the_producer_is_created() -> None:
    with pytest.raises(SpecError, match="is not an SQS queue URL or ARN") as info:
        producer(FakeAWS(), id="jobs")
    assert info.value.path == "spec.queue.id"


# --------------------------------------------------------------------------- length


@pytest.mark.parametrize(
    ("include_in_flight", "include_delayed", "names"),
    [
        pytest.param(
            True, False, (VISIBLE, IN_FLIGHT), id="the default counts visible and in flight"
        ),
        pytest.param(False, False, (VISIBLE,), id="visible only"),
        pytest.param(True, True, (VISIBLE, IN_FLIGHT, DELAYED), id="everything"),
        pytest.param(False, True, (VISIBLE, DELAYED), id="visible and delayed"),
    ],
)
def test_only_the_counted_attributes_are_asked_for(
    include_in_flight: bool, include_delayed: bool, names: tuple[str, ...]
) -> None:
    assert attribute_names(include_in_flight, include_delayed) == names


@pytest.mark.parametrize(
    ("queue", "length"),
    [
        pytest.param({}, 5, id="visible 3 plus in flight 2 by default"),
        pytest.param({"includeInFlight": False}, 3, id="visible 3 alone"),
        pytest.param({"includeDelayed": True}, 6, id="plus delayed 1"),
        pytest.param(
            {"includeInFlight": False, "includeDelayed": True}, 4, id="visible and delayed"
        ),
    ],
)
def test_the_length_is_the_sum_of_the_counted_attributes(
    queue: dict[str, Any], length: int
) -> None:
    aws = FakeAWS()
    observation = producer(aws, **queue).observe(NOW)
    (signal,) = observation.signals
    assert (signal.name, signal.value, signal.timestamp, dict(signal.labels)) == (
        LENGTH_SIGNAL,
        float(length),
        NOW,
        {"queue": "jobs"},
    )
    assert observation.status == {"queue": {"length": length, "oldestMessageAgeSeconds": None}}
    ((operation, call),) = aws.sqs.calls
    assert operation == "GetQueueAttributes"
    assert call == {
        "QueueUrl": URL,
        "AttributeNames": list(
            attribute_names(queue.get("includeInFlight", True), queue.get("includeDelayed", False))
        ),
    }


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        pytest.param({IN_FLIGHT: "2"}, f"the response has no {VISIBLE}", id="a missing attribute"),
        pytest.param(
            {VISIBLE: "many", IN_FLIGHT: "2"},
            f"{VISIBLE} is 'many', not a whole number",
            id="a word",
        ),
        pytest.param(
            {VISIBLE: "2.5", IN_FLIGHT: "2"},
            f"{VISIBLE} is '2.5', not a whole number",
            id="a fraction",
        ),
        pytest.param(
            {VISIBLE: "", IN_FLIGHT: "2"},
            f"{VISIBLE} is '', not a whole number",
            id="an empty string",
        ),
        pytest.param(
            {VISIBLE: None, IN_FLIGHT: "2"}, f"{VISIBLE} is None, not a whole number", id="null"
        ),
        pytest.param(
            {VISIBLE: True, IN_FLIGHT: "2"},
            f"{VISIBLE} is True, not a whole number",
            id="a boolean",
        ),
        pytest.param(
            {VISIBLE: "3", IN_FLIGHT: "-2"},
            f"{IN_FLIGHT} is -2, a count cannot be negative",
            id="negative",
        ),
    ],
)
def test_a_malformed_count_is_a_permanent_error_naming_the_attribute(
    attributes: dict[str, Any], message: str
) -> None:
    with pytest.raises(PermanentError, match=message) as caught:
        queue_length(attributes, (VISIBLE, IN_FLIGHT), URL)
    assert caught.value.code == "MalformedResponse"
    assert URL in caught.value.message


def test_a_response_without_attributes_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match="no Attributes"):
        queue_length(None, (VISIBLE,), URL)


def test_counts_may_come_as_integers_or_padded_strings() -> None:
    assert queue_length({VISIBLE: 4, IN_FLIGHT: " 7 "}, (VISIBLE, IN_FLIGHT), URL) == 11


# --------------------------------------------------------------------------- oldest message


@pytest.mark.parametrize(
    ("now", "window"),
    [
        pytest.param(1_767_225_630.0, (1_767_225_300.0, 1_767_225_660.0), id="mid minute"),
        pytest.param(1_767_225_600.0, (1_767_225_300.0, 1_767_225_660.0), id="on the minute"),
        pytest.param(1_767_225_659.9, (1_767_225_300.0, 1_767_225_660.0), id="end of the minute"),
    ],
)
def test_the_age_window_is_five_whole_minutes_and_the_current_one(
    now: float, window: tuple[float, float]
) -> None:
    assert age_window(now) == window


def test_the_age_query_asks_for_the_maximum_by_queue_name_newest_first() -> None:
    request = age_request("jobs", NOW)
    assert request["MetricDataQueries"] == [
        {
            "Id": "age",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SQS",
                    "MetricName": "ApproximateAgeOfOldestMessage",
                    "Dimensions": [{"Name": "QueueName", "Value": "jobs"}],
                },
                "Period": 60,
                "Stat": "Maximum",
            },
            "ReturnData": True,
        }
    ]
    assert request["ScanBy"] == "TimestampDescending"
    assert request["StartTime"] == datetime(2025, 12, 31, 23, 55, tzinfo=UTC)
    assert request["EndTime"] == datetime(2026, 1, 1, 0, 1, tzinfo=UTC)


def test_the_oldest_message_age_is_the_newest_cloudwatch_datapoint() -> None:
    aws = FakeAWS(
        cloudwatch=FakeCloudWatch([(NOW - 150, 42.0), (NOW - 30, 95.0), (NOW - 90, 80.0)])
    )
    observation = producer(aws, oldestMessageAge=True).observe(NOW)
    assert [(s.name, s.value, dict(s.labels)) for s in observation.signals] == [
        (LENGTH_SIGNAL, 5.0, {"queue": "jobs"}),
        (AGE_SIGNAL, 95.0, {"queue": "jobs"}),
    ]
    assert observation.status == {"queue": {"length": 5, "oldestMessageAgeSeconds": 95.0}}
    assert aws.requests == [("sqs", "eu-west-1"), ("cloudwatch", "eu-west-1")]


def test_without_a_datapoint_the_age_is_left_out_and_not_an_error() -> None:
    aws = FakeAWS(cloudwatch=FakeCloudWatch([]))
    observation = producer(aws, oldestMessageAge=True).observe(NOW)
    assert [s.name for s in observation.signals] == [LENGTH_SIGNAL]
    assert observation.status == {"queue": {"length": 5, "oldestMessageAgeSeconds": None}}


def test_cloudwatch_is_not_asked_unless_the_age_is_wanted() -> None:
    aws = FakeAWS()
    producer(aws).observe(NOW)
    assert aws.cloudwatch.calls == []
    assert ("cloudwatch", "eu-west-1") not in aws.requests


@pytest.mark.parametrize(
    ("error", "expected", "code"),
    [
        pytest.param(
            client_error("AccessDeniedException", 400, "GetMetricData"),
            PermanentError,
            "AccessDeniedException",
            id="access denied",
        ),
        pytest.param(
            client_error("Throttling", 400, "GetMetricData"),
            RetryableError,
            "Throttling",
            id="throttled",
        ),
    ],
)
def test_a_failing_cloudwatch_call_is_an_error(
    error: Exception, expected: type[Exception], code: str
) -> None:
    aws = FakeAWS()
    aws.cloudwatch.error = error
    with pytest.raises(
        expected, match="GetMetricData for AWS/SQS ApproximateAgeOfOldestMessage of queue jobs"
    ) as caught:
        producer(aws, oldestMessageAge=True).observe(NOW)
    assert getattr(caught.value, "code", None) == code
    assert caught.value.__cause__ is error


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param("Forbidden", PermanentError, id="forbidden"),
        pytest.param("InternalError", RetryableError, id="internal error"),
    ],
)
def test_a_failed_query_result_is_an_error(status: str, expected: type[Exception]) -> None:
    aws = FakeAWS(cloudwatch=FakeCloudWatch([(NOW - 30, 5.0)]))
    aws.cloudwatch.status = status
    with pytest.raises(expected, match=f"the query result is {status}"):
        producer(aws, oldestMessageAge=True).observe(NOW)


def test_a_negative_age_is_a_permanent_error() -> None:
    aws = FakeAWS(cloudwatch=FakeCloudWatch([(NOW - 30, -5.0)]))
    with pytest.raises(PermanentError, match="negative"):
        producer(aws, oldestMessageAge=True).observe(NOW)


# --------------------------------------------------------------------------- the aws boundary


def test_the_factory_returns_a_producer_and_asks_for_no_client() -> None:
    aws = FakeAWS()
    built = producer(aws)
    assert isinstance(built, Producer)
    assert aws.requests == []


def test_clients_are_created_on_the_first_observation_and_reused() -> None:
    aws = FakeAWS(cloudwatch=FakeCloudWatch([(NOW - 30, 5.0)]))
    built = producer(aws, oldestMessageAge=True)
    for step in range(3):
        built.observe(NOW + step * 15)
    assert aws.requests == [("sqs", "eu-west-1"), ("cloudwatch", "eu-west-1")]
    assert len(aws.sqs.calls) == 3


def test_an_arn_is_resolved_to_its_url_once() -> None:
    aws = FakeAWS()
    built = producer(aws, id=ARN)
    built.observe(NOW)
    built.observe(NOW + 15)
    operations = [
        (operation, call.get("QueueName"), call.get("QueueOwnerAWSAccountId"), call.get("QueueUrl"))
        for operation, call in aws.sqs.calls
    ]
    assert operations == [
        ("GetQueueUrl", "jobs", "123456789012", None),
        ("GetQueueAttributes", None, None, URL),
        ("GetQueueAttributes", None, None, URL),
    ]


@pytest.mark.parametrize(
    ("error", "expected", "code"),
    [
        pytest.param(
            client_error("AccessDenied", 403),
            PermanentError,
            "AccessDenied",
            id="access denied is permanent",
        ),
        pytest.param(
            client_error("AWS.SimpleQueueService.NonExistentQueue"),
            NotFoundError,
            "AWS.SimpleQueueService.NonExistentQueue",
            id="a missing queue is not found",
        ),
        pytest.param(
            client_error("RequestThrottled"),
            RetryableError,
            "RequestThrottled",
            id="throttling is retryable",
        ),
        pytest.param(
            client_error("InternalError", 500),
            RetryableError,
            "InternalError",
            id="a server error is retryable",
        ),
    ],
)
def test_aws_errors_are_translated_at_the_boundary(
    error: ClientError, expected: type[Exception], code: str
) -> None:
    aws = FakeAWS()
    aws.sqs.error = error
    with pytest.raises(expected) as caught:
        producer(aws).observe(NOW)
    assert type(caught.value) is expected
    assert getattr(caught.value, "code", None) == code
    assert str(caught.value).startswith(f"GetQueueAttributes on {URL}: {code}")
    assert caught.value.__cause__ is error


def test_no_region_anywhere_is_a_permanent_error_and_is_tried_again_next_time() -> None:
    aws = FakeAWS()
    aws.error = NoRegionError()
    built = producer(aws, id="http://localhost:9324/000000000000/jobs")
    with pytest.raises(PermanentError, match="no AWS region") as caught:
        built.observe(NOW)
    assert caught.value.code == "NoRegion"
    aws.error = None
    assert built.observe(NOW).signals[0].value == 5.0


def test_importing_and_creating_the_producer_does_not_import_boto3() -> None:
    script = (
        "import sys\n"
        "from autoscaler.api import BackendContext, MetricsProducer\n"
        "from producers.sqs import create\n"
        "spec = {'metadata': {'name': 'q'}, 'spec': {'queue': {'type': 'AWSSQSQueue', "
        f"'id': '{ARN}'}}}}}}\n"
        "create(MetricsProducer.model_validate(spec), BackendContext(clock=lambda: 0.0))\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, timeout=60)
