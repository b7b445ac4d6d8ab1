"""The HTTP API (OpenAPI at ``/docs``), health probes, ``/metrics`` and the dashboard.

Conventions of every ``/api/v1`` endpoint:

* **Lists** keep the Kubernetes shape ``{"metadata": {...}, "items": [...]}``. ``limit`` asks for a
  page; when more items follow, ``metadata.continue`` holds an opaque token to pass back as
  ``continue`` (and ``metadata.remainingItemCount`` how many are left). A token stays valid when
  objects are added or removed meanwhile: it remembers the last key (or decision) served.
* **Cheap polling**: JSON responses carry a weak ``ETag``; a request whose ``If-None-Match``
  matches gets ``304 Not Modified`` without a body. Decisions and history also take ``after``
  (a sequence number the client already has) so a poll returns only what is new.
* **Errors** are ``application/problem+json`` (RFC 9457): ``type``, ``title``, ``status``,
  ``detail``, ``instance``, and ``errors`` for invalid parameters (422).
* **Operator controls** (pause, resume, override) change state and need a bearer token checked
  by an :class:`~autoscaler.auth.Authenticator` (401 without a valid one, 403 when it may not);
  with no authenticator configured they are disabled (403 saying how to enable them), never
  open. ``ServerSettings.private_reads`` puts the read endpoints behind a token too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from http import HTTPStatus
from importlib import resources
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from autoscaler import __version__
from autoscaler.api import Clock
from autoscaler.auth import (
    Access,
    Authenticator,
    AuthUnavailable,
    Forbidden,
    Identity,
    authenticator_for,
)
from autoscaler.clock import to_datetime, to_timestamp
from autoscaler.config import SpecIssue
from autoscaler.decisions import DecisionRecord
from autoscaler.history import AutoscalerPoint, History, HistorySampler, NodeGroupPoint
from autoscaler.kube import KubeClients
from autoscaler.locks import YieldingLock
from autoscaler.loop import ControlLoop
from autoscaler.metrics import Metrics
from autoscaler.settings import ServerSettings

PROBLEM_JSON = "application/problem+json"
#: The dashboard loads only its own files and talks only to this server.
DASHBOARD_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
KEY_PATTERN = r"^[^/]+/[^/]+$"
#: Free text from an operator: no control characters (they would forge log lines).
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
DISABLED_DETAIL = (
    "state-changing endpoints are disabled: no bearer token is configured. Put a token in a "
    "file and set AUTOSCALER_SERVER__TOKEN_FILE to its path (Helm: apiToken.existingSecret), "
    "or run in cluster mode, where Kubernetes tokens are checked with TokenReview and "
    "SubjectAccessReview"
)
BEARER = HTTPBearer(
    auto_error=False,
    description="A token from the token file, or in cluster mode a Kubernetes token.",
)

T = TypeVar("T")

#: Pages up to this many items are built on the event loop; longer lists (and every history
#: query) on a worker thread, so one large answer does not hold up the small ones behind it.
EVENT_LOOP_ITEMS = 500
#: How long the event loop waits for the control loop's lock, which a pass hands over between
#: two of its steps (:mod:`autoscaler.locks`), before it leaves the read to a worker thread.
EVENT_LOOP_LOCK_WAIT_SECONDS = 0.005
#: After such a timeout (a long hold: a spec reload, a state save), reads go straight to worker
#: threads for this long, so the event loop does not stall once per request.
EVENT_LOOP_BACKOFF_SECONDS = 0.1


class Service(Protocol):
    """What the app reads from a service: the standalone :class:`autoscaler.service.Service` or
    the cluster :class:`autoscaler.kube.service.ClusterService`."""

    @property
    def loop(self) -> ControlLoop: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def issues(self) -> Sequence[SpecIssue]: ...

    @property
    def ready(self) -> bool: ...

    @property
    def alive(self) -> bool: ...


# --------------------------------------------------------------------------- response models


def _omit_none(value: object) -> bool:
    return value is None


class ListMeta(BaseModel):
    """Kubernetes-style list metadata; both fields are left out on the last page."""

    model_config = ConfigDict(populate_by_name=True)

    continue_: str | None = Field(
        default=None,
        alias="continue",
        exclude_if=_omit_none,
        description="Pass as the `continue` query parameter to get the next page.",
    )
    remainingItemCount: int | None = Field(
        default=None, exclude_if=_omit_none, description="Items after this page."
    )


class ObjectView(BaseModel):
    """A resource as served: identity, the spec (with the desired count written) and status."""

    apiVersion: str
    kind: str
    namespace: str
    name: str
    metadata: dict[str, Any]
    spec: dict[str, Any]
    status: dict[str, Any]


class ObjectList(BaseModel):
    metadata: ListMeta = Field(default_factory=ListMeta)
    items: list[ObjectView]


class DecisionView(BaseModel):
    seq: int
    time: str = Field(description="RFC 3339 time of the decision.")
    autoscaler: str = Field(description="namespace/name of the autoscaler.")
    nodeGroup: str
    from_: int = Field(alias="from", description="Replicas before.")
    to: int = Field(description="Replicas after.")
    direction: str = Field(description="up, down or none.")
    recommendation: int | None = Field(description="The combined recommendation of the metrics.")
    limitedBy: str | None = Field(description="The last rule that shaped the result.")
    reasons: list[str]
    metrics: list[dict[str, Any]]
    actor: str | None = Field(
        default=None,
        exclude_if=_omit_none,
        description="Who paused, resumed or overrode, when this decision follows their action.",
    )

    model_config = ConfigDict(populate_by_name=True)


class DecisionList(BaseModel):
    metadata: ListMeta = Field(default_factory=ListMeta)
    items: list[DecisionView]


class ConfigIssueView(BaseModel):
    file: str
    line: int
    path: str
    message: str


class ConfigStatus(BaseModel):
    valid: bool
    issues: list[ConfigIssueView]


class ProbeStatus(BaseModel):
    status: str = Field(description="`ok` (liveness) or `ready` (readiness).")


class MetricPointView(BaseModel):
    name: str
    value: float | None = Field(description="The metric's value; null when it failed.")
    targetType: str = Field(description="Value, AverageValue or Utilization.")
    target: float = Field(description="The target as written (per replica for AverageValue).")
    targetLevel: float = Field(
        description="The value at which the current count is right: "
        "target × currentReplicas for AverageValue, the target otherwise."
    )


class AutoscalerPointView(BaseModel):
    seq: int = Field(description="Sample number (shared by every series of one sample).")
    time: str = Field(description="RFC 3339 time of the sample.")
    desiredReplicas: int | None
    currentReplicas: int | None
    readyReplicas: int | None = Field(description="Ready nodes of the target node group.")
    minReplicas: int
    maxReplicas: int
    metrics: list[MetricPointView]


class AutoscalerHistory(BaseModel):
    autoscaler: str = Field(description="namespace/name.")
    nodeGroup: str = Field(description="namespace/name of the scale target.")
    points: list[AutoscalerPointView] = Field(description="Oldest first.")


class NodeGroupPointView(BaseModel):
    seq: int
    time: str
    desiredReplicas: int | None = Field(description="The count the service asked for.")
    readyReplicas: int | None


class NodeGroupHistory(BaseModel):
    nodeGroup: str = Field(description="namespace/name.")
    points: list[NodeGroupPointView] = Field(description="Oldest first.")


class HistoryMeta(BaseModel):
    intervalSeconds: float = Field(description="Seconds between samples.")
    retentionSeconds: float = Field(description="Seconds of history kept.")
    latestSeq: int = Field(description="The latest sample; pass it as `after` to poll.")


class HistoryView(BaseModel):
    metadata: HistoryMeta
    autoscalers: list[AutoscalerHistory]
    nodeGroups: list[NodeGroupHistory]


class PauseRequest(BaseModel):
    """Why the autoscaler is paused (optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=1024, pattern=TEXT_PATTERN)


class OverrideRequest(BaseModel):
    """Pin a node group's desired count."""

    model_config = ConfigDict(extra="forbid")

    replicas: int = Field(ge=0, le=100000, description="The desired count to pin.")
    durationSeconds: float | None = Field(
        default=None,
        gt=0,
        le=30 * 86400,
        description="Seconds until the override ends by itself (unset: until removed).",
    )
    reason: str = Field(
        min_length=1, max_length=1024, pattern=TEXT_PATTERN, description="Why, for the audit."
    )


class ProblemFieldError(BaseModel):
    field: str = Field(description="Where: e.g. `query.limit`.")
    message: str
    type: str


class Problem(BaseModel):
    """An error as ``application/problem+json`` (RFC 9457)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, exclude_if=_omit_none)
    errors: list[ProblemFieldError] | None = Field(default=None, exclude_if=_omit_none)


# --------------------------------------------------------------------------- helpers


def _problem(
    status: int,
    detail: str,
    instance: str | None = None,
    errors: list[ProblemFieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    problem = Problem(
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=instance,
        errors=errors,
    )
    return JSONResponse(
        problem.model_dump(mode="json"),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error responses (their content is set to Problem in ``_openapi``)."""
    descriptions = {
        400: "Bad request (for example an invalid `continue` token or time)",
        401: "No bearer token, or not a valid one",
        403: "The token may not do this, or the endpoint is disabled (no token configured)",
        404: "Not found",
        422: "Invalid parameters",
        503: "Not healthy or not ready, or tokens cannot be checked right now",
    }
    return {code: {"description": descriptions[code]} for code in codes}


def _etag_matches(header: str | None, etag: str) -> bool:
    """Weak comparison (RFC 9110 §13.1.2) of ``If-None-Match`` against our ETag."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    ours = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == ours for tag in header.split(","))


def _cached_json(request: Request, body: bytes, etag: str | None = None) -> Response:
    """A JSON response with an ETag, or 304 when the client has it already."""
    if etag is None:
        etag = f'W/"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def _model_json(request: Request, model: BaseModel) -> Response:
    return _cached_json(request, model.model_dump_json(by_alias=True).encode())


def _json(data: Any) -> bytes:
    """Compact JSON of plain data, as ``model_dump_json`` of a response model writes the same
    data (non-finite floats as ``null``). The endpoints build their answers from the loop's
    own views, which have the response models' shape already, so validating them again
    through the models only cost time; tests compare both."""
    return to_json(data, inf_nan_mode="null")


def _list_meta(meta: ListMeta) -> dict[str, Any]:
    return meta.model_dump(by_alias=True)


class _SortedKeys:
    """The keys of one of the loop's dicts, sorted, and sorted again only when its keys
    changed. Sorting and filtering 10,000 keys for each page was a tenth of the time of a
    page of 100 node groups; comparing the keys in their order with those of the last look
    compares 10,000 pointers (the dict keeps its key objects; ~0.1 ms), and any change (an
    object added, removed, or removed and added again) shows as a difference."""

    def __init__(self) -> None:
        self._keys: list[str] = []
        self._sorted: list[str] = []

    def of(self, objects: dict[str, Any]) -> list[str]:
        """Call under the loop's lock."""
        keys = list(objects)
        if keys != self._keys:
            self._keys = keys
            self._sorted = sorted(keys)
        return self._sorted


class _ForegroundRequests:
    """ASGI middleware: every HTTP request is foreground work for the loop's lock while it is
    served, so the loop steps aside until it is answered (:mod:`autoscaler.locks`)."""

    def __init__(self, app: ASGIApp, lock: YieldingLock) -> None:
        self.app = app
        self.lock = lock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.lock.enter_foreground()
        try:
            await self.app(scope, receive, send)
        finally:
            self.lock.leave_foreground()


class _Reads:
    """Runs the reads that need the loop's lock: on the event loop when the lock comes
    quickly (no thread hop, no wait for the GIL to pass between two threads), else on a
    worker thread."""

    def __init__(self, lock: YieldingLock) -> None:
        self._lock = lock
        self._backoff_until = 0.0

    def _locked(self, read: Callable[[], T]) -> T:
        with self._lock:
            return read()

    async def run(self, read: Callable[[], T], small: bool = True) -> T:
        """``read()`` under the lock; ``small``: quick enough to run on the event loop."""
        if small and time.monotonic() >= self._backoff_until:
            if self._lock.acquire(timeout=EVENT_LOOP_LOCK_WAIT_SECONDS):
                try:
                    return read()
                finally:
                    self._lock.release()
            self._backoff_until = time.monotonic() + EVENT_LOOP_BACKOFF_SECONDS
        return await run_in_threadpool(self._locked, read)


def _encode_token(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, field: str, kind: type) -> Any:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)[field]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise HTTPException(400, f"continue={token!r} is not a token this server issued") from None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise HTTPException(400, f"continue={token!r} is not a token this server issued")
    return value


def _page(keys: Sequence[str], limit: int | None, token: str | None) -> tuple[list[str], ListMeta]:
    """The keys of one page of a list sorted by key (``keys``, sorted), and its list
    metadata."""
    first = bisect_right(keys, _decode_token(token, "after", str)) if token else 0
    remaining = len(keys) - first
    if limit is None or remaining <= limit:
        return list(keys[first:]), ListMeta()
    page = list(keys[first : first + limit])
    return page, ListMeta(
        continue_=_encode_token({"after": page[-1]}),
        remainingItemCount=remaining - limit,
    )


def _decision_view(record: DecisionRecord) -> dict[str, Any]:
    """A decision as served (the shape of :class:`DecisionView`)."""
    view = {
        "seq": record.seq,
        "time": to_datetime(record.time).isoformat(),
        "autoscaler": record.autoscaler,
        "nodeGroup": record.node_group,
        "from": record.from_replicas,
        "to": record.to_replicas,
        "direction": record.direction,
        "recommendation": record.recommendation,
        "limitedBy": record.limited_by,
        "reasons": list(record.reasons),
        "metrics": list(record.metrics),
    }
    if record.actor is not None:
        view["actor"] = record.actor
    return view


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _autoscaler_point(point: AutoscalerPoint) -> dict[str, Any]:
    return {
        "seq": point.seq,
        "time": to_datetime(point.time).isoformat(),
        "desiredReplicas": point.desired,
        "currentReplicas": point.current,
        "readyReplicas": point.ready,
        "minReplicas": point.min_replicas,
        "maxReplicas": point.max_replicas,
        "metrics": [
            {
                "name": m.name,
                "value": _finite(m.value),
                "targetType": m.target_type,
                "target": _finite(m.target),
                "targetLevel": _finite(m.target_level),
            }
            for m in point.metrics
        ],
    }


def _node_group_point(point: NodeGroupPoint) -> dict[str, Any]:
    return {
        "seq": point.seq,
        "time": to_datetime(point.time).isoformat(),
        "desiredReplicas": point.desired,
        "readyReplicas": point.ready,
    }


def _limit_query() -> Any:
    return Query(default=None, ge=1, le=10_000, description="Page size; all items when absent.")


def _continue_query() -> Any:
    return Query(
        default=None,
        alias="continue",
        description="The `metadata.continue` token of the previous page.",
    )


def _parse_time(name: str, value: str) -> float:
    try:
        return to_timestamp(datetime.fromisoformat(value))
    except ValueError:
        raise HTTPException(400, f"{name}={value!r} is not an RFC 3339 time") from None


# --------------------------------------------------------------------------- authentication

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]


def _authorize(
    request: Request, access: Access, credentials: HTTPAuthorizationCredentials | None
) -> Identity:
    """The caller, or an HTTPException: 403 (disabled, or not allowed), 401 (no token or not a
    valid one), 503 (tokens cannot be checked). The token itself never appears in an answer."""
    auth: Authenticator = request.app.state.authenticator
    if not auth.configured:
        raise HTTPException(403, DISABLED_DETAIL)
    if credentials is None:
        raise HTTPException(
            401,
            "this endpoint needs a bearer token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": 'Bearer realm="autoscaler"'},
        )
    try:
        identity = auth.authenticate(credentials.credentials, access)
    except Forbidden as exc:
        raise HTTPException(403, f"not allowed: {exc}") from None
    except AuthUnavailable:
        raise HTTPException(
            503, "tokens cannot be checked right now; see the service log"
        ) from None
    if identity is None:
        raise HTTPException(
            401,
            "the bearer token is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="autoscaler", error="invalid_token"'},
        )
    return identity


def _autoscaler_writer(
    request: Request, namespace: str, name: str, credentials: Credentials
) -> Identity:
    access = Access("update", "horizontalautoscalers", namespace, name)
    return _authorize(request, access, credentials)


def _node_group_writer(
    request: Request, namespace: str, name: str, credentials: Credentials
) -> Identity:
    return _authorize(request, Access("update", "scalablenodegroups", namespace, name), credentials)


#: The caller of an endpoint that changes an autoscaler (``update horizontalautoscalers``).
AutoscalerWriter = Annotated[Identity, Depends(_autoscaler_writer)]
#: The caller of an endpoint that changes a node group (``update scalablenodegroups``).
NodeGroupWriter = Annotated[Identity, Depends(_node_group_writer)]


# --------------------------------------------------------------------------- the app


def create_app(
    service: Service,
    *,
    history: History | None = None,
    sample_history: bool = True,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    """Build the HTTP application for one service (no module-level app).

    ``history`` keeps the time series the dashboard draws (one point per 5 s for an hour by
    default). With ``sample_history`` the app samples the loop into it on a timer while it runs
    (between the app's start-up and shutdown); tests pass False and call ``History.sample``.
    ``authenticator`` checks bearer tokens; by default the service's ``authenticator``, else
    one built from its ``settings.server`` (the token file) and, for a service with Kubernetes
    ``clients`` (cluster mode), TokenReview and SubjectAccessReview.
    """
    loop = service.loop
    server_settings: ServerSettings = (
        getattr(getattr(service, "settings", None), "server", None) or ServerSettings()
    )
    clients = getattr(service, "clients", None)
    auth: Authenticator = (
        authenticator
        or getattr(service, "authenticator", None)
        or authenticator_for(server_settings, clients if isinstance(clients, KubeClients) else None)
    )
    if not auth.configured:
        logging.getLogger("autoscaler.server").warning(
            "no bearer token is configured: pause, resume and override are disabled%s",
            " and every read is refused (private reads)" if server_settings.private_reads else "",
        )
    history = history or History(service.clock)
    sampler = HistorySampler(history, loop) if sample_history else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if sampler is not None:
            sampler.start()
        try:
            yield
        finally:
            if sampler is not None:
                sampler.stop()

    app = FastAPI(
        title="Node autoscaler",
        version=__version__,
        description="Status of node groups, producers, autoscalers and their decisions. "
        "Errors are `application/problem+json`; JSON responses carry an `ETag` for "
        "`If-None-Match`; lists page with `limit` and `continue`.",
        lifespan=lifespan,
    )
    app.state.history = history
    # Level 1: a page of 100 node groups still shrinks 30-fold, for a sixth of the CPU of the
    # default level 9 (which was a third of the server's time on that page; bench/scale.py).
    app.add_middleware(GZipMiddleware, minimum_size=2048, compresslevel=1)
    app.add_middleware(_ForegroundRequests, lock=loop.lock)  # outermost: the whole request
    app.mount("/static", StaticFiles(packages=[("autoscaler", "static")]), name="static")

    # ----------------------------------------------------------------- errors

    @app.exception_handler(StarletteHTTPException)
    async def _http_problem(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers) if exc.headers else None
        return _problem(exc.status_code, str(exc.detail), request.url.path, headers=headers)

    # ----------------------------------------------------------------- authentication

    app.state.authenticator = auth

    def _reads(resource: str | None, verb: str = "list", path: str | None = None) -> list[Any]:
        """The dependencies of a read endpoint: none, or with private reads a token check."""
        if not server_settings.private_reads:
            return []

        def check(request: Request, credentials: Credentials) -> None:
            params = request.path_params
            access = Access(verb, resource, params.get("namespace"), params.get("name"), path)
            _authorize(request, access, credentials)

        return [Depends(check)]

    @app.exception_handler(RequestValidationError)
    async def _validation_problem(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            ProblemFieldError(
                field=".".join(str(part) for part in error.get("loc", ())),
                message=str(error.get("msg", "")),
                type=str(error.get("type", "")),
            )
            for error in exc.errors()
        ]
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors) or "invalid request"
        return _problem(422, detail, request.url.path, errors)

    @app.exception_handler(405)
    async def _method_problem(request: Request, exc: Exception) -> Response:
        # Starlette's Allow names the methods of the first route of the path only.
        allowed = _allowed_methods(app, request)
        detail = f"{request.method} is not allowed here; use {', '.join(allowed)}"
        response = _problem(405, detail, request.url.path)
        response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.exception_handler(Exception)
    async def _internal_problem(request: Request, _: Exception) -> Response:
        # Starlette logs the exception after this response is sent.
        return _problem(500, "an unexpected error occurred; see the service log", request.url.path)

    # ----------------------------------------------------------------- probes and metrics

    @app.get("/healthz", tags=["probes"], response_model=ProbeStatus, responses=_errors(503))
    async def healthz() -> Response:
        """Liveness: the control loop and the spec watcher are running."""
        if not service.alive:
            return _problem(503, "a background thread has stopped", "/healthz")
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["probes"], response_model=ProbeStatus, responses=_errors(503))
    async def readyz() -> Response:
        """Readiness: the specs are loaded and the loop has run at least once."""
        if not service.ready:
            return _problem(503, "the specs are loading or the loop has not run yet", "/readyz")
        return JSONResponse({"status": "ready"})

    @app.get(
        "/metrics",
        tags=["probes"],
        response_class=PlainTextResponse,
        dependencies=_reads(None, "get", "/metrics"),
    )
    def metrics() -> Response:
        """Self-metrics in the Prometheus text format."""
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    # ----------------------------------------------------------------- dashboard

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> HTMLResponse:
        page = resources.files("autoscaler").joinpath("static/index.html").read_text("utf-8")
        return HTMLResponse(
            page,
            headers={
                "Content-Security-Policy": DASHBOARD_CSP,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-cache",
            },
        )

    # ----------------------------------------------------------------- resources

    reads = _Reads(loop.lock)
    sorted_keys: dict[str, _SortedKeys] = {}

    async def _list(
        request: Request,
        objects: dict[str, T],
        view: Callable[[T], dict[str, Any]],
        limit: int | None,
        token: str | None,
    ) -> Response:
        keys_of = sorted_keys.setdefault(view.__name__, _SortedKeys())

        def page() -> tuple[list[dict[str, Any]], ListMeta]:
            keys, meta = _page(keys_of.of(objects), limit, token)
            return [view(objects[k]) for k in keys], meta

        small = limit is not None and limit <= EVENT_LOOP_ITEMS
        items, meta = await reads.run(page, small)
        return _cached_json(request, _json({"metadata": _list_meta(meta), "items": items}))

    @app.get(
        "/api/v1/horizontalautoscalers",
        dependencies=_reads("horizontalautoscalers", "list"),
        response_model=ObjectList,
        tags=["resources"],
        responses=_errors(400, 422),
    )
    async def list_autoscalers(
        request: Request,
        limit: int | None = _limit_query(),
        continue_: str | None = _continue_query(),
    ) -> Response:
        """Every autoscaler with its spec and status, sorted by namespace/name."""
        return await _list(request, loop.autoscalers, loop.autoscaler_view, limit, continue_)

    @app.get(
        "/api/v1/horizontalautoscalers/{namespace}/{name}",
        dependencies=_reads("horizontalautoscalers", "get"),
        response_model=ObjectView,
        tags=["resources"],
        responses=_errors(404),
    )
    async def get_autoscaler(request: Request, namespace: str, name: str) -> Response:
        """One autoscaler."""

        def one() -> dict[str, Any] | None:
            runtime = loop.autoscalers.get(f"{namespace}/{name}")
            return None if runtime is None else loop.autoscaler_view(runtime)

        view = await reads.run(one)
        if view is None:
            raise HTTPException(404, f"no autoscaler {namespace}/{name}")
        return _cached_json(request, _json(view))

    @app.get(
        "/api/v1/metricsproducers",
        dependencies=_reads("metricsproducers", "list"),
        response_model=ObjectList,
        tags=["resources"],
        responses=_errors(400, 422),
    )
    async def list_producers(
        request: Request,
        limit: int | None = _limit_query(),
        continue_: str | None = _continue_query(),
    ) -> Response:
        """Every producer with its latest signals, status and error."""
        return await _list(request, loop.producers, loop.producer_view, limit, continue_)

    @app.get(
        "/api/v1/scalablenodegroups",
        dependencies=_reads("scalablenodegroups", "list"),
        response_model=ObjectList,
        tags=["resources"],
        responses=_errors(400, 422),
    )
    async def list_node_groups(
        request: Request,
        limit: int | None = _limit_query(),
        continue_: str | None = _continue_query(),
    ) -> Response:
        """Every node group: `spec.replicas` asked for, `status.replicas` ready."""
        return await _list(request, loop.node_groups, loop.node_group_view, limit, continue_)

    # ----------------------------------------------------------------- decisions

    @app.get(
        "/api/v1/decisions",
        dependencies=_reads("horizontalautoscalers", "list"),
        response_model=DecisionList,
        tags=["decisions"],
        responses=_errors(400, 422),
    )
    async def decisions(
        request: Request,
        autoscaler: str | None = Query(
            default=None,
            pattern=KEY_PATTERN,
            description="Only this autoscaler (namespace/name).",
        ),
        since: str | None = Query(
            default=None, description="Only decisions at or after this RFC 3339 time."
        ),
        after: int | None = Query(
            default=None, ge=0, description="Only decisions with seq > after (cheap polling)."
        ),
        limit: int = Query(default=100, ge=1, le=10_000, description="Page size."),
        continue_: str | None = _continue_query(),
    ) -> Response:
        """The audit trail, newest first."""
        since_ts = _parse_time("since", since) if since is not None else None
        before = _decode_token(continue_, "before", int) if continue_ is not None else None

        def page() -> bytes:
            log = loop.decisions
            if before is None:
                records = log.query(autoscaler, since_ts, after, limit + 1)
            else:
                records = [
                    r
                    for r in log.query(autoscaler, since_ts, after, max(len(log), 1))
                    if r.seq < before
                ][: limit + 1]
            meta = ListMeta()
            if len(records) > limit:
                records = records[:limit]
                meta = ListMeta(continue_=_encode_token({"before": records[-1].seq}))
            items = [_decision_view(r) for r in records]
            return _json({"metadata": _list_meta(meta), "items": items})

        # The log has its own lock; a continued query scans all of it: a worker thread's job.
        small = before is None and limit <= EVENT_LOOP_ITEMS
        return _cached_json(request, page() if small else await run_in_threadpool(page))

    # ----------------------------------------------------------------- history

    @app.get(
        "/api/v1/history",
        dependencies=_reads("horizontalautoscalers", "list"),
        response_model=HistoryView,
        tags=["history"],
        responses=_errors(404, 422),
    )
    def get_history(
        request: Request,
        autoscaler: str | None = Query(
            default=None,
            pattern=KEY_PATTERN,
            description="Only this autoscaler (namespace/name) and its node group.",
        ),
        node_group: str | None = Query(
            default=None,
            alias="nodeGroup",
            pattern=KEY_PATTERN,
            description="Only this node group.",
        ),
        after: int | None = Query(
            default=None, ge=0, description="Only points with seq > after (cheap polling)."
        ),
    ) -> Response:
        """Time series sampled by the server (by default every 5 s for the last hour):
        desired, current and ready replicas and each metric's value and target level."""
        if autoscaler is not None and not (
            history.has_autoscaler(autoscaler) or autoscaler in loop.autoscalers
        ):
            raise HTTPException(404, f"no autoscaler {autoscaler}")
        if node_group is not None and not (
            history.has_node_group(node_group) or node_group in loop.node_groups
        ):
            raise HTTPException(404, f"no node group {node_group}")
        version = history.version
        query = f"{autoscaler}|{node_group}|{after}"
        etag = f'W/"h{version}-{hashlib.sha256(query.encode()).hexdigest()[:12]}"'
        if _etag_matches(request.headers.get("if-none-match"), etag):
            return _cached_json(request, b"", etag)

        if autoscaler is None and node_group is None:
            series = history.autoscalers(None, after)
            groups = history.node_groups(None, after)
        else:
            # An autoscaler comes with its node group; a node group alone has no autoscalers.
            series = history.autoscalers([autoscaler] if autoscaler else [], after)
            group_keys = [target for _, target, _ in series]
            groups = history.node_groups(
                [*group_keys, *([node_group] if node_group else [])], after
            )
        body = {
            "metadata": {
                "intervalSeconds": history.interval_seconds,
                "retentionSeconds": history.retention_seconds,
                "latestSeq": version,
            },
            "autoscalers": [
                {
                    "autoscaler": key,
                    "nodeGroup": target,
                    "points": [_autoscaler_point(p) for p in points],
                }
                for key, target, points in series
            ],
            "nodeGroups": [
                {"nodeGroup": key, "points": [_node_group_point(p) for p in points]}
                for key, points in groups
            ],
        }
        payload = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        return _cached_json(request, payload, etag)

    # ----------------------------------------------------------------- config

    @app.get(
        "/api/v1/config",
        response_model=ConfigStatus,
        tags=["config"],
        dependencies=_reads("horizontalautoscalers"),
        responses=_errors(401, 403, 503),
    )
    def config(request: Request) -> Response:
        """Problems in the spec files at the last (re)load."""
        status = ConfigStatus(
            valid=not service.issues,
            issues=[
                ConfigIssueView(file=i.file, line=i.line, path=i.path, message=i.message)
                for i in service.issues
            ],
        )
        return _model_json(request, status)

    # ----------------------------------------------------------------- operator controls

    def _changed(view: dict[str, Any]) -> Response:
        body = ObjectView.model_validate(view).model_dump_json(by_alias=True)
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})

    def _autoscaler_after(namespace: str, name: str) -> Response:
        with loop.lock:
            return _changed(loop.autoscaler_view(loop.autoscalers[f"{namespace}/{name}"]))

    def _node_group_after(namespace: str, name: str) -> Response:
        with loop.lock:
            return _changed(loop.node_group_view(loop.node_groups[f"{namespace}/{name}"]))

    writes = _errors(401, 403, 404, 422, 503)

    @app.post(
        "/api/v1/horizontalautoscalers/{namespace}/{name}/pause",
        response_model=ObjectView,
        tags=["operations"],
        responses=writes,
    )
    def pause(
        namespace: str,
        name: str,
        caller: AutoscalerWriter,
        body: PauseRequest | None = None,
    ) -> Response:
        """Pause an autoscaler: it keeps observing and recording decisions (`limitedBy:
        paused`) but never changes its node group. Pausing a paused autoscaler changes nothing.
        Needs `update` on `horizontalautoscalers` (cluster mode)."""
        try:
            loop.pause(f"{namespace}/{name}", caller.name, body.reason if body else "")
        except KeyError:
            raise HTTPException(404, f"no autoscaler {namespace}/{name}") from None
        return _autoscaler_after(namespace, name)

    @app.post(
        "/api/v1/horizontalautoscalers/{namespace}/{name}/resume",
        response_model=ObjectView,
        tags=["operations"],
        responses=writes,
    )
    def resume(namespace: str, name: str, caller: AutoscalerWriter) -> Response:
        """Resume a paused autoscaler (a running one stays as it is)."""
        try:
            loop.resume(f"{namespace}/{name}", caller.name)
        except KeyError:
            raise HTTPException(404, f"no autoscaler {namespace}/{name}") from None
        return _autoscaler_after(namespace, name)

    @app.put(
        "/api/v1/scalablenodegroups/{namespace}/{name}/override",
        response_model=ObjectView,
        tags=["operations"],
        responses=writes,
    )
    def set_override(
        namespace: str,
        name: str,
        body: OverrideRequest,
        caller: NodeGroupWriter,
    ) -> Response:
        """Pin a node group's desired count (within the group's own bounds) until the override
        is removed or `durationSeconds` pass; its autoscalers' decisions say it is overridden
        (`limitedBy: override`). A new override replaces the old one. Needs `update` on
        `scalablenodegroups` (cluster mode)."""
        try:
            loop.set_override(
                f"{namespace}/{name}", body.replicas, caller.name, body.reason, body.durationSeconds
            )
        except KeyError:
            raise HTTPException(404, f"no node group {namespace}/{name}") from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return _node_group_after(namespace, name)

    @app.delete(
        "/api/v1/scalablenodegroups/{namespace}/{name}/override",
        response_model=ObjectView,
        tags=["operations"],
        responses=writes,
    )
    def clear_override(namespace: str, name: str, caller: NodeGroupWriter) -> Response:
        """Remove a node group's override (404 when it has none); its autoscalers continue from
        the pinned count."""
        try:
            removed = loop.clear_override(f"{namespace}/{name}", caller.name)
        except KeyError:
            raise HTTPException(404, f"no node group {namespace}/{name}") from None
        if not removed:
            raise HTTPException(404, f"node group {namespace}/{name} has no override")
        return _node_group_after(namespace, name)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route of the app accepts at the request's path."""
    methods: set[str] = set()
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path_regex.match(request.url.path):
            methods |= route.methods or set()
    return sorted(methods)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with every 4xx/5xx response declared as a Problem."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    problem_content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            responses.setdefault("500", {"description": "Internal error"})
            if "requestBody" in operation:
                responses.setdefault("400", {"description": "The body is not valid JSON"})
            for code, response in responses.items():
                if code[0] in "45":
                    response["content"] = problem_content
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = schema
    return schema
