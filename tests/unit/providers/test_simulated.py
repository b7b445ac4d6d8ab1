"""The simulated provider: an in-memory node group with a provisioning delay."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from autoscaler.api import BackendContext, NodeGroupState, Provider, ScalableNodeGroup
from autoscaler.clock import FakeClock
from autoscaler.errors import PermanentError
from providers.simulated import SimulatedNodeGroup, create


def group(
    clock: FakeClock,
    *,
    replicas: int | None = None,
    delay: float = 30.0,
    min_size: int = 0,
    max_size: int = 10,
    initial_ready: int | None = None,
) -> SimulatedNodeGroup:
    options: dict[str, Any] = {
        "provisioningDelaySeconds": delay,
        "minSize": min_size,
        "maxSize": max_size,
    }
    if initial_ready is not None:
        options["initialReady"] = initial_ready
    spec: dict[str, Any] = {"type": "Simulated", "id": "workers", "simulated": options}
    if replicas is not None:
        spec["replicas"] = replicas
    resource = ScalableNodeGroup.model_validate({"metadata": {"name": "workers"}, "spec": spec})
    return create(resource, BackendContext(clock=clock))


def counts(provider: SimulatedNodeGroup) -> tuple[int, int]:
    state = provider.get_replicas()
    return state.desired, state.ready


def test_the_factory_returns_a_provider() -> None:
    assert isinstance(group(FakeClock()), Provider)


def test_options_may_be_left_out() -> None:
    resource = ScalableNodeGroup.model_validate(
        {"metadata": {"name": "workers"}, "spec": {"type": "Simulated", "id": "workers"}}
    )
    state = create(resource, BackendContext(clock=FakeClock())).get_replicas()
    assert state == NodeGroupState(
        desired=0, ready=0, min_size=0, max_size=1000, stable=True, message="0 nodes ready"
    )


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        pytest.param({}, 0, id="nothing set starts empty"),
        pytest.param({"replicas": 3}, 3, id="spec replicas are ready at start"),
        pytest.param({"replicas": 3, "initial_ready": 5}, 5, id="initialReady wins over replicas"),
        pytest.param({"initial_ready": 0, "replicas": 4}, 0, id="initialReady zero is honoured"),
        pytest.param({"replicas": 0, "min_size": 2}, 2, id="a start below minSize is raised"),
        pytest.param({"replicas": 20, "max_size": 8}, 8, id="a start above maxSize is lowered"),
    ],
)
def test_the_group_starts_with_ready_nodes(settings: dict[str, Any], expected: int) -> None:
    state = group(FakeClock(), **settings).get_replicas()
    assert (state.desired, state.ready, state.stable) == (expected, expected, True)


def test_new_nodes_become_ready_after_the_provisioning_delay() -> None:
    clock = FakeClock()
    provider = group(clock, replicas=2, delay=30)

    provider.set_replicas(5)
    assert counts(provider) == (5, 2)
    clock.advance(29.9)
    assert counts(provider) == (5, 2)
    clock.advance(0.1)
    assert counts(provider) == (5, 5)


def test_nodes_requested_later_become_ready_later() -> None:
    clock = FakeClock()
    provider = group(clock, replicas=1, delay=30)

    provider.set_replicas(2)
    clock.advance(10)
    provider.set_replicas(4)
    clock.advance(20)
    assert counts(provider) == (4, 2)
    clock.advance(10)
    assert counts(provider) == (4, 4)


def test_a_zero_delay_makes_new_nodes_ready_at_once() -> None:
    provider = group(FakeClock(), replicas=1, delay=0)
    provider.set_replicas(3)
    assert provider.get_replicas().stable
    assert counts(provider) == (3, 3)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        pytest.param(4, (4, 2), id="removing fewer than pending keeps every ready node"),
        pytest.param(2, (2, 2), id="removing all pending keeps every ready node"),
        pytest.param(1, (1, 1), id="then ready nodes go"),
        pytest.param(0, (0, 0), id="down to zero"),
    ],
)
def test_scaling_down_removes_pending_nodes_first(target: int, expected: tuple[int, int]) -> None:
    clock = FakeClock()
    provider = group(clock, replicas=2, delay=30)
    provider.set_replicas(5)

    provider.set_replicas(target)

    assert counts(provider) == expected


def test_scaling_down_removes_the_newest_pending_node_first() -> None:
    clock = FakeClock()
    provider = group(clock, replicas=2, delay=30)
    provider.set_replicas(3)  # ready at +30
    clock.advance(20)
    provider.set_replicas(4)  # ready at +50

    provider.set_replicas(3)
    clock.advance(10)  # +30: the older pending node is the one that remains

    assert provider.get_replicas().stable
    assert counts(provider) == (3, 3)


def test_setting_the_same_count_twice_changes_nothing() -> None:
    clock = FakeClock()
    provider = group(clock, replicas=2, delay=30)
    provider.set_replicas(5)
    clock.advance(20)

    provider.set_replicas(5)
    after_repeat = provider.get_replicas()
    clock.advance(10)

    assert counts(provider) == (5, 5)
    assert (after_repeat.desired, after_repeat.ready) == (5, 2)


@pytest.mark.parametrize(
    "target",
    [pytest.param(0, id="below minSize"), pytest.param(7, id="above maxSize")],
)
def test_counts_outside_the_group_bounds_are_refused(target: int) -> None:
    provider = group(FakeClock(), replicas=3, min_size=1, max_size=6)

    with pytest.raises(PermanentError, match=r"outside the group's bounds \[1, 6\]"):
        provider.set_replicas(target)

    assert counts(provider) == (3, 3)


@pytest.mark.parametrize("target", [pytest.param(1, id="minSize"), pytest.param(6, id="maxSize")])
def test_the_bounds_themselves_are_allowed(target: int) -> None:
    provider = group(FakeClock(), replicas=3, min_size=1, max_size=6, delay=0)
    provider.set_replicas(target)
    assert counts(provider) == (target, target)


@pytest.mark.parametrize(
    ("elapsed", "stable", "message"),
    [
        pytest.param(0, False, "3 of 5 nodes provisioning", id="right after scaling up"),
        pytest.param(29, False, "3 of 5 nodes provisioning", id="just before ready"),
        pytest.param(30, True, "5 nodes ready", id="once the nodes are ready"),
    ],
)
def test_the_group_is_stable_only_when_nothing_is_provisioning(
    elapsed: float, stable: bool, message: str
) -> None:
    clock = FakeClock()
    provider = group(clock, replicas=2, delay=30, min_size=1, max_size=9)
    provider.set_replicas(5)
    clock.advance(elapsed)

    state = provider.get_replicas()

    assert (state.stable, state.message) == (stable, message)
    assert (state.min_size, state.max_size) == (1, 9)


def test_a_single_provisioning_node_reads_naturally() -> None:
    provider = group(FakeClock(), replicas=0)
    provider.set_replicas(1)
    assert provider.get_replicas().message == "1 of 1 node provisioning"


def test_concurrent_callers_leave_a_consistent_group() -> None:
    clock = FakeClock()
    provider = group(clock, replicas=0, max_size=50, delay=5)
    barrier = threading.Barrier(8)
    inconsistent: list[NodeGroupState] = []

    def resize(offset: int) -> None:
        barrier.wait()
        for step in range(200):
            provider.set_replicas((offset * 7 + step) % 51)
            state = provider.get_replicas()
            if not 0 <= state.ready <= state.desired <= 50:
                inconsistent.append(state)

    threads = [threading.Thread(target=resize, args=(offset,)) for offset in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert inconsistent == []
    provider.set_replicas(20)
    clock.advance(5)
    assert counts(provider) == (20, 20)
