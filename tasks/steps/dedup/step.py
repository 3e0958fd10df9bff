"""Step 4: remove exact and near duplicates from a dataset, on Ray Data.

Three passes, each over parts, so memory is bounded by a part or a shard, never by the
dataset or by how many duplicates it has:

1. **Signatures.** One Ray Data task per input file reads its text and writes, under
   ``_dedup/signatures/`` in the output, each row's order key, exact digest and (near
   mode) sketch (:mod:`tasks.steps.dedup.sketch`), and its group files: digests and
   band keys cut into shards (:mod:`tasks.steps.dedup.grouping`). Blank texts get
   none. Each ``against`` dataset's index files get group files too.
2. **Groups.** Which rows duplicate which: a task per shard, and candidates verified
   from the sketches (:mod:`tasks.steps.dedup.grouping`), ``against`` datasets'
   indexes included (:mod:`tasks.steps.dedup.against`); in the flow's own process for
   a small input.
3. **Filter.** One task per input file writes the part without the removed rows, and
   the signature index of what it kept into the ``index`` companion, beside the output
   (``deduped-index/`` for ``deduped/``), so readers of the output see only its rows.

Then the step skeleton commits the dataset, as every step's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from tasks.errors import InputError
from tasks.steps import reading
from tasks.steps.dedup import grouping, sketch
from tasks.steps.dedup import minhash as dedup
from tasks.steps.dedup.against import INDEX, Against, resolve_against
from tasks.steps.dedup.grouping import DIGEST, KEY, SIGNATURE, Duplicates, Shards
from tasks.steps.skeleton import Counts, PartResult, Plan, Record, ReportTable, Step, total
from tasks.steps.text import check_text_column, text_as_string
from tasks.store import dataset, inputs, part_files, storage
from tasks.store.dataset import FileEntry
from tasks.store.storage import Location

MODES = ("exact", "near")
STAGING = "_dedup/signatures"
# Inputs (with their ``against`` indexes) of at most this many rows are grouped in the
# flow's own process: at most 200,000 rows make 3.2 million band rows (about 50 MB).
SMALL_ROWS = 200_000
# The per-group examples a run reports: this many largest groups, this many rows each.
EXAMPLE_GROUPS, EXAMPLE_ROWS = 10, 5


class DedupParams(BaseModel):
    """What to deduplicate and how (see the dedup flow's arguments); ``minhash`` is
    used in near mode only."""

    model_config = ConfigDict(frozen=True)

    input_uri: str
    mode: str = "exact"
    text_column: str = "cleaned_text"
    minhash: dedup.MinHashParams | None = None
    batch_size: int = 8192
    compression: str = "snappy"
    against: list[str] = []
    against_earlier: bool = False


@dataclass(frozen=True)
class FilePart:
    """One input file, for the signature pass and (with the rest) the filter pass."""

    output: Location
    index: int
    loc: Location
    format: str
    input_schema: pa.Schema
    text_column: str
    batch_size: int
    params: dedup.MinHashParams | None
    shards: Shards


@dataclass(frozen=True)
class AgainstPart:
    """One ``against`` index file, for the signature pass: its rows keyed as file
    ``file`` (negative), their group files written as group file ``index``."""

    output: Location
    index: int
    uri: str
    file: int
    params: dedup.MinHashParams | None
    shards: Shards


@dataclass(frozen=True)
class DedupPart:
    """One output part: its input file without ``removed_rows`` (``text_bytes``: the
    text the file held, which the throughput figures count)."""

    file: FilePart
    schema: pa.Schema
    compression: str
    removed_rows: np.ndarray
    text_bytes: int
    index: Location  # the index companion's folder


def _rows(spec: FilePart) -> Iterator[pa.Table]:
    """The rows of one input file, in order, in batches."""
    return reading.iter_slice(spec.format, spec.loc, spec.batch_size, spec.input_schema)


def signature_bytes(num_perm: int) -> int:
    """Bytes per row of the signature files: the order key and exact digest, and in
    near mode (``num_perm`` > 0) the sketch's 8-bit values."""
    return 8 + dedup.EXACT_DIGEST_BYTES + num_perm


def deduplicated_bytes(
    input_bytes: int, rows: int, num_perm: int, bands: int, compressed_json: bool = False
) -> int:
    """About how much dedup writes until it commits: the output (at most the input), its
    signatures twice (the staged ones of its first pass and the kept rows' index beside
    the output) and its group files (a digest row, and a row per band in near mode)."""
    text = input_bytes * (inputs.COMPRESSED_JSON_RATIO if compressed_json else 1)
    groups = grouping.DIGEST_ROW_BYTES + grouping.BAND_ROW_BYTES * bands
    return text + rows * (2 * signature_bytes(num_perm) + groups)


def signature_table(
    text: pa.Array | pa.ChunkedArray, keys: np.ndarray, params: dedup.MinHashParams | None
) -> tuple[pa.Table, int]:
    """The signature rows of one batch (key, digest and, in near mode, the sketch), and
    how many of its rows are blank (no words: null, empty or whitespace only)."""
    found = (
        sketch.sketch(text, params.shingle, params.num_perm, seed=params.seed)
        if params is not None
        else sketch.sketch(text)
    )
    columns: dict[str, pa.Array] = {
        KEY: pa.array(keys, pa.int64()),
        DIGEST: found.digest_array(),
    }
    if params is not None:
        columns[SIGNATURE] = sketch.sketch_array(found.tags)
    return pa.table(columns), int((~found.has_words).sum())


@dataclass(frozen=True)
class Read(Counts):
    """The rows pass 1 read from an input file (or all of them), the bytes of their
    text, and how many were blank."""

    num_rows: int = 0
    text_bytes: int = 0
    empty: int = 0


def write_signatures(spec: FilePart | AgainstPart) -> Read:
    """Pass 1 for one input file: its signature rows, as ``_dedup/signatures/part-N``,
    and its group files (:func:`grouping.write_group_files`); for an ``against`` index
    file, only its group files (and no rows read)."""
    root, params = spec.output, spec.params
    counts = Read()
    keys, digests, tags = [], [], []

    def kept(table: pa.Table) -> pa.Table:
        keys.append(np.asarray(table.column(KEY)))
        digests.append(table.column(DIGEST))
        if params is not None:
            tags.append(sketch.tags_from(table.column(SIGNATURE)))
        return table

    def tables() -> Iterator[pa.Table]:
        nonlocal counts
        for table in _rows(spec):  # its schema was checked before any part started
            text = text_as_string(table.column(spec.text_column))
            batch_keys = dedup.order_keys(spec.index, counts.num_rows, table.num_rows)
            size = int(pa.compute.sum(pa.compute.binary_length(text)).as_py() or 0)
            table, blank = signature_table(text, batch_keys, params)
            counts += Read(table.num_rows, size, blank)
            yield kept(table)

    if isinstance(spec, AgainstPart):
        columns = signature_schema(params).names
        for table in grouping.read_signature_file(spec.uri, spec.file, columns, root.s3):
            kept(table)
    else:
        storage.make_dirs(root.child(STAGING))
        schema = signature_schema(params)
        part_files.write_part(
            root.child(STAGING), spec.index, tables(), schema, "none", hashes=True
        )
    grouping.write_group_files(
        root,
        dataset.part_name(spec.index),
        np.concatenate(keys) if keys else np.array([], np.int64),
        pa.chunked_array(digests, pa.binary(dedup.EXACT_DIGEST_BYTES)).combine_chunks(),
        np.concatenate(tags) if tags else np.zeros((0, params.num_perm if params else 0)),
        params,
        spec.shards,
    )
    return counts


def signature_schema(params: dedup.MinHashParams | None) -> pa.Schema:
    fields = [pa.field(KEY, pa.int64()), pa.field(DIGEST, pa.binary(dedup.EXACT_DIGEST_BYTES))]
    if params is not None:
        fields.append(pa.field(SIGNATURE, pa.binary(params.num_perm)))
    return pa.schema(fields)


def write_deduped_part(spec: DedupPart) -> PartResult:
    """Pass 3 for one input file: the part without its removed rows, and its index."""
    root = spec.file.output
    schema = spec.schema
    removed = spec.removed_rows
    position = 0
    kept_rows: list[np.ndarray] = []

    def tables() -> Iterator[pa.Table]:
        nonlocal position
        for table in _rows(spec.file):
            rows = np.arange(position, position + table.num_rows, dtype=np.int64)
            position += table.num_rows
            keep = ~np.isin(rows, removed)
            kept_rows.append(rows[keep])
            yield table.filter(pa.array(keep)).select(schema.names).cast(schema)

    entry = part_files.write_part(root, spec.file.index, tables(), schema, spec.compression)
    kept = np.concatenate(kept_rows) if kept_rows else np.array([], np.int64)
    index = _write_index(root, spec.index, spec.file.index, kept)
    return PartResult(entry, spec.text_bytes, companions={INDEX: index})


def _write_index(root: Location, folder: Location, index: int, kept: np.ndarray) -> FileEntry:
    """The kept rows' signature rows, keyed by their place in the output part, as the
    index companion's part ``index``."""
    staging = root.child(STAGING).child(dataset.part_name(index))
    with staging.fs.open_input_file(staging.path) as handle:
        signatures = pq.read_table(handle)
    rows = np.asarray(signatures.column(KEY)) & np.int64((1 << dedup.ROW_BITS) - 1)
    chosen = signatures.filter(pa.array(np.isin(rows, kept)))
    keys = dedup.order_keys(index, 0, chosen.num_rows)
    chosen = chosen.set_column(0, KEY, pa.array(keys, pa.int64()))
    storage.make_dirs(folder)
    return part_files.write_part(folder, index, [chosen], chosen.schema, "none", hashes=True)


def group_examples(
    duplicates: Duplicates, uris: list[str], against_index: list[str], groups: int = EXAMPLE_GROUPS
) -> list[dict[str, Any]]:
    """The largest groups of duplicates (ties: the earliest survivor), each with its
    size and the first few rows as ``file:row``: the survivor first, then the removed.
    A survivor from an ``against`` dataset is named by its index file."""

    def where(key: int) -> str:
        file_index, row = dedup.key_position(key)
        if file_index < 0:
            return f"{against_index[file_index + len(against_index)]}:{row}"
        return f"{uris[file_index]}:{row}"

    survivors, sizes = duplicates.groups()
    examples = []
    for survivor, size in zip(survivors[:groups].tolist(), sizes[:groups].tolist(), strict=True):
        removed = duplicates.removed[duplicates.survivor == survivor][:EXAMPLE_ROWS]
        examples.append(
            {
                "rows": size,
                "survivor": where(survivor),
                "removed (first few)": ", ".join(where(k) for k in removed.tolist()),
            }
        )
    return examples


@dataclass(frozen=True)
class Found:
    """What passes 1 and 2 found, for the manifest: each input file's rows read, the
    duplicates, the signature files they were found in (with their file numbers), and
    whether the grouping ran in this process."""

    read: list[Read]
    duplicates: Duplicates
    sources: list[tuple[str, int]]
    small: bool

    @property
    def exact_removed(self) -> int:
        return int(self.duplicates.exact.sum())


class Dedup(Step[DedupParams, Found]):
    """Of each group of duplicates the row first in input order survives (files in
    manifest order, then rows). Blank texts (null, empty, whitespace only) are never
    duplicates. Rows of the ``against`` datasets (earlier outputs of this step) count as
    kept before all of them: input rows that duplicate one are removed, through those
    datasets' signature indexes only."""

    name = "dedup"
    staging_folders = (STAGING, grouping.DIGESTS, grouping.BANDS, grouping.SETTLED)
    companions = (INDEX,)

    def prepare(self) -> int:
        p = self.params
        if p.mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)}; got {p.mode!r}")
        self.minhash = (p.minhash or dedup.MinHashParams()) if p.mode == "near" else None
        root = self.run.output

        def compare(found: inputs.Inputs) -> None:
            """What it compares against, refused before any input file is read if it is,
            holds or lies inside the input (an index beside it would be read as input)."""
            self.compared: Against = resolve_against(
                p.against, p.against_earlier, self.minhash, found.root, root
            )

        found, inspected, self.schema = reading.open_inputs(
            p.input_uri,
            "auto",
            self.run,
            check=lambda schema, uri: check_text_column(schema, uri, p.text_column),
            found_first=compare,
        )
        self.found = found
        self.uris = [f.uri for f in found.files]
        self.rows_expected = sum(i.num_rows for i in inspected)
        for skipped in self.compared.skipped:
            self.run.on_phase(f"not comparing against {skipped['uri']}: {skipped['reason']}")
        return deduplicated_bytes(
            sum(f.size_bytes for f in found.files),
            sum(i.num_rows for i in inspected),
            self.minhash.num_perm if self.minhash else 0,
            self.minhash.bands if self.minhash else 0,
            any(inputs.codec_of(f.uri) for f in found.files),
        )

    def plan(self) -> Plan[Found]:
        p, root, uris = self.params, self.run.output, self.uris
        against_index = self.compared.files
        # Shards are cut before pass 1, from the rows the inputs and indexes say they hold.
        groups = len(uris) + len(against_index)
        rows = self.rows_expected + self.compared.rows
        bands = self.minhash.bands if self.minhash else 0
        shards = Shards(
            grouping.shard_count(groups, rows),
            grouping.shard_count(groups, rows * bands) if bands else 0,
        )
        small = rows <= SMALL_ROWS
        files = [
            FilePart(
                root,
                i,
                f.loc,
                self.found.format,
                self.schema,
                p.text_column,
                p.batch_size,
                self.minhash,
                shards,
            )
            for i, f in enumerate(self.found.files)
        ]
        against = [
            AgainstPart(root, len(uris) + i, uri, i - len(against_index), self.minhash, shards)
            for i, uri in enumerate(against_index)
        ]
        say = self.run.on_phase
        say(f"pass 1/3: signatures of {len(uris)} input files into {root.child(STAGING).uri}")
        read = [done.result for done in self.run.map(write_signatures, files + against)]
        read = read[: len(uris)]
        rows_in = total(read, Read()).num_rows
        say(
            f"pass 2/3: grouping {rows_in} rows"
            + (f" and {len(against_index)} index files of earlier outputs" if against_index else "")
            + (" by digest and LSH band" if self.minhash else " by digest")
            + (" in this process" if small else f" in {shards.digests + shards.bands} shards")
        )
        signature_uris = [
            root.child(STAGING).child(dataset.part_name(i)).uri for i in range(len(uris))
        ]
        sources = [(uri, i) for i, uri in enumerate(signature_uris)] + [
            (uri, i - len(against_index)) for i, uri in enumerate(against_index)
        ]
        names = [dataset.part_name(i) for i in range(groups)]
        duplicates = grouping.find_duplicates(
            root, names, sources, self.minhash, shards, self.each(small)
        )
        found = Found(read, duplicates, sources, small)
        say(
            f"pass 3/3: writing {len(uris)} parts without {found.exact_removed} exact and "
            f"{len(duplicates.removed) - found.exact_removed} near duplicates"
        )
        specs = [
            DedupPart(
                file,
                self.schema,
                p.compression,
                duplicates.in_file(i),
                read[i].text_bytes,
                self.run.companion(INDEX),
            )
            for i, file in enumerate(files)
        ]
        companions = {INDEX: signature_schema(self.minhash)}
        expected = rows_in - len(duplicates.removed)
        return Plan(specs, self.schema, expected, companions, state=found)

    def each(self, small: bool) -> Callable[[Any, list[Any]], list[Any]]:
        """How to run ``fn`` over ``specs``: in this process for a small input (a Ray
        job costs more than the work), else one Ray task each, with the run's retries."""

        def run(fn: Any, specs: list[Any]) -> list[Any]:
            if small:
                return [storage.with_fresh_credentials(lambda s=s: fn(s)) for s in specs]
            return [done.result for done in self.run.map(fn, specs)]

        return run

    write_part = staticmethod(write_deduped_part)

    def finish(self, state: Found, parts: list[PartResult]) -> Record:
        found, duplicates = self.found, state.duplicates
        read = total(state.read, Read())
        survivors, sizes = duplicates.groups()
        span = None
        if len(survivors):
            span = (
                grouping.group_span(
                    state.sources,
                    duplicates,
                    int(survivors[0]),
                    self.each(state.small),
                    self.run.s3,
                )
                if self.minhash
                else 1.0
            )
        return Record(
            resolved={
                "input_uri": found.uri,
                # The MinHash settings used (near mode's defaults unless given): an
                # ``against`` of a later run checks its own against them.
                "minhash": dataclasses.asdict(self.minhash) if self.minhash else None,
                "against": list(self.compared.used),
                "against_skipped": self.compared.skipped,
            },
            inputs=found.record(read.num_rows),
            stats={"text_bytes": read.text_bytes},
            sections={
                "dedup": {
                    "rows_in": read.num_rows,
                    "empty": read.empty,
                    "exact_duplicates_removed": state.exact_removed,
                    "near_duplicates_removed": len(duplicates.removed) - state.exact_removed,
                    "groups": len(survivors),
                    "largest_group": int(sizes[0]) if len(sizes) else 1,
                    "largest_group_span": span,
                    "against_removed": int((duplicates.survivor < 0).sum()),
                    "examples": group_examples(duplicates, self.uris, self.compared.files),
                    "sketch": dedup.SKETCH,
                }
            },
        )

    @classmethod
    def tables(cls, manifest: dict[str, Any]) -> list[ReportTable]:
        return [
            ReportTable(
                "groups",
                manifest["dedup"]["examples"],
                "The largest groups of duplicates: the survivor and rows removed",
            )
        ]

    @classmethod
    def summary_rows(cls, manifest: dict[str, Any]) -> list[tuple[str, Any]]:
        return [
            (name.replace("_", " "), value)
            for name, value in manifest["dedup"].items()
            if name != "examples"
        ]
