"""The error tree, named by what happens next.

::

    AutoscalerError
    ├── SpecError            the input is wrong: report it with its field path; run the rest
    │   └── NotAvailableError   a valid type whose implementation is not in this build
    ├── RetryableError       try again later with capped backoff (throttling, 5xx, conflicts)
    └── PermanentError       retrying will not help until something changes (access denied, bad id)
        └── NotFoundError       the referenced object does not exist

Backends translate their own exceptions into these at the boundary (``raise ... from exc``).
Each error is either logged or raised, never both: the control loop is the one place that logs
backend errors and turns them into conditions.
"""

from __future__ import annotations


class AutoscalerError(Exception):
    """Base of every error the service raises on purpose."""

    #: A short machine-readable code shown in conditions (e.g. an AWS error code).
    code: str = "Error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class SpecError(AutoscalerError):
    """A spec is invalid. ``path`` names the offending field (``spec.maxReplicas``)."""

    code = "InvalidSpec"

    def __init__(self, message: str, *, path: str = "", code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.path = path


class NotAvailableError(SpecError):
    """The spec names a type that is valid but whose implementation this build does not have."""

    code = "NotAvailable"


class RetryableError(AutoscalerError):
    """A transient failure: the caller retries later with capped exponential backoff."""

    code = "Retryable"


class PermanentError(AutoscalerError):
    """Retrying will not help until the spec or the environment changes."""

    code = "Permanent"


class NotFoundError(PermanentError):
    """The object a spec refers to does not exist."""

    code = "NotFound"
