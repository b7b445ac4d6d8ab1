"""Scheduling rules as the Kubernetes scheduler applies them, and first-fit-decreasing packing."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.scheduling import (
    MILLI,
    NodeShape,
    PodDemand,
    Requirement,
    Taint,
    Term,
    Toleration,
    affinity_matches,
    as_tuple,
    can_schedule,
    demand_of,
    field_matches,
    is_extended,
    pack,
    pod_requests,
    requirement_matches,
    resources_of,
    selector_matches,
    to_milli,
    tolerates,
    untolerated,
    why_not,
)

GI = 2**30 * MILLI


def container(requests: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": "c", "resources": {"requests": requests or {}}, **extra}


# --------------------------------------------------------------------------- quantities


@pytest.mark.parametrize(
    ("quantity", "milli"),
    [
        ("500m", 500),
        ("0.1", 100),
        (2, 2000),
        ("1Gi", GI),
        ("1.5", 1500),
        ("1u", 1),  # rounded up, as MilliValue
        ("100k", 100_000_000),
    ],
    ids=["millicores", "decimal fraction", "integer", "binary suffix", "half", "micro", "kilo"],
)
def test_quantities_become_exact_milli_units(quantity: object, milli: int) -> None:
    assert to_milli(quantity) == milli


def test_a_resource_list_skips_values_that_are_not_quantities() -> None:
    assert resources_of({"cpu": "1", "memory": "lots"}) == {"cpu": 1000}


@pytest.mark.parametrize(
    ("name", "extended"),
    [
        ("nvidia.com/gpu", True),
        ("example.com/foo", True),
        ("cpu", False),
        ("hugepages-2Mi", False),
        ("kubernetes.io/something", False),
        ("node.kubernetes.io/thing", False),
        ("requests.nvidia.com/gpu", False),
    ],
    ids=["gpu", "any domain", "cpu", "hugepages", "kubernetes.io", "sub kubernetes.io", "quota"],
)
def test_extended_resources_are_the_ones_with_a_foreign_domain(name: str, extended: bool) -> None:
    assert is_extended(name) is extended


# --------------------------------------------------------------------------- effective requests


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"containers": [container({"cpu": "1", "memory": "1Gi"}), container({"cpu": "500m"})]},
            {"cpu": 1500, "memory": GI, "pods": 1000},
        ),
        (
            {
                "initContainers": [
                    container({"cpu": "4"}),
                    container({"cpu": "1", "memory": "2Gi"}),
                ],
                "containers": [container({"cpu": "1", "memory": "1Gi"})],
            },
            {"cpu": 4000, "memory": 2 * GI, "pods": 1000},
        ),
        (
            {
                "initContainers": [container({"cpu": "500m"})],
                "containers": [container({"cpu": "1"}), container({"cpu": "1"})],
            },
            {"cpu": 2000, "pods": 1000},
        ),
        (
            {
                "containers": [container({"cpu": "1"})],
                "overhead": {"cpu": "250m", "memory": "120Mi"},
            },
            {"cpu": 1250, "memory": 120 * 2**20 * MILLI, "pods": 1000},
        ),
        (
            {
                "initContainers": [
                    container({"cpu": "1"}, restartPolicy="Always"),
                    container({"cpu": "2"}),
                ],
                "containers": [container({"cpu": "1"})],
            },
            {"cpu": 3000, "pods": 1000},
        ),
        (
            {
                "initContainers": [
                    container({"cpu": "500m"}, restartPolicy="Always"),
                    container({"cpu": "1"}),
                ],
                "containers": [container({"cpu": "2"})],
            },
            {"cpu": 2500, "pods": 1000},
        ),
        (
            {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": 1}}}]},
            {"nvidia.com/gpu": 1000, "pods": 1000},
        ),
        (
            {
                "containers": [container({"cpu": "1", "memory": "1Gi"})],
                "resources": {"requests": {"cpu": "3"}},
            },
            {"cpu": 3000, "memory": GI, "pods": 1000},
        ),
        ({"containers": [{"name": "c"}]}, {"pods": 1000}),
    ],
    ids=[
        "app containers add up",
        "the largest init container wins when larger",
        "the app containers win when larger",
        "pod overhead is added",
        "a sidecar runs beside later init containers and the app",
        "a sidecar and a larger app",
        "a limit without a request is the request",
        "pod-level requests replace the container sum",
        "no requests still takes a pod slot",
    ],
)
def test_effective_pod_requests_follow_the_scheduler(
    spec: dict[str, Any], expected: dict[str, int]
) -> None:
    assert pod_requests(spec) == expected


# --------------------------------------------------------------------------- node selection

LABELS = {"pool": "gpu", "zone": "a", "generation": "5", "size": "big"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ({}, True),
        ({"pool": "gpu"}, True),
        ({"pool": "gpu", "zone": "a"}, True),
        ({"pool": "cpu"}, False),
        ({"missing": "x"}, False),
    ],
    ids=["empty", "one label", "all labels", "wrong value", "missing label"],
)
def test_a_node_selector_needs_every_label(selector: dict[str, str], matches: bool) -> None:
    assert selector_matches(selector, LABELS) is matches


@pytest.mark.parametrize(
    ("requirement", "matches"),
    [
        (Requirement("pool", "In", ("gpu", "cpu")), True),
        (Requirement("pool", "In", ("cpu",)), False),
        (Requirement("missing", "In", ("x",)), False),
        (Requirement("pool", "NotIn", ("cpu",)), True),
        (Requirement("pool", "NotIn", ("gpu",)), False),
        (Requirement("missing", "NotIn", ("x",)), True),
        (Requirement("zone", "Exists"), True),
        (Requirement("missing", "Exists"), False),
        (Requirement("missing", "DoesNotExist"), True),
        (Requirement("zone", "DoesNotExist"), False),
        (Requirement("generation", "Gt", ("4",)), True),
        (Requirement("generation", "Gt", ("5",)), False),
        (Requirement("generation", "Lt", ("6",)), True),
        (Requirement("generation", "Lt", ("5",)), False),
        (Requirement("size", "Gt", ("1",)), False),
        (Requirement("missing", "Lt", ("9",)), False),
        (Requirement("generation", "Gt", ("4", "5")), False),
        (Requirement("pool", "Near", ("gpu",)), False),
    ],
    ids=[
        "In matches one of the values",
        "In without the value",
        "In on a missing label",
        "NotIn with another value",
        "NotIn with the value",
        "NotIn on a missing label",
        "Exists",
        "Exists on a missing label",
        "DoesNotExist on a missing label",
        "DoesNotExist on a present label",
        "Gt above",
        "Gt equal",
        "Lt below",
        "Lt equal",
        "Gt on a label that is not an integer",
        "Lt on a missing label",
        "Gt with two values",
        "an unknown operator",
    ],
)
def test_each_affinity_operator_matches_as_on_the_api_server(
    requirement: Requirement, matches: bool
) -> None:
    assert requirement_matches(requirement, LABELS) is matches


@pytest.mark.parametrize(
    ("requirement", "name", "matches"),
    [
        (Requirement("metadata.name", "In", ("node-1",)), "node-1", True),
        (Requirement("metadata.name", "In", ("node-1",)), "node-2", False),
        (Requirement("metadata.name", "In", ("node-1",)), None, False),
        (Requirement("metadata.name", "NotIn", ("node-1",)), "node-2", True),
        (Requirement("metadata.name", "NotIn", ("node-1",)), None, True),
        (Requirement("metadata.uid", "In", ("x",)), "x", False),
    ],
    ids=[
        "name In",
        "another name",
        "a node that does not exist yet is no named node",
        "name NotIn",
        "a new node is not the excluded one",
        "only metadata.name is a field",
    ],
)
def test_match_fields_compare_the_node_name(
    requirement: Requirement, name: str | None, matches: bool
) -> None:
    assert field_matches(requirement, name) is matches


IN_GPU = Requirement("pool", "In", ("gpu",))
IN_CPU = Requirement("pool", "In", ("cpu",))
ZONE_A = Requirement("zone", "In", ("a",))


@pytest.mark.parametrize(
    ("terms", "matches"),
    [
        (None, True),
        ((Term((IN_GPU, ZONE_A)),), True),
        ((Term((IN_GPU, Requirement("zone", "In", ("b",)))),), False),
        ((Term((IN_CPU,)), Term((IN_GPU,))), True),
        ((Term((IN_CPU,)), Term((Requirement("zone", "In", ("b",)),))), False),
        ((Term(),), False),
        ((), False),
        ((Term((IN_GPU,), (Requirement("metadata.name", "In", ("n1",)),)),), False),
    ],
    ids=[
        "no affinity matches every node",
        "expressions of a term are ANDed",
        "one failing expression fails the term",
        "terms are ORed",
        "no term matches",
        "an empty term matches nothing",
        "no terms match nothing",
        "fields and expressions are ANDed",
    ],
)
def test_required_node_affinity_terms_are_ored_and_their_requirements_anded(
    terms: tuple[Term, ...] | None, matches: bool
) -> None:
    assert affinity_matches(terms, LABELS, None) is matches


def test_the_demand_of_a_pod_spec_reads_selector_affinity_and_tolerations() -> None:
    spec = {
        "containers": [container({"cpu": "1"})],
        "nodeSelector": {"pool": "gpu"},
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                    ]
                },
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 1, "preference": {"matchExpressions": []}}
                ],
            }
        },
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }

    demand = demand_of(spec)

    assert demand == PodDemand(
        requests=(("cpu", 1000), ("pods", 1000)),
        node_selector=(("pool", "gpu"),),
        affinity=(Term((ZONE_A,)),),
        tolerations=(Toleration("gpu", "Exists", "", "NoSchedule"),),
    )
    assert hash(demand) == hash(demand_of(spec))  # identical pods share one demand


# --------------------------------------------------------------------------- taints

GPU_TAINT = Taint("nvidia.com/gpu", "present", "NoSchedule")


@pytest.mark.parametrize(
    ("toleration", "taint", "tolerated"),
    [
        (Toleration("nvidia.com/gpu", "Equal", "present", "NoSchedule"), GPU_TAINT, True),
        (Toleration("nvidia.com/gpu", "Equal", "absent", "NoSchedule"), GPU_TAINT, False),
        (Toleration("nvidia.com/gpu", "", "present", ""), GPU_TAINT, True),
        (Toleration("nvidia.com/gpu", "Exists", "", "NoSchedule"), GPU_TAINT, True),
        (Toleration("other", "Exists", "", "NoSchedule"), GPU_TAINT, False),
        (Toleration("nvidia.com/gpu", "Exists", "", "NoExecute"), GPU_TAINT, False),
        (Toleration("nvidia.com/gpu", "Exists", "", ""), GPU_TAINT, True),
        (Toleration("", "Exists", "", ""), GPU_TAINT, True),
        (Toleration("", "Exists", "", "NoExecute"), GPU_TAINT, False),
        (Toleration("nvidia.com/gpu", "Lt", "present", ""), GPU_TAINT, False),
    ],
    ids=[
        "Equal with key, value and effect",
        "Equal with another value",
        "the default operator is Equal and an empty effect matches all",
        "Exists ignores the value",
        "Exists with another key",
        "another effect",
        "Exists with any effect",
        "empty key with Exists tolerates everything",
        "empty key with Exists still needs the effect",
        "an unknown operator",
    ],
)
def test_tolerations_match_taints_by_key_operator_value_and_effect(
    toleration: Toleration, taint: Taint, tolerated: bool
) -> None:
    assert tolerates(toleration, taint) is tolerated


@pytest.mark.parametrize(
    ("taints", "tolerations", "blocked_by"),
    [
        ((), (), None),
        ((GPU_TAINT,), (), GPU_TAINT),
        ((Taint("evict", "", "NoExecute"),), (), Taint("evict", "", "NoExecute")),
        ((Taint("soft", "", "PreferNoSchedule"),), (), None),
        ((GPU_TAINT,), (Toleration("nvidia.com/gpu", "Exists"),), None),
        (
            (GPU_TAINT, Taint("team", "a", "NoSchedule")),
            (Toleration("nvidia.com/gpu", "Exists"),),
            Taint("team", "a", "NoSchedule"),
        ),
    ],
    ids=[
        "no taints",
        "NoSchedule blocks",
        "NoExecute blocks",
        "PreferNoSchedule does not block",
        "a tolerated taint",
        "every blocking taint must be tolerated",
    ],
)
def test_blocking_taints_keep_pods_off_unless_tolerated(
    taints: tuple[Taint, ...], tolerations: tuple[Toleration, ...], blocked_by: Taint | None
) -> None:
    assert untolerated(taints, tolerations) == blocked_by


SHAPE = NodeShape(
    capacity={"cpu": 4000, "memory": 16 * GI, "pods": 110_000},
    labels={"pool": "gpu"},
    taints=(GPU_TAINT,),
)


@pytest.mark.parametrize(
    ("demand", "reason"),
    [
        (
            PodDemand(
                requests=(("cpu", 1000),),
                node_selector=(("pool", "gpu"),),
                tolerations=(Toleration("nvidia.com/gpu", "Exists"),),
            ),
            None,
        ),
        (
            PodDemand(requests=(("cpu", 1000),), node_selector=(("pool", "cpu"),)),
            "nodeSelector does not match the node's labels",
        ),
        (
            PodDemand(requests=(("cpu", 1000),), affinity=(Term((IN_CPU,)),)),
            "required node affinity does not match the node",
        ),
        (
            PodDemand(requests=(("cpu", 1000),)),
            "taint nvidia.com/gpu=present:NoSchedule is not tolerated",
        ),
        (
            PodDemand(requests=(("cpu", 8000),), tolerations=(Toleration("", "Exists"),)),
            "requests more than one node offers",
        ),
        (
            PodDemand(
                requests=(("nvidia.com/gpu", 1000),), tolerations=(Toleration("", "Exists"),)
            ),
            "requests more than one node offers",
        ),
        (
            PodDemand(
                requests=(("cpu", 1000), ("ephemeral-storage", 10**15)),
                tolerations=(Toleration("", "Exists"),),
            ),
            None,
        ),
    ],
    ids=[
        "hostable",
        "selector",
        "affinity",
        "taint",
        "too large",
        "an extended resource the shape lacks",
        "a native resource the shape does not list is ignored",
    ],
)
def test_why_not_names_the_rule_that_keeps_a_pod_off_a_shape(
    demand: PodDemand, reason: str | None
) -> None:
    assert why_not(demand, SHAPE) == reason
    assert can_schedule(demand, SHAPE) is (reason in (None, "requests more than one node offers"))


# --------------------------------------------------------------------------- packing


def pods(count: int, gpu: int = 0, **requests: int) -> tuple[dict[str, int], int]:
    return ({**requests, **({"nvidia.com/gpu": gpu} if gpu else {})}, count)


CPU4 = {"cpu": 4000, "memory": 16 * GI, "pods": 110_000}


@pytest.mark.parametrize(
    ("items", "capacity", "open_nodes", "new_nodes", "oversized"),
    [
        ([], CPU4, [], 0, 0),
        ([pods(4, cpu=1000, pods=1000)], CPU4, [], 1, 0),
        ([pods(5, cpu=1000, pods=1000)], CPU4, [], 2, 0),
        ([pods(10, cpu=300, pods=1000)], CPU4, [], 1, 0),
        ([pods(3, cpu=3000), pods(3, cpu=1000)], CPU4, [], 3, 0),
        ([pods(3, cpu=1000), pods(3, cpu=3000)], CPU4, [], 3, 0),
        (
            [pods(4, cpu=500, memory=7 * GI), pods(4, cpu=1500, memory=GI)],
            CPU4,
            [],
            2,
            0,
        ),
        ([pods(200, cpu=10, pods=1000)], CPU4, [], 2, 0),
        (
            [pods(3, cpu=1000, gpu=1000)],
            {"cpu": 8000, "nvidia.com/gpu": 1000},
            [],
            3,
            0,
        ),
        (
            [pods(2, cpu=1000, gpu=2000), pods(4, cpu=1000)],
            {"cpu": 8000, "nvidia.com/gpu": 4000},
            [],
            1,
            0,
        ),
        ([pods(2, cpu=1000, gpu=1000)], CPU4, [], 0, 2),
        ([pods(2, cpu=5000), pods(3, cpu=2000)], CPU4, [], 2, 2),
        ([pods(3, cpu=1000)], CPU4, [{"cpu": 2000, "memory": GI, "pods": 10_000}], 1, 0),
        ([pods(2, cpu=1000)], CPU4, [{"cpu": 2000, "memory": GI, "pods": 10_000}], 0, 0),
        ([pods(5)], CPU4, [], 1, 0),
        ([pods(5)], CPU4, [{"cpu": 0}], 0, 0),
    ],
    ids=[
        "nothing pending",
        "exactly one node",
        "one more than a node",
        "small pods share a node",
        "large first then small fill the gaps",
        "the order given does not matter",
        "two resources: memory-heavy and cpu-heavy pods pair up",
        "the pods resource limits a node",
        "one GPU per node",
        "GPU and cpu pods mix",
        "a GPU pod on a node without GPUs never fits",
        "pods that fit no node are reported and open none",
        "starting nodes take pods first",
        "room on starting nodes is enough",
        "pods that request nothing still need a node",
        "pods that request nothing fit a starting node",
    ],
)
def test_first_fit_decreasing_counts_new_nodes_and_oversized_pods(
    items: list[tuple[dict[str, int], int]],
    capacity: dict[str, int],
    open_nodes: list[dict[str, int]],
    new_nodes: int,
    oversized: int,
) -> None:
    result = pack(items, capacity, open_nodes)
    assert (result.new_nodes, result.oversized) == (new_nodes, oversized)
    assert result.placed == sum(count for _, count in items) - oversized


def one_by_one(items: list[tuple[dict[str, int], int]], capacity: dict[str, int]) -> int:
    """Reference first-fit decreasing, one pod at a time."""
    names = sorted(capacity)
    flat = [req for req, count in items for _ in range(count)]
    flat.sort(key=lambda r: -max(r.get(n, 0) / capacity[n] for n in names))
    bins: list[dict[str, int]] = []
    for req in flat:
        for free in bins:
            if all(req.get(n, 0) <= free[n] for n in names):
                break
        else:
            free = dict(capacity)
            bins.append(free)
        for n in names:
            free[n] -= req.get(n, 0)
    return len(bins)


@pytest.mark.parametrize("seed", range(20), ids=[f"seed {s}" for s in range(20)])
def test_packing_identical_pods_as_one_item_equals_packing_them_one_by_one(seed: int) -> None:
    import random

    rng = random.Random(seed)
    capacity = {"cpu": 16_000, "memory": 64 * GI, "pods": 30_000}
    items = []
    seen: set[float] = set()
    for _ in range(rng.randint(1, 6)):
        cpu, memory = rng.choice([250, 500, 1000, 1500, 3000]), rng.randint(1, 12) * GI // 2
        share = max(cpu / 16_000, memory / (64 * GI), 1000 / 30_000)
        if share in seen:  # equal shares sort by position: keep the reference unambiguous
            continue
        seen.add(share)
        items.append(({"cpu": cpu, "memory": memory, "pods": 1000}, rng.randint(1, 40)))

    assert pack(items, capacity).new_nodes == one_by_one(items, capacity)


def test_as_tuple_drops_zeros_and_sorts() -> None:
    assert as_tuple({"memory": 1, "cpu": 2, "gpu": 0}) == (("cpu", 2), ("memory", 1))
