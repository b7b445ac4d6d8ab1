"""The CloudWatch producer without a server: the window rule, the request, choosing a datapoint."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from autoscaler.api import BackendContext, MetricsProducer, Producer
from autoscaler.clock import FakeClock
from autoscaler.errors import PermanentError, RetryableError
from producers.cloudwatch import (
    CloudWatchProducer,
    create,
    metric_query,
    metric_request,
    newest_datapoint,
    query_window,
)

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a multiple of every period
NOW = T0 + 130.0  # 00:02:10
ROOT = Path(__file__).resolve().parents[3]


def at(moment: str) -> datetime:
    """``"2026-01-01T00:02"`` (UTC) → an aware datetime."""
    return datetime.fromisoformat(moment).replace(tzinfo=UTC)


class FakeCloudWatch:
    """Answers GetMetricData with ``points`` in the given order, or raises ``error``."""

    def __init__(self, points: list[tuple[float, float]] | None = None) -> None:
        self.points = points or []
        self.error: Exception | None = None
        self.result: dict[str, Any] | None = None
        self.calls: list[dict[str, Any]] = []

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        if self.result is not None:
            return {"MetricDataResults": [self.result]}
        return {
            "MetricDataResults": [
                {
                    "Id": kwargs["MetricDataQueries"][0]["Id"],
                    "Label": "whatever",
                    "Timestamps": [datetime.fromtimestamp(t, UTC) for t, _ in self.points],
                    "Values": [v for _, v in self.points],
                    "StatusCode": "Complete",
                }
            ]
        }


class FakeAWS:
    """Stands in for ``autoscaler.aws.AWSClients``."""

    def __init__(self, cloudwatch: FakeCloudWatch | None = None) -> None:
        self.cloudwatch = cloudwatch or FakeCloudWatch()
        self.requests: list[tuple[str, str | None]] = []

    def client(self, service: str, region: str | None = None) -> Any:
        self.requests.append((service, region))
        assert service == "cloudwatch"
        return self.cloudwatch


def resource(**cloud_watch: Any) -> MetricsProducer:
    cloud_watch.setdefault("namespace", "AWS/SQS")
    cloud_watch.setdefault("metricName", "ApproximateNumberOfMessagesVisible")
    return MetricsProducer.model_validate(
        {"metadata": {"name": "visible"}, "spec": {"cloudWatch": cloud_watch}}
    )


def producer(aws: FakeAWS, **cloud_watch: Any) -> CloudWatchProducer:
    return create(resource(**cloud_watch), BackendContext(clock=FakeClock(), aws=aws))


def spec(**cloud_watch: Any) -> Any:
    return resource(**cloud_watch).spec.cloud_watch


# --------------------------------------------------------------------------- the window


@pytest.mark.parametrize(
    ("now", "period", "window", "offset", "expected"),
    [
        pytest.param(
            NOW,
            60,
            300,
            0,
            (at("2025-12-31T23:57"), at("2026-01-01T00:02")),
            id="the end is truncated to the period",
        ),
        pytest.param(
            T0 + 120.0,
            60,
            300,
            0,
            (T0 - 180.0, T0 + 120.0),
            id="a now on a period boundary is the end itself",
        ),
        pytest.param(
            T0 + 119.999,
            60,
            300,
            0,
            (T0 - 240.0, T0 + 60.0),
            id="just before the boundary belongs to the previous period",
        ),
        pytest.param(
            NOW,
            60,
            300,
            60,
            (T0 - 240.0, T0 + 60.0),
            id="an offset of one period moves the window back by one",
        ),
        pytest.param(
            NOW,
            60,
            300,
            10,
            (T0 - 180.0, T0 + 120.0),
            id="an offset smaller than the rest of the period changes nothing",
        ),
        pytest.param(
            NOW,
            60,
            300,
            11,
            (T0 - 240.0, T0 + 60.0),
            id="an offset larger than the rest of the period moves the end back",
        ),
        pytest.param(
            NOW,
            300,
            600,
            0,
            (T0 - 600.0, T0),
            id="five minute periods",
        ),
        pytest.param(
            NOW,
            60,
            90,
            0,
            (T0 + 30.0, T0 + 120.0),
            id="a window that is not a multiple of the period starts mid period",
        ),
        pytest.param(
            NOW,
            1,
            10,
            0,
            (T0 + 120.0, T0 + 130.0),
            id="one second high resolution periods",
        ),
        pytest.param(
            NOW + 0.75,
            1,
            10,
            0,
            (T0 + 120.0, T0 + 130.0),
            id="fractions of a second are dropped",
        ),
        pytest.param(
            NOW,
            3600,
            86400,
            0,
            (T0 - 86400.0, T0),
            id="hourly periods over a day",
        ),
    ],
)
def test_the_window_ends_at_now_minus_the_offset_truncated_to_the_period(
    now: float,
    period: int,
    window: int,
    offset: int,
    expected: tuple[float | datetime, float | datetime],
) -> None:
    want = tuple(e.timestamp() if isinstance(e, datetime) else e for e in expected)
    assert query_window(now, period, window, offset) == want


# --------------------------------------------------------------------------- the request


@pytest.mark.parametrize(
    "statistic",
    ["Average", "Sum", "Maximum", "Minimum", "SampleCount", "p99", "p99.9", "tm90", "IQM"],
)
def test_the_statistic_is_passed_as_the_stat_including_percentiles(statistic: str) -> None:
    query = metric_query(spec(statistic=statistic))
    assert query["MetricStat"]["Stat"] == statistic


def test_the_query_names_the_metric_its_dimensions_and_the_period() -> None:
    query = metric_query(
        spec(
            namespace="App",
            metricName="Depth",
            dimensions=[{"name": "Queue", "value": "jobs"}, {"name": "Env", "value": "prod"}],
            periodSeconds=300,
            collectionWindowSeconds=900,
        )
    )
    assert query == {
        "Id": "value",
        "MetricStat": {
            "Metric": {
                "Namespace": "App",
                "MetricName": "Depth",
                "Dimensions": [
                    {"Name": "Queue", "Value": "jobs"},
                    {"Name": "Env", "Value": "prod"},
                ],
            },
            "Period": 300,
            "Stat": "Average",
        },
        "ReturnData": True,
    }


def test_a_metric_without_dimensions_sends_none() -> None:
    assert "Dimensions" not in metric_query(spec())["MetricStat"]["Metric"]


def test_the_request_scans_newest_first_over_the_window_as_utc_datetimes() -> None:
    request = metric_request(spec(endOffsetSeconds=60), NOW)
    assert request["ScanBy"] == "TimestampDescending"
    assert request["StartTime"] == at("2025-12-31T23:56")
    assert request["EndTime"] == at("2026-01-01T00:01")
    assert len(request["MetricDataQueries"]) == 1


# --------------------------------------------------------------------------- the datapoint


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        pytest.param([(T0, 1.0), (T0 - 60, 2.0)], (T0, 1.0), id="newest first"),
        pytest.param([(T0 - 60, 2.0), (T0, 1.0)], (T0, 1.0), id="oldest first"),
        pytest.param([(T0 - 120, 9.0), (T0, 4.0), (T0 - 60, 7.0)], (T0, 4.0), id="in any order"),
        pytest.param([(T0, 0.0)], (T0, 0.0), id="a zero is a value"),
        pytest.param([], None, id="nothing"),
    ],
)
def test_the_newest_datapoint_wins(
    points: list[tuple[float, float]], expected: tuple[float, float] | None
) -> None:
    response = {
        "MetricDataResults": [
            {
                "Id": "value",
                "Timestamps": [datetime.fromtimestamp(t, UTC) for t, _ in points],
                "Values": [v for _, v in points],
                "StatusCode": "Complete",
            }
        ]
    }
    assert newest_datapoint(response, "value", "GetMetricData") == expected


def test_a_response_without_the_query_has_no_datapoint() -> None:
    assert newest_datapoint({"MetricDataResults": []}, "value", "GetMetricData") is None


def test_partial_data_still_gives_the_newest_datapoint() -> None:
    response = {
        "MetricDataResults": [
            {
                "Id": "value",
                "Timestamps": [at("2026-01-01T00:01")],
                "Values": [3.0],
                "StatusCode": "PartialData",
            }
        ]
    }
    assert newest_datapoint(response, "value", "GetMetricData") == (
        at("2026-01-01T00:01").timestamp(),
        3.0,
    )


@pytest.mark.parametrize(
    ("result", "expected", "message"),
    [
        pytest.param(
            {"StatusCode": "Forbidden", "Messages": [{"Code": "Forbidden", "Value": "no access"}]},
            PermanentError,
            "the query result is Forbidden: no access",
            id="forbidden is permanent",
        ),
        pytest.param(
            {"StatusCode": "InternalError"},
            RetryableError,
            "the query result is InternalError",
            id="an internal error is retryable",
        ),
        pytest.param(
            {"Timestamps": [at("2026-01-01T00:01")], "Values": [], "StatusCode": "Complete"},
            PermanentError,
            "1 timestamps but 0 values",
            id="timestamps without values",
        ),
        pytest.param(
            {"Timestamps": [at("2026-01-01T00:01")], "Values": ["lots"], "StatusCode": "Complete"},
            PermanentError,
            "'lots' is not a number",
            id="a value that is not a number",
        ),
        pytest.param(
            {
                "Timestamps": [at("2026-01-01T00:01")],
                "Values": [float("nan")],
                "StatusCode": "Complete",
            },
            PermanentError,
            "is not a number",
            id="not a number",
        ),
    ],
)
def test_a_failed_or_malformed_result_is_an_error(
    result: dict[str, Any], expected: type[Exception], message: str
) -> None:
    aws = FakeAWS()
    aws.cloudwatch.result = {"Id": "value", **result}
    with pytest.raises(expected, match=message) as caught:
        producer(aws).observe(NOW)
    assert type(caught.value) is expected


# --------------------------------------------------------------------------- observations


def test_the_signal_is_the_newest_value_labelled_with_namespace_and_metric() -> None:
    aws = FakeAWS(FakeCloudWatch([(T0 + 60, 12.0), (T0, 30.0)]))
    observation = producer(aws, statistic="Maximum").observe(NOW)
    (signal,) = observation.signals
    assert (signal.name, signal.value, signal.timestamp, dict(signal.labels)) == (
        "value",
        12.0,
        NOW,
        {"namespace": "AWS/SQS", "metric": "ApproximateNumberOfMessagesVisible"},
    )
    assert observation.status == {"values": {"value": 12.0, "datapointAgeSeconds": 70.0}}


@pytest.mark.parametrize("empty", [0.0, 2.5], ids=["zero", "a number"])
def test_an_empty_result_reports_the_configured_empty_value(empty: float) -> None:
    observation = producer(FakeAWS(), emptyValue=empty).observe(NOW)
    assert [s.value for s in observation.signals] == [empty]
    assert observation.status == {"values": {"value": empty, "emptyValue": empty}}


def test_an_empty_result_without_an_empty_value_is_retryable_and_names_the_query() -> None:
    built = producer(
        FakeAWS(), dimensions=[{"name": "QueueName", "value": "jobs"}], statistic="Sum"
    )
    with pytest.raises(RetryableError) as caught:
        built.observe(NOW)
    assert caught.value.code == "NoDatapoints"
    assert caught.value.message == (
        "GetMetricData for AWS/SQS ApproximateNumberOfMessagesVisible{QueueName=jobs} Sum/60s: "
        "no datapoints between 2025-12-31T23:57:00Z and 2026-01-01T00:02:00Z "
        "(set emptyValue to report a value instead)"
    )


def test_the_factory_returns_a_producer_and_asks_for_no_client() -> None:
    aws = FakeAWS()
    assert isinstance(producer(aws), Producer)
    assert aws.requests == []


def test_the_client_is_created_once_in_the_spec_region_and_reused() -> None:
    aws = FakeAWS(FakeCloudWatch([(T0, 1.0)]))
    built = producer(aws, region="ap-south-1")
    for step in range(3):
        built.observe(NOW + 60 * step)
    assert aws.requests == [("cloudwatch", "ap-south-1")]
    assert [call["EndTime"] for call in aws.cloudwatch.calls] == [
        at("2026-01-01T00:02"),
        at("2026-01-01T00:03"),
        at("2026-01-01T00:04"),
    ]


@pytest.mark.parametrize(
    ("error", "expected", "code"),
    [
        pytest.param(
            ClientError(
                {
                    "Error": {"Code": "AccessDenied", "Message": "not allowed"},
                    "ResponseMetadata": {"HTTPStatusCode": 403},
                },
                "GetMetricData",
            ),
            PermanentError,
            "AccessDenied",
            id="access denied is permanent",
        ),
        pytest.param(
            ClientError(
                {
                    "Error": {"Code": "InvalidParameterValue", "Message": "bad stat"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                "GetMetricData",
            ),
            PermanentError,
            "InvalidParameterValue",
            id="a rejected request is permanent",
        ),
        pytest.param(
            EndpointConnectionError(endpoint_url="https://monitoring.eu-west-1.amazonaws.com"),
            RetryableError,
            "ConnectionError",
            id="no connection is retryable",
        ),
    ],
)
def test_aws_errors_are_translated_at_the_boundary(
    error: Exception, expected: type[Exception], code: str
) -> None:
    aws = FakeAWS()
    aws.cloudwatch.error = error
    with pytest.raises(expected) as caught:
        producer(aws).observe(NOW)
    assert getattr(caught.value, "code", None) == code
    assert str(caught.value).startswith(
        "GetMetricData for AWS/SQS ApproximateNumberOfMessagesVisible{} Average/60s: "
    )
    assert caught.value.__cause__ is error


def test_importing_and_creating_the_producer_does_not_import_boto3() -> None:
    script = (
        "import sys\n"
        "from autoscaler.api import BackendContext, MetricsProducer\n"
        "from producers.cloudwatch import create\n"
        "spec = {'metadata': {'name': 'm'}, "
        "'spec': {'cloudWatch': {'namespace': 'App', 'metricName': 'Depth'}}}\n"
        "create(MetricsProducer.model_validate(spec), BackendContext(clock=lambda: 0.0))\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, timeout=60)
