"""Write slots and read leases (tasks/orchestration/exclusive.py) against the session's
Prefect server: many readers at once, no reader while a run writes, no writer (nor
retention) while a run reads. No Ray. Each contender runs in a thread of its own, as
another run would."""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from tasks.errors import OutputBusyError
from tasks.orchestration import exclusive

pytestmark = pytest.mark.usefixtures("prefect_server")

SHORT = 1.0  # seconds a contender waits in these tests


@pytest.fixture
def uri() -> str:
    return f"file:///data/exclusive-test/{uuid.uuid4().hex}"


@pytest.fixture
def other(uri) -> str:
    return f"{uri}-other"


class Pool(ThreadPoolExecutor):
    """Threads that see the test's Prefect settings (a context variable, which a plain
    thread does not inherit: it would start a Prefect server of its own)."""

    def submit(self, fn, /, *args, **kwargs):
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


@pytest.fixture
def pool():
    with Pool(max_workers=2) as executor:
        yield executor


def readers(uri: str) -> int:
    """Read leases held on ``uri`` now, as the server counts them."""
    with get_client(sync_client=True) as client:
        try:
            return client.read_global_concurrency_limit_by_name(
                exclusive.read_limit_name(uri)
            ).active_slots
        except ObjectNotFound:
            return 0


def writers(uri: str) -> int:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(exclusive.limit_name(uri)).active_slots


def enter(cm) -> None:
    """Enter and leave ``cm`` (in a pool thread: another run)."""
    with cm:
        pass


def write_at_once(uri: str) -> None:
    """exclusive_output(uri) must get in without waiting."""
    start = time.monotonic()
    with exclusive.exclusive_output(uri, wait_seconds=0):
        assert writers(uri) == 1
    assert time.monotonic() - start < 5


def test_two_readers_of_one_uri_do_not_block_each_other(uri, pool):
    with exclusive.reading([uri]), exclusive.reading([uri, uri]):  # nested; a repeat is one
        assert readers(uri) == 2
        assert writers(uri) == 0  # the write slot was only taken for a moment
    assert readers(uri) == 0

    # Two runs at once: each enters, then waits inside for the other to be inside too,
    # and neither leaves before both have counted (one leaving first made the other's
    # count 1).
    both_in, both_counted = threading.Barrier(2, timeout=20), threading.Barrier(2, timeout=20)

    def read() -> int:
        with exclusive.reading([uri], wait_seconds=10):
            both_in.wait()
            seen = readers(uri)
            both_counted.wait()
            return seen

    assert [f.result(timeout=30) for f in [pool.submit(read), pool.submit(read)]] == [2, 2]
    assert readers(uri) == 0


def test_a_writer_does_not_start_while_a_run_reads(uri, pool):
    with exclusive.reading([uri]):
        start = time.monotonic()
        busy = pool.submit(enter, exclusive.exclusive_output(uri, wait_seconds=SHORT))
        with pytest.raises(OutputBusyError, match=f"{uri} is being read by another run"):
            busy.result(timeout=30)
        assert time.monotonic() - start >= SHORT  # waited before giving up
        assert writers(uri) == 0  # and gave its write slot back
        assert readers(uri) == 1
    write_at_once(uri)


def test_a_waiting_writer_gets_in_once_the_reader_leaves(uri, pool):
    entered = threading.Event()
    entered_at: list[float] = []

    def write() -> None:
        with exclusive.exclusive_output(uri, wait_seconds=20):
            entered_at.append(time.monotonic())
            entered.set()

    with exclusive.reading([uri]):
        writer = pool.submit(write)
        assert not entered.wait(2 * exclusive.POLL_SECONDS + 1)  # waiting for the reader
        left_at = time.monotonic()
    writer.result(timeout=30)
    assert left_at <= entered_at[0] < left_at + 5


def test_a_reader_does_not_start_while_a_run_writes(uri, other, pool):
    with exclusive.exclusive_output(uri):
        start = time.monotonic()
        # The lease already taken on `other` is given back when `uri` cannot be read.
        busy = pool.submit(enter, exclusive.reading([other, uri], wait_seconds=SHORT))
        with pytest.raises(OutputBusyError, match=f"another run is writing {uri} "):
            busy.result(timeout=30)
        assert time.monotonic() - start >= SHORT
        assert readers(uri) == 0
        assert readers(other) == 0
    write_at_once(other)
    with exclusive.reading([uri], wait_seconds=0):  # the writer has left
        assert readers(uri) == 1


def test_a_waiting_reader_gets_in_once_the_writer_leaves(uri, pool):
    entered_at: list[float] = []

    def read() -> None:
        with exclusive.reading([uri], wait_seconds=20):
            entered_at.append(time.monotonic())

    with exclusive.exclusive_output(uri):
        reader = pool.submit(read)
        time.sleep(2 * exclusive.POLL_SECONDS + 1)
        assert not entered_at  # waiting for the writer
        left_at = time.monotonic()
    reader.result(timeout=30)
    assert left_at <= entered_at[0] < left_at + 5


def test_wait_seconds_defaults_to_the_module_setting(uri, monkeypatch):
    monkeypatch.setattr(exclusive, "WAIT_SECONDS", SHORT)
    with exclusive.reading([uri]):
        start = time.monotonic()
        with pytest.raises(OutputBusyError, match=f"waited {SHORT:.0f} s"):
            enter(exclusive.exclusive_output(uri))
        assert SHORT <= time.monotonic() - start < SHORT + 5


def test_a_reader_that_fails_gives_its_lease_back(uri):
    with pytest.raises(RuntimeError, match="the pass failed"), exclusive.reading([uri]):
        assert readers(uri) == 1
        raise RuntimeError("the pass failed")
    assert readers(uri) == 0
    write_at_once(uri)


def test_leases_of_different_uris_do_not_interfere(uri, other, pool):
    with exclusive.reading([uri]):
        write_at_once(other)
        with exclusive.exclusive_output(other, wait_seconds=0):
            with exclusive.reading([uri], wait_seconds=0):  # uri is not written
                assert readers(uri) == 2
            busy = pool.submit(enter, exclusive.reading([other], wait_seconds=0))
            with pytest.raises(OutputBusyError, match=f"another run is writing {other}"):
                busy.result(timeout=30)
        assert readers(other) == 0
        assert readers(uri) == 1
