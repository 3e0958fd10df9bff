"""Step 2 of the seed: write synthetic text rows as a committed Parquet dataset."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tasks.cluster.mapping import Done, RayOptions, execution_summary, map_items
from tasks.data import dataset, storage
from tasks.data.parts import write_part
from tasks.errors import InputError
from tasks.nightly import space
from tasks.steps.generate import synth


def plan_parts(num_rows: int, num_files: int) -> list[dict[str, int]]:
    """One spec per part file: which ids it holds."""
    return [
        {"index": i, "start": start, "stop": stop}
        for i, (start, stop) in enumerate(synth.split_rows(num_rows, num_files))
    ]


def write_generated_part(spec: dict[str, Any]) -> dict[str, Any]:
    """Generate one part's rows and write them as ``part-{index}.parquet``."""
    root = storage.resolve(spec["output_uri"])
    rows = synth.generate_rows(spec["seed"], spec["start"], spec["stop"], spec["text_length"])
    entry = write_part(root, spec["index"], rows, synth.SCHEMA)
    return {"path": entry.path, "num_rows": entry.num_rows, "size_bytes": entry.size_bytes}


def generate_dataset(
    output_uri: str,
    num_rows: int,
    num_files: int | None = None,
    text_length: int = 1000,
    seed: int = 0,
    scheduling: RayOptions | None = None,
    rows_per_file: int | None = None,
    on_done: Callable[[int, int, Done], None] | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Generate and commit the dataset; return its manifest.

    ``num_files`` or ``rows_per_file`` sets the file count. ``on_done(done, total,
    part)`` hears of each part as it is written.
    """
    num_files = dataset.file_count(num_rows, num_files, rows_per_file)
    if num_files is None:
        raise InputError("give num_files or rows_per_file")
    synth.check_parameters(num_rows, num_files, text_length, seed)
    root = storage.resolve(output_uri)
    started = time.monotonic()
    space.check_free_space(root, space.generated_bytes(num_rows, text_length), "generate")
    leftovers = dataset.prepare_output(root)
    specs = [
        {**part, "output_uri": root.uri, "seed": seed, "text_length": text_length}
        for part in plan_parts(num_rows, num_files)
    ]
    parts = map_items(
        write_generated_part, specs, scheduling=scheduling, on_done=on_done, deadline=deadline
    )
    entries = [dataset.FileEntry(**part.result) for part in parts]
    if sum(e.num_rows for e in entries) != num_rows:
        raise RuntimeError(f"wrote {sum(e.num_rows for e in entries)} rows, expected {num_rows}")
    manifest = dataset.build_manifest(
        entries,
        synth.SCHEMA,
        stage="generate",
        parameters={
            "num_rows": num_rows,
            "num_files": num_files,
            "rows_per_file": rows_per_file,
            "text_length": text_length,
            "seed": seed,
            "chunk_rows": synth.CHUNK_ROWS,
            "generator_version": synth.GENERATOR_VERSION,
        },
        stats={"text_bytes": num_rows * text_length},  # ASCII: one byte per character
        timings={"write_seconds": round(time.monotonic() - started, 3)},
        execution=execution_summary(
            parts, [(e.num_rows, e.num_rows * text_length) for e in entries]
        ),
    )
    dataset.commit(root, manifest, leftovers, deadline)
    return manifest
