"""Will it fit? Estimates of what a run writes, checked against a local disk's free space.

A nightly run left alone for a month must not fill the disk it shares with everything
else, so a run that would not leave ``reserve_bytes`` free refuses before it writes.
S3 has no such limit and is not checked. The estimates are upper bounds of the usual
case: Parquet barely compresses random letters, and cleaning shrinks text.
"""

from __future__ import annotations

import os
import shutil

from tasks.data.storage import Location
from tasks.errors import InputError

# Per row besides its text: the id, the label and Parquet's overhead.
ROW_OVERHEAD_BYTES = 16
# What a compressed JSON Lines file of a corpus usually grows to once decompressed.
COMPRESSED_JSON_RATIO = 4
GIB = 1024**3


def generated_bytes(num_rows: int, text_length: int) -> int:
    """About how large ``generate`` writes ``num_rows`` rows of ``text_length`` characters."""
    return num_rows * (text_length + ROW_OVERHEAD_BYTES)


def preprocessed_bytes(input_bytes: int, keep_text: bool, compressed_json: bool = False) -> int:
    """About how large ``preprocess`` writes an input of ``input_bytes`` on storage: the
    cleaned text, and the raw text too with ``keep_text``."""
    text = input_bytes * (COMPRESSED_JSON_RATIO if compressed_json else 1)
    return text * (2 if keep_text else 1)


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


def signature_bytes(num_perm: int, bands: int) -> int:
    """The dedup step's bytes per row of its signature files: the order key and exact
    digest, and in near mode (``num_perm`` > 0) the band hashes and MinHash values."""
    return 8 + 16 + 8 * bands + 4 * num_perm


def deduplicated_bytes(
    input_bytes: int, rows: int, num_perm: int, bands: int, compressed_json: bool = False
) -> int:
    """About how much ``dedup`` writes until it commits: the output (at most the input)
    and its signatures twice, the staged ones of its first pass and the kept rows'
    index beside the output."""
    text = input_bytes * (COMPRESSED_JSON_RATIO if compressed_json else 1)
    return text + 2 * rows * signature_bytes(num_perm, bands)
