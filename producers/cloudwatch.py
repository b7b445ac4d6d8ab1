"""CloudWatch producer (``cloudWatch``): the newest datapoint of one CloudWatch metric.

Semantics follow KEDA's ``aws-cloudwatch`` scaler:

* **Query.** One ``GetMetricData`` call per observation with a single ``MetricStat`` query:
  ``namespace``, ``metricName``, ``dimensions`` (as ``[{Name, Value}]``), ``periodSeconds`` as
  the period and ``statistic`` as the stat (``Average``, ``Sum``, ``Maximum``, a percentile such
  as ``p99`` ...).
* **Window.** ``end = floor((now − endOffsetSeconds) / periodSeconds) × periodSeconds`` and
  ``start = end − collectionWindowSeconds`` (:func:`query_window`). Truncating to the period
  leaves out the current, still-filling period; ``endOffsetSeconds`` moves the window further
  back for metrics that arrive late.
* **Newest wins.** Datapoints are scanned ``TimestampDescending`` and the one with the latest
  timestamp is the value. Descending order also means the first page of a long answer already
  holds it, so the producer never pages.
* **Empty result.** With ``emptyValue`` set, that value is reported and the status says so.
  Without it the observation fails with a :class:`~autoscaler.errors.RetryableError` (code
  ``NoDatapoints``): an empty window usually means the metric arrives late or the source was
  idle for a moment, and a later observation will find data. The loop then keeps its
  "failing metric" rules (never scale down on a missing metric) instead of acting on a made-up
  number. A wrong namespace, metric name or dimension also gives an empty answer, and the error
  message names all of them and the window so that is easy to spot.

Signal: ``value`` with labels ``{"namespace": ..., "metric": ...}``. Status:
``{"values": {"value": V, "datapointAgeSeconds": now − datapoint time}}``, or
``{"values": {"value": V, "emptyValue": V}}`` when the configured empty value was reported.

Errors: AWS failures are translated by :func:`autoscaler.aws.translate`. A query result whose
``StatusCode`` is ``Forbidden`` is a ``PermanentError``, ``InternalError`` a ``RetryableError``;
a malformed answer (timestamps and values that do not pair up, a value that is not a number) is
a ``PermanentError``.

boto3 is not imported by this module: the client comes from the shared
:class:`autoscaler.aws.AWSClients` on the first observation and is reused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from autoscaler.api import BackendContext, MetricsProducer, Observation, Signal
from autoscaler.api.metricsproducer import CloudWatchSpec
from autoscaler.aws import translate
from autoscaler.errors import PermanentError, RetryableError

#: The one signal this producer emits.
SIGNAL_NAME = "value"
#: Error code of an empty result without ``emptyValue``.
NO_DATAPOINTS = "NoDatapoints"
#: Error code of a response the producer cannot use.
MALFORMED = "MalformedResponse"
_QUERY_ID = "value"


def query_window(
    now: float, period_seconds: int, collection_window_seconds: int, end_offset_seconds: int
) -> tuple[float, float]:
    """``(start, end)`` in epoch seconds of the query at ``now``.

    ``end`` is ``now − end_offset_seconds`` truncated to a whole period (periods are aligned to
    the epoch, as CloudWatch aligns them), ``start`` is ``collection_window_seconds`` earlier.

    >>> query_window(130.0, 60, 300, 0)
    (-180.0, 120.0)
    """
    end = math.floor((now - end_offset_seconds) / period_seconds) * period_seconds
    return float(end - collection_window_seconds), float(end)


def metric_query(spec: CloudWatchSpec) -> dict[str, Any]:
    """The single ``MetricDataQueries`` entry for ``spec``."""
    metric: dict[str, Any] = {"Namespace": spec.namespace, "MetricName": spec.metric_name}
    if spec.dimensions:
        metric["Dimensions"] = [{"Name": d.name, "Value": d.value} for d in spec.dimensions]
    return {
        "Id": _QUERY_ID,
        "MetricStat": {"Metric": metric, "Period": spec.period_seconds, "Stat": spec.statistic},
        "ReturnData": True,
    }


def metric_request(spec: CloudWatchSpec, now: float) -> dict[str, Any]:
    """The ``GetMetricData`` arguments for ``spec`` at ``now``."""
    start, end = query_window(
        now, spec.period_seconds, spec.collection_window_seconds, spec.end_offset_seconds
    )
    return {
        "MetricDataQueries": [metric_query(spec)],
        "StartTime": datetime.fromtimestamp(start, tz=UTC),
        "EndTime": datetime.fromtimestamp(end, tz=UTC),
        "ScanBy": "TimestampDescending",
    }


def describe(spec: CloudWatchSpec) -> str:
    """``AWS/SQS ApproximateNumberOfMessagesVisible{QueueName=jobs} Maximum/60s``."""
    dimensions = ",".join(f"{d.name}={d.value}" for d in spec.dimensions)
    return (
        f"{spec.namespace} {spec.metric_name}{{{dimensions}}} "
        f"{spec.statistic}/{spec.period_seconds}s"
    )


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def newest_datapoint(
    response: Mapping[str, Any], query_id: str, action: str
) -> tuple[float, float] | None:
    """The newest ``(timestamp, value)`` of query ``query_id`` in a ``GetMetricData``
    response, or ``None`` when it has no datapoint.

    A result whose ``StatusCode`` is ``Forbidden`` is a permanent error, ``InternalError`` a
    retryable one; ``PartialData`` is fine (the newest datapoints come first).
    """
    results = response.get("MetricDataResults") or []
    result = next((r for r in results if r.get("Id") == query_id), None)
    if result is None:
        return None
    status = result.get("StatusCode")
    if status in ("Forbidden", "InternalError"):
        details = "; ".join(str(m.get("Value", m)) for m in result.get("Messages") or [])
        message = f"{action}: the query result is {status}" + (f": {details}" if details else "")
        if status == "Forbidden":
            raise PermanentError(message, code="Forbidden")
        raise RetryableError(message, code="InternalError")
    timestamps = list(result.get("Timestamps") or [])
    values = list(result.get("Values") or [])
    if len(timestamps) != len(values):
        raise PermanentError(
            f"{action}: {len(timestamps)} timestamps but {len(values)} values", code=MALFORMED
        )
    if not timestamps:
        return None
    newest_time, newest_value = max(zip(timestamps, values, strict=True), key=lambda p: p[0])
    when = newest_time.timestamp() if isinstance(newest_time, datetime) else float(newest_time)
    try:
        value = float(newest_value)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise PermanentError(
            f"{action}: the datapoint {newest_value!r} is not a number", code=MALFORMED
        )
    return when, value


class CloudWatchProducer:
    """Emits ``value``: the newest datapoint of one CloudWatch metric in the query window."""

    def __init__(self, spec: CloudWatchSpec, aws: Any) -> None:
        self.spec = spec
        self._aws = aws
        self._client: Any = None
        self._labels = {"namespace": spec.namespace, "metric": spec.metric_name}
        self._metric = describe(spec)
        self._action = f"GetMetricData for {self._metric}"

    def observe(self, now: float) -> Observation:
        """Query the window that ends before ``now`` and report its newest datapoint."""
        request = metric_request(self.spec, now)
        cloudwatch = self._cloudwatch()
        try:
            response = cloudwatch.get_metric_data(**request)
        except Exception as exc:
            raise translate(exc, self._action) from exc
        newest = newest_datapoint(response, _QUERY_ID, self._action)
        values: dict[str, float]
        if newest is not None:
            timestamp, value = newest
            values = {"value": value, "datapointAgeSeconds": now - timestamp}
        elif self.spec.empty_value is not None:
            value = self.spec.empty_value
            values = {"value": value, "emptyValue": value}
        else:
            start = request["StartTime"].timestamp()
            end = request["EndTime"].timestamp()
            raise RetryableError(
                f"{self._action}: no datapoints between {_iso(start)} and {_iso(end)} "
                "(set emptyValue to report a value instead)",
                code=NO_DATAPOINTS,
            )
        return Observation(
            signals=(Signal(SIGNAL_NAME, value, now, self._labels),),
            status={"values": values},
        )

    def _cloudwatch(self) -> Any:
        if self._client is None:
            try:
                self._client = self._aws.client("cloudwatch", self.spec.region)
            except Exception as exc:
                raise translate(exc, f"creating the cloudwatch client for {self._metric}") from exc
        return self._client


def create(resource: MetricsProducer, context: BackendContext) -> CloudWatchProducer:
    """Build the producer for a MetricsProducer whose source is ``cloudWatch``."""
    spec = resource.spec.cloud_watch
    if spec is None:
        raise PermanentError("spec.cloudWatch is not set: this producer needs a cloudWatch source")
    return CloudWatchProducer(spec, context.aws)
