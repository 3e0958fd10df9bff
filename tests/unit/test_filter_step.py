"""The filter step's part, in this process: one read of its input file, whatever the
share rejected, and every row in exactly one of its two files."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.steps import reading
from tasks.steps.filter import step as filter_step
from tasks.steps.filter.options import FilterOptions
from tasks.store import storage
from tests.unit.test_filter_rules import base


def test_a_part_reads_its_file_once_and_puts_every_row_in_one_of_its_files(tmp_path, monkeypatch):
    texts = ["\n".join(base(first=i * 72)) if i % 3 else "too short" for i in range(60)]
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": list(range(60)), "text": texts}), source)
    reads = []
    iter_slice = reading.iter_slice

    def counted(*args, **kwargs):
        reads.append(args[1])
        return iter_slice(*args, **kwargs)

    monkeypatch.setattr(reading, "iter_slice", counted)
    (tmp_path / "out").mkdir()
    (tmp_path / "rejected").mkdir()
    schema = pq.read_schema(source)
    spec = filter_step.FilterPart(
        output=storage.resolve(str(tmp_path / "out")),
        index=0,
        source=storage.resolve(str(source)),
        format="parquet",
        schema=schema,
        text_column="text",
        filters=FilterOptions(language=None),
        compression="snappy",
        batch_size=7,
        rejected=storage.resolve(str(tmp_path / "rejected")),
        cleaned_from_text=False,
    )
    result = filter_step.write_filtered_part(spec)

    assert len(reads) == 1  # one pass over the file, not one per output
    kept = pq.read_table(tmp_path / "out" / "part-00000.parquet")["id"].to_pylist()
    rejected = pq.read_table(tmp_path / "rejected" / "part-00000.parquet")
    assert sorted(kept + rejected["id"].to_pylist()) == list(range(60))
    assert kept and rejected.num_rows
    assert result.rows_accounted == 60
    assert None not in rejected["filter_reason"].to_pylist()
