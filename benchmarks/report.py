"""The benchmark's table, targets, JSON and chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GIB = 2**30
OURS = "this project (flow)"
SEED = "seed method (Ray Data)"
POLARS = "Polars"

# The floors issue 5 sets: (stage, against, minimum speed-up).
TARGETS = [("generate", SEED, 20.0), ("preprocess", SEED, 4.0), ("preprocess", POLARS, 1.0)]
MEMORY_GROWTH_LIMIT = 1.2  # peak at the largest size vs the smallest
# Compressed JSON Lines is read in bounded blocks, so it should need no more memory
# than Parquet: peak with .jsonl.zst input vs with Parquet input.
INPUT_MEMORY_LIMIT = 1.0


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Speed-up of each row relative to the seed method and to Polars, same stage."""
    by = {(r["stage"], r["method"]): r for r in rows}
    for row in rows:
        row["mb_per_s"] = row["text_bytes"] / row["seconds"] / 1e6
        for name, method in (("x_seed", SEED), ("x_polars", POLARS)):
            other = by.get((row["stage"], method))
            row[name] = other["seconds"] / row["seconds"] if other else None


def add_input_speeds(rows: list[dict[str, Any]]) -> None:
    """MB/s of text preprocessed from each input format."""
    for row in rows:
        row["text_mb_per_s"] = row["text_bytes"] / row["seconds"] / 1e6


def input_memory_verdict(rows: list[dict[str, Any]]) -> tuple[float, bool] | None:
    """Peak memory with .jsonl.zst input over Parquet's, and whether it is within limit."""
    by = {r["format"]: r for r in rows}
    if "parquet" not in by or "jsonl.zst" not in by:
        return None
    ratio = by["jsonl.zst"]["peak_memory_bytes"] / by["parquet"]["peak_memory_bytes"]
    return ratio, ratio <= INPUT_MEMORY_LIMIT


def check_targets(results: dict[str, Any]) -> list[tuple[str, bool]]:
    by = {(r["stage"], r["method"]): r for r in results.get("comparison", [])}
    verdicts = []
    for stage, against, floor in TARGETS:
        ours, other = by.get((stage, OURS)), by.get((stage, against))
        if ours and other:
            ratio = other["seconds"] / ours["seconds"]
            verdicts.append(
                (f"{stage}: {ratio:.1f}x vs {against} (floor {floor:g}x)", ratio >= floor)
            )
    memory = results.get("memory", [])
    if len(memory) >= 2:
        small, large = memory[0], memory[-1]
        growth = large["peak_memory_bytes"] / small["peak_memory_bytes"]
        verdicts.append(
            (
                f"memory: peak {growth:.2f}x at {large['size_gb']:g} GB vs {small['size_gb']:g} GB"
                f" (limit {MEMORY_GROWTH_LIMIT}x)",
                growth <= MEMORY_GROWTH_LIMIT,
            )
        )
    for m in memory:
        verdicts.append(
            (
                f"memory: {m['size_gb']:g} GB, {m['rows_out']} of {m['rows']} rows",
                m["rows_out"] == m["rows"],
            )
        )
    inputs = input_memory_verdict(results.get("inputs", []))
    if inputs:
        ratio, ok = inputs
        verdicts.append((f"inputs: peak memory of .jsonl.zst <= Parquet's ({ratio:.2f}x)", ok))
    return verdicts


def _ratio(value: float | None) -> str:
    return f"{value:.1f}x" if value else "-"


def inputs_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The input-format table and its target line."""
    lines = [
        f"| input format ({rows[0]['size_gb']:g} GB of text, object store capped) | on disk "
        "| seconds | MB/s of text | peak memory |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['format']} | {r['input_bytes'] / 1e6:.0f} MB | {r['seconds']:.1f} | "
            f"{r['text_mb_per_s']:.0f} | {r['peak_memory_bytes'] / GIB:.2f} GiB |"
        )
    verdict = input_memory_verdict(rows)
    if verdict:
        ratio, ok = verdict
        lines += [
            "",
            f"peak memory of .jsonl.zst <= Parquet's: {'holds' if ok else 'MISSED'} ({ratio:.2f}x)",
        ]
    return lines


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    comparison = results.get("comparison", [])
    lines = [
        # The size is the comparison's; a run without that phase has no one size.
        (f"{results['size_gb']:g} GB of text, " if comparison else "")
        + f"{m['cpus']} CPUs ({m['cpu_model']}), "
        f"{m['memory_gib']} GiB, Python {m['python']}, Ray {m['ray']}, Prefect {m['prefect']}, "
        f"Polars {m['polars']}; {results['date']}",
    ]
    if comparison:
        lines += [
            "",
            "| stage | method | seconds | MB/s of text | vs seed method | vs Polars "
            "| peak memory |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
    for r in comparison:
        lines.append(
            f"| {r['stage']} | {r['method']} | {r['seconds']:.1f} | {r['mb_per_s']:.0f} | "
            f"{_ratio(r['x_seed'])} | {_ratio(r['x_polars'])} | "
            f"{r['peak_memory_bytes'] / GIB:.2f} GiB |"
        )
    if results.get("memory"):
        lines += [
            "",
            "| size (object store capped) | generate s | preprocess s | rows out "
            "| peak memory | spilled |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in results["memory"]:
            lines.append(
                f"| {r['size_gb']:g} GB | {r['generate']['seconds']:.1f} | "
                f"{r['preprocess']['seconds']:.1f} | {r['rows_out']} | "
                f"{r['peak_memory_bytes'] / GIB:.2f} GiB | "
                f"{r['spilled_bytes_total'] / 2**20:.0f} MiB |"
            )
    if results.get("inputs"):
        lines += ["", *inputs_markdown(results["inputs"])]
    fixed = results.get("fixed_cost")
    if fixed:
        warm = ", ".join(f"{s:.1f}" for s in fixed["warm_ray_seconds"])
        lines += [
            "",
            f"Fixed cost of one flow run (generate, 1 row): {warm} s on a running Ray; "
            f"{fixed['own_local_ray_seconds']:.1f} s when the run starts its own local Ray.",
        ]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = ["generate", "preprocess"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    for ax, stage in zip(axes, stages, strict=True):
        rows = [r for r in results["comparison"] if r["stage"] == stage]
        names = [r["method"] for r in rows]
        speeds = [r["mb_per_s"] for r in rows]
        colors = ["#2b6cb0" if n == OURS else "#a0aec0" for n in names]
        bars = ax.barh(names, speeds, color=colors)
        for bar, r in zip(bars, rows, strict=True):
            ax.text(
                bar.get_width(),
                bar.get_y() + bar.get_height() / 2,
                f" {r['seconds']:.1f} s",
                va="center",
                fontsize=9,
            )
        ax.set_title(f"{stage}, {results['size_gb']:g} GB")
        ax.set_xlabel("MB/s of text (higher is better)")
        ax.invert_yaxis()
        ax.set_xlim(0, max(speeds) * 1.3)
    m = results["machine"]
    fig.suptitle(f"{m['cpus']} CPUs, {m['memory_gib']} GiB, warm Ray, one run", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def finish(results: dict[str, Any], out: Path) -> None:
    """Print the tables and the targets, write ``bench.json`` and (with a comparison)
    ``bench.png``."""
    add_ratios(results.get("comparison", []))
    add_input_speeds(results.get("inputs", []))
    verdicts = check_targets(results)
    results["targets"] = [{"target": t, "holds": ok} for t, ok in verdicts]
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "bench.json"]
    written[0].write_text(json.dumps(results, indent=2) + "\n")
    if results.get("comparison"):  # the chart is of the comparison alone
        written.append(out / "bench.png")
        chart(results, written[1])
    print()
    print(markdown(results))
    print()
    for text, ok in verdicts:
        print(f"{'holds ' if ok else 'MISSED'}  {text}")
    print(f"\nwrote {' and '.join(map(str, written))} ({results['bench_seconds']} s)")
    if not all(ok for _, ok in verdicts):
        raise SystemExit(1)
