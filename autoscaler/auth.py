"""Who may call the HTTP API: bearer tokens checked by an :class:`Authenticator`.

The state-changing endpoints (pause, resume, override) always need a bearer token; the read
endpoints need one too with ``ServerSettings.private_reads``. Two implementations of one small
protocol, tried in order by :class:`ChainAuthenticator`:

* :class:`StaticTokenAuthenticator` — tokens from a file (``ServerSettings.token_file``,
  ``AUTOSCALER_SERVER__TOKEN_FILE``): one per line, either the token alone (the caller is then
  called ``static-token``) or ``token,user`` (as a kube-apiserver token file). The file is read
  again when it changes, so a rotated Kubernetes Secret takes effect without a restart. Tokens are
  compared in constant time (``hmac.compare_digest`` over SHA-256 digests). A valid token may do
  everything.
* :class:`KubernetesAuthenticator` — cluster mode: a ``TokenReview`` asks the API server who the
  token belongs to, then a ``SubjectAccessReview`` whether that user may do the verb on the
  resource (e.g. ``update`` ``horizontalautoscalers`` in namespace ``team-a``, API group
  ``autoscaler.dev``; ``get`` on the non-resource path ``/metrics``). Results are reused for
  ``ServerSettings.auth_cache_seconds``.

Outcomes of :meth:`Authenticator.authenticate`: an :class:`Identity` (allowed); None (this
authenticator does not know the token); :class:`Forbidden` (known, but not allowed this);
:class:`AuthUnavailable` (it cannot check right now: fail closed). With nothing configured
(:attr:`Authenticator.configured` False) the server disables the endpoints that need a token.

Token values are never logged, stored or echoed: caches are keyed by a SHA-256 digest.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from autoscaler.api.common import API_GROUP

if TYPE_CHECKING:
    from autoscaler.kube import KubeClients
    from autoscaler.settings import ServerSettings

log = logging.getLogger("autoscaler.auth")

#: The name of a caller whose token-file line names no user.
STATIC_USER = "static-token"
#: Cache entries kept at most (per cache); the oldest go first.
CACHE_SIZE = 1024


class Forbidden(Exception):
    """The caller is known but may not do this (HTTP 403)."""


class AuthUnavailable(Exception):
    """Tokens cannot be checked right now (HTTP 503): the token file or the API server failed."""


@dataclass(frozen=True, slots=True)
class Access:
    """What a request wants to do, in Kubernetes authorization terms.

    Either a resource of API group ``autoscaler.dev`` (``resource``, maybe ``namespace`` and
    ``name``), or a non-resource ``path`` such as ``/metrics``.
    """

    verb: str
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    path: str | None = None

    def describe(self) -> str:
        if self.path is not None:
            return f"{self.verb} {self.path}"
        where = "/".join(p for p in (self.namespace, self.name) if p)
        target = f"{self.resource}.{API_GROUP}"
        return f"{self.verb} {target} {where}".rstrip() if where else f"{self.verb} {target}"


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str | None = None
    #: Where it was authenticated: ``token-file`` or ``kubernetes``.
    source: str = "token-file"
    extra: dict[str, list[str]] = field(default_factory=dict, compare=False)


class Authenticator(Protocol):
    """Checks a bearer token for one kind of access."""

    @property
    def configured(self) -> bool:
        """Whether any token can be valid at all (False: the endpoints are disabled)."""
        ...

    def authenticate(self, token: str, access: Access) -> Identity | None:
        """The caller when ``token`` is valid and allowed ``access``; None when the token is
        unknown here. Raises :class:`Forbidden` or :class:`AuthUnavailable`."""
        ...


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class _TTLCache:
    """A small thread-safe cache whose entries expire ``ttl`` seconds after they were put."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._clock = clock
        self._items: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> tuple[bool, Any]:
        with self._lock:
            entry = self._items.get(key)
            if entry is None or entry[0] <= self._clock():
                self._items.pop(key, None)
                return False, None
            return True, entry[1]

    def put(self, key: Any, value: Any) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            if len(self._items) >= CACHE_SIZE:
                self._items.pop(next(iter(self._items)))
            self._items[key] = (self._clock() + self._ttl, value)


# --------------------------------------------------------------------------- static tokens


class StaticTokenAuthenticator:
    """Bearer tokens from a file, re-read when the file changes (see the module docstring).

    ``recheck_seconds``: the file is also read again this often even when its size and times
    look unchanged (a rewrite within one timestamp tick).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        recheck_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = os.fspath(path)
        self._recheck = recheck_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int, int] | None = None
        self._read_at = -float("inf")
        #: (SHA-256 digest of the token, user)
        self._tokens: list[tuple[bytes, str]] = []
        self._problem: str | None = None

    @property
    def configured(self) -> bool:
        return True

    def _load(self) -> None:
        """Read the file again when it changed (or ``recheck_seconds`` passed)."""
        try:
            stat = os.stat(self.path)
        except OSError as exc:
            self._fail(f"token file {self.path} cannot be read: {exc.strerror or exc}")
            return
        signature = (stat.st_ino, stat.st_dev, stat.st_size, stat.st_mtime_ns)
        now = self._clock()
        if signature == self._signature and now - self._read_at < self._recheck:
            return
        try:
            with open(self.path, encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as exc:
            self._fail(f"token file {self.path} cannot be read: {type(exc).__name__}")
            return
        tokens: list[tuple[bytes, str]] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            token, _, rest = line.partition(",")
            user = rest.split(",", 1)[0].strip().strip('"') or STATIC_USER
            if token.strip():
                tokens.append((_digest(token.strip()), user))
        if signature != self._signature:
            if not tokens:
                log.warning("token file %s holds no token: every token is refused", self.path)
            else:
                log.info("token file %s read: %d token(s)", self.path, len(tokens))
        self._signature, self._read_at, self._tokens, self._problem = signature, now, tokens, None

    def _fail(self, problem: str) -> None:
        if problem != self._problem:
            log.error("%s; state-changing calls are refused until it can", problem)
        self._signature, self._tokens, self._problem = None, [], problem

    def authenticate(self, token: str, access: Access) -> Identity | None:
        with self._lock:
            self._load()
            problem, tokens = self._problem, list(self._tokens)
        if problem is not None:
            raise AuthUnavailable(problem)
        presented = _digest(token)
        found: str | None = None
        for digest, user in tokens:  # compare with every token: no early exit
            if hmac.compare_digest(presented, digest) and found is None:
                found = user
        return Identity(found, source="token-file") if found is not None else None


# --------------------------------------------------------------------------- Kubernetes


class KubernetesAuthenticator:
    """TokenReview, then SubjectAccessReview, through the service's Kubernetes clients."""

    def __init__(
        self,
        kube: KubeClients,
        *,
        cache_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._tokens = _TTLCache(cache_seconds, clock)
        self._access = _TTLCache(cache_seconds, clock)

    @property
    def configured(self) -> bool:
        return True

    def authenticate(self, token: str, access: Access) -> Identity | None:
        digest = _digest(token)
        hit, identity = self._tokens.get(digest)
        if not hit:
            identity = self._review_token(token)
            self._tokens.put(digest, identity)
        if identity is None:
            return None
        key = (identity.name, identity.groups, access)
        hit, allowed = self._access.get(key)
        if not hit:
            allowed = self._review_access(identity, access)
            self._access.put(key, allowed)
        if not allowed:
            raise Forbidden(f"{identity.name} may not {access.describe()}")
        assert isinstance(identity, Identity)
        return identity

    def _review_token(self, token: str) -> Identity | None:
        from kubernetes import client

        review = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
        try:
            result = client.AuthenticationV1Api(self._kube.api_client).create_token_review(review)
        except Exception as exc:
            raise self._unavailable("TokenReview", exc) from None
        status = result.status
        if status is None or not status.authenticated or status.user is None:
            return None
        user = status.user
        return Identity(
            name=str(user.username or ""),
            groups=tuple(user.groups or ()),
            uid=user.uid,
            source="kubernetes",
            extra={str(k): list(v) for k, v in (user.extra or {}).items()},
        )

    def _review_access(self, identity: Identity, access: Access) -> bool:
        from kubernetes import client

        spec = client.V1SubjectAccessReviewSpec(
            user=identity.name,
            groups=list(identity.groups) or None,
            uid=identity.uid,
            extra=identity.extra or None,
        )
        if access.path is not None:
            spec.non_resource_attributes = client.V1NonResourceAttributes(
                path=access.path, verb=access.verb
            )
        else:
            spec.resource_attributes = client.V1ResourceAttributes(
                group=API_GROUP,
                resource=access.resource,
                verb=access.verb,
                namespace=access.namespace,
                name=access.name,
            )
        review = client.V1SubjectAccessReview(spec=spec)
        api = client.AuthorizationV1Api(self._kube.api_client)
        try:
            result = api.create_subject_access_review(review)
        except Exception as exc:
            raise self._unavailable("SubjectAccessReview", exc) from None
        status = result.status
        return bool(status is not None and status.allowed and not status.denied)

    @staticmethod
    def _unavailable(what: str, exc: Exception) -> AuthUnavailable:
        """Log the failure (never the request: it holds the token) and refuse."""
        from autoscaler.kube import translate

        error = translate(exc, f"create {what}")
        log.error("cannot check a caller's token: %s", error)
        return AuthUnavailable(f"{what} failed: {error.code}")


# --------------------------------------------------------------------------- composition


class ChainAuthenticator:
    """Tries each authenticator in order; the first that knows the token decides."""

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        self.authenticators = list(authenticators)

    @property
    def configured(self) -> bool:
        return any(a.configured for a in self.authenticators)

    def authenticate(self, token: str, access: Access) -> Identity | None:
        for authenticator in self.authenticators:
            identity = authenticator.authenticate(token, access)
            if identity is not None:
                return identity
        return None


def authenticator_for(
    settings: ServerSettings, kube: KubeClients | None = None
) -> ChainAuthenticator:
    """The service's authenticator: the token file when one is set, then (cluster mode, with
    ``kube``) Kubernetes TokenReview and SubjectAccessReview. Nothing set: not configured."""
    chain: list[Authenticator] = []
    if settings.token_file:
        chain.append(StaticTokenAuthenticator(settings.token_file))
    if kube is not None:
        chain.append(KubernetesAuthenticator(kube, cache_seconds=settings.auth_cache_seconds))
    return ChainAuthenticator(chain)
