"""Simulated provider: an in-memory node group for trials, demos and the simulator.

Nothing leaves the process. The group is a list of nodes, each with the time it becomes (or
became) ready:

* **Start.** ``initialReady`` ready nodes if set, else ``spec.replicas``, else 0, moved into
  ``[minSize, maxSize]`` the way a real group would hold its size within its bounds.
* **Scale up.** ``set_replicas(n)`` above the current desired count adds the missing nodes as
  *pending*; each becomes ready ``provisioningDelaySeconds`` after the request.
* **Scale down.** Pending nodes go first, newest first (they cost nothing yet), then ready nodes.
  Removal is immediate.
* **Bounds.** A count outside ``[minSize, maxSize]`` is refused with a
  :class:`~autoscaler.errors.PermanentError`; the controller clamps before it calls.
* **Stable** when no node is pending (then ready equals desired).

Time comes only from the injected clock, so the same group behaves identically live and under a
fake clock. Every method takes a lock: the service calls providers from worker threads.
"""

from __future__ import annotations

import threading

from autoscaler.api import BackendContext, Clock, NodeGroupState, ScalableNodeGroup
from autoscaler.api.scalablenodegroup import SimulatedOptions
from autoscaler.errors import PermanentError


def _nodes(count: int) -> str:
    return f"{count} node" if count == 1 else f"{count} nodes"


class SimulatedNodeGroup:
    """An in-memory node group whose new nodes become ready after a fixed delay."""

    #: Calls never wait on I/O: the loop makes them on its own thread (``api.InMemory``).
    in_memory = True

    def __init__(
        self,
        name: str,
        clock: Clock,
        *,
        initial: int = 0,
        provisioning_delay_seconds: float = 30.0,
        min_size: int = 0,
        max_size: int = 1000,
    ) -> None:
        if min_size < 0 or max_size < min_size:
            raise PermanentError(
                f"simulated group {name}: bounds [{min_size}, {max_size}] are not valid"
            )
        self.name = name
        self.provisioning_delay_seconds = provisioning_delay_seconds
        self.min_size = min_size
        self.max_size = max_size
        self._clock = clock
        self._lock = threading.Lock()
        start = clock()
        # Ready time of every node, oldest first. Initial nodes are ready already.
        self._ready_at: list[float] = [start] * min(max(initial, min_size), max_size)

    def get_replicas(self) -> NodeGroupState:
        """Desired and ready counts now, the group's bounds, and whether it is stable."""
        with self._lock:
            now = self._clock()
            desired = len(self._ready_at)
            ready = sum(1 for ready_at in self._ready_at if ready_at <= now)
        pending = desired - ready
        if pending:
            message = f"{pending} of {_nodes(desired)} provisioning"
        else:
            message = f"{_nodes(ready)} ready"
        return NodeGroupState(
            desired=desired,
            ready=ready,
            min_size=self.min_size,
            max_size=self.max_size,
            stable=pending == 0,
            message=message,
        )

    def set_replicas(self, replicas: int) -> None:
        """Resize to ``replicas`` nodes; setting the current count again changes nothing."""
        if not self.min_size <= replicas <= self.max_size:
            raise PermanentError(
                f"simulated group {self.name}: {replicas} replicas is outside the group's "
                f"bounds [{self.min_size}, {self.max_size}]",
                code="OutOfBounds",
            )
        with self._lock:
            now = self._clock()
            nodes = self._ready_at
            if replicas > len(nodes):
                ready_at = now + self.provisioning_delay_seconds
                nodes.extend([ready_at] * (replicas - len(nodes)))
                return
            # Newest (last added) pending nodes first, then the newest ready ones.
            excess = len(nodes) - replicas
            pending = [index for index, ready_at in enumerate(nodes) if ready_at > now]
            ready = [index for index, ready_at in enumerate(nodes) if ready_at <= now]
            doomed = set((pending[::-1] + ready[::-1])[:excess])
            self._ready_at = [
                ready_at for index, ready_at in enumerate(nodes) if index not in doomed
            ]


def create(resource: ScalableNodeGroup, context: BackendContext) -> SimulatedNodeGroup:
    """Build the provider for a ScalableNodeGroup of type ``Simulated``."""
    spec = resource.spec
    options = spec.simulated if spec.simulated is not None else SimulatedOptions()
    if options.initial_ready is not None:
        initial = options.initial_ready
    elif spec.replicas is not None:
        initial = spec.replicas
    else:
        initial = 0
    return SimulatedNodeGroup(
        spec.id,
        context.clock,
        initial=initial,
        provisioning_delay_seconds=options.provisioning_delay_seconds,
        min_size=options.min_size,
        max_size=options.max_size,
    )
