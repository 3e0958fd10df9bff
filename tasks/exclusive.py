"""One writer per output: a Prefect global concurrency limit of 1 per output URI.

Two runs writing the same dataset at once (the nightly run and a manual rerun, say)
would interleave their parts. The second one waits briefly for the first, then fails
with a clear error. The slot is a lease that the holder renews: a crashed run cannot
hold it for longer than ``LEASE_SECONDS``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.asyncio import AcquireConcurrencySlotTimeoutError  # sync raises it too
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from tasks.errors import OutputBusyError

WAIT_SECONDS = 30.0
LEASE_SECONDS = 300.0


def limit_name(uri: str) -> str:
    """A limit name per output (names cannot hold every character a URI can)."""
    return f"write-{hashlib.sha256(uri.encode()).hexdigest()[:24]}"


def _ensure_limit(name: str) -> None:
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1)
                )


@contextlib.contextmanager
def exclusive_output(uri: str) -> Iterator[None]:
    """Hold the only write slot of ``uri`` for the duration of the block."""
    name = limit_name(uri)
    _ensure_limit(name)
    acquired = False
    try:
        with concurrency(
            name, occupy=1, timeout_seconds=WAIT_SECONDS, lease_duration=LEASE_SECONDS, strict=True
        ):
            acquired = True
            yield
    except AcquireConcurrencySlotTimeoutError as exc:
        if acquired:
            raise
        raise OutputBusyError(
            f"another run is writing {uri} (waited {WAIT_SECONDS:.0f} s for it); "
            f"rerun when it has finished (Prefect concurrency limit {name})"
        ) from exc
