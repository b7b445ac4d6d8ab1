"""The state file: a restart continues the windows, rate limits, PID and forecasts (fake clock)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from autoscaler.api import HorizontalAutoscaler, MetricsProducer, ScalableNodeGroup
from autoscaler.clock import FakeClock
from autoscaler.config import SpecSet
from autoscaler.loop import ControlLoop
from autoscaler.settings import LoopSettings
from autoscaler.state import StateStore
from tests.support import Backends, autoscaler, node_group, schedule_producer


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


class Process:
    """One run of the service: a loop with fresh fakes (a restarted process forgets them)."""

    def __init__(self, clock: FakeClock, path: Path, **spec: Any) -> None:
        self.clock = clock
        self.backends = Backends()
        self.loop = ControlLoop(
            clock,
            LoopSettings(),
            create_producer=self.backends.create_producer,
            create_provider=self.backends.create_provider,
        )
        self.store = StateStore(path, clock)
        self.spec = spec

    def start(self, value: float, restore: bool = True) -> Process:
        self.backends.create_producer(schedule_producer(), None).value = value  # type: ignore[arg-type]
        if restore:
            self.loop.restore(self.store.load())
        self.loop.apply(
            _specs(node_group(replicas=1), schedule_producer(), autoscaler(**self.spec))
        )
        self.loop.run_once()
        return self

    @property
    def desired(self) -> int:
        return self.backends.providers["g"].desired

    def set_value(self, value: float) -> None:
        self.backends.producers["p"].value = value

    def run_for(self, seconds: float) -> None:
        self.loop.run_until(self.clock() + seconds, self.clock.set)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state.json"


def test_a_restart_keeps_the_scale_down_window_measured_from_before_the_restart(
    clock: FakeClock, path: Path
) -> None:
    first = Process(clock, path).start(value=40)
    first.run_for(30)
    assert first.desired == 10
    first.set_value(8)  # wants 2 from the producer's next run (t = 45); 300 s window
    first.run_for(100)
    assert first.desired == 10
    assert first.store.save(first.loop)

    second = Process(clock, path).start(value=8)  # its group starts at spec.replicas (1)
    assert second.desired == 10  # the saved desired count, not 1 and not 2
    second.run_for(210)  # t = 340: 295 s after the drop
    assert second.desired == 10
    second.run_for(20)  # t = 360: the evaluation at 355 is 310 s after the drop
    assert second.desired == 2


def test_without_the_state_file_a_restart_forgets_the_window(clock: FakeClock, path: Path) -> None:
    first = Process(clock, path).start(value=40)
    first.run_for(30)
    first.set_value(8)
    first.run_for(100)
    second = Process(clock, path).start(value=8, restore=False)
    assert second.desired == 2


def test_a_restart_keeps_the_rate_limit_period_of_the_last_scale_up(
    clock: FakeClock, path: Path
) -> None:
    first = Process(clock, path).start(value=40)
    assert first.desired == 5  # 1 → 5: +4 pods per 15 s
    first.store.save(first.loop)
    clock.advance(3)

    second = Process(clock, path).start(value=40)
    assert second.desired == 5  # 4 pods were added 3 s ago: no more until 15 s have passed
    second.run_for(11)  # t = 14
    assert second.desired == 5
    second.run_for(5)  # the evaluation at t = 18
    assert second.desired == 10


@pytest.mark.parametrize(
    "algorithm",
    [
        {"type": "PID", "pid": {"kp": 0.5, "ki": 0.05}},
        {"predictive": {"horizonSeconds": 60, "method": "Trend"}},
        {"type": "PID", "predictive": {"horizonSeconds": 60}},
    ],
    ids=["PID", "predictive", "PID with predictive"],
)
def test_pid_and_forecast_state_come_back_unchanged(
    clock: FakeClock, path: Path, algorithm: dict[str, Any]
) -> None:
    first = Process(clock, path, algorithm=algorithm).start(value=10)
    for value in (14, 20, 24, 30):
        first.set_value(value)
        first.run_for(15)
    before = first.loop.autoscalers["default/a"]
    assert before.history.pid is not None or before.history.forecasts
    first.store.save(first.loop)

    second = Process(clock, path, algorithm=algorithm)
    second.loop.restore(second.store.load())
    second.loop.apply(_specs(node_group(replicas=1), schedule_producer(), autoscaler(**first.spec)))
    after = second.loop.autoscalers["default/a"]
    assert after.history == before.history
    assert after.last_scale_time == before.last_scale_time


def test_node_group_counts_are_not_restored_when_stale_or_when_spec_replicas_was_edited(
    clock: FakeClock, path: Path
) -> None:
    first = Process(clock, path).start(value=40)
    first.run_for(30)
    first.store.save(first.loop)
    saved = json.loads(path.read_text())
    assert saved["nodeGroups"]["default/g"] == {"desiredReplicas": 10, "specReplicas": 1}

    clock.advance(601)  # older than max_age_seconds (600)
    stale = StateStore(path, clock).load()
    assert stale.node_groups == {}
    assert "default/a" in stale.autoscalers  # history is kept: its records carry their times

    clock.set(clock() - 601)
    edited = Process(clock, path)
    edited.loop.restore(edited.store.load())
    edited.loop.apply(_specs(node_group(replicas=3)))
    assert edited.loop.node_groups["default/g"].desired == 3  # the operator's edit wins


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"version": 99}',
        '{"version": 1, "autoscalers": "nope", "nodeGroups": 7}',
        "\udcff".encode("utf-8", "surrogatepass").decode("latin-1"),
        "[" * 100_000,
    ],
    ids=["not JSON", "a list", "another version", "wrong shapes", "not UTF-8", "deep nesting"],
)
def test_a_corrupt_state_file_is_logged_and_ignored(
    clock: FakeClock, path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    path.write_bytes(content.encode("latin-1"))
    with caplog.at_level(logging.INFO, logger="autoscaler.state"):
        process = Process(clock, path).start(value=40)
    assert process.desired == 5  # started normally
    assert str(path) in caplog.text


def test_a_bad_entry_is_left_out_and_the_others_are_restored(
    clock: FakeClock, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = Process(clock, path).start(value=40)
    first.store.save(first.loop)
    document = json.loads(path.read_text())
    document["autoscalers"]["default/broken"] = {"recommendations": [{"time": "soon"}]}
    document["nodeGroups"]["default/broken"] = {"desiredReplicas": -3}
    path.write_text(json.dumps(document))
    with caplog.at_level(logging.WARNING, logger="autoscaler.state"):
        saved = StateStore(path, clock).load()
    assert set(saved.autoscalers) == {"default/a"}
    assert set(saved.node_groups) == {"default/g"}
    assert "autoscaler default/broken left out" in caplog.text
    assert "node group default/broken left out" in caplog.text


def test_an_unreadable_state_file_is_ignored(clock: FakeClock, tmp_path: Path) -> None:
    folder = tmp_path / "state.json"
    folder.mkdir()  # reading a folder fails
    process = Process(clock, folder).start(value=40)
    assert process.desired == 5


def test_writes_are_debounced_and_skipped_when_nothing_changed(
    clock: FakeClock, path: Path
) -> None:
    process = Process(clock, path).start(value=4)
    store, loop = process.store, process.loop
    store.maybe_save(loop)
    assert store.writes == 1
    clock.advance(0.2)
    loop.autoscalers["default/a"].dirty = True
    loop.run_once()  # an evaluation: the history changed
    due = store.maybe_save(loop)  # changed, but written 0.2 s ago
    assert store.writes == 1
    assert due == pytest.approx(clock() + 0.8)
    clock.advance(0.8)
    store.maybe_save(loop)
    assert store.writes == 2
    clock.advance(5)
    store.maybe_save(loop)  # nothing changed since
    assert store.writes == 2


def test_a_write_replaces_the_file_atomically_and_leaves_no_temporary_files(
    clock: FakeClock, path: Path
) -> None:
    path.write_text("old content")
    process = Process(clock, path).start(value=40)
    assert process.store.save(process.loop)
    assert json.loads(path.read_text())["version"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_a_failed_write_is_logged_once_and_never_raises(
    clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "missing-folder" / "state.json"
    process = Process(clock, path).start(value=40)
    with caplog.at_level(logging.ERROR, logger="autoscaler.state"):
        assert not process.store.save(process.loop)
        assert not process.store.save(process.loop)
    assert caplog.text.count("cannot write the state file") == 1
