"""A small HTTP proxy that injects AWS faults in front of a real server (moto), for the tests.

boto3 talks to the proxy (``AWS_ENDPOINT_URL`` = :attr:`FaultProxy.url`), which forwards every
request to the upstream and returns its answer, unless a fault is active for the request's AWS
action: then it answers itself with the error an AWS service sends (``Throttling`` as a 400, or a
503 ``ServiceUnavailable``), in the request's protocol (query/XML or JSON). Every request is
recorded with its time, action and status, so a test can count the calls a backend made during a
storm.

    proxy = FaultProxy(moto.url)
    proxy.fail({"DescribeAutoScalingGroups", "SetDesiredCapacity"}, seconds=4)
    ...
    proxy.count("SetDesiredCapacity")
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass(frozen=True)
class Call:
    """One request the proxy saw."""

    time: float
    action: str
    status: int
    injected: bool


@dataclass(frozen=True)
class Fault:
    actions: frozenset[str] | None
    status: int
    code: str
    message: str
    until: float


def action_of(headers: Any, body: bytes) -> str:
    """The AWS action of a request: ``X-Amz-Target`` (JSON protocols) or ``Action=`` (query)."""
    target = headers.get("X-Amz-Target")
    if target:
        return str(target).rsplit(".", 1)[-1]
    try:
        form = parse_qs(body.decode("utf-8"))
    except UnicodeDecodeError:
        form = {}
    if form.get("Action"):
        return form["Action"][0]
    return "unknown"


class FaultProxy:
    """Forwards to ``upstream``; answers with injected errors while a fault is active."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.calls: list[Call] = []
        self._fault: Fault | None = None
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                action = action_of(self.headers, body)
                fault = proxy.active_fault(action)
                if fault is not None:
                    status, headers, payload = proxy.error_response(fault, self.headers)
                else:
                    status, headers, payload = proxy.forward(
                        self.command, self.path, self.headers, body
                    )
                proxy.record(Call(time.monotonic(), action, status, fault is not None))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

            def log_message(self, *_: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    # ------------------------------------------------------------------ faults

    def fail(
        self,
        actions: set[str] | None = None,
        *,
        seconds: float,
        status: int = 400,
        code: str = "Throttling",
        message: str = "Rate exceeded",
    ) -> None:
        """Answer ``actions`` (all when None) with this error for the next ``seconds``."""
        with self._lock:
            self._fault = Fault(
                frozenset(actions) if actions is not None else None,
                status,
                code,
                message,
                time.monotonic() + seconds,
            )

    def calm(self) -> None:
        """End the fault now."""
        with self._lock:
            self._fault = None

    def active_fault(self, action: str) -> Fault | None:
        with self._lock:
            fault = self._fault
        if fault is None or time.monotonic() >= fault.until:
            return None
        if fault.actions is not None and action not in fault.actions:
            return None
        return fault

    @staticmethod
    def error_response(fault: Fault, headers: Any) -> tuple[int, list[tuple[str, str]], bytes]:
        """The error as the AWS service of the request would send it."""
        content_type = str(headers.get("Content-Type") or "")
        if "json" in content_type:
            payload = json.dumps({"__type": fault.code, "message": fault.message}).encode()
            return (
                fault.status,
                [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-ErrorType", fault.code)],
                payload,
            )
        kind = "Receiver" if fault.status >= 500 else "Sender"
        xml = (
            "<ErrorResponse><Error>"
            f"<Type>{kind}</Type><Code>{fault.code}</Code><Message>{fault.message}</Message>"
            "</Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
        )
        return fault.status, [("Content-Type", "text/xml")], xml.encode()

    # ------------------------------------------------------------------ forwarding

    def forward(
        self, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
            sent["Host"] = f"{self.upstream_host}:{self.upstream_port}"
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            payload = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            return response.status, kept, payload
        except OSError as exc:
            return 502, [("Content-Type", "text/plain")], f"upstream: {exc}".encode()
        finally:
            connection.close()

    # ------------------------------------------------------------------ records

    def record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def count(
        self,
        *actions: str,
        since: float = 0.0,
        until: float = float("inf"),
    ) -> int:
        """Requests for ``actions`` (any when none given) between two ``time.monotonic()``s."""
        with self._lock:
            calls = list(self.calls)
        return sum(
            1
            for call in calls
            if since <= call.time < until and (not actions or call.action in actions)
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
