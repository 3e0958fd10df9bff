"""Duplicates to find: generated text rewritten so that a share of its rows are in
groups of two, one row an exact or near copy of the other.

Generated text has no duplicates, so without this every row of the dedup benchmark
goes through every pass and none is removed; real corpora have many (FineWeb's
ablations report about a third of crawled text in duplicate clusters).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# A near copy has its last letter changed. Generated text has long words (about 20 in
# 1,000 characters), so that moves one of its five-word shingles: a Jaccard similarity
# of (n - 5) / (n - 3) for n words, at least 0.8 from 13 words (shorter texts are
# copied exactly instead).
LETTERS = "abcdefghijklmnopqrstuvwxyz"
NEAR_MIN_WORDS = 13


def plant(texts: pa.Array, share: float, seed: int) -> tuple[pa.Array, int, int]:
    """``texts`` with ``share`` of its rows in pairs: in each pair one row's text becomes
    a copy of the other's, exact for half of the pairs and near (its last letter
    changed) for the rest. Returns the texts, the exact copies and the near copies."""
    rng = np.random.default_rng(seed)
    pairs = int(len(texts) * share) // 2
    chosen = rng.permutation(len(texts))[: 2 * pairs]
    originals, copies = chosen[:pairs], chosen[pairs:]
    source = np.arange(len(texts))
    source[copies] = originals
    copied = texts.take(pa.array(source)).to_pylist()
    near = 0
    for row in copies[pairs // 2 :].tolist():  # the near copies: their last letter changed
        text = copied[row].rstrip()
        if len(text.split()) < NEAR_MIN_WORDS:
            continue
        letter = LETTERS[(LETTERS.find(text[-1:].lower()) + 1 + int(rng.integers(25))) % 26]
        copied[row] = text[:-1] + letter
        near += 1
    return pa.array(copied, pa.string()), pairs - near, near


def plant_files(input_dir: Path, output_dir: Path, share: float, column: str) -> dict[str, Any]:
    """Every Parquet part of ``input_dir`` with :func:`plant` applied to ``column``, as
    plain Parquet files in ``output_dir`` (the same names); the counts planted."""
    output_dir.mkdir(parents=True)
    rows = exact = near = 0
    for number, path in enumerate(sorted(input_dir.glob("part-*.parquet"))):
        table = pq.read_table(path)
        texts, file_exact, file_near = plant(
            pc.cast(table.column(column), pa.string()).combine_chunks(), share, number
        )
        table = table.set_column(table.schema.get_field_index(column), column, texts)
        pq.write_table(table, output_dir / path.name)
        rows, exact, near = rows + table.num_rows, exact + file_exact, near + file_near
    return {"rows": rows, "exact_copies": exact, "near_copies": near}
