"""Pending capacity producer (``pendingCapacity``): pending pods one node group could host, and the
nodes the group needs for them.

Reads the shared watch-fed cluster cache (:mod:`autoscaler.kube.cache`); a pod that turns
pending-unschedulable (or stops being so) runs the producer at once through the loop's
``trigger`` (``context.extras["trigger"]``), so reaction time is not bounded by
``intervalSeconds``.

* **The group's nodes** are the nodes whose labels include ``spec.pendingCapacity.nodeSelector``,
  or, when that is unset, every label of ``nodeShape.labels``. With neither, the spec is invalid
  (:func:`validate`): a group must be recognisable among the cluster's nodes.
* **Node shape.** ``nodeShape`` when declared (so a group can scale from zero). Otherwise it is
  learned from the group's first Ready, schedulable node by name: its allocatable minus what its
  DaemonSet pods request (a new node runs them too), its labels without
  ``kubernetes.io/hostname``, its taints without the transient ones the control plane manages
  (``node.kubernetes.io/*``, ``node.cloudprovider.kubernetes.io/*`` and Cluster Autoscaler's
  deletion marks). A learned shape is remembered, so a group that scaled to zero can grow again
  while the service runs.
* **Pending pods** are the pods whose ``PodScheduled`` condition is False with reason
  ``Unschedulable`` (unbound, not terminal, not being deleted, not nominated to a node). The
  group *could host* one when the shape's labels satisfy its nodeSelector and required node
  affinity and the shape's taints are tolerated (:mod:`autoscaler.scheduling`).
* **New nodes** = first-fit-decreasing bin-packing of those pods' effective requests (cpu,
  memory, pods, GPUs and any other resource the shape lists), first onto the free room of the
  group's *starting* nodes (registered, not Ready yet, created less than
  :data:`STARTING_SECONDS` ago — they take pods soon), then onto new nodes of the shape. Pods
  larger than one node are reported (``oversizedPods``), not counted.
* **Nodes needed** = the group's *busy* nodes (not being deleted, running at least one pod that
  is neither a DaemonSet nor a static pod) and starting nodes, plus the new nodes. It is the size
  the group needs right now for the pods it runs and the pods waiting for it: read it with
  ``target: {type: AverageValue, averageValue: 1}``. Idle nodes do not count, so this metric
  never keeps an empty node; it never removes a busy one either.

Signals: ``nodes_needed`` (the main signal), ``pending_pods``, ``new_nodes``.
Status: ``{"pendingCapacity": {pendingPods, nodesNeeded, newNodes, groupNodes, busyNodes,
startingNodes, oversizedPods, shape: {source: Declared|Learned, node, capacity}}}``.

Errors: ``RetryableError`` while the cache is not synced or disconnected for long;
``PermanentError`` (code ``NoNodeShape``) when pods are pending, no shape is declared and no
node of the group was ever seen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from autoscaler.api import BackendContext, MetricsProducer, Observation, Signal
from autoscaler.api.metricsproducer import NodeShape as NodeShapeSpec
from autoscaler.errors import PermanentError, SpecError
from autoscaler.kube.cache import ClusterCache, NodeInfo, NodeUsage, PodInfo
from autoscaler.scheduling import (
    NodeShape,
    PodDemand,
    Taint,
    can_schedule,
    from_milli,
    pack,
    to_milli,
)

NODES_NEEDED = "nodes_needed"
PENDING_PODS = "pending_pods"
NEW_NODES = "new_nodes"
#: A node that is not Ready counts as starting (about to take pods) for this long after its
#: creation; after that it is presumed broken.
STARTING_SECONDS = 600.0
#: Labels that belong to one node, not to the group (left out of a learned shape).
NODE_LABELS = frozenset({"kubernetes.io/hostname"})
#: Taints the control plane adds and removes by itself (left out of a learned shape).
TRANSIENT_TAINT_PREFIXES = ("node.kubernetes.io/", "node.cloudprovider.kubernetes.io/")
TRANSIENT_TAINTS = frozenset(
    {"ToBeDeletedByClusterAutoscaler", "DeletionCandidateOfClusterAutoscaler"}
)


def group_selector(resource: MetricsProducer) -> dict[str, str] | None:
    """The labels that identify the group's nodes: ``nodeSelector``, else ``nodeShape.labels``;
    ``None`` when neither is given."""
    spec = resource.spec.pending_capacity
    if spec is None:
        return None
    if spec.node_selector is not None:
        return dict(spec.node_selector)
    if spec.node_shape is not None and spec.node_shape.labels:
        return dict(spec.node_shape.labels)
    return None


def validate(resource: MetricsProducer) -> None:
    """The group must be recognisable and a declared shape must offer something. Raises
    :class:`~autoscaler.errors.SpecError` with the field path."""
    spec = resource.spec.pending_capacity
    if spec is None:
        return
    if group_selector(resource) is None:
        raise SpecError(
            "set nodeSelector (labels that identify the node group's nodes) or nodeShape.labels",
            path="spec.pendingCapacity.nodeSelector",
        )
    if spec.node_shape is not None:
        capacity = spec.node_shape.capacity
        for name, value in capacity.items():
            if value < 0:
                raise SpecError(
                    "must not be negative",
                    path=f'spec.pendingCapacity.nodeShape.capacity["{name}"]',
                )
        if not any(value > 0 for value in capacity.values()):
            raise SpecError(
                "must offer some resource, e.g. {cpu: 4, memory: 16Gi, pods: 110}",
                path="spec.pendingCapacity.nodeShape.capacity",
            )


def declared_shape(spec: NodeShapeSpec) -> NodeShape:
    """A declared ``nodeShape`` as a scheduling shape (capacity in milli-units)."""
    return NodeShape(
        capacity={name: to_milli(value) for name, value in spec.capacity.items()},
        labels=dict(spec.labels),
        taints=tuple(Taint(t.key, t.value, t.effect) for t in spec.taints),
    )


def learned_shape(node: NodeInfo, usage: NodeUsage) -> NodeShape:
    """What a new node like ``node`` offers to pending pods (module docstring)."""
    capacity = {
        name: max(0, value - usage.daemonset_requests.get(name, 0))
        for name, value in node.allocatable.items()
    }
    return NodeShape(
        capacity=capacity,
        labels={k: v for k, v in node.labels.items() if k not in NODE_LABELS},
        taints=tuple(
            t
            for t in node.taints
            if t.key not in TRANSIENT_TAINTS and not t.key.startswith(TRANSIENT_TAINT_PREFIXES)
        ),
    )


@dataclass(frozen=True, slots=True)
class _Shape:
    shape: NodeShape
    source: str
    node: str | None


@dataclass(frozen=True, slots=True)
class _Group:
    """What one evaluation needs of the group's nodes (recomputed when the cache changes)."""

    nodes: int
    busy: frozenset[str]
    not_ready: tuple[tuple[NodeInfo, NodeUsage], ...]
    shape: _Shape | None


def _starting(node: NodeInfo, now: float) -> bool:
    return (
        not node.ready
        and not node.deleting
        and not node.unschedulable
        and node.created is not None
        and now - node.created < STARTING_SECONDS
    )


class PendingCapacityProducer:
    """Emits ``nodes_needed``, ``pending_pods`` and ``new_nodes`` for one node group."""

    def __init__(
        self,
        key: str,
        node_group: str,
        selector: Mapping[str, str],
        declared: NodeShape | None,
        context: BackendContext,
    ) -> None:
        self.key = key
        self.node_group = node_group
        self.selector = dict(selector)
        self._declared = _Shape(declared, "Declared", None) if declared is not None else None
        self._learned: _Shape | None = None
        self._context = context
        self._listening = False
        self._hostable: dict[PodDemand, bool] = {}
        self._hostable_shape: NodeShape | None = None
        #: The group's nodes, summarized, and the cache versions they were read at.
        self._group_key: tuple[int, int] | None = None
        self._group = _Group(0, frozenset(), (), None)
        #: The last packing and what it depended on (pending pods, shape, starting nodes).
        self._packed_key: tuple[Any, ...] | None = None
        self._packed = (0, 0, 0)

    # ----------------------------------------------------------------- wake-up

    def _listen(self, cache: ClusterCache) -> None:
        """Subscribe (once) to pods entering or leaving the pending state, and to the cache's
        first sync, so an observation that came too early is repeated at once."""
        if self._listening:
            return
        self._listening = True
        if callable(self._context.extras.get("trigger")):
            cache.add_pending_listener(self._on_pending, weak=True)
            if not cache.synced:
                cache.when_synced(self._on_synced, weak=True)

    def _on_synced(self) -> None:
        trigger: Callable[[str], None] | None = self._context.extras.get("trigger")
        if trigger is not None:
            trigger(self.key)

    def _on_pending(self, pod: PodInfo, pending: bool) -> None:
        """Cache thread: run at once when the pod may concern this group."""
        del pending  # entering and leaving both change the figures
        trigger: Callable[[str], None] | None = self._context.extras.get("trigger")
        if trigger is None:
            return
        current = self._declared or self._learned
        if current is None or pod.demand is None or can_schedule(pod.demand, current.shape):
            trigger(self.key)

    # ----------------------------------------------------------------- observe

    def _shape(self, group: list[tuple[NodeInfo, NodeUsage]]) -> _Shape | None:
        if self._declared is not None:
            return self._declared
        for node, usage in group:
            if node.schedulable:
                learned = _Shape(learned_shape(node, usage), "Learned", node.name)
                self._learned = learned
                return learned
        return self._learned

    def _hostable_demands(
        self, demands: list[tuple[PodDemand, int]], shape: NodeShape
    ) -> list[tuple[PodDemand, int]]:
        """The demands a node of ``shape`` admits (labels, affinity, taints), memoized per
        demand while the shape stays the same."""
        if shape != self._hostable_shape:
            self._hostable = {}
            self._hostable_shape = shape
        memo = self._hostable
        if len(memo) > 4 * len(demands) + 64:  # forget demands long gone
            live = {d for d, _ in demands}
            memo = self._hostable = {d: v for d, v in memo.items() if d in live}
        out = []
        for demand, count in demands:
            found = memo.get(demand)
            if found is None:
                found = memo[demand] = can_schedule(demand, shape)
            if found:
                out.append((demand, count))
        return out

    def _pack(
        self,
        demands: list[tuple[PodDemand, int]],
        known: _Shape | None,
        open_nodes: tuple[tuple[tuple[str, int], ...], ...],
    ) -> tuple[int, int, int]:
        """(pending pods the group can host, new nodes, oversized pods)."""
        if known is None:
            if demands:
                raise PermanentError(
                    f"{len(demands)} kinds of pods are pending, but node group "
                    f"{self.node_group} has no node to learn its shape from: declare "
                    "spec.pendingCapacity.nodeShape",
                    code="NoNodeShape",
                )
            return 0, 0, 0
        hostable = self._hostable_demands(demands, known.shape)
        if not hostable:
            return 0, 0, 0
        result = pack(
            [(demand.requests_map, count) for demand, count in hostable],
            known.shape.capacity,
            [dict(room) for room in open_nodes],
        )
        pods = sum(count for _, count in hostable) - result.oversized
        return pods, result.new_nodes, result.oversized

    def observe(self, now: float) -> Observation:
        """Pack the pending pods the group could host onto its node shape."""
        cache: ClusterCache = self._context.kube.cluster_cache()
        self._listen(cache)
        cache.check_ready()
        versions = (cache.nodes_version, cache.usage_version)  # read before the nodes
        if versions != self._group_key:
            group = [(n, u) for n, u in cache.nodes(self.selector) if not n.deleting]
            self._group = _Group(
                nodes=len(group),
                busy=frozenset(n.name for n, u in group if u.workload_pods > 0),
                not_ready=tuple((n, u) for n, u in group if not n.ready),
                shape=self._shape(group),
            )
            self._group_key = versions
        summary = self._group
        busy, known = summary.busy, summary.shape
        starting = [(n, u) for n, u in summary.not_ready if _starting(n, now)]
        open_nodes = tuple(
            tuple(
                sorted(
                    (name, max(0, have - usage.requests.get(name, 0)))
                    for name, have in n.allocatable.items()
                )
            )
            for n, usage in starting
        )
        key = (cache.pending_version, known.shape if known else None, open_nodes)
        if key != self._packed_key:
            self._packed = self._pack(cache.pending(), known, open_nodes)
            self._packed_key = key
        pending_pods, new_nodes, oversized = self._packed
        needed = len(busy | {n.name for n, _ in starting}) + new_nodes
        status: dict[str, Any] = {
            "pendingPods": pending_pods,
            "nodesNeeded": needed,
            "newNodes": new_nodes,
            "groupNodes": summary.nodes,
            "busyNodes": len(busy),
            "startingNodes": len(starting),
            "oversizedPods": oversized,
        }
        if known is not None:
            status["shape"] = {
                "source": known.source,
                "node": known.node,
                "capacity": {k: from_milli(v) for k, v in sorted(known.shape.capacity.items())},
            }
        return Observation(
            signals=(
                Signal(NODES_NEEDED, float(needed), now),
                Signal(PENDING_PODS, float(pending_pods), now),
                Signal(NEW_NODES, float(new_nodes), now),
            ),
            status={"pendingCapacity": status},
        )


def create(resource: MetricsProducer, context: BackendContext) -> PendingCapacityProducer:
    """Build the producer for a MetricsProducer whose source is ``pendingCapacity``. No
    request is made here: the cluster cache starts on the first observation."""
    spec = resource.spec.pending_capacity
    if spec is None:
        raise PermanentError("spec.pendingCapacity is not set: this producer needs one")
    validate(resource)
    selector = group_selector(resource)
    assert selector is not None
    declared = declared_shape(spec.node_shape) if spec.node_shape is not None else None
    key = f"{resource.metadata.namespace}/{resource.metadata.name}"
    return PendingCapacityProducer(key, spec.node_group, selector, declared, context)
