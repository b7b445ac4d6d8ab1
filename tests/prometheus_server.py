"""A real Prometheus process for the prometheus metric source tests, and a target it can scrape.

``prometheus`` (session fixture) starts Debian's ``prometheus`` binary on a free loopback port
with a temporary storage folder and a config that scrapes its targets every second; a test points
it at its own targets with :meth:`PrometheusServer.scrape` (the config is rewritten and reloaded
through ``/-/reload``). :class:`PrometheusServer` can also be started on its own, for a test that
stops and restarts it or needs TLS and basic auth (``web_config``).

:class:`MetricsTarget` is a tiny HTTP server exposing gauges the test sets, in the Prometheus
text format.

The binary comes from ``scripts/install-test-servers.sh`` (run by ``make test`` and by
``.ci/run``). When it is missing the tests fail, and say how to install it: they never skip.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

SCRAPE_INTERVAL = "1s"
INSTALL_HINT = (
    "the prometheus binary is missing (looked on PATH and at /usr/bin/prometheus). "
    "Install it with `scripts/install-test-servers.sh` (Debian's prometheus package: "
    "`apt-get install --no-install-recommends prometheus`), or run `make test`, which does."
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prometheus_binary() -> str:
    """The path of the ``prometheus`` binary; fails the test (not skips) when it is missing."""
    found = shutil.which("prometheus")
    if found:
        return found
    if os.access("/usr/bin/prometheus", os.X_OK):
        return "/usr/bin/prometheus"
    pytest.fail(INSTALL_HINT, pytrace=False)


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the last value after
    ``timeout`` seconds. Exceptions raised by ``check`` count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


class PrometheusServer:
    """One Prometheus process on 127.0.0.1 with its own config and storage folder.

    ``web_config`` is the content of Prometheus' ``--web.config.file`` (TLS and basic auth);
    ``client`` then holds what the harness needs to reach it (``verify``, ``auth``).
    """

    def __init__(
        self,
        workdir: Path,
        targets: Sequence[str] = (),
        *,
        web_config: str | None = None,
        scheme: str = "http",
        client: Mapping[str, Any] | None = None,
    ) -> None:
        self.binary = prometheus_binary()
        self.workdir = workdir
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.targets = list(targets)
        self.web_config = web_config
        self.client = dict(client or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._log = workdir / "prometheus.log"

    # ------------------------------------------------------------------ lifecycle

    def _write_config(self) -> Path:
        config = self.workdir / "prometheus.yml"
        lines = [
            "global:",
            f"  scrape_interval: {SCRAPE_INTERVAL}",
            f"  scrape_timeout: {SCRAPE_INTERVAL}",
            f"  evaluation_interval: {SCRAPE_INTERVAL}",
        ]
        if self.targets:
            lines += [
                "scrape_configs:",
                "  - job_name: test",
                "    static_configs:",
                "      - targets: [" + ", ".join(f"'{t}'" for t in self.targets) + "]",
            ]
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self, timeout: float = 30.0) -> None:
        """Start the process (same port and storage on a restart) and wait until it is ready."""
        command = [
            self.binary,
            f"--config.file={self._write_config()}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]
        if self.web_config is not None:
            web = self.workdir / "web.yml"
            web.write_text(self.web_config)
            command.append(f"--web.config.file={web}")
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
            )

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_tail()}")
            return self.request("GET", "/-/ready").status_code == 200

        try:
            wait_for(ready, timeout, f"Prometheus at {self.url} to be ready", interval=0.1)
        except (AssertionError, RuntimeError) as exc:
            self.stop()
            pytest.fail(f"Prometheus did not start: {exc}\n{self.log_tail()}", pytrace=False)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # ------------------------------------------------------------------ use

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        options = {"timeout": 5.0, **self.client, **kwargs}
        verify = options.pop("verify", True)
        with httpx.Client(verify=verify) as client:
            return client.request(method, self.url + path, **options)

    def scrape(self, *targets: str) -> None:
        """Scrape exactly ``targets`` (``host:port``) from now on, every second."""
        self.targets = list(targets)
        self._write_config()
        self.request("POST", "/-/reload").raise_for_status()

    def query(self, query: str) -> Any:
        """``data.result`` of an instant query (harness-side, to wait for data)."""
        response = self.request("GET", "/api/v1/query", params={"query": query})
        response.raise_for_status()
        return response.json()["data"]["result"]

    def wait_for_value(self, query: str, value: float, timeout: float = 30.0) -> None:
        """Wait until ``query`` returns one sample equal to ``value``."""

        def check() -> bool:
            result = self.query(query)
            return len(result) == 1 and float(result[0]["value"][1]) == value

        wait_for(check, timeout, f"{query} == {value} in Prometheus")


class MetricsTarget:
    """A tiny HTTP server exposing gauges on ``/metrics``: ``set("jobs", 3, queue="a")``."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = target.render().encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] = value

    def remove(self, name: str, **labels: str) -> None:
        with self._lock:
            self._values.pop((name, tuple(sorted(labels.items()))), None)

    def render(self) -> str:
        with self._lock:
            items = sorted(self._values.items())
        lines: list[str] = []
        for (name, labels), value in items:
            text = ",".join(f'{k}="{v}"' for k, v in labels)
            if math.isnan(value):
                number = "NaN"
            elif math.isinf(value):
                number = "+Inf" if value > 0 else "-Inf"
            else:
                number = repr(value)
            lines.append(f"{name}{{{text}}} {number}")
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def prometheus() -> Iterator[PrometheusServer]:
    """A Prometheus shared by the session; point it at a test's targets with ``scrape``."""
    with tempfile.TemporaryDirectory(prefix="prometheus-") as workdir:
        server = PrometheusServer(Path(workdir))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def metrics_target() -> Iterator[MetricsTarget]:
    """A scrape target whose gauges the test sets."""
    target = MetricsTarget()
    try:
        yield target
    finally:
        target.close()
