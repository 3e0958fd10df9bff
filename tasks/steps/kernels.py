"""Compile the steps' Numba kernels into Numba's cache, once.

Numba compiles a kernel on its first call in a process and, with ``cache=True``, keeps
the result beside the module (``__pycache__``), where every later process of the same
checkout loads it. ``make run`` and ``make test`` call :func:`compile_all` first, so that
the flow runs' and the suite's many processes load the kernels instead of compiling
them side by side (the filter's word split alone takes about 12 s of CPU to compile).
Each node of a cluster compiles once per checkout the first time a part needs it.
"""

from __future__ import annotations

import time

import pyarrow as pa


def compile_all() -> float:
    """Call every kernel once on a small input; returns the seconds it took."""
    from tasks.steps.dedup import sketch
    from tasks.steps.filter import decontaminate, lines
    from tasks.steps.filter.batch import Batch
    from tasks.steps.filter.options import FilterOptions
    from tasks.steps.filter.rules import evaluate
    from tasks.steps.preprocess.clean import clean_batch

    started = time.monotonic()
    texts = pa.array(["Hello, world... (U.S.) don't x-ray 안녕 세계", "a b a b a b", None])
    evaluate(texts, FilterOptions(language=None))  # every rule, on the compiled passes
    _ = Batch(texts).words.values  # the words as strings, which the rules need no more
    filled = pa.array(["One sentence. Two here!", "a b a b a b", ""])
    lines.sentences(filled)  # C4's kept lines (the texts above keep none)
    lines.chunk_counts(filled)  # FineWeb's chunks of C4's text
    index = decontaminate.build(["x"], [decontaminate.ngram_keys(filled, 2)[0]], 2)
    index.matches(texts)
    clean_batch(pa.table({"text": texts}))
    found = sketch.sketch(texts, bins=112, bands=14)
    sketch.similarity(found.tags[:1], found.tags[1:2])
    sketch.densified(found.tags)
    return time.monotonic() - started


if __name__ == "__main__":
    print(f"Numba kernels compiled or loaded from their cache in {compile_all():.1f} s")
