"""ScalableNodeGroup: one node group the service may resize."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from autoscaler.api.common import GROUP_VERSION, Condition, Model, ObjectMeta

NodeGroupType = Literal[
    "AWSEC2AutoScalingGroup",
    "AWSEKSNodeGroup",
    "ClusterAPIMachineDeployment",
    "Simulated",
]


class SimulatedOptions(Model):
    """Behaviour of a ``Simulated`` node group (an in-memory group for trials and demos)."""

    provisioning_delay_seconds: float = Field(
        default=30.0, ge=0, le=86400, description="Seconds from a scale-up until a node is ready."
    )
    min_size: int = Field(default=0, ge=0, description="The group's own lower bound.")
    max_size: int = Field(default=1000, ge=0, description="The group's own upper bound.")
    initial_ready: int | None = Field(
        default=None, ge=0, description="Ready nodes at start (default: spec.replicas or 0)."
    )

    @model_validator(mode="after")
    def _bounds(self) -> SimulatedOptions:
        if self.max_size < self.min_size:
            raise ValueError("maxSize must be greater than or equal to minSize")
        return self


class NodeGroupLimits(Model):
    """Operator safety limits on every change the autoscalers make to this node group."""

    max_scale_up_step: int | None = Field(
        default=None,
        ge=1,
        le=100000,
        description="Most nodes one decision may add (unset: no limit beyond the behavior).",
    )
    max_scale_down_step: int | None = Field(
        default=None,
        ge=1,
        le=100000,
        description="Most nodes one decision may remove (unset: no limit beyond the behavior).",
    )
    scale_in_only_when_stable: bool = Field(
        default=True,
        description="Remove nodes only while the group is stable: nothing provisioning or "
        "terminating and every desired node ready.",
    )


class ScalableNodeGroupSpec(Model):
    type: NodeGroupType = Field(description="Which kind of node group this is.")
    id: str = Field(
        min_length=1,
        max_length=2048,
        description=(
            "ASG name or ARN; EKS node group ARN or cluster/nodegroup; namespace/name of a "
            "MachineDeployment; any name for Simulated."
        ),
    )
    replicas: int | None = Field(
        default=None, ge=0, le=100000, description="Desired node count, written by the autoscaler."
    )
    simulated: SimulatedOptions | None = Field(
        default=None, description="Options for type Simulated."
    )
    limits: NodeGroupLimits | None = Field(
        default=None,
        description="Safety limits on the autoscalers' changes (unset: scale-in only when stable).",
    )

    @model_validator(mode="after")
    def _options_match_type(self) -> ScalableNodeGroupSpec:
        if self.simulated is not None and self.type != "Simulated":
            raise ValueError("simulated options are only allowed with type Simulated")
        return self


class ReplicaOverrideStatus(Model):
    """An operator's override: the node group's count is pinned until removed or expired."""

    replicas: int = Field(ge=0, description="The pinned desired count.")
    reason: str = Field(description="Why, as the operator wrote it.")
    by: str = Field(description="The authenticated identity that set it.")
    since: datetime = Field(description="When it was set.")
    expires: datetime | None = Field(default=None, description="When it ends (unset: never).")


class ScalableNodeGroupStatus(Model):
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this status describes."
    )
    replicas: int | None = Field(default=None, ge=0, description="Ready nodes.")
    desired_replicas: int | None = Field(default=None, description="Desired count at the backend.")
    min_size: int | None = None
    max_size: int | None = None
    last_updated: datetime | None = None
    conditions: list[Condition] = Field(default_factory=list)
    override: ReplicaOverrideStatus | None = Field(
        default=None, description="The operator's override in force, if any."
    )
    dry_run: bool | None = Field(
        default=None,
        description="True in dry-run mode: spec.replicas is what the service would ask for; "
        "the group is never resized.",
    )


class ScalableNodeGroup(Model):
    api_version: Literal["autoscaler.dev/v1alpha1"] = GROUP_VERSION
    kind: Literal["ScalableNodeGroup"] = "ScalableNodeGroup"
    metadata: ObjectMeta
    spec: ScalableNodeGroupSpec
    status: ScalableNodeGroupStatus | None = None
