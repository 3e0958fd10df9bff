"""Copies of a Parquet dataset as compressed JSON Lines, for the input-format phase.

Untimed set-up: one ``.jsonl.<codec>`` file per Parquet part, same rows in the same
order, streamed batch by batch so memory stays bounded whatever the dataset's size.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

COLUMNS = ["id", "text", "label"]
SUFFIXES = {"gzip": ".jsonl.gz", "zstd": ".jsonl.zst"}
BATCH_ROWS = 8192


def write_jsonl(source: Path, target: Path, codec: str) -> None:
    """Write the rows of one Parquet file as JSON Lines compressed with ``codec``.

    At pyarrow's default levels (gzip 9, zstd 1); decompression speed hardly depends on them.
    """
    with pa.CompressedOutputStream(str(target), codec) as out:
        for batch in pq.ParquetFile(source).iter_batches(BATCH_ROWS, columns=COLUMNS):
            lines = [json.dumps(row, ensure_ascii=False) for row in batch.to_pylist()]
            out.write(("\n".join(lines) + "\n").encode())


def parquet_to_jsonl(source: Path, target: Path, codec: str) -> list[Path]:
    """One JSON Lines file per part of the dataset at ``source``, named after the part.

    Parts are taken in name order, the order both the manifest and a directory
    listing give, so the copy reads back as the same rows in the same order.
    """
    target.mkdir(parents=True)
    written = []
    for part in sorted(source.glob("part-*.parquet")):
        path = target / (part.name.removesuffix(".parquet") + SUFFIXES[codec])
        write_jsonl(part, path, codec)
        written.append(path)
    if not written:
        raise RuntimeError(f"no Parquet parts under {source}")
    return written
