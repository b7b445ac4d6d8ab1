"""Service settings: one pydantic-settings object of small groups, each field with its unit.

Read from ``AUTOSCALER_*`` environment variables (nested with ``__``, e.g.
``AUTOSCALER_LOOP__RESYNC_SECONDS=5``) and overridden by command-line flags. Passed in
explicitly; nothing imports a global settings object.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ServerSettings(BaseModel):
    host: str = Field(default="127.0.0.1", description="Address the HTTP API binds to.")
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port of the HTTP API.")
    token_file: str | None = Field(
        default=None,
        description="File of bearer tokens for the state-changing endpoints (one per line, "
        "optionally `token,user`); re-read when it changes. Unset: those endpoints are disabled "
        "(unless Kubernetes tokens are reviewed in cluster mode).",
    )
    private_reads: bool = Field(
        default=False,
        description="Require a bearer token for the read endpoints too (/api/v1 and /metrics).",
    )
    auth_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        le=300,
        description="Seconds a Kubernetes TokenReview or SubjectAccessReview result is reused.",
    )


class LoopSettings(BaseModel):
    resync_seconds: float = Field(
        default=15.0, gt=0, description="Seconds between evaluations of an unchanged autoscaler."
    )
    node_group_sync_seconds: float = Field(
        default=10.0, gt=0, description="Seconds between reads of a node group's ready count."
    )
    workers: int = Field(default=8, ge=1, le=256, description="Threads for backend calls.")
    retry_initial_seconds: float = Field(default=1.0, gt=0, description="First retry delay.")
    retry_max_seconds: float = Field(default=60.0, gt=0, description="Longest retry delay.")
    dry_run: bool = Field(
        default=False,
        description="Decide and record everything but never resize a node group (--dry-run).",
    )
    max_total_nodes: int | None = Field(
        default=None,
        ge=0,
        description="Node budget across all node groups: a scale-up beyond it is cut. Unset: none.",
    )


class ReloadSettings(BaseModel):
    interval_seconds: float = Field(
        default=2.0, gt=0, description="Seconds between checks of the spec files for changes."
    )


class DecisionSettings(BaseModel):
    max_records: int = Field(default=10_000, ge=1, description="Decisions kept in memory.")


class PrometheusSettings(BaseModel):
    """The Prometheus server that ``prometheus: {query}`` metric sources query."""

    url: str | None = Field(
        default=None,
        description="Base URL of the Prometheus HTTP API, e.g. http://prometheus:9090 "
        "(a metric's serverUrl overrides it).",
    )
    interval_seconds: float = Field(
        default=15.0, gt=0, le=3600, description="Seconds between two runs of one query."
    )
    timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="Seconds one query may take (connect and read)."
    )
    bearer_token_file: str | None = Field(
        default=None, description="File whose content is sent as a bearer token (re-read often)."
    )
    username: str | None = Field(default=None, description="Basic auth user name.")
    password_file: str | None = Field(
        default=None, description="File holding the basic auth password (re-read often)."
    )
    ca_file: str | None = Field(
        default=None, description="PEM file of the CAs that sign the server's certificate."
    )
    insecure_skip_verify: bool = Field(
        default=False, description="Do not verify the server's TLS certificate (tests only)."
    )

    @model_validator(mode="after")
    def _one_kind_of_auth(self) -> PrometheusSettings:
        if self.password_file is not None and self.username is None:
            raise ValueError("prometheus.password_file needs prometheus.username")
        if self.bearer_token_file is not None and self.username is not None:
            raise ValueError(
                "set either a bearer token file or basic auth for Prometheus, not both"
            )
        return self


def _default_lease_namespace() -> str:
    return os.environ.get("POD_NAMESPACE") or "default"


class KubernetesSettings(BaseModel):
    """Cluster mode (``serve --kubernetes``): what to watch and how to elect a leader."""

    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Namespaces to watch, comma-separated in the environment; empty: all.",
    )
    kubeconfig: str | None = Field(
        default=None,
        description="Kubeconfig file (--kubeconfig); unset: in-cluster, else KUBECONFIG or "
        "~/.kube/config.",
    )
    leader_election: bool = Field(
        default=True, description="Elect a leader through a Lease; only the leader acts."
    )
    lease_name: str = Field(default="node-autoscaler", description="Name of the Lease.")
    shards: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="Shards the autoscalers are split into, each held by one replica through its "
        "own Lease (1: one leader acts on everything). Needs leader election.",
    )
    lease_namespace: str = Field(
        default_factory=_default_lease_namespace,
        description="Namespace of the Lease (default: POD_NAMESPACE, else default).",
    )
    identity: str | None = Field(
        default=None,
        description="Holder identity in the Lease (default: POD_NAME, else hostname_pid).",
    )
    lease_duration_seconds: float = Field(
        default=15.0, ge=1, le=3600, description="Seconds a Lease holds without renewal."
    )
    renew_deadline_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Seconds after its last renewal at which a leader stops acting.",
    )
    renew_seconds: float = Field(
        default=5.0, gt=0, description="Seconds between a leader's renewals of the Lease."
    )
    retry_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Seconds between a standby's attempts to acquire (and a leader's retries).",
    )
    status_interval_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Seconds between status writes that only move timestamps and signal values "
        "(any other change is written at once).",
    )
    watch_timeout_seconds: int = Field(
        default=300, ge=1, le=3600, description="Seconds one watch request stays open."
    )
    backoff_initial_seconds: float = Field(
        default=0.5, gt=0, description="First delay before re-listing after an API error."
    )
    backoff_max_seconds: float = Field(
        default=30.0, gt=0, description="Longest delay before re-listing after API errors."
    )

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _election_timing(self) -> KubernetesSettings:
        if not self.renew_seconds < self.renew_deadline_seconds < self.lease_duration_seconds:
            raise ValueError(
                "leader election needs renew_seconds < renew_deadline_seconds < "
                "lease_duration_seconds"
            )
        return self


class StateSettings(BaseModel):
    """The state file of the standalone service (:mod:`autoscaler.state`)."""

    file: str | None = Field(
        default=None,
        description="JSON file keeping the autoscalers' history and the node groups' desired "
        "counts across restarts (--state-file); unset: nothing is kept.",
    )
    min_interval_seconds: float = Field(
        default=1.0, gt=0, le=3600, description="Seconds between two writes of the file at most."
    )
    max_age_seconds: float = Field(
        default=600.0,
        ge=0,
        description="Seconds after which saved node-group counts are no longer restored.",
    )


class LogSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(default=False, description="One JSON object per log line.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOSCALER_", env_nested_delimiter="__")

    server: ServerSettings = Field(default_factory=ServerSettings)
    loop: LoopSettings = Field(default_factory=LoopSettings)
    reload: ReloadSettings = Field(default_factory=ReloadSettings)
    decisions: DecisionSettings = Field(default_factory=DecisionSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
