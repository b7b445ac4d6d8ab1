"""The AWS boundary: lazily created, reused boto3 clients, and AWS errors translated.

boto3 is imported only when the first AWS client is asked for, so a service without AWS specs
never pays for it. Region, credentials and endpoints come from the standard boto3 chain
(``AWS_REGION``, ``AWS_PROFILE``, IRSA web identity, instance profile, ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_<SERVICE>``); nothing here adds its own flags.

Error translation (``translate``) maps AWS failures onto :mod:`autoscaler.errors`:

- throttling, HTTP 5xx, connection problems and ``ResourceInUseException`` → ``RetryableError``
- access denied, bad credentials, missing region → ``PermanentError``
- missing queue / group / node group → ``NotFoundError``
- any other client error → ``PermanentError``

The AWS error code is kept as the error's ``code`` so it shows in conditions.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from autoscaler.errors import AutoscalerError, NotFoundError, PermanentError, RetryableError

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "PriorRequestNotComplete",
        "ProvisionedThroughputExceededException",
        "EC2ThrottledException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
    }
)
RETRYABLE_CODES = THROTTLING_CODES | {"ResourceInUseException", "ScalingActivityInProgress"}
ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "AuthFailure",
        "SignatureDoesNotMatch",
        "MissingAuthenticationToken",
    }
)
NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NotFoundException",
        "NoSuchEntity",
    }
)


def translate(exc: Exception, action: str) -> AutoscalerError:
    """Turn a botocore exception raised by ``action`` (e.g. "SetDesiredCapacity on asg-1") into
    an :class:`~autoscaler.errors.AutoscalerError`. Call as ``raise translate(e, ...) from e``."""
    from botocore import exceptions as botocore_errors

    if isinstance(exc, botocore_errors.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        message = f"{action}: {code}: {error.get('Message') or exc}"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in RETRYABLE_CODES or status >= 500 or status == 429:
            return RetryableError(message, code=code)
        if code in ACCESS_CODES:
            return PermanentError(message, code=code)
        if code in NOT_FOUND_CODES:
            return NotFoundError(message, code=code)
        return PermanentError(message, code=code)
    if isinstance(
        exc, botocore_errors.NoCredentialsError | botocore_errors.PartialCredentialsError
    ):
        return PermanentError(f"{action}: no AWS credentials found", code="NoCredentials")
    if isinstance(exc, botocore_errors.NoRegionError):
        return PermanentError(f"{action}: no AWS region (set AWS_REGION)", code="NoRegion")
    if isinstance(
        exc,
        botocore_errors.EndpointConnectionError
        | botocore_errors.ConnectionClosedError
        | botocore_errors.ConnectTimeoutError
        | botocore_errors.ReadTimeoutError,
    ):
        return RetryableError(f"{action}: {exc}", code="ConnectionError")
    if isinstance(exc, botocore_errors.BotoCoreError):
        return RetryableError(f"{action}: {exc}", code=type(exc).__name__)
    return PermanentError(f"{action}: {type(exc).__name__}: {exc}", code="InternalError")


class AWSClients:
    """One boto3 session per service; one client per (service name, region), created on first
    use and shared by every backend (boto3 clients are thread-safe, sessions are not)."""

    def __init__(self, connect_timeout: float = 5.0, read_timeout: float = 10.0) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[tuple[str, str | None], Any] = {}

    def client(self, service: str, region: str | None = None) -> Any:
        key = (service, region)
        with self._lock:
            found = self._clients.get(key)
            if found is not None:
                return found
            import boto3
            from botocore.config import Config

            if self._session is None:
                self._session = boto3.session.Session()
            config = Config(
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
                retries={"mode": "standard", "max_attempts": 2},
                user_agent_extra="node-autoscaler",
            )
            # boto3 reads AWS_DEFAULT_REGION only; other AWS SDKs read AWS_REGION first.
            region_name = region or os.environ.get("AWS_REGION") or None
            created = self._session.client(service, region_name=region_name, config=config)
            self._clients[key] = created
            return created
