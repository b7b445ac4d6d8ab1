"""AWSEKSNodeGroup provider: sizes an EKS managed node group.

* **Which node group.** ``spec.id`` is ``CLUSTER/NODEGROUP`` (region from the standard boto3
  chain) or the node group ARN, ``arn:aws:eks:REGION:ACCOUNT:nodegroup/CLUSTER/NODEGROUP/UUID``,
  whose cluster, node group and region are used.
* **Read.** ``DescribeNodegroup``: desired, bounds and status come from ``scalingConfig``
  (``desiredSize``, ``minSize``, ``maxSize``) and ``status``.
* **Ready count.** The node group's own Auto Scaling groups (``resources.autoScalingGroups``) are
  read with ``DescribeAutoScalingGroups`` and their ``InService`` + ``Healthy`` instances counted.
  When those groups are not listed or not visible (yet), the count is *estimated* and the message
  says so: desired when the node group is ``ACTIVE``, has no health issues and no update of ours is
  in progress; otherwise the last count seen (0 before any). It never invents progress.
* **Stable** when the status is ``ACTIVE``, no update is in progress and ready equals desired.
* **Write.** ``UpdateNodegroupConfig`` with ``scalingConfig.desiredSize`` only, so a change an
  operator makes to ``minSize``/``maxSize`` at the same moment is never overwritten. The update is
  asynchronous and EKS runs one at a time per node group, so the provider remembers the update it
  started. While that update is in progress, asking for the same count again is a no-op and asking
  for a different count raises :class:`~autoscaler.errors.RetryableError` with code
  ``ResourceInUseException``, without calling AWS; the controller keeps its desired count and
  retries with backoff. A ``ResourceInUseException`` from AWS itself (someone else's update) is
  retryable in the same way. Asking for the size the node group already has (as last read) sends
  nothing.
* **When is an update finished?** ``DescribeUpdate`` says so (``InProgress`` → still running;
  ``Successful``, ``Failed`` or ``Cancelled`` → done, a failure is shown in the message). Where
  ``DescribeUpdate`` does not exist (some emulators), an update counts as in progress for
  ``settle_seconds`` after it was accepted, and for as long as the node group's status reads
  ``UPDATING``. Time comes from the injected clock.
* **Bounds.** A count outside the node group's last-read ``[minSize, maxSize]`` is refused with a
  :class:`~autoscaler.errors.PermanentError` (code ``OutOfBounds``) before anything is sent: the
  controller clamps first, this is the safety net.

Every botocore failure goes through :func:`autoscaler.aws.translate`. boto3 is reached only
through the shared :class:`autoscaler.aws.AWSClients`, on the first call. Each call holds the
provider's lock, so the remembered update and bounds stay consistent across worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autoscaler.api import BackendContext, Clock, NodeGroupState, ScalableNodeGroup
from autoscaler.aws import translate
from autoscaler.errors import PermanentError, RetryableError, SpecError

#: Seconds an update counts as in progress when ``DescribeUpdate`` is not available.
UPDATE_SETTLE_SECONDS = 15.0
#: Error codes meaning "this API does not know DescribeUpdate" (emulators answer 404 pages).
_UNSUPPORTED_CODES = frozenset(
    {"404", "501", "UnknownOperationException", "InvalidAction", "NotImplemented"}
)
_FINISHED = frozenset({"Successful", "Failed", "Cancelled"})


@dataclass(frozen=True, slots=True)
class NodegroupRef:
    """Which managed node group: its cluster, its name, and the region when the id was an ARN."""

    cluster: str
    nodegroup: str
    region: str | None = None

    def __str__(self) -> str:
        return f"{self.cluster}/{self.nodegroup}"


@dataclass(frozen=True, slots=True)
class NodegroupSummary:
    """What ``DescribeNodegroup`` says about a node group's size."""

    desired: int
    min_size: int
    max_size: int
    status: str
    health_issues: tuple[str, ...] = ()
    auto_scaling_groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PendingUpdate:
    """An ``UpdateNodegroupConfig`` this provider started and has not seen finish."""

    id: str
    desired: int
    started_at: float


def parse_nodegroup_id(nodegroup_id: str) -> NodegroupRef:
    """``CLUSTER/NODEGROUP`` or a node group ARN → cluster, node group and region.

    Raises :class:`~autoscaler.errors.SpecError` (path ``spec.id``) for anything else.
    """
    value = nodegroup_id.strip()
    if value.startswith("arn:"):
        # arn:PARTITION:eks:REGION:ACCOUNT:nodegroup/CLUSTER/NODEGROUP/UUID
        fields = value.split(":", 5)
        if len(fields) == 6 and fields[1] and fields[2] == "eks" and fields[3]:
            parts = fields[5].split("/")
            if len(parts) in (3, 4) and parts[0] == "nodegroup" and all(parts):
                return NodegroupRef(parts[1], parts[2], fields[3])
        raise SpecError(
            f"{nodegroup_id!r} is not an EKS node group ARN "
            "(arn:aws:eks:REGION:ACCOUNT:nodegroup/CLUSTER/NODEGROUP/UUID)",
            path="spec.id",
            code="InvalidId",
        )
    parts = value.split("/")
    if len(parts) != 2 or not all(parts) or ":" in value or any(" " in part for part in parts):
        raise SpecError(
            f"{nodegroup_id!r} is neither CLUSTER/NODEGROUP nor an EKS node group ARN",
            path="spec.id",
            code="InvalidId",
        )
    return NodegroupRef(parts[0], parts[1])


def summarize_nodegroup(response: Mapping[str, Any]) -> NodegroupSummary:
    """Check a ``DescribeNodegroup`` response and keep what sizing needs.

    Missing or negative sizes, ``minSize > maxSize`` or a missing status raise
    :class:`~autoscaler.errors.PermanentError` with code ``MalformedResponse``.
    """
    nodegroup = response.get("nodegroup") if isinstance(response, Mapping) else None
    if not isinstance(nodegroup, Mapping):
        raise _malformed("DescribeNodegroup", "nodegroup is missing")
    scaling = nodegroup.get("scalingConfig")
    if not isinstance(scaling, Mapping):
        raise _malformed("DescribeNodegroup", "scalingConfig is missing")
    desired = _size(scaling, "desiredSize")
    min_size = _size(scaling, "minSize")
    max_size = _size(scaling, "maxSize")
    if min_size > max_size:
        raise _malformed(
            "DescribeNodegroup", f"minSize {min_size} is greater than maxSize {max_size}"
        )
    status = nodegroup.get("status")
    if not isinstance(status, str) or not status:
        raise _malformed("DescribeNodegroup", "status is missing")
    return NodegroupSummary(
        desired=desired,
        min_size=min_size,
        max_size=max_size,
        status=status,
        health_issues=_health_issues(nodegroup.get("health")),
        auto_scaling_groups=_group_names(nodegroup.get("resources")),
    )


def _size(scaling: Mapping[str, Any], field: str) -> int:
    value = scaling.get(field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _malformed("DescribeNodegroup", f"scalingConfig.{field} is missing or not an integer")
    if value < 0:
        raise _malformed("DescribeNodegroup", f"scalingConfig.{field} is negative ({value})")
    return value


def _health_issues(health: Any) -> tuple[str, ...]:
    if not isinstance(health, Mapping):
        return ()
    issues = health.get("issues") or []
    if not isinstance(issues, list):
        raise _malformed("DescribeNodegroup", "health.issues is not a list")
    return tuple(
        str(issue.get("code") or "Unknown") if isinstance(issue, Mapping) else "Unknown"
        for issue in issues
    )


def _group_names(resources: Any) -> tuple[str, ...]:
    if not isinstance(resources, Mapping):
        return ()
    groups = resources.get("autoScalingGroups") or []
    if not isinstance(groups, list):
        raise _malformed("DescribeNodegroup", "resources.autoScalingGroups is not a list")
    names = []
    for index, group in enumerate(groups):
        name = group.get("name") if isinstance(group, Mapping) else None
        if not isinstance(name, str) or not name:
            raise _malformed(
                "DescribeNodegroup", f"resources.autoScalingGroups[{index}].name is missing"
            )
        names.append(name)
    return tuple(names)


def count_ready_instances(groups: Sequence[Mapping[str, Any]]) -> int:
    """Instances ``InService`` and ``Healthy`` across ``DescribeAutoScalingGroups`` entries."""
    ready = 0
    for group_index, group in enumerate(groups):
        instances = group.get("Instances") if isinstance(group, Mapping) else None
        if not isinstance(instances, list):
            raise _malformed(
                "DescribeAutoScalingGroups",
                f"AutoScalingGroups[{group_index}].Instances is missing",
            )
        for index, instance in enumerate(instances):
            where = f"AutoScalingGroups[{group_index}].Instances[{index}]"
            if not isinstance(instance, Mapping):
                raise _malformed("DescribeAutoScalingGroups", f"{where} is not an object")
            state = instance.get("LifecycleState")
            health = instance.get("HealthStatus")
            if not isinstance(state, str) or not isinstance(health, str):
                raise _malformed(
                    "DescribeAutoScalingGroups",
                    f"{where} lacks LifecycleState or HealthStatus",
                )
            if state == "InService" and health == "Healthy":
                ready += 1
    return ready


def estimate_ready(summary: NodegroupSummary, updating: bool, previous: int | None) -> int:
    """The ready count when the node group's Auto Scaling groups cannot be read.

    Desired when the node group is ``ACTIVE``, healthy and not being updated by us; otherwise
    the last count seen, or 0 before any.
    """
    if summary.status == "ACTIVE" and not summary.health_issues and not updating:
        return summary.desired
    return previous if previous is not None else 0


def node_group_state(
    summary: NodegroupSummary,
    ready: int,
    *,
    estimated: bool = False,
    update: PendingUpdate | None = None,
    last_failure: str | None = None,
) -> NodeGroupState:
    """The loop's view: stable when ``ACTIVE``, no update in progress and ready == desired."""
    noun = "node" if summary.desired == 1 else "nodes"
    if ready <= summary.desired:
        parts = [f"{ready} of {summary.desired} {noun} ready"]
    else:
        parts = [f"{ready} nodes ready, {summary.desired} desired"]
    if estimated:
        parts[0] += " (estimated from the node group status)"
    if summary.status != "ACTIVE":
        parts.append(f"status {summary.status}")
    if update is not None:
        parts.append(f"update {update.id} to {update.desired} in progress")
    if summary.health_issues:
        parts.append("health issues: " + ", ".join(summary.health_issues))
    if last_failure:
        parts.append(last_failure)
    return NodeGroupState(
        desired=summary.desired,
        ready=ready,
        min_size=summary.min_size,
        max_size=summary.max_size,
        stable=summary.status == "ACTIVE" and update is None and ready == summary.desired,
        message=", ".join(parts),
    )


def _malformed(operation: str, detail: str) -> PermanentError:
    return PermanentError(f"unexpected {operation} response: {detail}", code="MalformedResponse")


def _error_code(exc: Exception) -> tuple[str, int]:
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping):
        return "", 0
    code = str(response.get("Error", {}).get("Code") or "")
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return code, status


class EKSNodeGroup:
    """One EKS managed node group, resized one update at a time."""

    def __init__(
        self,
        ref: NodegroupRef,
        clients: Any,
        clock: Clock,
        *,
        settle_seconds: float = UPDATE_SETTLE_SECONDS,
    ) -> None:
        self.ref = ref
        self.settle_seconds = settle_seconds
        self._clients = clients
        self._clock = clock
        self._lock = threading.Lock()
        self._bounds: tuple[int, int] | None = None
        self._desired: int | None = None
        self._status: str | None = None
        self._ready: int | None = None
        self._update: PendingUpdate | None = None
        self._last_failure: str | None = None
        self._describe_update_supported = True

    # ------------------------------------------------------------------ protocol

    def get_replicas(self) -> NodeGroupState:
        """Desired and bounds from ``scalingConfig``, ready nodes, and whether it is stable."""
        with self._lock:
            return self._read()

    def set_replicas(self, replicas: int) -> None:
        """Start an ``UpdateNodegroupConfig`` to ``replicas``, one update at a time."""
        with self._lock:
            if self._bounds is None:
                self._read()
            assert self._bounds is not None
            low, high = self._bounds
            if not low <= replicas <= high:
                raise PermanentError(
                    f"node group {self.ref}: {replicas} replicas is outside the node group's "
                    f"bounds [{low}, {high}]",
                    code="OutOfBounds",
                )
            update = self._update_in_progress()
            if update is not None:
                if update.desired == replicas:
                    return  # the update on its way already asks for this count
                raise RetryableError(
                    f"node group {self.ref}: update {update.id} to {update.desired} is still in "
                    f"progress; retry {replicas} once it has finished",
                    code="ResourceInUseException",
                )
            if self._desired == replicas:
                return  # already the node group's size: nothing to change
            action = f"UpdateNodegroupConfig on {self.ref}"
            try:
                response = self._eks().update_nodegroup_config(
                    clusterName=self.ref.cluster,
                    nodegroupName=self.ref.nodegroup,
                    scalingConfig={"desiredSize": replicas},
                )
            except Exception as exc:
                raise translate(exc, action) from exc
            self._track(response, replicas, action)

    # ------------------------------------------------------------------ internals

    def _eks(self) -> Any:
        return self._clients.client("eks", self.ref.region)

    def _read(self) -> NodeGroupState:
        try:
            response = self._eks().describe_nodegroup(
                clusterName=self.ref.cluster, nodegroupName=self.ref.nodegroup
            )
        except Exception as exc:
            raise translate(exc, f"DescribeNodegroup on {self.ref}") from exc
        summary = summarize_nodegroup(response)
        self._bounds = (summary.min_size, summary.max_size)
        self._desired = summary.desired
        self._status = summary.status
        update = self._update_in_progress()
        ready = self._ready_from_groups(summary.auto_scaling_groups)
        estimated = ready is None
        if ready is None:
            ready = estimate_ready(summary, update is not None, self._ready)
        self._ready = ready
        return node_group_state(
            summary, ready, estimated=estimated, update=update, last_failure=self._last_failure
        )

    def _ready_from_groups(self, names: tuple[str, ...]) -> int | None:
        """Ready instances of the node group's Auto Scaling groups; None if any is not visible."""
        if not names:
            return None
        groups: list[Mapping[str, Any]] = []
        request: dict[str, Any] = {"AutoScalingGroupNames": list(names)}
        while True:
            try:
                client = self._clients.client("autoscaling", self.ref.region)
                response = client.describe_auto_scaling_groups(**request)
            except Exception as exc:
                raise translate(exc, f"DescribeAutoScalingGroups on {', '.join(names)}") from exc
            page = response.get("AutoScalingGroups") if isinstance(response, Mapping) else None
            if not isinstance(page, list):
                raise _malformed("DescribeAutoScalingGroups", "AutoScalingGroups is missing")
            groups += page
            token = response.get("NextToken")
            if not token:
                break
            request["NextToken"] = token
        by_name = {
            group.get("AutoScalingGroupName"): group
            for group in groups
            if isinstance(group, Mapping)
        }
        if any(name not in by_name for name in names):
            return None
        return count_ready_instances([by_name[name] for name in names])

    def _track(self, response: Any, replicas: int, action: str) -> None:
        update = response.get("update") if isinstance(response, Mapping) else None
        update_id = update.get("id") if isinstance(update, Mapping) else None
        if not isinstance(update_id, str) or not update_id:
            raise _malformed("UpdateNodegroupConfig", "update.id is missing")
        assert isinstance(update, Mapping)
        if update.get("status") in {"Failed", "Cancelled"}:
            raise PermanentError(
                f"{action}: update {update_id} {update.get('status')}: "
                f"{_describe_errors(update.get('errors'))}",
                code="UpdateFailed",
            )
        self._update = PendingUpdate(update_id, replicas, self._clock())
        self._desired = replicas
        self._last_failure = None

    def _update_in_progress(self) -> PendingUpdate | None:
        """The update this provider started, if it is still running; forgets finished ones."""
        update = self._update
        if update is None:
            return None
        if self._describe_update_supported:
            status = self._describe_update(update)
            if status is not None:
                if status in _FINISHED:
                    self._update = None
                    return None
                return update
        # No DescribeUpdate: a settle window, extended while the node group reads UPDATING.
        if self._clock() - update.started_at < self.settle_seconds or self._status == "UPDATING":
            return update
        self._update = None
        return None

    def _describe_update(self, update: PendingUpdate) -> str | None:
        """The update's status; None when this endpoint has no DescribeUpdate."""
        try:
            response = self._eks().describe_update(
                name=self.ref.cluster, nodegroupName=self.ref.nodegroup, updateId=update.id
            )
        except Exception as exc:
            code, http_status = _error_code(exc)
            if code in _UNSUPPORTED_CODES or (
                http_status == 404 and code != "ResourceNotFoundException"
            ):
                self._describe_update_supported = False
                return None
            if code == "ResourceNotFoundException":
                return "Successful"  # the update is gone: nothing is in progress any more
            raise translate(exc, f"DescribeUpdate {update.id} on {self.ref}") from exc
        described = response.get("update") if isinstance(response, Mapping) else None
        status = described.get("status") if isinstance(described, Mapping) else None
        if not isinstance(status, str):
            raise _malformed("DescribeUpdate", "update.status is missing")
        if status in {"Failed", "Cancelled"}:
            assert isinstance(described, Mapping)
            self._last_failure = (
                f"update {update.id} to {update.desired} {status.lower()}: "
                f"{_describe_errors(described.get('errors'))}"
            )
        return status


def _describe_errors(errors: Any) -> str:
    if not isinstance(errors, list) or not errors:
        return "no details"
    texts = []
    for error in errors:
        if isinstance(error, Mapping):
            texts.append(f"{error.get('errorCode', 'Unknown')}: {error.get('errorMessage', '')}")
    return "; ".join(texts) or "no details"


def validate(resource: ScalableNodeGroup) -> None:
    """Check the form of ``spec.id`` without calling AWS (used by ``autoscaler validate``)."""
    parse_nodegroup_id(resource.spec.id)


def create(resource: ScalableNodeGroup, context: BackendContext) -> EKSNodeGroup:
    """Build the provider for a ScalableNodeGroup of type ``AWSEKSNodeGroup``.

    Nothing is called until the first read; an id that is neither ``CLUSTER/NODEGROUP`` nor a
    node group ARN is a :class:`~autoscaler.errors.SpecError` on ``spec.id``.
    """
    return EKSNodeGroup(parse_nodegroup_id(resource.spec.id), context.aws, context.clock)
