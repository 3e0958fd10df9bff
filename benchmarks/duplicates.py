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

# Characters a near copy overwrites in the middle of its text: about two 5-letter words
# of a 1,000-character text, which moves 10 of its ~170 five-word shingles (Jaccard
# similarity about 0.89, above the default threshold of 0.8).
EDIT_CHARS = 12


def plant(texts: pa.Array, share: float, seed: int) -> tuple[pa.Array, int, int]:
    """``texts`` with ``share`` of its rows in pairs: in each pair one row's text becomes
    a copy of the other's, exact for half of the pairs and near (``EDIT_CHARS`` changed)
    for the rest. Returns the texts, the exact copies and the near copies."""
    rng = np.random.default_rng(seed)
    pairs = int(len(texts) * share) // 2
    chosen = rng.permutation(len(texts))[: 2 * pairs]
    originals, copies = chosen[:pairs], chosen[pairs:]
    source = np.arange(len(texts))
    source[copies] = originals
    copied = texts.take(pa.array(source)).to_pylist()
    exact = pairs // 2
    for row in copies[exact:].tolist():  # the near copies: one window overwritten
        text = copied[row]
        at = max(0, len(text) // 2 - EDIT_CHARS // 2)
        edit = "".join(rng.choice(list("abcdefghij"), EDIT_CHARS))
        copied[row] = text[:at] + edit + text[at + EDIT_CHARS :]
    return pa.array(copied, pa.string()), exact, pairs - exact


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
