"""One benchmark side per process: ``python -m benchmarks.drivers SIDE JSON_ARGS``.

Each side runs as its own driver, the way the seed submits a Ray job, and prints one
JSON line with the seconds it took from connecting to Ray (or starting the flow run)
to the committed output. Imports are excluded for every side alike; Ray start-up is
excluded unless the side starts its own Ray; Prefect's per-run overhead is included.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

Side = Callable[[dict[str, Any]], dict[str, float] | None]


def ray_data_warmup(args: dict[str, Any]) -> None:
    """One trivial Ray Data job, so a fresh head has what a running cluster has.

    The first Ray Data job on a cluster also starts Ray Data's own long-lived actors
    (statistics, autoscaling coordinator); whichever side ran first would pay for them.
    """
    import ray

    ray.init()
    ray.data.range(2, override_num_blocks=2).map(lambda row: row).take_all()


def seed_generate(args: dict[str, Any]) -> None:
    import ray

    from benchmarks import seed_method

    ray.init()
    seed_method.seed_generate(args["output"], args["num_batches"], args["num_files"])


def seed_preprocess(args: dict[str, Any]) -> None:
    import ray

    from benchmarks import seed_method

    ray.init()
    seed_method.seed_preprocess(args["input"], args["output"])


def polars_preprocess(args: dict[str, Any]) -> None:
    import polars as pl

    from tasks.steps.preprocess.clean import SEED_PATTERN

    # Rust's regex \s is Unicode White_Space, a hair narrower than Python's isspace()
    # (it lacks \x1c-\x1f); the benchmark's text has neither.
    pl.scan_parquet(f"{args['input']}/*.parquet").with_columns(
        pl.col("text").str.replace_all(SEED_PATTERN, "").str.to_lowercase().alias("cleaned_text")
    ).sink_parquet(f"{args['output']}.parquet", compression="snappy")


def flow_generate(args: dict[str, Any]) -> None:
    from flows.generate import generate

    generate(**args)


def flow_preprocess(args: dict[str, Any]) -> None:
    from flows.preprocess import preprocess

    preprocess(**args)


def flow_dedup(args: dict[str, Any]) -> None:
    from flows.dedup import dedup

    dedup(**args)


def flow_filter(args: dict[str, Any]) -> None:
    from flows.filter import filter_documents

    filter_documents(**args)


def _real_batches(args: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """The first ``bytes`` of the written real documents, and the first ``warmup_bytes``
    (judged untimed first), in batches of ``rows``."""
    from pathlib import Path

    from benchmarks.real_docs import first_bytes

    corpus, rows = Path(args["corpus"]), args["rows"]
    return (
        list(first_bytes(corpus, args["bytes"], rows)),
        list(first_bytes(corpus, args["warmup_bytes"], rows)),
    )


def filter_datatrove(args: dict[str, Any]) -> dict[str, Any]:
    """datatrove's four filter classes, one document at a time, on one core
    (benchmarks.filter_compare); verdicts into ``args["verdicts"]``."""
    from pathlib import Path

    from benchmarks.filter_compare import run_datatrove

    batches, warmup = _real_batches(args)
    return run_datatrove(batches, warmup, Path(args["verdicts"]))


def filter_ours(args: dict[str, Any]) -> dict[str, Any]:
    """Our rules kernel over Arrow batches on one core (benchmarks.filter_compare);
    verdicts into ``args["verdicts"]``, then each filter alone if ``per_filter``."""
    from pathlib import Path

    import pyarrow as pa

    from benchmarks.filter_compare import run_ours

    pa.set_cpu_count(1)  # one core: Arrow's thread pool would spread the work
    pa.set_io_thread_count(1)
    batches, warmup = _real_batches(args)
    return run_ours(batches, warmup, Path(args["verdicts"]), args["per_filter"])


def filter_korean(args: dict[str, Any]) -> dict[str, Any]:
    """konlpy's Korean paragraphs, repeated to ``bytes``: preprocess's cleaning and the
    filter's defaults over them on one core (benchmarks.filter_compare)."""
    import pyarrow as pa

    from benchmarks.filter_compare import korean_batches, time_stages

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    time_stages(korean_batches(args["warmup_bytes"], args["rows"]))
    batches = korean_batches(args["bytes"], args["rows"])
    stages = time_stages(batches)
    text_bytes = sum(
        pa.compute.sum(pa.compute.binary_length(b.column("text"))).as_py() for b in batches
    )
    return {
        "stages_seconds": stages,
        "text_bytes": text_bytes,
        "documents": sum(b.num_rows for b in batches),
    }


def decontaminate_index(args: dict[str, Any]) -> dict[str, Any]:
    """The decontamination index of ``items`` evaluation-like items: its bytes and the
    peak memory of building it (benchmarks.filter_compare)."""
    from benchmarks.filter_compare import index_memory

    return index_memory(args["items"])


def filter_long(args: dict[str, Any]) -> dict[str, Any]:
    """One batch of ``rows`` real texts of ``chars`` characters each through our rules
    kernel: the peak resident memory it takes (benchmarks.filter_compare)."""
    import pyarrow as pa

    from benchmarks.filter_compare import long_batch_memory, long_documents
    from benchmarks.real_docs import documents

    pa.set_cpu_count(1)
    return long_batch_memory(long_documents(documents(), args["rows"], args["chars"]))


def dedup_quality(args: dict[str, Any]) -> dict[str, Any]:
    """Recall and false merges of near dedup per MinHash setting (benchmarks.dedup_quality)."""
    from pathlib import Path

    import ray

    from benchmarks.dedup_quality import measure

    ray.init()
    return {"settings": measure(Path(args["work"]), args["pairs"])}


def kernels(args: dict[str, Any]) -> dict[str, float]:
    """Each stage's per-part work on one core of a plain process, no Ray, no Prefect.

    The same functions a part runs (``Generate.write_part``, ``Preprocess.write_part``):
    generate ``rows`` rows and write them as one part, then read that part back, clean
    it and write it; ``repeats`` parts each, after an untimed small run of each. The
    median part counts: the first full-size part of a process also pays for growing its
    heap (measured 0.6-0.7 s against 0.3 s for the parts after it), which a worker
    running many parts pays once. Returns MB/s of text per core: times the CPUs, the
    most a stage could do on this machine.
    """
    from pathlib import Path

    import pyarrow as pa

    from tasks.cluster import worker
    from tasks.steps.generate import step as generate
    from tasks.steps.generate import synth
    from tasks.steps.preprocess import step as preprocess
    from tasks.store.storage import resolve

    worker.setup()  # as a Ray worker of a flow run sets up (tasks/cluster/worker.py)
    pa.set_cpu_count(1)  # one core: Arrow's thread pool would spread the work
    pa.set_io_thread_count(1)
    work, rows, length = Path(args["work"]), args["rows"], args["text_length"]

    def generated(name: str, n: int, seed: int = 0) -> tuple[str, float]:
        spec = generate.GeneratePart(resolve(str(work / name)), 0, 0, n, seed, length)
        (work / name).mkdir(parents=True)
        started = time.perf_counter()
        generate.Generate.write_part(spec)
        return str(work / name / "part-00000.parquet"), time.perf_counter() - started

    def cleaned(name: str, part: str, n: int) -> float:
        schema = preprocess.output_schema(synth.SCHEMA, part)
        spec = preprocess.CleanPart(
            resolve(str(work / name)),
            0,
            [(resolve(part), 0, n)],
            "parquet",
            schema,
            synth.SCHEMA,
            "text",
            "snappy",
            1024,
        )
        (work / name).mkdir(parents=True)
        started = time.perf_counter()
        preprocess.Preprocess.write_part(spec)
        return time.perf_counter() - started

    warm, _ = generated("warm-raw", 2048)
    cleaned("warm-clean", warm, 2048)
    generate_seconds, clean_seconds = [], []
    for i in range(args["repeats"]):
        part, seconds = generated(f"raw-{i}", rows, seed=i)
        generate_seconds.append(seconds)
        clean_seconds.append(cleaned(f"clean-{i}", part, rows))
    text_mb = rows * length / 1e6
    return {
        "generate_mb_per_s_per_core": text_mb / statistics.median(generate_seconds),
        "clean_mb_per_s_per_core": text_mb / statistics.median(clean_seconds),
        "generate_seconds": generate_seconds,
        "clean_seconds": clean_seconds,
    }


def flow_tokenize(args: dict[str, Any]) -> None:
    from flows.tokenize import tokenize

    tokenize(**args)


def tokenize_library(args: dict[str, Any]) -> dict[str, Any]:
    """The ``tokenizers`` library alone: ``encode_batch`` over the input's texts in one
    process, on as many threads as it takes by itself, ids read out as the flow reads
    them. Reading the texts and a first batch are not timed."""
    import os
    from pathlib import Path

    import pyarrow.parquet as pq
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(args["tokenizer"])
    files = sorted(Path(args["input_uri"]).glob("*.parquet"))
    texts = [t for f in files for t in pq.read_table(f, columns=["text"])["text"].to_pylist()]
    tokenizer.encode_batch(texts[:256], add_special_tokens=False)
    started = time.perf_counter()
    tokens = 0
    for start in range(0, len(texts), 1024):  # the flow's batch size
        batch = tokenizer.encode_batch(texts[start : start + 1024], add_special_tokens=False)
        tokens += sum(len(encoding.ids) for encoding in batch)
    seconds = time.perf_counter() - started
    threads = int(os.environ.get("RAYON_NUM_THREADS") or os.cpu_count() or 1)
    return {"seconds": seconds, "tokens": tokens, "cpus": threads}


def floor_flow(args: dict[str, Any]) -> None:
    """The stack's floor: a bare flow on prefect-ray's RayTaskRunner whose one task runs
    a one-row Ray Data job, on the Ray in ``RAY_ADDRESS`` (benchmarks/floor.py)."""
    from benchmarks.floor import bare_flow

    bare_flow()


SIDES: dict[str, tuple[Side, list[str]]] = {
    # side: (function, modules imported before the clock starts)
    "ray-data-warmup": (ray_data_warmup, ["ray", "ray.data"]),
    "seed-generate": (seed_generate, ["ray", "ray.data", "pandas", "benchmarks.seed_method"]),
    "seed-preprocess": (seed_preprocess, ["ray", "ray.data", "pandas", "benchmarks.seed_method"]),
    "polars-preprocess": (polars_preprocess, ["polars", "tasks.steps.preprocess.clean"]),
    "flow-generate": (flow_generate, ["flows.generate"]),
    "flow-preprocess": (flow_preprocess, ["flows.preprocess"]),
    "flow-dedup": (flow_dedup, ["flows.dedup"]),
    "flow-filter": (flow_filter, ["flows.filter"]),
    "filter-datatrove": (
        filter_datatrove,
        ["datatrove.pipeline.filters", "spacy", "benchmarks.filter_compare"],
    ),
    "filter-ours": (filter_ours, ["tasks.steps.filter.rules", "benchmarks.filter_compare"]),
    "filter-korean": (filter_korean, ["tasks.steps.filter.rules", "benchmarks.filter_compare"]),
    "filter-long": (filter_long, ["tasks.steps.filter.rules", "benchmarks.filter_compare"]),
    "decontaminate-index": (
        decontaminate_index,
        ["tasks.steps.filter.decontaminate", "benchmarks.filter_compare"],
    ),
    "dedup-quality": (dedup_quality, ["ray", "ray.data", "benchmarks.dedup_quality"]),
    "kernels": (kernels, ["tasks.steps.generate.step", "tasks.steps.preprocess.step"]),
    "floor-flow": (floor_flow, ["benchmarks.floor"]),
    "flow-tokenize": (flow_tokenize, ["flows.tokenize"]),
    "tokenize-library": (tokenize_library, ["tokenizers", "pyarrow.parquet"]),
}


def main() -> None:
    side, args = sys.argv[1], json.loads(sys.argv[2])
    function, modules = SIDES[side]
    for module in modules:
        __import__(module)
    started = time.perf_counter()
    extra = function(args) or {}
    print(json.dumps({"seconds": time.perf_counter() - started, **extra}), flush=True)


if __name__ == "__main__":
    main()
