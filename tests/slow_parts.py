"""Test-only: a Ray ``worker_process_setup_hook`` that makes every preprocess part take
a while and say where it started, so that a test can lose a node while one of its parts
is in flight.

Each part attempt first creates ``{node id}-{part index}`` in the directory named by
``SLOW_PARTS_MARKERS``, then waits ``PART_SECONDS`` before doing its work.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PART_SECONDS = 1.5


def install() -> None:
    import ray

    from tasks.steps.preprocess.step import Preprocess

    write = Preprocess.write_part
    markers = Path(os.environ["SLOW_PARTS_MARKERS"])

    def slow(spec):
        node = ray.get_runtime_context().get_node_id()
        (markers / f"{node}-{spec.index}").touch()
        time.sleep(PART_SECONDS)
        return write(spec)

    Preprocess.write_part = staticmethod(slow)
