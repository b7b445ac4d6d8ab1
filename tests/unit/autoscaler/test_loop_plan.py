"""What the loop precomputes per autoscaler spec (its plan) follows spec edits."""

from __future__ import annotations

import pytest

from autoscaler.clock import FakeClock
from autoscaler.config import SpecSet
from autoscaler.loop import ControlLoop
from autoscaler.settings import LoopSettings
from tests.support import Backends, autoscaler, node_group, schedule_producer


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
