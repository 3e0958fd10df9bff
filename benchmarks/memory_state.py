"""What memory costs on this machine, and where each run's CPU time went.

On the VMs this project is measured on, the first write into guest memory the host has
not backed costs a host fault per page (issue 15 measured `dd` at 565 MB/s into such
memory and 1.1-2.0 GB/s into memory touched before). Issue 26 found that touching
memory once does not make sides start equal: the host takes back memory the guest has
freed within a second or two (writing a 2 GiB file here: 4.3 GB/s into page cache freed
just before, 1.5 GB/s one second later, 0.46 GB/s two seconds later, as slow as memory
never touched). So every run pays, as system CPU time, for each page it newly uses
(page cache for the files it writes, heaps of new worker processes) unless it reuses
its own pages at once. The bench still writes once over the available memory before its
timed phases (no side meets memory the VM never had), measures the write rate into
fresh memory, into memory freed at once and into memory freed a few seconds before, and
records for each run the machine's user and system CPU seconds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

GIB = 2**30
CHUNK_BYTES = 256 * 2**20  # one allocation at a time: freed memory goes back whole
PAUSE_SECONDS = 3.0  # how long freed memory waits before the third pass
PAUSE_BYTES = 2 * GIB  # what the third pass writes
SPENT = ("user_cpu_seconds", "system_cpu_seconds")


def touch_available_memory(keep_gib: float = 2.0, available: int | None = None) -> dict[str, float]:
    """Write over (available - ``keep_gib``) of memory twice, then ``PAUSE_BYTES`` of it
    once more after ``PAUSE_SECONDS``; the bytes and the three rates. ``available``:
    bytes, default the machine's (psutil) now."""
    if available is None:
        import psutil  # the bench group's; the report (and its tests) need only markdown()

        available = psutil.virtual_memory().available
    size = available - int(keep_gib * GIB)
    chunks = max(0, size // CHUNK_BYTES)
    fresh = _write_pass(chunks)  # pages the host may never have backed: a fault each
    reused = _write_pass(chunks)  # the same pages again, freed and mapped anew at once
    time.sleep(PAUSE_SECONDS)
    later = min(chunks, PAUSE_BYTES // CHUNK_BYTES)
    paused = _write_pass(later)  # freed a few seconds before: taken back by the host?
    touched = chunks * CHUNK_BYTES
    return {
        "touched_bytes": touched,
        "fresh_write_gb_per_s": touched / fresh / 1e9 if fresh else 0.0,
        "reused_write_gb_per_s": touched / reused / 1e9 if reused else 0.0,
        "paused_write_gb_per_s": later * CHUNK_BYTES / paused / 1e9 if paused else 0.0,
        "pause_seconds": PAUSE_SECONDS,
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
    line = (
        f"Memory touched first: {state['touched_bytes'] / GIB:.1f} GiB written at "
        f"{state['fresh_write_gb_per_s']:.2f} GB/s the first time (fresh pages), "
        f"{state['reused_write_gb_per_s']:.2f} GB/s freed and written again at once"
    )
    if "paused_write_gb_per_s" not in state:
        return line + "."
    return line + (
        f", {state['paused_write_gb_per_s']:.2f} GB/s freed {state['pause_seconds']:g} s "
        "before. Where that last rate is near the first, the VM takes freed memory back "
        "within seconds: every run pays for the pages it newly uses (the files it writes, "
        "new processes' heaps) as system CPU time, whatever ran before it."
    )


def counters() -> dict[str, float]:
    """The machine's CPU seconds so far, in user code and in the kernel, every process."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system = (int(f) for f in fields[:3])
    tick = os.sysconf("SC_CLK_TCK")
    return {"user_cpu_seconds": (user + nice) / tick, "system_cpu_seconds": system / tick}


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What happened between two :func:`counters`: each counter's increase."""
    return {key: round(after[key] - before[key], 2) for key in SPENT}


def spent_line(spent: dict[str, float]) -> str:
    """``spent`` in a few words."""
    return f"{spent['user_cpu_seconds']:.1f} s user CPU, {spent['system_cpu_seconds']:.1f} s system"
