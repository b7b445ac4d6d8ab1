"""SQS queue producer (``queue``, ``type: AWSSQSQueue``): the number of messages waiting for work.

Semantics follow KEDA's ``aws-sqs-queue`` scaler:

* **Length.** ``ApproximateNumberOfMessages`` (visible) + ``ApproximateNumberOfMessagesNotVisible``
  (in flight: received, not yet deleted; counted unless ``includeInFlight: false``) +
  ``ApproximateNumberOfMessagesDelayed`` (counted only with ``includeDelayed: true``). Scaling in
  while messages are in flight would kill the nodes doing that work, hence the default. One
  ``GetQueueAttributes`` call per observation asks for exactly the attributes that are counted.
* **Oldest message.** With ``oldestMessageAge: true`` the producer also reads the CloudWatch
  metric ``AWS/SQS ApproximateAgeOfOldestMessage`` (dimension ``QueueName``, statistic
  ``Maximum``, 60-second periods over the last five minutes, the newest datapoint). SQS itself
  does not expose the age. When CloudWatch has no datapoint yet (a new or idle queue) the age
  signal is left out and the status says ``null``: that is not an error. A failing CloudWatch
  call is.
* **Queue id.** ``spec.queue.id`` is a queue URL or a queue ARN. An ARN
  (``arn:aws:sqs:REGION:ACCOUNT:NAME``) is resolved to its URL once with ``GetQueueUrl`` and the
  URL is remembered. The region is ``spec.queue.region`` when set, else the ARN's region, else
  the region in an AWS queue URL's host name (``sqs.REGION.amazonaws.com``), else the boto3
  default chain (``AWS_REGION``, profile, ...), e.g. for a local emulator's URL.

Signals (labels ``{"queue": NAME}``): ``queue_length`` and, when enabled and available,
``queue_oldest_message_age_seconds``. Status: ``{"queue": {"length": N,
"oldestMessageAgeSeconds": A | None}}``.

Errors: AWS failures are translated by :func:`autoscaler.aws.translate` (a missing queue is a
``NotFoundError`` carrying the AWS code, throttling is retryable, access denied is permanent). A
response with a missing, non-numeric or negative count is a ``PermanentError`` naming the
attribute. An id that is neither a queue URL nor a queue ARN is a ``SpecError`` at creation.

boto3 is not imported by this module: clients come from the shared
:class:`autoscaler.aws.AWSClients` on the first observation and are reused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from autoscaler.api import BackendContext, MetricsProducer, Observation, Signal
from autoscaler.aws import translate
from autoscaler.errors import PermanentError, RetryableError, SpecError

#: The main signal: messages counted as waiting for work.
LENGTH_SIGNAL = "queue_length"
#: Age of the oldest message, from CloudWatch (only with ``oldestMessageAge: true``).
AGE_SIGNAL = "queue_oldest_message_age_seconds"

VISIBLE = "ApproximateNumberOfMessages"
IN_FLIGHT = "ApproximateNumberOfMessagesNotVisible"
DELAYED = "ApproximateNumberOfMessagesDelayed"

AGE_NAMESPACE = "AWS/SQS"
AGE_METRIC = "ApproximateAgeOfOldestMessage"
#: CloudWatch period of the age query: SQS publishes its metrics once a minute.
AGE_PERIOD_SECONDS = 60
#: How far back the age query looks for the newest datapoint.
AGE_WINDOW_SECONDS = 300
_AGE_QUERY_ID = "age"

#: Error code of a response the producer cannot use.
MALFORMED = "MalformedResponse"

_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sqs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"(?P<name>[^:/\s]+)$"
)
_WHOLE_NUMBER = re.compile(r"^\s*[+-]?[0-9]+\s*$")
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}(\.fifo)?$")
_AWS_DOMAIN = r"(?:amazonaws\.com(?:\.cn)?|api\.aws)"
_REGION = r"(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)"
_AWS_HOSTS = (
    # sqs.us-east-1.amazonaws.com, sqs-fips.us-gov-west-1.amazonaws.com, sqs.eu-west-1.api.aws
    re.compile(rf"^sqs(?:-fips)?\.{_REGION}\.{_AWS_DOMAIN}$"),
    # Legacy: eu-west-1.queue.amazonaws.com
    re.compile(rf"^{_REGION}\.queue\.amazonaws\.com(?:\.cn)?$"),
    # Interface VPC endpoints: vpce-0123-abcd.sqs.eu-west-1.vpce.amazonaws.com
    re.compile(rf"^(?:[a-z0-9-]+\.)+sqs\.{_REGION}\.vpce\.amazonaws\.com(?:\.cn)?$"),
)
#: Legacy host of us-east-1 without a region in its name.
_LEGACY_US_EAST_1 = "queue.amazonaws.com"


@dataclass(frozen=True, slots=True)
class QueueRef:
    """A parsed ``spec.queue.id``: a URL to call directly, or an ARN to resolve first."""

    name: str
    #: The region named by the id, if any (ARN region or AWS host name).
    region: str | None
    #: The queue URL; ``None`` for an ARN until ``GetQueueUrl`` resolves it.
    url: str | None = None
    #: The owner account of an ARN (passed to ``GetQueueUrl``).
    account: str | None = None
    arn: str | None = None


def region_from_host(host: str) -> str | None:
    """The region in an AWS SQS host name, or ``None`` when the host is not an AWS one.

    >>> region_from_host("sqs.eu-west-1.amazonaws.com")
    'eu-west-1'
    >>> region_from_host("localhost") is None
    True
    """
    host = host.lower().rstrip(".")
    if host == _LEGACY_US_EAST_1:
        return "us-east-1"
    for pattern in _AWS_HOSTS:
        match = pattern.match(host)
        if match:
            return match.group("region")
    return None


def parse_queue_id(queue_id: str) -> QueueRef:
    """Parse a queue URL or ARN; raise :class:`SpecError` (path ``spec.queue.id``) otherwise."""
    queue_id = queue_id.strip()
    if queue_id.startswith("arn:"):
        match = _ARN.match(queue_id)
        if match is None or not _QUEUE_NAME.match(match.group("name")):
            raise _bad_id(
                queue_id, "an SQS queue ARN looks like arn:aws:sqs:REGION:ACCOUNT:QUEUE_NAME"
            )
        return QueueRef(
            name=match.group("name"),
            region=match.group("region"),
            account=match.group("account"),
            arn=queue_id,
        )
    try:
        parts = urlsplit(queue_id)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        host = None
    if host and parts.scheme in ("http", "https"):
        segments = [segment for segment in parts.path.split("/") if segment]
        if not segments or not _QUEUE_NAME.match(segments[-1]) or parts.query or parts.fragment:
            raise _bad_id(
                queue_id,
                "a queue URL ends with the queue name, e.g. "
                "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs",
            )
        region = region_from_host(host)
        if region is not None and len(segments) != 2:
            raise _bad_id(
                queue_id,
                "an AWS queue URL has the form https://sqs.REGION.amazonaws.com/ACCOUNT/NAME",
            )
        return QueueRef(name=segments[-1], region=region, url=queue_id)
    raise _bad_id(
        queue_id,
        "use the queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME) "
        "or the queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME)",
    )


def _bad_id(queue_id: str, hint: str) -> SpecError:
    return SpecError(
        f"{queue_id!r} is not an SQS queue URL or ARN: {hint}",
        path="spec.queue.id",
    )


def attribute_names(include_in_flight: bool, include_delayed: bool) -> tuple[str, ...]:
    """The ``GetQueueAttributes`` attributes whose sum is the queue length."""
    names = [VISIBLE]
    if include_in_flight:
        names.append(IN_FLIGHT)
    if include_delayed:
        names.append(DELAYED)
    return tuple(names)


def _count(attributes: Mapping[str, Any], name: str, queue: str) -> int:
    if name not in attributes:
        raise PermanentError(
            f"GetQueueAttributes on {queue}: the response has no {name}", code=MALFORMED
        )
    raw = attributes[name]
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and _WHOLE_NUMBER.match(raw):
        value = int(raw)
    if value is None:
        raise PermanentError(
            f"GetQueueAttributes on {queue}: {name} is {raw!r}, not a whole number",
            code=MALFORMED,
        )
    if value < 0:
        raise PermanentError(
            f"GetQueueAttributes on {queue}: {name} is {value}, a count cannot be negative",
            code=MALFORMED,
        )
    return value


def queue_length(attributes: Mapping[str, Any] | None, names: Sequence[str], queue: str) -> int:
    """Sum the counted attributes of a ``GetQueueAttributes`` response.

    Raises :class:`PermanentError` naming the attribute when one is missing, not a whole number
    or negative.
    """
    if not isinstance(attributes, Mapping):
        raise PermanentError(
            f"GetQueueAttributes on {queue}: the response has no Attributes", code=MALFORMED
        )
    return sum(_count(attributes, name, queue) for name in names)


def age_window(now: float) -> tuple[float, float]:
    """``(start, end)`` of the oldest-message query: the last five whole minutes and the
    current one, so the newest datapoint CloudWatch has is inside."""
    end = (math.floor(now / AGE_PERIOD_SECONDS) + 1) * AGE_PERIOD_SECONDS
    return float(end - AGE_PERIOD_SECONDS - AGE_WINDOW_SECONDS), float(end)


def age_request(queue_name: str, now: float) -> dict[str, Any]:
    """The ``GetMetricData`` arguments for the queue's ``ApproximateAgeOfOldestMessage``."""
    start, end = age_window(now)
    return {
        "MetricDataQueries": [
            {
                "Id": _AGE_QUERY_ID,
                "MetricStat": {
                    "Metric": {
                        "Namespace": AGE_NAMESPACE,
                        "MetricName": AGE_METRIC,
                        "Dimensions": [{"Name": "QueueName", "Value": queue_name}],
                    },
                    "Period": AGE_PERIOD_SECONDS,
                    "Stat": "Maximum",
                },
                "ReturnData": True,
            }
        ],
        "StartTime": datetime.fromtimestamp(start, tz=UTC),
        "EndTime": datetime.fromtimestamp(end, tz=UTC),
        "ScanBy": "TimestampDescending",
    }


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


class SQSQueueProducer:
    """Emits ``queue_length`` (and optionally ``queue_oldest_message_age_seconds``) of one queue.

    Clients are created on the first observation and reused; an ARN's URL is resolved once.
    Calling :meth:`observe` from several threads is safe: at worst the URL is resolved twice.
    """

    def __init__(
        self,
        queue: QueueRef,
        *,
        region: str | None,
        aws: Any,
        include_in_flight: bool = True,
        include_delayed: bool = False,
        oldest_message_age: bool = False,
    ) -> None:
        self.queue = queue
        self.region = region
        self.attributes = attribute_names(include_in_flight, include_delayed)
        self.oldest_message_age = oldest_message_age
        self._aws = aws
        self._url = queue.url
        self._sqs: Any = None
        self._cloudwatch: Any = None
        self._labels = {"queue": queue.name}

    def observe(self, now: float) -> Observation:
        """Read the queue's length (and the age of its oldest message) at ``now``."""
        url = self._queue_url()
        sqs = self._sqs_client()
        try:
            response = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(self.attributes))
        except Exception as exc:
            raise translate(exc, f"GetQueueAttributes on {url}") from exc
        length = queue_length(response.get("Attributes"), self.attributes, url)
        signals = [Signal(LENGTH_SIGNAL, float(length), now, self._labels)]
        age: float | None = None
        if self.oldest_message_age:
            age = self._oldest_message_age(now)
            if age is not None:
                signals.append(Signal(AGE_SIGNAL, age, now, self._labels))
        return Observation(
            signals=tuple(signals),
            status={"queue": {"length": length, "oldestMessageAgeSeconds": age}},
        )

    def _client(self, service: str) -> Any:
        try:
            return self._aws.client(service, self.region)
        except Exception as exc:
            raise translate(
                exc, f"creating the {service} client for queue {self.queue.name}"
            ) from exc

    def _sqs_client(self) -> Any:
        if self._sqs is None:
            self._sqs = self._client("sqs")
        return self._sqs

    def _cloudwatch_client(self) -> Any:
        if self._cloudwatch is None:
            self._cloudwatch = self._client("cloudwatch")
        return self._cloudwatch

    def _queue_url(self) -> str:
        if self._url is not None:
            return self._url
        arn = self.queue.arn
        sqs = self._sqs_client()
        try:
            response = sqs.get_queue_url(
                QueueName=self.queue.name, QueueOwnerAWSAccountId=self.queue.account
            )
        except Exception as exc:
            raise translate(exc, f"GetQueueUrl on {arn}") from exc
        url = response.get("QueueUrl")
        if not isinstance(url, str) or not url:
            raise PermanentError(
                f"GetQueueUrl on {arn}: the response has no QueueUrl", code=MALFORMED
            )
        self._url = url
        return url

    def _oldest_message_age(self, now: float) -> float | None:
        action = f"GetMetricData for {AGE_NAMESPACE} {AGE_METRIC} of queue {self.queue.name}"
        cloudwatch = self._cloudwatch_client()
        try:
            response = cloudwatch.get_metric_data(**age_request(self.queue.name, now))
        except Exception as exc:
            raise translate(exc, action) from exc
        newest = newest_datapoint(response, _AGE_QUERY_ID, action)
        if newest is None:
            return None
        age = newest[1]
        if age < 0:
            raise PermanentError(f"{action}: the age {age} is negative", code=MALFORMED)
        return age


def validate(resource: MetricsProducer) -> None:
    """Check the form of ``spec.queue.id`` without calling AWS (used by ``autoscaler validate``)."""
    if resource.spec.queue is not None:
        parse_queue_id(resource.spec.queue.id)


def create(resource: MetricsProducer, context: BackendContext) -> SQSQueueProducer:
    """Build the producer for a MetricsProducer whose source is ``queue``."""
    spec = resource.spec.queue
    if spec is None:
        raise PermanentError("spec.queue is not set: this producer needs a queue source")
    queue = parse_queue_id(spec.id)
    return SQSQueueProducer(
        queue,
        region=spec.region or queue.region,
        aws=context.aws,
        include_in_flight=spec.include_in_flight,
        include_delayed=spec.include_delayed,
        oldest_message_age=spec.oldest_message_age,
    )
