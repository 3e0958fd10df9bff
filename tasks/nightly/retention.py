"""Retention of daily partitions: committed ``dt=`` partitions past ``keep_days`` go.

Only what this project committed is removed, and only whole: a partition is removed
when it has our manifest and every file that manifest lists is a file of ours inside
the partition. The removal first writes ``_removing.json`` listing those files and the
dataset's companions, then deletes the manifest (from then on readers see no dataset),
each companion (the same way, at the place :func:`dataset.companion` derives, never
one a manifest names), the listed files, the own leftovers of a killed write, and the
marker last; a removal that stops half way is finished by the next one, from the marker.
A folder with neither (being written, crashed, or not ours) and any file that is not
ours stay where they are.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from tasks.errors import InputError
from tasks.store import dataset, storage
from tasks.store.storage import Location

_PARTITION = re.compile(r"dt=(\d{4}-\d{2}-\d{2})")
# Names a manifest may list are data files; these ones steer the protocol instead.
_CONTROL = (dataset.MANIFEST_NAME, dataset.WRITING_NAME, dataset.REMOVING_NAME)

log = logging.getLogger(__name__)


def partition_date(name: str) -> dt.date | None:
    """The date of a ``dt=YYYY-MM-DD`` folder name, None for any other name."""
    match = _PARTITION.fullmatch(name)
    if not match:
        return None
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None


def expired(names: Iterable[str], day: dt.date, keep_days: int, today: dt.date) -> list[str]:
    """The partition folders among ``names`` whose date is ``keep_days`` or more days
    before ``day``, or before ``today`` if that is earlier: ``keep_days=7`` keeps ``day``
    and the six dates before it, ``keep_days=0`` none of them (an intermediate dataset
    removed once its run is done), and a run dated in the future never reaches the dates
    within ``keep_days`` of today."""
    if keep_days < 0:
        raise InputError(f"keep_days must be at least 0, got {keep_days}")
    cutoff = min(day, today) - dt.timedelta(days=keep_days)

    def past(d: dt.date) -> bool:
        if keep_days == 0:
            # The run's own date (done with once it ends) and those before, but not
            # today's for a run dated tomorrow: today's run may be between two steps.
            return d == day or d < min(day, today)
        return d <= cutoff

    return [n for n in names if (d := partition_date(n)) is not None and past(d)]


def is_ours(document: object) -> bool:
    """Whether a manifest or removal marker was written by this project, in the manifest
    version this code reads."""
    return (
        isinstance(document, dict)
        and document.get("writer") == dataset.WRITER
        and document.get("manifest_version") == dataset.MANIFEST_VERSION
    )


def unsafe_paths(
    root: Location,
    paths: object,
    folders: tuple[str, ...] = dataset.LEGACY_SIDE_FOLDERS,
    suffixes: tuple[str, ...] = dataset.PARQUET,
) -> list[str]:
    """The entries of ``paths`` retention must not delete: anything but a relative path of
    a data file of ours inside ``root`` (``../x``, ``/etc/passwd``, foreign names, the
    protocol's own markers). A ``paths`` that is not a list is unsafe as a whole."""
    if not isinstance(paths, list):
        return [repr(paths)]
    bad = []
    for path in paths:
        if (
            not isinstance(path, str)
            or path in _CONTROL
            or not dataset.is_own_file(path, folders, suffixes)
        ):
            bad.append(repr(path))
            continue
        try:
            root.child(path)
        except InputError:
            bad.append(repr(path))
    return bad


@dataclass(frozen=True)
class Removal:
    """What a removal deletes at a dataset's root: the ``files`` its manifest listed,
    and where else (``folders``) and with which part ``suffixes`` our files may lie;
    ``companions`` go with it."""

    files: list[str]
    folders: tuple[str, ...]
    suffixes: tuple[str, ...]
    companions: tuple[str, ...]


def _listed(manifest: dict) -> object:
    """The manifest's files to remove, or whatever malformed value stands in for them."""
    try:
        return dataset.listed_files(manifest)
    except (AttributeError, KeyError, TypeError) as exc:
        return f"unreadable file list ({exc})"


def _removal_list(root: Location, logger: logging.Logger | logging.LoggerAdapter) -> Removal | None:
    """What to remove at ``root``, once its removal is under way (marker written,
    manifest gone); None, having logged why, if ``root`` is not ours to remove."""
    try:
        manifest = dataset.read_manifest(root)
    except InputError as exc:  # a manifest we cannot read is not one we wrote
        logger.info("left %s: %s", root.uri, exc)
        return None
    if manifest is not None:
        document, named = manifest, "its manifest"
        files = _listed(manifest)
    else:
        try:
            document = json.loads(storage.read_bytes(root.child(dataset.REMOVING_NAME)))
        except FileNotFoundError:
            logger.info("left %s: no manifest of ours (not a committed dataset)", root.uri)
            return None
        except ValueError as exc:
            logger.warning("left %s: unreadable %s (%s)", root.uri, dataset.REMOVING_NAME, exc)
            return None
        named = f"its {dataset.REMOVING_NAME}"
        files = document.get("files") if isinstance(document, dict) else None
    if not is_ours(document):
        logger.info("left %s: %s is not one this pipeline version wrote", root.uri, named)
        return None
    folders = dataset.side_folders(document)
    suffixes = dataset.part_suffixes(document)
    companions = dataset.companions_of(document)
    if bad := unsafe_paths(root, files, folders, suffixes):
        logger.warning(
            "left %s untouched: %s lists what retention may not delete: %s",
            root.uri,
            named,
            ", ".join(bad[:5]),
        )
        return None
    if manifest is None:
        logger.info("%s: finishing a removal that stopped half way", root.uri)
        return Removal(files, folders, suffixes, companions)
    marker = {
        "writer": dataset.WRITER,
        "manifest_version": dataset.MANIFEST_VERSION,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "files": files,
        "side_folders": list(folders),
        "part_suffixes": list(suffixes),
        "companions": {name: {} for name in companions},
        # A companion's removal says what it is, so that one that stops half way is
        # finished from the marker (:func:`_remove_companion` checks it).
        **({"companion": manifest["companion"]} if "companion" in manifest else {}),
    }
    # The marker lands before the manifest goes: from here on a stop leaves a list of
    # what is still to delete, never files that nothing names as ours.
    storage.write_bytes_atomic(root.child(dataset.REMOVING_NAME), json.dumps(marker).encode())
    storage.delete_file(root.child(dataset.MANIFEST_NAME))
    return Removal(files, folders, suffixes, companions)


def remove_committed(
    root: Location, logger: logging.Logger | logging.LoggerAdapter = log
) -> int | None:
    """Remove the dataset committed at ``root``, or finish removing it.

    Order: ``_removing.json`` listing the files, the manifest, the listed files, our own
    leftovers of a killed write, the marker, then empty folders. Returns how many data
    files (the listed files at the top of the dataset; the rest are side files)
    went, or None, touching nothing and logging why to ``logger``, if ``root`` holds no
    manifest or removal marker of ours or if either lists a path that is not a file of
    ours inside ``root``.
    """
    found = _removal_list(root, logger)
    if found is None:
        return None
    files, folders = found.files, found.folders
    for name in found.companions:
        remove_companion(dataset.companion(root, name), name, logger)
    for relative in files:
        storage.delete_file(root.child(relative))
    # What a killed write left beside the dataset (_writing.json, signature files, temps)
    # is ours by the same rule prepare_output applies in a folder with our mark.
    for relative in dataset.own_files(root, folders, found.suffixes):
        if relative != dataset.REMOVING_NAME:
            storage.delete_file(root.child(relative))
    storage.delete_file(root.child(dataset.REMOVING_NAME))
    for folder in folders:  # each side folder, then its parents, once empty
        parts = folder.split("/")
        for depth in range(len(parts), 0, -1):
            storage.remove_empty_dir(root.child("/".join(parts[:depth])))
    storage.remove_empty_dir(root)
    return sum(1 for relative in files if "/" not in relative)


def remove_companion(
    where: Location, name: str, logger: logging.Logger | logging.LoggerAdapter = log
) -> None:
    """Remove the companion ``name`` at ``where``: committed, being removed, or written
    by a run that stopped before its commit; only if what is there says it is that
    companion, and only our files. Anything else there is left, and logged."""
    if not storage.list_files(where):
        return  # removed already (a removal that stopped after it)
    try:
        document, state = dataset.read_manifest(where), "committed"
    except InputError:
        document = None
    for marker, kind in ((dataset.REMOVING_NAME, "removing"), (dataset.WRITING_NAME, "writing")):
        if document is None:
            with contextlib.suppress(FileNotFoundError, ValueError):
                document, state = json.loads(storage.read_bytes(where.child(marker))), kind
    if not isinstance(document, dict) or document.get("companion") != name:
        logger.warning("left %s: not a %s companion written by this pipeline", where.uri, name)
        return
    if state != "writing":
        remove_committed(where, logger)
        return
    # A write that never committed: its files are ours by the marker it left.
    owned = dataset.side_folders(document), dataset.part_suffixes(document)
    for relative in dataset.own_files(where, *owned):
        if relative != dataset.WRITING_NAME:
            storage.delete_file(where.child(relative))
    storage.delete_file(where.child(dataset.WRITING_NAME))
    storage.remove_empty_dir(where)


def expired_partitions(
    base: Location, day: dt.date, keep_days: int, today: dt.date
) -> list[Location]:
    """The partition folders under ``base`` past ``keep_days``, counted back from the
    earlier of ``day`` and ``today``."""
    names = storage.list_dirs(base)
    return [base.child(name) for name in expired(names, day, keep_days, today)]
