"""Service settings: one pydantic-settings object of small groups, each field with its unit.

Read from ``AUTOSCALER_*`` environment variables (nested with ``__``, e.g.
``AUTOSCALER_LOOP__RESYNC_SECONDS=5``) and overridden by command-line flags. Passed in
explicitly; nothing imports a global settings object.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseModel):
    host: str = Field(default="127.0.0.1", description="Address the HTTP API binds to.")
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port of the HTTP API.")


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


class ReloadSettings(BaseModel):
    interval_seconds: float = Field(
        default=2.0, gt=0, description="Seconds between checks of the spec files for changes."
    )


class DecisionSettings(BaseModel):
    max_records: int = Field(default=10_000, ge=1, description="Decisions kept in memory.")


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
