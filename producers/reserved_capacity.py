"""Reserved capacity producer (``reservedCapacity``): how much of the nodes' capacity pods request.

Reads the shared watch-fed cluster cache (:mod:`autoscaler.kube.cache`), never the API server
directly, so an observation costs a walk over the selected nodes and no request.

* **Nodes counted.** Nodes whose labels include every ``spec.reservedCapacity.nodeSelector``
  entry (an empty selector selects every node) that are *Ready*, not cordoned
  (``spec.unschedulable``) and not being deleted: the nodes the scheduler can use now.
* **Reserved.** The effective requests of the non-terminal pods bound to those nodes (the
  scheduler's rule: per resource, the larger of the largest init container and the sum of the
  app containers and sidecars, plus the pod overhead; one ``pods`` slot per pod). DaemonSet and
  static pods count: they hold capacity too. Pods being deleted count until they are gone.
* **Capacity.** The nodes' ``status.allocatable``.
* **Resources.** ``cpu`` (cores), ``memory`` (bytes), ``pods`` and ``nvidia.com/gpu``.

Signals, each with the label ``resource`` (``cpu``, ``memory``, ``pods``, ``nvidia.com/gpu``):
``utilization`` (reserved / capacity in percent; 0 when the capacity is 0), ``reserved`` and
``capacity``. Plus one ``utilization`` *without* labels: the largest utilization over the
resources the nodes have (capacity above 0) — the resource that runs out first — or 0 when
no node is counted. That unlabelled one is the main signal: an autoscaler metric that names
no labels reads it (the signal store prefers the exact label match); one that names
``labels: {resource: cpu}`` reads the CPU figure.

Status: ``{"reservedCapacity": {"nodes": N, "utilization": {...}, "reserved": {...},
"capacity": {...}}}``, every map keyed by resource.

Errors: ``RetryableError`` (code ``CacheNotSynced``) until the cache has listed pods and nodes
once, and (code ``CacheDisconnected``) when its watches have been failing for longer than
:data:`autoscaler.kube.cache.STALE_AFTER_SECONDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from autoscaler.api import BackendContext, MetricsProducer, Observation, Signal
from autoscaler.errors import PermanentError
from autoscaler.kube.cache import ClusterCache
from autoscaler.scheduling import from_milli

#: The resources observed, in signal order.
RESOURCES = ("cpu", "memory", "pods", "nvidia.com/gpu")
UTILIZATION = "utilization"
RESERVED = "reserved"
CAPACITY = "capacity"


def _round(value: float) -> float:
    return round(value, 6)


class ReservedCapacityProducer:
    """Emits ``utilization``, ``reserved`` and ``capacity`` per resource for selected nodes."""

    def __init__(self, key: str, node_selector: Mapping[str, str], context: BackendContext) -> None:
        self.key = key
        self.node_selector = dict(node_selector)
        self._context = context
        self._waiting = False

    def _on_synced(self) -> None:
        trigger: Callable[[str], None] | None = self._context.extras.get("trigger")
        if trigger is not None:
            trigger(self.key)

    def observe(self, now: float) -> Observation:
        """Sum requests and allocatable over the selected Ready, schedulable nodes."""
        cache: ClusterCache = self._context.kube.cluster_cache()
        if not cache.synced and not self._waiting:
            self._waiting = True  # run again as soon as the cache syncs
            cache.when_synced(self._on_synced, weak=True)
        cache.check_ready()
        reserved = dict.fromkeys(RESOURCES, 0)
        capacity = dict.fromkeys(RESOURCES, 0)
        nodes = 0
        for node, usage in cache.nodes(self.node_selector):
            if not node.schedulable:
                continue
            nodes += 1
            for resource in RESOURCES:
                capacity[resource] += node.allocatable.get(resource, 0)
                reserved[resource] += usage.requests.get(resource, 0)
        utilization = {
            r: _round(100.0 * reserved[r] / capacity[r]) if capacity[r] > 0 else 0.0
            for r in RESOURCES
        }
        busiest = max((utilization[r] for r in RESOURCES if capacity[r] > 0), default=0.0)
        signals = [Signal(name=UTILIZATION, value=busiest, timestamp=now)]
        for resource in RESOURCES:
            labels = {"resource": resource}
            signals += [
                Signal(UTILIZATION, utilization[resource], now, labels),
                Signal(RESERVED, _round(from_milli(reserved[resource])), now, labels),
                Signal(CAPACITY, _round(from_milli(capacity[resource])), now, labels),
            ]
        status: dict[str, Any] = {
            "nodes": nodes,
            "utilization": utilization,
            "reserved": {r: _round(from_milli(v)) for r, v in reserved.items()},
            "capacity": {r: _round(from_milli(v)) for r, v in capacity.items()},
        }
        return Observation(signals=tuple(signals), status={"reservedCapacity": status})


def create(resource: MetricsProducer, context: BackendContext) -> ReservedCapacityProducer:
    """Build the producer for a MetricsProducer whose source is ``reservedCapacity``. No
    request is made here: the cluster cache starts on the first observation."""
    spec = resource.spec.reserved_capacity
    if spec is None:
        raise PermanentError("spec.reservedCapacity is not set: this producer needs one")
    key = f"{resource.metadata.namespace}/{resource.metadata.name}"
    return ReservedCapacityProducer(key, spec.node_selector, context)
