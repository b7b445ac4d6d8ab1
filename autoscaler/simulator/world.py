"""The simulated world: one FIFO work queue drained by one node group, in one-second steps.

The model (the contract is ``bench/README.md`` in the shared benchmark; this module makes each
rule precise):

* **Time** is whole seconds since the start, ``t = 0, 1, 2 …``. Step ``t`` covers ``[t, t + 1)``
  and everything happens at its start, in this order (:meth:`World.begin_step`):

  1. the items taken at ``t − 1`` complete (their waiting times are recorded);
  2. the items that arrived during ``[t − 1, t)`` join the tail of the queue;
  3. nodes whose startup is over become ready;
  4. the ready nodes take items from the head of the queue (they are *in flight* during the
     step).

  Then the control loop runs if it is due (it sees the queue with the items just taken in flight,
  and may resize the group), and :meth:`World.end_step` bills the step and measures the SLO.
* **Arrivals.** A trace bucket of ``n`` items over ``B`` seconds delivers, in its ``j``-th second,
  ``⌊n(j+1)/B⌋ − ⌊nj/B⌋`` items: whole items, evenly spread, exactly ``n`` per bucket. An item
  arriving during second ``s`` is taken to arrive at its middle, ``s + 0.5``.
* **Processing.** Every item takes one second on a node, and a ready node works on
  ``itemsPerSecond`` items at a time, so it drains ``itemsPerSecond`` items per second. Ready
  nodes take ``⌊ready × itemsPerSecond + carry⌋`` items per step; the fractional rest carries
  over to the next step (it matters only for fractional rates). The queue is FIFO.
* **Waiting time** of an item is the time from its arrival until a node takes it for the run that
  completes it: ``t_taken − (s + 0.5)``. Waits are therefore half-integers, and a histogram over
  whole seconds holds them exactly. An item waiting longer than ``maxItemAgeSeconds`` is late.
* **Scale-up** (:meth:`World.resize` to more nodes) adds *provisioning* nodes that become ready at
  the first whole second at or after ``request + startupSeconds``.
* **Scale-down** is immediate. Provisioning nodes go first (newest first), then ready nodes.
  In-flight items are spread evenly over the ready nodes, so removing ``k`` of ``R`` busy nodes
  returns ``⌊in_flight × k / R⌋`` items to the head of the queue (the newest of those in flight;
  they keep their arrival time and wait again).
* **Billing.** Every node is billed for every step it exists in, provisioning or ready: from the
  scale-up request until its removal. ``node_seconds`` is the sum over steps of the group size.
* **SLO violation** is the time during which the oldest *waiting* item (not in flight) is older
  than the SLO; within a step its age grows linearly, so partial seconds count.
* **End.** Items still waiting or in flight when the trace ends count with their age at the end
  as their waiting time (a lower bound), and are reported as unfinished.

The world knows nothing about the control loop: :mod:`autoscaler.simulator.run` wires it to the
loop through a producer and a provider.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from autoscaler.errors import PermanentError

#: Slack when flooring a capacity that should be a whole number (``3 × 0.1 × 10``).
_EPSILON = 1e-9


def spread_arrivals(counts: Sequence[int], bucket_seconds: int, duration: int) -> list[int]:
    """Items arriving in each second ``[s, s + 1)`` for ``s < duration``, buckets spread evenly.

    >>> spread_arrivals([25], 10, 10)
    [2, 3, 2, 3, 2, 3, 2, 3, 2, 3]
    """
    per_second = [0] * duration
    for index, count in enumerate(counts):
        start = index * bucket_seconds
        if start >= duration:
            break
        if count == 0:
            continue
        previous = 0
        for j in range(min(bucket_seconds, duration - start)):
            cumulative = count * (j + 1) // bucket_seconds
            per_second[start + j] = cumulative - previous
            previous = cumulative
    return per_second


@dataclass
class Timeline:
    """Samples for the report, one per ``sample_seconds`` (the last may be shorter).

    ``arrivals`` is the mean arrival rate (items/s); ``queue`` (waiting + in flight) and
    ``oldest_age`` (seconds) are the largest values seen at the step boundaries of the sample;
    ``nodes`` (the group size, ready + provisioning, which is the desired count) and ``ready`` are
    the counts at the end of the sample.
    """

    sample_seconds: int
    times: list[int] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    queue: list[int] = field(default_factory=list)
    oldest_age: list[float] = field(default_factory=list)
    nodes: list[int] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class WorldFigures:
    """What the world measured; :mod:`autoscaler.simulator.run` turns it into the figures."""

    duration_seconds: int
    items: int
    processed_items: int
    unfinished_items: int
    late_items: int
    p99_wait_seconds: float
    mean_wait_seconds: float
    max_wait_seconds: float
    node_seconds: int
    work_seconds: float
    slo_violation_seconds: float
    scale_actions: int
    max_nodes: int
    returned_items: int


class World:
    """The queue and the node group, advanced one second at a time by the caller.

    ``arrivals[s]`` is the number of items arriving during second ``s``; its length is the
    duration. Call ``begin_step(t)`` and ``end_step(t)`` for ``t = 0 … duration − 1`` (the loop
    may call :meth:`resize` in between), then :meth:`finish`.
    """

    def __init__(
        self,
        arrivals: Sequence[int],
        *,
        initial: int,
        startup_seconds: float,
        items_per_second: float,
        min_size: int,
        max_size: int,
        max_item_age_seconds: float,
        sample_seconds: int = 60,
    ) -> None:
        if min_size < 0 or max_size < min_size:
            raise ValueError(f"bounds [{min_size}, {max_size}] are not valid")
        self.arrivals = list(arrivals)
        self.duration = len(self.arrivals)
        self.startup_seconds = startup_seconds
        self.items_per_second = items_per_second
        self.min_size = min_size
        self.max_size = max_size
        self.slo = max_item_age_seconds
        #: The current step (whole seconds since the start).
        self.now = 0
        self.ready = initial
        #: Provisioning nodes, oldest request first: ``[ready_at_step, count]``.
        self.pending: deque[list[int]] = deque()
        self.pending_total = 0
        #: Waiting items, oldest first: ``[arrival_second, count]``.
        self.waiting: deque[list[int]] = deque()
        self.waiting_total = 0
        #: Items taken this step, oldest first: ``[arrival_second, count]``.
        self.in_flight: list[list[int]] = []
        self.in_flight_total = 0
        self._carry = 0.0
        #: Waiting-time histogram: ``k`` → items that waited ``k − 0.5`` seconds.
        self.waits: dict[int, int] = {}
        self.node_seconds = 0
        self.violation_seconds = 0.0
        self.scale_actions = 0
        self.max_nodes = initial
        self.returned_items = 0
        self.timeline = Timeline(sample_seconds)
        self._sample_arrivals = 0
        self._sample_queue = 0
        self._sample_age = 0.0
        self._finished = False
        self._unfinished = 0
        #: The next step to run.
        self.next_step = 0

    # ----------------------------------------------------------------- what the loop reads

    @property
    def size(self) -> int:
        """Nodes in the group: ready and provisioning (the group's desired count)."""
        return self.ready + self.pending_total

    def queue_length(self, include_in_flight: bool = True) -> int:
        """Waiting items, plus those in flight unless told otherwise (SQS visible + not visible)."""
        if include_in_flight:
            return self.waiting_total + self.in_flight_total
        return self.waiting_total

    def oldest_age(self) -> float:
        """Age in seconds of the oldest waiting item (0 when nothing waits)."""
        if not self.waiting:
            return 0.0
        return self.now - self.waiting[0][0] - 0.5

    # ----------------------------------------------------------------- what the loop changes

    def resize(self, replicas: int) -> None:
        """Ask for ``replicas`` nodes now (the provider's ``set_replicas``)."""
        if not self.min_size <= replicas <= self.max_size:
            raise PermanentError(
                f"simulated group: {replicas} replicas is outside the group's bounds "
                f"[{self.min_size}, {self.max_size}]",
                code="OutOfBounds",
            )
        size = self.size
        if replicas == size:
            return
        self.scale_actions += 1
        if replicas > size:
            ready_at = self.now + math.ceil(self.startup_seconds - _EPSILON)
            if self.pending and self.pending[-1][0] == ready_at:
                self.pending[-1][1] += replicas - size
            else:
                self.pending.append([ready_at, replicas - size])
            self.pending_total += replicas - size
            self.max_nodes = max(self.max_nodes, replicas)
            return
        excess = size - replicas
        while excess and self.pending:
            newest = self.pending[-1]
            removed = min(excess, newest[1])
            newest[1] -= removed
            self.pending_total -= removed
            excess -= removed
            if not newest[1]:
                self.pending.pop()
        if excess:
            self._remove_ready(excess)

    def _remove_ready(self, count: int) -> None:
        """Remove ``count`` ready nodes; their share of the in-flight items goes back."""
        returned = self.in_flight_total * count // self.ready
        self.ready -= count
        if not returned:
            return
        self.returned_items += returned
        self.in_flight_total -= returned
        while returned:
            newest = self.in_flight[-1]
            moved = min(returned, newest[1])
            newest[1] -= moved
            returned -= moved
            if not newest[1]:
                self.in_flight.pop()
            head = self.waiting[0] if self.waiting else None
            if head is not None and head[0] == newest[0]:
                head[1] += moved
            else:
                self.waiting.appendleft([newest[0], moved])
            self.waiting_total += moved

    # ----------------------------------------------------------------- stepping

    def begin_step(self, t: int) -> None:
        """Steps 1–4 of the module docstring at the start of second ``t``."""
        self.now = t
        # 1. Items taken at t − 1 are done.
        if self.in_flight:
            waits = self.waits
            taken = t - 1
            for arrival, count in self.in_flight:
                k = taken - arrival
                waits[k] = waits.get(k, 0) + count
            self.in_flight = []
            self.in_flight_total = 0
        # 2. Arrivals of [t − 1, t).
        if t:
            arrived = self.arrivals[t - 1]
            if arrived:
                self.waiting.append([t - 1, arrived])
                self.waiting_total += arrived
        # 3. Startup is over.
        pending = self.pending
        while pending and pending[0][0] <= t:
            _, count = pending.popleft()
            self.ready += count
            self.pending_total -= count
        # 4. Ready nodes take work.
        if self.ready and self.waiting_total:
            capacity = self.ready * self.items_per_second + self._carry
            whole = int(capacity + _EPSILON)
            self._carry = max(capacity - whole, 0.0)
            self._take(whole)

    def _take(self, capacity: int) -> None:
        waiting = self.waiting
        if capacity >= self.waiting_total:
            self.in_flight = list(waiting)
            self.in_flight_total = self.waiting_total
            waiting.clear()
            self.waiting_total = 0
            return
        taken: list[list[int]] = []
        left = capacity
        while left:
            head = waiting[0]
            if head[1] <= left:
                waiting.popleft()
                taken.append(head)
                left -= head[1]
            else:
                head[1] -= left
                taken.append([head[0], left])
                left = 0
        self.in_flight = taken
        self.in_flight_total = capacity
        self.waiting_total -= capacity

    def end_step(self, t: int) -> None:
        """Bill second ``t``, measure the SLO over it, and sample the timeline."""
        self.next_step = t + 1
        size = self.ready + self.pending_total
        self.node_seconds += size
        age = 0.0
        if self.waiting:
            age = t - self.waiting[0][0] - 0.5
            over = age + 1.0 - self.slo
            if over > 0.0:
                self.violation_seconds += over if over < 1.0 else 1.0
        # Timeline sample.
        self._sample_arrivals += self.arrivals[t]
        queue = self.waiting_total + self.in_flight_total
        if queue > self._sample_queue:
            self._sample_queue = queue
        if age > self._sample_age:
            self._sample_age = age
        period = self.timeline.sample_seconds
        if (t + 1) % period == 0 or t + 1 == self.duration:
            self._flush_sample(t + 1)

    def _flush_sample(self, end: int) -> None:
        timeline = self.timeline
        start = timeline.times[-1] + timeline.sample_seconds if timeline.times else 0
        timeline.times.append(start)
        timeline.arrivals.append(self._sample_arrivals / max(end - start, 1))
        timeline.queue.append(self._sample_queue)
        timeline.oldest_age.append(self._sample_age)
        timeline.nodes.append(self.ready + self.pending_total)
        timeline.ready.append(self.ready)
        self._sample_arrivals = 0
        self._sample_queue = 0
        self._sample_age = 0.0

    def run(self, until: int | None = None) -> None:
        """Step without a control loop (the group keeps its size) up to ``until``."""
        for t in range(self.next_step, self.duration if until is None else until):
            self.begin_step(t)
            self.end_step(t)

    def finish(self) -> WorldFigures:
        """Close the books at the end of the trace; see *End* in the module docstring."""
        if not self._finished:
            self._finished = True
            end = self.duration
            waits = self.waits
            taken = end - 1
            for arrival, count in self.in_flight:  # completes exactly at the end
                waits[taken - arrival] = waits.get(taken - arrival, 0) + count
            self.in_flight = []
            self.in_flight_total = 0
            if end:
                last = self.arrivals[end - 1]
                if last:
                    self.waiting.append([end - 1, last])
                    self.waiting_total += last
            self._unfinished = self.waiting_total
            for arrival, count in self.waiting:
                waits[end - arrival] = waits.get(end - arrival, 0) + count
        return self._figures()

    def _figures(self) -> WorldFigures:
        items = sum(self.arrivals)
        counted = sum(self.waits.values())
        ordered = sorted(self.waits.items())
        late = sum(count for k, count in ordered if k - 0.5 > self.slo)
        p99 = 0.0
        if counted:
            rank = math.ceil(0.99 * counted)  # nearest-rank percentile
            seen = 0
            for k, count in ordered:
                seen += count
                if seen >= rank:
                    p99 = k - 0.5
                    break
        mean = sum((k - 0.5) * count for k, count in ordered) / counted if counted else 0.0
        return WorldFigures(
            duration_seconds=self.duration,
            items=items,
            processed_items=counted - self._unfinished,
            unfinished_items=self._unfinished,
            late_items=late,
            p99_wait_seconds=p99,
            mean_wait_seconds=mean,
            max_wait_seconds=ordered[-1][0] - 0.5 if ordered else 0.0,
            node_seconds=self.node_seconds,
            work_seconds=items / self.items_per_second,
            slo_violation_seconds=self.violation_seconds,
            scale_actions=self.scale_actions,
            max_nodes=self.max_nodes,
            returned_items=self.returned_items,
        )
