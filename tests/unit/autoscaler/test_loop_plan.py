"""What the loop precomputes per autoscaler spec (its plan) follows spec edits; in-memory
backends run on the loop's thread, and readers get the lock between the steps of a pass."""

from __future__ import annotations

import threading
import time

import pytest

from autoscaler.api import NodeGroupState, ScalableNodeGroup
from autoscaler.clock import FakeClock
from autoscaler.config import SpecSet
from autoscaler.loop import ControlLoop, ThreadRunner
from autoscaler.settings import LoopSettings
from tests.support import Backends, FakeProvider, autoscaler, node_group, schedule_producer


def _specs(*objects: object) -> SpecSet:
    from autoscaler.api import HorizontalAutoscaler, MetricsProducer, ScalableNodeGroup

    def pick(kind: type) -> dict[str, object]:
        return {
            f"{o.metadata.namespace}/{o.metadata.name}": o  # type: ignore[attr-defined]
            for o in objects
            if isinstance(o, kind)
        }

    return SpecSet(
        node_groups=pick(ScalableNodeGroup),  # type: ignore[arg-type]
        producers=pick(MetricsProducer),  # type: ignore[arg-type]
        autoscalers=pick(HorizontalAutoscaler),  # type: ignore[arg-type]
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backends() -> Backends:
    backends = Backends()
    for name, value in (("p", 8.0), ("q", 40.0)):
        backends.create_producer(schedule_producer(name), None).value = value  # type: ignore[arg-type]
    return backends


def _loop(clock: FakeClock, backends: Backends) -> ControlLoop:
    return ControlLoop(
        clock,
        LoopSettings(),
        create_producer=backends.create_producer,
        create_provider=backends.create_provider,
    )


def test_the_plan_is_made_once_per_spec_object(clock: FakeClock, backends: Backends) -> None:
    loop = _loop(clock, backends)
    specs = (node_group(replicas=1), schedule_producer("p"), autoscaler(producers=("p",)))
    loop.apply(_specs(*specs))
    loop.run_until(clock() + 60, clock.set)
    runtime = loop.autoscalers["default/a"]
    plan = runtime.plan
    assert plan is not None and plan.resource is runtime.resource
    assert [read.producer_key for read in plan.reads] == ["default/p"]
    assert plan.target_key == "default/g"

    # The same specs loaded again (new objects, equal values) keep the runtime's resource.
    loop.apply(_specs(node_group(replicas=1), schedule_producer("p"), autoscaler(producers=("p",))))
    loop.run_until(clock() + 60, clock.set)
    assert loop.autoscalers["default/a"].plan is plan


def test_an_edited_metric_is_read_from_its_new_producer(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends)
    group, p, q = node_group(replicas=1), schedule_producer("p"), schedule_producer("q")
    loop.apply(_specs(group, p, q, autoscaler(producers=("p",))))
    loop.run_until(clock() + 60, clock.set)
    assert backends.providers["g"].desired == 2  # 8 / 4 per node

    loop.apply(_specs(group, p, q, autoscaler(producers=("q",), average_value=5)))
    loop.run_until(clock() + 60, clock.set)
    assert backends.providers["g"].desired == 8  # 40 / 5 per node
    plan = loop.autoscalers["default/a"].plan
    assert plan is not None
    assert [(r.producer_key, r.amount) for r in plan.reads] == [("default/q", 5.0)]

    # The new producer wakes the autoscaler; the old one no longer does.
    backends.producers["p"].value = 80
    clock.advance(15)
    loop.run_once()
    assert backends.providers["g"].desired == 8
    backends.producers["q"].value = 60
    clock.advance(15)
    loop.run_once()
    assert backends.providers["g"].desired == 12


def test_an_edited_target_moves_the_decisions_to_the_new_node_group(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends)
    g, h, q = node_group("g", replicas=1), node_group("h", replicas=1), schedule_producer("q")
    loop.apply(_specs(g, h, q, autoscaler(target="g", producers=("q",))))
    loop.run_until(clock() + 60, clock.set)
    assert (backends.providers["g"].desired, backends.providers["h"].desired) == (10, 1)

    loop.apply(_specs(g, h, q, autoscaler(target="h", producers=("q",))))
    loop.run_until(clock() + 60, clock.set)
    assert (backends.providers["g"].desired, backends.providers["h"].desired) == (10, 10)
    view = loop.autoscaler_view(loop.autoscalers["default/a"])
    assert view["spec"]["scaleTargetRef"]["name"] == "h"


class _SlowProvider(FakeProvider):
    """A fake provider whose reads take a while, recording the threads that call it."""

    in_memory = True

    def __init__(self) -> None:
        super().__init__(1)
        self.threads: set[str] = set()

    def get_replicas(self) -> NodeGroupState:
        self.threads.add(threading.current_thread().name)
        time.sleep(0.002)
        return super().get_replicas()


def test_in_memory_backends_run_on_the_loop_thread_and_readers_get_in_during_a_pass(
    clock: FakeClock,
) -> None:
    providers: dict[str, _SlowProvider] = {}

    def create_provider(resource: ScalableNodeGroup, _: object) -> _SlowProvider:
        return providers.setdefault(resource.metadata.name, _SlowProvider())

    loop = ControlLoop(
        clock,
        LoopSettings(),
        runner=ThreadRunner(2),
        create_producer=Backends().create_producer,
        create_provider=create_provider,
    )
    groups = {f"default/g{i}": node_group(f"g{i}", replicas=1) for i in range(100)}
    loop.apply(SpecSet(node_groups=groups))
    assert all(loop.node_groups[key].inline for key in groups)

    waited: list[float] = []

    def reader() -> None:
        time.sleep(0.02)  # the pass (100 reads of 2 ms) is under way
        started = time.monotonic()
        with loop.lock:
            waited.append(time.monotonic() - started)

    thread = threading.Thread(target=reader)
    thread.start()
    started = time.monotonic()
    loop.run_once()
    pass_seconds = time.monotonic() - started
    thread.join(5)
    loop.runner.shutdown()
    assert {name for p in providers.values() for name in p.threads} == {
        threading.current_thread().name
    }
    assert all(g.observed is not None for g in loop.node_groups.values())
    assert waited and waited[0] < pass_seconds / 2  # let in mid-pass, not after it
