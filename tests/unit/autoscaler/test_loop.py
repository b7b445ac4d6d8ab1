"""The control loop on a fake clock with fake backends (our own protocols)."""

from __future__ import annotations

import itertools

import pytest

from autoscaler.clock import FakeClock
from autoscaler.config import SpecSet
from autoscaler.errors import PermanentError, RetryableError
from autoscaler.loop import ControlLoop
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
    return Backends()


def _loop(clock: FakeClock, backends: Backends, **settings: float) -> ControlLoop:
    return ControlLoop(
        clock,
        LoopSettings(**settings),
        create_producer=backends.create_producer,
        create_provider=backends.create_provider,
    )


def test_a_signal_change_resizes_the_group_in_the_same_pass(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends)
    loop.apply(_specs(node_group(replicas=2), schedule_producer(), autoscaler()))
    loop.run_once()
    assert backends.providers["g"].desired == 1  # 0 messages → minReplicas 1

    backends.producers["p"].value = 40
    clock.advance(15)  # the producer's next run
    loop.run_once()
    # HPA default scale-up policy: max(+4 pods, +100 %) per 15 s from 1 → 5.
    assert backends.providers["g"].desired == 5
    clock.advance(15)
    loop.run_once()
    assert backends.providers["g"].desired == 10


def test_scale_down_waits_for_the_stabilization_window(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends)
    producer = backends.create_producer(schedule_producer(), None)  # type: ignore[arg-type]
    producer.value = 40
    backends.create_provider(node_group(replicas=10), None)  # type: ignore[arg-type]
    loop.apply(_specs(node_group(replicas=10), schedule_producer(), autoscaler()))
    loop.run_once()
    assert backends.providers["g"].desired == 10

    producer.value = 8
    loop.run_until(clock() + 290, clock.set)
    assert backends.providers["g"].desired == 10  # held by the 300 s window
    loop.run_until(clock() + 30, clock.set)
    assert backends.providers["g"].desired == 2
    held = [d for d in loop.decisions.query() if d.limited_by == "stabilization"]
    assert held and held[-1].from_replicas == held[-1].to_replicas == 10


def test_a_failing_producer_never_causes_a_scale_down(clock: FakeClock, backends: Backends) -> None:
    loop = _loop(clock, backends)
    producer = backends.create_producer(schedule_producer(), None)  # type: ignore[arg-type]
    producer.value = 40
    backends.create_provider(node_group(replicas=10), None)  # type: ignore[arg-type]
    loop.apply(_specs(node_group(replicas=10), schedule_producer(), autoscaler()))
    loop.run_once()
    producer.error = RetryableError("queue service unavailable", code="ServiceUnavailable")
    loop.run_until(clock() + 900, clock.set)
    assert backends.providers["g"].desired == 10
    view = loop.autoscaler_view(loop.autoscalers["default/a"])
    active = next(c for c in view["status"]["conditions"] if c["type"] == "ScalingActive")
    assert active["status"] == "False"
    assert "queue service unavailable" in view["status"]["currentMetrics"][0]["error"]

    producer.error = None
    producer.value = 4
    loop.run_until(clock() + 400, clock.set)
    assert backends.providers["g"].desired == 1


def test_the_fallback_applies_after_the_failure_threshold(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends)
    producer = backends.create_producer(schedule_producer(), None)  # type: ignore[arg-type]
    producer.value = 4
    loop.apply(
        _specs(
            node_group(replicas=1),
            schedule_producer(),
            autoscaler(fallback={"failureThreshold": 3, "replicas": 7}),
        )
    )
    loop.run_once()
    producer.error = PermanentError("access denied", code="AccessDenied")
    loop.run_until(clock() + 31, clock.set)  # two failed runs: below the threshold
    assert backends.providers["g"].desired == 1
    loop.run_until(clock() + 15, clock.set)  # the third
    assert backends.providers["g"].desired == 5  # toward 7, limited by the scale-up policy
    loop.run_until(clock() + 15, clock.set)
    assert backends.providers["g"].desired == 7


def test_a_retryable_provider_error_keeps_the_desired_count_and_retries(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends, retry_initial_seconds=1, retry_max_seconds=8)
    producer = backends.create_producer(schedule_producer(), None)  # type: ignore[arg-type]
    producer.value = 12
    provider = backends.create_provider(node_group(replicas=3), None)  # type: ignore[arg-type]
    loop.apply(_specs(node_group(replicas=3), schedule_producer(), autoscaler()))
    provider.errors = [RetryableError("throttled", code="Throttling")] * 3
    loop.run_once()
    assert provider.desired == 3
    group = loop.node_groups["default/g"]
    assert group.desired == 3 and group.error is not None
    assert group.conditions.get("AbleToScale").status == "False"  # type: ignore[union-attr]
    loop.run_until(clock() + 20, clock.set)
    assert provider.desired == 3 and group.error is None
    producer.value = 20
    loop.run_until(clock() + 15, clock.set)
    assert provider.desired == 5


def test_the_node_groups_own_bounds_clamp_the_decision(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends)
    producer = backends.create_producer(schedule_producer(), None)  # type: ignore[arg-type]
    producer.value = 40
    backends.providers["g"] = provider = FakeProvider(desired=4, max_size=6)
    loop.apply(_specs(node_group(), schedule_producer(), autoscaler()))
    loop.run_until(clock() + 60, clock.set)
    assert provider.desired == 6
    assert max(provider.set_calls) == 6
    latest = loop.decisions.query(limit=10)
    assert any("node group bounds" in " ".join(d.reasons) for d in latest)


def test_producers_run_on_their_own_interval(clock: FakeClock, backends: Backends) -> None:
    loop = _loop(clock, backends)
    loop.apply(_specs(node_group(), schedule_producer(interval=10), autoscaler()))
    loop.run_until(clock() + 60, clock.set)
    calls = backends.producers["p"].calls
    assert len(calls) == 7
    assert [b - a for a, b in itertools.pairwise(calls)] == [10.0] * 6


def test_identical_evaluations_are_not_recorded_twice(clock: FakeClock, backends: Backends) -> None:
    loop = _loop(clock, backends)
    loop.apply(_specs(node_group(replicas=1), schedule_producer(), autoscaler()))
    loop.run_until(clock() + 120, clock.set)
    assert len(loop.decisions) == 1


def test_editing_an_autoscaler_keeps_its_history_and_removing_a_producer_drops_its_signals(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends)
    backends.create_producer(schedule_producer(), None).value = 40  # type: ignore[arg-type]
    loop.apply(_specs(node_group(replicas=10), schedule_producer(), autoscaler()))
    loop.run_once()
    history = loop.autoscalers["default/a"].history
    assert history.recommendations
    loop.apply(_specs(node_group(replicas=10), schedule_producer(), autoscaler(maxReplicas=30)))
    assert loop.autoscalers["default/a"].history == history

    loop.apply(_specs(node_group(replicas=10)))
    assert not loop.autoscalers
    assert list(loop.store.items()) == []


def test_the_node_group_view_shows_the_desired_count_as_spec_replicas(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends)
    backends.create_producer(schedule_producer(), None).value = 12  # type: ignore[arg-type]
    loop.apply(_specs(node_group(replicas=3), schedule_producer(), autoscaler()))
    loop.run_once()
    view = loop.node_group_view(loop.node_groups["default/g"])
    assert view["namespace"] == "default" and view["name"] == "g"
    assert view["spec"]["replicas"] == 3
    assert view["status"]["replicas"] == 3


class _DroppingRunner:
    """Runs work inline until ``hang`` is set, then drops it (a backend call that never ends)."""

    def __init__(self) -> None:
        self.hang = False

    def submit(self, work: object) -> None:
        if not self.hang:
            work()  # type: ignore[operator]

    def shutdown(self) -> None:
        return None


def test_a_hung_producers_signal_goes_stale_and_counts_toward_the_fallback(
    clock: FakeClock, backends: Backends
) -> None:
    runner = _DroppingRunner()
    loop = ControlLoop(
        clock,
        LoopSettings(),
        runner=runner,
        create_producer=backends.create_producer,
        create_provider=backends.create_provider,
    )
    backends.create_producer(schedule_producer(), None).value = 8  # type: ignore[arg-type]
    loop.apply(
        _specs(
            node_group(replicas=2),
            schedule_producer(),
            autoscaler(fallback={"failureThreshold": 2, "replicas": 4}),
        )
    )
    loop.run_once()
    runner.hang = True
    # Stale after 3 intervals + 30 s = 75 s; then two evaluations 15 s apart reach the threshold.
    loop.run_until(clock() + 74, clock.set)
    assert loop.autoscalers["default/a"].last.metrics[0].error is None  # type: ignore[union-attr]
    assert loop.node_groups["default/g"].desired == 2
    loop.run_until(clock() + 40, clock.set)
    last = loop.autoscalers["default/a"].last
    assert last is not None and "stale" in (last.metrics[0].error or "")
    assert loop.node_groups["default/g"].desired == 4


def test_the_autoscaler_view_status_loads_back_into_the_status_model(
    clock: FakeClock, backends: Backends
) -> None:
    from autoscaler.api.horizontalautoscaler import HorizontalAutoscalerStatus

    loop = _loop(clock, backends)
    backends.create_producer(schedule_producer(), None).value = 40  # type: ignore[arg-type]
    loop.apply(_specs(node_group(replicas=2), schedule_producer(), autoscaler()))
    loop.run_until(clock() + 30, clock.set)
    status = loop.autoscaler_view(loop.autoscalers["default/a"])["status"]
    parsed = HorizontalAutoscalerStatus.model_validate(status)
    assert parsed.desired_replicas == 10
    assert parsed.reasons and parsed.current_metrics[0].reason == "WithinTolerance"
    assert parsed.recommendations


def _at_zero_with_activation(clock: FakeClock, backends: Backends) -> ControlLoop:
    from tests.support import FakeProducer

    backends.producers["age"] = FakeProducer("queue_oldest_message_age_seconds")
    activation = [
        {"producer": {"name": "p", "metric": "queue_length"}, "above": 40},
        {"producer": {"name": "age", "metric": "queue_oldest_message_age_seconds"}, "above": 600},
    ]
    loop = _loop(clock, backends)
    specs = _specs(
        node_group(replicas=0),
        schedule_producer(),
        schedule_producer("age"),
        autoscaler(minReplicas=0, activation=activation, average_value=40),
    )
    loop.apply(specs)
    loop.run_once()
    return loop


def test_at_zero_a_small_queue_waits_until_its_oldest_item_reaches_the_age_threshold(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _at_zero_with_activation(clock, backends)
    backends.producers["p"].value = 5
    backends.producers["age"].value = 300
    clock.advance(15)
    loop.run_once()
    assert backends.providers["g"].desired == 0
    last = loop.autoscalers["default/a"].last
    assert last is not None and last.steps[-1].rule == "activation"

    backends.producers["age"].value = 601
    clock.advance(15)
    loop.run_once()
    assert backends.providers["g"].desired == 1  # ceil(5 / 40): the metric decides once active


def test_at_zero_a_queue_above_its_threshold_starts_nodes_at_once(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _at_zero_with_activation(clock, backends)
    backends.producers["p"].value = 200
    clock.advance(15)
    loop.run_once()
    assert backends.providers["g"].desired == 4  # ceil(200 / 40) = 5, HPA default step: 4 from 0


def test_a_running_group_below_the_activation_threshold_keeps_its_node_until_the_queue_is_empty(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _at_zero_with_activation(clock, backends)
    backends.producers["p"].value = 200
    clock.advance(15)
    loop.run_once()
    backends.producers["p"].value = 10  # below the threshold, still work to do
    for _ in range(30):  # past the default 300 s scale-down window
        clock.advance(15)
        loop.run_once()
    assert backends.providers["g"].desired == 1
    backends.producers["p"].value = 0
    for _ in range(30):
        clock.advance(15)
        loop.run_once()
    assert backends.providers["g"].desired == 0


def test_a_pass_returns_the_earliest_time_anything_is_due_next(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends, resync_seconds=30, node_group_sync_seconds=20)
    loop.apply(_specs(node_group(replicas=2), schedule_producer(interval=7), autoscaler()))
    start = clock()
    assert loop.run_once() == start + 7  # the producer's next run comes first
    clock.advance(7)
    assert loop.run_once() == start + 14
    loop.set_override("default/g", 3, actor="ops", reason="test", duration_seconds=2)
    assert loop.run_once() == clock() + 2  # then the override's expiry
    clock.advance(2)
    loop.run_once()  # the expired override's group is read again now
    loop.apply(_specs(node_group(replicas=2), autoscaler()))  # the producer is gone
    assert loop.run_once() == clock() + 20  # the node group's next read
