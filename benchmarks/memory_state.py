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

import os
import time
from pathlib import Path

import numpy as np

GIB = 2**30
# Free page reporting (virtio-balloon): KiB of freed guest memory handed back to the host
# so far. Memory handed back is fresh again: the next write into it faults on the host.
REPORTED_KIB = Path("/sys/module/page_reporting/parameters/reported_kib")
CHUNK_BYTES = 256 * 2**20  # one allocation at a time: freed memory goes back whole


def touch_available_memory(keep_gib: float = 2.0, available: int | None = None) -> dict[str, float]:
    """Write over (available - ``keep_gib``) of memory twice; the bytes and both rates.
    ``available``: bytes, default the machine's (psutil) now."""
    if available is None:
        import psutil  # the bench group's; the report (and its tests) need only markdown()

        available = psutil.virtual_memory().available
    size = available - int(keep_gib * GIB)
    chunks = max(0, size // CHUNK_BYTES)
    before = counters()
    fresh = _write_pass(chunks)  # pages the host may never have backed: a fault each
    reused = _write_pass(chunks)  # the same pages again, freed and mapped anew
    touched = chunks * CHUNK_BYTES
    back = spent(before, counters()).get("host_reported_mib")
    return {
        "touched_bytes": touched,
        "fresh_write_gb_per_s": touched / fresh / 1e9 if fresh else 0.0,
        "reused_write_gb_per_s": touched / reused / 1e9 if reused else 0.0,
    } | ({} if back is None else {"host_reported_mib": back})


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
        f"{state['reused_write_gb_per_s']:.2f} GB/s freed and written again."
    ) + (
        f" This VM hands freed memory back to its host (free page reporting: "
        f"{state['host_reported_mib']:.0f} MiB during that pass), so memory does not stay "
        "backed: a run pays again for what was freed before it, shown below as system CPU "
        "time beside the MiB handed back during each run."
        if "host_reported_mib" in state
        else " Every side then starts from memory the VM has backed."
    )


def counters() -> dict[str, float | None]:
    """The machine's CPU seconds so far (user and system, every process) and the MiB
    of freed memory the guest has handed back to its host (None where not reported)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system = (int(f) for f in fields[:3])
    tick = os.sysconf("SC_CLK_TCK")
    try:
        reported: float | None = int(REPORTED_KIB.read_text()) / 1024
    except (OSError, ValueError):
        reported = None
    return {
        "user_cpu_seconds": (user + nice) / tick,
        "system_cpu_seconds": system / tick,
        "host_reported_mib": reported,
    }


SPENT = ("user_cpu_seconds", "system_cpu_seconds", "host_reported_mib")


def spent_line(spent: dict[str, float]) -> str:
    """``spent`` in a few words."""
    line = (
        f"{spent.get('user_cpu_seconds', 0):.1f} s user CPU, "
        f"{spent.get('system_cpu_seconds', 0):.1f} s system"
    )
    if "host_reported_mib" in spent:
        line += f", {spent['host_reported_mib']:.0f} MiB freed back to the host"
    return line


def spent(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, float]:
    """What happened between two :func:`counters`: each counter's increase."""
    return {
        key: round(after[key] - value, 2)  # type: ignore[operator]
        for key, value in before.items()
        if value is not None and after.get(key) is not None
    }
