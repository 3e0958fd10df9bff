"""Which failures a retry can fix. Everything else fails at once with its cause."""

from __future__ import annotations

import re

from tasks.errors import DeadlineExceeded, InputError, OutputBusyError, TransientPartError

# Messages of transient storage errors as pyarrow and boto surface them (S3 throttling,
# 5xx, dropped connections); pyarrow raises them all as plain OSError.
# pyarrow spells AWS error names in capitals with underscores (SLOW_DOWN).
_TRANSIENT_MESSAGE = re.compile(
    r"Slow_?Down|Throttl|Request_?Timeout|Internal_?(?:Error|Failure)|Service_?Unavailable|"
    r"NETWORK_CONNECTION|HTTP status 5\d\d|Connection reset|connection was closed|"
    r"timed out|Timeout|Broken pipe",
    re.IGNORECASE,
)


def _ray_transient_types() -> tuple[type[BaseException], ...]:
    from ray import exceptions as rex

    names = (
        "WorkerCrashedError",
        "NodeDiedError",
        "ObjectLostError",
        "OwnerDiedError",
        "ObjectReconstructionFailedError",
        "ActorDiedError",
        "ActorUnavailableError",
        "RaySystemError",
        "LocalRayletDiedError",
        "OutOfMemoryError",
        "GetTimeoutError",
    )
    return tuple(getattr(rex, n) for n in names if hasattr(rex, n))


# S3 error codes (as boto3 reports them) that a later attempt can get past.
_TRANSIENT_S3_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "500",
    "502",
    "503",
    "504",
}


def _botocore_transient(exc: BaseException) -> bool | None:
    """Classify a botocore error, or None if ``exc`` is not one."""
    try:
        from botocore import exceptions as bex
    except ImportError:  # pragma: no cover - botocore comes with prefect-aws
        return None
    if isinstance(exc, bex.ClientError):
        return str(exc.response.get("Error", {}).get("Code")) in _TRANSIENT_S3_CODES
    if isinstance(exc, (bex.ConnectionError, bex.HTTPClientError)):
        return True
    if isinstance(exc, bex.BotoCoreError):
        return False
    return None


def is_transient(exc: BaseException) -> bool:
    """True if ``exc`` may not happen again: lost workers, nodes or objects; throttling."""
    deterministic = (
        InputError,
        OutputBusyError,
        DeadlineExceeded,
        PermissionError,
        FileNotFoundError,
    )
    if isinstance(exc, (*deterministic, NotADirectoryError)):
        return False
    if isinstance(exc, TransientPartError):  # a part that its own retries did not get past
        return True
    botocore_verdict = _botocore_transient(exc)
    if botocore_verdict is not None:
        return botocore_verdict
    if isinstance(exc, _ray_transient_types()):
        return True
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, OSError) and _TRANSIENT_MESSAGE.search(str(exc)):
        return True
    cause = exc.__cause__
    return cause is not None and cause is not exc and is_transient(cause)


def retry_if_transient(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry transient failures only."""
    exc = state.data
    return isinstance(exc, BaseException) and is_transient(exc)
