"""The seed tutorial's two Ray Data scripts, kept as they are, as the baseline.

Only the sizes and paths are parameters; the work per row is the seed's: every text
built in Python from ``np.random.choice`` per character, a ``repartition`` shuffle into
the output files, and cleaning through a pandas ``apply`` of ``re.sub`` per row.
"""

from __future__ import annotations

import re
import string

import numpy as np
import pandas as pd
import ray

ROWS_PER_BATCH = 1000  # the seed's batches: 1000 rows of 1000 characters, ~1 MB


def generate_fake_data(batch_info: dict) -> pd.DataFrame:
    num_rows = ROWS_PER_BATCH
    data = {
        "id": np.random.randint(0, 10**9, size=num_rows),
        "text": [
            "".join(np.random.choice(list(string.ascii_letters + " "), 1000))
            for _ in range(num_rows)
        ],
        "label": np.random.choice(["news", "blog", "forum", "wiki"], size=num_rows),
    }
    return pd.DataFrame(data)


def seed_generate(output_dir: str, num_batches: int, num_files: int) -> None:
    """``generate-data.py``: ``num_batches`` x 1000 rows, ``repartition(num_files)``."""
    ds = ray.data.range(num_batches).map_batches(generate_fake_data, batch_size=1)
    ds.repartition(num_files).write_parquet(output_dir)


def preprocess_text(batch: pd.DataFrame) -> pd.DataFrame:
    def clean(text):
        text = re.sub(r"[^가-힣a-zA-Z0-9\s]", "", text)
        return text.lower()

    batch["cleaned_text"] = batch["text"].apply(clean)
    return batch


def seed_preprocess(input_dir: str, output_dir: str) -> None:
    """``preprocessing.py``: read Parquet, pandas batches of 1024, write Parquet."""
    ds = ray.data.read_parquet(input_dir, file_extensions=["parquet"])
    processed = ds.map_batches(preprocess_text, batch_size=1024, batch_format="pandas", num_cpus=1)
    processed.write_parquet(output_dir)
