"""Data health: a step's figures from its manifest, what is wrong with them under a
deployment's bounds, and the earlier dates' rows the median is taken over."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from tasks.orchestration.health import HealthBounds, earlier_rows, figures, problems
from tasks.store import dataset, storage
from tasks.store.dataset import FileEntry


def _manifest(rows_in: int | None, rows_out: int, text_bytes: int = 4_000_000) -> dict:
    inputs = None if rows_in is None else {"num_rows": rows_in, "size_bytes": 9_000}
    return {
        "num_rows": rows_out,
        "size_bytes": 5_000,
        "inputs": inputs,
        "stats": {"text_bytes": text_bytes},
    }


def test_figures_are_what_the_manifest_says_the_step_did():
    found = figures(_manifest(200, 150), seconds=2.0)
    assert found == {
        "rows_in": 200,
        "rows_out": 150,
        "bytes_in": 9_000,
        "bytes_out": 5_000,
        "kept_fraction": 0.75,
        "removed_fraction": 0.25,
        "seconds": 2.0,
        "text_mb_per_s": 2.0,
    }
    generated = figures(_manifest(None, 10), seconds=0.0)  # no input, no time
    assert generated["rows_in"] is None and generated["kept_fraction"] is None
    assert generated["text_mb_per_s"] is None


def test_an_empty_input_or_nothing_kept_is_wrong_whatever_the_bounds():
    none = HealthBounds()
    assert problems(figures(_manifest(0, 0), 1), none) == ["its input has 0 rows"]
    assert problems(figures(_manifest(1_234, 0), 1), none) == ["kept 0 of 1,234 rows"]
    assert problems(figures(_manifest(1_234, 1), 1), none) == []
    assert problems(figures(_manifest(None, 0), 1), none) == []  # generated: no input


def test_the_kept_fraction_must_stay_within_its_bounds():
    bounds = HealthBounds(min_kept_fraction=0.5, max_kept_fraction=0.9)
    assert problems(figures(_manifest(100, 50), 1), bounds) == []
    assert problems(figures(_manifest(100, 90), 1), bounds) == []
    (low,) = problems(figures(_manifest(100, 49), 1), bounds)
    assert "kept 0.4900" in low and "below min_kept_fraction 0.5" in low
    (high,) = problems(figures(_manifest(100, 91), 1), bounds)
    assert "above max_kept_fraction 0.9" in high


def test_rows_out_must_stay_near_the_median_of_the_earlier_dates():
    bounds = HealthBounds(rows_vs_median=0.5)
    history = [100, 1_000, 110, 90]  # median 105: one odd date does not move it
    for rows in (53, 105, 157):
        assert problems(figures(_manifest(rows, rows), 1), bounds, history) == []
    (wrong,) = problems(figures(_manifest(160, 160), 1), bounds, history)
    assert "160 rows out against a median of 105 over the last 4 dates" in wrong
    assert problems(figures(_manifest(50, 50), 1), bounds, history)
    assert problems(figures(_manifest(10, 10), 1), bounds, []) == []  # the first date


def test_bad_bounds_are_refused_by_name():
    with pytest.raises(ValidationError, match=r"min_kept_fraction 0\.9 is above max_kept"):
        HealthBounds(min_kept_fraction=0.9, max_kept_fraction=0.5)
    with pytest.raises(ValidationError, match="min_kept_fraction"):
        HealthBounds(min_kept_fraction=1.5)
    with pytest.raises(ValidationError, match="kept_fracton"):
        HealthBounds.model_validate({"kept_fracton": 0.5})
    with pytest.raises(ValidationError, match="rows_vs_median"):
        HealthBounds(rows_vs_median=0)


def _commit(root: Path, rows: int) -> None:
    """A committed dataset of ``rows`` rows (``id``, ``cleaned_text``), without a flow."""
    root.mkdir(parents=True)
    table = pa.table({"id": list(range(rows)), "cleaned_text": ["a b c"] * rows})
    pq.write_table(table, root / dataset.part_name(0))
    entry = FileEntry(dataset.part_name(0), rows, (root / dataset.part_name(0)).stat().st_size)
    dataset.commit(storage.resolve(str(root)), dataset.build_manifest([entry], table.schema), [])


def test_the_history_is_the_latest_committed_dates_before_the_runs(tmp_path):
    base = tmp_path / "preprocessed"
    for day, rows in (("01", 10), ("02", 20), ("03", 30), ("04", 40), ("06", 60)):
        _commit(base / f"dt=2026-12-{day}", rows)
    _commit(base / "dt=2026-12-02b", 5)  # not a date
    (base / "dt=2026-12-05").mkdir()  # being written: no manifest, not history
    (base / "dt=2026-13-01").mkdir()  # not a date
    (base / "notes").mkdir()
    here = storage.resolve(str(base / "dt=2026-12-05"))
    assert earlier_rows(here, 3) == [40, 30, 20]  # latest first; later dates are not history
    assert earlier_rows(here, 7) == [40, 30, 20, 10]
    assert earlier_rows(storage.resolve(str(base)), 7) == []  # not a date partition


def test_an_unreadable_earlier_manifest_is_skipped_and_named(tmp_path):
    base = tmp_path / "preprocessed"
    for day, rows in (("01", 10), ("02", 20), ("03", 30)):
        _commit(base / f"dt=2026-12-{day}", rows)
    (base / "dt=2026-12-02" / "_manifest.json").write_text('{"files": [')  # truncated
    unreadable: list[str] = []
    here = storage.resolve(str(base / "dt=2026-12-04"))
    assert earlier_rows(here, 7, unreadable) == [30, 10]
    assert unreadable == ["dt=2026-12-02"]
