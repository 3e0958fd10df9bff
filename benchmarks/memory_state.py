"""Every side of a comparison starts from the same memory state.

On the VMs this project is measured on, the first write into guest memory the host has
not backed yet costs a host fault per page (issue 15 measured `dd` at 565 MB/s into
such memory and 1.1-2.0 GB/s into memory touched before), so whichever side ran first
into fresh memory paid for the VM, not for its code. Before its timed phases the bench
writes once over the memory the machine has available (less a margin), frees it and
writes over it again, as a process that comes later would: the report shows what fresh
and reused memory cost here, and after the first pass no side meets fresh memory.
"""

from __future__ import annotations

import time

import numpy as np

GIB = 2**30
CHUNK_BYTES = 256 * 2**20  # one allocation at a time: freed memory goes back whole


def touch_available_memory(keep_gib: float = 2.0, available: int | None = None) -> dict[str, float]:
    """Write over (available - ``keep_gib``) of memory twice; the bytes and both rates.
    ``available``: bytes, default the machine's (psutil) now."""
    if available is None:
        import psutil  # the bench group's; the report (and its tests) need only markdown()

        available = psutil.virtual_memory().available
    size = available - int(keep_gib * GIB)
    chunks = max(0, size // CHUNK_BYTES)
    fresh = _write_pass(chunks)  # pages the host may never have backed: a fault each
    reused = _write_pass(chunks)  # the same pages again, freed and mapped anew
    touched = chunks * CHUNK_BYTES
    return {
        "touched_bytes": touched,
        "fresh_write_gb_per_s": touched / fresh / 1e9 if fresh else 0.0,
        "reused_write_gb_per_s": touched / reused / 1e9 if reused else 0.0,
    }


def _write_pass(chunks: int) -> float:
    """Seconds to map ``chunks`` new chunks and write each page once; all freed after."""
    held: list[np.ndarray] = []
    started = time.perf_counter()
    for _ in range(chunks):
        block = np.empty(CHUNK_BYTES, dtype=np.uint8)
        block.fill(1)
        held.append(block)
    seconds = time.perf_counter() - started
    del held
    return seconds


def markdown(state: dict[str, float]) -> str:
    """One line for the report."""
    return (
        f"Memory touched first: {state['touched_bytes'] / GIB:.1f} GiB written at "
        f"{state['fresh_write_gb_per_s']:.2f} GB/s the first time (fresh pages), "
        f"{state['reused_write_gb_per_s']:.2f} GB/s freed and written again: every side "
        "then starts from memory the VM has backed."
    )
