"""Sharding with real processes: ``autoscaler serve --kubernetes`` replicas split the node groups.

Two, then three processes run against one Kubernetes API emulator with 6 shards and short Lease
timings, configured like the chart's pods (``POD_NAME`` and ``AUTOSCALER_KUBERNETES__*``). Each
process sends its own bearer token, so the emulator's request log says who wrote what, and when:
every write to a node group, its autoscaler and the producer comes from the replica the ring names
for the object's shard, and an object passes from one replica to the next without their writes
interleaving. A third process takes its share; a process killed with SIGKILL loses its shards to
the survivors once its Leases expire, and they keep scaling.
"""

from __future__ import annotations

import itertools
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kubernetes import client

from autoscaler.kube.shards import assign, shard_of
from tests.e2e.test_leader_election import (
    GROUP,
    LEASE,
    VERSION,
    Autoscaler,
    Start,
    autoscalers,
    create_autoscaling,
    custom_api,
    holder,
    set_plan,
    wait_until,
)
from tests.k8s_emulator import KubeEmulator

__all__ = ["autoscalers", "custom_api"]  # the fixtures, imported for pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SHARDS = 6
MEMBERS = ["node-autoscaler-0", "node-autoscaler-1", "node-autoscaler-2"]
VICTIM = MEMBERS[1]
ENV = {
    "AUTOSCALER_KUBERNETES__SHARDS": str(SHARDS),
    "AUTOSCALER_KUBERNETES__LEASE_DURATION_SECONDS": "3",
    "AUTOSCALER_KUBERNETES__RENEW_DEADLINE_SECONDS": "2",
    "AUTOSCALER_KUBERNETES__RENEW_SECONDS": "0.5",
    "AUTOSCALER_KUBERNETES__RETRY_SECONDS": "0.2",
    # Rewrite unchanged statuses every second: more writes to attribute.
    "AUTOSCALER_KUBERNETES__STATUS_INTERVAL_SECONDS": "1",
    "AUTOSCALER_LOOP__NODE_GROUP_SYNC_SECONDS": "1",
}
LOG_SIZE = 200_000  # requests the emulator keeps: the whole test, every write attributed


def _one_group_per_shard() -> list[str]:
    first: dict[int, str] = {}
    for name in (f"pool-{n}" for n in itertools.count()):
        first.setdefault(shard_of(f"default/{name}", SHARDS), name)
        if len(first) == SHARDS:
            return [first[i] for i in range(SHARDS)]
    raise AssertionError("unreachable")


#: Node groups (each with an autoscaler of the same name), one in each shard: every handoff of a
#: shard is a handoff of a node group.
GROUPS = _one_group_per_shard()
#: Writes of the service to the objects: spec.replicas (PATCH) and status (PUT of /status).
WRITE = re.compile(
    rf"^/apis/{re.escape(GROUP)}/{VERSION}/namespaces/default/"
    r"(?:scalablenodegroups|horizontalautoscalers|metricsproducers)/([^/]+)(?:/status)?$"
)


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    """An emulator whose request log keeps every request of the test."""
    with KubeEmulator(max_logged_requests=LOG_SIZE) as emulator:
        yield emulator


@dataclass(frozen=True)
class Phase:
    """A ring of members from ``began`` (a process started or was killed); the handoffs it
    causes have all finished at ``settled`` (every shard Lease held by its member)."""

    began: float
    settled: float
    ring: dict[int, str]

    def owner(self, name: str) -> str:
        return self.ring[shard_of(f"default/{name}", SHARDS)]


def shard_holders(kube: KubeEmulator) -> dict[int, str | None]:
    return {i: holder(kube, f"{LEASE}-shard-{i}") for i in range(SHARDS)}


def settle(kube: KubeEmulator, began: float, members: list[str], timeout: float = 15) -> Phase:
    """Wait until every shard Lease is held by the member the ring of ``members`` names (each
    Lease moves once its old holder has drained the shard, at its own pace: wait for all)."""
    ring = assign(SHARDS, members)
    wait_until(lambda: shard_holders(kube) == ring, f"the shards on the ring of {members}", timeout)
    return Phase(began, time.monotonic(), ring)


def all_at(kube: KubeEmulator, replicas: int) -> bool:
    return all(
        (kube.get_object("scalablenodegroups", g) or {})["spec"].get("replicas") == replicas
        for g in GROUPS
    )


def writes(kube: KubeEmulator) -> dict[str, list[tuple[float, str]]]:
    """The services' writes by object name (an autoscaler is named like its node group):
    (arrival, writer) in order of arrival. The test's own writes carry no token."""
    assert len(kube.requests) < LOG_SIZE, "the request log overflowed"
    found: dict[str, list[tuple[float, str]]] = {}
    for request in sorted(kube.requests, key=lambda r: r.at):
        match = WRITE.match(request.path)
        if match and request.method in ("PATCH", "PUT") and request.token is not None:
            found.setdefault(match[1], []).append((request.at, request.token))
    return found


def check_writers(kube: KubeEmulator, phases: list[Phase]) -> dict[str, list[tuple[float, str]]]:
    """Every write comes from the owner of the object's shard in its phase (during a handoff:
    the owner before or after it), and the writers of an object follow its owners in order,
    each owner's writes in one stretch: no two replicas write an object in overlapping
    periods. Returns the writes."""
    found = writes(kube)
    assert set(found) == {*GROUPS, "plan"}, sorted(found)
    for name, log in found.items():
        owners = [phase.owner(name) for phase in phases]
        for at, who in log:
            assert at >= phases[0].began, (name, who, at)
            i = max(i for i, phase in enumerate(phases) if phase.began <= at)
            settled = i == 0 or at > phases[i].settled
            allowed = {owners[i]} if settled else {owners[i - 1], owners[i]}
            assert who in allowed, f"{name} written by {who} in phase {i}: owners {owners}"
        stretches = [who for k, (_, who) in enumerate(log) if k == 0 or log[k - 1][1] != who]
        handoffs = [o for k, o in enumerate(owners) if k == 0 or owners[k - 1] != o]
        remaining = iter(handoffs)
        in_order = all(who in remaining for who in stretches)  # a subsequence of the owners
        assert in_order, f"{name}: writers {stretches}, owners in turn {handoffs}"
    return found


def writers_between(
    found: dict[str, list[tuple[float, str]]], start: float, end: float
) -> set[str]:
    return {who for log in found.values() for at, who in log if start < at < end}


def two_replicas(
    kube: KubeEmulator, api: client.CustomObjectsApi, start: Start
) -> tuple[Phase, dict[str, Autoscaler]]:
    """Two processes on the ring, then the objects, scaled: the phase they begin, and them."""
    processes = {name: start(name, ENV) for name in MEMBERS[:2]}
    phase = settle(kube, time.monotonic(), MEMBERS[:2])
    assert set(phase.ring.values()) == set(MEMBERS[:2]), "the ring gives both some shards"
    create_autoscaling(api, GROUPS)
    wait_until(lambda: all_at(kube, 3), "every node group scaled to 3")
    return phase, processes


def test_two_processes_split_the_node_groups_by_the_ring_and_only_a_shards_owner_writes_to_it(
    kube: KubeEmulator, custom_api: client.CustomObjectsApi, autoscalers: Start
) -> None:
    phase, _ = two_replicas(kube, custom_api, autoscalers)
    time.sleep(2)  # a few periodic status rewrites more
    assert shard_holders(kube) == phase.ring
    found = check_writers(kube, [phase])
    for group in GROUPS:
        assert {who for _, who in found[group]} == {phase.owner(group)}, group
    assert writers_between(found, phase.began, time.monotonic()) == set(MEMBERS[:2])


def test_a_third_process_takes_its_share_and_a_killed_ones_shards_move_to_the_survivors(
    kube: KubeEmulator, custom_api: client.CustomObjectsApi, autoscalers: Start
) -> None:
    two, processes = two_replicas(kube, custom_api, autoscalers)

    joined = time.monotonic()
    autoscalers(MEMBERS[2], ENV)
    three = settle(kube, joined, MEMBERS)
    assert set(three.ring.values()) == set(MEMBERS), "the ring gives each of the three shards"
    set_plan(custom_api, 4)
    wait_until(lambda: all_at(kube, 4), "every node group scaled to 4 by the three")
    time.sleep(1)  # a periodic status rewrite more from each owner

    survivors = [m for m in MEMBERS if m != VICTIM]
    moved = {i: assign(SHARDS, survivors)[i] for i, m in three.ring.items() if m == VICTIM}
    assert set(moved.values()) == set(survivors), "the victim's shards go to both survivors"
    processes[VICTIM].kill(signal.SIGKILL)
    killed = time.monotonic()
    after_kill = settle(kube, killed, survivors)
    took = after_kill.settled - killed
    assert 2.0 < took < 10.0, f"taken over {took:.1f}s after the kill (Lease: 3 s)"
    set_plan(custom_api, 5)
    wait_until(lambda: all_at(kube, 5), "every node group scaled to 5 by the survivors")
    time.sleep(1)

    found = check_writers(kube, [two, three, after_kill])
    assert writers_between(found, three.settled, killed) == set(MEMBERS)
    assert writers_between(found, after_kill.settled, time.monotonic()) == set(survivors)
    late = [
        at - killed for log in found.values() for at, who in log if who == VICTIM and at > killed
    ]
    assert all(delay < 0.5 for delay in late), late  # only requests already sent when it died
