"""What the Kubernetes scheduler would say about a pod and a node shape, as pure functions.

Used by the cluster producers (``reservedCapacity``, ``pendingCapacity``) and the cluster cache;
no I/O, no clock. Objects come in as the API's JSON (dicts, as read from a list or a watch) and
are reduced once to small frozen values that compare and hash cheaply, so that identical pods
(the replicas of one Deployment) share one :class:`PodDemand`.

**Quantities** are integers in *milli-units* (``"500m"`` cpu → 500, ``"1Gi"`` → 1073741824000,
one pod → 1000), as Kubernetes' own ``MilliValue``: sums and fits are exact.

**Effective requests** of a pod (the scheduler's ``PodRequests``), per resource:
``max(sum of app containers + sum of sidecars, max over init containers) + overhead``, where a
*sidecar* is an init container with ``restartPolicy: Always``; it runs beside the app containers,
and beside every init container that starts after it. A container's request falls back to its
limit (the API server's defaulting). Pod-level ``spec.resources.requests``, when set, replaces
the container sum for the resources it names. Every pod also requests one ``pods`` slot.

**Node selection** (the scheduler's NodeAffinity filter): the pod's ``nodeSelector`` labels must
all be present with equal values, and its *required* node affinity must match: the
``nodeSelectorTerms`` are ORed, the requirements of one term ANDed; an empty term matches
nothing. Operators ``In``, ``NotIn`` (also true when the label is absent), ``Exists``,
``DoesNotExist``, ``Gt`` and ``Lt`` (the label and the single value compared as integers; a
label that is not an integer does not match). ``matchFields`` supports ``metadata.name``
(``In``/``NotIn``); a node that does not exist yet has no name, so ``In`` never matches it and
``NotIn`` always does (which keeps DaemonSet pods, pinned to one node by name, off new nodes).
Preferred affinity does not filter and is ignored.

**Taints and tolerations** (the TaintToleration filter): a taint with effect ``NoSchedule`` or
``NoExecute`` keeps a pod off unless one of its tolerations tolerates it; ``PreferNoSchedule``
never blocks. A toleration matches a taint when the effects match (an empty toleration effect
matches all), and either its operator is ``Exists`` with the same key or an empty key (which
tolerates everything), or its operator is ``Equal`` (the default) with the same key and value.

**Resources that count.** A pod fits a node when each resource it requests is within what the
node has free, for every resource the node shape lists; resources the shape does not list are
ignored, except *extended* resources (names with a domain outside ``kubernetes.io``, such as
``nvidia.com/gpu``), which a node that does not list them cannot offer.

**Bin-packing** (:func:`pack`) is first-fit decreasing over every counted resource: pods sorted
by their dominant share of the node shape (the largest request / capacity ratio), largest
first, each placed on the first node with room, opening a new node when none has. Pods that
cannot fit even an empty node are reported apart and open no node. Identical pods are packed
as one item with a count: the result is exactly that of packing them one by one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from autoscaler.api.quantity import parse_quantity

#: One unit (a core, a byte, a pod, a GPU) in milli-units.
MILLI = 1000
#: The resource every pod requests one of.
PODS = "pods"
#: Taint effects that keep a pod off a node unless tolerated.
BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
#: Milli-unit requests per resource, sorted by name (hashable).
ResourceTuple = tuple[tuple[str, int], ...]


# --------------------------------------------------------------------------- quantities


def to_milli(value: object) -> int:
    """A Kubernetes quantity (``"500m"``, ``"16Gi"``, ``2``) in milli-units, rounded up as
    Kubernetes' ``MilliValue`` does. Raises ``ValueError`` for anything that is not one."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return _to_milli(value)
    return _milli(value)


@functools.lru_cache(maxsize=4096)
def _to_milli(value: str | int | float) -> int:
    """Memoized: clusters repeat a few quantities ("100m", "1Gi") thousands of times."""
    return _milli(value)


def _milli(value: object) -> int:
    # round() first drops float noise (0.1 × 1000 = 100.00000000000001) before rounding up.
    return math.ceil(round(parse_quantity(value) * MILLI, 6))


def from_milli(value: int) -> float:
    """Milli-units back to units (cores, bytes, pods, GPUs)."""
    return value / MILLI


def resources_of(mapping: Mapping[str, Any] | None) -> dict[str, int]:
    """A resource list (``{"cpu": "500m", "memory": "1Gi"}``) in milli-units. Values that are
    not quantities are skipped (the API server would have rejected them)."""
    out: dict[str, int] = {}
    for name, value in (mapping or {}).items():
        try:
            out[str(name)] = to_milli(value)
        except ValueError:
            continue
    return out


def is_extended(resource: str) -> bool:
    """An extended resource (``nvidia.com/gpu``): a node that does not list it has none."""
    if "/" not in resource or resource.startswith("requests."):
        return False
    domain = resource.split("/", 1)[0]
    return not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


def _add(total: dict[str, int], more: Mapping[str, int], times: int = 1) -> None:
    for name, value in more.items():
        total[name] = total.get(name, 0) + value * times


def _max_into(total: dict[str, int], other: Mapping[str, int]) -> None:
    for name, value in other.items():
        if value > total.get(name, 0):
            total[name] = value


def container_requests(container: Mapping[str, Any]) -> dict[str, int]:
    """A container's requests; a resource with only a limit requests its limit."""
    resources = container.get("resources") or {}
    out = resources_of(resources.get("limits"))
    out.update(resources_of(resources.get("requests")))
    return out


def pod_requests(spec: Mapping[str, Any]) -> dict[str, int]:
    """The effective requests of a pod spec (module docstring), one ``pods`` slot included."""
    app: dict[str, int] = {}
    for container in spec.get("containers") or ():
        _add(app, container_requests(container))
    sidecars: dict[str, int] = {}
    init: dict[str, int] = {}
    for container in spec.get("initContainers") or ():
        requests = container_requests(container)
        if container.get("restartPolicy") == "Always":  # a sidecar keeps running
            _add(app, requests)
            _add(sidecars, requests)
            _max_into(init, sidecars)
        else:
            running = dict(sidecars)
            _add(running, requests)
            _max_into(init, running)
    _max_into(app, init)
    pod_level = resources_of((spec.get("resources") or {}).get("requests"))
    app.update(pod_level)
    _add(app, resources_of(spec.get("overhead")))
    app[PODS] = app.get(PODS, 0) + MILLI
    return {name: value for name, value in app.items() if value > 0}


def as_tuple(resources: Mapping[str, int]) -> ResourceTuple:
    """Resources as a sorted, hashable tuple of ``(name, milli)``."""
    return tuple(sorted((name, value) for name, value in resources.items() if value))


# --------------------------------------------------------------------------- scheduling terms


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``matchExpressions`` / ``matchFields`` entry."""

    key: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Term:
    """One ``nodeSelectorTerm``: its requirements are ANDed."""

    match_expressions: tuple[Requirement, ...] = ()
    match_fields: tuple[Requirement, ...] = ()


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"


@dataclass(frozen=True, slots=True)
class PodDemand:
    """What the scheduler looks at to place a pod: equal for identical pods. Its hash is
    computed once (demands are dictionary keys on every evaluation)."""

    requests: ResourceTuple
    node_selector: tuple[tuple[str, str], ...] = ()
    #: Required node affinity terms (ORed); ``None`` when the pod has none.
    affinity: tuple[Term, ...] | None = None
    tolerations: tuple[Toleration, ...] = ()
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        fields = (self.requests, self.node_selector, self.affinity, self.tolerations)
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:
        return self._hash

    @property
    def requests_map(self) -> dict[str, int]:
        return dict(self.requests)


@dataclass(frozen=True, slots=True)
class NodeShape:
    """What one node offers: allocatable resources (milli-units), labels and taints.

    ``name`` is ``None`` for a node that does not exist yet (a shape to scale into).
    """

    capacity: Mapping[str, int]
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    name: str | None = None


def _requirements(items: Iterable[Mapping[str, Any]] | None) -> tuple[Requirement, ...]:
    return tuple(
        Requirement(
            key=str(item.get("key") or ""),
            operator=str(item.get("operator") or ""),
            values=tuple(str(v) for v in item.get("values") or ()),
        )
        for item in items or ()
    )


def required_terms(affinity: Mapping[str, Any] | None) -> tuple[Term, ...] | None:
    """The required node affinity terms of ``spec.affinity``, or ``None`` when there are none."""
    node_affinity = (affinity or {}).get("nodeAffinity") or {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return None
    return tuple(
        Term(
            match_expressions=_requirements(term.get("matchExpressions")),
            match_fields=_requirements(term.get("matchFields")),
        )
        for term in required.get("nodeSelectorTerms") or ()
    )


def tolerations_of(items: Iterable[Mapping[str, Any]] | None) -> tuple[Toleration, ...]:
    return tuple(
        Toleration(
            key=str(item.get("key") or ""),
            operator=str(item.get("operator") or "Equal"),
            value=str(item.get("value") or ""),
            effect=str(item.get("effect") or ""),
        )
        for item in items or ()
    )


def taints_of(items: Iterable[Mapping[str, Any]] | None) -> tuple[Taint, ...]:
    return tuple(
        Taint(
            key=str(item.get("key") or ""),
            value=str(item.get("value") or ""),
            effect=str(item.get("effect") or ""),
        )
        for item in items or ()
    )


def demand_of(spec: Mapping[str, Any]) -> PodDemand:
    """The scheduling demand of a pod spec."""
    selector = spec.get("nodeSelector") or {}
    return PodDemand(
        requests=as_tuple(pod_requests(spec)),
        node_selector=tuple(sorted((str(k), str(v)) for k, v in selector.items())),
        affinity=required_terms(spec.get("affinity")),
        tolerations=tolerations_of(spec.get("tolerations")),
    )


# --------------------------------------------------------------------------- matching


def selector_matches(
    selector: Mapping[str, str] | Iterable[tuple[str, str]], labels: Mapping[str, str]
) -> bool:
    """Every ``key: value`` of a nodeSelector is among the labels."""
    pairs = selector.items() if isinstance(selector, Mapping) else selector
    return all(labels.get(key) == value for key, value in pairs)


def _as_int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def requirement_matches(requirement: Requirement, labels: Mapping[str, str]) -> bool:
    """One ``matchExpressions`` entry against a node's labels."""
    op, key, values = requirement.operator, requirement.key, requirement.values
    present = key in labels
    value = labels.get(key)
    if op == "In":
        return present and value in values
    if op == "NotIn":
        return not present or value not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if len(values) != 1:
            return False
        actual, bound = _as_int(value), _as_int(values[0])
        if actual is None or bound is None:
            return False
        return actual > bound if op == "Gt" else actual < bound
    return False  # an unknown operator matches nothing, as on the API server


def field_matches(requirement: Requirement, name: str | None) -> bool:
    """One ``matchFields`` entry; only ``metadata.name`` exists. ``name`` is ``None`` for a
    node that does not exist yet."""
    if requirement.key != "metadata.name":
        return False
    if requirement.operator == "In":
        return name is not None and name in requirement.values
    if requirement.operator == "NotIn":
        return name is None or name not in requirement.values
    return False


def term_matches(term: Term, labels: Mapping[str, str], name: str | None) -> bool:
    """ANDed requirements; a term without any requirement matches nothing."""
    if not term.match_expressions and not term.match_fields:
        return False
    return all(requirement_matches(r, labels) for r in term.match_expressions) and all(
        field_matches(r, name) for r in term.match_fields
    )


def affinity_matches(
    terms: Sequence[Term] | None, labels: Mapping[str, str], name: str | None = None
) -> bool:
    """Required node affinity: ``None`` (no affinity) matches every node; terms are ORed."""
    if terms is None:
        return True
    return any(term_matches(term, labels, name) for term in terms)


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """Whether one toleration tolerates one taint (module docstring)."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    if toleration.operator == "Exists":
        return True
    if toleration.operator in ("Equal", ""):
        return toleration.value == taint.value
    return False


def untolerated(taints: Iterable[Taint], tolerations: Sequence[Toleration]) -> Taint | None:
    """The first blocking taint no toleration tolerates, or ``None``."""
    for taint in taints:
        if taint.effect in BLOCKING_EFFECTS and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def counted(requests: Mapping[str, int], capacity: Mapping[str, int]) -> bool:
    """False when the pod requests an extended resource the node does not list."""
    return all(name in capacity or not is_extended(name) for name, v in requests.items() if v)


def fits_empty(requests: Mapping[str, int], capacity: Mapping[str, int]) -> bool:
    """Whether a pod fits an empty node of this capacity."""
    return counted(requests, capacity) and all(
        value <= capacity[name] for name, value in requests.items() if name in capacity
    )


def why_not(demand: PodDemand, shape: NodeShape) -> str | None:
    """Why a node of ``shape`` cannot host a pod with ``demand`` (selector, affinity, taints,
    too large), or ``None`` when it can."""
    if not selector_matches(demand.node_selector, shape.labels):
        return "nodeSelector does not match the node's labels"
    if not affinity_matches(demand.affinity, shape.labels, shape.name):
        return "required node affinity does not match the node"
    taint = untolerated(shape.taints, demand.tolerations)
    if taint is not None:
        shown = f"{taint.key}={taint.value}" if taint.value else taint.key
        return f"taint {shown}:{taint.effect} is not tolerated"
    if not fits_empty(demand.requests_map, shape.capacity):
        return "requests more than one node offers"
    return None


def can_schedule(demand: PodDemand, shape: NodeShape) -> bool:
    """Whether the node's labels and taints admit the pod (size not considered)."""
    return (
        selector_matches(demand.node_selector, shape.labels)
        and affinity_matches(demand.affinity, shape.labels, shape.name)
        and untolerated(shape.taints, demand.tolerations) is None
    )


# --------------------------------------------------------------------------- bin-packing


@dataclass(frozen=True, slots=True)
class PackResult:
    """The outcome of :func:`pack`."""

    #: New nodes of the shape opened.
    new_nodes: int
    #: Pods placed (on open nodes or new ones).
    placed: int
    #: Pods that fit no empty node of the shape (not placed, open no node).
    oversized: int
    #: Indexes (into the items given) of the items that are oversized.
    oversized_items: tuple[int, ...] = ()


def _fit_count(free: Sequence[int], vector: Sequence[int]) -> int | None:
    """How many pods of ``vector`` fit in ``free``; ``None`` when unbounded (requests nothing)."""
    best: int | None = None
    for have, need in zip(free, vector, strict=True):
        if need <= 0:
            continue
        if have < need:
            return 0
        count = have // need
        if best is None or count < best:
            best = count
    return best


def pack(
    items: Sequence[tuple[Mapping[str, int], int]],
    capacity: Mapping[str, int],
    open_nodes: Sequence[Mapping[str, int]] = (),
) -> PackResult:
    """First-fit decreasing of ``items`` — ``(requests, how many pods)`` — onto nodes of
    ``capacity``: first onto ``open_nodes`` (the free room of nodes that exist and take pods
    soon), in order, then onto new nodes. See the module docstring for the rules."""
    names = sorted(name for name, value in capacity.items() if value > 0)
    cap = [capacity[name] for name in names]
    prepared: list[tuple[float, float, int, list[int], int]] = []
    oversized: list[int] = []
    oversized_pods = 0
    for index, (requests, count) in enumerate(items):
        if count <= 0:
            continue
        if not fits_empty(requests, capacity):
            oversized.append(index)
            oversized_pods += count
            continue
        vector = [requests.get(name, 0) for name in names]
        shares = [need / have for need, have in zip(vector, cap, strict=True)]
        dominant = max(shares, default=0.0)
        prepared.append((-dominant, -sum(shares), index, vector, count))
    prepared.sort(key=lambda item: (item[0], item[1], item[2]))

    # A bin group: [free vector, how many identical nodes]; order is first-fit order.
    bins: list[tuple[list[int], int]] = [
        ([node.get(name, 0) for name in names], 1) for node in open_nodes
    ]
    new_nodes = placed = 0
    for _, _, _, vector, count in prepared:
        remaining = count
        i = 0
        while remaining and i < len(bins):
            free, mult = bins[i]
            k = _fit_count(free, vector)
            if k is None:  # requests nothing that counts: any node takes them all
                remaining = 0
                break
            if k == 0:
                i += 1
                continue
            room = k * mult
            if remaining >= room:
                bins[i] = ([f - k * v for f, v in zip(free, vector, strict=True)], mult)
                remaining -= room
                i += 1
                continue
            full, rest = divmod(remaining, k)
            split: list[tuple[list[int], int]] = []
            if full:
                split.append(([f - k * v for f, v in zip(free, vector, strict=True)], full))
            if rest:
                split.append(([f - rest * v for f, v in zip(free, vector, strict=True)], 1))
            left = mult - full - (1 if rest else 0)
            if left:
                split.append((free, left))
            bins[i : i + 1] = split
            remaining = 0
        if remaining:
            k = _fit_count(cap, vector)
            if k is None:
                bins.append((list(cap), 1))
                new_nodes += 1
            else:
                full, rest = divmod(remaining, k)
                if full:
                    bins.append(([c - k * v for c, v in zip(cap, vector, strict=True)], full))
                if rest:
                    bins.append(([c - rest * v for c, v in zip(cap, vector, strict=True)], 1))
                new_nodes += full + (1 if rest else 0)
        placed += count
    return PackResult(
        new_nodes=new_nodes,
        placed=placed,
        oversized=oversized_pods,
        oversized_items=tuple(oversized),
    )
