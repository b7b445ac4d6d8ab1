"""Sharding: the rendezvous ring, and shard ownership on a fake clock against in-memory Leases."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from autoscaler.clock import FakeClock
from autoscaler.errors import RetryableError
from autoscaler.kube.leader import LeaseRecord
from autoscaler.kube.shards import ShardManager, assign, shard_of

# --------------------------------------------------------------------------- the ring


def test_the_ring_is_deterministic_whatever_the_order_of_members() -> None:
    assert assign(32, ["a", "b", "c"]) == assign(32, ["c", "a", "b", "a"])
    assert shard_of("default/workers", 8) == shard_of("default/workers", 8)
    assert assign(4, []) == {}


def test_one_shard_or_one_member_takes_everything() -> None:
    assert shard_of("any/key", 1) == 0
    assert set(assign(8, ["only"]).values()) == {"only"}


def test_the_ring_spreads_shards_evenly_over_members() -> None:
    members = [f"replica-{i}" for i in range(4)]
    counts = Counter(assign(512, members).values())
    assert set(counts) == set(members)
    assert all(96 <= n <= 160 for n in counts.values()), counts  # 128 each on average


def test_keys_spread_evenly_over_shards() -> None:
    counts = Counter(shard_of(f"ns/group-{i}", 8) for i in range(4000))
    assert all(400 <= n <= 600 for n in counts.values()), counts


def test_a_member_joining_takes_about_its_share_and_nothing_else_moves() -> None:
    before = assign(512, ["a", "b", "c"])
    after = assign(512, ["a", "b", "c", "d"])
    moved = [i for i in before if before[i] != after[i]]
    assert all(after[i] == "d" for i in moved)
    assert 96 <= len(moved) <= 160  # about 1/4 of 512


def test_a_member_leaving_moves_only_its_own_shards() -> None:
    before = assign(512, ["a", "b", "c", "d"])
    after = assign(512, ["a", "b", "c"])
    moved = {i for i in before if before[i] != after[i]}
    assert moved == {i for i, m in before.items() if m == "d"}


# --------------------------------------------------------------------------- Leases in memory


class MemoryLeases:
    """Leases in memory with resourceVersion conflicts (a :class:`LeaseDirectory`)."""

    def __init__(self) -> None:
        self.records: dict[str, LeaseRecord] = {}
        self.version = 0
        self.cut: set[str] = set()  # identities whose calls fail (a partition)

    def store(self, name: str) -> _Store:
        return _Store(self, name)

    def leases(self) -> dict[str, LeaseRecord]:
        return dict(self.records)

    def put(self, name: str, record: LeaseRecord) -> LeaseRecord:
        self.version += 1
        self.records[name] = replace(record, resource_version=str(self.version))
        return self.records[name]


class _Store:
    def __init__(self, leases: MemoryLeases, name: str) -> None:
        self.leases = leases
        self.name = name
        self.owner = ""

    def _check(self) -> None:
        if self.owner in self.leases.cut:
            raise RetryableError("partitioned", code="ConnectionError")

    def get(self) -> LeaseRecord | None:
        self._check()
        return self.leases.records.get(self.name)

    def create(self, record: LeaseRecord) -> LeaseRecord:
        self._check()
        if self.name in self.leases.records:
            raise RetryableError("exists", code="AlreadyExists")
        return self.leases.put(self.name, record)

    def update(self, record: LeaseRecord) -> LeaseRecord:
        self._check()
        current = self.leases.records.get(self.name)
        if current is None or current.resource_version != record.resource_version:
            raise RetryableError("changed", code="Conflict")
        return self.leases.put(self.name, record)


SHARDS = 8


def replica(leases: MemoryLeases, clock: FakeClock, name: str) -> ShardManager:
    manager = ShardManager(
        leases,
        "autoscaler",
        SHARDS,
        name,
        clock,
        lease_duration_seconds=15,
        renew_deadline_seconds=10.0,
        renew_seconds=5,
        retry_seconds=2,
    )
    for elector in [manager.member, *manager.electors]:
        store = elector.store
        assert isinstance(store, _Store)
        store.owner = name
    return manager


class Fleet:
    """Replicas stepped on one fake clock; the service's part (claim, act, ack) is simulated and
    the invariant "no shard has two actors" is checked after every single step."""

    def __init__(self, leases: MemoryLeases, clock: FakeClock) -> None:
        self.leases = leases
        self.clock = clock
        self.replicas: dict[str, ShardManager] = {}
        self.running: set[str] = set()
        #: replica → the shards its service acts on (claimed, not yet acked away)
        self.acting: dict[str, frozenset[int]] = {}
        self.acks = True

    def add(self, name: str) -> ShardManager:
        self.replicas[name] = replica(self.leases, self.clock, name)
        self.running.add(name)
        self.acting[name] = frozenset()
        return self.replicas[name]

    def check(self) -> None:
        actors: Counter[int] = Counter()
        for name, manager in self.replicas.items():
            # what may act: the service's shards while it still holds them
            actors.update(manager.owned() | (self.acting[name] & _held(manager)))
        assert all(n == 1 for n in actors.values()), actors

    def run(self, seconds: float, step: float = 1.0) -> None:
        end = self.clock() + seconds
        while self.clock() < end:
            for name in sorted(self.running):
                manager = self.replicas[name]
                manager.step()
                self.check()
                if self.acks:
                    claimed = manager.claim()
                    self.acting[name] = claimed
                    manager.ack(claimed)
                self.check()
            self.clock.advance(step)

    def owners(self) -> dict[int, str]:
        return {i: n for n, m in self.replicas.items() for i in m.owned()}


def _held(manager: ShardManager) -> frozenset[int]:
    """Shards whose Lease this replica still holds by its own reckoning."""
    return frozenset(i for i, e in enumerate(manager.electors) if e.is_leader)


@pytest.fixture
def fleet() -> Fleet:
    return Fleet(MemoryLeases(), FakeClock())


def test_a_single_replica_acquires_every_shard_and_announces_itself(fleet: Fleet) -> None:
    a = fleet.add("a")
    fleet.run(1)
    assert a.owned() == frozenset(range(SHARDS))
    assert fleet.leases.records["autoscaler-member-a"].holder == "a"
    assert {fleet.leases.records[f"autoscaler-shard-{i}"].holder for i in range(SHARDS)} == {"a"}


def test_a_replica_renews_its_shards_and_keeps_them(fleet: Fleet) -> None:
    a = fleet.add("a")
    fleet.run(60)
    assert a.owned() == frozenset(range(SHARDS))
    renewed = fleet.leases.records["autoscaler-shard-0"].renew_time
    assert renewed is not None and renewed >= fleet.clock() - 6


def test_a_joining_replica_gets_its_ring_share_without_two_owners_at_any_step(
    fleet: Fleet,
) -> None:
    fleet.add("a")
    fleet.run(3)
    fleet.add("b")
    fleet.run(10)
    ring = assign(SHARDS, ["a", "b"])
    assert fleet.owners() == ring
    assert set(ring.values()) == {"a", "b"}


def test_a_drained_shard_is_released_only_after_the_service_stopped_acting_on_it(
    fleet: Fleet,
) -> None:
    a = fleet.add("a")
    fleet.run(3)
    fleet.acks = False  # a's service is stuck: it never confirms
    b = fleet.add("b")
    fleet.run(30)
    moving = {i for i, m in assign(SHARDS, ["a", "b"]).items() if m == "b"}
    assert moving
    assert not (a.owned() & moving)  # a stopped counting them as owned at once
    assert b.owned() == frozenset()  # but b waits: a still holds them until its service acks
    assert {fleet.leases.records[f"autoscaler-shard-{i}"].holder for i in moving} == {"a"}
    fleet.acks = True
    fleet.run(5)
    assert b.owned() == moving


def test_a_crashed_replicas_shards_move_after_the_lease_expires_and_never_overlap(
    fleet: Fleet,
) -> None:
    fleet.add("a")
    fleet.add("b")
    fleet.run(10)
    assert set(fleet.owners().values()) == {"a", "b"}
    fleet.running.discard("b")  # crashed: no more steps, no release
    b_shards = fleet.replicas["b"].owned()
    crashed = fleet.clock()
    fleet.run(10)
    assert fleet.replicas["b"].owned() == frozenset()  # its renew deadline has passed
    assert not (fleet.replicas["a"].owned() & b_shards)  # the Lease has not expired yet
    fleet.run(20)
    assert fleet.replicas["a"].owned() == frozenset(range(SHARDS))
    assert fleet.clock() - crashed <= 30


def test_a_partitioned_replica_stops_acting_before_another_takes_its_shards(
    fleet: Fleet,
) -> None:
    fleet.add("a")
    fleet.add("b")
    fleet.run(10)
    fleet.leases.cut.add("b")  # b runs on but cannot reach the API
    fleet.run(40)  # check() after every step: never two actors
    assert fleet.replicas["b"].owned() == frozenset()
    assert fleet.replicas["a"].owned() == frozenset(range(SHARDS))
    fleet.leases.cut.clear()
    fleet.run(40)
    assert fleet.owners() == assign(SHARDS, ["a", "b"])


def test_a_graceful_release_hands_shards_over_at_the_next_round(fleet: Fleet) -> None:
    fleet.add("a")
    fleet.add("b")
    fleet.run(10)
    fleet.running.discard("b")
    fleet.replicas["b"].release()
    fleet.acting["b"] = frozenset()
    fleet.run(3)
    assert fleet.replicas["a"].owned() == frozenset(range(SHARDS))


def test_a_failed_list_keeps_the_last_view_of_the_members(fleet: Fleet) -> None:
    a = fleet.add("a")
    fleet.add("b")
    fleet.run(10)
    before = a.members

    def fail() -> dict[str, LeaseRecord]:
        raise RetryableError("down", code="ServiceUnavailable")

    fleet.leases.leases = fail  # type: ignore[method-assign]
    a.step()
    assert a.members == before == frozenset({"a", "b"})
