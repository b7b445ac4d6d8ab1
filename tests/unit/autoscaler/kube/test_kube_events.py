"""Events: correlation like client-go's EventRecorder (fake clock), sending, and decisions."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.clock import FakeClock
from autoscaler.decisions import DecisionRecord
from autoscaler.errors import NotFoundError, RetryableError
from autoscaler.kube.events import (
    AGGREGATE_PREFIX,
    Event,
    EventCorrelator,
    EventRecorder,
    ObjectRef,
    decision_event,
)

REF = ObjectRef("autoscaler.dev/v1alpha1", "HorizontalAutoscaler", "default", "web", "uid-1", "7")
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
OTHER = ObjectRef("autoscaler.dev/v1alpha1", "HorizontalAutoscaler", "default", "db", "uid-2")


def event(message: str, at: float, ref: ObjectRef = REF, reason: str = "ScaledUp") -> Event:
    return Event(ref, "Normal", reason, message, at)


class FakeSink:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.patched: list[tuple[str, dict[str, Any]]] = []
        self.gone: set[str] = set()
        self.fail = False

    def create(self, namespace: str, body: dict[str, Any]) -> None:
        if self.fail:
            raise RetryableError("503", code="ServiceUnavailable")
        self.created.append(body)

    def patch(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        if name in self.gone:
            raise NotFoundError("gone", code="NotFound")
        self.patched.append((name, body))


# --------------------------------------------------------------------------- correlation


def test_a_new_event_is_created_with_count_one() -> None:
    emission = EventCorrelator().correlate(event("1 → 2", 100.0))
    assert emission is not None
    assert (emission.action, emission.count, emission.message) == ("create", 1, "1 → 2")
    assert emission.name.startswith("web.")


def test_a_repeated_event_patches_the_first_one_with_a_higher_count() -> None:
    correlator = EventCorrelator()
    first = correlator.correlate(event("same", START))
    second = correlator.correlate(event("same", START + 60))
    assert first is not None and second is not None
    assert (second.action, second.name, second.count) == ("patch", first.name, 2)
    assert second.patch() == {
        "count": 2,
        "lastTimestamp": "2026-01-01T00:01:00Z",
        "message": "same",
    }
    assert second.first_time == START


def test_events_of_other_objects_or_reasons_are_kept_apart() -> None:
    correlator = EventCorrelator()
    a = correlator.correlate(event("m", 1.0))
    b = correlator.correlate(event("m", 2.0, ref=OTHER))
    c = correlator.correlate(event("m", 3.0, reason="ScaledDown"))
    assert a is not None and b is not None and c is not None
    assert {a.action, b.action, c.action} == {"create"}
    assert len({a.name, b.name, c.name}) == 3


def test_many_similar_events_are_combined_into_one() -> None:
    correlator = EventCorrelator()
    emissions = [correlator.correlate(event(f"1 → {n}", float(n))) for n in range(2, 14)]
    assert all(e is not None for e in emissions)
    actions = [e.action for e in emissions if e is not None]
    assert actions[:9] == ["create"] * 9  # nine distinct messages are nine events
    combined = emissions[8 + 1]  # the tenth distinct message
    assert combined is not None and combined.message == AGGREGATE_PREFIX + "1 → 11"
    assert combined.action == "create"
    later = emissions[-1]
    assert later is not None
    assert (later.action, later.name, later.count) == ("patch", combined.name, 3)
    assert later.message == AGGREGATE_PREFIX + "1 → 13"


def test_similar_events_far_apart_are_not_combined() -> None:
    correlator = EventCorrelator()
    emissions = [correlator.correlate(event(f"m{n}", n * 700.0)) for n in range(15)]
    assert all(e is not None and not e.message.startswith(AGGREGATE_PREFIX) for e in emissions)


def test_the_spam_filter_allows_a_burst_then_one_event_per_refill_period() -> None:
    correlator = EventCorrelator(burst=3, refill_seconds=300, threshold=1000)
    results = [correlator.correlate(event(f"m{n}", 10.0)) for n in range(5)]
    assert [r is not None for r in results] == [True, True, True, False, False]
    assert correlator.correlate(event("later", 10.0 + 299)) is None
    assert correlator.correlate(event("later2", 10.0 + 301)) is not None


def test_repeats_dropped_by_the_spam_filter_still_count() -> None:
    correlator = EventCorrelator(burst=1, refill_seconds=100)
    first = correlator.correlate(event("same", 0.0))
    assert correlator.correlate(event("same", 1.0)) is None
    assert correlator.correlate(event("same", 2.0)) is None
    third = correlator.correlate(event("same", 101.0))
    assert first is not None and third is not None
    assert (third.action, third.count) == ("patch", 4)


def test_the_spam_filter_keeps_warnings_apart_from_normal_events() -> None:
    correlator = EventCorrelator(burst=1, refill_seconds=300)
    assert correlator.correlate(event("a", 0.0)) is not None
    warning = Event(REF, "Warning", "NodeGroupError", "boom", 0.0)
    assert correlator.correlate(warning) is not None


def test_long_messages_are_cut() -> None:
    emission = EventCorrelator().correlate(event("x" * 5000, 0.0))
    assert emission is not None and len(emission.message) == 1024


def test_the_created_event_names_the_object_reason_and_reporter() -> None:
    emission = EventCorrelator().correlate(event("1 → 2: why", START))
    assert emission is not None
    body = emission.body("node-autoscaler", "pod-a")
    assert body["involvedObject"] == {
        "apiVersion": "autoscaler.dev/v1alpha1",
        "kind": "HorizontalAutoscaler",
        "namespace": "default",
        "name": "web",
        "uid": "uid-1",
        "resourceVersion": "7",
    }
    assert body["type"] == "Normal" and body["reason"] == "ScaledUp"
    assert body["count"] == 1
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-01-01T00:00:00Z"
    assert body["source"] == {"component": "node-autoscaler"}
    assert body["reportingInstance"] == "pod-a"


# --------------------------------------------------------------------------- sending


def recorder(
    sink: FakeSink, clock: FakeClock, leading: list[bool] | None = None
) -> tuple[EventRecorder, list[str]]:
    results: list[str] = []
    state = leading if leading is not None else [True]
    rec = EventRecorder(
        sink, clock, instance="pod-a", can_send=lambda: state[0], on_result=results.append
    )
    return rec, results


def test_the_recorder_creates_then_patches_repeats() -> None:
    sink, clock = FakeSink(), FakeClock()
    rec, results = recorder(sink, clock)
    rec.event(REF, "Normal", "ScaledUp", "1 → 2")
    clock.advance(30)
    rec.event(REF, "Normal", "ScaledUp", "1 → 2")
    assert rec.flush() == 2
    assert len(sink.created) == 1 and sink.patched[0][1]["count"] == 2
    assert results == ["created", "patched"]


def test_a_repeat_of_an_event_that_expired_creates_it_again() -> None:
    sink, clock = FakeSink(), FakeClock()
    rec, results = recorder(sink, clock)
    rec.event(REF, "Normal", "ScaledUp", "1 → 2")
    rec.flush()
    sink.gone.add(sink.created[0]["metadata"]["name"])
    rec.event(REF, "Normal", "ScaledUp", "1 → 2")
    rec.flush()
    assert len(sink.created) == 2 and sink.created[1]["count"] == 2
    assert results == ["created", "created"]


def test_only_the_leader_sends_events() -> None:
    sink, clock = FakeSink(), FakeClock()
    leading = [False]
    rec, results = recorder(sink, clock, leading)
    rec.event(REF, "Normal", "ScaledUp", "1 → 2")
    rec.flush()
    assert sink.created == [] and results == ["dropped"]
    leading[0] = True
    rec.event(REF, "Normal", "ScaledUp", "1 → 2")
    rec.flush()
    assert len(sink.created) == 1


def test_a_failed_send_is_counted_and_the_next_repeat_is_created_afresh() -> None:
    sink, clock = FakeSink(), FakeClock()
    rec, results = recorder(sink, clock)
    sink.fail = True
    rec.event(REF, "Warning", "NodeGroupError", "boom")
    rec.flush()
    sink.fail = False
    rec.event(REF, "Warning", "NodeGroupError", "boom")
    rec.flush()
    assert results == ["failed", "created"]


def test_a_full_queue_drops_events_without_blocking() -> None:
    sink, clock = FakeSink(), FakeClock()
    results: list[str] = []
    rec = EventRecorder(sink, clock, instance="a", max_queue=2, on_result=results.append)
    for n in range(4):
        rec.event(REF, "Normal", "ScaledUp", f"m{n}")
    assert results == ["dropped", "dropped"]
    assert rec.flush() == 2


def test_the_background_thread_sends_what_was_queued_before_stopping() -> None:
    sink, clock = FakeSink(), FakeClock()
    rec, _ = recorder(sink, clock)
    rec.start()
    rec.event(REF, "Normal", "ScaledUp", "1 → 2")
    rec.stop(timeout=5)
    assert len(sink.created) == 1 and not rec.alive


# --------------------------------------------------------------------------- decisions


def record(
    from_: int, to: int, direction: str, recommendation: int | None, limited_by: str | None
) -> DecisionRecord:
    return DecisionRecord(
        seq=1,
        time=0.0,
        autoscaler="default/web",
        node_group="default/workers",
        from_replicas=from_,
        to_replicas=to,
        recommendation=recommendation,
        limited_by=limited_by,
        reasons=("queue=40 target AverageValue 10 → 4 replicas", "policy limits 8 → 4"),
        direction=direction,
    )


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        pytest.param(
            record(2, 4, "up", 4, "averageValue"),
            (
                "Normal",
                "ScaledUp",
                "default/workers: 2 → 4: queue=40 target AverageValue 10 → 4 replicas; "
                "policy limits 8 → 4",
            ),
            id="up",
        ),
        pytest.param(
            record(4, 2, "down", 2, "averageValue"),
            ("Normal", "ScaledDown", None),
            id="down",
        ),
        pytest.param(
            record(4, 4, "none", 1, "stabilization"),
            ("Normal", "ScalingLimited", None),
            id="held by a rule",
        ),
    ],
)
def test_a_decision_becomes_an_event_with_its_reason_and_why(
    decision: DecisionRecord, expected: tuple[str, str, str | None]
) -> None:
    result = decision_event(decision)
    assert result is not None
    type_, reason, message = result
    assert (type_, reason) == expected[:2]
    if expected[2] is not None:
        assert message == expected[2]
    assert "policy limits 8 → 4" in message
    assert f"{decision.from_replicas} → {decision.to_replicas}" in message or (
        f"stays at {decision.to_replicas} (recommended 1, limited by stabilization)" in message
    )


def test_a_decision_that_changes_nothing_and_was_not_held_makes_no_event() -> None:
    assert decision_event(record(4, 4, "none", 4, "tolerance")) is None
    assert decision_event(record(4, 4, "none", None, "metrics")) is None
