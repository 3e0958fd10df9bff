"""Pass 2 of the dedup step: which rows are duplicates of which, through files that pass
1 cut into shards.

Pass 1 writes, for each input file (and each ``against`` index file), two group files
whose row groups are shards of the hash space, one row group per shard:

* ``_dedup/digests/``: each row's exact digest, with ``first``: the key of the file's
  first row with that text (the row's own key for a first copy). Repeats within a file
  are settled there, so a text copied 50 million times puts one first copy per file into
  its shard, not 50 million rows.
* ``_dedup/bands/`` (near mode): one row per band of each row that has words and is no
  repeat within its file: the band's key (bucket) and the row's key.

A shard's task reads its row group from every file, sorts it once and pairs each row
with the smallest key sharing its digest or bucket (:func:`dedup.first_of_runs`): a
map-side partitioned shuffle through storage, which costs a fraction of Ray Data's
general one here (see docs/performance.md) and holds one shard, never the dataset.
Candidate pairs of near mode are verified in rounds: each signature file gives the
sketches of the round's keys it holds, and the pairs whose estimated similarity reaches
the threshold are duplicates. Their connected groups keep their smallest order key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.steps.dedup import minhash as dedup
from tasks.store import part_files, storage
from tasks.store.storage import Location

# The columns of a signature file (and of an index file).
KEY, DIGEST, SIGNATURE = "key", "digest", "signature"
FIRST, BUCKET = "first", "bucket"
DIGESTS, BANDS, SETTLED = "_dedup/digests", "_dedup/bands", "_dedup/settled"
# Rows of one shard at most: about 100 MB of digest rows, 64 MB of band rows.
SHARD_ROWS = 4_000_000
# Candidate pairs one verification round checks at most: the sketches it gathers (two
# per pair at most, 136 bytes each with the defaults) stay under 70 MB.
VERIFY_ROUND_PAIRS = 250_000
# Rows read from a signature file at a time.
READ_ROWS = 65_536

DIGEST_SCHEMA = pa.schema(
    [
        pa.field(KEY, pa.int64()),
        pa.field("hi", pa.uint64()),
        pa.field("lo", pa.uint64()),
        pa.field(FIRST, pa.int64()),
    ]
)
BAND_SCHEMA = pa.schema([pa.field(KEY, pa.int64()), pa.field(BUCKET, pa.uint64())])
DIGEST_ROW_BYTES, BAND_ROW_BYTES = 32, 16  # as written (no compression)

# Runs ``fn`` over specs and returns the results in order: on Ray (the run's map) or,
# for a small input, in this process.
Each = Callable[[Callable[[Any], Any], list[Any]], list[Any]]


def shard_count(files: int, rows: int) -> int:
    """Shards for grouping ``rows`` rows: at least one per file, and at most
    ``SHARD_ROWS`` rows each, so a shard's memory is bounded whatever the file sizes."""
    return max(files, -(-rows // SHARD_ROWS), 1)


@dataclass(frozen=True)
class Shards:
    """How many shards the digests and the bands are cut into (0 bands: exact mode)."""

    digests: int
    bands: int = 0


def in_file_firsts(keys: np.ndarray, words: np.ndarray) -> np.ndarray:
    """For each row of one file (``words``: its digest as (n, 2) uint64), the key of the
    file's first row with the same digest: its own key for a first copy."""
    first, repeated = dedup.first_of_runs([words[:, 0], words[:, 1]], keys)
    local = keys.copy()
    order = np.argsort(keys, kind="stable")
    local[order[np.searchsorted(keys[order], repeated)]] = first
    return local


def _sharded(table: pa.Table, shard: np.ndarray, shards: int) -> Iterator[pa.Table]:
    """``table`` cut into ``shards`` tables by ``shard`` (in order; empty ones too)."""
    # A stable sort of small integers is a radix sort in NumPy (16 bits and less).
    small = shard.astype(np.uint16) if shards <= 1 << 16 else shard
    order = np.argsort(small, kind="stable")
    bounds = np.searchsorted(shard[order], np.arange(shards + 1))
    table = table.take(pa.array(order))
    for s in range(shards):
        yield table.slice(int(bounds[s]), int(bounds[s + 1] - bounds[s]))


def _write_sharded(loc: Location, schema: pa.Schema, tables: Iterator[pa.Table]) -> None:
    """One row group per table (empty ones too, so row group ``s`` is shard ``s``)."""
    with (
        storage.explained(loc, "write"),
        loc.fs.open_output_stream(loc.path) as sink,
        pq.ParquetWriter(
            sink,
            schema,
            compression="none",
            **part_files.PLAIN,
            # Keys ascend within a shard: deltas halve them.
            column_encoding={
                f.name: "DELTA_BINARY_PACKED" if f.type == pa.int64() else "PLAIN" for f in schema
            },
        ) as writer,
    ):
        for table in tables:
            writer.write_table(table, row_group_size=max(table.num_rows, 1))


def write_group_files(
    root: Location,
    name: str,
    keys: np.ndarray,
    digests: pa.Array,
    tags: np.ndarray | None,
    params: dedup.MinHashParams | None,
    shards: Shards,
) -> None:
    """Pass 1's group files of one signature file's rows (see the module docstring):
    ``keys``, their ``digests`` (null: blank) and, in near mode, their sketches."""
    valid = np.asarray(digests.is_valid(), dtype=bool)
    words = dedup.digest_words(digests)
    mine = keys[valid]
    first = in_file_firsts(mine, words)
    rows = pa.table(
        {
            KEY: pa.array(mine, pa.int64()),
            "hi": pa.array(words[:, 0], pa.uint64()),
            "lo": pa.array(words[:, 1], pa.uint64()),
            FIRST: pa.array(first, pa.int64()),
        }
    )
    shard = (words[:, 1] % np.uint64(shards.digests)).astype(np.int64)
    storage.make_dirs(root.child(DIGESTS))
    _write_sharded(
        root.child(DIGESTS).child(name), DIGEST_SCHEMA, _sharded(rows, shard, shards.digests)
    )
    if params is None:
        return
    from tasks.steps.dedup import sketch  # Numba: loaded only where sketches are used

    # Bands of the rows with words, less a file's repeats (their first copy has them all).
    chosen = valid.copy()
    chosen[np.flatnonzero(valid)[first != mine]] = False
    chosen &= tags.any(axis=1)
    buckets = sketch.band_keys(tags[chosen], params.bands, params.seed)
    band_rows = pa.table(
        {
            KEY: pa.array(np.repeat(keys[chosen], params.bands), pa.int64()),
            BUCKET: pa.array(buckets.reshape(-1), pa.uint64()),
        }
    )
    shard = (buckets.reshape(-1) % np.uint64(shards.bands)).astype(np.int64)
    storage.make_dirs(root.child(BANDS))
    _write_sharded(
        root.child(BANDS).child(name), BAND_SCHEMA, _sharded(band_rows, shard, shards.bands)
    )


@dataclass(frozen=True)
class ShardTask:
    """One shard of one kind (digests or bands): its row group in each group file."""

    files: tuple[str, ...]
    shard: int
    settled: str | None = None  # bands: a file of keys already removed as exact copies
    s3: storage.S3Settings | None = None


def _read_shard(task: ShardTask, columns: list[str]) -> pa.Table:
    tables = []
    for uri in task.files:
        loc = storage.resolve(uri, task.s3)
        with storage.explained(loc, "read"), loc.fs.open_input_file(loc.path) as handle:
            tables.append(pq.ParquetFile(handle).read_row_group(task.shard, columns=columns))
    return pa.concat_tables(tables)


def digest_pairs(task: ShardTask) -> tuple[np.ndarray, np.ndarray]:
    """A digest shard's duplicates as (first, key): repeats within a file with their
    file's first copy, and first copies with the smallest key of the same text."""
    rows = _read_shard(task, [KEY, "hi", "lo", FIRST])
    key, first = np.asarray(rows.column(KEY)), np.asarray(rows.column(FIRST))
    repeat = first != key
    values = [np.asarray(rows.column(c))[~repeat] for c in ("hi", "lo")]
    grouped_first, grouped = dedup.first_of_runs(values, key[~repeat])
    return np.concatenate([first[repeat], grouped_first]), np.concatenate([key[repeat], grouped])


def band_pairs(task: ShardTask) -> tuple[np.ndarray, np.ndarray]:
    """A band shard's candidate pairs as (first, key), less the keys already removed as
    exact copies (their survivor has the same bands)."""
    rows = _read_shard(task, [KEY, BUCKET])
    buckets, keys = np.asarray(rows.column(BUCKET)), np.asarray(rows.column(KEY))
    first, key = dedup.first_of_runs([buckets], keys)
    if task.settled is not None and len(key):
        loc = storage.resolve(task.settled, task.s3)
        with storage.explained(loc, "read"), loc.fs.open_input_file(loc.path) as handle:
            settled = np.asarray(pq.read_table(handle).column(KEY))
        _, hit = dedup.find_sorted(settled, key)
        first, key = first[~hit], key[~hit]
    return first, key


def _settle(first: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Each ``key``'s survivor: its ``first``, or, where that first is itself a removed
    key (a file's first copy of a text seen in an earlier file), that one's first."""
    order = np.argsort(key, kind="stable")
    at, hit = dedup.find_sorted(key[order], first)
    return np.where(hit, first[order][at] if len(key) else first, first)


# A signature file to read: its URI and its file number. Input files are numbered from
# 0 in input order; the ``against`` index files get negative numbers, below them all.
Source = tuple[str, int]


def read_signature_file(
    uri: str, file: int, columns: list[str], s3: storage.S3Settings | None
) -> Iterator[pa.Table]:
    """The ``columns`` of one signature file in batches, read through the run's S3
    settings. Rows of an ``against`` index (``file`` < 0) are keyed as rows of file
    ``file``."""
    loc = storage.resolve(uri, s3)
    with storage.explained(loc, "read"), loc.fs.open_input_file(loc.path) as handle:
        for batch in pq.ParquetFile(handle).iter_batches(READ_ROWS, columns=columns):
            table = pa.Table.from_batches([batch])
            if file < 0 and KEY in columns:
                rows = np.asarray(table.column(KEY)) & np.int64((1 << dedup.ROW_BITS) - 1)
                keys = (np.int64(file) << np.int64(dedup.ROW_BITS)) | rows
                table = table.set_column(
                    table.schema.get_field_index(KEY), KEY, pa.array(keys, pa.int64())
                )
            yield table


@dataclass(frozen=True)
class Lookup:
    """The sketches of ``keys`` (sorted) held by one signature file."""

    source: Source
    keys: np.ndarray
    s3: storage.S3Settings | None = None


def sketches_of(task: Lookup) -> tuple[np.ndarray, np.ndarray]:
    """(keys, sketches) of the wanted keys found in the file, in the file's order."""
    from tasks.steps.dedup import sketch

    found_keys, found_tags = [], []
    uri, file = task.source
    for table in read_signature_file(uri, file, [KEY, SIGNATURE], task.s3):
        keys = np.asarray(table.column(KEY))
        _, hit = dedup.find_sorted(task.keys, keys)
        if hit.any():
            found_keys.append(keys[hit])
            found_tags.append(sketch.tags_from(table.column(SIGNATURE))[hit])
    if not found_keys:
        return np.array([], np.int64), np.zeros((0, 0), np.uint8)
    return np.concatenate(found_keys), np.concatenate(found_tags)


def _gather(sources: list[Source], keys: np.ndarray, each: Each, s3) -> tuple[np.ndarray, Any]:
    """The sketches of ``keys``, from the files that hold them: (sorted keys, sketches)."""
    files = keys >> np.int64(dedup.ROW_BITS)
    tasks = [
        Lookup((uri, number), keys[files == number], s3)
        for uri, number in sources
        if (files == number).any()
    ]
    found = [part for part in each(sketches_of, tasks) if len(part[0])]
    if not found:
        return np.array([], np.int64), np.zeros((0, 0), np.uint8)
    got_keys = np.concatenate([k for k, _ in found])
    got_tags = np.concatenate([t for _, t in found])
    order = np.argsort(got_keys, kind="stable")
    return got_keys[order], got_tags[order]


def verify_pairs(
    sources: list[Source],
    pairs: np.ndarray,
    params: dedup.MinHashParams,
    each: Each,
    s3: storage.S3Settings | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The candidate ``pairs`` ((n, 2) keys) whose estimated similarity reaches the
    threshold, and that similarity; in rounds of at most ``VERIFY_ROUND_PAIRS``, so what
    a round gathers is bounded whatever the number of duplicates."""
    from tasks.steps.dedup import sketch

    if not len(pairs):
        return np.empty((0, 2), np.int64), np.array([], np.float64)
    kept, similarities = [], []
    for start in range(0, len(pairs), VERIFY_ROUND_PAIRS):
        chunk = pairs[start : start + VERIFY_ROUND_PAIRS]
        keys, tags = _gather(sources, np.unique(chunk), each, s3)
        at_a, found_a = dedup.find_sorted(keys, chunk[:, 0])
        at_b, found_b = dedup.find_sorted(keys, chunk[:, 1])
        if not (found_a & found_b).all():
            raise RuntimeError("a candidate's sketch is missing from the signature files")
        similar = sketch.similarity(tags[at_a], tags[at_b])
        keep = similar >= params.threshold
        kept.append(chunk[keep])
        similarities.append(similar[keep])
    return np.concatenate(kept), np.concatenate(similarities)


@dataclass(frozen=True)
class Duplicates:
    """What pass 2 found: every removed key of this run's input (sorted) beside the key
    that survives in its place (the smallest key of its group; negative for a row of
    an ``against`` dataset), and how many of them are exact duplicates."""

    removed: np.ndarray
    survivor: np.ndarray
    exact: np.ndarray  # True where the removed key is an exact duplicate

    def groups(self) -> tuple[np.ndarray, np.ndarray]:
        """Each survivor and its group's size (itself and the rows it stands for),
        largest first (ties: the smallest survivor)."""
        survivors, removed = np.unique(self.survivor, return_counts=True)
        order = np.lexsort((survivors, -removed))
        return survivors[order], removed[order] + 1

    def in_file(self, file_index: int) -> np.ndarray:
        """The removed rows of input file ``file_index``, sorted."""
        bits = dedup.ROW_BITS
        lo, hi = np.searchsorted(self.removed, [file_index << bits, (file_index + 1) << bits])
        return self.removed[lo:hi] & np.int64((1 << dedup.ROW_BITS) - 1)


def _pairs(results: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not results:
        return np.array([], np.int64), np.array([], np.int64)
    return tuple(np.concatenate(parts).astype(np.int64) for parts in zip(*results, strict=True))


def _distinct_pairs(first: np.ndarray, key: np.ndarray) -> np.ndarray:
    """The distinct (first, key) pairs (a near pair meets in several bands), (n, 2)."""
    if not len(key):
        return np.empty((0, 2), np.int64)
    order = np.lexsort((first, key))
    first, key = first[order], key[order]
    new = np.ones(len(key), dtype=bool)
    new[1:] = (key[1:] != key[:-1]) | (first[1:] != first[:-1])
    return np.stack([first[new], key[new]], axis=1)


def find_duplicates(
    root: Location,
    names: list[str],
    sources: list[Source],
    params: dedup.MinHashParams | None,
    shards: Shards,
    each: Each,
) -> Duplicates:
    """Pass 2 over the group files ``names`` under ``root`` (the input's and the
    ``against`` indexes'): exact duplicates by digest shard, then in near mode candidates
    by band shard among the rows that are not exact duplicates, verified against the
    sketches in the signature files ``sources``.

    Rows of the ``against`` index files have negative keys: they survive any group they
    are in and are never removed (they are not this run's).
    """
    s3 = root.s3
    digests = tuple(root.child(DIGESTS).child(name).uri for name in names)
    tasks = [ShardTask(digests, s, None, s3) for s in range(shards.digests)]
    exact_first, exact_key = _pairs(each(digest_pairs, tasks))
    exact_first = _settle(exact_first, exact_key)
    near_key = near_survivor = np.array([], np.int64)
    if params is not None:
        settled = None
        if len(exact_key):  # band rows of cross-file copies are dropped in the shards
            loc = root.child(SETTLED)
            storage.make_dirs(loc)
            keys = pa.table({KEY: pa.array(np.sort(exact_key), pa.int64())})
            settled = part_files.write_part(loc, 0, [keys], keys.schema, "none", hashes=True).path
            settled = loc.child(settled).uri
        bands = tuple(root.child(BANDS).child(name).uri for name in names)
        tasks = [ShardTask(bands, s, settled, s3) for s in range(shards.bands)]
        first, key = _pairs(each(band_pairs, tasks))
        candidates = _distinct_pairs(first, key)
        verified, _ = verify_pairs(sources, candidates, params, each, s3)
        near_key, near_survivor = dedup.survivors(verified)
    # An exact duplicate's survivor may itself be a near duplicate of an earlier row.
    at, hit = dedup.find_sorted(near_key, exact_first)
    exact_final = np.where(hit, near_survivor[at] if len(near_key) else exact_first, exact_first)
    removed = np.concatenate([exact_key, near_key])
    survivor = np.concatenate([exact_final, near_survivor])
    exact = np.concatenate([np.ones(len(exact_key), bool), np.zeros(len(near_key), bool)])
    mine = removed >= 0  # an against row is never this run's to remove
    order = np.argsort(removed[mine], kind="stable")
    return Duplicates(removed[mine][order], survivor[mine][order], exact[mine][order])


def group_span(
    sources: list[Source], duplicates: Duplicates, survivor: int, each: Each, s3=None
) -> float:
    """The lowest estimated similarity of a near duplicate removed in ``survivor``'s
    group to ``survivor`` itself: how far the group's chaining reached (1.0 when its
    rows are all exact copies). Gathered in rounds, like verification."""
    from tasks.steps.dedup import sketch

    members = duplicates.removed[(duplicates.survivor == survivor) & ~duplicates.exact]
    if not len(members):
        return 1.0
    lowest = 1.0
    for start in range(0, len(members), VERIFY_ROUND_PAIRS):
        chunk = np.sort(np.append(members[start : start + VERIFY_ROUND_PAIRS], survivor))
        keys, tags = _gather(sources, chunk, each, s3)
        at, found = dedup.find_sorted(keys, np.array([survivor]))
        if not found[0]:
            raise RuntimeError(f"the sketch of row {dedup.key_position(survivor)} is missing")
        others = tags[keys != survivor]
        if len(others):
            lowest = min(lowest, float(sketch.similarity(others, tags[at[0]][None, :]).min()))
    return lowest
