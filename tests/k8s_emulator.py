"""A focused Kubernetes API emulator over real HTTP, for tests.

No kube-apiserver can run on the test machines, so the in-cluster tests point the official
``kubernetes`` client at this emulator: every request goes through the client's real
serialization, content types, error handling and watch streaming.

What it honours (what a controller built on the Python client relies on):

* Discovery: ``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>``, ``/apis/<group>/<version>``
  and ``/version``, listing exactly the registered resources and their subresources.
* Resources (``BUILTIN_RESOURCES``): core namespaces, nodes, pods, events, configmaps;
  ``coordination.k8s.io/v1`` leases; ``events.k8s.io/v1`` events (stored apart from core events,
  not converted); ``cluster.x-k8s.io/v1beta1`` machinedeployments and machinesets (with ``/scale``)
  and machines; ``apiextensions.k8s.io/v1`` customresourcedefinitions. Creating a CRD serves its
  versions (scope, ``status`` and ``scale`` subresources with their paths) and marks it
  Established; deleting it removes the resource and its objects. ``register()`` adds one directly.
* Verbs: list (``labelSelector``, ``fieldSelector``, ``limit``/``continue``), watch, get, create
  (201; uid, resourceVersion, creationTimestamp, generation 1; ``generateName``), update (PUT; 409
  Conflict on a stale resourceVersion, unconditional when the body has none), patch (merge;
  strategic merge treated as merge, so lists are replaced; JSON patch), delete (finalizers keep the
  object with a deletionTimestamp until they are removed), deletecollection, ``/status`` (writes
  change only status; main-resource writes never change status when the subresource exists) and
  ``/scale`` (an ``autoscaling/v1`` Scale mapped through the resource's replica/selector paths).
* Real-server semantics: one global resourceVersion counter; no-op writes keep the
  resourceVersion and emit no event; generation moves only when something other than metadata
  (and status, given a status subresource) changes; create resets the status of pods (phase
  Pending), namespaces (Active) and status-subresource custom resources, but keeps a node's.
  Errors are ``Status`` objects with the real reasons (NotFound, AlreadyExists, Conflict, Invalid,
  BadRequest, MethodNotAllowed, UnsupportedMediaType, Unauthorized, Expired).
* Watch: ``?watch=true|1`` (and legacy ``/watch/`` paths) streams newline-delimited events with
  chunked encoding. Without ``resourceVersion`` or with ``"0"``, current objects come first as
  ADDED; with a version, only later events, from a bounded history (older → an ERROR event with a
  410 Expired Status). Selectors apply as on the real server: an object that stops matching is
  DELETED for that watch, one that starts matching is ADDED. ``timeoutSeconds`` ends the stream;
  bookmarks are never sent. Waiting watches sleep on a Condition.

Simplifications: no admission, defaulting or schema validation (names must be DNS subdomains);
namespaces need not exist; pods are deleted at once (no grace period); a list's
``resourceVersion`` is ignored (lists are always current); any dotted path works as a field
selector; server-side apply (``apply-patch+yaml``) gets 415.

Authentication and authorization reviews (for services that check their own callers):
``POST /apis/authentication.k8s.io/v1/tokenreviews`` knows the tokens added with ``add_token``
(any other token: not authenticated, with an ``error``), and
``POST /apis/authorization.k8s.io/v1/subjectaccessreviews`` allows what ``allow`` granted to the
user or one of its groups (resource attributes, or a non-resource ``path``); nothing else.

Test hooks on ``KubeEmulator``: ``requests`` / ``request_bodies`` (bounded logs; a request
carries its bearer token and arrival time, so clients each given their own token in
``write_kubeconfig`` can be told apart), ``get_object``,
``list_objects``, ``put_object`` (stores as given, status included), ``delete_object``,
``add_token`` / ``allow`` (the reviews above),
``fail_next`` / ``delay_next`` (fault injection), ``close_watches``, ``compact``,
``write_kubeconfig``, ``api_client``. The pytest fixture ``kube`` yields a fresh started emulator.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import json
import re
import secrets
import select
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Self
from urllib.parse import parse_qs

import pytest
import yaml

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]

CAPI_GROUP = "cluster.x-k8s.io"
CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")  # the storage key of CRDs
CORE_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

# --------------------------------------------------------------------------------------------
# Resource types


@dataclass(frozen=True)
class ScaleSubresource:
    """Where ``/scale`` reads and writes (a CRD's ``subresources.scale`` paths)."""

    spec_replicas_path: str = ".spec.replicas"
    status_replicas_path: str = ".status.replicas"
    label_selector_path: str | None = None


@dataclass(frozen=True)
class Resource:
    """One served resource: group/version/plural, scope and subresources."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status: bool = False  # has a /status subresource
    scale: ScaleSubresource | None = None
    short_names: tuple[str, ...] = ()
    reset_status_on_create: bool = True  # with a status subresource, create ignores body status
    initial_status: Mapping[str, Any] | None = None  # ... and starts from this one
    delete_returns_object: bool = False  # else DELETE answers a Success Status

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """Storage key: all versions of a resource share one store (no conversion)."""
        return (self.group, self.plural)

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


_CAPI_SCALE = ScaleSubresource(label_selector_path=".status.selector")
_R = Resource
BUILTIN_RESOURCES: tuple[Resource, ...] = (
    _R(
        "",
        "v1",
        "namespaces",
        "Namespace",
        namespaced=False,
        status=True,
        initial_status={"phase": "Active"},
        short_names=("ns",),
    ),
    _R(
        "",
        "v1",
        "nodes",
        "Node",
        namespaced=False,
        status=True,
        reset_status_on_create=False,
        short_names=("no",),
    ),
    _R(
        "",
        "v1",
        "pods",
        "Pod",
        status=True,
        initial_status={"phase": "Pending"},
        delete_returns_object=True,
        short_names=("po",),
    ),
    _R("", "v1", "events", "Event", short_names=("ev",)),
    _R("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    _R("coordination.k8s.io", "v1", "leases", "Lease"),
    _R("events.k8s.io", "v1", "events", "Event", short_names=("ev",)),
    _R(
        CRDS[0],
        "v1",
        CRDS[1],
        "CustomResourceDefinition",
        namespaced=False,
        status=True,
        short_names=("crd", "crds"),
    ),
    _R(
        CAPI_GROUP,
        "v1beta1",
        "machinedeployments",
        "MachineDeployment",
        status=True,
        scale=_CAPI_SCALE,
        short_names=("md",),
    ),
    _R(
        CAPI_GROUP,
        "v1beta1",
        "machinesets",
        "MachineSet",
        status=True,
        scale=_CAPI_SCALE,
        short_names=("ms",),
    ),
    _R(CAPI_GROUP, "v1beta1", "machines", "Machine", status=True, short_names=("ma",)),
)


def resources_from_crd(crd: Obj) -> list[Resource]:
    """The resources a CustomResourceDefinition serves, one per served version."""
    spec, name = crd.get("spec") or {}, (crd.get("metadata") or {}).get("name")
    names = spec.get("names") or {}
    group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
    if not (group and plural and kind and spec.get("versions")):
        raise invalid("CustomResourceDefinition", name, "spec: group, names, versions required")
    if name != f"{plural}.{group}":
        raise invalid("CustomResourceDefinition", name, "metadata.name: must be <plural>.<group>")
    result = []
    for version in spec["versions"]:
        subresources = version.get("subresources") or {}
        scale = subresources.get("scale")
        if scale is not None:
            scale = ScaleSubresource(
                scale.get("specReplicasPath", ".spec.replicas"),
                scale.get("statusReplicasPath", ".status.replicas"),
                scale.get("labelSelectorPath"),
            )
        if version.get("served", True):
            namespaced = spec.get("scope", "Namespaced") == "Namespaced"
            short_names = tuple(names.get("shortNames") or ())
            has_status = "status" in subresources
            served = Resource(group, version["name"], plural, kind, namespaced, has_status, scale)
            result.append(dataclasses.replace(served, short_names=short_names))
    return result


def _crd_status(crd: Obj, now: str) -> Obj:
    """What the apiextensions controller would write: names accepted, established."""
    conditions = [
        {"type": t, "status": "True", "reason": t, "lastTransitionTime": now}
        for t in ("NamesAccepted", "Established")
    ]
    stored = [v["name"] for v in crd["spec"]["versions"] if v.get("storage")]
    return {
        "acceptedNames": crd["spec"]["names"],
        "storedVersions": stored,
        "conditions": conditions,
    }


# --------------------------------------------------------------------------------------------
# Errors as Kubernetes Status objects

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """A failed request; answered as a ``Status`` body with the same code."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: Obj | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.reason = reason or REASONS.get(code, "InternalError")
        self.details, self.headers = details, dict(headers or {})

    def status(self) -> Obj:
        body = _status_object("Failure", self.details)
        body.update(message=self.message, reason=self.reason, code=self.code)
        return body


def _status_object(status: str, details: Obj | None) -> Obj:
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": status}
    if details:
        body["details"] = details
    return body


def _details(rt: Resource, name: str) -> Obj:
    return {"name": name, "group": rt.group, "kind": rt.plural}


def not_found(rt: Resource, name: str) -> ApiError:
    return ApiError(404, f'{rt.qualified} "{name}" not found', details=_details(rt, name))


def conflict(rt: Resource, name: str) -> ApiError:
    message = (
        f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    return ApiError(409, message, details=_details(rt, name))


def invalid(kind: str, name: str | None, cause: str) -> ApiError:
    details = {"name": name or "", "kind": kind}
    return ApiError(422, f'{kind} "{name or ""}" is invalid: {cause}', details=details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def _name_mismatch(body_name: Any, url_name: str) -> ApiError:
    return bad_request(f"the name of the object ({body_name}) does not match the URL ({url_name})")


NO_ROUTE = "the server could not find the requested resource"
NO_METHOD = "the server does not allow this method on the requested resource"

# --------------------------------------------------------------------------------------------
# Label and field selectors

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_SET_RE = re.compile(rf"^({_KEY})\s+(in|notin)\s*\(([^)]*)\)$")
_CMP_RE = re.compile(rf"^({_KEY})\s*(==|!=|=)\s*([-A-Za-z0-9_.]*)$")
_NUM_RE = re.compile(rf"^({_KEY})\s*([<>])\s*(-?\d+)$")
_EXISTS_RE = re.compile(rf"^(!?)\s*({_KEY})$")
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")

LabelCheck = Callable[[Mapping[str, str]], bool]


def _label_requirement(req: str) -> LabelCheck:
    if m := _SET_RE.match(req):
        key, values = m[1], {v.strip() for v in m[3].split(",") if v.strip()}
        if m[2] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if m := _CMP_RE.match(req):
        key, negated, value = m[1], m[2] == "!=", m[3]
        return lambda labels: (labels.get(key) == value) != negated
    if m := _NUM_RE.match(req):
        key, op, bound = m[1], m[2], int(m[3])
        return lambda labels: _compare_int(labels.get(key), op, bound)
    if m := _EXISTS_RE.match(req):
        key, negated = m[2], m[1] == "!"
        return lambda labels: (key in labels) != negated
    raise bad_request(f"unable to parse requirement: {req!r}")


def label_selector(text: str) -> Predicate:
    """A predicate over objects for a label selector: ``k=v``, ``k==v``, ``k!=v``,
    ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``, ``k>1``, ``k<1``; commas are ANDs."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):  # split on commas outside parentheses
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    checks = [_label_requirement(p.strip()) for p in parts if p.strip()]

    def matches(obj: Obj) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return matches


def _compare_int(value: str | None, op: str, bound: int) -> bool:
    if value is None or not re.fullmatch(r"-?\d+", value):
        return False
    return int(value) > bound if op == ">" else int(value) < bound


def field_selector(text: str) -> Predicate:
    """A predicate for a field selector (``path=value``, ``path==value``, ``path!=value``;
    commas are ANDs; a missing field reads as the empty string)."""
    checks: list[tuple[list[str], bool, str]] = []
    for req in (p.strip() for p in text.split(",") if p.strip()):
        m = re.match(r"^([^!=]+?)\s*(==|!=|=)\s*(.*)$", req)
        if not m:
            raise bad_request(f"invalid field selector: {req!r}")
        checks.append((m[1].split("."), m[2] == "!=", m[3].strip()))

    def matches(obj: Obj) -> bool:
        return all((_field_text(obj, path) == value) != neg for path, neg, value in checks)

    return matches


def _field_text(obj: Obj, path: list[str]) -> str:
    value: Any = obj
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def selector_string(selector: Any) -> str:
    """A LabelSelector object (matchLabels/matchExpressions) in its string form."""
    if selector is None or isinstance(selector, str):
        return selector or ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, values = expr["key"], ",".join(expr.get("values") or [])
        forms = {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})"}
        parts.append({**forms, "Exists": key, "DoesNotExist": f"!{key}"}[expr["operator"]])
    return ",".join(parts)


# --------------------------------------------------------------------------------------------
# Paths and patches


def get_path(obj: Obj, path: str) -> Any:
    """The value at a simple JSON path such as ``.spec.replicas`` (None when absent)."""
    value: Any = obj
    for part in path.strip(".").split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def set_path(obj: Obj, path: str, value: Any) -> None:
    *parents, last = path.strip(".").split(".")
    for part in parents:
        obj = obj.setdefault(part, {})
    obj[last] = value


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(doc: Any, operations: list[Obj]) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, move, copy, test."""
    doc = copy.deepcopy(doc)
    for op in operations:
        kind, tokens = op["op"], _pointer(op["path"])
        if kind == "test":
            if _resolve(doc, tokens) != op["value"]:
                raise ValueError(f"test operation failed at {op['path']}")
            continue
        if kind == "remove":
            doc, _ = _remove(doc, tokens)
            continue
        if kind == "add":
            value = copy.deepcopy(op["value"])
        elif kind == "replace":
            doc, _ = _remove(doc, tokens)
            value = copy.deepcopy(op["value"])
        elif kind == "move":
            doc, value = _remove(doc, _pointer(op["from"]))
        elif kind == "copy":
            value = copy.deepcopy(_resolve(doc, _pointer(op["from"])))
        else:
            raise ValueError(f"unknown operation {kind!r}")
        doc = _add(doc, tokens, value)
    return doc


def _pointer(path: str) -> list[str]:
    if path and not path.startswith("/"):
        raise ValueError(f"bad JSON pointer {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path.split("/")[1:]]


def _resolve(doc: Any, tokens: list[str]) -> Any:
    for token in tokens:
        doc = doc[int(token)] if isinstance(doc, list) else doc[token]
    return doc


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent, last = _resolve(doc, tokens[:-1]), tokens[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if not 0 <= index <= len(parent):
            raise IndexError(f"index {index} out of range")
        parent.insert(index, value)
    else:
        parent[last] = value
    return doc


def _remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    if not tokens:
        return None, doc
    parent, last = _resolve(doc, tokens[:-1]), tokens[-1]
    return doc, parent.pop(int(last) if isinstance(parent, list) else last)


MERGE_PATCHES = ("application/merge-patch+json", "application/strategic-merge-patch+json")
JSON_PATCH = "application/json-patch+json"


def apply_patch(doc: Obj, body: bytes, content_type: str) -> Obj:
    """Apply a request body of the given patch content type to a copy of ``doc``."""
    patch = _json_body(body)
    if content_type == JSON_PATCH:
        if not isinstance(patch, list):
            raise bad_request("a JSON patch must be a list of operations")
        try:
            result = json_patch(doc, patch)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ApiError(422, f"the server rejected our request: {exc!r}") from exc
    elif content_type in MERGE_PATCHES:
        if not isinstance(patch, dict):
            raise bad_request(f"a {content_type} body must be a JSON object")
        result = merge_patch(doc, patch)
    else:
        accepted = ", ".join((JSON_PATCH, *MERGE_PATCHES))
        raise ApiError(415, f"unsupported patch type {content_type!r}; accepted: {accepted}")
    if not isinstance(result, dict):
        raise bad_request("the patched document is not an object")
    return copy.deepcopy(result)


# --------------------------------------------------------------------------------------------
# Test hooks: request log and fault injection


@dataclass(frozen=True)
class Grant:
    """What ``KubeEmulator.allow`` granted: a subject may do a verb on a resource or a path."""

    subject: str
    verb: str
    group: str
    resource: str
    namespace: str | None
    name: str | None
    path: str | None

    def allows(self, subjects: set[str], spec: Obj) -> bool:
        """Whether this grant covers a SubjectAccessReview ``spec`` for one of ``subjects``."""
        if self.subject not in subjects:
            return False
        if self.path is not None:
            attrs = spec.get("nonResourceAttributes") or {}
            return attrs.get("path") == self.path and self.verb in ("*", attrs.get("verb"))
        attrs = spec.get("resourceAttributes") or {}
        wanted = (self.verb, self.group, self.resource, self.namespace, self.name)
        keys = ("verb", "group", "resource", "namespace", "name")
        return all(w in (None, "*", attrs.get(k, "")) for w, k in zip(wanted, keys, strict=True))


class RecordedRequest(NamedTuple):
    method: str
    path: str
    query: dict[str, str]
    token: str | None = None  # the bearer token it carried: who sent it, given one per client
    at: float = 0.0  # time.monotonic() when it arrived


class RecordedBody(NamedTuple):
    method: str
    path: str
    content_type: str
    body: Any  # the parsed JSON, or the text when it is not JSON


@dataclass
class Fault:
    """Requests matching ``method`` (``"*"``: any) and the ``path`` regex (``re.search`` on the
    path without query) wait ``delay`` seconds, then fail with ``status`` (``None``: served
    normally). ``remaining`` counts down per hit (``None``: forever); ``hits`` counts up."""

    method: str
    path: re.Pattern[str]
    status: int | None
    remaining: int | None
    reason: str | None = None
    message: str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    hits: int = 0

    @property
    def exhausted(self) -> bool:
        return self.remaining == 0

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and self.remaining != 0 and bool(self.path.search(path))


# --------------------------------------------------------------------------------------------
# Internals: events, watches, requests


@dataclass(frozen=True)
class _Event:
    rv: int
    key: tuple[str, str]
    namespace: str
    type: str  # ADDED | MODIFIED | DELETED
    obj: Obj
    old: Obj | None = None


@dataclass
class _Watch:
    rt: Resource
    namespace: str | None
    matches: Predicate
    cursor: int  # the last resourceVersion considered
    deadline: float | None


@dataclass
class _Call:
    """One routed API request."""

    method: str
    rt: Resource
    namespace: str | None  # "" for cluster-scoped, None for all namespaces
    name: str | None
    sub: str | None
    query: dict[str, str]
    body: bytes
    content_type: str

    @property
    def dry_run(self) -> bool:
        return bool(self.query.get("dryRun"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    emulator: KubeEmulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that go away mid-response are normal here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked watch streams
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.emulator._connections.add(self.connection)

    def finish(self) -> None:
        self.server.emulator._connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self.server.emulator._handle(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _now_text(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# The emulator


class KubeEmulator:
    """An in-memory Kubernetes API server on 127.0.0.1 (a free port), from Python.

    ``token``: when set, every request must carry ``Authorization: Bearer <token>`` (else 401).
    ``history_size``: watch events kept for resuming watches; older versions get 410 Expired.
    ``max_logged_requests``: the bound of ``requests`` and ``request_bodies``.
    ``now``: the clock for creation and deletion timestamps.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        history_size: int = 10_000,
        max_logged_requests: int = 10_000,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.token = token
        self._now = now
        self._cond = threading.Condition(threading.RLock())  # guards everything below
        self._rv = 0
        self._resources: dict[tuple[str, str, str], Resource] = {}
        # (group, plural) -> namespace ("" when cluster-scoped) -> name -> object
        self._store: dict[tuple[str, str], dict[str, dict[str, Obj]]] = {}
        self._history: deque[_Event] = deque(maxlen=history_size)
        self._compacted_rv = 0  # events at or below this version are forgotten
        self._requests: deque[RecordedRequest] = deque(maxlen=max_logged_requests)
        self._bodies: deque[RecordedBody] = deque(maxlen=max_logged_requests)
        self._faults: list[Fault] = []
        self._review_tokens: dict[str, Obj] = {}  # token → UserInfo
        self._grants: list[Grant] = []
        self._watch_epoch = 0
        self._open_watches = 0
        self._stopping = False
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._verbs = self._verb_table()
        for rt in BUILTIN_RESOURCES:
            self.register(rt)
        for name in CORE_NAMESPACES:
            namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            self.put_object({**namespace, "status": {"phase": "Active"}})

    # -- lifecycle and client configuration -----------------------------------------------

    def start(self) -> Self:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.emulator, self._stopping = self, False
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="kube-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; open watches end and open connections are shut down."""
        if self._server is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        for conn in list(self._connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the emulator is not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def resource_version(self) -> str:
        """The current global resourceVersion (what a list would return now)."""
        return str(self._rv)

    def write_kubeconfig(
        self, path: str | Path, *, token: str | None = None, namespace: str = "default"
    ) -> Path:
        """Write a kubeconfig whose current context ``emulator`` points here; the user's token
        is ``token`` or else the one the emulator requires (none: no credentials)."""
        token = token or self.token
        context = {"cluster": "emulator", "user": "emulator", "namespace": namespace}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "emulator",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": token} if token else {}}],
            "contexts": [{"name": "emulator", "context": context}],
        }
        path = Path(path)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def api_client(self, token: str | None = None) -> ApiClient:
        """A ``kubernetes.client.ApiClient`` for this emulator (global config untouched)."""
        from kubernetes import client

        configuration = client.Configuration(host=self.url)
        if token := token or self.token:
            configuration.api_key = {"BearerToken": token}
            configuration.api_key_prefix = {"BearerToken": "Bearer"}
        return client.ApiClient(configuration)

    # -- registry and store helpers for tests ---------------------------------------------

    def register(self, rt: Resource) -> Resource:
        """Serve a resource (replacing any with the same group/version/plural)."""
        with self._cond:
            self._resources[(rt.group, rt.version, rt.plural)] = rt
            self._store.setdefault(rt.key, {})
        return rt

    def unregister(self, group: str, plural: str) -> None:
        """Stop serving all versions of a resource; its objects go (DELETED events)."""
        with self._cond:
            for rt in [r for r in self._resources.values() if r.key == (group, plural)]:
                del self._resources[(rt.group, rt.version, rt.plural)]
            for bucket in list(self._store.pop((group, plural), {}).values()):
                for obj in bucket.values():
                    event = _Event(self._next_rv(), (group, plural), _ns(obj), "DELETED", obj)
                    self._record(event)

    def resource(self, name: str) -> Resource:
        """Resolve a plural (``pods``), ``plural.group`` (``events.events.k8s.io``), a kind or a
        short name to a served resource; the core group wins ties."""
        plural, _, group = name.partition(".")
        with self._cond:
            found = [
                r
                for r in self._resources.values()
                if name.lower() in (r.plural, r.kind.lower(), *r.short_names)
                or (r.plural, r.group) == (plural, group)
            ]
        if not found:
            raise KeyError(f"no resource {name!r}")
        core = [r for r in found if r.group == ""]
        if len({r.key for r in found}) > 1 and not core:
            raise KeyError(f"{name!r} is ambiguous: {sorted({r.key for r in found})}")
        return (core or found)[0]

    def get_object(self, resource: str, name: str, namespace: str = "default") -> Obj | None:
        """A copy of a stored object, or None (``namespace`` is ignored when cluster-scoped)."""
        rt = self.resource(resource)
        with self._cond:
            obj = self._bucket(rt, namespace).get(name)
        return copy.deepcopy(obj)

    def list_objects(self, resource: str, namespace: str | None = None) -> list[Obj]:
        """Copies of the stored objects, ordered by namespace and name (None: all namespaces)."""
        rt = self.resource(resource)
        with self._cond:
            return copy.deepcopy(self._objects(rt, namespace if rt.namespaced else ""))

    def put_object(self, obj: Obj) -> Obj:
        """Create or replace an object exactly as given, status included (namespace defaults to
        ``default``); its resource comes from apiVersion and kind. Fills uid, creationTimestamp
        and generation when missing, bumps resourceVersion, emits the watch event."""
        group, _, version = obj["apiVersion"].rpartition("/")
        with self._cond:
            found = [
                r for r in self._resources.values() if (r.group, r.kind) == (group, obj["kind"])
            ]
            if not found:
                raise KeyError(f"no resource for {obj['apiVersion']} {obj['kind']}")
            rt = next((r for r in found if r.version == version), found[0])
            new = copy.deepcopy(obj)
            meta = new.setdefault("metadata", {})
            if not rt.namespaced:
                meta.pop("namespace", None)
            else:
                meta["namespace"] = meta.get("namespace") or "default"
            old = self._bucket(rt, meta.get("namespace")).get(meta["name"])
            if old is not None:  # a replacement keeps the object's identity
                meta.setdefault("uid", old["metadata"]["uid"])
                meta.setdefault("creationTimestamp", old["metadata"]["creationTimestamp"])
            self._fill_new_metadata(meta)
            return copy.deepcopy(self._commit(rt, new, old))

    def delete_object(self, resource: str, name: str, namespace: str = "default") -> bool:
        """Remove an object at once (finalizers ignored); False when there was none."""
        rt = self.resource(resource)
        with self._cond:
            old = self._bucket(rt, namespace).get(name)
            if old is not None:
                self._remove(rt, old)
            return old is not None

    # -- request log and fault injection --------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """The latest requests, oldest first: (method, path, query, token, at) with the query
        as a dict, the bearer token sent (None without) and the arrival time (monotonic)."""
        return list(self._requests)

    @property
    def request_bodies(self) -> list[RecordedBody]:
        """The latest requests that had a body: (method, path, content_type, parsed body)."""
        return list(self._bodies)

    def clear_requests(self) -> None:
        self._requests.clear()
        self._bodies.clear()

    def fail_next(
        self,
        method: str,
        path: str,
        status: int = 500,
        *,
        times: int | None = 1,
        reason: str | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        delay: float = 0.0,
    ) -> Fault:
        """Make the next ``times`` requests (None: all) with this ``method`` (``"*"``: any) and
        a path matching the regex ``path`` fail with ``status`` and a Status body (``reason``
        defaults from the code; ``retry_after`` adds a Retry-After header), after ``delay``
        seconds. Faults apply in the order they were added; the first match wins."""
        fault = Fault(method.upper(), re.compile(path), status, times, reason, message)
        fault.retry_after, fault.delay = retry_after, delay
        with self._cond:
            self._faults.append(fault)
        return fault

    def delay_next(self, method: str, path: str, seconds: float, *, times: int | None = 1) -> Fault:
        """Delay the next ``times`` matching requests by ``seconds``, then serve them."""
        fault = Fault(method.upper(), re.compile(path), None, times, delay=seconds)
        with self._cond:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._cond:
            self._faults.clear()

    @property
    def open_watches(self) -> int:
        """How many watch streams are open right now."""
        return self._open_watches

    def wait_for_watches(self, count: int = 1, timeout: float = 5.0) -> None:
        """Block until at least ``count`` watch streams are open (TimeoutError after
        ``timeout`` seconds): act only once a controller's watch is established."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._open_watches >= count, timeout):
                raise TimeoutError(f"{self._open_watches} open watches, wanted {count}")

    def close_watches(self) -> None:
        """End all open watch streams cleanly, as an API server does when they time out."""
        with self._cond:
            self._watch_epoch += 1
            self._cond.notify_all()

    def compact(self) -> None:
        """Forget the watch history: watches from any older resourceVersion get 410 Expired."""
        with self._cond:
            self._history.clear()
            self._compacted_rv = self._rv
            self._cond.notify_all()

    # -- token and access reviews ------------------------------------------------------------

    def add_token(
        self, token: str, username: str, *, groups: tuple[str, ...] = (), uid: str = ""
    ) -> None:
        """Make ``token`` authenticate as ``username`` (with ``groups``) in TokenReviews."""
        user: Obj = {"username": username, "groups": list(groups)}
        if uid:
            user["uid"] = uid
        with self._cond:
            self._review_tokens[token] = user

    def allow(
        self,
        subject: str,
        verb: str,
        resource: str = "",
        *,
        group: str = "autoscaler.dev",
        namespace: str | None = None,
        name: str | None = None,
        path: str | None = None,
    ) -> Grant:
        """Let ``subject`` (a user name or a group) do ``verb`` (``"*"``: any) on ``resource``
        of API ``group`` (``"*"``: any) in ``namespace`` and on ``name`` (None: any), or, with
        ``path``, on that non-resource URL; SubjectAccessReviews answer from these grants."""
        grant = Grant(subject, verb, group, resource, namespace, name, path)
        with self._cond:
            self._grants.append(grant)
        return grant

    def _review(self, path: str, review: Any) -> Obj:
        """Answer a TokenReview or SubjectAccessReview (created, never stored)."""
        if not isinstance(review, dict) or not isinstance(review.get("spec"), dict):
            raise bad_request("a review needs a spec")
        spec, out = review["spec"], copy.deepcopy(review)
        with self._cond:
            if path == TOKEN_REVIEWS:
                user = self._review_tokens.get(str(spec.get("token", "")))
                out["status"] = (
                    {"authenticated": True, "user": copy.deepcopy(user)}
                    if user is not None
                    else {"user": {}, "error": "invalid bearer token"}
                )
                return out
            subjects = {spec.get("user"), *(spec.get("groups") or ())} - {None}
            allowed = any(g.allows(subjects, spec) for g in self._grants)
        out["status"] = {"allowed": allowed, **({} if allowed else {"reason": "no grant"})}
        return out

    # -- store internals (with the lock held) ---------------------------------------------
    # Stored objects are never mutated (writes store new dicts), so lists and watches may keep
    # references and serialize them outside the lock.

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _bucket(self, rt: Resource, namespace: str | None) -> dict[str, Obj]:
        store = self._store.setdefault(rt.key, {})
        return store.setdefault((namespace or "") if rt.namespaced else "", {})

    def _objects(self, rt: Resource, namespace: str | None) -> list[Obj]:
        store = self._store.get(rt.key, {})
        namespaces = sorted(store) if namespace is None else [namespace]
        return [store[ns][n] for ns in namespaces if ns in store for n in sorted(store[ns])]

    def _fill_new_metadata(self, meta: Obj) -> None:
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now_text(self._now()))
        meta.setdefault("generation", 1)

    def _record(self, event: _Event) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted_rv = self._history[0].rv
        self._history.append(event)
        self._cond.notify_all()

    def _commit(self, rt: Resource, new: Obj, old: Obj | None) -> Obj:
        """Store ``new`` in place of ``old`` with a fresh resourceVersion and emit the event
        (an object marked for deletion that has no finalizers left is removed instead)."""
        served = resources_from_crd(new) if rt.key == CRDS else []  # validate before storing
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        meta = new["metadata"]
        if old is not None and meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._remove(rt, new)
        meta["resourceVersion"] = str(self._next_rv())
        self._bucket(rt, meta.get("namespace"))[meta["name"]] = new
        self._record(_Event(self._rv, rt.key, _ns(new), "MODIFIED" if old else "ADDED", new, old))
        if rt.key == CRDS:  # serve exactly the versions the definition now serves
            key = (new["spec"]["group"], new["spec"]["names"]["plural"])
            for stale in [r for r in self._resources.values() if r.key == key]:
                del self._resources[(stale.group, stale.version, stale.plural)]
            for served_rt in served:
                self.register(served_rt)
        return new

    def _remove(self, rt: Resource, obj: Obj) -> Obj:
        """Delete an object now, with cascades: a CRD's resource, a namespace's contents."""
        meta = obj["metadata"]
        self._bucket(rt, meta.get("namespace")).pop(meta["name"], None)
        gone = {**obj, "metadata": {**meta, "resourceVersion": str(self._next_rv())}}
        self._record(_Event(self._rv, rt.key, _ns(obj), "DELETED", gone))
        if rt.key == CRDS:
            self.unregister(obj["spec"]["group"], obj["spec"]["names"]["plural"])
        elif rt.key == ("", "namespaces"):
            for key, store in list(self._store.items()):
                owner = next((r for r in self._resources.values() if r.key == key), None)
                for child in list(store.get(meta["name"], {}).values()):
                    if owner is not None:
                        self._remove(owner, child)
        return gone

    # -- HTTP -------------------------------------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        path, _, query_text = h.path.partition("?")
        path = path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(query_text, keep_blank_values=True).items()}
        authorization = h.headers.get("Authorization") or ""
        token = (
            authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else None
        )
        self._requests.append(RecordedRequest(h.command, path, query, token, time.monotonic()))
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        content_type = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if body:
            try:
                parsed: Any = json.loads(body)
            except ValueError:
                parsed = body.decode(errors="replace")
            self._bodies.append(RecordedBody(h.command, path, content_type, parsed))
        try:
            if self.token and h.headers.get("Authorization") != f"Bearer {self.token}":
                raise ApiError(401, "Unauthorized")
            self._inject_fault(h.command, path)
            result = self._route(h, path, query, body, content_type)
            if result is not None:
                self._send(h, *result)
        except ApiError as err:
            self._send(h, err.code, err.status(), err.headers)
        except OSError:
            h.close_connection = True  # the client went away
        except Exception as exc:  # an emulator bug: say so in the response
            self._send(h, 500, ApiError(500, f"emulator error: {exc!r}").status())

    def _inject_fault(self, method: str, path: str) -> None:
        with self._cond:
            fault = next((f for f in self._faults if f.matches(method, path)), None)
            if fault is None:
                return
            fault.hits += 1
            if fault.remaining is not None:
                fault.remaining -= 1
        time.sleep(fault.delay)
        if fault.status is not None:
            message = fault.message or f"injected fault: {fault.status}"
            retry = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            raise ApiError(fault.status, message, reason=fault.reason, headers=retry)

    @staticmethod
    def _send(h: _Handler, code: int, body: Obj, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(data)

    def _route(
        self, h: _Handler, path: str, query: dict[str, str], body: bytes, content_type: str
    ) -> tuple[int, Obj] | None:
        """Dispatch a request; None when it was answered already (watch streams)."""
        if path in (TOKEN_REVIEWS, ACCESS_REVIEWS) and h.command == "POST":
            return 201, self._review(path, _json_body(body))
        segs = [s for s in path.split("/") if s]
        if segs[:1] == ["api"] and len(segs) > 2:
            group, version, rest = "", segs[1], segs[2:]
        elif segs[:1] == ["apis"] and len(segs) > 3:
            group, version, rest = segs[1], segs[2], segs[3:]
        elif h.command == "GET":
            return 200, self._discovery(segs)
        else:
            raise ApiError(405, NO_METHOD)
        watch = rest[0] == "watch" or query.get("watch") in ("true", "1")
        rest = rest[1:] if rest[0] == "watch" else rest
        namespace: str | None = None
        with self._cond:
            if len(rest) >= 3 and rest[0] == "namespaces":
                nested = self._resources.get((group, version, rest[2]))
                if nested is not None and nested.namespaced:
                    namespace, rest = rest[1], rest[2:]
            rt = self._resources.get((group, version, rest[0])) if rest else None
        if rt is None or len(rest) > 3 or (rt.namespaced and namespace is None and len(rest) > 1):
            raise ApiError(404, NO_ROUTE)
        name, sub = (*rest[1:], None, None)[:2]
        call = _Call(
            h.command, rt, namespace if rt.namespaced else "", name, sub, query, body, content_type
        )
        if watch and call.method == "GET" and sub is None:
            self._serve_watch(h, call)
            return None
        if sub not in (None, "status", "scale") or (sub == "status" and not rt.status):
            raise ApiError(404, NO_ROUTE)
        if sub == "scale" and not rt.scale:
            raise ApiError(404, NO_ROUTE)
        verb = self._verbs.get((call.method, name is not None, sub))
        if verb is None or (call.method == "POST" and call.namespace is None):
            raise ApiError(405, NO_METHOD)
        return verb(call)

    def _verb_table(self) -> dict[tuple[str, bool, str | None], Callable[[_Call], tuple[int, Obj]]]:
        """(method, names an object, subresource) → verb."""
        return {
            ("GET", False, None): lambda c: (200, self._list(c)),
            ("POST", False, None): self._create,
            ("DELETE", False, None): self._delete_collection,
            ("GET", True, None): lambda c: (200, self._out(c.rt, self._get(c))),
            ("PUT", True, None): self._put,
            ("PATCH", True, None): self._patch,
            ("DELETE", True, None): self._delete,
            ("GET", True, "status"): lambda c: (200, self._out(c.rt, self._get(c))),
            ("PUT", True, "status"): self._put,
            ("PATCH", True, "status"): self._patch,
            ("GET", True, "scale"): lambda c: (200, self._to_scale(c.rt, self._get(c))),
            ("PUT", True, "scale"): lambda c: (200, self._write_scale(c, _json_body(c.body))),
            ("PATCH", True, "scale"): self._patch,
        }

    def _discovery(self, segs: list[str]) -> Obj:
        if segs == ["version"]:
            return {"major": "1", "minor": "35", "gitVersion": "v1.35.0-emulator"}
        with self._cond:
            served = sorted(self._resources.values(), key=lambda r: (r.group, r.version, r.plural))
        groups: dict[str, list[str]] = {}
        for rt in served:
            if rt.version not in groups.setdefault(rt.group, []):
                groups[rt.group].append(rt.version)
        if segs == ["api"]:
            address = {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [address],
            }
        if segs == ["apis"]:
            listed = [_api_group(g, vs) for g, vs in groups.items() if g]
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": listed}
        if len(segs) == 2 and segs[0] == "apis" and segs[1] in groups:
            return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(segs[1], groups[segs[1]])}
        if segs[:1] == ["api"] and len(segs) == 2:
            group, version = "", segs[1]
        elif segs[:1] == ["apis"] and len(segs) == 3:
            group, version = segs[1], segs[2]
        else:
            raise ApiError(404, NO_ROUTE)
        if version not in groups.get(group, []):
            raise ApiError(404, NO_ROUTE)
        resources: list[Obj] = []
        for rt in (r for r in served if (r.group, r.version) == (group, version)):
            entry = {
                "name": rt.plural,
                "singularName": rt.kind.lower(),
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ALL_VERBS,
                "shortNames": list(rt.short_names),
            }
            resources.append(entry)
            sub = {
                "singularName": "",
                "namespaced": rt.namespaced,
                "verbs": ["get", "patch", "update"],
            }
            if rt.status:
                resources.append({**sub, "name": f"{rt.plural}/status", "kind": rt.kind})
            if rt.scale:
                scale = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
                resources.append({**sub, "name": f"{rt.plural}/scale", **scale})
        group_version = f"{group}/{version}" if group else version
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }

    # -- verbs ------------------------------------------------------------------------------

    @staticmethod
    def _out(rt: Resource, obj: Obj) -> Obj:
        """The object as served at ``rt``'s version (no conversion beyond apiVersion)."""
        return (
            obj
            if obj.get("apiVersion") == rt.api_version
            else {**obj, "apiVersion": rt.api_version}
        )

    def _get(self, call: _Call) -> Obj:
        assert call.name is not None
        with self._cond:
            obj = self._bucket(call.rt, call.namespace).get(call.name)
        if obj is None:
            raise not_found(call.rt, call.name)
        return obj

    @staticmethod
    def _selected(query: Mapping[str, str]) -> Predicate:
        labels = label_selector(query.get("labelSelector") or "")
        fields = field_selector(query.get("fieldSelector") or "")
        return lambda obj: labels(obj) and fields(obj)

    def _list(self, call: _Call) -> Obj:
        rt, matches = call.rt, self._selected(call.query)
        with self._cond:
            rv, objs = self._rv, self._objects(rt, call.namespace)
        items = [self._out(rt, o) for o in objs if matches(o)]
        meta: Obj = {"resourceVersion": str(rv)}
        if token := call.query.get("continue"):
            try:
                after = json.loads(base64.urlsafe_b64decode(token))
            except ValueError as exc:
                raise bad_request("invalid continue token") from exc
            items = [o for o in items if [_ns(o), o["metadata"]["name"]] > after]
        if (limit := int(call.query.get("limit") or 0)) and len(items) > limit:
            last = json.dumps([_ns(items[limit - 1]), items[limit - 1]["metadata"]["name"]])
            meta["continue"] = base64.urlsafe_b64encode(last.encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {
            "apiVersion": rt.api_version,
            "kind": f"{rt.kind}List",
            "metadata": meta,
            "items": items,
        }

    def _checked_body(self, call: _Call, body: Any) -> Obj:
        """A copy of a request body that must be an object of the call's resource."""
        rt = call.rt
        if not isinstance(body, dict) or not isinstance(body.setdefault("metadata", {}), dict):
            raise bad_request("the request body must be a JSON object with object metadata")
        obj = copy.deepcopy(body)
        api_version = obj.setdefault("apiVersion", rt.api_version)
        kind = obj.setdefault("kind", rt.kind)
        if (api_version, kind) != (rt.api_version, rt.kind):
            raise bad_request(f"expected {rt.api_version} {rt.kind}, got {api_version} {kind}")
        meta = obj["metadata"]
        if not rt.namespaced:
            meta.pop("namespace", None)
        elif meta.get("namespace") in (None, "", call.namespace):
            meta["namespace"] = call.namespace
        else:
            raise bad_request("the namespace of the object does not match the request's")
        return obj

    def _create(self, call: _Call) -> tuple[int, Obj]:
        rt, obj = call.rt, self._checked_body(call, _json_body(call.body))
        meta = obj["metadata"]
        for key in (
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
        ):
            meta.pop(key, None)
        if rt.status and rt.reset_status_on_create:
            obj.pop("status", None)
            if rt.initial_status is not None:
                obj["status"] = copy.deepcopy(dict(rt.initial_status))
        with self._cond:
            bucket = self._bucket(rt, call.namespace)
            if not meta.get("name"):
                if not meta.get("generateName"):
                    raise invalid(rt.kind, "", "metadata.name: Required value")
                meta["name"] = meta["generateName"] + _random_suffix()
                while meta["name"] in bucket:
                    meta["name"] = meta["generateName"] + _random_suffix()
            name = meta["name"]
            if not _NAME_RE.match(name):
                raise invalid(rt.kind, name, "metadata.name: must be an RFC 1123 subdomain")
            if name in bucket:
                details = _details(rt, name)
                message = f'{rt.qualified} "{name}" already exists'
                raise ApiError(409, message, reason="AlreadyExists", details=details)
            self._fill_new_metadata(meta)
            if rt.key == CRDS:
                resources_from_crd(obj)
                obj["status"] = _crd_status(obj, meta["creationTimestamp"])
            return 201, obj if call.dry_run else self._out(rt, self._commit(rt, obj, None))

    def _put(self, call: _Call) -> tuple[int, Obj]:
        return 200, self._out(call.rt, self._update(call, _json_body(call.body)))

    def _update(self, call: _Call, body: Any) -> Obj:
        """PUT of the main resource, or of ``/status`` (only status changes there)."""
        rt, obj = call.rt, self._checked_body(call, body)
        meta = obj["metadata"]
        if meta.get("name") != call.name:
            raise _name_mismatch(meta.get("name"), str(call.name))
        with self._cond:
            old = self._get(call)
            old_meta = old["metadata"]
            if meta.get("resourceVersion") not in (None, "", old_meta["resourceVersion"]):
                raise conflict(rt, old_meta["name"])
            if call.sub == "status":
                new = {k: v for k, v in copy.deepcopy(old).items() if k != "status"}
                if obj.get("status") is not None:
                    new["status"] = obj["status"]
            else:
                new = obj
                for key in (
                    "uid",
                    "creationTimestamp",
                    "generation",
                    "resourceVersion",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                ):
                    meta.pop(key, None)
                    if key in old_meta:
                        meta[key] = old_meta[key]
                if rt.status:
                    new.pop("status", None)
                    if "status" in old:
                        new["status"] = copy.deepcopy(old["status"])
            return self._replace(call, old, new)

    def _replace(self, call: _Call, old: Obj, new: Obj) -> Obj:
        """Finish an update: no-ops change nothing; spec changes bump generation."""
        if _without_rv(new) == _without_rv(old):
            return old
        if _spec_view(call.rt, new) != _spec_view(call.rt, old):
            new["metadata"]["generation"] = int(old["metadata"].get("generation") or 1) + 1
        return new if call.dry_run else self._commit(call.rt, new, old)

    def _patch(self, call: _Call) -> tuple[int, Obj]:
        with self._cond:
            old = self._get(call)
            if call.sub == "scale":
                scale = apply_patch(self._to_scale(call.rt, old), call.body, call.content_type)
                return 200, self._write_scale(call, scale)
            patched = apply_patch(self._out(call.rt, old), call.body, call.content_type)
            return 200, self._out(call.rt, self._update(call, patched))

    def _to_scale(self, rt: Resource, obj: Obj) -> Obj:
        """The ``autoscaling/v1`` Scale view of an object, through its scale paths."""
        assert rt.scale is not None
        status: Obj = {"replicas": int(get_path(obj, rt.scale.status_replicas_path) or 0)}
        if rt.scale.label_selector_path:
            # The owning controller copies spec.selector to the selector path; emulate it.
            selector = get_path(obj, rt.scale.label_selector_path) or get_path(
                obj, ".spec.selector"
            )
            if selector:
                status["selector"] = selector_string(selector)
        keep = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        meta = {k: v for k, v in obj["metadata"].items() if k in keep}
        spec = {"replicas": int(get_path(obj, rt.scale.spec_replicas_path) or 0)}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": meta,
            "spec": spec,
            "status": status,
        }

    def _write_scale(self, call: _Call, scale: Any) -> Obj:
        """PUT /scale (and the end of PATCH /scale): only spec.replicas is written."""
        rt, name = call.rt, str(call.name)
        if not isinstance(scale, dict):
            raise bad_request("the request body must be a Scale object")
        meta, replicas = scale.get("metadata") or {}, (scale.get("spec") or {}).get("replicas")
        if meta.get("name") not in (None, name):
            raise _name_mismatch(meta.get("name"), name)
        if type(replicas) is not int or replicas < 0:
            raise invalid(
                "Scale", name, f"spec.replicas: Invalid value: {replicas!r}: must be >= 0"
            )
        with self._cond:
            old = self._get(call)
            if meta.get("resourceVersion") not in (None, "", old["metadata"]["resourceVersion"]):
                raise conflict(rt, name)
            new = copy.deepcopy(old)
            assert rt.scale is not None
            set_path(new, rt.scale.spec_replicas_path, replicas)
            return self._to_scale(rt, self._replace(call, old, new))

    def _delete(self, call: _Call) -> tuple[int, Obj]:
        options = _json_body(call.body) if call.body else {}
        options = options if isinstance(options, dict) else {}
        preconditions = options.get("preconditions") or {}
        rt = call.rt
        with self._cond:
            old = self._get(call)
            for key in ("resourceVersion", "uid"):
                if preconditions.get(key) not in (None, old["metadata"][key]):
                    expected, actual = preconditions[key], old["metadata"][key]
                    raise ApiError(409, f"Precondition failed: {key}: {expected} != {actual}")
            if call.dry_run or options.get("dryRun"):
                return 200, self._out(rt, old)
            if old["metadata"].get("finalizers"):
                new = copy.deepcopy(old)
                new["metadata"].setdefault("deletionTimestamp", _now_text(self._now()))
                new["metadata"].setdefault("deletionGracePeriodSeconds", 0)
                return 200, self._out(rt, self._replace(call, old, new))
            gone = self._remove(rt, old)
        if rt.delete_returns_object:
            return 200, self._out(rt, gone)
        details = {**_details(rt, str(call.name)), "uid": gone["metadata"]["uid"]}
        return 200, _status_object("Success", details)

    def _delete_collection(self, call: _Call) -> tuple[int, Obj]:
        query = {k: v for k, v in call.query.items() if k not in ("limit", "continue")}
        listed = self._list(_Call(**{**vars(call), "query": query}))
        for obj in listed["items"]:
            name, namespace = obj["metadata"]["name"], _ns(obj)
            with contextlib.suppress(ApiError):
                self._delete(
                    _Call(**{**vars(call), "name": name, "namespace": namespace, "body": b""})
                )
        return 200, listed

    # -- watch ------------------------------------------------------------------------------

    def _serve_watch(self, h: _Handler, call: _Call) -> None:
        """Stream watch events until timeoutSeconds, close_watches(), stop() or the client
        going away."""
        rt, selected = call.rt, self._selected(call.query)
        matches = selected
        if call.name is not None:  # legacy /watch/.../<name>
            matches = lambda obj: obj["metadata"]["name"] == call.name and selected(obj)  # noqa: E731
        timeout = call.query.get("timeoutSeconds")
        deadline = time.monotonic() + float(timeout) if timeout else None
        rv = call.query.get("resourceVersion") or "0"
        if not rv.isdigit():
            raise bad_request(f"invalid resourceVersion {rv!r}")
        with self._cond:
            epoch, cursor, initial = self._watch_epoch, int(rv), []
            if rv == "0":
                cursor = self._rv
                objs = self._objects(rt, call.namespace)
                initial = [
                    {"type": "ADDED", "object": self._out(rt, o)} for o in objs if matches(o)
                ]
            self._open_watches += 1
            self._cond.notify_all()
        watch = _Watch(rt, call.namespace, matches, cursor, deadline)
        h.close_connection = True
        try:
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            events, done = initial, False
            while True:
                if events:
                    data = b"".join(json.dumps(e).encode() + b"\n" for e in events)
                    h.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
                if done:
                    break
                events, done = self._wait_for_events(h, watch, epoch)
            h.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client went away
        finally:
            with self._cond:
                self._open_watches -= 1

    def _wait_for_events(self, h: _Handler, watch: _Watch, epoch: int) -> tuple[list[Obj], bool]:
        """Sleep until there are events past the watch's cursor: (events, stream finished)."""
        with self._cond:
            while True:
                if self._stopping or self._watch_epoch != epoch:
                    return [], True
                if watch.cursor < self._compacted_rv:
                    message = f"too old resource version: {watch.cursor} ({self._compacted_rv})"
                    return [{"type": "ERROR", "object": ApiError(410, message).status()}], True
                if self._history and self._history[-1].rv > watch.cursor:
                    return self._events_for(watch), False
                remaining = 1.0 if watch.deadline is None else watch.deadline - time.monotonic()
                if remaining <= 0:
                    return [], True
                if not self._cond.wait(min(remaining, 1.0)) and _client_gone(h.connection):
                    return [], True

    def _events_for(self, watch: _Watch) -> list[Obj]:
        """The events after the watch's cursor as this watch sees them; moves the cursor."""
        newer: list[_Event] = []
        for event in reversed(self._history):
            if event.rv <= watch.cursor:
                break
            newer.append(event)
        out = []
        for event in reversed(newer):
            watch.cursor = event.rv
            if event.key != watch.rt.key or watch.namespace not in (None, event.namespace):
                continue
            now = watch.matches(event.obj)
            before = event.old is not None and watch.matches(event.old)
            kind = event.type if now else ""
            if event.type == "MODIFIED":  # selectors turn modifications into entries and exits
                kind = {
                    (True, True): "MODIFIED",
                    (True, False): "ADDED",
                    (False, True): "DELETED",
                }.get((now, before), "")
            if kind:
                out.append({"type": kind, "object": self._out(watch.rt, event.obj)})
        return out


# --------------------------------------------------------------------------------------------
# Small helpers


def _ns(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("namespace") or "")


def _without_rv(obj: Obj) -> Obj:
    return {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}}


def _spec_view(rt: Resource, obj: Obj) -> Obj:
    """What moves ``metadata.generation``: all but metadata (and status, given a status
    subresource)."""
    return {k: v for k, v in obj.items() if k != "metadata" and not (rt.status and k == "status")}


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as exc:
        raise bad_request(f"invalid JSON body: {exc}") from exc


def _random_suffix() -> str:
    return "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))


def _api_group(group: str, versions: list[str]) -> Obj:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def _client_gone(conn: socket.socket) -> bool:
    """True when the peer has closed the connection (checked without consuming data)."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        return bool(readable) and conn.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    """A fresh, started Kubernetes API emulator for one test."""
    with KubeEmulator() as emulator:
        yield emulator
