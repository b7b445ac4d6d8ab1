"""The prometheus metric source: result parsing, whenEmpty, error translation, identity, and the
loop's implicit producers (with a fake query producer on a fake clock; the real client is tested
against a real Prometheus in tests/integration/test_prometheus_source.py)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import requests
from pydantic import ValidationError

from autoscaler import prometheus
from autoscaler.api import BackendContext, HorizontalAutoscaler, Observation, Signal
from autoscaler.api.horizontalautoscaler import PrometheusMetricSource
from autoscaler.clock import FakeClock
from autoscaler.config import SpecSet, load_text
from autoscaler.errors import (
    AutoscalerError,
    PermanentError,
    RetryableError,
    SpecError,
)
from autoscaler.loop import ControlLoop
from autoscaler.settings import PrometheusSettings, Settings
from tests.support import Backends, node_group

Q = "sum(jobs)"


def _vector(*series: tuple[dict[str, str], str]) -> list[dict[str, Any]]:
    return [{"metric": labels, "value": [1700000000.5, value]} for labels, value in series]


# --------------------------------------------------------------------------- sample_value


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (_vector(({}, "42")), 42.0),
        (_vector(({"__name__": "jobs", "queue": "a"}, "3.5")), 3.5),
        ([1700000000.5, "7"], 7.0),
        ([1700000000, "-2"], -2.0),
        ([], None),
    ],
    ids=["one sample", "one labelled series", "scalar", "scalar with an integer time", "empty"],
)
def test_one_sample_or_a_scalar_is_read_as_a_number(result: Any, expected: float | None) -> None:
    assert prometheus.sample_value(Q, result) == expected


@pytest.mark.parametrize(
    ("text", "check"),
    [("NaN", math.isnan), ("+Inf", lambda v: v == math.inf), ("-Inf", lambda v: v == -math.inf)],
    ids=["NaN", "+Inf", "-Inf"],
)
def test_nan_and_infinities_are_returned_as_such_for_when_empty_to_judge(
    text: str, check: Any
) -> None:
    assert check(prometheus.sample_value(Q, _vector(({}, text))))
    assert check(prometheus.sample_value(Q, [1700000000.0, text]))


def test_several_series_are_a_permanent_error_naming_the_query_and_the_series() -> None:
    result = _vector(
        ({"__name__": "up", "job": "a"}, "1"),
        ({"__name__": "up", "job": "b"}, "0"),
        ({"job": "c", "instance": "x:1"}, "1"),
    )

    with pytest.raises(PermanentError) as caught:
        prometheus.sample_value("up", result)

    assert caught.value.code == "TooManySeries"
    assert str(caught.value) == (
        'query \'up\' returned 3 series: up{job="a"}, up{job="b"}, '
        '{instance="x:1",job="c"}; it must return exactly one (aggregate it, e.g. with sum or max)'
    )


def test_a_long_list_of_series_names_the_first_three_and_counts_the_rest() -> None:
    result = _vector(*(({"__name__": "up", "job": str(i)}, "1") for i in range(5)))

    with pytest.raises(
        PermanentError, match=r"returned 5 series: .*job=\"2\"\}, \.\.\. \(2 more\)"
    ):
        prometheus.sample_value("up", result)


@pytest.mark.parametrize(
    ("result", "code", "message"),
    [
        (
            [{"metric": {"job": "a"}, "values": [[1.0, "1"], [2.0, "2"]]}],
            "NotASample",
            "query 'sum(jobs)' returned a range vector (1 series); the query must return an "
            "instant vector or a scalar, e.g. max_over_time(sum(jobs))",
        ),
        (
            [1700000000.0, "hello"],
            "NotASample",
            "query 'sum(jobs)' returned the string 'hello', not a number",
        ),
        (
            {"resultType": "vector"},
            "InvalidResponse",
            "query 'sum(jobs)' returned an unexpected result: {'resultType': 'vector'}",
        ),
        (
            [{"metric": {}}],
            "InvalidResponse",
            "query 'sum(jobs)' returned a sample without a value: {'metric': {}}",
        ),
        (
            _vector(({}, "many")),
            "InvalidResponse",
            "query 'sum(jobs)' returned 'many', which is not a number",
        ),
    ],
    ids=["range vector", "string", "not a list", "sample without value", "value not a number"],
)
def test_results_that_are_not_one_sample_are_permanent_errors(
    result: Any, code: str, message: str
) -> None:
    with pytest.raises(PermanentError) as caught:
        prometheus.sample_value(Q, result)

    assert (caught.value.code, str(caught.value)) == (code, message)


# --------------------------------------------------------------------------- whenEmpty


@pytest.mark.parametrize(
    ("value", "when_empty", "expected"),
    [
        (5.0, "Fail", 5.0),
        (0.0, "Fail", 0.0),
        (-1.5, "Zero", -1.5),
        (None, "Zero", 0.0),
        (math.nan, "Zero", 0.0),
        (math.inf, "Zero", 0.0),
        (-math.inf, "Zero", 0.0),
    ],
    ids=["finite", "zero", "negative", "empty as zero", "NaN as zero", "+Inf as zero", "-Inf"],
)
def test_when_empty_zero_reads_missing_and_non_finite_values_as_zero(
    value: float | None, when_empty: prometheus.WhenEmpty, expected: float
) -> None:
    assert prometheus.resolve_empty(Q, value, when_empty) == expected


@pytest.mark.parametrize(
    ("value", "code", "what"),
    [
        (None, "EmptyResult", "no series"),
        (math.nan, "NotANumber", "NaN"),
        (math.inf, "NotANumber", "+Inf"),
        (-math.inf, "NotANumber", "-Inf"),
    ],
    ids=["empty", "NaN", "+Inf", "-Inf"],
)
def test_when_empty_fail_makes_missing_and_non_finite_values_an_error(
    value: float | None, code: str, what: str
) -> None:
    with pytest.raises(PermanentError) as caught:
        prometheus.resolve_empty(Q, value, "Fail")

    assert caught.value.code == code
    assert str(caught.value) == (
        f"query 'sum(jobs)' returned {what} (whenEmpty: Fail; set whenEmpty: Zero to read it as 0)"
    )


def test_when_empty_defaults_to_fail_and_takes_only_zero_or_fail() -> None:
    assert PrometheusMetricSource(query=Q).when_empty == "Fail"
    assert PrometheusMetricSource.model_validate({"query": Q, "whenEmpty": "Zero"}).when_empty
    with pytest.raises(ValidationError, match="'Zero' or 'Fail'"):
        PrometheusMetricSource.model_validate({"query": Q, "whenEmpty": "Skip"})


# --------------------------------------------------------------------------- errors


URL = "http://prometheus:9090"
BAD_DATA = (
    '{"status":"error","errorType":"bad_data","error":"invalid parameter \\"query\\": '
    '1:5: parse error: unclosed left parenthesis"}'
)


@pytest.mark.parametrize(
    ("status", "body", "kind", "code", "message"),
    [
        (
            400,
            BAD_DATA,
            PermanentError,
            "BadQuery",
            "Prometheus rejected query 'sum(jobs)': bad_data: invalid parameter \"query\": "
            "1:5: parse error: unclosed left parenthesis",
        ),
        (
            422,
            '{"status":"error","errorType":"execution","error":"many-to-many matching"}',
            PermanentError,
            "BadQuery",
            "Prometheus rejected query 'sum(jobs)': execution: many-to-many matching",
        ),
        (
            503,
            '{"status":"error","errorType":"timeout","error":"query timed out"}',
            RetryableError,
            "ServerError",
            "Prometheus at http://prometheus:9090 answered HTTP 503 to query 'sum(jobs)': "
            "timeout: query timed out",
        ),
        (
            502,
            "<html>\n  <body>Bad   Gateway</body>\n</html>",
            RetryableError,
            "ServerError",
            "Prometheus at http://prometheus:9090 answered HTTP 502 to query 'sum(jobs)': "
            "<html> <body>Bad Gateway</body> </html>",
        ),
        (
            429,
            "slow down",
            RetryableError,
            "Throttled",
            "Prometheus at http://prometheus:9090 answered HTTP 429 to query 'sum(jobs)': "
            "slow down",
        ),
        (
            401,
            "Unauthorized\n",
            PermanentError,
            "Unauthorized",
            "Prometheus at http://prometheus:9090 answered HTTP 401: Unauthorized",
        ),
        (
            404,
            "",
            PermanentError,
            "NotFound",
            "Prometheus at http://prometheus:9090 answered HTTP 404 (is the URL the Prometheus "
            "base URL?): (empty body)",
        ),
    ],
    ids=["bad query", "execution error", "5xx", "proxy 502", "429", "401", "404"],
)
def test_http_errors_are_translated_with_prometheus_own_error_text(
    status: int, body: str, kind: type[AutoscalerError], code: str, message: str
) -> None:
    error = prometheus.http_error(Q, URL, status, body)

    assert type(error) is kind
    assert (error.code, str(error)) == (code, message)


def test_a_long_error_body_is_shortened() -> None:
    error = prometheus.http_error(Q, URL, 500, "x" * 1000)

    assert str(error).endswith("x…")
    assert len(str(error)) < 400


_REFUSED = (
    "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: /api/v1/query "
    "(Caused by NewConnectionError('<urllib3.connection.HTTPConnection object>: Failed to "
    "establish a new connection: [Errno 111] Connection refused'))"
)


@pytest.mark.parametrize(
    ("exc", "kind", "code", "message"),
    [
        (
            requests.exceptions.ConnectionError(_REFUSED),
            RetryableError,
            "ConnectionError",
            "cannot reach Prometheus at http://prometheus:9090: Connection refused",
        ),
        (
            requests.exceptions.ReadTimeout("read timed out"),
            RetryableError,
            "Timeout",
            "Prometheus at http://prometheus:9090 did not answer query 'sum(jobs)' within 2.5s",
        ),
        (
            requests.exceptions.ConnectTimeout("connect timed out"),
            RetryableError,
            "Timeout",
            "Prometheus at http://prometheus:9090 did not answer query 'sum(jobs)' within 2.5s",
        ),
        (
            requests.exceptions.SSLError("certificate verify failed: self-signed certificate"),
            PermanentError,
            "TLSError",
            "TLS with Prometheus at http://prometheus:9090 failed: certificate verify failed: "
            "self-signed certificate",
        ),
        (
            requests.exceptions.JSONDecodeError("Expecting value", "<html>", 0),
            PermanentError,
            "InvalidResponse",
            "Prometheus at http://prometheus:9090 answered query 'sum(jobs)' with something that "
            "is not Prometheus API JSON: Expecting value: line 1 column 1 (char 0)",
        ),
        (
            requests.exceptions.ChunkedEncodingError("connection broken"),
            RetryableError,
            "RequestError",
            "query 'sum(jobs)' to Prometheus at http://prometheus:9090 failed: connection broken",
        ),
    ],
    ids=["refused", "read timeout", "connect timeout", "TLS", "not JSON", "broken stream"],
)
def test_request_errors_are_retryable_unless_retrying_cannot_help(
    exc: Exception, kind: type[AutoscalerError], code: str, message: str
) -> None:
    error = prometheus.request_error(Q, URL, exc, timeout=2.5)

    assert type(error) is kind
    assert (error.code, str(error)) == (code, message)


# --------------------------------------------------------------------------- identity and settings


def test_the_metric_server_url_overrides_the_service_setting() -> None:
    settings = PrometheusSettings(url="http://default:9090/")
    override = PrometheusMetricSource(query=Q, server_url="https://other:9090/prom/")

    assert prometheus.server_url(PrometheusMetricSource(query=Q), settings) == (
        "http://default:9090"
    )
    assert prometheus.server_url(override, settings) == "https://other:9090/prom"
    assert prometheus.server_url(override, PrometheusSettings()) == "https://other:9090/prom"
    assert prometheus.server_url(PrometheusMetricSource(query=Q), PrometheusSettings()) is None


def test_metrics_that_run_the_same_query_share_one_key() -> None:
    settings = PrometheusSettings(url="http://p:9090")
    key = prometheus.source_key("team", PrometheusMetricSource(query=Q), settings)
    same = PrometheusMetricSource(query=Q, server_url="http://p:9090/")

    assert key.startswith("team/prometheus-") and len(key) == len("team/prometheus-") + 10
    assert prometheus.source_key("team", same, settings) == key
    others = [
        prometheus.source_key("other", PrometheusMetricSource(query=Q), settings),
        prometheus.source_key("team", PrometheusMetricSource(query="sum(x)"), settings),
        prometheus.source_key("team", PrometheusMetricSource(query=Q, when_empty="Zero"), settings),
        prometheus.source_key(
            "team", PrometheusMetricSource(query=Q, server_url="http://q:9090"), settings
        ),
    ]
    assert len({key, *others}) == 5


@pytest.mark.parametrize(
    "url",
    ["prometheus:9090", "ftp://prometheus", "http://", "http://a b"],
    ids=["no scheme", "not http", "no host", "space"],
)
def test_a_server_url_must_be_an_http_url(url: str) -> None:
    with pytest.raises(ValidationError, match="is not an http:// or https:// URL"):
        PrometheusMetricSource.model_validate({"query": Q, "serverUrl": url})


def test_the_settings_default_to_a_15_second_interval_and_no_server() -> None:
    settings = Settings().prometheus

    assert settings.url is None
    assert settings.interval_seconds == 15
    assert settings.timeout_seconds == 10
    assert not settings.insecure_skip_verify


def test_the_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOSCALER_PROMETHEUS__URL", "http://prom:9090")
    monkeypatch.setenv("AUTOSCALER_PROMETHEUS__INTERVAL_SECONDS", "5")
    monkeypatch.setenv("AUTOSCALER_PROMETHEUS__INSECURE_SKIP_VERIFY", "true")

    settings = Settings().prometheus

    assert (settings.url, settings.interval_seconds, settings.insecure_skip_verify) == (
        "http://prom:9090",
        5,
        True,
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"password_file": "/p"}, "password_file needs prometheus.username"),
        ({"bearer_token_file": "/t", "username": "u"}, "either a bearer token file or basic"),
    ],
    ids=["password without user", "bearer and basic"],
)
def test_auth_settings_must_name_one_kind_of_auth(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PrometheusSettings(**fields)


def test_a_metric_without_any_server_url_cannot_start_and_says_what_to_set() -> None:
    context = BackendContext(clock=FakeClock(), settings=Settings())

    with pytest.raises(SpecError, match=r"set prometheus\.serverUrl on the metric or the service"):
        prometheus.create(PrometheusMetricSource(query=Q), context)


def test_a_prometheus_metric_passes_validation_now_that_the_source_exists() -> None:
    result = load_text(
        """
apiVersion: autoscaler.dev/v1alpha1
kind: ScalableNodeGroup
metadata: {name: g}
spec: {type: Simulated, id: g}
---
apiVersion: autoscaler.dev/v1alpha1
kind: HorizontalAutoscaler
metadata: {name: a}
spec:
  scaleTargetRef: {name: g}
  maxReplicas: 5
  metrics:
    - prometheus: {query: 'sum(jobs)', whenEmpty: Zero, serverUrl: 'http://p:9090'}
      target: {type: AverageValue, averageValue: 10}
"""
    )

    assert result.ok, result.issues
    (metric,) = result.specs.autoscalers["default/a"].spec.metrics
    assert metric.prometheus == PrometheusMetricSource(
        query="sum(jobs)", when_empty="Zero", server_url="http://p:9090"
    )


# --------------------------------------------------------------------------- the loop


class FakeQuery:
    """Our Producer protocol for one query: returns ``value`` or raises ``error``."""

    def __init__(self, source: PrometheusMetricSource) -> None:
        self.source = source
        self.value = 0.0
        self.error: AutoscalerError | None = None
        self.calls: list[float] = []

    def observe(self, now: float) -> Observation:
        self.calls.append(now)
        if self.error is not None:
            raise self.error
        return Observation((Signal(prometheus.SIGNAL, self.value, now),))


class Queries:
    """The loop's query producer factory, handing out one fake per query text."""

    def __init__(self) -> None:
        self.by_query: dict[str, FakeQuery] = {}
        self.created = 0

    def create(self, source: PrometheusMetricSource, _: BackendContext) -> FakeQuery:
        self.created += 1
        return self.by_query.setdefault(source.query, FakeQuery(source))


def _autoscaler(name: str, target: str, *queries: str, **spec: Any) -> HorizontalAutoscaler:
    body: dict[str, Any] = {
        "scaleTargetRef": {"name": target},
        "minReplicas": 1,
        "maxReplicas": 20,
        "metrics": [
            {"prometheus": {"query": q}, "target": {"type": "AverageValue", "averageValue": 1}}
            for q in queries
        ],
        "behavior": {
            "scaleUp": {"policies": [{"type": "Pods", "value": 100, "periodSeconds": 1}]},
            "scaleDown": {"stabilizationWindowSeconds": 0},
        },
        **spec,
    }
    return HorizontalAutoscaler.model_validate({"metadata": {"name": name}, "spec": body})


def _specs(*objects: Any) -> SpecSet:
    groups = {f"default/{o.metadata.name}": o for o in objects if o.kind == "ScalableNodeGroup"}
    scalers = {f"default/{o.metadata.name}": o for o in objects if o.kind == "HorizontalAutoscaler"}
    return SpecSet(node_groups=groups, autoscalers=scalers)


def _loop(clock: FakeClock, backends: Backends, queries: Queries, interval: float = 15) -> Any:
    settings = Settings(
        prometheus=PrometheusSettings(url="http://p:9090", interval_seconds=interval)
    )
    return ControlLoop(
        clock,
        context=BackendContext(clock=clock, settings=settings),
        create_producer=backends.create_producer,
        create_provider=backends.create_provider,
        create_query_producer=queries.create,
    )


def test_a_query_value_drives_the_node_group_like_a_producer_signal() -> None:
    clock, backends, queries = FakeClock(), Backends(), Queries()
    loop = _loop(clock, backends, queries)
    loop.apply(_specs(node_group("g", replicas=1), _autoscaler("a", "g", "sum(jobs)")))
    queries.by_query["sum(jobs)"].value = 3
    loop.run_once()

    assert backends.providers["g"].desired == 3
    assert loop.producers == {}  # implicit producers are not MetricsProducers
    (key,) = loop.query_producers
    assert loop.store.get(key, prometheus.SIGNAL).value == 3
    status = loop.autoscaler_view(loop.autoscalers["default/a"])["status"]
    assert status["currentMetrics"][0]["name"] == "prometheus:sum(jobs)"
    assert status["currentMetrics"][0]["value"] == 3


def test_queries_run_on_the_prometheus_interval_and_a_new_value_acts_at_once() -> None:
    clock, backends, queries = FakeClock(), Backends(), Queries()
    loop = _loop(clock, backends, queries, interval=5)
    loop.apply(_specs(node_group("g", replicas=1), _autoscaler("a", "g", "sum(jobs)")))
    query = queries.by_query["sum(jobs)"]
    query.value = 2
    loop.run_once()
    query.value = 4

    clock.advance(4.9)
    loop.run_once()
    assert (len(query.calls), backends.providers["g"].desired) == (1, 2)
    clock.advance(0.1)
    loop.run_once()
    assert (len(query.calls), backends.providers["g"].desired) == (2, 4)


def test_autoscalers_reading_the_same_query_share_one_implicit_producer() -> None:
    clock, backends, queries = FakeClock(), Backends(), Queries()
    loop = _loop(clock, backends, queries)
    specs = _specs(
        node_group("g", replicas=1),
        node_group("h", replicas=1),
        _autoscaler("a", "g", "sum(jobs)"),
        _autoscaler("b", "h", "sum(jobs)", "max(queue)"),
    )
    loop.apply(specs)
    queries.by_query["sum(jobs)"].value = 4
    queries.by_query["max(queue)"].value = 6
    loop.run_once()

    assert len(loop.query_producers) == 2
    assert queries.created == 2
    assert len(queries.by_query["sum(jobs)"].calls) == 1
    assert (backends.providers["g"].desired, backends.providers["h"].desired) == (4, 6)

    loop.apply(specs)  # an unchanged reload keeps the running producers
    assert queries.created == 2


def test_a_query_no_autoscaler_reads_any_more_is_stopped_and_its_signal_dropped() -> None:
    clock, backends, queries = FakeClock(), Backends(), Queries()
    loop = _loop(clock, backends, queries)
    loop.apply(_specs(node_group("g", replicas=1), _autoscaler("a", "g", "sum(jobs)")))
    loop.run_once()
    (old_key,) = loop.query_producers

    loop.apply(_specs(node_group("g", replicas=1), _autoscaler("a", "g", "max(jobs)")))
    loop.run_once()

    (new_key,) = loop.query_producers
    assert new_key != old_key
    assert loop.store.signals(old_key) == ()
    assert [s.name for s in loop.store.signals(new_key)] == [prometheus.SIGNAL]


def test_a_failing_query_keeps_the_count_then_scaling_resumes_when_it_recovers() -> None:
    clock, backends, queries = FakeClock(), Backends(), Queries()
    loop = _loop(clock, backends, queries, interval=1)
    loop.apply(_specs(node_group("g", replicas=1), _autoscaler("a", "g", "sum(jobs)")))
    query = queries.by_query["sum(jobs)"]
    query.value = 6
    loop.run_once()
    assert backends.providers["g"].desired == 6

    query.value = 1
    query.error = RetryableError("cannot reach Prometheus", code="ConnectionError")
    for _ in range(3):
        clock.advance(1)
        loop.run_once()
    assert backends.providers["g"].desired == 6  # never scale down on a failed metric
    (metric,) = loop.autoscaler_view(loop.autoscalers["default/a"])["status"]["currentMetrics"]
    assert metric["error"] == "cannot reach Prometheus"

    query.error = None
    clock.advance(1)
    loop.run_once()
    assert backends.providers["g"].desired == 1


def test_a_failing_query_counts_toward_the_fallback() -> None:
    clock, backends, queries = FakeClock(), Backends(), Queries()
    loop = _loop(clock, backends, queries, interval=1)
    spec = _autoscaler("a", "g", "sum(jobs)", fallback={"failureThreshold": 2, "replicas": 9})
    loop.apply(_specs(node_group("g", replicas=1), spec))
    queries.by_query["sum(jobs)"].error = PermanentError("query returned no series")
    loop.run_once()
    assert backends.providers["g"].desired == 1

    clock.advance(1)
    loop.run_once()
    assert backends.providers["g"].desired == 9


def test_a_query_without_a_server_url_reports_the_problem_on_the_metric() -> None:
    clock, backends = FakeClock(), Backends()
    loop = ControlLoop(
        clock,
        context=BackendContext(clock=clock, settings=Settings()),
        create_provider=backends.create_provider,
    )
    loop.apply(_specs(node_group("g", replicas=2), _autoscaler("a", "g", "sum(jobs)")))
    loop.run_once()

    (metric,) = loop.autoscaler_view(loop.autoscalers["default/a"])["status"]["currentMetrics"]
    assert "AUTOSCALER_PROMETHEUS__URL" in metric["error"]
    assert backends.providers["g"].desired == 2
