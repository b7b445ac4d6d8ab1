"""The prometheus metric source against a real Prometheus process scraping a target we control.

prometheus-api-client talks real HTTP to Debian's ``prometheus`` binary (see
tests/prometheus_server.py); nothing of the library is mocked.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from autoscaler.api import BackendContext, HorizontalAutoscaler, ScalableNodeGroup
from autoscaler.api.horizontalautoscaler import PrometheusMetricSource
from autoscaler.clock import system_clock
from autoscaler.config import SpecSet
from autoscaler.errors import AutoscalerError, PermanentError, RetryableError
from autoscaler.loop import ControlLoop
from autoscaler.prometheus import PrometheusClient, PrometheusQuery, create
from autoscaler.settings import PrometheusSettings, Settings
from tests.prometheus_server import MetricsTarget, PrometheusServer, free_port, wait_for
from tests.support import Backends

pytestmark = pytest.mark.integration

#: bcrypt of "s3cret" (cost 4), for Prometheus' basic_auth_users.
S3CRET_BCRYPT = "$2b$04$ArFWzJXGWM0bjmjDBYEgnulCOyS8PAqCpWwoh1AZcZGSXywTwW2P."


def _query(url: str, source: PrometheusMetricSource, **settings: Any) -> float:
    """Run one observation of the implicit producer, as the loop would."""
    client = PrometheusClient(url, PrometheusSettings(**settings))
    (signal,) = PrometheusQuery(source, client).observe(time.time()).signals
    return signal.value


def _error(call: Callable[[], object]) -> AutoscalerError:
    with pytest.raises(AutoscalerError) as caught:
        call()
    return caught.value


@pytest.fixture(scope="module")
def scraped(prometheus: PrometheusServer) -> Iterator[MetricsTarget]:
    """One target for this module that the session Prometheus scrapes (a new target takes ≈ 5 s
    to be discovered, a new value on a known target ≈ 1 s). Each test uses its own metric names.
    """
    target = MetricsTarget()
    prometheus.scrape(target.address)
    try:
        yield target
    finally:
        target.close()


# --------------------------------------------------------------------------- reading values


def test_a_query_returns_the_value_prometheus_scraped(
    prometheus: PrometheusServer, scraped: MetricsTarget
) -> None:
    scraped.set("read_jobs_waiting", 42, queue="a")
    scraped.set("read_jobs_waiting", 8, queue="b")
    prometheus.wait_for_value('read_jobs_waiting{queue="a"}', 42)

    one = PrometheusMetricSource(query='read_jobs_waiting{queue="a"}')
    total = PrometheusMetricSource(query="sum(read_jobs_waiting)")
    scalar = PrometheusMetricSource(query='scalar(read_jobs_waiting{queue="b"}) * 2')

    assert _query(prometheus.url, one) == 42
    assert _query(prometheus.url, total) == 50
    assert _query(prometheus.url, scalar) == 16


def test_a_query_with_several_series_is_a_clear_permanent_error(
    prometheus: PrometheusServer, scraped: MetricsTarget
) -> None:
    scraped.set("several_jobs", 1, queue="a")
    scraped.set("several_jobs", 2, queue="b")
    wait_for(lambda: len(prometheus.query("several_jobs")) == 2, 30, "two series")

    error = _error(lambda: _query(prometheus.url, PrometheusMetricSource(query="several_jobs")))

    assert isinstance(error, PermanentError)
    assert error.code == "TooManySeries"
    instance = f'instance="{scraped.address}",job="test"'
    assert str(error) == (
        f"query 'several_jobs' returned 2 series: several_jobs{{{instance},queue=\"a\"}}, "
        f'several_jobs{{{instance},queue="b"}}; it must return exactly one '
        "(aggregate it, e.g. with sum or max)"
    )


@pytest.mark.parametrize(
    "query", ["absent_metric_nobody_exports", "nan_jobs", "inf_jobs"], ids=["empty", "NaN", "Inf"]
)
def test_empty_and_non_finite_results_read_as_zero_or_fail_as_when_empty_says(
    prometheus: PrometheusServer, scraped: MetricsTarget, query: str
) -> None:
    scraped.set("nan_jobs", float("nan"))
    scraped.set("inf_jobs", float("inf"))
    wait_for(
        lambda: all(len(prometheus.query(name)) == 1 for name in ("nan_jobs", "inf_jobs")),
        30,
        "NaN and Inf scraped",
    )

    zero = PrometheusMetricSource(query=query, when_empty="Zero")
    fail = PrometheusMetricSource(query=query)

    assert _query(prometheus.url, zero) == 0
    error = _error(lambda: _query(prometheus.url, fail))
    assert isinstance(error, PermanentError)
    assert error.code == ("EmptyResult" if query.startswith("absent") else "NotANumber")
    assert f"query {query!r} returned" in str(error)
    assert "whenEmpty: Zero" in str(error)


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("sum(", 'bad_data: invalid parameter "query": 1:5: parse error: unclosed left paren'),
        ("rate(up)", 'expected type range vector in call to function "rate"'),
    ],
    ids=["syntax", "type"],
)
def test_a_bad_query_is_a_permanent_error_with_prometheus_own_text(
    prometheus: PrometheusServer, query: str, text: str
) -> None:
    error = _error(lambda: _query(prometheus.url, PrometheusMetricSource(query=query)))

    assert isinstance(error, PermanentError)
    assert error.code == "BadQuery"
    assert str(error).startswith(f"Prometheus rejected query {query!r}: ")
    assert text in str(error)


def test_a_url_that_is_not_the_prometheus_api_is_a_permanent_not_found(
    prometheus: PrometheusServer,
) -> None:
    error = _error(lambda: _query(prometheus.url + "/nope", PrometheusMetricSource(query="up")))

    assert isinstance(error, PermanentError)
    assert error.code == "NotFound"
    assert "is the URL the Prometheus base URL?" in str(error)


# --------------------------------------------------------------------------- unreachable


def test_nothing_listening_is_a_retryable_connection_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    error = _error(lambda: _query(url, PrometheusMetricSource(query="up")))

    assert isinstance(error, RetryableError)
    assert (error.code, str(error)) == (
        "ConnectionError",
        f"cannot reach Prometheus at {url}: Connection refused",
    )


def test_a_server_that_does_not_answer_in_time_is_a_retryable_timeout() -> None:
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()

        error = _error(lambda: _query(url, PrometheusMetricSource(query="up"), timeout_seconds=0.5))

    assert time.monotonic() - started < 3  # no hidden retries in the client
    assert isinstance(error, RetryableError)
    assert (error.code, str(error)) == (
        "Timeout",
        f"Prometheus at {url} did not answer query 'up' within 0.5s",
    )


# --------------------------------------------------------------------------- auth and TLS


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[PrometheusServer, Path]]:
    """A Prometheus serving HTTPS with a self-signed certificate and basic auth (alice)."""
    cert, key = _self_signed(tmp_path)
    web_config = (
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
        f"basic_auth_users:\n  alice: '{S3CRET_BCRYPT}'\n"
    )
    server = PrometheusServer(
        tmp_path,
        web_config=web_config,
        scheme="https",
        client={
            "verify": ssl.create_default_context(cafile=str(cert)),
            "auth": ("alice", "s3cret"),
        },
    )
    server.start()
    try:
        yield server, cert
    finally:
        server.stop()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_with_a_ca_file_and_basic_auth_from_a_password_file(
    secured: tuple[PrometheusServer, Path], tmp_path: Path
) -> None:
    server, cert = secured
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    source = PrometheusMetricSource(query="vector(7)")
    auth = {"username": "alice", "password_file": str(password)}

    assert _query(server.url, source, ca_file=str(cert), **auth) == 7
    assert _query(server.url, source, insecure_skip_verify=True, **auth) == 7

    untrusted = _error(lambda: _query(server.url, source, **auth))
    assert isinstance(untrusted, PermanentError)
    assert untrusted.code == "TLSError"
    assert "certificate verify failed" in str(untrusted)

    password.write_text("wrong")
    denied = _error(lambda: _query(server.url, source, ca_file=str(cert), **auth))
    assert isinstance(denied, PermanentError)
    assert denied.code == "Unauthorized"

    missing = _error(
        lambda: _query(server.url, source, ca_file=str(cert), username="alice", password_file="/x")
    )
    assert isinstance(missing, PermanentError)
    assert missing.code == "Credentials"
    assert "cannot read the Prometheus password file /x" in str(missing)


class _TokenCheckingAPI:
    """A minimal Prometheus query API that answers 1 only to the expected bearer token (Prometheus
    itself has no bearer auth; proxies in front of it do)."""

    def __init__(self) -> None:
        self.token = ""
        self.seen: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                header = self.headers.get("Authorization", "")
                api.seen.append(header)
                ok = header == f"Bearer {api.token}"
                body = (
                    {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "1"]}}
                    if ok
                    else {"status": "error", "errorType": "auth", "error": "bad token"}
                )
                data = json.dumps(body).encode()
                self.send_response(200 if ok else 403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_bearer_token_is_read_from_its_file_before_every_query(tmp_path: Path) -> None:
    api = _TokenCheckingAPI()
    token = tmp_path / "token"
    try:
        client = PrometheusClient(api.url, PrometheusSettings(bearer_token_file=str(token)))
        token.write_text("first\n")
        api.token = "first"
        assert client.value("up") == 1

        token.write_text("rotated")  # a rotated service-account token
        api.token = "rotated"
        assert client.value("up") == 1
        assert api.seen == ["Bearer first", "Bearer rotated"]

        api.token = "else"
        error = _error(lambda: client.value("up"))
        assert (error.code, str(error)) == (
            "Forbidden",
            f"Prometheus at {api.url} answered HTTP 403: auth: bad token",
        )
    finally:
        api.server.shutdown()
        api.server.server_close()


# --------------------------------------------------------------------------- through the loop


def _specs(url: str) -> SpecSet:
    group = ScalableNodeGroup.model_validate(
        {"metadata": {"name": "g"}, "spec": {"type": "Simulated", "id": "g", "replicas": 2}}
    )
    autoscaler = HorizontalAutoscaler.model_validate(
        {
            "metadata": {"name": "a"},
            "spec": {
                "scaleTargetRef": {"name": "g"},
                "minReplicas": 1,
                "maxReplicas": 20,
                "metrics": [
                    {
                        "prometheus": {"query": "sum(outage_jobs)", "serverUrl": url},
                        "target": {"type": "AverageValue", "averageValue": 1},
                    }
                ],
                "behavior": {
                    "scaleUp": {"policies": [{"type": "Pods", "value": 100, "periodSeconds": 1}]},
                    "scaleDown": {"stabilizationWindowSeconds": 0},
                },
            },
        }
    )
    return SpecSet(node_groups={"default/g": group}, autoscalers={"default/a": autoscaler})


def _drive(loop: ControlLoop, until: Callable[[], Any], timeout: float, what: str) -> Any:
    def step() -> Any:
        loop.run_once()
        return until()

    return wait_for(step, timeout, what, interval=0.1)


def test_when_prometheus_stops_the_autoscaler_holds_its_count_then_recovers(
    tmp_path: Path, metrics_target: MetricsTarget
) -> None:
    server = PrometheusServer(tmp_path, [metrics_target.address])
    server.start()
    try:
        metrics_target.set("outage_jobs", 6)
        server.wait_for_value("sum(outage_jobs)", 6)
        backends = Backends()
        settings = Settings(prometheus=PrometheusSettings(interval_seconds=0.2, timeout_seconds=2))
        loop = ControlLoop(
            system_clock,
            context=BackendContext(clock=system_clock, settings=settings),
            create_provider=backends.create_provider,
            create_query_producer=create,
        )
        loop.apply(_specs(server.url))
        _drive(loop, lambda: backends.providers["g"].desired == 6, 20, "a scale-up to 6")

        server.stop()
        metrics_target.set("outage_jobs", 1)
        (query,) = loop.query_producers.values()
        error = _drive(loop, lambda: query.error, 10, "the query to fail")
        assert isinstance(error, RetryableError)
        assert error.code == "ConnectionError"
        _drive(loop, lambda: query.consecutive_failures >= 3, 10, "three failed queries")
        assert backends.providers["g"].desired == 6  # a failed metric never scales down
        (metric,) = loop.autoscaler_view(loop.autoscalers["default/a"])["status"]["currentMetrics"]
        assert metric["error"].startswith(f"cannot reach Prometheus at {server.url}")

        server.start()  # same port and storage
        _drive(loop, lambda: backends.providers["g"].desired == 1, 30, "a scale-down to 1")
        assert query.error is None
    finally:
        server.stop()
