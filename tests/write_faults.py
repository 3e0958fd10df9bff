"""Test-only: write faults injected into the Ray workers of the test session.

conftest's Ray runs :func:`install` in every worker (a ``worker_process_setup_hook``,
in place of the project's own, which it runs first), so production code knows nothing
of it. A file named like a part (``part-00001.parquet``)
in the directory ``PIPELINE_TEST_WRITE_FAULTS`` names makes the next write of that part
fail once, half written: its first batch of rows lands in the file, then the connection
"resets" (a retryable error).
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
        with contextlib.suppress(FileNotFoundError):
            seconds = float(Path(f"{request}.slow").read_text())
            os.rename(f"{request}.slow", f"{request}.slow.fired")
            time.sleep(seconds)
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
