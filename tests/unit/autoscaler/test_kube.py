import json

import pytest
from kubernetes.client.exceptions import ApiException

from autoscaler.errors import NotFoundError, PermanentError, RetryableError
from autoscaler.kube import translate


def _api_error(status: int, reason: str) -> ApiException:
    error = ApiException(status=status, reason="HTTP reason")
    error.body = json.dumps({"kind": "Status", "reason": reason, "message": f"it is {reason}"})
    return error


@pytest.mark.parametrize(
    ("status", "reason", "kind"),
    [
        (409, "Conflict", RetryableError),
        (429, "TooManyRequests", RetryableError),
        (500, "InternalError", RetryableError),
        (503, "ServiceUnavailable", RetryableError),
        (404, "NotFound", NotFoundError),
        (403, "Forbidden", PermanentError),
        (422, "Invalid", PermanentError),
    ],
    ids=[
        "conflict",
        "throttled",
        "server error",
        "unavailable",
        "not found",
        "forbidden",
        "invalid",
    ],
)
def test_api_errors_become_errors_named_by_what_happens_next(
    status: int, reason: str, kind: type
) -> None:
    error = translate(_api_error(status, reason), "PATCH thing")
    assert type(error) is kind
    assert error.code == reason
    assert f"PATCH thing: {status} {reason}: it is {reason}" == str(error)


def test_connection_problems_are_retryable() -> None:
    from urllib3.exceptions import MaxRetryError

    error = translate(MaxRetryError(None, "http://x", "refused"), "GET pods")  # type: ignore[arg-type]
    assert isinstance(error, RetryableError) and error.code == "ConnectionError"
