"""ClusterAPIMachineDeployment provider: sizes a Cluster API MachineDeployment (or MachineSet).

* **Which object.** ``spec.id`` is ``NAMESPACE/NAME`` of a MachineDeployment, or
  ``machinesets/NAMESPACE/NAME`` for a MachineSet (``machinedeployments/NAMESPACE/NAME`` is the
  explicit form of the first; the singular resource names work too). The API group and version
  are :data:`GROUP` / :data:`VERSION` (``cluster.x-k8s.io/v1beta1``).
* **Read.** ``GET .../scale`` first (``spec.replicas`` of the ``autoscaling/v1`` Scale is the
  desired count, its ``resourceVersion`` the precondition of the next write), then ``GET`` of the
  object itself for its annotations, pause markers and status. Ready is ``status.readyReplicas``
  (missing: 0). The bounds are the Cluster Autoscaler annotations :data:`MIN_SIZE_ANNOTATION` and
  :data:`MAX_SIZE_ANNOTATION` (missing: no bound; not a non-negative integer, or min above max:
  :class:`~autoscaler.errors.PermanentError` ``InvalidAnnotation`` naming the annotation).
  The object is stable when the controller has observed its latest spec and
  ``readyReplicas == spec.replicas == status.replicas``, nothing is unavailable and, where the
  status counts them, every machine is up to date.
* **Paused.** An object carrying the :data:`PAUSED_ANNOTATION` annotation (any value) or with
  ``spec.paused: true`` is skipped: reading it raises a ``PermanentError`` with code ``Paused``,
  and nothing is ever written to it. A MachineSet owned by a MachineDeployment is refused the
  same way (code ``OwnedByMachineDeployment``): its MachineDeployment would undo the change.
* **Write.** A merge ``PATCH`` of the ``/scale`` subresource with ``spec.replicas`` and, as a
  precondition, ``metadata.resourceVersion`` of the Scale last read. The Scale shares the
  object's resourceVersion, so any change since that read (a pause, new bounds, someone else's
  resize) makes the API server answer 409 Conflict: a
  :class:`~autoscaler.errors.RetryableError`, after which the next call reads again. A count
  outside the last-read bounds is refused before anything is sent (``OutOfBounds``): the
  controller clamps first, this is the safety net.
* **Errors.** Every kubernetes client failure goes through :func:`autoscaler.kube.translate`
  with the request it made (``PATCH machinedeployments/NAMESPACE/NAME/scale``): 404 is a
  :class:`~autoscaler.errors.NotFoundError`, 409/429/5xx/timeouts are retryable, 401/403 are
  permanent. A response without the fields read here is ``MalformedResponse``.

The kubernetes client is reached only through the shared :class:`autoscaler.kube.KubeClients`,
on the first call. The last read is guarded by a lock: the service calls providers from worker
threads.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from autoscaler.api import BackendContext, NodeGroupState, ScalableNodeGroup
from autoscaler.errors import PermanentError, SpecError
from autoscaler.kube import translate

#: The Cluster API group, and the version this provider speaks (v1beta2 is a later step).
GROUP = "cluster.x-k8s.io"
VERSION = "v1beta1"

#: The Cluster Autoscaler's bounds annotations (non-negative integers as strings).
MIN_SIZE_ANNOTATION = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"
MAX_SIZE_ANNOTATION = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"
#: Present with any value: Cluster API controllers leave the object alone, and so do we.
PAUSED_ANNOTATION = "cluster.x-k8s.io/paused"

#: (connect, read) seconds for every API request, so a hung server cannot hold a worker.
REQUEST_TIMEOUT = (5.0, 10.0)

Kind = Literal["MachineDeployment", "MachineSet"]

#: The resource prefixes an id may start with (plural and singular, as kubectl accepts them).
_PREFIXES: dict[str, Kind] = {
    "machinedeployments": "MachineDeployment",
    "machinedeployment": "MachineDeployment",
    "machinesets": "MachineSet",
    "machineset": "MachineSet",
}
_PLURALS: dict[Kind, str] = {"MachineDeployment": "machinedeployments", "MachineSet": "machinesets"}
_NAMESPACE_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_COUNT_RE = re.compile(r"[0-9]+")
_ID_FORMS = (
    "use NAMESPACE/NAME for a MachineDeployment or machinesets/NAMESPACE/NAME for a MachineSet"
)


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """Which Cluster API object: its kind, namespace and name."""

    kind: Kind
    namespace: str
    name: str

    @property
    def plural(self) -> str:
        """The resource name in API paths: ``machinedeployments`` or ``machinesets``."""
        return _PLURALS[self.kind]

    def path(self, subresource: str = "") -> str:
        """``machinedeployments/NAMESPACE/NAME`` (``/scale`` appended for the subresource)."""
        tail = f"/{subresource}" if subresource else ""
        return f"{self.plural}/{self.namespace}/{self.name}{tail}"

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def parse_object_id(object_id: str) -> ObjectRef:
    """``NAMESPACE/NAME`` → a MachineDeployment; ``machinesets/NAMESPACE/NAME`` → a MachineSet.

    The namespace must be a DNS label and the name a DNS subdomain, as Kubernetes requires.
    Raises :class:`~autoscaler.errors.SpecError` (path ``spec.id``, code ``InvalidId``).
    """
    parts = object_id.strip().split("/")
    kind: Kind = "MachineDeployment"
    if len(parts) == 3:
        prefix = _PREFIXES.get(parts[0])
        if prefix is None:
            raise _invalid_id(object_id, f"{parts[0]!r} is not machinedeployments or machinesets")
        kind, parts = prefix, parts[1:]
    if len(parts) != 2:
        raise _invalid_id(object_id, "expected two or three parts separated by '/'")
    namespace, name = parts
    if not _NAMESPACE_RE.fullmatch(namespace):
        raise _invalid_id(
            object_id,
            f"namespace {namespace!r} is not a DNS label (lower-case letters, digits and '-', "
            "at most 63 characters)",
        )
    if not _NAME_RE.fullmatch(name):
        raise _invalid_id(
            object_id,
            f"name {name!r} is not a DNS subdomain (lower-case letters, digits, '-' and '.', "
            "at most 253 characters)",
        )
    return ObjectRef(kind, namespace, name)


def _invalid_id(object_id: str, detail: str) -> SpecError:
    return SpecError(
        f"{object_id!r} is not a Cluster API object id: {detail}; {_ID_FORMS}",
        path="spec.id",
        code="InvalidId",
    )


def parse_bounds(annotations: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """The Cluster Autoscaler bounds: (min, max) from the annotations, None where missing.

    A value that is not a non-negative integer, or a minimum above the maximum, is a
    :class:`~autoscaler.errors.PermanentError` with code ``InvalidAnnotation`` that names the
    annotation.
    """
    low = _size_annotation(annotations, MIN_SIZE_ANNOTATION)
    high = _size_annotation(annotations, MAX_SIZE_ANNOTATION)
    if low is not None and high is not None and low > high:
        raise PermanentError(
            f"annotation {MIN_SIZE_ANNOTATION} ({low}) is greater than "
            f"{MAX_SIZE_ANNOTATION} ({high})",
            code="InvalidAnnotation",
        )
    return low, high


def _size_annotation(annotations: Mapping[str, Any], key: str) -> int | None:
    value = annotations.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _COUNT_RE.fullmatch(value):
        raise PermanentError(
            f"annotation {key}: {value!r} is not a non-negative integer",
            code="InvalidAnnotation",
        )
    return int(value)


def pause_reasons(obj: Mapping[str, Any]) -> list[str]:
    """Why the object is paused: the annotation, ``spec.paused``, both or neither."""
    reasons = []
    if PAUSED_ANNOTATION in _annotations(obj):
        reasons.append(f"annotation {PAUSED_ANNOTATION}")
    spec = obj.get("spec")
    if isinstance(spec, Mapping) and spec.get("paused") is True:
        reasons.append("spec.paused is true")
    return reasons


def owning_machine_deployment(obj: Mapping[str, Any]) -> str | None:
    """The name of the MachineDeployment in the object's ownerReferences, if any."""
    metadata = obj.get("metadata")
    owners = metadata.get("ownerReferences") if isinstance(metadata, Mapping) else None
    for owner in owners if isinstance(owners, list) else []:
        if isinstance(owner, Mapping) and owner.get("kind") == "MachineDeployment":
            return str(owner.get("name", ""))
    return None


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    return annotations if isinstance(annotations, Mapping) else {}


@dataclass(frozen=True, slots=True)
class MachineSummary:
    """What one read says about the object's size."""

    #: ``spec.replicas`` of the Scale.
    desired: int
    #: ``status.readyReplicas``.
    ready: int
    #: ``status.replicas``: machines that exist, ready or not.
    existing: int
    #: ``status.unavailableReplicas``.
    unavailable: int = 0
    #: ``status.updatedReplicas`` where the status has it (MachineDeployments), else None;
    #: fewer than ``existing`` means a rollout is replacing machines.
    updated: int | None = None
    #: The controller has not yet observed the latest spec (``observedGeneration < generation``).
    spec_not_observed: bool = False
    min_size: int | None = None
    max_size: int | None = None

    @property
    def stable(self) -> bool:
        """Nothing is being added, removed or replaced, and ready equals desired."""
        return (
            not self.spec_not_observed
            and self.ready == self.desired == self.existing
            and self.unavailable == 0
            and (self.updated is None or self.updated == self.existing)
        )

    @property
    def message(self) -> str:
        """E.g. ``2 of 4 machines ready, 3 exist, 1 unavailable``."""
        noun = "machine" if self.desired == 1 else "machines"
        if self.ready <= self.desired:
            parts = [f"{self.ready} of {self.desired} {noun} ready"]
        else:
            parts = [f"{self.ready} machines ready, {self.desired} desired"]
        if self.existing != self.ready:
            parts.append(f"{self.existing} exist")
        if self.unavailable:
            parts.append(f"{self.unavailable} unavailable")
        if self.updated is not None and self.updated < self.existing:
            parts.append(f"{self.updated} of {self.existing} up to date")
        if self.spec_not_observed:
            parts.append("the latest spec is not observed by the controller yet")
        return ", ".join(parts)

    def state(self) -> NodeGroupState:
        """The summary as the loop sees it."""
        return NodeGroupState(
            desired=self.desired,
            ready=self.ready,
            min_size=self.min_size,
            max_size=self.max_size,
            stable=self.stable,
            message=self.message,
        )


def summarize(obj: Mapping[str, Any], desired: int) -> MachineSummary:
    """Counts, stability and bounds of a MachineDeployment or MachineSet whose Scale says
    ``desired``. Pause markers are not looked at here (see :func:`pause_reasons`).

    Missing status counts read as 0 (``updatedReplicas``: not checked); a count that is not a
    non-negative integer is a ``PermanentError`` (``MalformedResponse``); invalid bounds
    annotations raise as in :func:`parse_bounds`.
    """
    status = obj.get("status")
    status = status if isinstance(status, Mapping) else {}
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    generation = metadata.get("generation")
    observed = status.get("observedGeneration")
    lagging = isinstance(generation, int) and isinstance(observed, int) and observed < generation
    low, high = parse_bounds(_annotations(obj))
    updated = _status_count(status, "updatedReplicas")
    return MachineSummary(
        desired=desired,
        ready=_status_count(status, "readyReplicas") or 0,
        existing=_status_count(status, "replicas") or 0,
        unavailable=_status_count(status, "unavailableReplicas") or 0,
        updated=updated,
        spec_not_observed=lagging,
        min_size=low,
        max_size=high,
    )


def _status_count(status: Mapping[str, Any], field: str) -> int | None:
    value = status.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _malformed(f"status.{field} is not a non-negative integer ({value!r})")
    return value


def read_scale(scale: Any) -> tuple[int, str]:
    """``spec.replicas`` and ``metadata.resourceVersion`` of an ``autoscaling/v1`` Scale."""
    if not isinstance(scale, Mapping):
        raise _malformed("the Scale is not an object")
    spec, metadata = scale.get("spec"), scale.get("metadata")
    replicas = spec.get("replicas", 0) if isinstance(spec, Mapping) else None
    version = metadata.get("resourceVersion") if isinstance(metadata, Mapping) else None
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise _malformed(f"Scale spec.replicas is not a non-negative integer ({replicas!r})")
    if not isinstance(version, str) or not version:
        raise _malformed("Scale metadata.resourceVersion is missing")
    return replicas, version


def _malformed(detail: str) -> PermanentError:
    return PermanentError(f"unexpected Cluster API response: {detail}", code="MalformedResponse")


@dataclass(frozen=True, slots=True)
class _LastRead:
    """The last read that found the object scalable: what a write is checked against."""

    resource_version: str
    desired: int
    min_size: int | None
    max_size: int | None


class ClusterAPIGroup:
    """One MachineDeployment or MachineSet, read and resized through its ``/scale``."""

    def __init__(self, ref: ObjectRef, clients: Any) -> None:
        self.ref = ref
        self._clients = clients
        self._lock = threading.Lock()
        self._last: _LastRead | None = None

    def _call(self, method: str, action: str, *args: Any) -> Any:
        """Call ``CustomObjectsApi.<method>`` for this object; translate any failure."""
        ref = self.ref
        try:
            api = self._clients.custom()
            return getattr(api, method)(
                GROUP,
                VERSION,
                ref.namespace,
                ref.plural,
                ref.name,
                *args,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except Exception as exc:
            raise translate(exc, action) from exc

    def get_replicas(self) -> NodeGroupState:
        """Desired (the Scale), ready, the annotations' bounds and stability.

        Raises ``PermanentError`` ``Paused`` for a paused object (nothing is remembered for a
        write, so a later ``set_replicas`` reads again and refuses too).
        """
        state, _ = self._read()
        return state

    def _read(self) -> tuple[NodeGroupState, _LastRead]:
        """One read; remembers it for the next write only when the object may be scaled."""
        with self._lock:
            self._last = None
        scale = self._call("get_namespaced_custom_object_scale", f"GET {self.ref.path('scale')}")
        desired, version = read_scale(scale)
        obj = self._call("get_namespaced_custom_object", f"GET {self.ref.path()}")
        if not isinstance(obj, Mapping):
            raise _malformed(f"{self.ref} is not an object")
        self._check_scalable(obj)
        summary = summarize(obj, desired)
        last = _LastRead(version, desired, summary.min_size, summary.max_size)
        with self._lock:
            self._last = last
        return summary.state(), last

    def _check_scalable(self, obj: Mapping[str, Any]) -> None:
        reasons = pause_reasons(obj)
        if reasons:
            raise PermanentError(
                f"{self.ref} is paused ({' and '.join(reasons)}): it is not scaled until the "
                "pause is lifted",
                code="Paused",
            )
        owner = owning_machine_deployment(obj) if self.ref.kind == "MachineSet" else None
        if owner is not None:
            raise PermanentError(
                f"{self.ref} is owned by MachineDeployment {self.ref.namespace}/{owner}, which "
                "would undo any change: scale the MachineDeployment instead",
                code="OwnedByMachineDeployment",
            )

    def set_replicas(self, replicas: int) -> None:
        """PATCH ``/scale`` to ``replicas``, conditional on the Scale last read.

        Reads first when there is no usable last read (none yet, paused, or the last call
        failed). Refuses a count outside the annotations' bounds (``OutOfBounds``) without
        sending anything; a 409 Conflict is retryable and forgets the last read.
        """
        with self._lock:
            last = self._last
        if last is None:
            _, last = self._read()
        low = 0 if last.min_size is None else last.min_size
        if replicas < low or (last.max_size is not None and replicas > last.max_size):
            high = "∞" if last.max_size is None else str(last.max_size)
            raise PermanentError(
                f"{self.ref}: {replicas} replicas is outside the bounds [{low}, {high}] of its "
                "Cluster Autoscaler annotations",
                code="OutOfBounds",
            )
        body = {
            "metadata": {"resourceVersion": last.resource_version},
            "spec": {"replicas": replicas},
        }
        try:
            scale = self._call(
                "patch_namespaced_custom_object_scale",
                f"PATCH {self.ref.path('scale')}",
                body,
            )
            desired, version = read_scale(scale)
        except Exception:
            with self._lock:
                self._last = None
            raise
        with self._lock:
            if self._last == last:  # no read finished in between
                self._last = _LastRead(version, desired, last.min_size, last.max_size)


def validate(resource: ScalableNodeGroup) -> None:
    """Check the form of ``spec.id`` without calling the API (used by ``autoscaler validate``)."""
    parse_object_id(resource.spec.id)


def create(resource: ScalableNodeGroup, context: BackendContext) -> ClusterAPIGroup:
    """Build the provider for a ScalableNodeGroup of type ``ClusterAPIMachineDeployment``.

    Nothing is called (and kubernetes is not imported) until the first read; a malformed id is a
    :class:`~autoscaler.errors.SpecError` on ``spec.id``.
    """
    return ClusterAPIGroup(parse_object_id(resource.spec.id), context.kube)
