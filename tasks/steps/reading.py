"""What the steps that read a dataset share: every input file inspected (rows and
schema) before anything is written, one schema for them all, and a file's rows read
in order, a slice of them at a time."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from tasks.errors import InputError
from tasks.store import dataset, inputs
from tasks.store.storage import Location

if TYPE_CHECKING:
    from tasks.steps.skeleton import Run

Slice = tuple[int, int, int]  # (input file index, first row, stop row)


@dataclass(frozen=True)
class InputSpec:
    """One input file to inspect or read (its location carries its S3 settings)."""

    loc: Location
    format: str  # "parquet" or "json"


@dataclass(frozen=True)
class Inspected:
    """One input file's row count and schema."""

    uri: str
    num_rows: int
    schema: pa.Schema


def inspect_input(spec: InputSpec) -> Inspected:
    """Row count and schema of one input file; fails naming the file if unreadable."""
    if spec.format == "parquet":
        rows, schema = inputs.parquet_metadata(spec.loc)
    else:
        rows, schema = inputs.scan_json(spec.loc)
    return Inspected(spec.loc.uri, rows, schema)


# Parquet footers are small reads: threads in the step's own process fetch them faster
# than a Ray Data job could start. JSON Lines must be parsed in full, so it goes to Ray.
FOOTER_THREADS = 16


def inspect_inputs(
    files: list[Location], fmt: str, map_parts: Callable[..., list]
) -> list[Inspected]:
    """:func:`inspect_input` for every input file, in input order; ``map_parts`` runs
    JSON files' scans on Ray (``Run.map``)."""
    specs = [InputSpec(loc, fmt) for loc in files]
    if fmt == "parquet":
        with ThreadPoolExecutor(min(FOOTER_THREADS, len(specs))) as pool:
            return list(pool.map(inspect_input, specs))
    return [part.result for part in map_parts(inspect_input, specs)]


def open_inputs(
    input_uri: str,
    fmt: str,
    run: Run,
    check: Callable[[pa.Schema, str], None],
    comparable: Callable[[pa.Schema, str], pa.Schema] | None = None,
    found_first: Callable[[inputs.Inputs], None] | None = None,
) -> tuple[inputs.Inputs, list[Inspected], pa.Schema]:
    """A step's input before anything is written: its files (on S3 as ``run`` says),
    checked apart from ``run``'s output (and by ``found_first``, before any is read),
    each inspected, and their one schema (:func:`common_schema`)."""
    found = inputs.discover(input_uri, fmt, run.s3)
    dataset.check_disjoint(found.root, run.output)
    for name in run.companions:  # where its rejected rows or index go
        dataset.check_disjoint(found.root, run.companion(name), f"the {name} location")
    if found_first is not None:
        found_first(found)
    inspected = inspect_inputs([f.loc for f in found.files], found.format, run.map)
    same = comparable or (lambda schema, _: schema)
    where = f"input {found.uri}"
    return found, inspected, common_schema(inspected, found.format, check, same, where)


def common_schema(
    inspected: list[Inspected],
    fmt: str,
    check: Callable[[pa.Schema, str], None],
    comparable: Callable[[pa.Schema, str], pa.Schema] = lambda schema, _: schema,
    where: str = "the input",
) -> pa.Schema:
    """The one schema of the input files (``where``) that have rows, each checked by
    ``check(schema, uri)``. JSON files' schemas are unified as their blocks' are
    (:func:`inputs.unify_json_schemas`); Parquet files must agree in what
    ``comparable(schema, uri)`` keeps of theirs.

    Empty files (a zero-byte or blank shard, a Parquet file of no rows, whatever columns
    it declares) have no say: they are read as no rows. If every file is empty, the
    schema is that of those that have columns (zero-row Parquet files, as an empty
    committed dataset has); if none has, the input has no rows and no schema, an error
    naming it."""
    shaped = [i for i in inspected if i.num_rows] or [i for i in inspected if i.schema.names]
    if not shaped:
        why = "it is empty" if len(inspected) == 1 else f"its {len(inspected)} files are all empty"
        raise InputError(f"{where} has no rows: {why}")
    inspected = shaped
    for info in inspected:
        check(info.schema, info.uri)
    if fmt == "json":
        where = f"{inspected[0].uri} and the other input files: their columns' types differ"
        schemas = [i.schema for i in inspected]
        return inputs.settle_json_schema(inputs.unify_json_schemas(schemas, where))
    first = comparable(inspected[0].schema, inspected[0].uri)
    for info in inspected[1:]:
        other = comparable(info.schema, info.uri)
        if not other.equals(first):
            raise InputError(
                f"{info.uri}: schema {other.names} differs from {inspected[0].uri}'s "
                f"{first.names} ({other} vs {first})"
            )
    return inspected[0].schema


def iter_slice(
    fmt: str,
    loc: Location,
    batch_size: int,
    schema: pa.Schema,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[pa.Table]:
    """Rows ``start`` to ``stop`` (None: to the end) of one input file, in order, in
    batches of at most ``batch_size`` rows; JSON is read as ``schema``."""
    if fmt == "parquet":
        yield from inputs.iter_parquet(loc, batch_size, start, stop)
        return
    position = 0  # JSON cannot seek by row: skip to the slice.
    for table in inputs.iter_json(loc, batch_size, schema):
        end = table.num_rows if stop is None else min(stop - position, table.num_rows)
        lo = max(start - position, 0)
        if end > lo:
            yield table.slice(lo, end - lo)
        position += table.num_rows
        if stop is not None and position >= stop:
            return


def plan_parts(row_counts: list[int], num_files: int | None) -> list[list[Slice]]:
    """Which input rows go to which output part.

    ``num_files=None`` keeps one part per non-empty input file. Otherwise the rows, in
    input order, are cut into ``num_files`` contiguous runs whose sizes differ by at
    most one (fewer parts if there are fewer rows than that).
    """
    if num_files is None:
        return [[(i, 0, n)] for i, n in enumerate(row_counts) if n > 0]
    if num_files < 1:
        raise InputError(f"num_files must be at least 1 or None, got {num_files}")
    total = sum(row_counts)
    parts = min(num_files, total)
    bounds = [p * total // parts for p in range(parts + 1)]
    starts = [0, *itertools.accumulate(row_counts)][:-1]
    plan: list[list[Slice]] = []
    for lo, hi in itertools.pairwise(bounds):
        slices: list[Slice] = []
        for i, (first, n) in enumerate(zip(starts, row_counts, strict=True)):
            a, b = max(lo, first), min(hi, first + n)
            if b > a:
                slices.append((i, a - first, b - first))
        plan.append(slices)
    return plan
