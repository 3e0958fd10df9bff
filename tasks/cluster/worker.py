"""What every Ray worker of this project sets up once, as it starts.

Ray runs :func:`setup` in each new worker process (``worker_process_setup_hook`` in the
runtime environment a flow run gives Ray, ``flows.runner``), before any part runs there.
"""

from __future__ import annotations

import ctypes
import functools


def setup() -> None:
    """The process-wide settings of a worker that writes part files."""
    keep_freed_memory()


@functools.cache
def keep_freed_memory() -> None:
    """Have glibc keep freed memory for reuse instead of unmapping it at once.

    Process-wide, so it is set once per worker process, where the worker starts. A part
    streams through many same-sized multi-megabyte buffers. By default glibc
    returns each to the OS when freed, and the next one page-faults its way in again:
    measured on a 2-core VM, that cost a third of the generation throughput. Up to
    ``FREED_MEMORY_BYTES`` stay with the process instead. Not glibc: nothing to do.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)  # glibc's maximum on 64-bit
    libc.mallopt(m_trim_threshold, FREED_MEMORY_BYTES)


FREED_MEMORY_BYTES = 256 * 1024 * 1024
