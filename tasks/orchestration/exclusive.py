"""One writer per output, any number of readers: Prefect global concurrency limits per URI.

Two runs writing the same dataset at once (the nightly run and a manual rerun, say)
would interleave their parts. Each URI has a write slot (a limit of 1): the second
writer waits briefly for the first, then fails with a clear error.

A run that reads datasets over several passes (dedup reads its input and the earlier
outputs it dedups against) is to hold a read lease on each (:func:`reading`), so that
neither a writer nor retention, which removes a partition while holding its write
slot, changes them under it. Each URI also has a read limit with room for many
readers: a reader takes the write slot for a moment (so it cannot start while a run
writes), takes a read slot, and gives the write slot back. A writer, once it has the
write slot, waits until no read slot is held; no reader can start meanwhile, so there
is no race.

Every slot is a lease that the holder renews: a crashed run cannot hold one for longer
than ``LEASE_SECONDS`` (plus up to 15 s until the server's next look for expired leases).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError  # sync raises it too
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from tasks.errors import OutputBusyError

# How long a writer waits for the write slot and then for the readers, and a reader for
# the write slot, before OutputBusyError. Read at each call: tests set it lower.
WAIT_SECONDS = 30.0
# A slot's lease: renewed while held, expired this long after a crashed holder stopped
# renewing it (the server accepts 60 s to a day).
LEASE_SECONDS = 300.0
# Between two looks at a busy slot, and at a URI's readers.
POLL_SECONDS = 0.5
# Read slots per URI: more runs than will ever read one dataset at once.
READ_LIMIT = 10_000


def limit_name(uri: str) -> str:
    """The write slot's limit name (names cannot hold every character a URI can)."""
    return f"write-{_digest(uri)}"


def read_limit_name(uri: str) -> str:
    """The read slots' limit name."""
    return f"read-{_digest(uri)}"


def _digest(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:24]


def _wait(wait_seconds: float | None) -> float:
    return WAIT_SECONDS if wait_seconds is None else wait_seconds


def _has_room(client: SyncPrefectClient, name: str, size: int) -> bool:
    """Whether the limit ``name`` has a free slot now; it is created with ``size`` slots
    if it does not exist yet. A hint only: the acquisition itself is atomic."""
    try:
        limit = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        with contextlib.suppress(ObjectAlreadyExists):
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=name, limit=size)
            )
        return True
    return not limit.active or limit.active_slots < limit.limit


def _is_locked(exc: ConcurrencySlotAcquisitionError) -> bool:
    """Whether the server refused because the limit is full (423), not for an error."""
    cause = exc.__cause__
    return isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == 423


@contextlib.contextmanager
def _slot(name: str, size: int, wait: float, busy: Callable[[], str]) -> Iterator[None]:
    """Hold one slot of the limit ``name`` (of ``size`` slots, created if missing) as a
    renewed lease; if the limit stays full for ``wait`` seconds, raise
    OutputBusyError(``busy()``).

    A full limit is polled by reading it, which the server answers quietly; Prefect's
    own retries would log an error for each refusal (``max_retries=0``), or sleep for
    the server's Retry-After, which follows the limit's average occupancy (up to 30 s
    after a long write) and would outlast a reader's brief hold of a write slot.
    """
    deadline = time.monotonic() + wait
    with contextlib.ExitStack() as held:
        with get_client(sync_client=True) as client:
            while True:
                if _has_room(client, name, size):
                    try:
                        held.enter_context(
                            concurrency(
                                name,
                                occupy=1,
                                max_retries=0,
                                lease_duration=LEASE_SECONDS,
                                strict=True,
                            )
                        )
                        break
                    except ConcurrencySlotAcquisitionError as exc:
                        if not _is_locked(exc):  # an error, not a slot taken meanwhile
                            raise
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OutputBusyError(busy())
                time.sleep(min(POLL_SECONDS, left))
        yield


def _writing_message(uri: str, wait: float) -> Callable[[], str]:
    return lambda: (
        f"another run is writing {uri} (waited {wait:.0f} s for it); "
        f"rerun when it has finished (Prefect concurrency limit {limit_name(uri)})"
    )


def _wait_for_readers(uri: str, wait: float) -> None:
    """Return once no read slot of ``uri`` is held; OutputBusyError after ``wait`` s."""
    name = read_limit_name(uri)
    deadline = time.monotonic() + wait
    with get_client(sync_client=True) as client:
        while True:
            try:
                limit = client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                return  # never read under a lease
            if not limit.active or limit.active_slots == 0:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise OutputBusyError(
                    f"{uri} is being read by another run ({limit.active_slots} read "
                    f"lease(s); waited {wait:.0f} s for them to end); rerun when it has "
                    f"finished (Prefect concurrency limit {name})"
                )
            time.sleep(min(POLL_SECONDS, left))


@contextlib.contextmanager
def exclusive_output(uri: str, *, wait_seconds: float | None = None) -> Iterator[None]:
    """Hold the only write slot of ``uri`` for the duration of the block, once no run
    holds a read lease on it.

    Waits up to ``wait_seconds`` (default ``WAIT_SECONDS``) for the write slot, then as
    long again for the readers to finish; raises OutputBusyError if either is still busy.
    """
    wait = _wait(wait_seconds)
    with _slot(limit_name(uri), 1, wait, _writing_message(uri, wait)):
        _wait_for_readers(uri, wait)
        yield


@contextlib.contextmanager
def exclusive_outputs(uris: list[str], *, wait_seconds: float | None = None) -> Iterator[None]:
    """:func:`exclusive_output` of each of ``uris`` (a dataset and its companions), taken
    in the order given and all held for the block."""
    with contextlib.ExitStack() as held:
        for uri in dict.fromkeys(uris):
            held.enter_context(exclusive_output(uri, wait_seconds=wait_seconds))
        yield


@contextlib.contextmanager
def reading(uris: list[str], *, wait_seconds: float | None = None) -> Iterator[None]:
    """Hold a read lease on each of ``uris`` (canonical, as for :func:`exclusive_output`)
    for the duration of the block.

    Any number of runs may read a URI at once; none starts while a run holds its write
    slot: each waits up to ``wait_seconds`` (default ``WAIT_SECONDS``) for it, then
    raises OutputBusyError (and gives back the leases it took). While the leases are
    held, :func:`exclusive_output` of those URIs waits, and then fails. The leases are
    given back when the block ends, however it ends, or expire ``LEASE_SECONDS`` after
    a crashed holder stopped renewing them.
    """
    wait = _wait(wait_seconds)
    with contextlib.ExitStack() as leases:
        for uri in dict.fromkeys(uris):
            # The write slot only for as long as it takes to get a read slot: no writer
            # is between its own check of the readers and its end meanwhile.
            with _slot(limit_name(uri), 1, wait, _writing_message(uri, wait)):
                leases.enter_context(
                    _slot(
                        read_limit_name(uri),
                        READ_LIMIT,
                        wait,
                        lambda uri=uri: f"{READ_LIMIT} runs are reading {uri} already",
                    )
                )
        yield
