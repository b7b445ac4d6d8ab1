"""Prometheus as a metric source: one instant PromQL query → one number.

A HorizontalAutoscaler metric ``prometheus: {query}`` is read through an *implicit producer* that
the control loop owns: one per distinct (namespace, server URL, query, whenEmpty), keyed
``<namespace>/prometheus-<hash>`` (:func:`source_key`). It runs every
``prometheus.interval_seconds`` on the loop's runner, off the loop thread, and writes one signal
named :data:`SIGNAL` into the signal store, where the autoscaler reads it exactly like a
producer's signal (same staleness, failure counting and fallback rules). Implicit producers are
not MetricsProducer resources and are not listed at ``/api/v1/metricsproducers``; their value or
error shows in the autoscaler's ``currentMetrics``.

Rules this module enforces:

- **One sample.** The query must return exactly one sample: an instant vector of one series, or
  a scalar. Several series, a range vector or a string are a :class:`PermanentError` that names
  the query and what came back (``query 'up' returned 3 series: up{job="a"}, ...``).
- **Empty and non-finite results** follow the metric's ``whenEmpty``: ``Fail`` (the default)
  fails the metric, ``Zero`` reads it as 0. NaN and ±Inf are treated like an empty result.
- **Errors**, translated at this boundary (``raise ... from exc``):

  ======================================================  ==================================
  what happened                                           error (code)
  ======================================================  ==================================
  connection refused or reset, DNS failure                ``RetryableError`` (ConnectionError)
  no answer within ``prometheus.timeout_seconds``         ``RetryableError`` (Timeout)
  HTTP 5xx, 408, 429                                      ``RetryableError`` (ServerError ...)
  HTTP 400 or 422: a bad query (Prometheus' own text)     ``PermanentError`` (BadQuery)
  HTTP 401, 403, 404 and other 4xx                        ``PermanentError``
  TLS verification failed                                 ``PermanentError`` (TLSError)
  a credentials file cannot be read                       ``PermanentError`` (Credentials)
  an answer that is not Prometheus JSON                   ``PermanentError`` (InvalidResponse)
  ======================================================  ==================================

The client is ``prometheus-api-client``'s ``PrometheusConnect.custom_query``, imported only when
a spec uses a prometheus metric. Its own retries are turned off: the loop runs the query again
on its next interval, so a dead server costs one quick failed call per interval.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from autoscaler.api import BackendContext, Observation, Signal
from autoscaler.api.horizontalautoscaler import PrometheusMetricSource
from autoscaler.errors import AutoscalerError, PermanentError, RetryableError, SpecError
from autoscaler.settings import PrometheusSettings

if TYPE_CHECKING:
    import requests

#: The name of the one signal an implicit Prometheus producer writes.
SIGNAL = "value"
#: Series named in a "too many series" error before the rest are only counted.
SHOWN_SERIES = 3
_BODY_LIMIT = 300

WhenEmpty = Literal["Zero", "Fail"]


# --------------------------------------------------------------------------- identity


def settings_of(context: BackendContext) -> PrometheusSettings:
    """The service's Prometheus settings, or the defaults when the context carries none."""
    settings = getattr(context.settings, "prometheus", None)
    return settings if isinstance(settings, PrometheusSettings) else PrometheusSettings()


def server_url(source: PrometheusMetricSource, settings: PrometheusSettings) -> str | None:
    """The metric's ``serverUrl`` if set, else the service setting (``None`` when neither)."""
    url = source.server_url or settings.url
    return url.rstrip("/") if url else None


def source_key(namespace: str, source: PrometheusMetricSource, settings: PrometheusSettings) -> str:
    """The implicit producer's key: equal for metrics that would run the same query."""
    identity = f"{server_url(source, settings)}\n{source.query}\n{source.when_empty}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
    return f"{namespace}/prometheus-{digest}"


# --------------------------------------------------------------------------- result parsing


def _series_name(labels: Mapping[str, Any]) -> str:
    """``up{instance="a",job="b"}`` as PromQL prints a series."""
    name = str(labels.get("__name__", ""))
    pairs = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{pairs}}}" if pairs or not name else name


def _number(query: str, text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise PermanentError(
            f"query {query!r} returned {text!r}, which is not a number", code="InvalidResponse"
        ) from None


def sample_value(query: str, result: Any) -> float | None:
    """The value of the one sample in ``result`` (the ``data.result`` of an instant query).

    Returns ``None`` for an empty vector; NaN and ±Inf are returned as such. Raises
    ``PermanentError`` unless the result is one sample: a vector of one series or a scalar.
    """
    if (
        isinstance(result, list)
        and len(result) == 2
        and isinstance(result[0], int | float)
        and isinstance(result[1], str)
    ):  # a scalar (or string) result: [time, "value"]
        try:
            return float(result[1])
        except ValueError:
            raise PermanentError(
                f"query {query!r} returned the string {result[1]!r}, not a number",
                code="NotASample",
            ) from None
    if not isinstance(result, list) or not all(isinstance(item, dict) for item in result):
        raise PermanentError(
            f"query {query!r} returned an unexpected result: {_shorten(repr(result))}",
            code="InvalidResponse",
        )
    if not result:
        return None
    if any("values" in item for item in result):
        raise PermanentError(
            f"query {query!r} returned a range vector ({len(result)} series); the query must "
            f"return an instant vector or a scalar, e.g. max_over_time({query})",
            code="NotASample",
        )
    if len(result) > 1:
        names = [_series_name(item.get("metric", {})) for item in result[:SHOWN_SERIES]]
        if len(result) > SHOWN_SERIES:
            names.append(f"... ({len(result) - SHOWN_SERIES} more)")
        raise PermanentError(
            f"query {query!r} returned {len(result)} series: {', '.join(names)}; "
            "it must return exactly one (aggregate it, e.g. with sum or max)",
            code="TooManySeries",
        )
    value = result[0].get("value")
    if not isinstance(value, list) or len(value) != 2:
        raise PermanentError(
            f"query {query!r} returned a sample without a value: {_shorten(repr(result[0]))}",
            code="InvalidResponse",
        )
    return _number(query, value[1])


def resolve_empty(query: str, value: float | None, when_empty: WhenEmpty) -> float:
    """Apply ``whenEmpty`` to a missing (``None``), NaN or infinite value."""
    if value is not None and math.isfinite(value):
        return value
    if when_empty == "Zero":
        return 0.0
    if value is None:
        what, code = "no series", "EmptyResult"
    else:
        what, code = _promql_number(value), "NotANumber"
    raise PermanentError(
        f"query {query!r} returned {what} (whenEmpty: Fail; set whenEmpty: Zero to read it as 0)",
        code=code,
    )


def _promql_number(value: float) -> str:
    """NaN, +Inf and -Inf as Prometheus writes them; other numbers as Python does."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


# --------------------------------------------------------------------------- error translation


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _BODY_LIMIT else text[:_BODY_LIMIT] + "…"


def _error_text(body: str) -> str:
    """Prometheus' own ``error`` (and ``errorType``) from an API error body, or the body."""
    try:
        payload = json.loads(body)
    except ValueError:
        return _shorten(body) or "(empty body)"
    if isinstance(payload, dict) and payload.get("error"):
        kind = payload.get("errorType")
        return f"{kind}: {payload['error']}" if kind else str(payload["error"])
    return _shorten(body)


def http_error(query: str, url: str, status: int, body: str) -> AutoscalerError:
    """Translate an HTTP error answer of the query API."""
    text = _error_text(body)
    if status in (400, 422):
        return PermanentError(f"Prometheus rejected query {query!r}: {text}", code="BadQuery")
    if status in (408, 429) or status >= 500:
        code = {408: "Timeout", 429: "Throttled"}.get(status, "ServerError")
        return RetryableError(
            f"Prometheus at {url} answered HTTP {status} to query {query!r}: {text}", code=code
        )
    code = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound"}.get(status, "HTTPError")
    hint = " (is the URL the Prometheus base URL?)" if status == 404 else ""
    return PermanentError(f"Prometheus at {url} answered HTTP {status}{hint}: {text}", code=code)


def _reason(exc: BaseException) -> str:
    """The innermost readable cause of a requests/urllib3 connection error."""
    text = str(exc)
    found = re.findall(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return str(found[-1]).strip()
    return _shorten(text) or type(exc).__name__


def request_error(query: str, url: str, exc: Exception, timeout: float) -> AutoscalerError:
    """Translate an exception raised by ``requests`` while running ``query``."""
    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        return PermanentError(
            f"TLS with Prometheus at {url} failed: {_shorten(str(exc))}", code="TLSError"
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return RetryableError(
            f"Prometheus at {url} did not answer query {query!r} within {timeout:g}s",
            code="Timeout",
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        return RetryableError(
            f"cannot reach Prometheus at {url}: {_reason(exc)}", code="ConnectionError"
        )
    if isinstance(exc, requests.exceptions.InvalidJSONError | ValueError | KeyError):
        return PermanentError(
            f"Prometheus at {url} answered query {query!r} with something that is not "
            f"Prometheus API JSON: {_shorten(str(exc))}",
            code="InvalidResponse",
        )
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return PermanentError(f"invalid Prometheus URL {url!r}: {exc}", code="InvalidURL")
    return RetryableError(
        f"query {query!r} to Prometheus at {url} failed: {_shorten(str(exc))}", code="RequestError"
    )


# --------------------------------------------------------------------------- the client


class _HTTPStatusError(Exception):
    """Raised from a response hook for an error status, with the body Prometheus sent."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def _raise_for_error_status(response: requests.Response, *_: Any, **__: Any) -> None:
    if response.status_code >= 400:
        raise _HTTPStatusError(response.status_code, response.text)


def _read_secret(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().strip()
    except OSError as exc:
        raise PermanentError(
            f"cannot read the Prometheus {what} file {path}: {exc.strerror or exc}",
            code="Credentials",
        ) from exc


class PrometheusClient:
    """Runs instant queries against one Prometheus server with the service's auth and TLS.

    Credentials files are read before every query, so rotated tokens are picked up.
    """

    def __init__(self, url: str, settings: PrometheusSettings) -> None:
        import requests
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        self.url = url
        self.settings = settings
        session = requests.Session()
        session.verify = False if settings.insecure_skip_verify else (settings.ca_file or True)
        session.hooks["response"].append(_raise_for_error_status)
        self._session = session
        self._connect = PrometheusConnect(
            url=url,
            session=session,
            # No retries inside the client (the loop queries again on its next interval);
            # read=False lets a read timeout surface as requests' ReadTimeout.
            retry=Retry(total=0, read=False, raise_on_status=False),
            timeout=settings.timeout_seconds,
        )

    def _authenticate(self) -> None:
        settings = self.settings
        if settings.bearer_token_file:
            token = _read_secret(settings.bearer_token_file, "bearer token")
            self._session.headers["Authorization"] = f"Bearer {token}"
        if settings.username is not None:
            password = (
                _read_secret(settings.password_file, "password") if settings.password_file else ""
            )
            self._session.auth = (settings.username, password)

    def query(self, query: str) -> Any:
        """The raw ``data.result`` of an instant query; errors translated (module docstring)."""
        self._authenticate()
        try:
            return self._connect.custom_query(query)
        except _HTTPStatusError as exc:
            raise http_error(query, self.url, exc.status, exc.body) from exc
        except Exception as exc:
            from prometheus_api_client.exceptions import PrometheusApiClientException

            if isinstance(exc, PrometheusApiClientException):  # a status we did not expect
                raise PermanentError(
                    f"Prometheus at {self.url} answered query {query!r}: {exc}",
                    code="HTTPError",
                ) from exc
            raise request_error(query, self.url, exc, self.settings.timeout_seconds) from exc

    def value(self, query: str) -> float | None:
        """The one sample's value (``None`` when the result is empty)."""
        return sample_value(query, self.query(query))

    def close(self) -> None:
        self._session.close()


class PrometheusQuery:
    """The implicit producer of one ``prometheus`` metric source: one signal, :data:`SIGNAL`."""

    def __init__(self, source: PrometheusMetricSource, client: PrometheusClient) -> None:
        self.source = source
        self.client = client

    def observe(self, now: float) -> Observation:
        """Run the query once; apply ``whenEmpty``; raise translated errors."""
        query = self.source.query
        value = resolve_empty(query, self.client.value(query), self.source.when_empty)
        status = {"prometheus": {"query": query, "serverUrl": self.client.url, "value": value}}
        return Observation((Signal(SIGNAL, value, now),), status)


def create(source: PrometheusMetricSource, context: BackendContext) -> PrometheusQuery:
    """Factory used by the control loop for each distinct prometheus metric source."""
    settings = settings_of(context)
    url = server_url(source, settings)
    if url is None:
        raise SpecError(
            "no Prometheus server to query: set prometheus.serverUrl on the metric or the "
            "service setting AUTOSCALER_PROMETHEUS__URL",
            path="prometheus.serverUrl",
            code="NoPrometheusServer",
        )
    return PrometheusQuery(source, PrometheusClient(url, settings))
