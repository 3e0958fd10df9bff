"""Pass 2 of the dedup step: which rows are duplicates of which, from the signature
files alone.

Ray tasks read the signature files through the run's S3 settings. Each file's repeats
of a text are paired with its first copy there; Ray Data groups the files' first copies
by digest, and (near mode) the rows that are not exact copies by band hash, in shards of
bounded size. Candidate pairs of a band are verified with their full signatures in Ray
tasks, in rounds; the duplicates' connected groups keep their smallest order key (the
survivor rule). Memory is bounded by a file or a shard, never by the dataset or by how
many duplicates it has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tasks.cluster.options import PART_RETRIES
from tasks.errors import TransientPartError
from tasks.orchestration.retry import is_transient
from tasks.steps.dedup import minhash as dedup
from tasks.store import storage

# The columns of a signature file (and of an index file).
KEY, DIGEST, BANDS, SIGNATURE = "key", "digest", "bands", "signature"
SHARD, FIRST, LOCAL = "shard", "first", "local"
# Rows of one shard of the grouping pass: about 100 MB of (shard, key, hash) rows.
SHARD_ROWS = 4_000_000
# Band rows one grouping job shuffles at most (near mode groups the bands in rounds).
ROUND_ROWS = 16_000_000


def file_digests(rows: pa.Table, shards: int) -> pa.Table:
    """One signature file's rows as (shard, key, hi, lo, local), its repeats settled
    within the file: ``local`` is the key of the file's first row with the same digest
    (the row's own key for a first), and ``shard`` the slice of the digest space where
    equal digests meet. Only a file's first copies of a text go on to be grouped with
    the other files' (:func:`_file_digests`); its repeats are paired with their first
    copy there. So a group of 50 million copies of one text puts one row per file into
    its shard, not 50 million. Blank texts have no digest and are left out."""
    valid = rows.filter(rows.column(DIGEST).is_valid())
    words = dedup.digest_words(valid.column(DIGEST))
    keys = np.asarray(valid.column(KEY), dtype=np.int64)
    first, repeated = dedup.first_of_runs([words[:, 0], words[:, 1]], keys)
    local = keys.copy()
    order = np.argsort(keys, kind="stable")
    local[order[np.searchsorted(keys[order], repeated)]] = first
    return pa.table(
        {
            SHARD: pa.array(words[:, 1] % np.uint64(shards), pa.uint64()),
            KEY: pa.array(keys, pa.int64()),
            "hi": pa.array(words[:, 0], pa.uint64()),
            "lo": pa.array(words[:, 1], pa.uint64()),
            LOCAL: pa.array(local, pa.int64()),
        }
    )


def _settle(first: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Each ``key``'s survivor: its ``first``, or, where that first is itself a removed
    key (a file's first copy of a text seen in an earlier file), that one's first."""
    order = np.argsort(key, kind="stable")
    at, hit = dedup.find_sorted(key[order], first)
    return np.where(hit, first[order][at] if len(key) else first, first)


def _band_rows(shards: int, bands: slice, settled: Any = None) -> Callable[[pa.Table], pa.Table]:
    """One row per (key, band) of the rows that have words, for the ``bands`` of this
    round: the band's hash (bucket), the key, and the shard (a slice of the bucket
    space) that brings equal buckets together. Rows in ``settled`` (a Ray reference to
    the sorted keys already removed as exact duplicates) are left out: their survivor
    has the same bands, so a huge group of copies costs one row, not one per copy."""

    def rows(batch: pa.Table) -> pa.Table:
        kept = batch.filter(batch.column(BANDS).is_valid())
        if settled is not None:
            import ray

            keys = np.asarray(kept.column(KEY))
            kept = kept.filter(pa.array(~np.isin(keys, ray.get(settled))))
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
    the smallest such key (:func:`tasks.steps.dedup.minhash.first_of_runs`)."""

    def pairs(shard: pa.Table) -> pa.Table:
        values = [np.asarray(shard.column(c)) for c in columns]
        first, keys = dedup.first_of_runs(values, np.asarray(shard.column(KEY)))
        return pa.table({FIRST: pa.array(first, pa.int64()), KEY: pa.array(keys, pa.int64())})

    return pairs


def _collect(rows: Any, columns: dict[str, Any]) -> list[np.ndarray]:
    """The ``columns`` (name: dtype) of a Ray dataset as NumPy arrays, streamed block by
    block: the caller holds a few bytes per row, never Python objects per row."""
    found: dict[str, list[np.ndarray]] = {name: [] for name in columns}
    for batch in rows.iter_batches(batch_size=None, batch_format="pyarrow"):
        for name in columns:
            found[name].append(np.asarray(batch.column(name)))
    return [
        np.concatenate(found[name]).astype(dtype) if found[name] else np.array([], dtype)
        for name, dtype in columns.items()
    ]


def _shard_pairs(rows: Any, columns: list[str], shards: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(first, key)`` pairs of every shard, grouped by Ray Data. One call per
    shard, vectorised: a call per digest or bucket would cost one Python call per row."""
    grouped = rows.groupby(SHARD, num_partitions=shards).map_groups(
        _pairs_in(columns), batch_format="pyarrow"
    )
    first, key = _collect(grouped, {FIRST: np.int64, KEY: np.int64})
    return first, key


def shard_count(files: int, rows: int, limit: int = SHARD_ROWS) -> int:
    """Shards for grouping ``rows`` rows: at least one per file, and at most ``limit``
    rows each, so a shard's memory is bounded whatever the file sizes."""
    return max(files, -(-rows // limit), 1)


# A signature file to read: its URI and its file number. Input files are numbered from
# 0 in input order; the ``against`` index files get negative numbers, below them all.
Source = tuple[str, int]
# Rows read from a signature file at a time.
READ_ROWS = 65_536


def _read_signature_file(
    uri: str, file: int, columns: list[str], s3: storage.S3Settings | None
) -> Iterator[pa.Table]:
    """The ``columns`` of one signature file in batches, read through the run's S3
    settings (its block or chain, its endpoint, fresh credentials on refusal). Rows of
    an ``against`` index (``file`` < 0) are keyed as rows of file ``file``."""
    loc = storage.resolve(uri, s3)
    try:
        with storage.explained(loc, "read"):
            handle = storage.with_fresh_credentials(lambda: loc.fs.open_input_file(loc.path))
            with handle:
                for batch in pq.ParquetFile(handle).iter_batches(READ_ROWS, columns=columns):
                    table = pa.Table.from_batches([batch])
                    if file < 0:
                        rows = np.asarray(table.column(KEY)) & np.int64((1 << dedup.ROW_BITS) - 1)
                        keys = (np.int64(file) << np.int64(dedup.ROW_BITS)) | rows
                        table = table.set_column(
                            table.schema.get_field_index(KEY), KEY, pa.array(keys, pa.int64())
                        )
                    yield table
    except Exception as exc:
        if is_transient(exc):  # Ray Data retries this file alone
            raise TransientPartError(f"{uri}: {exc}") from exc
        raise


def _per_file(
    sources: list[Source],
    read: Callable[[str, int, storage.S3Settings | None], Iterator[pa.Table]],
    s3: storage.S3Settings | None,
) -> Any:
    """A Ray dataset of what ``read(uri, file number, S3 settings)`` gives for each
    signature file in ``sources``, one Ray task per file, reading through this run's
    storage settings (never Ray Data's own reader, which knows neither a credentials
    block nor an endpoint given only there)."""
    import ray.data

    def batches(batch: dict[str, np.ndarray]) -> Iterator[pa.Table]:
        for uri, file in zip(batch["uri"], batch["file"], strict=True):
            yield from read(str(uri), int(file), s3)

    items = [{"uri": uri, "file": file} for uri, file in sources]
    return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        batches,
        batch_size=1,
        batch_format="numpy",
        max_retries=PART_RETRIES,
        retry_exceptions=[TransientPartError],
    )


def _signature_rows(
    sources: list[Source], columns: list[str], s3: storage.S3Settings | None
) -> Any:
    """The ``columns`` of every signature file in ``sources``, as a Ray dataset."""
    return _per_file(
        sources, lambda uri, file, s3: _read_signature_file(uri, file, columns, s3), s3
    )


def _file_digests(
    sources: list[Source], shards: int, repeats: bool, s3: storage.S3Settings | None
) -> Any:
    """Every signature file's digest rows (:func:`file_digests`): the files' first
    copies of each text for grouping, or with ``repeats`` each later copy in a file as
    (first, key) beside its first copy there. A file's key and digest columns are held
    whole (24 bytes a row: bounded by a part)."""

    def read(uri: str, file: int, s3: storage.S3Settings) -> Iterator[pa.Table]:
        tables = list(_read_signature_file(uri, file, [KEY, DIGEST], s3))
        if not tables:
            return
        rows = file_digests(pa.concat_tables(tables), shards)
        repeat = pc.not_equal(rows.column(LOCAL), rows.column(KEY))
        if not repeats:
            yield rows.filter(pc.invert(repeat)).drop_columns([LOCAL])
            return
        rows = rows.filter(repeat)
        yield pa.table({FIRST: rows.column(LOCAL), KEY: rows.column(KEY)})

    return _per_file(sources, read, s3)


# Rows of one verification shard at most: each carries a signature (about 130 MB with
# 128 values).
VERIFY_SHARD_ROWS = 250_000
# Candidate pairs one verification round checks at most (with the signatures they name,
# about 300 MB shuffled with 128 values).
VERIFY_ROUND_PAIRS = 200_000
EDGE, OTHER, SIMILARITY = "edge", "other", "similarity"
_VERIFY_SCHEMA = pa.schema(
    [
        pa.field(SHARD, pa.uint64()),
        pa.field(KEY, pa.int64()),
        pa.field(OTHER, pa.int64()),
        pa.field(EDGE, pa.bool_()),
        pa.field(SIGNATURE, pa.list_(pa.uint32())),
    ]
)


def _verify_table(
    shard: np.ndarray, key: np.ndarray, other: np.ndarray, signature: Any, edge: bool
) -> pa.Table:
    """Rows of a verification shuffle: a pair (``edge``: ``key`` and ``other``, with the
    signature of one of them once known) or a wanted key's signature."""
    if signature is None:
        signature = pa.nulls(len(key), pa.list_(pa.uint32()))
    return pa.table(
        {
            SHARD: pa.array(shard.astype(np.uint64), pa.uint64()),
            KEY: pa.array(key, pa.int64()),
            OTHER: pa.array(other, pa.int64()),
            EDGE: pa.array(np.full(len(key), edge), pa.bool_()),
            SIGNATURE: signature.cast(pa.list_(pa.uint32())),
        },
        schema=_VERIFY_SCHEMA,
    )


def _wanted_signatures(wanted: Any, shards: int) -> Callable[[pa.Table], pa.Table]:
    """The signature rows of the keys in ``wanted`` (a Ray reference to sorted keys),
    in the verification layout, sharded by their key."""

    def rows(batch: pa.Table) -> pa.Table:
        import ray

        keys = np.asarray(batch.column(KEY))
        chosen = batch.filter(pa.array(np.isin(keys, ray.get(wanted))))
        keys = np.asarray(chosen.column(KEY))
        signature = chosen.column(SIGNATURE).combine_chunks()
        return _verify_table(keys % shards, keys, np.full(len(keys), -1), signature, False)

    return rows


def _split(table: pa.Table) -> tuple[pa.Table, pa.Table, np.ndarray, np.ndarray]:
    """A verification shard as (edges, signatures, sorted signature keys, their order)."""
    edge = np.asarray(table.column(EDGE), dtype=bool)
    edges, signatures = table.filter(pa.array(edge)), table.filter(pa.array(~edge))
    keys = np.asarray(signatures.column(KEY))
    order = np.argsort(keys, kind="stable")
    return edges, signatures, keys[order], order


def _lookup(edges: pa.Table, signatures: pa.Table, sorted_keys, order) -> tuple[np.ndarray, Any]:
    """Which edges' ``key`` has a signature in this shard, and those signatures."""
    at, found = dedup.find_sorted(sorted_keys, np.asarray(edges.column(KEY)))
    chosen = signatures.column(SIGNATURE).combine_chunks().take(pa.array(order[at[found]]))
    return found, chosen


def _attach(shards: int) -> Callable[[pa.Table], pa.Table]:
    """Verification, first shuffle (sharded by the pair's first key ``a``): each pair
    takes ``a``'s signature and moves on, sharded by its other key ``b``."""

    def attach(table: pa.Table) -> pa.Table:
        edges, signatures, sorted_keys, order = _split(table)
        found, chosen = _lookup(edges, signatures, sorted_keys, order)
        a = np.asarray(edges.column(KEY))[found]
        b = np.asarray(edges.column(OTHER))[found]
        return _verify_table(b % shards, b, a, chosen, edge=True)

    return attach


def _compare(num_perm: int, threshold: float) -> Callable[[pa.Table], pa.Table]:
    """Verification, second shuffle (sharded by ``b``): each pair's two signatures side
    by side; the pairs whose estimated similarity reaches ``threshold`` come back."""

    def compare(table: pa.Table) -> pa.Table:
        edges, signatures, sorted_keys, order = _split(table)
        found, chosen = _lookup(edges, signatures, sorted_keys, order)
        edges = edges.filter(pa.array(found))
        mine = np.asarray(chosen.flatten(), dtype=np.uint32).reshape(-1, num_perm)
        theirs = edges.column(SIGNATURE).combine_chunks().flatten()
        theirs = np.asarray(theirs, dtype=np.uint32).reshape(-1, num_perm)
        similar = dedup.estimated_similarity(theirs, mine)
        keep = similar >= threshold
        return pa.table(
            {
                "a": pa.array(np.asarray(edges.column(OTHER))[keep], pa.int64()),
                "b": pa.array(np.asarray(edges.column(KEY))[keep], pa.int64()),
                SIMILARITY: pa.array(similar[keep], pa.float64()),
            }
        )

    return compare


def verify_pairs(
    sources: list[Source],
    pairs: np.ndarray,
    params: dedup.MinHashParams,
    s3: storage.S3Settings | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The candidate ``pairs`` ((n, 2) keys) whose signatures' estimated similarity
    reaches the threshold, and that similarity.

    Checked in Ray tasks, shard by shard: one shuffle brings each pair to its first
    key's signature, a second to its other key's. The signatures never reach this
    process. A shuffle holds what it moves until it ends, so the pairs go in rounds of
    at most ``VERIFY_ROUND_PAIRS``, each shard of at most ``VERIFY_SHARD_ROWS`` rows:
    memory is bounded by a round, not by how many duplicates the data has.
    """
    import ray
    import ray.data

    if not len(pairs):
        return np.empty((0, 2), np.int64), np.array([], np.float64)
    found: list[list[np.ndarray]] = []
    for start in range(0, len(pairs), VERIFY_ROUND_PAIRS):
        chunk = pairs[start : start + VERIFY_ROUND_PAIRS]
        keys = np.unique(chunk)
        shards = shard_count(len(sources), len(chunk) + len(keys), VERIFY_SHARD_ROWS)
        # The round's signatures, read once for its two shuffles (the object store
        # spills past its size).
        mine = (
            _signature_rows(sources, [KEY, SIGNATURE], s3)
            .map_batches(_wanted_signatures(ray.put(keys), shards), batch_format="pyarrow")
            .materialize()
        )
        edges = ray.data.from_arrow(
            _verify_table(chunk[:, 0] % shards, chunk[:, 0], chunk[:, 1], None, edge=True)
        )
        attached = (
            edges.union(mine)
            .groupby(SHARD, num_partitions=shards)
            .map_groups(_attach(shards), batch_format="pyarrow")
        )
        compared = (
            attached.union(mine)
            .groupby(SHARD, num_partitions=shards)
            .map_groups(_compare(params.num_perm, params.threshold), batch_format="pyarrow")
        )
        found.append(_collect(compared, {"a": np.int64, "b": np.int64, SIMILARITY: np.float64}))
    a, b, similarity = (np.concatenate(parts) for parts in zip(*found, strict=True))
    return np.stack([a, b], axis=1), similarity


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


def find_duplicates(
    sources: list[Source],
    params: dedup.MinHashParams | None,
    rows: int,
    s3: storage.S3Settings | None = None,
) -> Duplicates:
    """Pass 2 over the signature files ``sources`` (``rows`` rows in all, ``against``
    indexes included): exact duplicates by digest, then in near mode candidates by LSH
    band among the rows that are not exact duplicates, verified in Ray tasks.

    Ray Data groups the rows by shard of their digest, and of their band hashes; each
    shard's duplicates are found in one vectorised call, and only the pairs come back,
    as arrays of keys. Rows of the ``against`` index files have negative keys: they
    survive any group they are in and are never removed (they are not this run's).
    """
    import ray

    if rows == 0:  # e.g. a filter rejected every row: nothing to group, and Ray Data
        # cannot shuffle a dataset whose every file yields no block
        none = np.array([], np.int64)
        return Duplicates(none, none, np.array([], bool))
    files = len(sources)
    shards = shard_count(files, rows)
    # Repeats within a file never need the shuffle; the files' first copies do.
    pair = {FIRST: np.int64, KEY: np.int64}
    repeats = _collect(_file_digests(sources, shards, True, s3), pair)
    firsts = _shard_pairs(_file_digests(sources, shards, False, s3), ["hi", "lo"], shards)
    exact_first, exact_key = (np.concatenate(both) for both in zip(repeats, firsts, strict=True))
    exact_first = _settle(exact_first, exact_key)
    near_key = near_survivor = np.array([], np.int64)
    if params is not None:
        settled = ray.put(np.sort(exact_key))
        # One row per band is ``bands`` times the rows: in rounds of a few bands each, so
        # what one Ray Data job shuffles stays about ROUND_ROWS rows whatever the size.
        rounds = min(params.bands, max(1, -(-rows * params.bands // ROUND_ROWS)))
        found: list[np.ndarray] = []
        for number in range(rounds):
            bands = slice(number * params.bands // rounds, (number + 1) * params.bands // rounds)
            shards = shard_count(files, rows * (bands.stop - bands.start))
            banded = _signature_rows(sources, [KEY, BANDS], s3).map_batches(
                _band_rows(shards, bands, settled), batch_format="pyarrow"
            )
            first, key = _shard_pairs(banded, ["bucket"], shards)
            found.append(np.stack([first, key], axis=1))
        candidates = np.unique(np.concatenate(found), axis=0)
        verified, _ = verify_pairs(sources, candidates, params, s3)
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
    sources: list[Source],
    duplicates: Duplicates,
    survivor: int,
    num_perm: int,
    s3: storage.S3Settings | None = None,
) -> float:
    """The lowest estimated similarity of a near duplicate removed in ``survivor``'s
    group to ``survivor`` itself: how far the group's chaining reached (1.0 when its
    rows are all exact copies). Computed in Ray tasks, over the group's rows only."""
    import ray

    members = duplicates.removed[(duplicates.survivor == survivor) & ~duplicates.exact]
    if not len(members):
        return 1.0
    file = survivor >> dedup.ROW_BITS
    uri = next(uri for uri, number in sources if number == file)
    own = None
    for table in _read_signature_file(uri, file, [KEY, SIGNATURE], s3):
        at = np.flatnonzero(np.asarray(table.column(KEY)) == survivor)
        if len(at):
            own = np.asarray(table.column(SIGNATURE)[int(at[0])].as_py(), dtype=np.uint32)
            break
    if own is None:
        raise RuntimeError(f"the signature of row {dedup.key_position(survivor)} is missing")
    chosen = ray.put(np.sort(members))

    def lowest(batch: pa.Table) -> pa.Table:
        keys = np.asarray(batch.column(KEY))
        rows = batch.filter(pa.array(np.isin(keys, ray.get(chosen))))
        values = np.asarray(rows.column(SIGNATURE).combine_chunks().flatten(), np.uint32)
        similar = dedup.estimated_similarity(values.reshape(-1, num_perm), own[None, :])
        lowest_here = [similar.min()] if len(similar) else []
        return pa.table({SIMILARITY: pa.array(lowest_here, pa.float64())})

    spans = _signature_rows(sources, [KEY, SIGNATURE], s3).map_batches(
        lowest, batch_format="pyarrow"
    )
    (values,) = _collect(spans, {SIMILARITY: np.float64})
    return float(values.min()) if len(values) else 1.0
