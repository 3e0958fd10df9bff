"""Step 3 of the seed: clean the ``text`` column for LLM training, Parquet in and out.

Each output part reads its slice of the input, cleans it batch by batch and streams it
to Parquet in the same task, so memory stays flat and nothing is shuffled.
"""

from __future__ import annotations

import base64
import contextvars
import itertools
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from tasks.cluster.mapping import Done, RayOptions, execution_summary, map_items
from tasks.data import dataset, inputs, storage
from tasks.data.parts import write_part
from tasks.errors import InputError
from tasks.nightly import space
from tasks.steps.preprocess import counters as quality
from tasks.steps.preprocess.clean import CLEANED_COLUMN, check_input_schema, clean_batch

Slice = tuple[int, int, int]  # (input file index, first row, stop row)
# Parquet codecs of the output: Spark's default, the smaller one, or none.
COMPRESSIONS = ("snappy", "zstd", "none")


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


def output_schema(
    input_schema: pa.Schema, where: str, text_column: str = "text", keep_text: bool = True
) -> pa.Schema:
    """The input's columns as they are (the text column as string, or left out without
    ``keep_text``) plus ``cleaned_text``."""
    check_input_schema(input_schema, where, text_column)
    schema = input_schema.remove_metadata()
    at = schema.get_field_index(text_column)
    schema = (
        schema.remove(at) if not keep_text else schema.set(at, pa.field(text_column, pa.string()))
    )
    return schema.append(pa.field(CLEANED_COLUMN, pa.string()))


def _encode_schema(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def _decode_schema(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def inspect_input(spec: dict[str, Any]) -> dict[str, Any]:
    """Row count and schema of one input file; fails naming the file if unreadable."""
    if spec["format"] == "parquet":
        rows, schema = inputs.parquet_metadata(spec["uri"])
    else:
        rows, schema = inputs.scan_json(spec["uri"])
    return {"uri": spec["uri"], "num_rows": rows, "schema": _encode_schema(schema)}


# Parquet footers are small reads: threads in the stage's own process fetch them faster
# than a Ray Data job could start. JSON Lines must be parsed in full, so it goes to Ray.
FOOTER_THREADS = 16


def inspect_inputs(
    uris: list[str], fmt: str, scheduling: RayOptions | None
) -> list[dict[str, Any]]:
    """``inspect_input`` for every input file, in input order."""
    specs = [{"uri": uri, "format": fmt} for uri in uris]
    if fmt == "parquet":
        with ThreadPoolExecutor(min(FOOTER_THREADS, len(specs))) as pool:
            # Each call runs in a copy of this context, so the flow's S3 settings hold.
            contexts = [contextvars.copy_context() for _ in specs]
            return list(pool.map(lambda c, spec: c.run(inspect_input, spec), contexts, specs))
    return [part.result for part in map_items(inspect_input, specs, scheduling=scheduling)]


def _iter_slice(
    spec: dict[str, Any], uri: str, start: int, stop: int, schema: pa.Schema
) -> Iterator[pa.Table]:
    batch_size = spec["batch_size"]
    if spec["format"] == "parquet":
        yield from inputs.iter_parquet(uri, batch_size, start, stop)
        return
    position = 0  # JSON cannot seek by row: skip to the slice.
    for table in inputs.iter_json(uri, batch_size, schema):
        lo, hi = max(start - position, 0), min(stop - position, table.num_rows)
        if hi > lo:
            yield table.slice(lo, hi - lo)
        position += table.num_rows
        if position >= stop:
            return


def write_cleaned_part(spec: dict[str, Any]) -> dict[str, Any]:
    """Read one part's input slices, clean them batch by batch, write the part."""
    root = storage.resolve(spec["output_uri"])
    schema = _decode_schema(spec["schema"])
    input_schema = _decode_schema(spec["input_schema"])
    text_column = spec["text_column"]
    counts: list[dict[str, Any]] = []

    def cleaned() -> Iterator[pa.Table]:
        for uri, start, stop in spec["slices"]:
            for table in _iter_slice(spec, uri, start, stop, input_schema):
                out = clean_batch(table, where=uri, text_column=text_column)
                counts.append(quality.part_quality(out, text_column))
                try:
                    out = out.select(schema.names).cast(schema)
                except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise InputError(
                        f"{uri}: columns {out.schema.names} do not match the dataset's "
                        f"{schema.names} ({exc})"
                    ) from exc
                yield out

    entry = write_part(root, spec["index"], cleaned(), schema, spec["compression"])
    return {
        "path": entry.path,
        "num_rows": entry.num_rows,
        "size_bytes": entry.size_bytes,
        "quality": quality.merge(counts),
    }


def input_schema(inspected: list[dict[str, Any]], fmt: str, text_column: str) -> pa.Schema:
    """The one schema of every input file. JSON files' schemas are unified as their
    blocks' are (see :func:`inputs.unify_json_schemas`); Parquet files must agree."""
    schemas = [_decode_schema(i["schema"]) for i in inspected]
    if fmt == "json":
        for info, schema in zip(inspected, schemas, strict=True):
            check_input_schema(schema, info["uri"], text_column)
        where = f"{inspected[0]['uri']} and the other input files: their columns' types differ"
        return inputs.settle_json_schema(inputs.unify_json_schemas(schemas, where))
    # Checked and compared as they are written (any string layout of the text will do).
    first = output_schema(schemas[0], inspected[0]["uri"], text_column)
    for info, schema in zip(inspected[1:], schemas[1:], strict=True):
        other = output_schema(schema, info["uri"], text_column)
        if not other.equals(first):
            raise InputError(
                f"{info['uri']}: schema {other.names} differs from {inspected[0]['uri']}'s "
                f"{first.names} ({other} vs {first})"
            )
    return schemas[0]


def preprocess_dataset(
    input_uri: str,
    output_uri: str,
    input_format: str = "auto",
    batch_size: int = 1024,
    num_files: int | None = None,
    scheduling: RayOptions | None = None,
    rows_per_file: int | None = None,
    on_done: Callable[[int, int, Done], None] | None = None,
    text_column: str = "text",
    keep_text: bool = True,
    compression: str = "snappy",
    deadline: float | None = None,
) -> dict[str, Any]:
    """Clean every row of the input into a committed dataset; return its manifest.

    ``text_column`` is cleaned into ``cleaned_text``; every other column is kept as it
    is, and the text column too unless ``keep_text`` is false. Inputs are validated
    before the output is touched: a bad input leaves an earlier committed output as it
    was. ``on_done(done, total, part)`` hears of each part as it is written.
    """
    if compression not in COMPRESSIONS:
        raise InputError(
            f"compression must be one of {', '.join(COMPRESSIONS)}; got {compression!r}"
        )
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    if num_files is not None and num_files < 1:
        raise InputError(f"num_files must be at least 1 or None, got {num_files}")
    dataset.file_count(1, num_files, rows_per_file)  # the pair is checked before any read
    started = time.monotonic()
    found = inputs.discover(input_uri, input_format)
    root = storage.resolve(output_uri)
    dataset.check_disjoint(found.root, root)

    uris = [f.uri for f in found.files]
    inspected = inspect_inputs(uris, found.format, scheduling)
    source_schema = input_schema(inspected, found.format, text_column)
    schema = output_schema(source_schema, found.uri, text_column, keep_text)
    counts = [i["num_rows"] for i in inspected]
    if sum(counts) == 0:
        raise InputError(f"input {found.root.uri} has no rows")
    inspect_seconds = time.monotonic() - started

    needed = sum(
        space.preprocessed_bytes(f.size_bytes, keep_text, inputs.codec_of(f.uri) is not None)
        for f in found.files
    )
    space.check_free_space(root, needed, "preprocess")
    leftovers = dataset.prepare_output(root)
    part_specs = [
        {
            "index": index,
            "slices": [(uris[i], a, b) for i, a, b in slices],
            "format": found.format,
            "schema": _encode_schema(schema),
            "input_schema": _encode_schema(source_schema),
            "text_column": text_column,
            "compression": compression,
            "batch_size": batch_size,
            "output_uri": root.uri,
        }
        for index, slices in enumerate(
            plan_parts(counts, dataset.file_count(sum(counts), num_files, rows_per_file))
        )
    ]
    parts = map_items(
        write_cleaned_part, part_specs, scheduling=scheduling, on_done=on_done, deadline=deadline
    )
    stats = quality.merge([part.result["quality"] for part in parts])
    entries = [
        dataset.FileEntry(**{k: v for k, v in part.result.items() if k != "quality"})
        for part in parts
    ]
    rows_out = sum(e.num_rows for e in entries)
    if rows_out != sum(counts):
        raise RuntimeError(f"wrote {rows_out} rows from {sum(counts)} input rows")
    manifest = dataset.build_manifest(
        entries,
        schema,
        stage="preprocess",
        parameters={
            "input_uri": found.uri,
            "input_format": found.format,
            "text_column": text_column,
            "keep_text": keep_text,
            "compression": compression,
            "batch_size": batch_size,
            "num_files": num_files,
            "rows_per_file": rows_per_file,
            "read_blocks": (scheduling or RayOptions()).read_blocks,
        },
        inputs={
            "num_files": len(found.files),
            "num_rows": sum(counts),
            "size_bytes": sum(f.size_bytes for f in found.files),
            **found.fingerprint,
        },
        stats=stats,
        timings={
            "inspect_seconds": round(inspect_seconds, 3),
            "total_seconds": round(time.monotonic() - started, 3),
        },
        execution=execution_summary(
            parts, [(p.result["num_rows"], p.result["quality"]["text_bytes"]) for p in parts]
        ),
    )
    dataset.commit(root, manifest, leftovers, deadline)
    return manifest
