"""Test-only: write faults injected into the Ray workers of the test session.

conftest's Ray runs :func:`install` in every worker (a ``worker_process_setup_hook``,
in place of the project's own, which it runs first), so production code knows nothing
of it. A file named like a part (``part-00001.parquet``)
in the directory ``PIPELINE_TEST_WRITE_FAULTS`` names makes the next write of that part
fail once, half written: its first batch of rows lands in the file, then the connection
"resets" (a retryable error). A ``part-00001.parquet.slow`` file holds that part's next
write for the seconds it holds, and ``grouping.slow`` the dedup step's next band shard
(pass 2), wherever it runs.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.store.dataset import part_name

FAULTS_ENV = "PIPELINE_TEST_WRITE_FAULTS"


def install() -> None:
    import tasks.store.part_files
    from tasks.cluster import worker

    worker.setup()  # what a flow run's own Ray runs in each worker (flows/runner.py)

    write = tasks.store.part_files.write_part

    def faulty(
        root: Any, index: int, tables: Iterable[pa.Table], schema: pa.Schema, *rest, **options
    ):
        name = part_name(index)
        request = os.path.join(os.environ[FAULTS_ENV], name)
        _hold(request)
        try:
            os.rename(request, f"{request}.fired")  # atomic, so it fires exactly once
        except FileNotFoundError:
            return write(root, index, tables, schema, *rest, **options)
        loc = root.child(name)
        with loc.fs.open_output_stream(loc.path) as sink:
            pq.write_table(next(iter(tables)).cast(schema), sink)
        raise ConnectionResetError(f"injected fault while writing {name} ({FAULTS_ENV})")

    # Every step writes its parts through this one function.
    tasks.store.part_files.write_part = faulty

    import tasks.steps.dedup.grouping as grouping

    pairs = grouping.band_pairs

    def held(task: Any) -> Any:
        _hold(os.path.join(os.environ[FAULTS_ENV], "grouping"))
        return pairs(task)

    grouping.band_pairs = held


def _hold(request: str) -> None:
    """Sleep as long as ``{request}.slow`` says, once (it is renamed ``.slow.fired``)."""
    with contextlib.suppress(FileNotFoundError):
        seconds = float(Path(f"{request}.slow").read_text())
        os.rename(f"{request}.slow", f"{request}.slow.fired")
        time.sleep(seconds)
