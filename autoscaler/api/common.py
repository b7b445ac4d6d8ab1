"""Shared building blocks of the three resources: base model, metadata, conditions."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

API_GROUP = "autoscaler.dev"
API_VERSION = "v1alpha1"
GROUP_VERSION: Final = "autoscaler.dev/v1alpha1"

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class Model(BaseModel):
    """Base for every spec model: camelCase field names, unknown fields rejected."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        validate_default=True,
        frozen=True,
    )

    def to_dict(self) -> dict[str, Any]:
        """The Kubernetes-style JSON form (camelCase, unset optional fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _check_subdomain(value: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise ValueError(
            "must be a lowercase DNS subdomain: letters, digits, '-' and '.', "
            "starting and ending with a letter or digit, at most 253 characters"
        )
    return value


def _check_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            "must be a lowercase DNS label: letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters"
        )
    return value


#: An object name (DNS-1123 subdomain).
ObjectName = Annotated[str, AfterValidator(_check_subdomain)]
#: A namespace name (DNS-1123 label).
NamespaceName = Annotated[str, AfterValidator(_check_label)]


class ObjectMeta(Model):
    """The subset of Kubernetes ObjectMeta the service reads and writes."""

    name: ObjectName
    namespace: NamespaceName = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    # Set by the API server in cluster mode; accepted so cluster objects validate unchanged.
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    finalizers: list[str] | None = None
    owner_references: list[dict[str, Any]] | None = None
    managed_fields: list[dict[str, Any]] | None = None
    generate_name: str | None = None


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    """A Kubernetes-style condition: type, status, machine reason and human message."""

    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


def key_of(meta: ObjectMeta) -> str:
    """``namespace/name``: the identity of an object within its kind."""
    return f"{meta.namespace}/{meta.name}"
