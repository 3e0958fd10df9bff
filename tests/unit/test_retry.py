"""Only failures that can go away are retried."""

import pytest
from ray import exceptions as rex

from tasks.errors import InputError
from tasks.orchestration.retry import is_transient


@pytest.mark.parametrize(
    "exc",
    [
        rex.WorkerCrashedError(),
        rex.ObjectLostError("0" * 56, "", ""),
        ConnectionResetError("peer reset"),
        TimeoutError("read"),
        OSError(
            "AWS Error SLOW_DOWN during UploadPart operation: Please reduce your request rate."
        ),
        OSError("AWS Error SERVICE_UNAVAILABLE during PutObject operation: busy"),
        OSError("AWS Error NETWORK_CONNECTION during UploadPart operation: curlCode: 28"),
        OSError("When reading: HTTP status 503 ServiceUnavailable"),
    ],
)
def test_transient(exc):
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        InputError("bad file"),
        PermissionError("AccessDenied"),
        FileNotFoundError("gone"),
        ValueError("bug"),
        OSError("AWS Error ACCESS_DENIED during HeadObject operation"),
    ],
)
def test_deterministic(exc):
    assert not is_transient(exc)


def _client_error(code):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "x"}}, "PutObject")


@pytest.mark.parametrize(
    ("code", "transient"),
    [
        ("SlowDown", True),
        ("503", True),
        ("InternalError", True),
        ("AccessDenied", False),
        ("NoSuchBucket", False),
    ],
)
def test_s3_error_codes(code, transient):
    assert is_transient(_client_error(code)) is transient


def test_s3_connection_errors_are_transient():
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    assert is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert not is_transient(NoCredentialsError())


def test_cause_chain_is_followed():
    try:
        try:
            raise ConnectionResetError("reset")
        except ConnectionResetError as inner:
            raise RuntimeError("write failed") from inner
    except RuntimeError as outer:
        assert is_transient(outer)


def test_s3_attempts_follow_aws_max_attempts_and_refuse_a_bad_one(monkeypatch):
    from tasks.errors import InputError
    from tasks.store import storage

    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    assert storage.s3_max_attempts() == storage.S3_MAX_ATTEMPTS
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "9")
    assert storage.s3_max_attempts() == 9
    client = storage.S3Settings(region="us-east-1").client()
    assert client.meta.config.retries["total_max_attempts"] == 9  # the first try included
    for bad in ("0", "three", "-2"):
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", bad)
        with pytest.raises(InputError, match="AWS_MAX_ATTEMPTS"):
            storage.s3_max_attempts()
