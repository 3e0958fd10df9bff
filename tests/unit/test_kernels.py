"""tasks/steps/kernels.py reaches every Numba kernel the steps call from Python, so that
``make run`` and ``make test`` compile each one into its cache before any flow runs."""

from __future__ import annotations

import numba

from tasks.steps import kernels
from tasks.steps.dedup import sketch
from tasks.steps.filter import decontaminate, lines, ngrams, split
from tasks.steps.preprocess import utf8

# The compiled functions the steps' Python code calls (each compiles what it calls).
ENTRY_POINTS = {
    split: ("_rows", "copied", "_hashes", "_row_totals", "_distinct_of"),
    ngrams: ("repetition",),
    lines: ("_count", "_lines", "_repeated", "_marks", "_c4_marks", "_chunk_counts", "_sentences"),
    decontaminate: ("_row_words", "_ngram_keys", "_matches"),
    sketch: ("_sketch", "_stored", "_band_keys", "_densified", "_similarity"),
    utf8: ("_clean",),
}


def test_compile_all_compiles_every_kernel_the_steps_call():
    kernels.compile_all()
    for module, names in ENTRY_POINTS.items():
        for name in names:
            kernel = getattr(module, name)
            assert isinstance(kernel, numba.core.registry.CPUDispatcher), name
            assert kernel.signatures, f"{module.__name__}.{name} was not compiled"
