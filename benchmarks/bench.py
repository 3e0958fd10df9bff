"""``make bench``: what each further GB costs, for the seed's method, Polars and our flows.

One run, one machine. First the kernels' limits: one plain process per CPU, all at once,
each generating parts and cleaning them on one core. Then every side at two sizes on
one warm Ray head this script started (cluster start-up excluded, as in the seed's own
figures; an untimed Ray Data job first), for the marginal MB/s of text between them;
the seed's method at smaller sizes, as it is slow. Then end to end at ``--size-gb``
(the seed's scale is 10): our flows and Polars measured, the seed's method extrapolated
from its marginal rate. Then, with the object store capped, the flows at two sizes to
show that memory stays flat; the preprocess flow on Parquet, .jsonl.gz and .jsonl.zst;
and the fixed cost of a one-row flow run beside the stack's floor (benchmarks/floor.py).
Last, the dedup step: its recall and false merges on planted near duplicates for each
MinHash setting (benchmarks/dedup_quality.py), and the dedup flow, exact and near, at
two sizes with the object store capped (what each further GB costs per CPU, and memory),
on input with 30% of its rows copies of earlier rows (generate's ``duplicates``),
beside the preprocess flow on the same input. Then the same on real text (Korean and
multilingual sentences that ship in packages, benchmarks/real_text.py), with Polars'
preprocess too and every cleaned row checked against Python's ``re``.
And the filter step: datatrove's four filter classes and our rules kernel, each in a
process of its own on one core, on the same real documents (the texts that ship with
the installed packages, benchmarks/real_docs.py): how often their verdicts agree per
filter, what each further MB costs each, and where the time goes per filter
(benchmarks/filter_compare.py); then the filter flow at two sizes with the object store
capped (memory), and one batch of 100,000-character texts through the kernel.

    python -m benchmarks.bench [--sizes-gb 2 4] [--seed-sizes-gb 0.5 1] [--size-gb 2]
        [--memory-gb 1 4] [--inputs-gb 1] [--dedup-gb 1 4] [--dedup-pairs 4000]
        [--dedup-duplicates 0.3] [--real-text-gb 0.5 2] [--filter-mb-datatrove 4 12]
        [--filter-mb-ours 40 120] [--filter-mb-korean 1 3] [--filter-memory-gb 1 4]
        [--filter-long-rows 1024] [--decontaminate-items 1000000]
        [--tokenize-mb 100 300]
        [--phases kernels marginal compare memory inputs fixed dedup-quality dedup
                  real-text filter tokenize]
        [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as ds

from benchmarks import filter_compare, memory_state, real_docs, report
from benchmarks.dedup_quality import SETTINGS as DEDUP_SETTINGS
from benchmarks.jsonl import parquet_to_jsonl
from benchmarks.report import OURS, POLARS, SEED
from benchmarks.services import QUIET, PeakMemory, RayHead, prefect_server, ray_head
from tasks.store import dataset, storage

ROOT = Path(__file__).resolve().parent.parent
TEXT_LENGTH = 1000  # the seed's ~1 KB texts
FILE_MB = 100  # the seed writes 10 GB as 100 files
GIB = 2**30
PHASES = (
    "kernels",
    "marginal",
    "compare",
    "memory",
    "inputs",
    "fixed",
    "dedup-quality",
    "dedup",
    "real-text",
    "filter",
    "tokenize",
)
# The input formats the inputs phase compares: name in the results, codec of the copy.
JSONL_COPIES = {"jsonl.gz": "gzip", "jsonl.zst": "zstd"}
# One-row runs of each side of the fixed-cost comparison, alternating; the median counts.
FIXED_REPEATS = 3
# Parts each kernel process generates and cleans; the median part counts.
KERNEL_PARTS = 5
# The filter phase: rows per Arrow batch of our kernel (the flow's default batch size),
# text judged untimed first by each side, and the characters of each long text.
FILTER_ROWS = 1024
FILTER_WARMUP_BYTES = 1_000_000
LONG_CHARS = 100_000
# The dedup phase's sides, each run on the same generated input: preprocess (the
# nightly's cleaning, the yardstick), then dedup in each mode.
DEDUP_SIDES = [
    ("flow-preprocess", {"text_column": "text"}),
    ("flow-dedup", {"mode": "exact", "text_column": "text"}),
    ("flow-dedup", {"mode": "near", "text_column": "text"}),
]


def start_driver(
    side: str, args: dict[str, Any], env: dict[str, str], log: Path
) -> subprocess.Popen:
    """One side's driver process (``benchmarks.drivers``), its stderr into ``log``."""
    with log.open("w") as err:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "benchmarks.drivers", side, json.dumps(args)],
            cwd=ROOT,
            env={**os.environ, **QUIET, **env},
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )


def driver_result(side: str, process: subprocess.Popen, out: str, log: Path) -> dict[str, Any]:
    """The JSON line a driver printed last: its seconds, and a side's own figures."""
    if process.returncode != 0:
        raise RuntimeError(f"{side} failed ({process.returncode}); see {log}")
    return json.loads(out.strip().splitlines()[-1])


def run_side(
    side: str, args: dict[str, Any], env: dict[str, str], work: Path, ray: RayHead | None
) -> dict[str, Any]:
    """Run one side in its own driver process; its seconds (and whatever else it
    reports), wall time and peak memory."""
    log = work / f"{side}-{len(list(work.glob(f'{side}*.log')))}.log"
    print(f"  {side} {json.dumps(args)}", flush=True)
    started, machine = time.perf_counter(), memory_state.counters()
    process = start_driver(side, args, env, log)
    roots = [process.pid] + ([ray.process.pid] if ray else [])
    with PeakMemory(roots) as memory:
        out, _ = process.communicate()
    wall = time.perf_counter() - started
    machine = memory_state.spent(machine, memory_state.counters())
    reported = driver_result(side, process, out, log)
    print(
        f"    {reported['seconds']:.1f} s, peak memory {memory.peak / GIB:.2f} GiB; "
        f"machine: {memory_state.spent_line(machine)}",
        flush=True,
    )
    return {**reported, "wall_seconds": wall, "peak_memory_bytes": memory.peak, **machine}


def merged(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's runs as one row: mean seconds and wall time, the highest peak."""
    return {
        "seconds": statistics.mean(r["seconds"] for r in runs),
        "wall_seconds": statistics.mean(r["wall_seconds"] for r in runs),
        "peak_memory_bytes": max(r["peak_memory_bytes"] for r in runs),
        "runs_seconds": [r["seconds"] for r in runs],
    } | {
        key: statistics.mean(r[key] for r in runs)
        for key in memory_state.SPENT
        if all(key in r for r in runs)
    }


def abba(sides: list[Any]) -> list[Any]:
    """Two sides in the order A, B, B, A: on this VM a side that writes into memory the
    guest has not touched lately pays up to 5x more per byte than one that reuses it
    (docs/performance.md), so neither side may always go first."""
    return [*sides, *reversed(sides)]


def join(ray: RayHead, env: dict[str, str], work: Path) -> dict[str, str]:
    """``env`` pointed at a fresh head, after one untimed Ray Data job on it.

    See ``drivers.ray_data_warmup`` for why the first job is not counted.
    """
    env = {**env, **ray.env}
    print("  (warm-up: one trivial Ray Data job, not counted)")
    run_side("ray-data-warmup", {}, env, work, ray)
    return env


def sized(size_gb: float) -> tuple[int, int]:
    """Rows and files for ``size_gb`` of text: ~1 KB rows, ~100 MB files as the seed."""
    return int(size_gb * 1e9) // TEXT_LENGTH, max(1, round(size_gb * 1000 / FILE_MB))


def generate_args(output: Path, size_gb: float, duplicates: float = 0.0) -> dict[str, Any]:
    num_rows, num_files = sized(size_gb)
    args = {"output_uri": str(output), "num_rows": num_rows, "num_files": num_files}
    return {**args, "duplicates": duplicates} if duplicates else args


def output_summary(path: Path) -> dict[str, int]:
    """Rows and total cleaned characters of a preprocessed output, read from its files."""
    files = [str(p) for p in sorted(path.rglob("*.parquet"))] if path.is_dir() else [str(path)]
    rows = chars = 0
    for batch in ds.dataset(files, format="parquet").to_batches(columns=["cleaned_text"]):
        rows += batch.num_rows
        chars += pc.sum(pc.utf8_length(batch.column(0))).as_py() or 0
    return {"rows": rows, "cleaned_chars": chars}


def manifest_rows(path: Path) -> int:
    return json.loads((path / "_manifest.json").read_text())["num_rows"]


def generate_checked(
    raw: Path,
    size_gb: float,
    env: dict[str, str],
    work: Path,
    ray: RayHead,
    duplicates: float = 0.0,
) -> dict[str, Any]:
    """The generate flow side, refusing to go on unless it committed every row."""
    num_rows, _ = sized(size_gb)
    result = run_side("flow-generate", generate_args(raw, size_gb, duplicates), env, work, ray)
    if manifest_rows(raw) != num_rows:
        raise RuntimeError(f"generate committed {manifest_rows(raw)} rows, not {num_rows}")
    return result


def input_bytes(path: Path) -> int:
    """Bytes on disk of a dataset's data files (names starting ``_`` or ``.`` are not)."""
    return sum(
        p.stat().st_size
        for p in path.rglob("*")
        if p.is_file() and not p.name.startswith(("_", "."))
    )


def kernel_limits(work: Path, env: dict[str, str]) -> dict[str, Any]:
    """Each stage's per-part work in plain processes (``drivers.kernels``), one per CPU
    and all at once, on parts of the seed's file size: the most a stage can do here.

    All CPUs at once, as a stage runs them: processes side by side share memory
    bandwidth and the page cache, so one alone is faster per part than each of two
    (measured: a median cleaned part in 0.59 s alone, 0.65 and 0.71 s side by side).
    """
    rows, _ = sized(FILE_MB / 1000)
    cpus = os.cpu_count() or 1
    print(f"kernels: {FILE_MB} MB parts, {cpus} plain processes of one core each, no Ray")
    processes = []
    for i in range(cpus):
        (work / f"kernels-{i}").mkdir()
        side_args = {
            "work": str(work / f"kernels-{i}"),
            "rows": rows,
            "text_length": TEXT_LENGTH,
            "repeats": KERNEL_PARTS,
        }
        processes.append(start_driver("kernels", side_args, env, work / f"kernels-{i}.log"))
    results = []
    for i, process in enumerate(processes):
        out, _ = process.communicate()
        results.append(driver_result("kernels", process, out, work / f"kernels-{i}.log"))
        shutil.rmtree(work / f"kernels-{i}")
    generate = sum(r["generate_mb_per_s_per_core"] for r in results)
    clean = sum(r["clean_mb_per_s_per_core"] for r in results)
    print(f"    generate {generate:.0f} MB/s, clean {clean:.0f} MB/s on {cpus} cores", flush=True)
    return {
        "cpus": cpus,
        "generate_mb_per_s_per_core": generate / cpus,
        "clean_mb_per_s_per_core": clean / cpus,
        "generate_limit_mb_per_s": generate,
        "preprocess_limit_mb_per_s": clean,
        "part_seconds": {
            "generate": [r["generate_seconds"] for r in results],
            "clean": [r["clean_seconds"] for r in results],
        },
    }


def marginal(args: argparse.Namespace, work: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """Every side at two sizes on one warm Ray: seconds per size, for what each further GB
    costs. The seed's method runs at its own, smaller sizes (it is slow)."""
    rows: list[dict[str, Any]] = []
    seed_sizes = [] if args.skip_seed else args.seed_sizes_gb
    with ray_head(work, "marginal") as ray:
        ray_env = join(ray, env, work)
        for size in sorted({*args.sizes_gb, *seed_sizes}):
            num_rows, num_files = sized(size)
            print(f"marginal: {size:g} GB ({num_rows} rows, {num_files} files)")
            raw = work / f"marginal-{size:g}-raw"
            flow = generate_checked(raw, size, ray_env, work, ray)
            sides: list[tuple[str, str, str, dict[str, Any], bool]] = []
            if size in args.sizes_gb:
                rows.append({"stage": "generate", "method": OURS, "size_gb": size, **flow})
                out = work / "flow-out"
                sides += abba(
                    [
                        (
                            "flow-preprocess",
                            "preprocess",
                            OURS,
                            {"input_uri": str(raw), "output_uri": str(out)},
                            True,
                        ),
                        (
                            "polars-preprocess",
                            "preprocess",
                            POLARS,
                            {"input": str(raw), "output": str(work / "polars-out")},
                            False,
                        ),
                    ]
                )
            if size in seed_sizes:
                batches = num_rows // 1000  # the seed's batches hold 1000 rows each
                seed_raw = {
                    "output": str(work / "seed-raw"),
                    "num_batches": batches,
                    "num_files": num_files,
                }
                sides.insert(0, ("seed-generate", "generate", SEED, seed_raw, True))
                sides.append(
                    (
                        "seed-preprocess",
                        "preprocess",
                        SEED,
                        {"input": str(raw), "output": str(work / "seed-out")},
                        True,
                    )
                )
            runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for side, stage, method, side_args, on_ray in sides:
                result = run_side(
                    side, side_args, ray_env if on_ray else env, work, ray if on_ray else None
                )
                runs.setdefault((stage, method), []).append(result)
                for leftover in work.glob("*-out*"):
                    shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
                shutil.rmtree(work / "seed-raw", ignore_errors=True)
            for (stage, method), results in runs.items():
                rows.append({"stage": stage, "method": method, "size_gb": size, **merged(results)})
            shutil.rmtree(raw)
    for row in rows:
        row["text_bytes"] = sized(row["size_gb"])[0] * TEXT_LENGTH
    return rows


def compare(args: argparse.Namespace, work: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """End to end at ``size_gb``: our generate, our preprocess and Polars' on a warm Ray
    (the seed's method is extrapolated from its marginal rate)."""
    num_rows, num_files = sized(args.size_gb)
    text_bytes = num_rows * TEXT_LENGTH
    rows: list[dict[str, Any]] = []
    with ray_head(work, "compare") as ray:
        ray_env = join(ray, env, work)
        print(f"generate {args.size_gb:g} GB ({num_rows} rows, {num_files} files)")
        raw = work / "raw"
        flow = generate_checked(raw, args.size_gb, ray_env, work, ray)
        rows.append({"stage": "generate", "method": OURS, **flow})
        print(f"preprocess the same {args.size_gb:g} GB")
        # (side, method, its arguments' names, whether it runs on Ray)
        # The seed's method is extrapolated from its marginal rate (report.py): slow.
        sides = [
            ("flow-preprocess", OURS, ("input_uri", "output_uri"), True),
            ("polars-preprocess", POLARS, ("input", "output"), False),
        ]
        outputs: dict[str, dict[str, int]] = {}
        runs: dict[str, list[dict[str, Any]]] = {}
        for side, method, (input_name, output_name), on_ray in abba(sides):
            out = work / f"{side}-out"
            side_args = {input_name: str(raw), output_name: str(out)}
            result = run_side(
                side, side_args, ray_env if on_ray else env, work, ray if on_ray else None
            )
            target = out if out.exists() else out.with_suffix(".parquet")
            runs.setdefault(method, []).append(result)
            outputs[f"{method} run {len(runs[method])}"] = output_summary(target)
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        for method, results in runs.items():
            rows.append({"stage": "preprocess", "method": method, **merged(results)})
        if len({json.dumps(o) for o in outputs.values()}) != 1:
            raise RuntimeError(f"preprocess outputs differ: {outputs}")
        shutil.rmtree(raw)
    for row in rows:
        row["text_bytes"] = text_bytes
    return rows


def memory_scaling(
    args: argparse.Namespace, work: Path, env: dict[str, str]
) -> list[dict[str, Any]]:
    """The flows at each size with the object store capped: peak memory, spilling, rows."""
    results = []
    with ray_head(work, "capped", object_store_bytes=int(args.object_store_gib * GIB)) as ray:
        env = join(ray, env, work)
        for size in args.memory_gb:
            num_rows, _ = sized(size)
            raw, out = work / f"mem-{size:g}-raw", work / f"mem-{size:g}-out"
            print(f"memory: {size:g} GB, object store {args.object_store_gib:g} GiB")
            gen = run_side("flow-generate", generate_args(raw, size), env, work, ray)
            pre = run_side(
                "flow-preprocess", {"input_uri": str(raw), "output_uri": str(out)}, env, work, ray
            )
            committed = manifest_rows(out)
            read = output_summary(out)["rows"]
            if not committed == read == num_rows:
                raise RuntimeError(f"{size} GB: {num_rows} rows in, {committed}/{read} out")
            results.append(
                {
                    "size_gb": size,
                    "rows": num_rows,
                    "rows_out": read,
                    "generate": gen,
                    "preprocess": pre,
                    "peak_memory_bytes": max(gen["peak_memory_bytes"], pre["peak_memory_bytes"]),
                    "spilled_bytes_total": ray.spilled_bytes(),
                }
            )
            shutil.rmtree(raw)
            shutil.rmtree(out)
    return results


def input_formats(
    args: argparse.Namespace, work: Path, env: dict[str, str]
) -> list[dict[str, Any]]:
    """The preprocess flow on the same rows as Parquet, .jsonl.gz and .jsonl.zst."""
    num_rows, num_files = sized(args.inputs_gb)
    rows: list[dict[str, Any]] = []
    outputs: dict[str, dict[str, int]] = {}
    with ray_head(work, "inputs", object_store_bytes=int(args.object_store_gib * GIB)) as ray:
        env = join(ray, env, work)
        print(
            f"inputs: {args.inputs_gb:g} GB ({num_rows} rows, {num_files} files), object "
            f"store {args.object_store_gib:g} GiB"
        )
        raw = work / "inputs-parquet"
        generate_checked(raw, args.inputs_gb, env, work, ray)
        sources = {"parquet": raw}
        for name, codec in JSONL_COPIES.items():
            print(f"  (converting to {name}, not counted)", flush=True)
            sources[name] = work / f"inputs-{name}"
            parquet_to_jsonl(raw, sources[name], codec)
        for name, source in sources.items():
            out = work / f"inputs-{name}-out"
            side_args = {"input_uri": str(source), "output_uri": str(out)}
            result = run_side("flow-preprocess", side_args, env, work, ray)
            committed, outputs[name] = manifest_rows(out), output_summary(out)
            if not committed == outputs[name]["rows"] == num_rows:
                raise RuntimeError(
                    f"{name}: {num_rows} rows in, {committed}/{outputs[name]['rows']} out"
                )
            rows.append(
                {
                    "format": name,
                    "size_gb": args.inputs_gb,
                    "input_bytes": input_bytes(source),
                    "text_bytes": num_rows * TEXT_LENGTH,
                    **result,
                }
            )
            shutil.rmtree(out)
            shutil.rmtree(source)
    if len({json.dumps(o) for o in outputs.values()}) != 1:
        raise RuntimeError(f"preprocess outputs differ by input format: {outputs}")
    return rows


def fixed_costs(work: Path, env: dict[str, str]) -> dict[str, Any]:
    """One flow run of one row beside the stack's floor (a bare prefect-ray flow whose
    task runs a one-row Ray Data job), alternating on a running Ray; and one run that
    starts its own local Ray."""
    tiny = {"num_rows": 1, "num_files": 1}
    print("fixed cost of a flow run, and the floor of prefect-ray + Ray Data")
    ours, floor = [], []
    with ray_head(work, "fixed") as ray:
        ray_env = join(ray, env, work)
        for i in range(FIXED_REPEATS):
            floor.append(run_side("floor-flow", {}, ray_env, work, ray)["seconds"])
            out = str(work / f"tiny-warm-{i}")
            ours.append(
                run_side("flow-generate", {"output_uri": out, **tiny}, ray_env, work, ray)[
                    "seconds"
                ]
            )
    cold = run_side(
        "flow-generate", {"output_uri": str(work / "tiny-cold"), **tiny}, env, work, None
    )
    return {
        "warm_ray_seconds": ours,
        "floor_seconds": floor,
        "own_local_ray_seconds": cold["seconds"],
        "own_local_ray_wall_seconds": cold["wall_seconds"],
    }


def dedup_quality(args: argparse.Namespace, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """Recall and false merges of near dedup per MinHash setting, on planted pairs."""
    print(f"dedup quality: {args.dedup_pairs} planted pairs, {len(DEDUP_SETTINGS)} settings")
    with ray_head(work, "dedup-quality") as ray:
        ray_env = join(ray, env, work)
        side_args = {"work": str(work), "pairs": args.dedup_pairs}
        return run_side("dedup-quality", side_args, ray_env, work, ray)


def dedup_scaling(
    args: argparse.Namespace, work: Path, env: dict[str, str]
) -> list[dict[str, Any]]:
    """The dedup flow, exact and near, and the preprocess flow on the same input, at two
    sizes with the object store capped, after one untimed run of each on a small input
    (so no timed run pays for starting workers): what each further GB costs per CPU side
    by side, and whether peak memory stays flat. The input is generated text with
    ``--dedup-duplicates`` of its rows copies of earlier rows, half exact and half near
    (generate's ``duplicates``), so the passes find and remove some."""
    rows = []
    capped = int(args.object_store_gib * GIB)
    with ray_head(work, "dedup", object_store_bytes=capped) as ray:
        ray_env = join(ray, env, work)
        warm = work / "dedup-warmup-raw"
        generate_checked(warm, 0.02, ray_env, work, ray, args.dedup_duplicates)
        for side, extra in DEDUP_SIDES:
            out = work / "dedup-warmup-out"
            run_side(
                side, {"input_uri": str(warm), "output_uri": str(out), **extra}, ray_env, work, ray
            )
            shutil.rmtree(out)
        shutil.rmtree(warm)
        for size in args.dedup_gb:
            num_rows, num_files = sized(size)
            print(
                f"dedup: {size:g} GB ({num_rows} rows, {num_files} files, "
                f"{args.dedup_duplicates:.0%} of rows copies of earlier ones)"
            )
            raw = work / f"dedup-{size:g}-raw"
            generate_checked(raw, size, ray_env, work, ray, args.dedup_duplicates)
            stats = json.loads((raw / "_manifest.json").read_text())["stats"]
            exact, near = stats["exact_copies"], stats["near_copies"]
            for side, extra in DEDUP_SIDES:
                out = work / "dedup-side-out"
                side_args = {"input_uri": str(raw), "output_uri": str(out), **extra}
                result = run_side(side, side_args, ray_env, work, ray)
                mode = extra.get("mode")
                row = {
                    "stage": f"dedup {mode}" if mode else "preprocess",
                    "method": OURS,
                    "size_gb": size,
                    "text_bytes": num_rows * TEXT_LENGTH,
                    "spilled_bytes_total": ray.spilled_bytes(),
                    "duplicate_share": args.dedup_duplicates,
                    **result,
                }
                if mode:
                    kept = manifest_rows(out)
                    removed = num_rows - kept
                    # Both modes find every exact copy, and remove no row that is no copy
                    # (two near copies of one row may happen to be equal: exact finds those).
                    if not exact <= removed <= exact + near:
                        raise RuntimeError(
                            f"dedup {mode} removed {removed}: {exact} exact, {near} near copies"
                        )
                    beside = Path(dataset.companion(storage.resolve(str(out)), "index").path)
                    index = sum(f.stat().st_size for f in beside.glob("part-*.parquet"))
                    row |= {
                        "planted_copies": exact + (near if mode == "near" else 0),
                        "removed": removed,
                        "index_bytes_per_row": index / kept,
                    }
                rows.append(row)
                shutil.rmtree(out)
            shutil.rmtree(raw)
    return rows


def mismatches(path: Path) -> int:
    """Rows of a cleaned output whose ``cleaned_text`` is not what Python's ``re`` (the
    seed's pattern, then ``str.lower``) makes of its ``text``: every row is checked."""
    import pyarrow.parquet as pq

    from tasks.steps.preprocess.clean import clean_text

    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    wrong = 0
    for file in files:
        for batch in pq.ParquetFile(file).iter_batches(65_536, columns=["text", "cleaned_text"]):
            texts, cleaned = batch.column(0).to_pylist(), batch.column(1).to_pylist()
            wrong += sum(
                clean_text(t or "") != (c or "") for t, c in zip(texts, cleaned, strict=True)
            )
    return wrong


def real_text_scaling(
    args: argparse.Namespace, work: Path, env: dict[str, str]
) -> list[dict[str, Any]]:
    """The dedup phase's sides, and Polars' preprocess, on real text (Korean and
    multilingual sentences that ship in packages, rows of about 1,000 characters:
    ``benchmarks/real_text.py``), where cleaning is CPU work rather than a copy. Every
    output row of each preprocess side is checked against Python's ``re``. Preprocess
    sides run A, B, B, A; each side once untimed on a small corpus first."""
    from benchmarks import real_text

    rows = []
    capped = int(args.object_store_gib * GIB)
    polars = ("polars-preprocess", {}, "preprocess", POLARS)
    sides = [("flow-preprocess", {"text_column": "text"}, "preprocess", OURS), polars]
    sides += [(side, extra, f"dedup {extra['mode']}", OURS) for side, extra in DEDUP_SIDES[1:]]
    with ray_head(work, "real-text", object_store_bytes=capped) as ray:
        ray_env = join(ray, env, work)

        def run(side: str, extra: dict[str, Any], raw: Path) -> tuple[dict[str, Any], Path]:
            out = work / "real-text-out"
            if side == "polars-preprocess":
                return run_side(side, {"input": str(raw), "output": str(out)}, env, work, None), (
                    out.with_suffix(".parquet")
                )
            side_args = {"input_uri": str(raw), "output_uri": str(out), **extra}
            return run_side(side, side_args, ray_env, work, ray), out

        def clear() -> None:
            for leftover in work.glob("real-text-out*"):
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()

        warm = work / "real-text-warmup"
        real_text.write_parquet(warm, 20_000_000)
        for side, extra, _, _ in sides:
            run(side, extra, warm)
            clear()
        shutil.rmtree(warm)
        for size in args.real_text_gb:
            raw = work / f"real-text-{size:g}"
            num_rows = real_text.write_parquet(raw, int(size * 1e9))
            text_bytes = sum(pq_text_bytes(file) for file in sorted(raw.glob("*.parquet")))
            print(f"real text: {size:g} GB ({num_rows} rows, {text_bytes / 1e9:.2f} GB of text)")
            order = abba(sides[:2]) + sides[2:]
            runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
            wrong: dict[tuple[str, str], int] = {}
            for side, extra, stage, method in order:
                result, out = run(side, extra, raw)
                if stage == "preprocess" and (stage, method) not in wrong:
                    wrong[(stage, method)] = mismatches(out)
                runs.setdefault((stage, method), []).append(result)
                clear()
            for (stage, method), results in runs.items():
                row = {"stage": stage, "method": method, "size_gb": size, **merged(results)}
                row |= {"text_bytes": text_bytes, "spilled_bytes_total": ray.spilled_bytes()}
                if (stage, method) in wrong:
                    row["mismatches"] = wrong[(stage, method)]
                rows.append(row)
            shutil.rmtree(raw)
    return rows


def pq_text_bytes(file: Path) -> int:
    """UTF-8 bytes of a Parquet file's ``text`` column."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    text = pq.read_table(file, columns=["text"]).column("text")
    return int(pc.sum(pc.binary_length(text)).as_py() or 0)


def filter_sides(
    args: argparse.Namespace, work: Path, env: dict[str, str], corpus: Path
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """datatrove's four classes and our kernel on the first MB of the real documents, each
    at its two sizes (sides in the order A, B, B, A), one process and one core each; and
    how their verdicts agree on the documents datatrove judged at its larger size."""
    sizes = {"filter-datatrove": args.filter_mb_datatrove, "filter-ours": args.filter_mb_ours}
    if max(args.filter_mb_ours) < max(args.filter_mb_datatrove):
        raise ValueError("our larger size must cover datatrove's, to compare their verdicts")
    runs: list[dict[str, Any]] = []
    verdicts: dict[str, Path] = {}
    for at, sides in enumerate((list(sizes), list(reversed(sizes)))):
        for side in sides:
            mb = sorted(sizes[side])[at]
            verdicts[side] = work / f"{side}-{mb:g}mb.parquet"
            side_args = {
                "corpus": str(corpus),
                "bytes": int(mb * 1e6),
                "warmup_bytes": FILTER_WARMUP_BYTES,
                "rows": FILTER_ROWS,
                "verdicts": str(verdicts[side]),
            }
            if side == "filter-ours":
                side_args["per_filter"] = True
            result = run_side(side, side_args, env, work, None)
            print(
                f"    {result['text_bytes'] / result['filter_seconds'] / 1e6:.2f} MB/s "
                f"({result['documents']} documents)",
                flush=True,
            )
            runs.append({"side": side, "size_mb": mb, **result})
    # The larger runs came last: our verdicts cover every document datatrove judged.
    agreement = filter_compare.agreement(verdicts["filter-datatrove"], verdicts["filter-ours"])
    for name, a in agreement["filters"].items():
        print(f"    {name}: {a['agreement']:.2%} agree, {a['disagreements']} disagreements")
    if chain := agreement.get("chain"):
        print(
            f"    FineWeb's chain: {chain['agreement']:.2%} same verdict and first rule "
            f"({chain['same_verdict']:.2%} same verdict), {chain['disagreements']} disagreements"
        )
    return runs, agreement


def filter_scaling(
    args: argparse.Namespace, work: Path, env: dict[str, str], docs: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """The filter flow on the real documents at each size, files of ~100 MB, with the
    object store capped and language identification off: peak memory and MB/s; then the
    preprocess flow on the same files (the yardstick of the filter's speed)."""
    rows = []
    capped = int(args.object_store_gib * GIB)
    with ray_head(work, "filter", object_store_bytes=capped) as ray:
        ray_env = join(ray, env, work)
        for size in args.filter_memory_gb:
            raw, out = work / f"filter-{size:g}-raw", work / "filter-out"
            print(f"  (writing {size:g} GB of real documents, not counted)", flush=True)
            written = real_docs.write_parquet(docs, raw, int(size * 1e9), FILE_MB * 10**6)
            print(
                f"filter flow: {size:g} GB ({written['rows']} rows, {written['files']} files), "
                f"object store {args.object_store_gib:g} GiB"
            )
            side_args = {
                "input_uri": str(raw),
                "output_uri": str(out),
                "filters": filter_compare.options_dict(),
            }
            result = run_side("flow-filter", side_args, ray_env, work, ray)
            stats = json.loads((out / "_manifest.json").read_text())["filters"]
            if not stats["rows_in"] == stats["kept"] + stats["rejected"] == written["rows"]:
                raise RuntimeError(f"filter {size} GB: {written['rows']} rows in, {stats}")
            rows.append(
                {
                    "stage": "filter",
                    "method": OURS,
                    "size_gb": size,
                    "text_bytes": written["text_bytes"],
                    "rows": written["rows"],
                    "kept": stats["kept"],
                    "rejected": stats["rejected"],
                    "spilled_bytes_total": ray.spilled_bytes(),
                    **result,
                }
            )
            shutil.rmtree(out)
            # The yardstick of issue 35: the preprocess flow on the same files.
            print(f"preprocess flow: the same {size:g} GB", flush=True)
            side_args = {"input_uri": str(raw), "output_uri": str(out)}
            result = run_side("flow-preprocess", side_args, ray_env, work, ray)
            rows.append(
                {
                    "stage": "preprocess",
                    "method": OURS,
                    "size_gb": size,
                    "text_bytes": written["text_bytes"],
                    "rows": written["rows"],
                    **result,
                }
            )
            shutil.rmtree(out)
            shutil.rmtree(raw)
    return rows


def filter_phase(args: argparse.Namespace, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """The filter step against datatrove's filter classes, its flow's memory, long texts."""
    docs = real_docs.documents()
    corpus = real_docs.summary(docs)
    print(
        f"filter: {corpus['documents']} distinct real documents, "
        f"{corpus['text_bytes'] / 1e6:.1f} MB, repeated to each size"
    )
    path = work / "filter-corpus"
    largest = max([*args.filter_mb_datatrove, *args.filter_mb_ours]) * 1e6 + FILTER_WARMUP_BYTES
    real_docs.write_parquet(docs, path, int(largest), FILE_MB * 10**6)
    sides, agreement = filter_sides(args, work, env, path)
    shutil.rmtree(path)
    results: dict[str, Any] = {
        "versions": {p: metadata.version(p) for p in ("datatrove", "spacy")},
        "corpus": corpus,
        "sides": sides,
        "agreement": agreement,
    }
    korean = []
    for mb in args.filter_mb_korean:
        print(f"filter kernel, Korean: {mb:g} MB of konlpy's paragraphs", flush=True)
        korean_args = {"bytes": int(mb * 1e6), "warmup_bytes": 200_000, "rows": FILTER_ROWS}
        korean.append({"size_mb": mb, **run_side("filter-korean", korean_args, env, work, None)})
    results["korean"] = korean
    if args.filter_long_rows:
        print(f"filter kernel: {args.filter_long_rows} texts of {LONG_CHARS} characters")
        long_args = {"rows": args.filter_long_rows, "chars": LONG_CHARS}
        results["long"] = run_side("filter-long", long_args, env, work, None)
    if args.decontaminate_items:
        print(f"decontamination index: {args.decontaminate_items:,} items", flush=True)
        index_args = {"items": args.decontaminate_items}
        results["index"] = run_side("decontaminate-index", index_args, env, work, None)
    results["flow"] = filter_scaling(args, work, env, docs) if args.filter_memory_gb else []
    return results


# The tokenize phase: the vocabulary of the tokenizer trained here on the first MB of the
# real documents, and the files the flow reads (four per 100 MB, so both CPUs work).
TOKENIZE_VOCABULARY = 32000
TOKENIZE_TRAIN_BYTES = 2_000_000
TOKENIZE_FILE_MB = 25


def tokenize_phase(args: argparse.Namespace, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """The tokenize flow against the ``tokenizers`` library's own ``encode_batch`` in one
    process, on the same real documents at two sizes each (sides A, B, B, A): marginal
    tokens per second, per CPU each side used."""
    from tests.helpers import train_tokenizer

    docs = real_docs.documents()
    sample = [text for _, text in real_docs.repeated(docs, TOKENIZE_TRAIN_BYTES)]
    folder = work / "tokenizer"
    folder.mkdir()
    tokenizer = train_tokenizer(folder, sample, vocab_size=TOKENIZE_VOCABULARY)
    corpora = {}
    for mb in args.tokenize_mb:
        corpora[mb] = work / f"tokenize-{mb:g}mb"
        real_docs.write_parquet(docs, corpora[mb], int(mb * 1e6), TOKENIZE_FILE_MB * 10**6)
    runs: list[dict[str, Any]] = []
    with ray_head(work, "tokenize") as ray:
        ray_env = join(ray, env, work)
        for at, sides in enumerate(
            (["tokenize-library", "flow-tokenize"], ["flow-tokenize", "tokenize-library"])
        ):
            for side in sides:
                mb = sorted(args.tokenize_mb)[at]
                out = work / "tokenized"
                side_args = {"input_uri": str(corpora[mb]), "tokenizer": str(tokenizer)}
                if side == "flow-tokenize":
                    side_args |= {"output_uri": str(out), "text_column": "text"}
                result = run_side(side, side_args, ray_env, work, ray)
                if side == "flow-tokenize":
                    stats = json.loads((out / "_manifest.json").read_text())["stats"]
                    result |= {"tokens": stats["tokens"], "cpus": os.cpu_count() or 1}
                    shutil.rmtree(out)
                print(f"    {result['tokens'] / result['seconds']:.0f} tokens/s", flush=True)
                runs.append({"side": side, "size_mb": mb, **result})
    for path in corpora.values():
        shutil.rmtree(path)
    return {
        "versions": {"tokenizers": metadata.version("tokenizers")},
        "vocabulary": TOKENIZE_VOCABULARY,
        "sides": runs,
    }


def run_phases(args: argparse.Namespace, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """The results of the phases asked for; one not run leaves an empty list (or no key)."""
    phases = set(args.phases)
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "phases": [p for p in PHASES if p in phases],
        "size_gb": args.size_gb,
        "kernels": kernel_limits(work, env) if "kernels" in phases else {},
        "marginal": marginal(args, work, env) if "marginal" in phases else [],
        "comparison": compare(args, work, env) if "compare" in phases else [],
        "memory": memory_scaling(args, work, env) if "memory" in phases and args.memory_gb else [],
        "inputs": input_formats(args, work, env) if "inputs" in phases and args.inputs_gb else [],
    }
    if "fixed" in phases:
        results["fixed_cost"] = fixed_costs(work, env)
    if "dedup-quality" in phases:
        results["dedup_quality"] = dedup_quality(args, work, env)
    if "dedup" in phases:
        results["dedup"] = dedup_scaling(args, work, env)
    if "real-text" in phases:
        results["real_text"] = real_text_scaling(args, work, env)
    if "filter" in phases:
        results["filter"] = filter_phase(args, work, env)
    if "tokenize" in phases:
        results["tokenize"] = tokenize_phase(args, work, env)
    return results


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    versions = {p: metadata.version(p) for p in ("ray", "prefect", "pyarrow", "polars", "pandas")}
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory / GIB, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **versions,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--size-gb", type=float, default=2.0, help="text end to end (GB); the seed's is 10"
    )
    parser.add_argument("--sizes-gb", type=float, nargs=2, default=[2.0, 4.0], help="marginal")
    parser.add_argument(
        "--seed-sizes-gb", type=float, nargs=2, default=[0.5, 1.0], help="the seed's marginal"
    )
    parser.add_argument("--memory-gb", type=float, nargs="*", default=[1.0, 4.0])
    parser.add_argument(
        "--inputs-gb", type=float, default=1.0, help="text per input format (GB); 0 skips"
    )
    parser.add_argument("--object-store-gib", type=float, default=1.0)
    parser.add_argument(
        "--dedup-gb", type=float, nargs=2, default=[1.0, 4.0], help="dedup flow sizes"
    )
    parser.add_argument(
        "--real-text-gb", type=float, nargs=2, default=[0.5, 2.0], help="real-text phase sizes"
    )
    parser.add_argument(
        "--dedup-pairs", type=int, default=4000, help="planted pairs for dedup quality"
    )
    parser.add_argument(
        "--dedup-duplicates",
        type=float,
        default=0.3,
        help="share of the dedup flow's input rows that copy earlier rows (half exact, half near)",
    )
    for flag, sizes, what in (
        ("datatrove", [4.0, 12.0], "real documents datatrove's filter classes judge (slow)"),
        ("ours", [40.0, 120.0], "real documents our rules kernel judges"),
        ("korean", [1.0, 3.0], "konlpy's Korean the filter's defaults judge (Kiwi: slow)"),
    ):
        parser.add_argument(
            f"--filter-mb-{flag}", type=float, nargs=2, default=sizes, help=f"MB of {what}"
        )
    parser.add_argument(
        "--filter-memory-gb",
        type=float,
        nargs="*",
        default=[1.0, 4.0],
        help="filter flow sizes for peak memory (none skips); about 15 minutes on 2 cores",
    )
    parser.add_argument(
        "--filter-long-rows",
        type=int,
        default=FILTER_ROWS,
        help=f"texts of {LONG_CHARS} characters in one kernel batch (0 skips)",
    )
    parser.add_argument(
        "--decontaminate-items",
        type=int,
        default=1_000_000,
        help="evaluation items whose decontamination index is built and measured (0 skips)",
    )
    parser.add_argument(
        "--tokenize-mb",
        type=float,
        nargs=2,
        default=[100.0, 300.0],
        help="MB of real documents each tokenize side encodes",
    )
    parser.add_argument(
        "--touch-memory-keep-gib",
        type=float,
        default=2.0,
        help="before the phases, write once over the available memory less this much",
    )
    parser.add_argument(
        "--no-touch-memory",
        action="store_true",
        help="skip that pass (the ratios may then measure the VM's first writes)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument("--skip-seed", action="store_true", help="leave out the slow baseline")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    parser.add_argument(
        "--phases", nargs="+", choices=PHASES, default=list(PHASES), help="default: all"
    )
    args = parser.parse_args(argv)
    if set(args.phases) != set(PHASES) and args.out == parser.get_default("out"):
        # benchmarks/results holds the last full run, which the README quotes.
        parser.error("a run of some phases needs --out: it would replace the full results")
    # A SIGTERM unwinds like Ctrl-C, so the server and Ray heads started here are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    work = Path(tempfile.mkdtemp(prefix="bench-", dir=args.work_dir))
    started = time.perf_counter()
    try:
        with prefect_server(work) as env:
            touched = None
            if not args.no_touch_memory:
                print("touching the available memory once (no side meets memory the VM never had)")
                touched = memory_state.touch_available_memory(args.touch_memory_keep_gib)
                print(f"  {memory_state.markdown(touched)}", flush=True)
            results = run_phases(args, work, env)
            if touched is not None:
                results["memory_state"] = touched
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    report.finish(results, args.out)


if __name__ == "__main__":
    main()
