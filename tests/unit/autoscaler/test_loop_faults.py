"""The control loop under faults (fake clock, fake backends): malformed values from producers and
providers, error storms from a provider, a bug in one autoscaler's evaluation."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest

from autoscaler.api import (
    HorizontalAutoscaler,
    MetricsProducer,
    NodeGroupState,
    Observation,
    ScalableNodeGroup,
    Signal,
)
from autoscaler.clock import FakeClock
from autoscaler.config import SpecSet
from autoscaler.errors import RetryableError
from autoscaler.loop import ControlLoop
from autoscaler.metrics import Metrics
from autoscaler.settings import LoopSettings
from tests.support import Backends, FakeProvider, autoscaler, node_group, schedule_producer


def _specs(*objects: ScalableNodeGroup | MetricsProducer | HorizontalAutoscaler) -> SpecSet:
    specs = SpecSet()
    for o in objects:
        key = f"{o.metadata.namespace}/{o.metadata.name}"
        if isinstance(o, ScalableNodeGroup):
            specs.node_groups[key] = o
        elif isinstance(o, MetricsProducer):
            specs.producers[key] = o
        else:
            specs.autoscalers[key] = o
    return specs


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
        rng=random.Random(7),
        create_producer=backends.create_producer,
        create_provider=backends.create_provider,
    )


def _condition(view: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in view["status"]["conditions"] if c["type"] == kind)


def _at_ten(clock: FakeClock, backends: Backends, **spec: Any) -> ControlLoop:
    """A loop whose group was scaled to 10 by a queue of 40 (4 per node)."""
    loop = _loop(clock, backends)
    backends.create_producer(schedule_producer(), None).value = 40  # type: ignore[arg-type]
    backends.create_provider(node_group(replicas=10), None)  # type: ignore[arg-type]
    loop.apply(_specs(node_group(replicas=10), schedule_producer(), autoscaler(**spec)))
    loop.run_once()
    assert backends.providers["g"].desired == 10
    return loop


# --------------------------------------------------------------------------- bad signal values


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (math.nan, "NaN"),
        (math.inf, "infinite"),
        (-math.inf, "infinite"),
        (-3.0, "negative"),
        (1e300, "too large for its target"),
    ],
    ids=["NaN", "infinity", "minus infinity", "negative", "huge"],
)
def test_an_unusable_signal_value_fails_its_metric_and_never_scales_down(
    clock: FakeClock, backends: Backends, value: float, problem: str
) -> None:
    loop = _at_ten(clock, backends)
    backends.producers["p"].value = value
    loop.run_until(clock() + 900, clock.set)
    assert backends.providers["g"].desired == 10
    view = loop.autoscaler_view(loop.autoscalers["default/a"])
    assert problem in view["status"]["currentMetrics"][0]["error"]
    assert _condition(view, "ScalingActive")["status"] == "False"

    backends.producers["p"].value = 8  # a usable value again: scaling resumes
    loop.run_until(clock() + 400, clock.set)
    assert backends.providers["g"].desired == 2


def test_an_unusable_value_counts_toward_the_fallback(clock: FakeClock, backends: Backends) -> None:
    loop = _at_ten(clock, backends, fallback={"failureThreshold": 3, "replicas": 12})
    backends.producers["p"].value = math.nan
    loop.run_until(clock() + 31, clock.set)  # evaluations at +15 and +30: below the threshold
    assert backends.providers["g"].desired == 10
    loop.run_until(clock() + 15, clock.set)
    assert backends.providers["g"].desired == 12


class ShapelessProducer:
    """A buggy producer: returns whatever it is given instead of an Observation."""

    def __init__(self, result: object) -> None:
        self.result = result

    def observe(self, now: float) -> Any:
        return self.result


@pytest.mark.parametrize(
    "result",
    [
        None,
        {"queue_length": 3},
        Observation((Signal("queue_length", "3", 0.0),)),  # type: ignore[arg-type]
        Observation((Signal("queue_length", None, 0.0),)),  # type: ignore[arg-type]
        Observation(("queue_length",)),  # type: ignore[arg-type]
    ],
    ids=["None", "a dict", "a string value", "a missing value", "not a signal"],
)
def test_a_malformed_observation_is_a_producer_error_not_a_crash(
    clock: FakeClock, backends: Backends, result: object
) -> None:
    loop = _at_ten(clock, backends)
    loop.producers["default/p"].producer = ShapelessProducer(result)  # type: ignore[assignment]
    loop.run_until(clock() + 60, clock.set)
    producer = loop.producer_view(loop.producers["default/p"])
    assert producer["status"]["error"]["code"] == "InvalidObservation"
    assert backends.providers["g"].desired == 10  # the failed metric never scales down
    scrape = Metrics(loop).registry.collect()  # /metrics still renders
    assert any(family.name == "autoscaler_signal_value" for family in scrape)


# --------------------------------------------------------------------------- bad provider counts


class LyingProvider(FakeProvider):
    """Reports ``state`` while it is set, else behaves."""

    def __init__(self, desired: int) -> None:
        super().__init__(desired)
        self.state: object = None

    def get_replicas(self) -> NodeGroupState:
        if self.state is not None:
            return self.state  # type: ignore[return-value]
        return super().get_replicas()


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        (NodeGroupState(-1, 0), "desired -1 is not a count"),
        (NodeGroupState(3, -2), "ready -2 is not a count"),
        (NodeGroupState(3, 3, 5, 2), "minSize 5 is above maxSize 2"),
        (NodeGroupState(None, 3), "desired None is not a count"),  # type: ignore[arg-type]
        (NodeGroupState(2.5, 3), "desired 2.5 is not a count"),  # type: ignore[arg-type]
        ({"desired": 3}, "not a NodeGroupState"),
    ],
    ids=["negative desired", "negative ready", "min above max", "missing", "float", "a dict"],
)
def test_inconsistent_counts_from_a_provider_are_a_permanent_error_condition(
    clock: FakeClock, backends: Backends, state: object, problem: str
) -> None:
    loop = _loop(clock, backends)
    provider = LyingProvider(desired=2)
    provider.state = state
    backends.providers["g"] = provider
    backends.create_producer(schedule_producer(), None).value = 40  # type: ignore[arg-type]
    loop.apply(_specs(node_group(replicas=2), schedule_producer(), autoscaler()))
    loop.run_until(clock() + 60, clock.set)
    view = loop.node_group_view(loop.node_groups["default/g"])
    active = _condition(view, "Active")
    assert (active["status"], active["reason"]) == ("False", "InvalidNodeGroupState")
    assert problem in active["message"]
    assert provider.set_calls == [] or all(n >= 0 for n in provider.set_calls)

    provider.state = None  # sane again: the desired count the loop kept is applied
    loop.run_until(clock() + 60, clock.set)
    assert _condition(loop.node_group_view(loop.node_groups["default/g"]), "Active")["status"]
    assert provider.desired == 10


# --------------------------------------------------------------------------- error storms


class StormProvider(FakeProvider):
    """Fails every call with a throttling error until ``calm_at``; records each call's time."""

    def __init__(self, clock: FakeClock, desired: int, calm_at: float) -> None:
        super().__init__(desired)
        self.clock = clock
        self.calm_at = calm_at
        self.calls: list[float] = []

    def get_replicas(self) -> NodeGroupState:
        self.calls.append(self.clock())
        if self.clock() < self.calm_at:
            raise RetryableError("Rate exceeded", code="Throttling")
        return super().get_replicas()

    def set_replicas(self, replicas: int) -> None:
        self.calls.append(self.clock())
        if self.clock() < self.calm_at:
            raise RetryableError("Rate exceeded", code="Throttling")
        super().set_replicas(replicas)


def test_a_throttling_storm_is_retried_with_capped_jittered_backoff_at_a_bounded_rate(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends, retry_initial_seconds=1, retry_max_seconds=8)
    storm = 120.0
    provider = StormProvider(clock, desired=1, calm_at=clock() + storm)
    backends.providers["g"] = provider
    backends.create_producer(schedule_producer(), None).value = 40  # type: ignore[arg-type]
    loop.apply(_specs(node_group(replicas=1), schedule_producer(), autoscaler()))
    start = clock()
    loop.run_until(start + storm - 0.001, clock.set)

    calls = provider.calls
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    # Delays 0.5–1, 1–2, 2–4, then 4–8 s (half to all of the capped delay): at most 33 calls
    # in 120 s, at least one every 8 s; a loop without backoff would call at every pass.
    assert storm / 8 <= len(calls) <= 3 + 1 + (storm - 3.5) / 4
    assert max(gaps) <= 8.0
    assert len({round(g, 3) for g in gaps[4:]}) > 5  # jittered, not in lockstep
    view = loop.node_group_view(loop.node_groups["default/g"])
    assert _condition(view, "AbleToScale")["reason"] == "Throttling"
    active = [c for c in view["status"]["conditions"] if c["type"] == "Active"]
    assert all(c["status"] != "False" for c in active)  # transient: not marked inactive
    assert view["spec"]["replicas"] == 10  # the desired count is kept through the storm

    loop.run_until(clock() + 9, clock.set)  # the next retry after the storm applies it
    assert provider.desired == 10
    assert provider.set_calls[-1] == 10


# --------------------------------------------------------------------------- bugs


def test_a_bug_in_one_autoscalers_evaluation_leaves_the_others_running(
    clock: FakeClock, backends: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    import autoscaler.loop as loop_module

    real = loop_module.decide_for

    def broken_for_b(spec: Any) -> Any:
        if spec.scale_target_ref.name == "h":
            raise ZeroDivisionError("a bug")
        return real(spec)

    monkeypatch.setattr(loop_module, "decide_for", broken_for_b)
    loop = _loop(clock, backends)
    backends.create_producer(schedule_producer(), None).value = 40  # type: ignore[arg-type]
    loop.apply(
        _specs(
            node_group("g", replicas=1),
            node_group("h", replicas=1),
            schedule_producer(),
            autoscaler("a", target="g"),
            autoscaler("b", target="h"),
        )
    )
    loop.run_until(clock() + 30, clock.set)
    assert backends.providers["g"].desired == 10
    assert backends.providers["h"].desired == 1
    active = _condition(loop.autoscaler_view(loop.autoscalers["default/b"]), "ScalingActive")
    assert (active["status"], active["reason"]) == ("False", "InternalError")
    assert "ZeroDivisionError: a bug" in active["message"]
