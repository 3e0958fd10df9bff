"""Retention of daily partitions: committed ``dt=`` partitions past ``keep_days`` go.

Only what this project committed is removed, and only whole: a partition is removed
when it has our manifest, manifest first (from then on readers see no dataset), then the
files that manifest lists. A folder without a manifest (being written, crashed, or not
ours) and any file the manifest does not list stay where they are.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from tasks import dataset, storage
from tasks.errors import InputError
from tasks.storage import Location

_PARTITION = re.compile(r"dt=(\d{4}-\d{2}-\d{2})")


def partition_date(name: str) -> dt.date | None:
    """The date of a ``dt=YYYY-MM-DD`` folder name, None for any other name."""
    match = _PARTITION.fullmatch(name)
    if not match:
        return None
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None


def expired(names: Iterable[str], day: dt.date, keep_days: int) -> list[str]:
    """The partition folders among ``names`` whose date is ``keep_days`` or more days
    before ``day``: ``keep_days=7`` keeps ``day`` and the six dates before it."""
    if keep_days < 1:
        raise InputError(f"keep_days must be at least 1, got {keep_days}")
    cutoff = day - dt.timedelta(days=keep_days)
    return [n for n in names if (d := partition_date(n)) is not None and d <= cutoff]


def remove_committed(root: Location) -> int | None:
    """Remove the dataset committed at ``root``: its manifest, then the files it lists.

    Returns how many data files went, or None (and touches nothing) if ``root`` holds
    no manifest of ours.
    """
    try:
        manifest = dataset.read_manifest(root)
    except InputError:  # a manifest we cannot read is not one we wrote
        return None
    if manifest is None or manifest.get("writer") != dataset.WRITER:
        return None
    storage.delete_file(root.child(dataset.MANIFEST_NAME))
    for relative in dataset.listed_files(manifest):
        storage.delete_file(root.child(relative))
    for folder in (*dataset.OWN_FOLDERS, "_dedup"):  # the dedup step's, once empty
        storage.remove_empty_dir(root.child(folder))
    storage.remove_empty_dir(root)
    return len(manifest["files"])


def expired_partitions(base_uri: str, day: dt.date, keep_days: int) -> list[str]:
    """The URIs of the partition folders under ``base_uri`` past ``keep_days``."""
    base = storage.resolve(base_uri)
    return [base.child(name).uri for name in expired(storage.list_dirs(base), day, keep_days)]
