"""The dashboard's time series: bounded, sampled cheaply, read incrementally."""

from __future__ import annotations

import threading
import time

import pytest

from autoscaler.clock import FakeClock
from autoscaler.config import SpecSet
from autoscaler.history import History, HistorySampler
from autoscaler.loop import ControlLoop
from tests.support import Backends, autoscaler, node_group, schedule_producer


def _specs(count: int = 1) -> SpecSet:
    groups = {f"default/g{i}": node_group(f"g{i}", replicas=2) for i in range(count)}
    producers = {f"default/p{i}": schedule_producer(f"p{i}") for i in range(count)}
    autoscalers = {
        f"default/a{i}": autoscaler(f"a{i}", target=f"g{i}", producers=(f"p{i}",))
        for i in range(count)
    }
    return SpecSet(node_groups=groups, producers=producers, autoscalers=autoscalers)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backends() -> Backends:
    return Backends()


def _loop(clock: FakeClock, backends: Backends, count: int = 1) -> ControlLoop:
    loop = ControlLoop(
        clock, create_producer=backends.create_producer, create_provider=backends.create_provider
    )
    loop.apply(_specs(count))
    loop.run_once()
    return loop


def test_a_sample_records_desired_current_and_ready_replicas_and_each_metric(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends)
    backends.producers["p0"].value = 20  # AverageValue 4 per node → 5 nodes
    clock.advance(15)
    loop.run_once()
    history = History(clock)

    seq = history.sample(loop)

    [(key, target, [point])] = history.autoscalers()
    assert (key, target, point.seq, point.time) == ("default/a0", "default/g0", seq, clock())
    assert (point.desired, point.ready, point.min_replicas, point.max_replicas) == (5, 5, 1, 20)
    [metric] = point.metrics
    assert (metric.value, metric.target_type, metric.target) == (20, "AverageValue", 4)
    assert metric.target_level == 4 * point.current  # the level at which the count is right
    [(group, [group_point])] = history.node_groups()
    assert (group, group_point.desired, group_point.ready) == ("default/g0", 5, 5)


def test_points_between_two_evaluations_share_their_metrics(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends)
    history = History(clock)
    history.sample(loop)
    clock.advance(5)
    history.sample(loop)  # no evaluation in between
    backends.producers["p0"].value = 9
    clock.advance(15)
    loop.run_once()
    history.sample(loop)
    [(_, _, [first, second, third])] = history.autoscalers()
    assert second.metrics is first.metrics
    assert third.metrics[0].value == 9


def test_a_series_keeps_at_most_the_retention_and_drops_older_points(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends)
    history = History(clock, interval_seconds=5, retention_seconds=60)
    for _ in range(40):
        history.sample(loop)
        clock.advance(5)
    [(_, _, points)] = history.autoscalers()
    assert len(points) == history.max_points == 13
    assert points[0].time >= points[-1].time - 60
    clock.advance(600)  # a long pause (the clock jumped): old points expire by time too
    history.sample(loop)
    [(_, _, points)] = history.autoscalers()
    assert len(points) == 1


def test_reading_after_a_sequence_number_returns_only_the_newer_points(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends)
    history = History(clock)
    seqs = []
    for _ in range(4):
        seqs.append(history.sample(loop))
        clock.advance(5)
    [(_, _, newer)] = history.autoscalers(after=seqs[1])
    assert [p.seq for p in newer] == seqs[2:]
    [(_, nothing)] = history.node_groups(after=history.version)
    assert nothing == []


def test_a_deleted_autoscaler_loses_its_series_at_the_next_sample(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends, count=2)
    history = History(clock)
    history.sample(loop)
    assert [k for k, _, _ in history.autoscalers()] == ["default/a0", "default/a1"]
    specs = _specs(2)
    del specs.autoscalers["default/a1"], specs.node_groups["default/g1"]
    loop.apply(specs)
    history.sample(loop)
    assert [k for k, _, _ in history.autoscalers()] == ["default/a0"]
    assert [k for k, _ in history.node_groups()] == ["default/g0"]
    assert not history.has_autoscaler("default/a1")


def test_an_autoscaler_that_has_not_decided_yet_has_points_without_values(
    clock: FakeClock,
) -> None:
    loop = ControlLoop(clock)
    loop.apply(_specs())  # not run: no decision, the node group not read
    history = History(clock)
    history.sample(loop)
    [(_, _, [point])] = history.autoscalers()
    assert (point.desired, point.current, point.ready, point.metrics) == (None, None, None, ())


def test_sampling_many_autoscalers_holds_the_loop_lock_only_briefly(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends, count=300)
    history = History(clock)
    held: list[float] = []
    original = loop.lock

    class TimedLock:
        def __enter__(self) -> None:
            original.acquire()
            self.started = time.perf_counter()

        def __exit__(self, *_: object) -> None:
            held.append(time.perf_counter() - self.started)
            original.release()

        def wait_for_foreground(self, timeout: float) -> None:
            original.wait_for_foreground(timeout)

    loop.lock = TimedLock()  # type: ignore[assignment]
    history.sample(loop)
    assert len(history.autoscalers()) == 300
    assert held and held[0] < 0.05  # copies references only; typically well under 1 ms


def test_readers_never_see_a_sample_that_is_still_being_recorded(
    clock: FakeClock, backends: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sampling lets requests in between chunks; what they read meanwhile is the last
    published sample, whole: no point of the new sample, no value recorded for it."""
    loop = _loop(clock, backends, count=2500)  # several chunks
    history = History(clock)
    first = history.sample(loop)
    before_a = history.autoscalers()
    before_g = history.node_groups()
    for i in range(2500):
        backends.producers[f"p{i}"].value = 20  # every autoscaler and group changes
    clock.advance(15)
    loop.run_once()
    clock.advance(15)
    loop.run_once()
    seen: list[bool] = []

    def reader(timeout: float) -> None:  # runs between the chunks of the sample
        assert history.version == first
        seen.append(history.autoscalers() == before_a and history.node_groups() == before_g)

    monkeypatch.setattr(loop.lock, "wait_for_foreground", reader)
    second = history.sample(loop)
    assert len(seen) == 12 and all(seen)  # 3 chunks each: copy groups, autoscalers; record
    assert second == first + 1
    after = {key: points for key, _, points in history.autoscalers()}
    assert after["default/a7"][-1].desired == 5 and after["default/a7"][0].desired == 1


def test_deleted_objects_leave_the_history_at_the_next_sample(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends, count=3)
    history = History(clock)
    history.sample(loop)
    loop.apply(_specs(2))
    loop.run_once()
    history.sample(loop)
    assert [key for key, _, _ in history.autoscalers()] == ["default/a0", "default/a1"]
    assert [key for key, _ in history.node_groups()] == ["default/g0", "default/g1"]
    loop.apply(_specs(3))
    loop.run_once()
    history.sample(loop)
    assert len(history.autoscalers()) == 3 and len(history.node_groups()) == 3


def test_the_sampler_samples_at_once_then_on_its_interval_and_stops_promptly(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends)
    history = History(clock, interval_seconds=0.05)
    sampler = HistorySampler(history, loop)
    sampler.start()
    deadline = time.monotonic() + 5
    while history.version < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    sampler.stop()
    assert history.version >= 3
    assert time.monotonic() - started < 1
    assert not any(t.name == "history-sampler" for t in threading.enumerate())


@pytest.mark.parametrize(
    ("interval", "retention"), [(0, 3600), (5, 0), (-1, 10)], ids=["interval", "retention", "neg"]
)
def test_a_history_needs_a_positive_interval_and_retention(
    clock: FakeClock, interval: float, retention: float
) -> None:
    with pytest.raises(ValueError):
        History(clock, interval_seconds=interval, retention_seconds=retention)


def test_samples_taken_at_once_from_two_threads_get_their_own_sequence_numbers(
    clock: FakeClock, backends: Backends
) -> None:
    loop = _loop(clock, backends, count=2500)
    history = History(clock)
    seqs: list[int] = []
    threads = [threading.Thread(target=lambda: seqs.append(history.sample(loop))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(seqs) == [1, 2, 3, 4]
    [(_, _, points)] = history.autoscalers(["default/a0"])
    assert [p.seq for p in points] == [1, 2, 3, 4]
