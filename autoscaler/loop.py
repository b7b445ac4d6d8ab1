"""The control loop: producers → signal store → autoscalers → node groups.

One pass of :meth:`ControlLoop.run_once` does, in order:

1. **Collect** results of backend calls that finished since the last pass (producer observations
   go into the signal store, which marks the autoscalers reading them as dirty; node-group reads go
   into the node group's status).
2. **Observe**: start every producer whose interval has elapsed.
3. **Decide**: evaluate every autoscaler that is dirty (a signal it reads changed) or due for its
   periodic resync, with the pure algorithm; record the decision and its reasons.
4. **Actuate**: reconcile every node group whose desired count changed or whose periodic read is
   due, through its provider; at most one call in flight per group; failures retried with capped
   exponential backoff without losing the desired count.

Backend calls run through a :class:`Runner`: a thread pool in the service, inline in tests and in
the simulator. All time comes from the injected clock. State is only mutated on the loop's own
thread (``run_once``); backend threads hand results back through a queue and wake the loop.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Protocol

from autoscaler import controls, prometheus, registry
from autoscaler.algorithms import Decide, decide_for, history_status, restore_history
from autoscaler.algorithms.activation import ActivationInput, gate
from autoscaler.algorithms.activation import applies as activation_applies
from autoscaler.algorithms.types import (
    Decision,
    History,
    MetricInput,
    Recommendation,
    ScaleEvent,
    Step,
)
from autoscaler.api import (
    BackendContext,
    HorizontalAutoscaler,
    MetricsProducer,
    NodeGroupState,
    Observation,
    Producer,
    Provider,
    ScalableNodeGroup,
    Signal,
)
from autoscaler.api.backends import in_memory
from autoscaler.api.horizontalautoscaler import (
    HorizontalAutoscalerStatus,
    MetricSource,
    MetricTarget,
    PrometheusMetricSource,
)
from autoscaler.api.scalablenodegroup import NodeGroupLimits
from autoscaler.backoff import backoff_delay
from autoscaler.clock import to_datetime, to_timestamp
from autoscaler.conditions import Conditions
from autoscaler.controls import Override, Pause
from autoscaler.decisions import DecisionLog, DecisionRecord
from autoscaler.errors import AutoscalerError, PermanentError, RetryableError
from autoscaler.locks import YieldingLock
from autoscaler.settings import LoopSettings
from autoscaler.store import SignalStore

if TYPE_CHECKING:
    from autoscaler.config import SpecSet
    from autoscaler.state import SavedState

log = logging.getLogger("autoscaler.loop")
#: Operator actions (pause, resume, overrides): who did what, one line each.
audit = logging.getLogger("autoscaler.audit")

Clock = Callable[[], float]
ProducerFactory = Callable[[MetricsProducer, BackendContext], Producer]
ProviderFactory = Callable[[ScalableNodeGroup, BackendContext], Provider]
QueryProducerFactory = Callable[[PrometheusMetricSource, BackendContext], Producer]
#: How many producer intervals a signal may age before it counts as stale (a hung producer).
STALE_INTERVALS = 3.0
STALE_GRACE_SECONDS = 30.0
#: Faster node-group reads while nodes are still provisioning, so readiness shows promptly.
UNSTABLE_SYNC_SECONDS = 2.0
#: A node group without ``spec.limits`` (the defaults).
_NO_LIMITS = NodeGroupLimits()
#: Largest value/target ratio a metric may have (more is a broken signal, not a workload).
MAX_RATIO = 1e12


class Runner(Protocol):
    """Runs backend calls: inline (tests, simulator) or on worker threads (service)."""

    def submit(self, work: Callable[[], None]) -> None: ...

    def shutdown(self) -> None: ...


class InlineRunner:
    """Runs work at once on the caller's thread: deterministic, for tests and the simulator."""

    def submit(self, work: Callable[[], None]) -> None:
        work()

    def shutdown(self) -> None:
        return None


class ThreadRunner:
    """Runs work on a bounded thread pool."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backend")

    def submit(self, work: Callable[[], None]) -> None:
        self._pool.submit(work)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class LoopObserver(Protocol):
    """Receives timings and outcomes (implemented by the Prometheus self-metrics)."""

    def producer_run(
        self, producer: str, seconds: float, error: AutoscalerError | None
    ) -> None: ...

    def provider_call(
        self, node_group: str, seconds: float, error: AutoscalerError | None
    ) -> None: ...

    def loop_pass(self, seconds: float) -> None: ...

    def decision(self, record: DecisionRecord) -> None: ...


def _translate(exc: Exception) -> AutoscalerError:
    """Backend bugs and unexpected exceptions become permanent errors with their type name."""
    if isinstance(exc, AutoscalerError):
        return exc
    return PermanentError(f"{type(exc).__name__}: {exc}", code="InternalError")


# --------------------------------------------------------------------------- runtime state


@dataclass(kw_only=True)
class SourceRuntime:
    """Anything the loop observes on an interval: a MetricsProducer (:class:`ProducerRuntime`),
    or an implicit producer it owns for a prometheus metric source (:mod:`autoscaler.prometheus`).
    """

    key: str
    interval_seconds: float
    producer: Producer | None
    generation: int
    next_due: float
    in_flight: bool = False
    #: The producer never waits on I/O: it runs on the loop's thread (see ``api.InMemory``).
    inline: bool = False
    last_time: float | None = None
    status: dict[str, Any] = field(default_factory=dict)
    error: AutoscalerError | None = None
    consecutive_failures: int = 0
    conditions: Conditions = field(default_factory=Conditions)


@dataclass(kw_only=True)
class ProducerRuntime(SourceRuntime):
    resource: MetricsProducer

    @cached_property
    def default_signal(self) -> str:
        """The signal a metric reads when it names none (a replaced spec is a new runtime)."""
        return registry.DEFAULT_SIGNALS[self.resource.spec.source]


@dataclass
class NodeGroupRuntime:
    resource: ScalableNodeGroup
    provider: Provider | None
    generation: int
    #: The count the service wants (spec.replicas); None until known.
    desired: int | None
    next_sync: float
    in_flight: bool = False
    dirty: bool = True
    #: The provider never waits on I/O: it runs on the loop's thread (see ``api.InMemory``).
    inline: bool = False
    observed: NodeGroupState | None = None
    last_updated: float | None = None
    attempt: int = 0
    error: AutoscalerError | None = None
    conditions: Conditions = field(default_factory=Conditions)

    @cached_property
    def key(self) -> str:
        return f"{self.resource.metadata.namespace}/{self.resource.metadata.name}"


@dataclass
class AutoscalerRuntime:
    resource: HorizontalAutoscaler
    next_due: float
    history: History = field(default_factory=History)
    dirty: bool = True
    last: Decision | None = None
    last_time: float | None = None
    last_scale_time: float | None = None
    last_recorded: tuple[int, int, int | None, str | None] | None = None
    #: What evaluations read from the spec, made once per spec (see ``ControlLoop._plan``).
    plan: AutoscalerPlan | None = field(default=None, repr=False)
    conditions: Conditions = field(default_factory=Conditions)
    #: metric index → consecutive evaluations in which its signal was missing or stale
    failures: dict[int, int] = field(default_factory=dict)
    #: An operator action for the next recorded decision to name: (who, what they did).
    audit: tuple[str, str] | None = None

    @cached_property
    def key(self) -> str:
        return f"{self.resource.metadata.namespace}/{self.resource.metadata.name}"

    @property
    def target_key(self) -> str:
        plan = self.plan
        if plan is not None and plan.resource is self.resource:
            return plan.target_key
        return f"{self.resource.metadata.namespace}/{self.resource.spec.scale_target_ref.name}"


def _history_from_status(resource: HorizontalAutoscaler) -> History:
    if resource.status is None:
        return History()
    return history_from_status(resource.status)


def history_from_status(status: HorizontalAutoscalerStatus) -> History:
    """The algorithm history an autoscaler's status (or a state file) carries."""
    history = History(
        recommendations=tuple(
            Recommendation(to_timestamp(r.time), r.replicas) for r in status.recommendations
        ),
        scale_events=tuple(ScaleEvent(to_timestamp(e.time), e.change) for e in status.scale_events),
    )
    return restore_history(status, history)  # PID state, forecast models


@dataclass(frozen=True, slots=True)
class MetricRead:
    """How to read one metric of an autoscaler: its spec, resolved once."""

    name: str
    #: The metric's target; None for an activation condition.
    target: MetricTarget | None
    #: The target's amount, or the activation threshold.
    amount: float
    producer_key: str
    #: From an implicit prometheus producer (else from a MetricsProducer).
    query: bool
    #: The signal named by the spec; None for the producer's default signal.
    signal: str | None
    labels: Mapping[str, str]


@dataclass(slots=True)
class AutoscalerPlan:
    """What every evaluation of an autoscaler reads from its spec, as plain values. Made from
    one resource object: an edited spec arrives as a new resource, and so gets a new plan."""

    resource: HorizontalAutoscaler
    target_key: str
    reads: tuple[MetricRead, ...]
    #: The activation conditions (``spec.activation``), read like metrics.
    activation: tuple[MetricRead, ...] = ()
    #: The algorithm, chosen at the first evaluation (where a failure is reported).
    decide: Decide | None = None


# --------------------------------------------------------------------------- the loop


class ControlLoop:
    """Owns the runtime state of every resource and drives it forward in passes."""

    def __init__(
        self,
        clock: Clock,
        settings: LoopSettings | None = None,
        *,
        runner: Runner | None = None,
        decisions: DecisionLog | None = None,
        observer: LoopObserver | None = None,
        context: BackendContext | None = None,
        rng: random.Random | None = None,
        create_producer: ProducerFactory = registry.create_producer,
        create_provider: ProviderFactory = registry.create_provider,
        create_query_producer: QueryProducerFactory = prometheus.create,
    ) -> None:
        self.clock = clock
        self.settings = settings or LoopSettings()
        self.runner: Runner = runner or InlineRunner()
        self.decisions = decisions or DecisionLog()
        self.observer = observer
        self.context = context or BackendContext(clock=clock)
        self.store = SignalStore()
        self.store.subscribe(self._on_signals_changed)
        self.producers: dict[str, ProducerRuntime] = {}
        #: Implicit producers, one per distinct prometheus metric source (not API resources).
        self.query_producers: dict[str, SourceRuntime] = {}
        self.node_groups: dict[str, NodeGroupRuntime] = {}
        self.autoscalers: dict[str, AutoscalerRuntime] = {}
        #: Held by every pass, which lets waiting readers in between its steps.
        self.lock = YieldingLock()
        self._lock = self.lock
        self._inline = InlineRunner()
        self.passes = 0
        self._after_pass: list[Callable[[], None]] = []
        self._rng = rng or random.Random()
        self._create_producer = create_producer
        self._create_provider = create_provider
        self._create_query_producer = create_query_producer
        self._prometheus = prometheus.settings_of(self.context)
        self._generation = 0
        self._completions: deque[Callable[[], None]] = deque()
        self._wakeup = threading.Event()
        #: producer key → autoscaler keys that read it
        self._readers: dict[str, set[str]] = {}
        #: node group key → autoscaler keys that scale it
        self._scalers: dict[str, list[str]] = {}
        #: Producers asked to run before their interval is up (:meth:`trigger`).
        self._triggered: deque[str] = deque()
        self.context.extras.setdefault("trigger", self.trigger)
        #: Operator controls, kept across spec reloads and dropped with their object
        #: (:mod:`autoscaler.controls`): autoscaler key → pause, node group key → override.
        self.pauses: dict[str, Pause] = {}
        self.overrides: dict[str, Override] = {}
        #: Grows whenever something a state file keeps changed (:mod:`autoscaler.state`).
        self.state_version = 0
        #: Saved state to use for the objects of the next :meth:`apply` (see :meth:`restore`).
        self._saved: SavedState | None = None

    # ----------------------------------------------------------------- configuration

    def restore(self, saved: SavedState) -> None:
        """Start the objects of the next :meth:`apply` from saved state (a state file): the
        autoscalers' algorithm history, the node groups' desired counts. Call before the first
        apply; whatever that apply does not use is dropped."""
        with self.lock:
            self._saved = saved

    def _state_changed(self) -> None:
        self.state_version += 1

    def apply(self, specs: SpecSet) -> None:
        """Reconcile the runtime with a new set of valid specs (start, update, stop objects).

        Unchanged objects keep their state; an autoscaler whose spec changed keeps its history
        (so an edit does not reset the stabilization windows); a node group keeps its provider
        unless its type, id or backend options changed.
        """
        with self.lock:
            now = self.clock()
            self._apply_node_groups(specs.node_groups, now)
            self._apply_producers(specs.producers, now)
            self._apply_autoscalers(specs.autoscalers, now)
            self._keep_controls()
            self._apply_query_producers(now)
            self._readers = {}
            self._scalers = {}
            for rt in self.autoscalers.values():
                plan = self._plan(rt)
                for read in (*plan.reads, *plan.activation):
                    self._readers.setdefault(read.producer_key, set()).add(rt.key)
                self._scalers.setdefault(plan.target_key, []).append(rt.key)
            self._saved = None
            self._state_changed()
        self.wake()

    def _next_generation(self) -> int:
        self._generation += 1
        return self._generation

    def _apply_node_groups(self, wanted: dict[str, ScalableNodeGroup], now: float) -> None:
        for key in set(self.node_groups) - set(wanted):
            del self.node_groups[key]
        for key, resource in wanted.items():
            current = self.node_groups.get(key)
            if current is not None and current.resource.spec == resource.spec:
                continue
            same_backend = current is not None and (
                current.resource.spec.model_dump(exclude={"replicas", "limits"})
                == resource.spec.model_dump(exclude={"replicas", "limits"})
            )
            if current is not None and same_backend:
                # Only spec.replicas (an operator asked for a new count) or the limits changed.
                replicas_changed = resource.spec.replicas != current.resource.spec.replicas
                current.resource = resource
                if replicas_changed and resource.spec.replicas is not None:
                    current.desired = resource.spec.replicas
                current.dirty = True
                continue
            runtime = NodeGroupRuntime(
                resource=resource,
                provider=None,
                generation=self._next_generation(),
                desired=self._saved_desired(key, resource),
                next_sync=now,
            )
            try:
                runtime.provider = self._create_provider(resource, self.context)
                runtime.inline = in_memory(runtime.provider)
            except Exception as exc:
                error = _translate(exc)
                runtime.error = error
                runtime.conditions.set("Active", "False", error.code, str(error), now)
                log.error("node group %s cannot start: %s", key, error)
            self.node_groups[key] = runtime

    def _saved_desired(self, key: str, resource: ScalableNodeGroup) -> int | None:
        """The saved desired count of a new node group, unless ``spec.replicas`` was edited
        since it was saved (the edit wins); else ``spec.replicas``."""
        saved = self._saved.node_groups.get(key) if self._saved is not None else None
        if saved is None or saved.spec_replicas != resource.spec.replicas:
            return resource.spec.replicas
        log.info("node group %s: desired count %d restored", key, saved.desired)
        return saved.desired

    def _apply_producers(self, wanted: dict[str, MetricsProducer], now: float) -> None:
        for key in set(self.producers) - set(wanted):
            del self.producers[key]
            self.store.remove(key)
        for key, resource in wanted.items():
            current = self.producers.get(key)
            if current is not None and current.resource.spec == resource.spec:
                continue
            runtime = ProducerRuntime(
                resource=resource,
                producer=None,
                generation=self._next_generation(),
                next_due=now,
                key=key,
                interval_seconds=resource.spec.interval_seconds,
            )
            self._start_producer(
                runtime, partial(self._create_producer, resource, self.context), now
            )
            self.producers[key] = runtime

    def _apply_query_producers(self, now: float) -> None:
        """One implicit producer per distinct prometheus metric source the autoscalers read."""
        wanted: dict[str, PrometheusMetricSource] = {}
        for rt in self.autoscalers.values():
            for _, metric in rt.resource.spec.sources():
                if metric.prometheus is not None:
                    key = self._source_key(rt.resource.metadata.namespace, metric)
                    wanted[key] = metric.prometheus
        for key in set(self.query_producers) - set(wanted):
            del self.query_producers[key]
            self.store.remove(key)
        for key, source in wanted.items():
            if key in self.query_producers:
                continue
            runtime = SourceRuntime(
                producer=None,
                generation=self._next_generation(),
                next_due=now,
                key=key,
                interval_seconds=self._prometheus.interval_seconds,
            )
            create = partial(self._create_query_producer, source, self.context)
            self._start_producer(runtime, create, now)
            self.query_producers[key] = runtime

    def _start_producer(
        self, runtime: SourceRuntime, create: Callable[[], Producer], now: float
    ) -> None:
        try:
            runtime.producer = create()
            runtime.inline = in_memory(runtime.producer)
        except Exception as exc:
            error = _translate(exc)
            runtime.error = error
            runtime.conditions.set("Active", "False", error.code, str(error), now)
            log.error("producer %s cannot start: %s", runtime.key, error)

    def _source_key(self, namespace: str, metric: MetricSource) -> str:
        """The store key of the producer a metric reads (explicit or implicit)."""
        if metric.prometheus is not None:
            return prometheus.source_key(namespace, metric.prometheus, self._prometheus)
        assert metric.producer is not None
        return f"{namespace}/{metric.producer.name}"

    def _plan(self, runtime: AutoscalerRuntime) -> AutoscalerPlan:
        """The autoscaler's plan, made again when its resource was replaced (a spec edit)."""
        plan = runtime.plan
        if plan is None or plan.resource is not runtime.resource:
            resource = runtime.resource
            namespace = resource.metadata.namespace

            def read(
                source: MetricSource, target: MetricTarget | None, amount: float
            ) -> MetricRead:
                return MetricRead(
                    name=source.display_name,
                    target=target,
                    amount=amount,
                    producer_key=self._source_key(namespace, source),
                    query=source.prometheus is not None,
                    signal=source.producer.metric if source.producer is not None else None,
                    labels=source.producer.labels if source.producer is not None else {},
                )

            plan = runtime.plan = AutoscalerPlan(
                resource=resource,
                target_key=f"{namespace}/{resource.spec.scale_target_ref.name}",
                reads=tuple(
                    read(metric, metric.target, metric.target.amount)
                    for metric in resource.spec.metrics
                ),
                activation=tuple(
                    read(condition, None, condition.above) for condition in resource.spec.activation
                ),
            )
        return plan

    def _all_producers(self) -> list[SourceRuntime]:
        return [*self.producers.values(), *self.query_producers.values()]

    def _apply_autoscalers(self, wanted: dict[str, HorizontalAutoscaler], now: float) -> None:
        for key in set(self.autoscalers) - set(wanted):
            del self.autoscalers[key]
        for key, resource in wanted.items():
            current = self.autoscalers.get(key)
            if current is None:
                saved = self._saved.autoscalers.get(key) if self._saved is not None else None
                self.autoscalers[key] = AutoscalerRuntime(
                    resource=resource,
                    next_due=now,
                    history=saved.history if saved else _history_from_status(resource),
                    last_scale_time=saved.last_scale_time if saved else None,
                )
            elif current.resource.spec != resource.spec:
                current.resource = resource
                current.dirty = True
                current.last_recorded = None

    # ----------------------------------------------------------------- running

    def wake(self) -> None:
        """Ask the loop to run a pass now (thread-safe)."""
        if not self._wakeup.is_set():  # set() takes a lock; most wake-ups find it set
            self._wakeup.set()

    def trigger(self, producer_key: str) -> None:
        """Run producer ``producer_key`` at the next pass instead of at its next interval
        (thread-safe). Backends reach it as ``context.extras["trigger"]``, e.g. when a pod turns
        unschedulable."""
        self._triggered.append(producer_key)
        self.wake()

    def _complete(self, done: Callable[[], None]) -> None:
        self._completions.append(done)
        self.wake()

    def _on_signals_changed(self, producer_key: str) -> None:
        for autoscaler_key in self._readers.get(producer_key, ()):
            runtime = self.autoscalers.get(autoscaler_key)
            if runtime is not None:
                runtime.dirty = True

    def run_once(self) -> float:
        """Run one pass (steps 1–4 of the module docstring); return the next due time."""
        started = time.perf_counter()
        with self.lock:
            for _ in range(4):  # inline runners complete at once: settle within this pass
                self._collect()
                now = self.clock()
                self._observe(now)
                self._collect()
                self._expire_overrides(now)
                self._decide(now)
                self._actuate(now)
                if not self._completions:
                    break
            self.passes += 1
            hooks, self._after_pass = self._after_pass, []
            due = self._due_objects()
        next_due = _next_due(*due)  # a scan of every object: outside the lock (see there)
        if self.observer is not None:
            self.observer.loop_pass(time.perf_counter() - started)
        for hook in hooks:
            hook()
        return next_due

    def after_next_pass(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, on the loop's thread, when the next pass is complete."""
        with self.lock:
            self._after_pass.append(callback)

    def run_forever(self, stop: threading.Event, max_wait: float = 1.0) -> None:
        """Live mode: run passes until ``stop`` is set, sleeping until the next due time or
        until woken by a finished backend call or a spec change."""
        while not stop.is_set():
            self._wakeup.clear()
            try:
                next_due = self.run_once()
            except Exception:  # a bug must not stop every autoscaler; log it and go on
                log.exception("control loop pass failed")
                next_due = self.clock() + max_wait
            timeout = min(max(next_due - self.clock(), 0.0), max_wait)
            self._wakeup.wait(timeout)

    def run_until(self, end: float, set_clock: Callable[[float], None]) -> None:
        """Simulated time: jump the clock from one due time to the next until ``end``."""
        while True:
            next_due = self.run_once()
            if next_due > end:
                set_clock(end)
                self.run_once()
                return
            set_clock(max(next_due, self.clock()))

    def _due_objects(
        self,
    ) -> tuple[list[SourceRuntime], list[AutoscalerRuntime], list[NodeGroupRuntime], list[float]]:
        """Copies of the lists :func:`_next_due` scans (call under the lock)."""
        expiries = [o.expires for o in self.overrides.values() if o.expires is not None]
        return (
            self._all_producers(),
            list(self.autoscalers.values()),
            list(self.node_groups.values()),
            expiries,
        )

    def _let_readers_in(self) -> bool:
        """Between two steps of a pass: let threads waiting for the lock in (see
        :mod:`autoscaler.locks`); True when they may have changed the state meanwhile."""
        return self._lock.let_waiters_in()

    def _collect(self) -> None:
        while self._completions:
            self._completions.popleft()()
            self._let_readers_in()

    # ----------------------------------------------------------------- 2. observe

    def _observe(self, now: float) -> None:
        while self._triggered:
            triggered = self.producers.get(self._triggered.popleft())
            if triggered is not None:
                triggered.next_due = min(triggered.next_due, now)
        for runtime in self._all_producers():
            if runtime.producer is None or runtime.in_flight or runtime.next_due > now:
                continue
            runtime.in_flight = True
            runtime.next_due = now + runtime.interval_seconds
            runner = self._inline if runtime.inline else self.runner
            runner.submit(self._producer_work(runtime, runtime.producer, now))
            self._let_readers_in()

    def _producer_work(
        self, runtime: SourceRuntime, producer: Producer, now: float
    ) -> Callable[[], None]:
        key, generation = runtime.key, runtime.generation

        def work() -> None:
            started = time.perf_counter()
            observation: Observation | None = None
            error: AutoscalerError | None = None
            try:
                observation = _checked_observation(producer.observe(now))
            except Exception as exc:
                error = _translate(exc)
            seconds = time.perf_counter() - started
            self._complete(
                lambda: self._producer_done(key, generation, now, observation, error, seconds)
            )

        return work

    def _producer_done(
        self,
        key: str,
        generation: int,
        now: float,
        observation: Observation | None,
        error: AutoscalerError | None,
        seconds: float,
    ) -> None:
        if self.observer is not None:
            self.observer.producer_run(key, seconds, error)
        runtime: SourceRuntime | None = self.producers.get(key) or self.query_producers.get(key)
        if runtime is None or runtime.generation != generation:
            return  # the producer was removed or replaced meanwhile
        runtime.in_flight = False
        if error is not None:
            runtime.consecutive_failures += 1
            if runtime.error is None or runtime.error.code != error.code:
                log.warning("producer %s failed: %s", key, error)
            runtime.error = error
            runtime.conditions.set("Active", "False", error.code, str(error), now)
            self._on_signals_changed(key)  # readers must see the failure
            return
        assert observation is not None
        if runtime.error is not None:
            log.info("producer %s recovered", key)
        runtime.error = None
        runtime.consecutive_failures = 0
        runtime.last_time = now
        runtime.status = dict(observation.status)
        runtime.conditions.set("Active", "True", "Observed", "signals are up to date", now)
        self.store.put(key, observation.signals)

    # ----------------------------------------------------------------- 3. decide

    def _decide(self, now: float) -> None:
        for runtime in list(self.autoscalers.values()):
            if self._let_readers_in() and self.autoscalers.get(runtime.key) is not runtime:
                continue  # removed meanwhile
            if runtime.dirty or runtime.next_due <= now:
                runtime.dirty = False
                runtime.next_due = now + self.settings.resync_seconds
                try:
                    self._evaluate(runtime, now)
                except Exception as exc:  # a bug must not stop the other autoscalers
                    log.exception("autoscaler %s: evaluation failed", runtime.key)
                    message = f"evaluation failed: {type(exc).__name__}: {exc}"
                    runtime.conditions.set("ScalingActive", "False", "InternalError", message, now)

    def _read(self, read: MetricRead, now: float) -> MetricInput:
        assert read.target is not None
        value, error, failures = self._value(read, now)
        return MetricInput(read.name, read.target, value, error, failures)

    def _read_activation(self, read: MetricRead, now: float) -> ActivationInput:
        value, error, _ = self._value(read, now)
        return ActivationInput(read.name, read.amount, value, error)

    def _value(self, read: MetricRead, now: float) -> tuple[float | None, str | None, int]:
        """A source's current value, or None with why and the producer's failed runs."""
        producer_key = read.producer_key
        producer: SourceRuntime | None = (
            self.query_producers.get(producer_key)
            if read.query
            else self.producers.get(producer_key)
        )
        if producer is None:
            return None, f"producer {producer_key} not found", 0
        if producer.error is not None:
            return None, str(producer.error), producer.consecutive_failures
        signal_name: str = prometheus.SIGNAL
        labels: Mapping[str, str] = {}
        if not read.query and isinstance(producer, ProducerRuntime):
            signal_name = read.signal or producer.default_signal
            labels = read.labels
        try:
            signal = self.store.get(producer_key, signal_name, labels)
        except AutoscalerError as exc:
            return None, str(exc), 0
        interval = producer.interval_seconds
        age = now - signal.timestamp
        if age > STALE_INTERVALS * interval + STALE_GRACE_SECONDS:
            return None, f"signal is stale ({age:.0f}s old)", 0
        # An activation threshold may be 0: only the value's own range is checked then.
        divisor = read.amount if read.target is not None else max(read.amount, 1.0)
        problem = _unusable_value(signal.value, divisor)
        if problem is not None:
            return None, f"signal {signal_name}: {problem}", 0
        return signal.value, None, 0

    @staticmethod
    def _count_failures(runtime: AutoscalerRuntime, index: int, metric: MetricInput) -> MetricInput:
        """Failures other than a producer's own errors (a missing or stale signal) count in
        consecutive evaluations; a producer error counts in the producer's failed runs."""
        if metric.value is not None:
            runtime.failures.pop(index, None)
            return metric
        if metric.consecutive_failures > 0:
            return metric
        count = runtime.failures.get(index, 0) + 1
        runtime.failures[index] = count
        return replace(metric, consecutive_failures=count)

    def _evaluate(self, runtime: AutoscalerRuntime, now: float) -> None:
        resource = runtime.resource
        plan = self._plan(runtime)
        group = self.node_groups.get(plan.target_key)
        if group is None or group.desired is None:
            runtime.conditions.set(
                "AbleToScale",
                "False",
                "WaitingForNodeGroup",
                f"node group {runtime.target_key} has not reported its size yet",
                now,
            )
            return
        current = self._current_count(group, group.desired)
        inputs = [
            self._count_failures(runtime, index, self._read(read, now))
            for index, read in enumerate(plan.reads)
        ]
        if plan.decide is None:
            plan.decide = decide_for(resource.spec)  # Proportional or PID, maybe predictive
        decision = plan.decide(resource.spec, current, inputs, runtime.history, now)
        if plan.activation and activation_applies(decision):  # read only when leaving zero
            activation = [self._read_activation(read, now) for read in plan.activation]
            decision = gate(decision, activation, now)
        decision = self._apply_group_bounds(decision, group, now)
        decision = self._apply_controls(runtime, group, decision, now)
        applied = not self.settings.dry_run
        self._state_changed()
        runtime.history = decision.history
        runtime.last = decision
        runtime.last_time = now
        for condition in decision.conditions:
            runtime.conditions.set(
                condition.type, condition.status, condition.reason, condition.message, now
            )
        if decision.desired_replicas != current and applied:
            runtime.last_scale_time = now
            group.dirty = True
        if decision.desired_replicas != current or not applied:
            group.desired = decision.desired_replicas  # in a dry run: what it would ask for
        self._record(runtime, group, decision, now, applied=applied)

    def _apply_group_bounds(
        self, decision: Decision, group: NodeGroupRuntime, now: float
    ) -> Decision:
        """Clamp to the node group's own MinSize/MaxSize, known from its last read."""
        state = group.observed
        if state is None:
            return decision
        desired = decision.desired_replicas
        bounded = desired
        if state.max_size is not None and bounded > state.max_size:
            bounded = state.max_size
        if state.min_size is not None and bounded < state.min_size:
            bounded = state.min_size
        if bounded == desired:
            return decision
        message = (
            f"node group bounds [{state.min_size}, {state.max_size}] limit {desired} → {bounded}"
        )
        events = decision.history.scale_events
        if events and events[-1].time == now:
            events = events[:-1]
        if bounded != decision.current_replicas:
            events = (*events, ScaleEvent(now, bounded - decision.current_replicas))
        return replace(
            decision,
            desired_replicas=bounded,
            steps=(*decision.steps, Step("nodeGroupBounds", desired, bounded, message)),
            history=replace(decision.history, scale_events=events),
        )

    def _record(
        self,
        runtime: AutoscalerRuntime,
        group: NodeGroupRuntime,
        decision: Decision,
        now: float,
        *,
        applied: bool = True,
    ) -> None:
        """Keep every change and every change of outcome (not identical repeats) in the trail,
        and every decision that follows an operator's action (naming who and what)."""
        recommendation = max(
            (m.recommendation for m in decision.metrics if m.recommendation is not None),
            default=None,
        )
        limited_by = decision.steps[-1].rule if decision.steps else None
        signature = (
            decision.current_replicas,
            decision.desired_replicas,
            recommendation,
            limited_by,
        )
        audit, runtime.audit = runtime.audit, None
        repeat = not decision.changed or not applied  # a dry run repeats its would-be change
        if repeat and signature == runtime.last_recorded and audit is None:
            return
        runtime.last_recorded = signature
        direction = (
            "up"
            if decision.desired_replicas > decision.current_replicas
            else "down"
            if decision.desired_replicas < decision.current_replicas
            else "none"
        )
        record = DecisionRecord(
            seq=self.decisions.next_seq(),
            time=now,
            autoscaler=runtime.key,
            node_group=group.key,
            from_replicas=decision.current_replicas,
            to_replicas=decision.desired_replicas,
            recommendation=recommendation,
            limited_by=limited_by,
            reasons=(*([audit[1]] if audit else []), *decision.reasons),
            metrics=tuple(
                {
                    "name": m.name,
                    "value": m.value,
                    "targetType": m.target_type,
                    "target": m.target,
                    "recommendation": m.recommendation,
                    "reason": m.reason,
                    **({"error": m.error} if m.error else {}),
                }
                for m in decision.metrics
            ),
            direction=direction,
            actor=audit[0] if audit else None,
        )
        self.decisions.append(record)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "decision %s: node group %s %d → %d because %s",
                runtime.key,
                group.key,
                record.from_replicas,
                record.to_replicas,
                "; ".join(record.reasons) or "nothing changed",
            )
        if self.observer is not None:
            self.observer.decision(record)

    # ----------------------------------------------------------------- operator controls

    def _current_count(self, group: NodeGroupRuntime, desired: int) -> int:
        """The count a decision starts from: the ``desired`` count, or in a dry run (where that
        is only what the service would ask for) the group's real desired count, once read."""
        if self.settings.dry_run and group.observed is not None:
            return group.observed.desired
        return desired

    def _apply_controls(
        self, runtime: AutoscalerRuntime, group: NodeGroupRuntime, decision: Decision, now: float
    ) -> Decision:
        """Steps after the node group's bounds: its limits, the node budget, an override, a
        pause, dry run (:mod:`autoscaler.controls`)."""
        limits = group.resource.spec.limits or _NO_LIMITS
        decision = controls.node_group_limit(decision, limits, group.observed, group.key, now)
        if self.settings.max_total_nodes is not None:
            others = sum(self._node_count(g) for g in self.node_groups.values() if g is not group)
            decision = controls.budget(decision, self.settings.max_total_nodes, others, now)
        pinned = self.overrides.get(group.key)
        if pinned is not None:
            decision = controls.override(decision, pinned, now)
        pause = self.pauses.get(runtime.key)
        if pause is not None:
            decision = controls.paused(decision, pause, now)
        if self.settings.dry_run:
            decision = controls.dry_run(decision, now)
        return decision

    @staticmethod
    def _node_count(group: NodeGroupRuntime) -> int:
        """A node group's share of the node budget: its desired count, else its last read."""
        if group.desired is not None:
            return group.desired
        return group.observed.desired if group.observed is not None else 0

    def _touch(self, autoscaler_keys: list[str], actor: str, what: str) -> None:
        """Evaluate these autoscalers at once, naming the operator action in their decision."""
        for key in autoscaler_keys:
            runtime = self.autoscalers.get(key)
            if runtime is not None:
                runtime.dirty = True
                runtime.audit = (actor, what)
        self.wake()

    def _readers_of(self, node_group: str) -> list[str]:
        return [a.key for a in self.autoscalers.values() if a.target_key == node_group]

    def pause(self, key: str, actor: str, reason: str = "") -> Pause:
        """Pause autoscaler ``key`` (thread-safe): it keeps observing and recording decisions
        (rule ``paused``) but never changes its node group. Pausing a paused autoscaler keeps
        the first pause. Raises KeyError when there is no such autoscaler."""
        with self.lock:
            if key not in self.autoscalers:
                raise KeyError(key)
            existing = self.pauses.get(key)
            if existing is not None:
                return existing
            pause = self.pauses[key] = Pause(actor, reason, self.clock())
            audit.info("%s paused autoscaler %s%s", actor, key, f": {reason}" if reason else "")
            self._touch([key], actor, pause.describe())
            return pause

    def resume(self, key: str, actor: str) -> bool:
        """Resume autoscaler ``key`` (thread-safe); False when it was not paused. Raises
        KeyError when there is no such autoscaler."""
        with self.lock:
            if key not in self.autoscalers:
                raise KeyError(key)
            pause = self.pauses.pop(key, None)
            if pause is None:
                return False
            audit.info("%s resumed autoscaler %s (paused by %s)", actor, key, pause.actor)
            self._touch([key], actor, f"resumed by {actor}")
            return True

    def set_override(
        self,
        key: str,
        replicas: int,
        actor: str,
        reason: str,
        duration_seconds: float | None = None,
    ) -> Override:
        """Pin node group ``key`` at ``replicas`` (thread-safe) until :meth:`clear_override` or
        ``duration_seconds``; its autoscalers' decisions say so (rule ``override``). Raises
        KeyError when there is no such node group and ValueError when ``replicas`` is outside
        the group's own bounds (as last read)."""
        with self.lock:
            group = self.node_groups.get(key)
            if group is None:
                raise KeyError(key)
            state = group.observed
            if state is not None and _clamp(replicas, state.min_size, state.max_size) != replicas:
                raise ValueError(
                    f"replicas {replicas} is outside the bounds of node group {key} "
                    f"[{state.min_size}, {state.max_size}]"
                )
            now = self.clock()
            expires = now + duration_seconds if duration_seconds is not None else None
            pinned = self.overrides[key] = Override(replicas, reason, actor, now, expires)
            group.desired = replicas
            group.dirty = True
            audit.info(
                "%s set an override on node group %s: %d replicas%s: %s",
                actor,
                key,
                replicas,
                f" for {duration_seconds:g}s" if duration_seconds is not None else "",
                reason,
            )
            self._touch(self._readers_of(key), actor, pinned.describe())
            return pinned

    def clear_override(self, key: str, actor: str) -> bool:
        """Remove the override of node group ``key`` (thread-safe); False when there was none.
        The group stays at the pinned count until its autoscalers decide otherwise. Raises
        KeyError when there is no such node group."""
        with self.lock:
            if key not in self.node_groups:
                raise KeyError(key)
            pinned = self.overrides.pop(key, None)
            if pinned is None:
                return False
            audit.info(
                "%s removed the override of node group %s (%d replicas, set by %s)",
                actor,
                key,
                pinned.replicas,
                pinned.actor,
            )
            self._touch(self._readers_of(key), actor, f"override removed by {actor}")
            return True

    def _expire_overrides(self, now: float) -> None:
        for key, pinned in list(self.overrides.items()):
            if pinned.expires is not None and pinned.expires <= now:
                del self.overrides[key]
                audit.info(
                    "override of node group %s (%d replicas, set by %s) expired",
                    key,
                    pinned.replicas,
                    pinned.actor,
                )
                self._touch(self._readers_of(key), pinned.actor, "override expired")

    def _keep_controls(self) -> None:
        """After a reload: drop the controls of removed objects, and pin overridden groups again
        (a reload may have set a node group's desired count from its spec)."""
        for key in set(self.pauses) - set(self.autoscalers):
            pause = self.pauses.pop(key)
            audit.info("pause of autoscaler %s (by %s) dropped: it was removed", key, pause.actor)
        for key in list(self.overrides):
            group = self.node_groups.get(key)
            if group is None:
                pinned = self.overrides.pop(key)
                audit.info(
                    "override of node group %s (by %s) dropped: it was removed", key, pinned.actor
                )
            elif group.desired != self.overrides[key].replicas:
                group.desired = self.overrides[key].replicas
                group.dirty = True

    # ----------------------------------------------------------------- 4. actuate

    def _actuate(self, now: float) -> None:
        for group in list(self.node_groups.values()):
            if self._let_readers_in() and self.node_groups.get(group.key) is not group:
                continue  # removed or replaced meanwhile
            if group.provider is None or group.in_flight:
                continue
            if not group.dirty and group.next_sync > now:
                continue
            group.dirty = False
            group.in_flight = True
            desired = None if self.settings.dry_run else group.desired  # a dry run only reads
            runner = self._inline if group.inline else self.runner
            runner.submit(self._provider_work(group, group.provider, desired, group.observed, now))

    def _provider_work(
        self,
        group: NodeGroupRuntime,
        provider: Provider,
        desired: int | None,
        known: NodeGroupState | None,
        now: float,
    ) -> Callable[[], None]:
        """Read the group and set it when it differs from ``desired``. When the desired count
        moved away from the last read (``known``), set first, using the bounds already known,
        and read back afterwards: one round trip less between a decision and its actuation."""
        key, generation = group.key, group.generation

        def work() -> None:
            started = time.perf_counter()
            state: NodeGroupState | None = None
            asked: int | None = None
            error: AutoscalerError | None = None
            try:
                if desired is not None and known is not None and desired != known.desired:
                    asked = _clamp(desired, known.min_size, known.max_size)
                    provider.set_replicas(asked)
                state = _checked_state(provider.get_replicas())
                if desired is not None:
                    asked = _clamp(desired, state.min_size, state.max_size)
                    if asked != state.desired:
                        provider.set_replicas(asked)
                        state = _checked_state(provider.get_replicas())
            except Exception as exc:
                error = _translate(exc)
            seconds = time.perf_counter() - started
            self._complete(
                lambda: self._provider_done(
                    key, generation, now, desired, asked, state, error, seconds
                )
            )

        return work

    def _provider_done(
        self,
        key: str,
        generation: int,
        now: float,
        desired: int | None,
        asked: int | None,
        state: NodeGroupState | None,
        error: AutoscalerError | None,
        seconds: float,
    ) -> None:
        if self.observer is not None:
            self.observer.provider_call(key, seconds, error)
        group = self.node_groups.get(key)
        if group is None or group.generation != generation:
            return
        group.in_flight = False
        if error is not None:
            group.attempt += 1
            if isinstance(error, RetryableError):
                delay = backoff_delay(
                    group.attempt,
                    self.settings.retry_initial_seconds,
                    self.settings.retry_max_seconds,
                    self._rng,
                )
            else:
                delay = self.settings.retry_max_seconds
            if group.error is None or group.error.code != error.code:
                log.warning("node group %s: %s (retry in %.1fs)", key, error, delay)
            group.error = error
            group.next_sync = now + delay
            if not isinstance(error, RetryableError):  # a transient error leaves Active alone
                group.conditions.set("Active", "False", error.code, str(error), now)
            group.conditions.set("AbleToScale", "False", error.code, str(error), now)
            return
        assert state is not None
        if group.error is not None:
            log.info("node group %s recovered", key)
        group.error = None
        group.attempt = 0
        settled = state.stable and group.observed is not None and not group.observed.stable
        if state != group.observed:  # an equal read keeps the old object (less for the GC)
            group.observed = state
        group.last_updated = now
        first_read = group.desired is None
        if group.desired is None:
            group.desired = state.desired  # adopt the group's current size
            self._state_changed()
        if group.desired != desired and not first_read and not self.settings.dry_run:
            group.dirty = True  # the target moved while the call was in flight
        group.conditions.set("Active", "True", "Reachable", "the node group answers", now)
        if asked is not None and desired is not None and asked != desired:
            group.conditions.set(
                "AbleToScale",
                "True",
                "LimitedByGroupBounds",
                f"asked for {desired}; the group's bounds [{state.min_size}, {state.max_size}] "
                f"allow {asked}",
                now,
            )
        else:
            group.conditions.set(
                "AbleToScale", "True", "Ready", "the node group accepts a new size", now
            )
        if state.stable:
            group.conditions.set("Stabilized", "True", "Stable", f"{state.ready} nodes ready", now)
        else:
            group.conditions.set(
                "Stabilized",
                "False",
                "Scaling",
                state.message or f"{state.ready} of {state.desired} ready",
                now,
            )
        interval = self.settings.node_group_sync_seconds
        group.next_sync = now + (
            min(interval, UNSTABLE_SYNC_SECONDS) if not state.stable else interval
        )
        if first_read or settled:  # a scale-in held until the group is stable may go now
            for autoscaler_key in self._scalers.get(key, ()):
                self.autoscalers[autoscaler_key].dirty = True

    # ----------------------------------------------------------------- views

    def node_group_view(self, group: NodeGroupRuntime) -> dict[str, Any]:
        spec = group.resource.spec.to_dict()
        if group.desired is not None:
            spec["replicas"] = group.desired
        state = group.observed
        status: dict[str, Any] = {"conditions": _conditions(group.conditions)}
        if state is not None:
            status.update(
                replicas=state.ready,
                desiredReplicas=state.desired,
                minSize=state.min_size,
                maxSize=state.max_size,
            )
        if group.last_updated is not None:
            status["lastUpdated"] = to_datetime(group.last_updated).isoformat()
        pinned = self.overrides.get(group.key)
        if pinned is not None:
            status["override"] = {
                "replicas": pinned.replicas,
                "reason": pinned.reason,
                "by": pinned.actor,
                "since": to_datetime(pinned.since).isoformat(),
                **({"expires": to_datetime(pinned.expires).isoformat()} if pinned.expires else {}),
            }
        if self.settings.dry_run:
            status["dryRun"] = True
        return _view(group.resource, spec, status)

    def producer_view(self, runtime: ProducerRuntime) -> dict[str, Any]:
        status: dict[str, Any] = dict(runtime.status)
        status["signals"] = [
            {
                "name": s.name,
                "labels": dict(s.labels),
                "value": s.value,
                "timestamp": to_datetime(s.timestamp).isoformat(),
            }
            for s in self.store.signals(runtime.key)
        ]
        if runtime.last_time is not None:
            status["lastObservedTime"] = to_datetime(runtime.last_time).isoformat()
        if runtime.error is not None:
            status["error"] = {"code": runtime.error.code, "message": str(runtime.error)}
        status["conditions"] = _conditions(runtime.conditions)
        return _view(runtime.resource, runtime.resource.spec.to_dict(), status)

    def autoscaler_view(self, runtime: AutoscalerRuntime) -> dict[str, Any]:
        status: dict[str, Any] = {"conditions": _conditions(runtime.conditions)}
        pause = self.pauses.get(runtime.key)
        if pause is not None:
            status["paused"] = {
                "by": pause.actor,
                "since": to_datetime(pause.since).isoformat(),
                "reason": pause.reason,
            }
        decision = runtime.last
        if decision is not None:
            status.update(
                currentReplicas=decision.current_replicas,
                desiredReplicas=decision.desired_replicas,
                currentMetrics=[
                    {
                        "name": m.name,
                        "value": m.value,
                        "targetType": m.target_type,
                        "target": m.target,
                        "recommendation": m.recommendation,
                        "reason": m.reason,
                        **({"error": m.error} if m.error else {}),
                    }
                    for m in decision.metrics
                ],
                reasons=decision.reasons,
            )
        status.update(self.autoscaler_history(runtime))
        return _view(runtime.resource, runtime.resource.spec.to_dict(), status)

    @staticmethod
    def autoscaler_history(runtime: AutoscalerRuntime) -> dict[str, Any]:
        """The status fields that carry the algorithm history (what a restart needs):
        ``lastScaleTime``, ``recommendations``, ``scaleEvents``, ``pid``, ``forecasts``."""
        status: dict[str, Any] = {}
        if runtime.last_scale_time is not None:
            status["lastScaleTime"] = to_datetime(runtime.last_scale_time).isoformat()
        status["recommendations"] = [
            {"time": to_datetime(r.time).isoformat(), "replicas": r.replicas}
            for r in runtime.history.recommendations
        ]
        status["scaleEvents"] = [
            {"time": to_datetime(e.time).isoformat(), "change": e.change}
            for e in runtime.history.scale_events
        ]
        decision = runtime.last
        status.update(history_status(runtime.history, decision.forecasts if decision else ()))
        return status


_NEXT_DUE = attrgetter("next_due")


def _next_due(
    producers: list[SourceRuntime],
    autoscalers: list[AutoscalerRuntime],
    groups: list[NodeGroupRuntime],
    expiries: list[float],
) -> float:
    """The earliest time something is due: a producer's run, an autoscaler's evaluation, a
    node group's read, an override's expiry.

    With 10,000 autoscalers and node groups this scan takes milliseconds, so the loop makes it
    after releasing its lock, on copies of its lists (:meth:`ControlLoop._due_objects`): a
    request that needs the lock does not wait for it. The times it reads are numbers the loop
    thread itself writes; anything another thread changes meanwhile (a spec reload, an
    operator's action) wakes the loop, which then runs another pass."""
    due: float = min(map(_NEXT_DUE, autoscalers), default=math.inf)
    for producer in producers:
        if producer.next_due < due and producer.producer and not producer.in_flight:
            due = producer.next_due
    for group in groups:
        if group.next_sync < due and group.provider and not group.in_flight:
            due = group.next_sync
    return min([due, *expiries])


def _unusable_value(value: object, target: float) -> str | None:
    """Why a signal value cannot drive a target (its metric then counts as failed), or None.

    Targets are ratios of non-negative amounts, so a value must be a finite number ≥ 0, and
    small enough that dividing it by the target stays finite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"value {value!r} is not a number"
    if math.isnan(value):
        return "value is NaN (not a number)"
    if math.isinf(value):
        return f"value is infinite ({value})"
    if value < 0:
        return f"value {value} is negative"
    try:
        ratio = value / target
    except (OverflowError, ZeroDivisionError):
        ratio = math.inf
    if not math.isfinite(ratio) or ratio > MAX_RATIO:
        return f"value {value} is too large for its target {target}"
    return None


def _checked_observation(observation: object) -> Observation:
    """``observation`` if it has the shape of the producer protocol, else a PermanentError."""
    if not isinstance(observation, Observation):
        raise PermanentError(
            f"the producer returned {type(observation).__name__}, not an Observation",
            code="InvalidObservation",
        )
    for signal in observation.signals:
        if not isinstance(signal, Signal) or not isinstance(signal.name, str):
            raise PermanentError(
                f"the producer returned a malformed signal: {signal!r}", code="InvalidObservation"
            )
        if isinstance(signal.value, bool) or not isinstance(signal.value, int | float):
            raise PermanentError(
                f"signal {signal.name}: value {signal.value!r} is not a number",
                code="InvalidObservation",
            )
    return observation


def _checked_state(state: object) -> NodeGroupState:
    """``state`` if its counts are consistent, else a PermanentError naming what is wrong."""
    if type(state) is NodeGroupState and _plain_counts(state):
        return state  # the usual case, checked without building the list of problems
    if not isinstance(state, NodeGroupState):
        raise PermanentError(
            f"the provider returned {type(state).__name__}, not a NodeGroupState",
            code="InvalidNodeGroupState",
        )
    problems = [
        f"{name} {value!r} is not a count"
        for name, value, optional in (
            ("desired", state.desired, False),
            ("ready", state.ready, False),
            ("minSize", state.min_size, True),
            ("maxSize", state.max_size, True),
        )
        if not (optional and value is None)
        and (isinstance(value, bool) or not isinstance(value, int) or value < 0)
    ]
    low, high = state.min_size, state.max_size
    if not problems and low is not None and high is not None and low > high:
        problems.append(f"minSize {low} is above maxSize {high}")
    if problems:
        raise PermanentError(
            "the node group reported inconsistent counts: " + "; ".join(problems),
            code="InvalidNodeGroupState",
        )
    return state


def _plain_counts(state: NodeGroupState) -> bool:
    """Counts that are plain non-negative ints (bounds may be None) with min ≤ max."""
    desired, ready, low, high = state.desired, state.ready, state.min_size, state.max_size
    return (
        type(desired) is int
        and type(ready) is int
        and desired >= 0
        and ready >= 0
        and (low is None or (type(low) is int and low >= 0))
        and (high is None or (type(high) is int and high >= 0))
        and (low is None or high is None or low <= high)
    )


def _clamp(value: int, low: int | None, high: int | None) -> int:
    if high is not None and value > high:
        value = high
    if low is not None and value < low:
        value = low
    return value


def _conditions(conditions: Conditions) -> list[dict[str, Any]]:
    return conditions.to_dicts()


def _view(
    resource: ScalableNodeGroup | MetricsProducer | HorizontalAutoscaler,
    spec: dict[str, Any],
    status: dict[str, Any],
) -> dict[str, Any]:
    return {
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "namespace": resource.metadata.namespace,
        "name": resource.metadata.name,
        "metadata": resource.metadata.to_dict(),
        "spec": spec,
        "status": status,
    }
