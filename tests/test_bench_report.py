"""The benchmark's arithmetic: ratios, target verdicts, the table. No timing here."""

from benchmarks import report


def results(flow_gen=10.0, seed_gen=300.0, flow_pre=8.0, polars_pre=10.0, seed_pre=80.0):
    rows = [
        ("generate", report.OURS, flow_gen),
        ("generate", report.SEED, seed_gen),
        ("preprocess", report.OURS, flow_pre),
        ("preprocess", report.POLARS, polars_pre),
        ("preprocess", report.SEED, seed_pre),
    ]
    return {
        "date": "2026-11-26T00:00:00+00:00",
        "size_gb": 2.0,
        "machine": {"cpus": 2, "cpu_model": "x", "memory_gib": 24, "python": "3.11"}
        | {"ray": "2.60", "prefect": "3.9", "polars": "2"},
        "comparison": [
            {"stage": s, "method": m, "seconds": t, "text_bytes": 2_000_000_000}
            | {"peak_memory_bytes": 2**30}
            for s, m, t in rows
        ],
        "memory": [
            {"size_gb": 1, "rows": 10, "rows_out": 10, "peak_memory_bytes": 100}
            | {"generate": {"seconds": 1.0}, "preprocess": {"seconds": 2.0}}
            | {"spilled_bytes_total": 0},
            {"size_gb": 4, "rows": 40, "rows_out": 40, "peak_memory_bytes": 115}
            | {"generate": {"seconds": 3.0}, "preprocess": {"seconds": 5.0}}
            | {"spilled_bytes_total": 2**20},
        ],
        "fixed_cost": {"warm_ray_seconds": [4.0, 3.0], "own_local_ray_seconds": 20.0},
    }


def test_ratios_are_speed_ups_against_the_same_stage():
    r = results()
    report.add_ratios(r["comparison"])
    by = {(row["stage"], row["method"]): row for row in r["comparison"]}
    ours_gen = by[("generate", report.OURS)]
    assert ours_gen["x_seed"] == 30.0 and ours_gen["x_polars"] is None
    assert ours_gen["mb_per_s"] == 200.0
    assert by[("preprocess", report.OURS)]["x_polars"] == 1.25


def test_targets_hold_or_are_missed_by_their_floors():
    assert all(ok for _, ok in report.check_targets(results()))
    missed = dict(report.check_targets(results(flow_gen=16.0, flow_pre=11.0)))
    assert [t for t, ok in missed.items() if not ok] == [
        "generate: 18.8x vs seed method (Ray Data) (floor 20x)",
        "preprocess: 0.9x vs Polars (floor 1x)",
    ]


def test_memory_growth_and_lost_rows_are_checked():
    r = results()
    r["memory"][1]["peak_memory_bytes"] = 121
    r["memory"][1]["rows_out"] = 39
    missed = [t for t, ok in report.check_targets(r) if not ok]
    assert missed == [
        "memory: peak 1.21x at 4 GB vs 1 GB (limit 1.2x)",
        "memory: 4 GB, 39 of 40 rows",
    ]


def test_markdown_table_lists_every_row():
    r = results()
    report.add_ratios(r["comparison"])
    table = report.markdown(r)
    assert "| generate | this project (flow) | 10.0 | 200 | 30.0x | - | 1.00 GiB |" in table
    assert "| 4 GB | 3.0 | 5.0 | 40 | 0.00 GiB | 1 MiB |" in table
    assert "4.0, 3.0 s on a running Ray; 20.0 s" in table


def inputs(parquet_peak=2 * 2**30, zst_peak=2**30):
    """The inputs phase's rows: 1 GB of text from each format."""
    peaks = {"parquet": parquet_peak, "jsonl.gz": 3 * 2**30, "jsonl.zst": zst_peak}
    seconds = {"parquet": 20.0, "jsonl.gz": 40.0, "jsonl.zst": 25.0}
    return [
        {"format": f, "size_gb": 1.0, "input_bytes": 750_000_000, "text_bytes": 10**9}
        | {"seconds": seconds[f], "wall_seconds": seconds[f] + 5, "peak_memory_bytes": peak}
        for f, peak in peaks.items()
    ]


def test_input_formats_are_tabled_with_their_memory_target():
    r = results() | {"inputs": inputs()}
    report.add_ratios(r["comparison"])
    report.add_input_speeds(r["inputs"])
    assert [row["text_mb_per_s"] for row in r["inputs"]] == [50.0, 25.0, 40.0]
    table = report.markdown(r)
    assert "| parquet | 750 MB | 20.0 | 50 | 2.00 GiB |" in table
    assert "| jsonl.zst | 750 MB | 25.0 | 40 | 1.00 GiB |" in table
    assert "peak memory of .jsonl.zst <= Parquet's: holds (0.50x)" in table
    assert ("inputs: peak memory of .jsonl.zst <= Parquet's (0.50x)", True) in (
        report.check_targets(r)
    )


def test_more_memory_from_zst_than_parquet_is_missed():
    r = results() | {"inputs": inputs(parquet_peak=2**30, zst_peak=2**30 + 2**28)}
    report.add_ratios(r["comparison"])
    report.add_input_speeds(r["inputs"])
    missed = [t for t, ok in report.check_targets(r) if not ok]
    assert missed == ["inputs: peak memory of .jsonl.zst <= Parquet's (1.25x)"]
    assert "peak memory of .jsonl.zst <= Parquet's: MISSED (1.25x)" in report.markdown(r)


def test_a_run_of_one_phase_reports_only_that_phase():
    r = results() | {"comparison": [], "memory": [], "inputs": inputs()}
    del r["fixed_cost"]
    report.add_input_speeds(r["inputs"])
    table = report.markdown(r)
    assert table.startswith("2 CPUs (x)")  # no comparison, so no one size of text
    assert "| stage |" not in table and "Fixed cost" not in table
    assert "| jsonl.gz | 750 MB | 40.0 | 25 | 3.00 GiB |" in table
    assert [t for t, _ in report.check_targets(r)] == [
        "inputs: peak memory of .jsonl.zst <= Parquet's (0.50x)"
    ]
