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
