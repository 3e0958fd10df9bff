"""Step 4: remove exact and near duplicates from a dataset, on Ray Data.

Three passes, each over parts, so memory is bounded by a part, not by the dataset:

1. **Signatures.** One Ray Data task per input file reads its text and writes, under
   ``_dedup/signatures/`` in the output, each row's order key, exact digest and (near
   mode) MinHash signature and band hashes (:mod:`tasks.dedup`).
2. **Groups.** Ray Data groups the signature rows by digest, and by band hash, and
   returns only the groups of more than one row. Candidate pairs of a band are checked
   against the threshold with their full signatures; the duplicates' connected groups
   keep their smallest order key (the survivor rule).
3. **Filter.** One task per input file writes the part without the removed rows, and
   beside it the signature index of what it kept (``_dedup/index/``).

Then the manifest commits the dataset, as every stage here does.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tasks import dataset, dedup, inputs, retention, storage
from tasks.clean import check_text_column, text_as_string
from tasks.dataset import FileEntry
from tasks.errors import InputError
from tasks.parts import write_part
from tasks.preprocess import _decode_schema, _encode_schema, inspect_inputs
from tasks.raydata import Done, RayOptions, execution_summary, map_items
from tasks.storage import Location

log = logging.getLogger(__name__)

MODES = ("exact", "near")
STAGING = "_dedup/signatures"
INDEX = "_dedup/index"
KEY, DIGEST, BANDS, SIGNATURE = "key", "digest", "bands", "signature"
SHARD, FIRST = "shard", "first"
# Rows of one shard of the grouping pass: about 100 MB of (shard, key, hash) rows.
SHARD_ROWS = 4_000_000
# Band rows one grouping job shuffles at most (near mode groups the bands in rounds).
ROUND_ROWS = 16_000_000
# The per-group examples a run reports: this many largest groups, this many rows each.
EXAMPLE_GROUPS, EXAMPLE_ROWS = 10, 5


def _rows(spec: dict[str, Any]) -> Iterator[pa.Table]:
    """The rows of one input file, in order, in batches."""
    if spec["format"] == "parquet":
        yield from inputs.iter_parquet(spec["uri"], spec["batch_size"])
    else:
        yield from inputs.iter_json(
            spec["uri"], spec["batch_size"], _decode_schema(spec["input_schema"])
        )


def input_schema(inspected: list[dict[str, Any]], fmt: str, text_column: str) -> pa.Schema:
    """The one schema of every input file, which must have a string ``text_column``.
    JSON files' schemas are unified as preprocess does; Parquet files must agree."""
    schemas = [_decode_schema(i["schema"]) for i in inspected]
    for info, schema in zip(inspected, schemas, strict=True):
        check_text_column(schema, info["uri"], text_column)
    if fmt == "json":
        where = f"{inspected[0]['uri']} and the other input files: their columns' types differ"
        return inputs.settle_json_schema(inputs.unify_json_schemas(schemas, where))
    for info, schema in zip(inspected[1:], schemas[1:], strict=True):
        if not schema.equals(schemas[0]):
            raise InputError(
                f"{info['uri']}: schema {schema.names} differs from {inspected[0]['uri']}'s "
                f"{schemas[0].names}"
            )
    return schemas[0]


def _params(spec: dict[str, Any]) -> dedup.MinHashParams | None:
    return dedup.MinHashParams(**spec["params"]) if spec["mode"] == "near" else None


def signature_table(
    text: pa.Array | pa.ChunkedArray, keys: np.ndarray, params: dedup.MinHashParams | None
) -> pa.Table:
    """The signature rows of one batch: key, digest and, in near mode, bands and signature."""
    columns: dict[str, pa.Array] = {
        KEY: pa.array(keys, pa.int64()),
        DIGEST: dedup.exact_digests(text),
    }
    if params is not None:
        signature = dedup.signatures(text, params)
        bands = dedup.band_hashes(signature, params)
        # A text without words has no bands: it is nobody's near duplicate.
        valid = pa.array(dedup.has_words(signature))
        flat_bands = pa.array(bands.reshape(-1), pa.uint64())
        columns[BANDS] = pa.FixedSizeListArray.from_arrays(flat_bands, params.bands)
        columns[BANDS] = pa.compute.if_else(valid, columns[BANDS], None)
        flat_sig = pa.array(signature.reshape(-1), pa.uint32())
        columns[SIGNATURE] = pa.FixedSizeListArray.from_arrays(flat_sig, params.num_perm)
    return pa.table(columns)


def write_signatures(spec: dict[str, Any]) -> dict[str, Any]:
    """Pass 1 for one input file: its signature rows, as ``_dedup/signatures/part-N``."""
    root = storage.resolve(spec["output_uri"])
    params = _params(spec)
    text_column, index = spec["text_column"], spec["index"]
    counts = {"num_rows": 0, "text_bytes": 0}

    def tables() -> Iterator[pa.Table]:
        for table in _rows(spec):  # its schema was checked before any part started
            text = text_as_string(table.column(text_column))
            keys = dedup.order_keys(index, counts["num_rows"], table.num_rows)
            counts["num_rows"] += table.num_rows
            counts["text_bytes"] += int(pa.compute.sum(pa.compute.binary_length(text)).as_py() or 0)
            yield signature_table(text, keys, params)

    storage.make_dirs(root.child(STAGING))
    write_part(root.child(STAGING), index, tables(), signature_schema(params), "none")
    return counts


def signature_schema(params: dedup.MinHashParams | None) -> pa.Schema:
    fields = [pa.field(KEY, pa.int64()), pa.field(DIGEST, pa.binary(dedup.EXACT_DIGEST_BYTES))]
    if params is not None:
        fields += [
            pa.field(BANDS, pa.list_(pa.uint64(), params.bands)),
            pa.field(SIGNATURE, pa.list_(pa.uint32(), params.num_perm)),
        ]
    return pa.schema(fields)


def _digest_rows(shards: int) -> Callable[[pa.Table], pa.Table]:
    """Signature rows as (shard, key, hi, lo): the digest as two words, and the shard
    (a slice of the digest space) that brings equal digests together."""

    def rows(batch: pa.Table) -> pa.Table:
        valid = batch.filter(batch.column(DIGEST).is_valid())  # null text: no digest
        words = dedup.digest_words(valid.column(DIGEST))
        keys = np.asarray(valid.column(KEY))
        return pa.table(
            {
                SHARD: pa.array(words[:, 1] % np.uint64(shards), pa.uint64()),
                KEY: pa.array(keys, pa.int64()),
                "hi": pa.array(words[:, 0], pa.uint64()),
                "lo": pa.array(words[:, 1], pa.uint64()),
            }
        )

    return rows


def _band_rows(shards: int, bands: slice) -> Callable[[pa.Table], pa.Table]:
    """One row per (key, band) of the rows that have words, for the ``bands`` of this
    round: the band's hash (bucket), the key, and the shard (a slice of the bucket
    space) that brings equal buckets together."""

    def rows(batch: pa.Table) -> pa.Table:
        kept = batch.filter(batch.column(BANDS).is_valid())
        width = kept.schema.field(BANDS).type.list_size
        every = np.asarray(kept.column(BANDS).combine_chunks().flatten(), dtype=np.uint64)
        chosen = every.reshape(-1, width)[:, bands]
        flat = chosen.reshape(-1)
        keys = np.repeat(np.asarray(kept.column(KEY)), chosen.shape[1])
        return pa.table(
            {
                SHARD: pa.array(flat % np.uint64(shards), pa.uint64()),
                KEY: pa.array(keys, pa.int64()),
                "bucket": pa.array(flat, pa.uint64()),
            }
        )

    return rows


def _pairs_in(columns: list[str]) -> Callable[[pa.Table], pa.Table]:
    """A shard's duplicates: each key that shares ``columns`` with a smaller key, beside
    the smallest such key (:func:`tasks.dedup.first_of_runs`)."""

    def pairs(shard: pa.Table) -> pa.Table:
        values = [np.asarray(shard.column(c)) for c in columns]
        first, keys = dedup.first_of_runs(values, np.asarray(shard.column(KEY)))
        return pa.table({FIRST: pa.array(first, pa.int64()), KEY: pa.array(keys, pa.int64())})

    return pairs


def _shard_pairs(rows, columns: list[str], shards: int) -> list[tuple[int, int]]:
    """The ``(first, key)`` pairs of every shard, grouped by Ray Data. One call per
    shard, vectorised: a call per digest or bucket would cost one Python call per row."""
    grouped = rows.groupby(SHARD, num_partitions=shards).map_groups(
        _pairs_in(columns), batch_format="pyarrow"
    )
    return [(int(r[FIRST]), int(r[KEY])) for r in grouped.take_all()]


def shard_count(files: int, rows: int) -> int:
    """Shards for grouping ``rows`` rows: at least one per file, and at most
    ``SHARD_ROWS`` rows each, so a shard's memory is bounded whatever the file sizes."""
    return max(files, -(-rows // SHARD_ROWS), 1)


def _against_keys(paths: dict[str, int], count: int) -> Callable[[pa.Table], pa.Table]:
    """Re-key rows of the ``against`` indexes below every key of this run's input: the
    index file at ``paths[path]`` becomes file ``paths[path] - count`` (negative)."""

    def rekey(batch: pa.Table) -> pa.Table:
        files = np.array([paths[p] - count for p in batch.column("path").to_pylist()])
        rows = np.asarray(batch.column(KEY)) & np.int64((1 << dedup.ROW_BITS) - 1)
        keys = (files.astype(np.int64) << np.int64(dedup.ROW_BITS)) | rows
        batch = batch.drop_columns(["path"])
        return batch.set_column(batch.schema.get_field_index(KEY), KEY, pa.array(keys))

    return rekey


def _signature_rows(signature_uris: list[str], against_uris: list[str], columns: list[str]):
    """This run's signature rows, and the ``against`` indexes' rows keyed below them."""
    import ray.data

    rows = ray.data.read_parquet(signature_uris, columns=columns)
    if not against_uris:
        return rows
    paths = {storage.resolve(uri).path: i for i, uri in enumerate(against_uris)}
    against = ray.data.read_parquet(against_uris, columns=columns, include_paths=True)
    return rows.union(
        against.map_batches(_against_keys(paths, len(against_uris)), batch_format="pyarrow")
    )


def find_duplicates(
    signature_uris: list[str],
    params: dedup.MinHashParams | None,
    against_uris: list[str] | None = None,
    rows: int = 0,
) -> tuple[dict[int, int], dict[int, int]]:
    """Pass 2: ``(exact, near)``, each mapping a removed key to the key that survives it.

    Ray Data groups the signature rows (``rows`` of them in this run's input) by shard
    of their digest, and of their band hashes; each shard's duplicates are found in one
    vectorised call, and only those come back, so the driver holds the duplicates, not
    the dataset. Rows of the ``against`` index files have negative keys: they survive
    any group they are in and are never removed (they are not this run's to remove).
    """
    against_uris = against_uris or []
    files = len(signature_uris) + len(against_uris)
    shards = shard_count(files, rows)
    digests = _signature_rows(signature_uris, against_uris, [KEY, DIGEST]).map_batches(
        _digest_rows(shards), batch_format="pyarrow"
    )
    exact = {key: first for first, key in _shard_pairs(digests, ["hi", "lo"], shards)}
    if params is None:
        return {k: v for k, v in exact.items() if k >= 0}, {}
    # One row per band is ``bands`` times the rows: in rounds of a few bands each, so
    # what one Ray Data job shuffles stays about ROUND_ROWS rows whatever the size.
    rounds = min(params.bands, max(1, -(-rows * params.bands // ROUND_ROWS)))
    edges: set[tuple[int, int]] = set()
    for number in range(rounds):
        bands = slice(number * params.bands // rounds, (number + 1) * params.bands // rounds)
        shards = shard_count(files, rows * (bands.stop - bands.start))
        banded = _signature_rows(signature_uris, against_uris, [KEY, BANDS]).map_batches(
            _band_rows(shards, bands), batch_format="pyarrow"
        )
        edges |= set(_shard_pairs(banded, ["bucket"], shards))
    # Exact duplicates are settled already: only their survivors take part here.
    edges = {(exact.get(a, a), exact.get(b, b)) for a, b in edges}
    edges = {(a, b) for a, b in edges if a != b}
    exact = {k: v for k, v in exact.items() if k >= 0}
    if not edges:
        return exact, {}
    pairs = np.array(sorted(edges), dtype=np.int64)
    wanted, where = np.unique(pairs, return_inverse=True)
    found = _signatures_of(signature_uris, against_uris, wanted)
    matrix = np.stack([found[int(k)] for k in wanted])
    where = where.reshape(-1, 2)
    similar = dedup.estimated_similarity(matrix[where[:, 0]], matrix[where[:, 1]])
    verified: dict[int, list[int]] = {}
    for a, b in pairs[similar >= params.threshold].tolist():
        verified.setdefault(min(a, b), []).append(max(a, b))
    near = {k: v for k, v in dedup.survivors_of(verified).items() if k >= 0}
    return exact, near


def _signatures_of(
    signature_uris: list[str], against_uris: list[str], keys: np.ndarray
) -> dict[int, np.ndarray]:
    """The full signatures of ``keys`` only, read by Ray Data from the signature files."""
    import ray

    wanted = ray.put(keys)

    def keep(batch: pa.Table) -> pa.Table:
        chosen = np.isin(np.asarray(batch.column(KEY)), ray.get(wanted))
        return batch.filter(pa.array(chosen))

    found = _signature_rows(signature_uris, against_uris, [KEY, SIGNATURE]).map_batches(
        keep, batch_format="pyarrow"
    )
    return {int(r[KEY]): np.asarray(r[SIGNATURE]) for r in found.take_all()}


def write_deduped_part(spec: dict[str, Any]) -> dict[str, Any]:
    """Pass 3 for one input file: the part without its removed rows, and its index."""
    root = storage.resolve(spec["output_uri"])
    schema = _decode_schema(spec["schema"])
    removed = np.array(spec["removed_rows"], dtype=np.int64)
    position = 0
    kept_rows: list[np.ndarray] = []

    def tables() -> Iterator[pa.Table]:
        nonlocal position
        for table in _rows(spec):
            rows = np.arange(position, position + table.num_rows, dtype=np.int64)
            position += table.num_rows
            keep = ~np.isin(rows, removed)
            kept_rows.append(rows[keep])
            yield table.filter(pa.array(keep)).select(schema.names).cast(schema)

    entry = write_part(root, spec["index"], tables(), schema, spec["compression"])
    kept = np.concatenate(kept_rows) if kept_rows else np.array([], np.int64)
    _write_index(root, spec, kept)
    return {"path": entry.path, "num_rows": entry.num_rows, "size_bytes": entry.size_bytes}


def _write_index(root: Location, spec: dict[str, Any], kept: np.ndarray) -> None:
    """The kept rows' signature rows, keyed by their place in the output part."""
    staging = root.child(STAGING).child(dataset.part_name(spec["index"]))
    with staging.fs.open_input_file(staging.path) as handle:
        signatures = pq.read_table(handle)
    rows = np.asarray(signatures.column(KEY)) & np.int64((1 << dedup.ROW_BITS) - 1)
    chosen = signatures.filter(pa.array(np.isin(rows, kept)))
    keys = dedup.order_keys(spec["index"], 0, chosen.num_rows)
    chosen = chosen.set_column(0, KEY, pa.array(keys, pa.int64()))
    storage.make_dirs(root.child(INDEX))
    write_part(root.child(INDEX), spec["index"], [chosen], chosen.schema, "none")


def index_files(uri: str, params: dedup.MinHashParams | None, output: Location) -> list[str]:
    """The signature index files of the dataset at ``uri``, checked to be a committed
    output of this step that carries what this run compares (in near mode, signatures
    made with the same shingles, permutations and bands)."""
    root = storage.resolve(uri)
    if root.contains(output) or output.contains(root):
        raise InputError(f"against {root.uri}: is or holds this run's output_uri")
    manifest = dataset.read_manifest(root)
    if manifest is None:
        raise InputError(f"against {root.uri}: no _manifest.json, not a committed dataset")
    index = (manifest.get("dedup") or {}).get("index")
    if index is None:
        raise InputError(f"against {root.uri}: not written by the dedup step (no signature index)")
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
    return [root.child(path).uri for path in index]


def against_indexes(
    against: list[str], params: dedup.MinHashParams | None, output: Location
) -> list[str]:
    """The index files of every ``against`` dataset (:func:`index_files`), in order."""
    return [file for uri in against for file in index_files(uri, params, output)]


def earlier_partitions(
    output: Location, params: dedup.MinHashParams | None
) -> dict[str, list[str]]:
    """The committed outputs of this step in the ``dt=`` folders beside ``output``, dated
    before it, that this run can compare against (in near mode: the same signatures),
    each with its index files. For the nightly: each night's rows are checked against
    every night still kept."""
    name = posixpath.basename(output.path.rstrip("/"))
    day = retention.partition_date(name)
    if day is None:
        raise InputError(
            f"against_earlier: output_uri {output.uri} is not a dt=YYYY-MM-DD partition"
        )
    parent = Location(output.scheme, posixpath.dirname(output.path.rstrip("/")), output.s3)
    found: dict[str, list[str]] = {}
    for folder in storage.list_dirs(parent):
        earlier = retention.partition_date(folder)
        if earlier is None or earlier >= day:
            continue
        uri = parent.child(folder).uri
        try:
            found[uri] = index_files(uri, params, output)
        except InputError as exc:  # not ours, not committed, or other signatures
            log.info("not comparing against %s: %s", uri, exc)
    return found


def group_examples(
    members: dict[int, list[int]],
    uris: list[str],
    against_index: list[str],
    groups: int = EXAMPLE_GROUPS,
) -> list[dict[str, Any]]:
    """The largest groups of duplicates (ties: the earliest survivor), each with its
    size and the first few rows as ``file:row``: the survivor first, then the removed.
    A survivor from an ``against`` dataset is named by its index file."""

    def where(key: int) -> str:
        file_index, row = dedup.key_position(key)
        if file_index < 0:
            return f"{against_index[file_index + len(against_index)]}:{row}"
        return f"{uris[file_index]}:{row}"

    largest = sorted(members.items(), key=lambda item: (-len(item[1]), item[0]))[:groups]
    return [
        {
            "rows": len(keys),
            "survivor": where(survivor),
            "removed (first few)": ", ".join(where(k) for k in keys[1 : EXAMPLE_ROWS + 1]),
        }
        for survivor, keys in largest
    ]


def dedup_dataset(
    input_uri: str,
    output_uri: str,
    mode: str = "exact",
    text_column: str = "cleaned_text",
    params: dedup.MinHashParams | None = None,
    batch_size: int = 8192,
    compression: str = "snappy",
    scheduling: RayOptions | None = None,
    on_done: Callable[[int, int, Done], None] | None = None,
    deadline: float | None = None,
    against: list[str] | None = None,
    against_earlier: bool = False,
    on_phase: Callable[[str], None] = log.info,
) -> dict[str, Any]:
    """Remove duplicates of ``text_column`` from the input into a committed dataset.

    Of each group of duplicates the row first in input order survives (files in
    manifest order, then rows). Rows of the ``against`` datasets (earlier outputs of
    this step) count as kept before all of them: input rows that duplicate one are
    removed, through those datasets' signature indexes only. ``against_earlier`` adds
    the earlier ``dt=`` partitions beside the output (:func:`earlier_partitions`).
    ``on_phase`` hears a line as each pass starts. Returns the manifest.
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    params = (params or dedup.MinHashParams()) if mode == "near" else None
    started = time.monotonic()
    found = inputs.discover(input_uri, "auto")
    root = storage.resolve(output_uri)
    dataset.check_disjoint(found.root, root)
    uris = [f.uri for f in found.files]
    inspected = inspect_inputs(uris, found.format, scheduling)
    schema = input_schema(inspected, found.format, text_column)
    indexed = {storage.resolve(u).uri: index_files(u, params, root) for u in against or []}
    if against_earlier:
        earlier = earlier_partitions(root, params)
        indexed |= {uri: files for uri, files in earlier.items() if uri not in indexed}
    against_index = [file for files in indexed.values() for file in files]
    leftovers = dataset.prepare_output(root)
    common = {
        "format": found.format,
        "input_schema": _encode_schema(schema),
        "text_column": text_column,
        "batch_size": batch_size,
        "output_uri": root.uri,
        "mode": mode,
        "params": params.__dict__ if params else None,
    }
    specs = [{**common, "index": i, "uri": uri} for i, uri in enumerate(uris)]
    on_phase(f"pass 1/3: signatures of {len(uris)} input files into {root.child(STAGING).uri}")
    counted = map_items(write_signatures, specs, scheduling=scheduling, deadline=deadline)
    signature_uris = [root.child(STAGING).child(dataset.part_name(i)).uri for i in range(len(uris))]
    rows_in = sum(part.result["num_rows"] for part in counted)
    on_phase(
        f"pass 2/3: grouping {rows_in} rows"
        + (f" and {len(against_index)} index files of earlier outputs" if against_index else "")
        + (" by digest and LSH band" if params else " by digest")
    )
    exact, near = find_duplicates(signature_uris, params, against_index, rows_in)
    removed: dict[int, list[int]] = {}
    for key in (*exact, *near):
        file_index, row = dedup.key_position(key)
        removed.setdefault(file_index, []).append(row)
    write_specs = [
        {
            **spec,
            "schema": _encode_schema(schema),
            "compression": compression,
            "removed_rows": sorted(removed.get(i, [])),
        }
        for i, spec in enumerate(specs)
    ]
    on_phase(
        f"pass 3/3: writing {len(uris)} parts without {len(exact)} exact and {len(near)} "
        "near duplicates"
    )
    parts = map_items(
        write_deduped_part, write_specs, scheduling=scheduling, on_done=on_done, deadline=deadline
    )
    entries = [FileEntry(**part.result) for part in parts]
    # Each removed row's final survivor: an exact duplicate's survivor may itself be a
    # near duplicate of an earlier row.
    final = {k: near.get(v, v) for k, v in exact.items()} | near
    members: dict[int, list[int]] = {}  # survivor: the survivor, then the rows removed
    for removed_key, survivor in sorted(final.items()):
        members.setdefault(survivor, [survivor]).append(removed_key)
    stats = {
        "rows_in": rows_in,
        "exact_duplicates_removed": len(exact),
        "near_duplicates_removed": len(near),
        "groups": len(members),
        "largest_group": max(map(len, members.values()), default=1),
        "against_removed": sum(1 for survivor in final.values() if survivor < 0),
    }
    if sum(e.num_rows for e in entries) != rows_in - len(exact) - len(near):
        raise RuntimeError(f"wrote {sum(e.num_rows for e in entries)} rows of {rows_in}")
    manifest = dataset.build_manifest(
        entries,
        schema,
        stage="dedup",
        parameters={
            "input_uri": found.uri,
            "mode": mode,
            "text_column": text_column,
            **({"minhash": params.__dict__} if params else {}),
            "against": list(indexed),
        },
        inputs={
            "num_files": len(found.files),
            "num_rows": rows_in,
            "size_bytes": sum(f.size_bytes for f in found.files),
            **found.fingerprint,
        },
        stats={"text_bytes": sum(part.result["text_bytes"] for part in counted)},
        dedup={
            **stats,
            "examples": group_examples(members, uris, against_index),
            "index": [f"{INDEX}/{dataset.part_name(i)}" for i in range(len(uris))],
        },
        timings={"total_seconds": round(time.monotonic() - started, 3)},
        execution=execution_summary(
            parts,
            [
                (p.result["num_rows"], c.result["text_bytes"])
                for p, c in zip(parts, counted, strict=True)
            ],
        ),
    )
    dataset.commit(root, manifest, leftovers, deadline)
    for i in range(len(uris)):
        storage.delete_file(root.child(STAGING).child(dataset.part_name(i)))
    storage.remove_empty_dir(root.child(STAGING))
    return manifest
