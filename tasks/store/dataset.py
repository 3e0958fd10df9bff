"""Datasets on storage: part files plus ``_manifest.json``, the commit point.

A dataset is committed when its manifest exists; the manifest lists every data file
with its row count and size, and only listed files belong to the dataset. Parts have
deterministic names, so a retried write overwrites instead of duplicating.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.errors import InputError, OutputConflictError
from tasks.orchestration.deadline import check as deadline_check
from tasks.store import storage
from tasks.store.storage import Location

MANIFEST_NAME = "_manifest.json"
# Written before the first part and removed after the manifest: marks the files of an
# unfinished (or crashed) write as ours, so a rerun may replace them.
WRITING_NAME = "_writing.json"
# Written by retention before it uncommits a dataset, removed after its last file: lists
# the files still to delete, so a removal that stopped half way is finished by the next.
REMOVING_NAME = "_removing.json"
MANIFEST_VERSION = 1
# A step's staging folders inside its output are named by the step
# (``Step.staging_folders``) and recorded in the write marker, so their part-named files
# are known as ours. Manifests written before companions (below) also named side folders
# that stayed after the commit (``_rejected``, ``_dedup/index``); these two were written
# before side folders were recorded at all: they stay known as ours.
LEGACY_SIDE_FOLDERS = ("_dedup/signatures", "_dedup/index")
# What a step keeps besides its rows (a filter's rejected rows, dedup's signature index)
# is a companion: a dataset of its own beside the dataset, never inside it, so that a
# reader pointed at the dataset (Ray Data, pyarrow, Polars or DuckDB globs) reads only
# its rows: ``.../filtered/dt=D`` keeps its rejected rows in ``.../filtered-rejected/dt=D``.
COMPANION_SEPARATOR = "-"
_COMPANION_NAME = re.compile(r"[a-z][a-z0-9_]*")
WRITER = "ray-text-pipeline"
# Part files are Parquet unless a mark of ours names their suffixes (``part_suffixes``):
# a tokenized shard's tokens and index (Megatron's .bin and .idx). So a user's
# ``part-00000.bin`` in a Parquet dataset of ours is theirs, and so is a
# ``part-00000.parquet`` in a tokenized one: never deleted as ours.
PARQUET = ("parquet",)
PART_SUFFIXES = ("parquet", "bin", "idx")
_PART_RE = re.compile(r"^part-\d{5,}\.([a-z]+)$")
# What a crashed local atomic write of ours can leave behind.
_TEMP_RE = re.compile(
    r"^(?:_manifest\.json|_writing\.json|_removing\.json|part-\d{5,}\.([a-z]+))"
    r"\.tmp-[0-9a-f]{32}$"
)


@dataclass(frozen=True)
class FileEntry:
    """One data file of a dataset, relative to the dataset root."""

    path: str
    num_rows: int
    size_bytes: int


def part_name(index: int, suffix: str = "parquet") -> str:
    """The name of part ``index``: Parquet, or a tokenized shard's ``bin`` or ``idx``."""
    return f"part-{index:05d}.{suffix}"


def companion_uris(output_uri: str, names: Iterable[str]) -> list[str]:
    """The URIs of the companions ``names`` of the dataset at ``output_uri`` (a flow takes
    their write slots with the output's)."""
    root = storage.resolve(output_uri)
    return [companion(root, name).uri for name in names]


def is_part_name(name: str, suffixes: Iterable[str] = PARQUET) -> bool:
    """Whether ``name`` is a part file's name with one of ``suffixes``
    (``part-00000.parquet``; a tokenized shard's ``part-00000.bin`` and ``.idx``)."""
    match = _PART_RE.match(name)
    return bool(match) and match.group(1) in suffixes


def _is_temp_name(name: str, suffixes: Iterable[str]) -> bool:
    match = _TEMP_RE.match(name)
    return bool(match) and (match.group(1) is None or match.group(1) in suffixes)


def part_suffixes(document: object) -> tuple[str, ...]:
    """The part files' suffixes a manifest or marker of ours names (Parquet when it
    names none: what every mark written before tokenized shards means)."""
    named = document.get("part_suffixes") if isinstance(document, dict) else None
    if not isinstance(named, list):
        return PARQUET
    return tuple(dict.fromkeys(s for s in named if s in PART_SUFFIXES))


def companion(root: Location, name: str) -> Location:
    """Where the dataset at ``root`` keeps its companion ``name``: beside the dataset,
    with the same ``key=value`` partition folders (``s3://b/filtered/dt=D`` ->
    ``s3://b/filtered-rejected/dt=D``). The one place that decides it: retention and
    ``against`` derive it again instead of trusting a path a manifest names."""
    if not _COMPANION_NAME.fullmatch(name):
        raise ValueError(f"companion names are lower-case words, got {name!r}")
    parts = root.path.rstrip("/").split("/")
    partitions: list[str] = []
    while len(parts) > 1 and "=" in parts[-1]:
        partitions.insert(0, parts.pop())
    if len(parts) < 2 or not parts[-1]:
        raise InputError(
            f"{root.uri}: a dataset with {name} rows needs a folder of its own "
            f"(not a bucket or a filesystem root), since they go beside it"
        )
    parts[-1] += COMPANION_SEPARATOR + name
    return Location(root.scheme, "/".join(parts + partitions), root.s3)


def side_folders(document: object) -> tuple[str, ...]:
    """The staging or (older manifests) side folders a manifest or marker of ours names,
    and the legacy ones."""
    named = document.get("side_folders") if isinstance(document, dict) else None
    own = [f for f in named or () if isinstance(f, str) and f and not f.startswith("/")]
    return tuple(dict.fromkeys([*own, *LEGACY_SIDE_FOLDERS]))


def is_own_file(
    relative: str,
    folders: Iterable[str] = LEGACY_SIDE_FOLDERS,
    suffixes: Iterable[str] = PARQUET,
) -> bool:
    """True for names this project writes in a dataset: parts with ``suffixes``,
    manifest, markers, temps, and part-named files in its side ``folders``."""
    if relative in (MANIFEST_NAME, WRITING_NAME, REMOVING_NAME):
        return True
    folder, _, name = relative.rpartition("/")
    if folder and folder not in folders:
        return False
    suffixes = tuple(suffixes)
    return is_part_name(name, suffixes) or _is_temp_name(name, suffixes)


def own_files(
    root: Location,
    folders: Iterable[str] = LEGACY_SIDE_FOLDERS,
    suffixes: Iterable[str] = PARQUET,
) -> list[str]:
    """The relative names of the files of ours below ``root`` (:func:`is_own_file`)."""
    relative = [Location(root.scheme, f.path).relative_to(root) for f in storage.list_files(root)]
    suffixes = tuple(suffixes)
    return [r for r in relative if is_own_file(r, folders, suffixes)]


def file_count(num_rows: int, num_files: int | None, rows_per_file: int | None) -> int | None:
    """How many part files: ``num_files``, or as many as ``rows_per_file`` needs.

    The seed's two ways to set the output file count (``repartition`` and
    ``min_rows_per_file``); giving both is an error, giving neither returns None.
    """
    if num_files is not None and rows_per_file is not None:
        raise InputError(
            f"give num_files ({num_files}) or rows_per_file ({rows_per_file}), not both"
        )
    if rows_per_file is None:
        return num_files
    if rows_per_file < 1:
        raise InputError(f"rows_per_file must be at least 1, got {rows_per_file}")
    return max(1, -(-num_rows // rows_per_file))


def build_manifest(
    files: Iterable[FileEntry], schema: pa.Schema, **extra: object
) -> dict[str, object]:
    """The manifest document: counts, files, schema, plus whatever ``extra`` records."""
    entries = sorted(files, key=lambda f: f.path)
    return {
        "manifest_version": MANIFEST_VERSION,
        "num_rows": sum(f.num_rows for f in entries),
        "size_bytes": sum(f.size_bytes for f in entries),
        "files": [asdict(f) for f in entries],
        "schema": [{"name": f.name, "type": str(f.type)} for f in schema],
        "committed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "writer": WRITER,
        **extra,
    }


def read_manifest(root: Location) -> dict | None:
    """The committed manifest of the dataset at ``root``, or None if uncommitted."""
    loc = root.child(MANIFEST_NAME)
    try:
        raw = storage.read_bytes(loc)
    except FileNotFoundError:
        return None
    try:
        manifest = json.loads(raw)
        files = [FileEntry(**f) for f in manifest["files"]]
        int(manifest["num_rows"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{loc.uri}: not a valid manifest ({exc})") from exc
    if sum(f.num_rows for f in files) != manifest["num_rows"]:
        raise InputError(f"{loc.uri}: num_rows does not match the sum over its files")
    return manifest


def manifest_fingerprint(root: Location) -> str | None:
    """sha256 of the dataset's manifest bytes: identifies one committed version."""
    try:
        return hashlib.sha256(storage.read_bytes(root.child(MANIFEST_NAME))).hexdigest()
    except FileNotFoundError:
        return None


def check_disjoint(input_root: Location, output_root: Location, what: str = "output_uri") -> None:
    """Refuse an output (``what`` names it) equal to, inside, or containing the input."""
    if input_root.contains(output_root):
        raise InputError(
            f"{what} {output_root.uri} is equal to or inside input_uri {input_root.uri}"
        )
    if output_root.contains(input_root):
        raise InputError(f"input_uri {input_root.uri} is inside {what} {output_root.uri}")


def companions_of(document: object) -> tuple[str, ...]:
    """The names of the companions a manifest or removal marker of ours records."""
    named = document.get("companions") if isinstance(document, dict) else None
    if not isinstance(named, dict):
        return ()
    return tuple(n for n in named if isinstance(n, str) and _COMPANION_NAME.fullmatch(n))


class Leftovers(list):
    """The relative names of our own files found where a write starts (old parts, temps,
    staging), with what the marks there said: ``folders``, where our files may lie,
    ``suffixes``, those of our part files, and ``companions``, those the dataset
    committed there had (gone at the next commit unless it has them too)."""

    def __init__(
        self,
        names: Iterable[str] = (),
        folders: Iterable[str] = (),
        companions: Iterable[str] = (),
        suffixes: Iterable[str] = PARQUET,
    ) -> None:
        super().__init__(names)
        self.folders = tuple(dict.fromkeys([*folders, *LEGACY_SIDE_FOLDERS]))
        self.companions = tuple(companions)
        self.suffixes = tuple(dict.fromkeys(suffixes))


def prepare_output(
    root: Location,
    folders: Iterable[str] = (),
    *,
    suffixes: Iterable[str] = PARQUET,
    companions: Iterable[str] = (),
    companion: str | None = None,
    companion_of: str | None = None,
) -> Leftovers:
    """Check ``root`` may be written and uncommit any dataset already there; the write
    about to start stages files in ``folders``, writes parts with ``suffixes`` and keeps
    ``companions`` beside it, or is itself the ``companion`` of the dataset at
    ``companion_of``.

    The write marker names every folder, part suffix and companion the marks found there
    named too, so a run stopped before its commit leaves nothing that no mark of ours
    names.
    Returns our own files found there (old parts, temps) as :class:`Leftovers`. Raises
    :class:`OutputConflictError` if anything else is there (we never delete what we did
    not write), or a dataset of ours of the other kind (a companion where a dataset
    goes, or anything but this companion where it goes).
    """
    relative, marks, known = _ours_at(root, companion)
    named = [name for mark in marks if mark is not None for name in companions_of(mark)]
    kinds = [s for mark in marks if mark is not None for s in part_suffixes(mark)]
    kinds = list(dict.fromkeys([*suffixes, *kinds]))
    storage.make_dirs(root)
    with storage.explained(root, "write"):
        marker = {
            "writer": WRITER,
            "started_at": dt.datetime.now(dt.UTC).isoformat(),
            "side_folders": list(dict.fromkeys([*folders, *known])),
            "part_suffixes": kinds,
            "companions": {name: {} for name in dict.fromkeys([*named, *companions])},
            **({"companion": companion, "companion_of": companion_of} if companion else {}),
        }
        storage.write_bytes_atomic(root.child(WRITING_NAME), json.dumps(marker).encode())
        if REMOVING_NAME in relative:
            # A removal that stopped half way is superseded by this write: its listed
            # files are now our leftovers, which commit deletes unless it rewrites them.
            storage.delete_file(root.child(REMOVING_NAME))
        # Uncommit: from here until the new manifest lands, readers see no dataset rather
        # than a manifest that disagrees with the files.
        storage.delete_file(root.child(MANIFEST_NAME))
    return Leftovers(
        [r for r in relative if r not in (MANIFEST_NAME, WRITING_NAME, REMOVING_NAME)],
        known,
        named,
        kinds,
    )


def check_output(root: Location, companion: str | None = None) -> None:
    """Raise :class:`OutputConflictError` as :func:`prepare_output` would, touching nothing:
    a run checks every location it writes before it changes any."""
    _ours_at(root, companion)


def _ours_at(
    root: Location, companion: str | None = None
) -> tuple[list[str], list[dict | None], tuple[str, ...]]:
    """What is at ``root`` (relative names), our marks there and the folders they name;
    :class:`OutputConflictError` if a file there is not ours, or if our marks say it is
    not what is to be written there (``companion``: that companion, None: a dataset)."""
    with storage.explained(root, "list"):
        found = [f.path for f in storage.list_files(root)]
    relative = [storage.Location(root.scheme, p).relative_to(root) for p in found]
    # Files with our names count as ours only where we left our mark: a manifest we
    # committed, or the marker of a write or a removal of ours that did not finish; in
    # side folders, only those that mark names.
    marks = [_our_document(root, name, relative) for name in _MARKS]
    ours = any(mark is not None for mark in marks)
    known = tuple(f for mark in marks if mark is not None for f in side_folders(mark))
    kinds = tuple(s for mark in marks if mark is not None for s in part_suffixes(mark))
    foreign = [r for r in relative if not (ours and is_own_file(r, known, kinds))]
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise OutputConflictError(
            f"output location {root.uri} holds {len(foreign)} file(s) this pipeline did not "
            f"write ({shown}); choose an empty location or remove them"
        )
    for mark in marks:
        kind = mark.get("companion") if mark else None
        if mark and kind != companion:
            what = f"the {kind} rows of {mark.get('companion_of')}" if kind else "a dataset"
            goes = f"the {companion} rows of the dataset beside it" if companion else "a dataset"
            raise OutputConflictError(
                f"output location {root.uri} holds {what}, where {goes} would be written; "
                "choose another location"
            )
    return relative, marks, known


# What marks a location as ours: a manifest we committed, or a marker of ours.
_MARKS = (MANIFEST_NAME, WRITING_NAME, REMOVING_NAME)


def _our_document(root: Location, name: str, relative: list[str]) -> dict | None:
    """The manifest or marker ``name`` at ``root`` if it is there and ours (an empty
    document for a marker that cannot be read: its name alone marks the write as ours)."""
    if name not in relative:
        return None
    if name == MANIFEST_NAME:
        try:
            manifest = read_manifest(root)
        except InputError:
            return None
        ok = (
            manifest is not None
            and manifest.get("manifest_version") == MANIFEST_VERSION
            and manifest.get("writer") == WRITER
        )
        return manifest if ok else None
    try:
        document = json.loads(storage.read_bytes(root.child(name)))
    except (FileNotFoundError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def listed_files(manifest: dict) -> list[str]:
    """Every file a manifest owns, relative to the dataset root: its data files, and the
    side files (an index, rejected rows) its step keeps beside them."""
    return [f["path"] for f in manifest["files"]] + list(manifest.get("side_files") or [])


def commit(
    root: Location, manifest: dict, leftovers: Iterable[str], deadline: float | None = None
) -> str:
    """Delete our files the manifest does not list, then write the manifest last; return
    the sha256 of the manifest's bytes (:func:`manifest_fingerprint`).

    Our files are those of the folders the manifest and (for :class:`Leftovers`) the
    marks found before the write name: the side folders of an older dataset committed
    there go too. Past ``deadline`` (epoch seconds) nothing is committed: a run that
    timed out has already been reported failed, so its output must not appear afterwards.
    """
    deadline_check(deadline, f"commit {root.uri}")
    listed = set(listed_files(manifest))
    folders = side_folders(manifest) + getattr(leftovers, "folders", ())
    kinds = part_suffixes(manifest) + getattr(leftovers, "suffixes", ())
    for relative in leftovers:
        if relative not in listed and is_own_file(relative, folders, kinds):
            storage.delete_file(root.child(relative))
    body = json.dumps(manifest, indent=2, sort_keys=False).encode()
    with storage.explained(root, "commit"):
        storage.write_bytes_atomic(root.child(MANIFEST_NAME), body)
        storage.delete_file(root.child(WRITING_NAME))
    for folder in folders:  # an older dataset's side folders, once emptied
        parts = folder.split("/")
        for depth in range(len(parts), 0, -1):
            storage.remove_empty_dir(root.child("/".join(parts[:depth])))
    return hashlib.sha256(body).hexdigest()


def read_dataset(
    uri: str, columns: list[str] | None = None, s3: storage.S3Settings | None = None
) -> pa.Table:
    """Read a committed dataset through its manifest (never by listing)."""
    root = storage.resolve(uri, s3)
    manifest = read_manifest(root)
    if manifest is None:
        raise InputError(f"{root.uri} has no {MANIFEST_NAME}: not a committed dataset")
    tables = []
    for entry in manifest["files"]:
        loc = root.child(entry["path"])
        with loc.fs.open_input_file(loc.path) as handle:
            tables.append(pq.read_table(handle, columns=columns))
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables)
