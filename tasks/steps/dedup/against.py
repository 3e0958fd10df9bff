"""The datasets a dedup run compares with (``against``, ``against_earlier``): earlier
outputs of the dedup step, read through their signature indexes, and refused when they
are, hold or lie inside the run's own input or output."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from tasks.errors import InputError
from tasks.nightly import retention
from tasks.steps.dedup import minhash as dedup
from tasks.store import dataset, storage
from tasks.store.storage import Location

INDEX = "index"  # the dedup step's companion of kept rows' signatures


def _check_apart(root: Location, others: dict[str, Location]) -> None:
    """Refuse an ``against`` dataset that is, holds or lies inside the input or output:
    compared with itself, every row of it would be a duplicate of itself."""
    for name, other in others.items():
        if root.contains(other) or other.contains(root):
            raise InputError(
                f"against {root.uri}: is, holds or lies inside this run's {name} {other.uri}; "
                "a dataset is never deduplicated against itself"
            )


def index_files(
    uri: str,
    params: dedup.MinHashParams | None,
    others: dict[str, Location],
    s3: storage.S3Settings | None = None,
) -> tuple[list[str], int]:
    """The signature index files of the dataset at ``uri`` and its row count, checked to
    be a committed output of this step that carries what this run compares (in near
    mode, signatures made with the same shingles, permutations and bands), and to be
    apart from ``others`` (the run's input and output, by name). ``s3``: how the run
    reaches S3."""
    root = storage.resolve(uri, s3)
    _check_apart(root, others)
    manifest = dataset.read_manifest(root)
    if manifest is None:
        raise InputError(f"against {root.uri}: no _manifest.json, not a committed dataset")
    try:
        stats = manifest.get("dedup") or {}
        companions = manifest.get("companions") or {}
        if INDEX not in companions and stats.get("index") is None:
            raise InputError(
                f"against {root.uri}: not written by the dedup step (no signature index)"
            )
        if stats.get("sketch") != dedup.SKETCH:
            raise InputError(
                f"against {root.uri}: its index was written by an earlier version of the "
                f"dedup step, which digests and sketches rows otherwise (this one: "
                f"{dedup.SKETCH}); run dedup on it again to compare with it"
            )
        if params is not None:
            theirs = (manifest.get("parameters") or {}).get("minhash")
            if theirs is None:
                raise InputError(
                    f"against {root.uri}: deduplicated in exact mode, so it has no MinHash "
                    "signatures for near mode"
                )
            for name in ("shingle", "num_perm", "bands", "seed"):
                if theirs[name] != getattr(params, name):
                    raise InputError(
                        f"against {root.uri}: its signatures use {name}={theirs[name]}, this "
                        f"run {name}={getattr(params, name)}; they must match"
                    )
        if INDEX not in companions:  # an older layout: the index inside the dataset
            return [root.child(path).uri for path in stats["index"]], int(manifest["num_rows"])
        return _companion_index(root, companions[INDEX]), int(manifest["num_rows"])
    except InputError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # not the shape we write
        raise InputError(f"against {root.uri}: its manifest is malformed ({exc!r})") from None


def _companion_index(root: Location, recorded: dict) -> list[str]:
    """The files of the index committed with the dataset at ``root``: the companion at
    the place the layout derives, checked to be the one its manifest recorded."""
    where = dataset.companion(root, INDEX)
    digest = recorded["manifest_sha256"]
    if not isinstance(digest, str) or dataset.manifest_fingerprint(where) != digest:
        raise InputError(
            f"against {root.uri}: its signature index at {where.uri} is missing or is not "
            "the one committed with it; run dedup on it again to compare with it"
        )
    index = dataset.read_manifest(where)
    if index is None:  # gone since its digest was read
        raise InputError(f"against {root.uri}: its signature index at {where.uri} is gone")
    return [where.child(entry["path"]).uri for entry in index["files"]]


def earlier_candidates(output: Location) -> list[str]:
    """The ``dt=`` folders beside ``output`` dated before it (committed or not): what
    ``against_earlier`` may compare against, and what a run reads while it does."""
    name = posixpath.basename(output.path.rstrip("/"))
    day = retention.partition_date(name)
    if day is None:
        raise InputError(
            f"against_earlier: output_uri {output.uri} is not a dt=YYYY-MM-DD partition"
        )
    parent = Location(output.scheme, posixpath.dirname(output.path.rstrip("/")), output.s3)
    return [
        parent.child(folder).uri
        for folder in storage.list_dirs(parent)
        if (earlier := retention.partition_date(folder)) is not None and earlier < day
    ]


@dataclass
class Against:
    """The ``against`` datasets a run compares with: each used one's index files and
    rows, and each skipped one with why (recorded in the manifest)."""

    used: dict[str, tuple[list[str], int]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        return [file for files, _ in self.used.values() for file in files]

    @property
    def rows(self) -> int:
        return sum(rows for _, rows in self.used.values())


def resolve_against(
    against: list[str],
    against_earlier: bool,
    params: dedup.MinHashParams | None,
    source: Location,
    output: Location,
) -> Against:
    """The datasets this run compares with: every ``against`` one (any that cannot be
    used is an error), then with ``against_earlier`` the earlier ``dt=`` partitions beside
    the output that can be (the others skipped, each with its reason)."""
    others = {"input_uri": source, "output_uri": output}
    found = Against()
    for uri in against:
        found.used[storage.resolve(uri, output.s3).uri] = index_files(
            uri, params, others, output.s3
        )
    if against_earlier:
        for uri in earlier_candidates(output):
            if uri in found.used:
                continue
            try:
                found.used[uri] = index_files(uri, params, others, output.s3)
            except InputError as exc:  # not ours, not committed, other signatures, malformed
                found.skipped.append({"uri": uri, "reason": str(exc)})
    return found
