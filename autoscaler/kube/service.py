"""Cluster mode (``serve --kubernetes``): custom resources in, status, scale and Events out.

:class:`ClusterService` is the cluster counterpart of :class:`autoscaler.service.Service` and
offers the HTTP server the same attributes (``loop``, ``clock``, ``metrics``, ``issues``,
``ready``, ``alive``, ``settings``). It runs the same control loop; only its inputs and outputs
differ. Its threads:

- **watchers** (:mod:`autoscaler.kube.controller`): list and watch the three kinds into a cache;
- **election** (:mod:`autoscaler.kube.leader`), unless disabled: a Lease decides who acts;
- **reconciler**: on every cache change (after a short settle) and every second, runs
  :meth:`ClusterService.reconcile_once`:

  1. **Term.** Leadership gained → a term starts: the loop thread starts and every object is
     applied afresh, so each autoscaler restores its algorithm history from its status.
     Leadership lost → the loop thread stops and the loop forgets every object; nothing more is
     written. A standby keeps its cache warm and does nothing else.
  2. **Specs.** The cache is validated like spec files. Valid objects go to the loop; a node
     group's ``spec.replicas`` changed by someone else (:class:`~autoscaler.kube.controller.
     ReplicaTracker`) is honoured as an operator override: the loop continues from that count.
  3. **Write.** The status of every object (``observedGeneration``, conditions, and what the
     loop knows), and the desired count of every node group into its ``spec.replicas``, go out
     through :class:`~autoscaler.kube.status.StatusWriter`. Invalid objects get an ``Active``
     condition False (reason ``InvalidSpec``, message with the field paths) and a Warning Event,
     once the problem has lasted one more round (a related object may just be arriving).

- **loop** (while leading): :meth:`autoscaler.loop.ControlLoop.run_forever`; its decisions and
  backend errors become Events (:mod:`autoscaler.kube.events`), sent by the **events** thread.

Every write (status, scale, Events, and the providers' ``set_replicas``) is checked against
"still the leader" right before it is made, and the API writes carry the resourceVersion they
were computed from.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge

from autoscaler import registry
from autoscaler.api import BackendContext, Clock, NodeGroupState, Provider, ScalableNodeGroup
from autoscaler.clock import system_clock, to_datetime
from autoscaler.config import SpecIssue, SpecSet
from autoscaler.decisions import DecisionLog, DecisionRecord
from autoscaler.errors import AutoscalerError, RetryableError
from autoscaler.kube import KubeClients
from autoscaler.kube.controller import (
    AUTOSCALERS,
    NODE_GROUPS,
    PRODUCERS,
    ClusterController,
    ClusterSpecs,
    Kind,
    KubeListWatch,
    ListWatch,
    ObjKey,
    ReplicaTracker,
    build_specs,
    describe_issues,
    key_of,
    resource_version,
)
from autoscaler.kube.events import (
    EventRecorder,
    EventSink,
    EventType,
    KubeEventSink,
    ObjectRef,
    decision_event,
)
from autoscaler.kube.leader import KubeLeaseStore, LeaderElector, LeaseStore, default_identity
from autoscaler.kube.shards import KubeLeaseDirectory, LeaseDirectory, ShardManager, shard_of
from autoscaler.kube.status import KubeObjectApi, ObjectApi, StatusWriter, Target
from autoscaler.loop import ControlLoop, LoopObserver, ProviderFactory, Runner, ThreadRunner
from autoscaler.metrics import Metrics
from autoscaler.settings import Settings

log = logging.getLogger("autoscaler.kube.service")

#: Seconds to let related changes arrive before reconciling after a cache change.
SETTLE_SECONDS = 0.1


class LeaderOnlyProvider:
    """A provider decorator: reads always, resizes only while this instance leads."""

    def __init__(self, provider: Provider, is_leader: Callable[[], bool]) -> None:
        self.provider = provider
        self.is_leader = is_leader

    def get_replicas(self) -> NodeGroupState:
        return self.provider.get_replicas()

    def set_replicas(self, replicas: int) -> None:
        if not self.is_leader():
            raise RetryableError("not the leader: not resizing", code="NotLeader")
        self.provider.set_replicas(replicas)

    def __getattr__(self, name: str) -> Any:  # extra abilities of the wrapped provider
        return getattr(self.provider, name)


class _Observers:
    """Fans the loop's observer calls out (metrics, then Events)."""

    def __init__(self, *observers: LoopObserver) -> None:
        self.observers = observers

    def producer_run(self, producer: str, seconds: float, error: AutoscalerError | None) -> None:
        for observer in self.observers:
            observer.producer_run(producer, seconds, error)

    def provider_call(self, node_group: str, seconds: float, error: AutoscalerError | None) -> None:
        for observer in self.observers:
            observer.provider_call(node_group, seconds, error)

    def loop_pass(self, seconds: float) -> None:
        for observer in self.observers:
            observer.loop_pass(seconds)

    def decision(self, record: DecisionRecord) -> None:
        for observer in self.observers:
            observer.decision(record)


class ClusterService:
    """The in-cluster service (module docstring). ``start()``, then ``stop()``.

    The Kubernetes boundary can be replaced for tests: ``list_watch``, ``lease_store``,
    ``object_api`` and ``event_sink`` default to the real API through ``clients``.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Clock = system_clock,
        *,
        clients: KubeClients | None = None,
        runner: Runner | None = None,
        create_provider: ProviderFactory = registry.create_provider,
        list_watch: ListWatch | None = None,
        lease_store: LeaseStore | None = None,
        lease_directory: LeaseDirectory | None = None,
        object_api: ObjectApi | None = None,
        event_sink: EventSink | None = None,
        tick_seconds: float = 1.0,
        background_loop: bool = True,
    ) -> None:
        self.settings = settings
        self.clock = clock
        kube = settings.kubernetes
        self.clients = clients or KubeClients(kube.kubeconfig)
        self.identity = kube.identity or default_identity()
        self.tick_seconds = tick_seconds
        #: False in tests that drive ``loop.run_once`` themselves.
        self.background_loop = background_loop
        self._create_provider = create_provider
        self.loop = ControlLoop(
            clock,
            settings.loop,
            runner=runner or ThreadRunner(settings.loop.workers),
            decisions=DecisionLog(settings.decisions.max_records),
            context=BackendContext(clock=clock, settings=settings, kube=self.clients),
            create_provider=self._guarded_provider,
        )
        self.metrics = Metrics(self.loop)
        self.loop.observer = _Observers(self.metrics, self)
        self._leader_gauge = Gauge(
            "autoscaler_leader",
            "1 while this instance is the leader (it acts), 0 while it stands by.",
            registry=self.metrics.registry,
        )
        self._writes = Counter(
            "autoscaler_kube_writes_total",
            "Writes to the custom resources by resource, what was written and the result.",
            ["resource", "write", "result"],
            registry=self.metrics.registry,
        )
        self._events_sent = Counter(
            "autoscaler_kube_events_total",
            "Kubernetes Events by result (created, patched, filtered, dropped, failed).",
            ["result"],
            registry=self.metrics.registry,
        )
        #: Problems found in the custom resources at the last reconcile.
        self.issues: list[SpecIssue] = []
        self.controller = ClusterController(
            list_watch or KubeListWatch(self.clients),
            namespaces=kube.namespaces,
            timeout_seconds=kube.watch_timeout_seconds,
            backoff_initial_seconds=kube.backoff_initial_seconds,
            backoff_max_seconds=kube.backoff_max_seconds,
        )
        self.controller.cache.subscribe(self._changed)
        self.elector: LeaderElector | None = None
        #: With ``kubernetes.shards`` > 1: the shards this replica holds (no single leader).
        self.shards: ShardManager | None = None
        #: The shards the loop runs the objects of (sharding only).
        self._owned: frozenset[int] = frozenset()
        if kube.leader_election and kube.shards > 1:
            self.shards = ShardManager(
                lease_directory
                or KubeLeaseDirectory(self.clients, kube.lease_name, kube.lease_namespace),
                kube.lease_name,
                kube.shards,
                self.identity,
                clock,
                lease_duration_seconds=kube.lease_duration_seconds,
                renew_deadline_seconds=kube.renew_deadline_seconds,
                renew_seconds=kube.renew_seconds,
                retry_seconds=kube.retry_seconds,
                on_change=self._changed,
            )
        elif kube.leader_election:
            self.elector = LeaderElector(
                lease_store or KubeLeaseStore(self.clients, kube.lease_name, kube.lease_namespace),
                self.identity,
                clock,
                lease_duration_seconds=kube.lease_duration_seconds,
                renew_deadline_seconds=kube.renew_deadline_seconds,
                renew_seconds=kube.renew_seconds,
                retry_seconds=kube.retry_seconds,
                on_started_leading=self._changed,
                on_stopped_leading=self._changed,
            )
        self.writer = StatusWriter(
            object_api or KubeObjectApi(self.clients),
            clock,
            is_leader=self.is_leader,
            interval_seconds=kube.status_interval_seconds,
            on_written=self._written,
            on_conflict=self._reread,
            on_result=lambda plural, what, result: self._writes.labels(plural, what, result).inc(),
        )
        self.events = EventRecorder(
            event_sink or KubeEventSink(self.clients),
            clock,
            instance=self.identity,
            can_send=self.is_leader,
            on_result=lambda result: self._events_sent.labels(result).inc(),
        )
        self.replicas = ReplicaTracker()
        self._lock = threading.RLock()  # one reconcile at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._stop_election = threading.Event()
        self._released = False
        self._threads: list[threading.Thread] = []
        self._acting = False
        self._term_stop = threading.Event()
        self._loop_thread: threading.Thread | None = None
        self._specs: ClusterSpecs | None = None
        self._needs_apply = False
        #: object → (uid, the generation of the spec it runs with): its observedGeneration
        self._generations: dict[ObjKey, tuple[str, int]] = {}
        #: invalid object → (generation, message) seen last round / reported
        self._invalid_seen: dict[ObjKey, tuple[int, str]] = {}
        self._invalid_reported: dict[ObjKey, tuple[int, str]] = {}
        #: valid object → when it was last accepted (the time of its Active condition)
        self._accepted: dict[ObjKey, str] = {}

    # ----------------------------------------------------------------- state

    def is_leader(self) -> bool:
        """True while this instance may act (always, without leader election, until stopped)."""
        if self._released:
            return False
        if self.shards is not None:
            return bool(self.shards.owned())
        if self.elector is None:
            return True
        return self.elector.is_leader

    def owns(self, key: str) -> bool:
        """True while this instance may act on the object ``key`` (its shard's key: the target
        node group's key for an autoscaler)."""
        if self.shards is None:
            return self.is_leader()
        return not self._released and self.shards.owns(shard_of(key, self.shards.shards))

    @property
    def acting(self) -> bool:
        """True while a leadership term runs (the loop runs and writes are made)."""
        return self._acting

    @property
    def ready(self) -> bool:
        """Every kind listed, and (when leading) the loop has run once."""
        return self.controller.synced and (not self._acting or self.loop.passes > 0)

    @property
    def alive(self) -> bool:
        threads = [*self._threads]
        if self._acting and self._loop_thread is not None:
            threads.append(self._loop_thread)
        return (
            not self._stop.is_set()
            and all(t.is_alive() for t in threads)
            and self.controller.alive
            and self.events.alive
        )

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Connect (raises :class:`~autoscaler.errors.PermanentError` without a configuration),
        then start watching, electing and reconciling on background threads."""
        _ = self.clients.api_client
        self.controller.start()
        self.events.start()
        self._spawn("reconciler", self._run)
        if self.elector is not None:
            elector = self.elector
            self._spawn("leader-election", lambda: elector.run(self._stop_election))
        if self.shards is not None:
            shards = self.shards
            self._spawn("sharding", lambda: shards.run(self._stop_election))

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop acting, write the latest status once more, release the Lease, stop watching."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            if thread.name == "reconciler":
                thread.join(timeout)
        with self._lock:
            if self._acting:
                self._stop_loop(timeout)
                if self._specs is not None and self.is_leader():
                    try:
                        self.writer.write(self._targets(self._specs))
                    except Exception:
                        log.exception("the last status write failed")
        self.events.stop(timeout=min(timeout, 2.0))
        self._stop_election.set()
        if self.elector is not None:
            self.elector.release()
        if self.shards is not None:
            for thread in self._threads:
                if thread.name == "sharding":
                    thread.join(timeout)
            self.shards.release()
        self._released = True
        self.controller.stop(timeout=min(timeout, 2.0))
        self.loop.runner.shutdown()
        self.clients.close()

    def _changed(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            woke = self._wake.wait(self.tick_seconds)
            if self._stop.is_set():
                return
            if woke:
                self._stop.wait(SETTLE_SECONDS)
            self._wake.clear()
            try:
                self.reconcile_once()
            except Exception:  # a bug must not stop the reconciler
                log.exception("reconcile failed")

    # ----------------------------------------------------------------- one reconcile

    def reconcile_once(self) -> None:
        """Steps 1–3 of the module docstring."""
        with self._lock:
            leading = self.is_leader() and not self._stop.is_set()
            if self.shards is not None:
                owned = self.shards.claim() if not self._stop.is_set() else frozenset()
                leading = bool(owned)
                if owned != self._owned:
                    self._owned = owned
                    self._needs_apply = True
            if leading and not self._acting:
                self._begin_term()
            elif not leading and self._acting:
                self._end_term()
            version, objects = self.controller.cache.snapshot()
            changed = self._specs is None or self._specs.version != version
            if changed:
                self._specs = build_specs(version, objects)
                self.issues = list(self._specs.issues)
            specs = self._specs
            assert specs is not None
            overrides = self._observe_replicas(specs) if changed else {}
            if not self._acting or not self.controller.synced:
                return
            if changed or self._needs_apply:
                self._apply(specs)
                self._needs_apply = False
            self._override(specs, overrides)
            ready_invalid = self._settle_invalid(specs)
            self.writer.write(self._targets(specs), statuses=False)  # spec.replicas first
            self.writer.write(self._targets(specs, ready_invalid))

    def _begin_term(self) -> None:
        log.info("%s starts acting", self.identity)
        self._acting = True
        self._leader_gauge.set(1)
        self._needs_apply = True
        self.writer.forget()
        self._generations.clear()
        self._invalid_seen.clear()
        self._invalid_reported.clear()
        self._term_stop = threading.Event()
        stop = self._term_stop
        if self.background_loop:
            self._loop_thread = threading.Thread(
                target=lambda: self.loop.run_forever(stop), name="control-loop", daemon=True
            )
            self._loop_thread.start()

    def _stop_loop(self, timeout: float) -> None:
        self._term_stop.set()
        self.loop.wake()
        if self._loop_thread is not None:
            self._loop_thread.join(timeout)
            self._loop_thread = None

    def _end_term(self) -> None:
        log.warning(
            "%s stops acting: the loop forgets every object until it leads again", self.identity
        )
        self._stop_loop(5.0)
        self.loop.apply(SpecSet())
        if self.shards is not None:
            self._owned = frozenset()
            self.shards.ack(self._owned)
        self._accepted.clear()
        self._acting = False
        self._leader_gauge.set(0)

    # ----------------------------------------------------------------- 2. specs

    def _observe_replicas(self, specs: ClusterSpecs) -> dict[str, int]:
        overrides: dict[str, int] = {}
        keys: set[str] = set()
        for (plural, key), obj in specs.objects.items():
            if plural != NODE_GROUPS.plural:
                continue
            keys.add(key)
            replicas = (obj.get("spec") or {}).get("replicas")
            value = self.replicas.observe(
                key, resource_version(obj), replicas if isinstance(replicas, int) else None
            )
            if value is not None:
                overrides[key] = value
        self.replicas.forget_except(keys)
        return overrides

    def _apply(self, specs: ClusterSpecs) -> None:
        """Give the loop the valid objects. A node group the loop already runs keeps the count
        the loop has (an external change of spec.replicas goes through :meth:`_override`)."""
        valid = self._own_share(specs.result.specs)
        with self.loop.lock:
            node_groups: dict[str, ScalableNodeGroup] = {}
            for key, resource in valid.node_groups.items():
                runtime = self.loop.node_groups.get(key)
                desired = runtime.desired if runtime is not None else None
                if desired is not None and resource.spec.replicas != desired:
                    spec = resource.spec.model_copy(update={"replicas": desired})
                    resource = resource.model_copy(update={"spec": spec})
                node_groups[key] = resource
            self.loop.apply(SpecSet(node_groups, dict(valid.producers), dict(valid.autoscalers)))
        if self.shards is not None:
            self.shards.ack(self._owned)
        # The generation each object runs with; never backwards for the same object (a
        # snapshot may lag behind a spec.replicas write of ours that already moved it on).
        previous, self._generations = self._generations, {}
        for kind, keys in (
            (NODE_GROUPS, valid.node_groups),
            (PRODUCERS, valid.producers),
            (AUTOSCALERS, valid.autoscalers),
        ):
            for key in keys:
                obj = specs.objects.get((kind.plural, key))
                if obj is not None:
                    uid, generation = _uid(obj), _generation(obj)
                    before = previous.get((kind.plural, key))
                    if before is not None and before[0] == uid:
                        generation = max(generation, before[1])
                    self._generations[(kind.plural, key)] = (uid, generation)

    def _in_shards(self, key: str) -> bool:
        assert self.shards is not None
        return shard_of(key, self.shards.shards) in self._owned

    def _own_share(self, valid: SpecSet) -> SpecSet:
        """With sharding, the objects of the shards run: the autoscalers of owned node groups,
        those node groups, and the producers owned or read by those autoscalers."""
        if self.shards is None:
            return valid
        autoscalers = {
            key: resource
            for key, resource in valid.autoscalers.items()
            if self._in_shards(
                f"{resource.metadata.namespace}/{resource.spec.scale_target_ref.name}"
            )
        }
        read = {
            f"{resource.metadata.namespace}/{metric.producer.name}"
            for resource in autoscalers.values()
            for _, metric in resource.spec.sources()
            if metric.producer is not None
        }
        return SpecSet(
            {k: v for k, v in valid.node_groups.items() if self._in_shards(k)},
            {k: v for k, v in valid.producers.items() if k in read or self._in_shards(k)},
            autoscalers,
        )

    def _override(self, specs: ClusterSpecs, overrides: dict[str, int]) -> None:
        for key, replicas in overrides.items():
            with self.loop.lock:
                group = self.loop.node_groups.get(key)
                if group is None or group.desired == replicas:
                    continue
                before = group.desired
                group.desired = replicas
                group.dirty = True
            log.info(
                "node group %s: spec.replicas set to %d by another client (was %s); "
                "continuing from %d",
                key,
                replicas,
                before,
                replicas,
            )
            self._event(
                NODE_GROUPS,
                key,
                "Normal",
                "ReplicasOverridden",
                f"spec.replicas set to {replicas} by another client (was {before}); "
                f"the autoscaler continues from {replicas}",
            )
        if overrides:
            self.loop.wake()

    def _settle_invalid(self, specs: ClusterSpecs) -> set[ObjKey]:
        """Invalid objects whose problem lasted since the last round; each is reported once per
        generation and message with a Warning Event."""
        seen: dict[ObjKey, tuple[int, str]] = {}
        ready: set[ObjKey] = set()
        for ckey, issues in specs.invalid.items():
            obj = specs.objects.get(ckey)
            if obj is None or (self.shards is not None and not self._in_shards(ckey[1])):
                continue  # reported by its own shard's owner
            state = (_generation(obj), describe_issues(issues))
            seen[ckey] = state
            if self._invalid_seen.get(ckey) != state:
                continue
            ready.add(ckey)
            if self._invalid_reported.get(ckey) != state:
                self._invalid_reported[ckey] = state
                log.warning("%s %s is invalid: %s", obj.get("kind"), ckey[1], state[1])
                self.events.event(ObjectRef.of(obj), "Warning", "InvalidSpec", state[1])
        self._invalid_seen = seen
        for ckey in set(self._invalid_reported) - set(seen):
            del self._invalid_reported[ckey]
        return ready

    # ----------------------------------------------------------------- 3. write

    def _targets(self, specs: ClusterSpecs, invalid: set[ObjKey] | None = None) -> list[Target]:
        targets: list[Target] = []
        with self.loop.lock:
            for key, group in self.loop.node_groups.items():
                view = self.loop.node_group_view(group)
                targets += self._target(specs, NODE_GROUPS, key, view["status"], group.desired)
            for key, producer in self.loop.producers.items():
                if self.shards is not None and not self._in_shards(key):
                    continue  # read here, written by its own shard's owner
                view = self.loop.producer_view(producer)
                targets += self._target(specs, PRODUCERS, key, view["status"])
            for key, autoscaler in self.loop.autoscalers.items():
                view = self.loop.autoscaler_view(autoscaler)
                targets += self._target(specs, AUTOSCALERS, key, view["status"])
        for ckey in sorted(invalid or ()):
            if self.shards is not None and not self._in_shards(ckey[1]):
                continue
            obj = specs.objects.get(ckey)
            if obj is not None:
                targets.append(self._invalid_target(ckey, obj, specs.invalid[ckey]))
        running = {(t.plural, f"{t.namespace}/{t.name}") for t in targets}
        self._accepted = {k: v for k, v in self._accepted.items() if k in running}
        return targets

    def _target(
        self,
        specs: ClusterSpecs,
        kind: Kind,
        key: str,
        status: dict[str, Any],
        replicas: int | None = None,
    ) -> list[Target]:
        ckey = (kind.plural, key)
        obj = specs.objects.get(ckey)
        if obj is None or ckey in specs.invalid:
            return []
        generation = self._generations.get(ckey, ("", _generation(obj)))[1]
        conditions = list(status.get("conditions", []))
        if not any(c.get("type") == "Active" for c in conditions):
            since = self._accepted.setdefault(ckey, to_datetime(self.clock()).isoformat())
            accepted = {
                "type": "Active",
                "status": "True",
                "reason": "Accepted",
                "message": "the spec is valid and runs",
                "lastTransitionTime": since,
            }
            conditions.insert(0, accepted)
        status = {
            "observedGeneration": generation,
            **status,
            "conditions": [{**c, "observedGeneration": generation} for c in conditions],
        }
        return [_make_target(kind, obj, status, replicas)]

    def _invalid_target(self, ckey: ObjKey, obj: dict[str, Any], issues: list[SpecIssue]) -> Target:
        """The object's status with ``Active`` False / ``InvalidSpec`` (history kept)."""
        self._accepted.pop(ckey, None)
        generation = _generation(obj)
        current = obj.get("status") if isinstance(obj.get("status"), dict) else {}
        assert isinstance(current, dict)
        message = describe_issues(issues)
        conditions = [
            c
            for c in current.get("conditions") or []
            if isinstance(c, dict) and c.get("type") != "Active"
        ]
        previous = next(
            (
                c
                for c in current.get("conditions") or []
                if isinstance(c, dict) and c.get("type") == "Active"
            ),
            None,
        )
        since = to_datetime(self.clock()).isoformat()
        if (
            previous is not None
            and previous.get("status") == "False"
            and previous.get("lastTransitionTime")
        ):
            since = previous["lastTransitionTime"]
        active = {
            "type": "Active",
            "status": "False",
            "reason": "InvalidSpec",
            "message": message,
            "lastTransitionTime": since,
            "observedGeneration": generation,
        }
        status = {**current, "observedGeneration": generation, "conditions": [active, *conditions]}
        kind = next(k for k in (NODE_GROUPS, PRODUCERS, AUTOSCALERS) if k.plural == ckey[0])
        return _make_target(kind, obj, status)

    def _written(self, plural: str, obj: dict[str, Any]) -> None:
        """Note our own writes: their versions are no override, and a spec.replicas write of
        ours leaves the rest of the spec as observed."""
        key = key_of(obj)
        if plural != NODE_GROUPS.plural:
            return
        replicas = (obj.get("spec") or {}).get("replicas")
        self.replicas.own(
            key, resource_version(obj), replicas if isinstance(replicas, int) else None
        )
        ckey = (plural, key)
        before = self._generations.get(ckey)
        if before is not None and before[0] == _uid(obj):
            self._generations[ckey] = (before[0], max(before[1], _generation(obj)))

    def _reread(self, plural: str, namespace: str, name: str, obj: dict[str, Any] | None) -> None:
        self.controller.cache.refresh(plural, f"{namespace}/{name}", obj)

    # ----------------------------------------------------------------- loop observer (Events)

    def _event(self, kind: Kind, key: str, type_: EventType, reason: str, message: str) -> None:
        obj = self.controller.cache.get(kind.plural, key)
        if obj is not None:
            self.events.event(ObjectRef.of(obj), type_, reason, message)

    def producer_run(self, producer: str, seconds: float, error: AutoscalerError | None) -> None:
        if error is not None and producer in self.loop.producers and self.owns(producer):
            self._event(PRODUCERS, producer, "Warning", "ProducerError", f"{error.code}: {error}")

    def provider_call(self, node_group: str, seconds: float, error: AutoscalerError | None) -> None:
        if error is not None and error.code != "NotLeader":
            self._event(
                NODE_GROUPS, node_group, "Warning", "NodeGroupError", f"{error.code}: {error}"
            )

    def loop_pass(self, seconds: float) -> None:
        return None

    def decision(self, record: DecisionRecord) -> None:
        event = decision_event(record)
        if event is not None:
            self._event(AUTOSCALERS, record.autoscaler, *event)
        self._wake.set()  # write the new desired count soon

    def _guarded_provider(self, resource: ScalableNodeGroup, context: BackendContext) -> Provider:
        key = f"{resource.metadata.namespace}/{resource.metadata.name}"
        return LeaderOnlyProvider(self._create_provider(resource, context), lambda: self.owns(key))


def _uid(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _generation(obj: dict[str, Any]) -> int:
    value = (obj.get("metadata") or {}).get("generation")
    return value if isinstance(value, int) else 0


def _make_target(
    kind: Kind, obj: dict[str, Any], status: dict[str, Any], replicas: int | None = None
) -> Target:
    meta = obj.get("metadata") or {}
    current = obj.get("status")
    spec_replicas = (obj.get("spec") or {}).get("replicas")
    return Target(
        plural=kind.plural,
        api_version=str(obj.get("apiVersion") or "autoscaler.dev/v1alpha1"),
        kind=kind.kind,
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name")),
        resource_version=resource_version(obj),
        current_status=current if isinstance(current, dict) else {},
        current_replicas=spec_replicas if isinstance(spec_replicas, int) else None,
        status=status,
        replicas=replicas,
    )
