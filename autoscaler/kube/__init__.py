"""The Kubernetes boundary: lazily created, shared API clients, and API errors translated.

The ``kubernetes`` package is imported only when the first client is asked for, so a standalone
service without Kubernetes-backed specs never pays for it. Configuration comes from the standard
places: the in-cluster service account when running in a pod, else ``KUBECONFIG`` /
``~/.kube/config`` (or an explicit file and context).

Error translation (``translate``) maps API failures onto :mod:`autoscaler.errors`:

- 409 Conflict, 429, 5xx, timeouts and connection problems → ``RetryableError``
  (a conflict means "re-read and retry")
- 404 → ``NotFoundError``
- 401, 403 and other 4xx → ``PermanentError``

The HTTP reason from the API server's ``Status`` body is kept as the error's ``code``.
"""

from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING, Any

from autoscaler.errors import AutoscalerError, NotFoundError, PermanentError, RetryableError

if TYPE_CHECKING:
    from autoscaler.kube.cache import ClusterCache


def _status_reason(exc: Any) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    reason = body.get("reason") if isinstance(body, dict) else None
    return str(reason or getattr(exc, "reason", None) or f"HTTP{getattr(exc, 'status', '')}")


def _status_message(exc: Any) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or getattr(exc, "reason", "") or exc)


def translate(exc: Exception, action: str) -> AutoscalerError:
    """Turn an exception from the kubernetes client raised by ``action`` (e.g. "PATCH
    machinedeployments/default/md-0/scale") into an AutoscalerError. Use as
    ``raise translate(e, ...) from e``."""
    if isinstance(exc, AutoscalerError):
        return exc
    from kubernetes.client.exceptions import ApiException
    from urllib3 import exceptions as urllib3_errors

    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        code = _status_reason(exc)
        message = f"{action}: {status} {code}: {_status_message(exc)}"
        if status == 409 or status == 429 or status >= 500 or status == 0:
            return RetryableError(message, code=code)
        if status == 404:
            return NotFoundError(message, code=code)
        return PermanentError(message, code=code)
    if isinstance(exc, urllib3_errors.HTTPError | ConnectionError | TimeoutError):
        return RetryableError(f"{action}: {exc}", code="ConnectionError")
    return PermanentError(f"{action}: {type(exc).__name__}: {exc}", code="InternalError")


class KubeClients:
    """One ``ApiClient`` per service, created on first use and shared by every backend."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        self._kubeconfig = kubeconfig
        self._context = context
        self._lock = threading.Lock()
        self._api_client: Any = None
        self._cache: ClusterCache | None = None

    @property
    def api_client(self) -> Any:
        with self._lock:
            if self._api_client is None:
                self._api_client = self._load()
            return self._api_client

    def _load(self) -> Any:
        from kubernetes import client, config

        configuration = client.Configuration()
        if self._kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            try:
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=self._kubeconfig,
                    context=self._context,
                    client_configuration=configuration,
                )
            except Exception as exc:  # a missing or broken kubeconfig
                raise PermanentError(
                    f"no Kubernetes configuration: {exc}", code="NoKubeconfig"
                ) from exc
        return client.ApiClient(configuration)

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api_client)

    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api_client)

    def coordination(self) -> Any:
        from kubernetes import client

        return client.CoordinationV1Api(self.api_client)

    def events(self) -> Any:
        from kubernetes import client

        return client.EventsV1Api(self.api_client)

    def cluster_cache(self) -> ClusterCache:
        """The one watch-fed cache of pods and nodes (:mod:`autoscaler.kube.cache`) shared by
        the cluster producers; its list and watch threads start on the first call."""
        from autoscaler.kube.cache import ClusterCache

        with self._lock:
            if self._cache is None:
                self._cache = ClusterCache(lambda: self.api_client)
            cache = self._cache
        cache.start()
        return cache

    def close(self) -> None:
        with self._lock:
            cache, self._cache = self._cache, None
        if cache is not None:
            cache.stop()
        with self._lock:
            if self._api_client is not None:
                self._api_client.close()
                self._api_client = None
