"""Will it fit? Estimates of what a run writes, checked against a local disk's free space.

A nightly run left alone for a month must not fill the disk it shares with everything
else, so a run that would not leave ``reserve_bytes`` free refuses before it writes.
S3 has no such limit and is not checked. Each step estimates what it writes
(``Step.prepare``); the estimates are upper bounds of the usual case.
"""

from __future__ import annotations

import os
import shutil

from tasks.errors import InputError
from tasks.store.storage import Location

GIB = 1024**3


def reserve_bytes(disk_total: int) -> int:
    """What must stay free on a disk of ``disk_total`` bytes: 5% of it, at least 1 GiB."""
    return max(GIB, disk_total // 20)


def _existing_ancestor(path: str) -> str:
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def check_free_space(loc: Location, needed: int, what: str) -> None:
    """Refuse, naming the bytes needed and free, if writing ``needed`` bytes at ``loc``
    would leave less than the reserve free on its disk. Does nothing for S3."""
    if loc.scheme != "file":
        return
    usage = shutil.disk_usage(_existing_ancestor(loc.path))
    reserve = reserve_bytes(usage.total)
    if needed + reserve > usage.free:
        raise InputError(
            f"{what} needs about {needed:,} bytes ({needed / GIB:.1f} GiB) at {loc.uri}, "
            f"but its disk has {usage.free:,} bytes ({usage.free / GIB:.1f} GiB) free and "
            f"{reserve:,} bytes ({reserve / GIB:.1f} GiB) of them must stay free: free up "
            "space, lower num_rows, or set keep_days on a daily run"
        )
