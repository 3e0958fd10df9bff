"""One benchmark side per process: ``python -m benchmarks.drivers SIDE JSON_ARGS``.

Each side runs as its own driver, the way the seed submits a Ray job, and prints one
JSON line with the seconds it took from connecting to Ray (or starting the flow run)
to the committed output. Imports are excluded for every side alike; Ray start-up is
excluded unless the side starts its own Ray; Prefect's per-run overhead is included.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

Side = Callable[[dict[str, Any]], None]


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

    from tasks.clean import SEED_PATTERN

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


SIDES: dict[str, tuple[Side, list[str]]] = {
    # side: (function, modules imported before the clock starts)
    "ray-data-warmup": (ray_data_warmup, ["ray", "ray.data"]),
    "seed-generate": (seed_generate, ["ray", "ray.data", "pandas", "benchmarks.seed_method"]),
    "seed-preprocess": (seed_preprocess, ["ray", "ray.data", "pandas", "benchmarks.seed_method"]),
    "polars-preprocess": (polars_preprocess, ["polars", "tasks.clean"]),
    "flow-generate": (flow_generate, ["flows.generate"]),
    "flow-preprocess": (flow_preprocess, ["flows.preprocess"]),
}


def main() -> None:
    side, args = sys.argv[1], json.loads(sys.argv[2])
    function, modules = SIDES[side]
    for module in modules:
        __import__(module)
    started = time.perf_counter()
    function(args)
    print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)


if __name__ == "__main__":
    main()
