"""AWSEC2AutoScalingGroup provider: sizes an EC2 Auto Scaling group.

* **Which group.** ``spec.id`` is the group's name (region from the standard boto3 chain) or its
  ARN, ``arn:aws:autoscaling:REGION:ACCOUNT:autoScalingGroup:UUID:autoScalingGroupName/NAME``,
  whose name and region are used.
* **Read.** ``DescribeAutoScalingGroups`` for the one name. Desired is ``DesiredCapacity``; ready
  counts the instances whose ``LifecycleState`` is ``InService`` *and* whose ``HealthStatus`` is
  ``Healthy`` (so an unhealthy or standby instance is not ready); the bounds are ``MinSize`` and
  ``MaxSize``. The group is stable when no instance is pending, terminating or otherwise changing
  state and ready equals desired. A group that is not there is a
  :class:`~autoscaler.errors.NotFoundError` with code ``AutoScalingGroupNotFound``; a response
  missing a field or carrying a negative count is a :class:`~autoscaler.errors.PermanentError`
  with code ``MalformedResponse``.
* **Write.** ``SetDesiredCapacity`` with ``HonorCooldown=False`` (the autoscaler has its own
  stabilization and rate policies). Asking for the same count twice changes nothing. A count
  outside the group's last-read ``[MinSize, MaxSize]`` is refused with a ``PermanentError`` (code
  ``OutOfBounds``) before anything is sent: the controller clamps to those bounds first, this is
  the safety net.
* **Errors.** Every botocore failure goes through :func:`autoscaler.aws.translate`: throttling
  and ``ScalingActivityInProgress`` are retryable, access denied is permanent.

boto3 is reached only through the shared :class:`autoscaler.aws.AWSClients`, on the first call.
The last-read bounds are guarded by a lock: the service calls providers from worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autoscaler.api import BackendContext, NodeGroupState, ScalableNodeGroup
from autoscaler.aws import translate
from autoscaler.errors import NotFoundError, PermanentError, SpecError

#: AWS allows 1–255 characters in a group name, and no colon outside an ARN.
MAX_NAME_LENGTH = 255
_NAME_PREFIX = "autoScalingGroupName/"


@dataclass(frozen=True, slots=True)
class GroupRef:
    """Which Auto Scaling group: its name, and the region when the id was an ARN."""

    name: str
    region: str | None = None


@dataclass(frozen=True, slots=True)
class InstanceCounts:
    """The instances of one group, by what they mean for its size."""

    #: ``InService`` and ``Healthy``: the nodes that count as ready.
    ready: int = 0
    #: ``InService`` but not ``Healthy`` (the group will replace them).
    unhealthy: int = 0
    #: ``Pending``, ``Pending:Wait``, ``Pending:Proceed`` and warm-pool launches.
    pending: int = 0
    #: ``Terminating*``, ``Terminated`` and warm-pool terminations.
    terminating: int = 0
    #: ``Standby``: kept in the group, taken out of service on purpose.
    standby: int = 0
    #: Stopped, running or hibernated in the warm pool.
    warm: int = 0
    #: ``EnteringStandby``, ``Detaching``, ``Quarantined`` or a state this version does not know.
    changing: int = 0

    @property
    def in_transition(self) -> int:
        """Instances on their way in, out or between states."""
        return self.pending + self.terminating + self.changing


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """What one ``DescribeAutoScalingGroups`` entry says about the group's size."""

    desired: int
    min_size: int
    max_size: int
    instances: InstanceCounts

    @property
    def stable(self) -> bool:
        """Nothing is being added, removed or moved, and ready equals desired."""
        return self.instances.in_transition == 0 and self.instances.ready == self.desired

    @property
    def message(self) -> str:
        """E.g. ``3 of 5 instances in service, 2 pending``."""
        counts = self.instances
        noun = "instance" if self.desired == 1 else "instances"
        if counts.ready <= self.desired:
            parts = [f"{counts.ready} of {self.desired} {noun} in service"]
        else:
            parts = [f"{counts.ready} instances in service, {self.desired} desired"]
        details = (
            (counts.pending, "pending"),
            (counts.terminating, "terminating"),
            (counts.unhealthy, "unhealthy"),
            (counts.standby, "in standby"),
            (counts.warm, "in the warm pool"),
            (counts.changing, "changing state"),
        )
        parts += [f"{count} {label}" for count, label in details if count]
        return ", ".join(parts)

    def state(self) -> NodeGroupState:
        """The summary as the loop sees it."""
        return NodeGroupState(
            desired=self.desired,
            ready=self.instances.ready,
            min_size=self.min_size,
            max_size=self.max_size,
            stable=self.stable,
            message=self.message,
        )


def parse_group_id(group_id: str) -> GroupRef:
    """A group name, or an Auto Scaling group ARN → name and region.

    Raises :class:`~autoscaler.errors.SpecError` (path ``spec.id``) for anything else.
    """
    value = group_id.strip()
    if value.startswith("arn:"):
        return _parse_arn(value)
    if not value or len(value) > MAX_NAME_LENGTH or ":" in value:
        raise SpecError(
            f"{group_id!r} is neither an Auto Scaling group name (1-{MAX_NAME_LENGTH} "
            "characters, no colon) nor an Auto Scaling group ARN",
            path="spec.id",
            code="InvalidId",
        )
    return GroupRef(value)


def _parse_arn(arn: str) -> GroupRef:
    # arn:PARTITION:autoscaling:REGION:ACCOUNT:autoScalingGroup:UUID:autoScalingGroupName/NAME
    fields = arn.split(":", 5)
    if len(fields) == 6 and fields[1] and fields[2] == "autoscaling" and fields[3]:
        parts = fields[5].split(":", 2)
        if len(parts) == 3 and parts[0] == "autoScalingGroup" and parts[1]:
            name = parts[2].removeprefix(_NAME_PREFIX)
            if parts[2].startswith(_NAME_PREFIX) and 0 < len(name) <= MAX_NAME_LENGTH:
                return GroupRef(name, fields[3])
    raise SpecError(
        f"{arn!r} is not an Auto Scaling group ARN (arn:aws:autoscaling:REGION:ACCOUNT:"
        "autoScalingGroup:UUID:autoScalingGroupName/NAME)",
        path="spec.id",
        code="InvalidId",
    )


def count_instances(instances: Sequence[Mapping[str, Any]]) -> InstanceCounts:
    """Sort a group's ``Instances`` by lifecycle state and health.

    Each instance must carry string ``LifecycleState`` and ``HealthStatus`` fields, else
    :class:`~autoscaler.errors.PermanentError` (``MalformedResponse``).
    """
    counts = {field: 0 for field in InstanceCounts.__dataclass_fields__}
    for index, instance in enumerate(instances):
        if not isinstance(instance, Mapping):
            raise _malformed(f"Instances[{index}] is not an object")
        state = instance.get("LifecycleState")
        health = instance.get("HealthStatus")
        if not isinstance(state, str) or not state:
            raise _malformed(f"Instances[{index}].LifecycleState is missing")
        if not isinstance(health, str) or not health:
            raise _malformed(f"Instances[{index}].HealthStatus is missing")
        counts[_classify(state, health)] += 1
    return InstanceCounts(**counts)


def _classify(state: str, health: str) -> str:
    if state == "InService":
        return "ready" if health == "Healthy" else "unhealthy"
    if state == "Standby":
        return "standby"
    plain = state.removeprefix("Warmed:")
    if plain.startswith("Pending"):
        return "pending"
    if plain.startswith("Terminat"):  # Terminating, Terminating:Wait/Proceed, Terminated
        return "terminating"
    if state in {"Warmed:Stopped", "Warmed:Running", "Warmed:Hibernated"}:
        return "warm"
    return "changing"


def summarize_group(group: Mapping[str, Any]) -> GroupSummary:
    """Check one ``AutoScalingGroups`` entry and summarize it.

    Missing fields, non-integer or negative sizes and ``MinSize > MaxSize`` raise
    :class:`~autoscaler.errors.PermanentError` with code ``MalformedResponse``.
    """
    if not isinstance(group, Mapping):
        raise _malformed("the group entry is not an object")
    desired = _count(group, "DesiredCapacity")
    min_size = _count(group, "MinSize")
    max_size = _count(group, "MaxSize")
    if min_size > max_size:
        raise _malformed(f"MinSize {min_size} is greater than MaxSize {max_size}")
    instances = group.get("Instances")
    if not isinstance(instances, list):
        raise _malformed("Instances is missing")
    return GroupSummary(desired, min_size, max_size, count_instances(instances))


def find_group(response: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The entry for ``name`` in a ``DescribeAutoScalingGroups`` response.

    An empty list means the group does not exist: :class:`~autoscaler.errors.NotFoundError`.
    """
    groups = response.get("AutoScalingGroups") if isinstance(response, Mapping) else None
    if not isinstance(groups, list):
        raise _malformed("AutoScalingGroups is missing")
    for group in groups:
        if isinstance(group, Mapping) and group.get("AutoScalingGroupName") == name:
            return group
    raise NotFoundError(f"Auto Scaling group {name} was not found", code="AutoScalingGroupNotFound")


def _count(group: Mapping[str, Any], field: str) -> int:
    value = group.get(field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _malformed(f"{field} is missing or not an integer")
    if value < 0:
        raise _malformed(f"{field} is negative ({value})")
    return value


def _malformed(detail: str) -> PermanentError:
    return PermanentError(
        f"unexpected DescribeAutoScalingGroups response: {detail}", code="MalformedResponse"
    )


class AutoScalingGroup:
    """One EC2 Auto Scaling group, read and resized through the Auto Scaling API."""

    def __init__(self, ref: GroupRef, clients: Any) -> None:
        self.ref = ref
        self.name = ref.name
        self._clients = clients
        self._lock = threading.Lock()
        self._bounds: tuple[int, int] | None = None

    def _client(self) -> Any:
        return self._clients.client("autoscaling", self.ref.region)

    def get_replicas(self) -> NodeGroupState:
        """Desired, ready (``InService`` and ``Healthy``), the group's bounds, and stability."""
        try:
            response = self._client().describe_auto_scaling_groups(
                AutoScalingGroupNames=[self.name]
            )
        except Exception as exc:
            raise translate(exc, f"DescribeAutoScalingGroups on {self.name}") from exc
        summary = summarize_group(find_group(response, self.name))
        with self._lock:
            self._bounds = (summary.min_size, summary.max_size)
        return summary.state()

    def set_replicas(self, replicas: int) -> None:
        """``SetDesiredCapacity`` without honouring cooldowns; refuses counts outside the bounds."""
        with self._lock:
            bounds = self._bounds
        if bounds is None:
            self.get_replicas()
            with self._lock:
                bounds = self._bounds
        assert bounds is not None
        low, high = bounds
        if not low <= replicas <= high:
            raise PermanentError(
                f"Auto Scaling group {self.name}: {replicas} replicas is outside the group's "
                f"bounds [{low}, {high}]",
                code="OutOfBounds",
            )
        try:
            self._client().set_desired_capacity(
                AutoScalingGroupName=self.name, DesiredCapacity=replicas, HonorCooldown=False
            )
        except Exception as exc:
            raise translate(exc, f"SetDesiredCapacity on {self.name}") from exc


def validate(resource: ScalableNodeGroup) -> None:
    """Check the form of ``spec.id`` without calling AWS (used by ``autoscaler validate``)."""
    parse_group_id(resource.spec.id)


def create(resource: ScalableNodeGroup, context: BackendContext) -> AutoScalingGroup:
    """Build the provider for a ScalableNodeGroup of type ``AWSEC2AutoScalingGroup``.

    Nothing is called until the first read; an id that is neither a name nor an ARN is a
    :class:`~autoscaler.errors.SpecError` on ``spec.id``.
    """
    return AutoScalingGroup(parse_group_id(resource.spec.id), context.aws)
