"""The read-only HTTP API (OpenAPI at ``/docs``), health probes, ``/metrics`` and the dashboard."""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from autoscaler import __version__
from autoscaler.clock import to_datetime, to_timestamp
from autoscaler.decisions import DecisionRecord
from autoscaler.service import Service

PROBLEM_JSON = "application/problem+json"


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

    model_config = {"populate_by_name": True}


class DecisionList(BaseModel):
    items: list[DecisionView]


class ConfigIssueView(BaseModel):
    file: str
    line: int
    path: str
    message: str


class ConfigStatus(BaseModel):
    valid: bool
    issues: list[ConfigIssueView]


def _decision_view(record: DecisionRecord) -> DecisionView:
    return DecisionView.model_validate(
        {
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
    )


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type=PROBLEM_JSON,
    )


def create_app(service: Service) -> FastAPI:
    """Build the HTTP application for one service (no module-level app)."""
    app = FastAPI(
        title="Node autoscaler",
        version=__version__,
        description="Status of node groups, producers, autoscalers and their decisions.",
    )
    loop = service.loop

    @app.exception_handler(HTTPException)
    async def _http_problem(_: Request, exc: HTTPException) -> JSONResponse:
        return _problem(exc.status_code, str(exc.detail).split(":")[0], str(exc.detail))

    @app.get("/healthz", tags=["probes"])
    def healthz() -> Response:
        """Liveness: the control loop and the spec watcher are running."""
        if not service.alive:
            return _problem(503, "Unhealthy", "a background thread has stopped")
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["probes"])
    def readyz() -> Response:
        """Readiness: the specs are loaded and the loop has run at least once."""
        if not service.ready:
            return _problem(503, "Not ready", "the specs are loading or the loop has not run yet")
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["probes"])
    def metrics() -> Response:
        """Self-metrics in the Prometheus text format."""
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> HTMLResponse:
        page = resources.files("autoscaler").joinpath("static/index.html").read_text("utf-8")
        return HTMLResponse(page)

    @app.get("/api/v1/horizontalautoscalers", response_model=ObjectList, tags=["resources"])
    def list_autoscalers() -> ObjectList:
        with loop.lock:
            items = [loop.autoscaler_view(rt) for _, rt in sorted(loop.autoscalers.items())]
        return ObjectList.model_validate({"items": items})

    @app.get(
        "/api/v1/horizontalautoscalers/{namespace}/{name}",
        response_model=ObjectView,
        tags=["resources"],
        responses={404: {"description": "No such autoscaler"}},
    )
    def get_autoscaler(namespace: str, name: str) -> ObjectView:
        with loop.lock:
            runtime = loop.autoscalers.get(f"{namespace}/{name}")
            if runtime is None:
                raise HTTPException(404, f"Not found: no autoscaler {namespace}/{name}")
            return ObjectView.model_validate(loop.autoscaler_view(runtime))

    @app.get("/api/v1/metricsproducers", response_model=ObjectList, tags=["resources"])
    def list_producers() -> ObjectList:
        with loop.lock:
            items = [loop.producer_view(rt) for _, rt in sorted(loop.producers.items())]
        return ObjectList.model_validate({"items": items})

    @app.get("/api/v1/scalablenodegroups", response_model=ObjectList, tags=["resources"])
    def list_node_groups() -> ObjectList:
        with loop.lock:
            items = [loop.node_group_view(rt) for _, rt in sorted(loop.node_groups.items())]
        return ObjectList.model_validate({"items": items})

    @app.get("/api/v1/decisions", response_model=DecisionList, tags=["decisions"])
    def decisions(
        autoscaler: str | None = Query(
            default=None, description="Only this autoscaler (namespace/name)."
        ),
        since: str | None = Query(
            default=None, description="Only decisions at or after this RFC 3339 time."
        ),
        after: int | None = Query(
            default=None, ge=0, description="Only decisions with seq > after."
        ),
        limit: int = Query(default=100, ge=1, le=10_000),
    ) -> DecisionList:
        """The audit trail, newest first."""
        since_ts: float | None = None
        if since is not None:
            from datetime import datetime

            try:
                since_ts = to_timestamp(datetime.fromisoformat(since))
            except ValueError:
                raise HTTPException(
                    400, f"Bad request: since={since!r} is not an RFC 3339 time"
                ) from None
        records = loop.decisions.query(autoscaler, since_ts, after, limit)
        return DecisionList(items=[_decision_view(r) for r in records])

    @app.get("/api/v1/config", response_model=ConfigStatus, tags=["config"])
    def config() -> ConfigStatus:
        """Problems in the spec files at the last (re)load."""
        return ConfigStatus(
            valid=not service.issues,
            issues=[
                ConfigIssueView(file=i.file, line=i.line, path=i.path, message=i.message)
                for i in service.issues
            ],
        )

    return app
