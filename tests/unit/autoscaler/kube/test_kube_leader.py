"""Leader election on a fake clock against an in-memory Lease with resourceVersion conflicts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoscaler.clock import FakeClock
from autoscaler.errors import AutoscalerError, RetryableError
from autoscaler.kube.leader import LeaderElector, LeaseRecord, default_identity, record_from_lease


class FakeLeaseStore:
    """One Lease in memory: create fails when it exists, update when the version is stale."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.errors: list[AutoscalerError] = []
        self.update_errors: list[AutoscalerError] = []
        self.writes: list[LeaseRecord] = []

    def _fail(self) -> None:
        if self.errors:
            raise self.errors.pop(0)

    def _store(self, record: LeaseRecord) -> LeaseRecord:
        self.version += 1
        self.record = replace(record, resource_version=str(self.version))
        self.writes.append(self.record)
        return self.record

    def get(self) -> LeaseRecord | None:
        self._fail()
        return self.record

    def create(self, record: LeaseRecord) -> LeaseRecord:
        self._fail()
        if self.record is not None:
            raise RetryableError("leases exists", code="AlreadyExists")
        return self._store(record)

    def update(self, record: LeaseRecord) -> LeaseRecord:
        self._fail()
        if self.update_errors:
            raise self.update_errors.pop(0)
        assert self.record is not None
        if record.resource_version != self.record.resource_version:
            raise RetryableError("leases changed", code="Conflict")
        return self._store(record)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> FakeLeaseStore:
    return FakeLeaseStore()


def elector(store: FakeLeaseStore, clock: FakeClock, name: str) -> LeaderElector:
    return LeaderElector(
        store,
        name,
        clock,
        lease_duration_seconds=15,
        renew_deadline_seconds=10,
        renew_seconds=5,
        retry_seconds=2,
    )


def test_the_first_candidate_creates_the_lease_and_leads(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a = elector(store, clock, "a")
    next_due = a.step()
    assert a.is_leader
    assert store.record is not None and store.record.holder == "a"
    assert store.record.duration_seconds == 15
    assert store.record.acquire_time == store.record.renew_time == clock()
    assert next_due == clock() + 5


def test_a_standby_does_not_take_a_lease_that_is_being_renewed(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    a.step()
    for _ in range(10):  # 50 s of renewals every 5 s; b tries every 2 s in between
        assert b.step() == clock() + 2
        clock.advance(2.5)
        b.step()
        clock.advance(2.5)
        a.step()
        assert a.is_leader and not b.is_leader
    assert store.record is not None and store.record.holder == "a"
    assert store.record.transitions == 0


def test_the_leader_renews_the_lease_keeping_its_acquire_time(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a = elector(store, clock, "a")
    a.step()
    acquired = clock()
    clock.advance(5)
    a.step()
    assert store.record is not None
    assert store.record.renew_time == clock() and store.record.acquire_time == acquired
    assert a.is_leader


def test_a_standby_acquires_once_the_lease_has_not_changed_for_its_duration(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    a.step()
    b.step()  # b observes a's record now
    clock.advance(14.9)  # a is dead: no renewals
    b.step()
    assert not b.is_leader
    clock.advance(0.2)
    b.step()
    assert b.is_leader
    assert store.record is not None and store.record.holder == "b"
    assert store.record.transitions == 1


def test_expiry_counts_from_when_the_standby_saw_the_record_not_from_its_renew_time(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    """A renewTime written by a machine with a skewed clock must not shorten the wait."""
    store.record = LeaseRecord("a", 15, 0.0, 0.0, 0, resource_version="7")  # ancient renewTime
    b = elector(store, clock, "b")
    b.step()
    assert not b.is_leader
    clock.advance(15.1)
    b.step()
    assert b.is_leader


def test_a_leader_that_cannot_renew_stops_leading_at_the_renew_deadline(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    stopped: list[str] = []
    a = elector(store, clock, "a")
    a.on_stopped_leading = lambda: stopped.append("a")
    a.step()
    store.errors = [RetryableError("503", code="ServiceUnavailable")] * 10
    clock.advance(5)
    a.step()
    clock.advance(4.9)
    assert a.is_leader  # 9.9 s since the last renewal
    clock.advance(0.2)
    assert not a.is_leader  # is_leader turns False by itself at the deadline
    a.step()
    assert stopped == ["a"]


def test_the_leader_stops_before_any_standby_can_take_over(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    a.step()
    b.step()
    renewed = clock()
    # a is cut off from the API; it stops at renewed + 10, b can acquire at renewed + 15
    clock.advance(10.0)
    assert not a.is_leader
    clock.advance(4.9)
    b.step()
    assert not b.is_leader
    clock.set(renewed + 15.1)
    b.step()
    assert b.is_leader and not a.is_leader


def test_a_deposed_leader_stops_acting_when_it_sees_another_holder(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    stopped: list[str] = []
    a = elector(store, clock, "a")
    a.on_stopped_leading = lambda: stopped.append("a")
    a.step()
    assert store.record is not None
    # Someone else took the Lease (a was partitioned long enough, say).
    store.record = replace(store.record, holder="b", resource_version="99")
    a.step()
    assert not a.is_leader
    assert stopped == ["a"]


def test_a_renewal_that_conflicts_deposes_the_leader_at_once(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a = elector(store, clock, "a")
    a.step()
    store.update_errors = [RetryableError("changed", code="Conflict")]
    clock.advance(5)
    a.step()
    assert not a.is_leader  # well before its renew deadline


def test_a_renewal_that_fails_otherwise_keeps_leading_until_the_deadline(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a = elector(store, clock, "a")
    a.step()
    store.update_errors = [RetryableError("timeout", code="ConnectionError")]
    clock.advance(5)
    assert a.step() == clock() + 2  # retried sooner than the renew period
    assert a.is_leader
    clock.advance(2)
    a.step()
    assert a.is_leader


def test_two_candidates_racing_for_an_expired_lease_cannot_both_win(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a, b, c = (elector(store, clock, n) for n in "abc")
    a.step()
    b.step()
    c.step()
    clock.advance(16)
    # b and c read the same expired record; b writes first, c's write carries a stale version
    record = store.get()
    original_get = store.get
    store.get = lambda: record  # type: ignore[method-assign]
    b.step()
    c.step()
    store.get = original_get  # type: ignore[method-assign]
    assert b.is_leader and not c.is_leader
    assert store.record is not None and store.record.holder == "b"


def test_release_on_graceful_shutdown_lets_a_standby_take_over_at_its_next_attempt(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    a.step()
    b.step()
    assert a.release()
    assert not a.is_leader
    assert store.record is not None and store.record.holder is None
    clock.advance(2)
    b.step()
    assert b.is_leader


def test_release_does_nothing_for_a_standby(store: FakeLeaseStore, clock: FakeClock) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    a.step()
    b.step()
    writes = len(store.writes)
    assert not b.release()
    assert len(store.writes) == writes
    assert store.record is not None and store.record.holder == "a"


def test_a_failed_read_is_retried_after_the_retry_period(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a = elector(store, clock, "a")
    store.errors = [RetryableError("down", code="ConnectionError")]
    assert a.step() == clock() + 2
    assert not a.is_leader
    a.step()
    assert a.is_leader


def test_the_callbacks_report_each_change_of_leadership_once(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    seen: list[str] = []
    a = elector(store, clock, "a")
    a.on_started_leading = lambda: seen.append("started")
    a.on_stopped_leading = lambda: seen.append("stopped")
    a.step()
    clock.advance(5)
    a.step()
    a.release()
    assert seen == ["started", "stopped"]


def test_timings_must_leave_the_leader_time_to_stop_before_expiry(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    with pytest.raises(ValueError, match="renew_deadline_seconds < lease_duration_seconds"):
        LeaderElector(store, "a", clock, lease_duration_seconds=10, renew_deadline_seconds=10)


def test_the_identity_is_the_pod_name_or_the_host_and_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POD_NAME", "autoscaler-0")
    assert default_identity() == "autoscaler-0"
    monkeypatch.delenv("POD_NAME")
    assert default_identity().endswith(f"_{__import__('os').getpid()}")


def test_a_lease_object_reads_back_as_a_record() -> None:
    lease = {
        "metadata": {"name": "x", "resourceVersion": "12"},
        "spec": {
            "holderIdentity": "a",
            "leaseDurationSeconds": 15,
            "acquireTime": "2026-01-01T00:00:00.000000Z",
            "renewTime": "2026-01-01T00:00:05.500000Z",
            "leaseTransitions": 3,
        },
    }
    record = record_from_lease(lease)
    assert record == LeaseRecord("a", 15, 1_767_225_600.0, 1_767_225_605.5, 3, "12")
