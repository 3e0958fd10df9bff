"""The layout holds: kernels free of Prefect and Ray, and no generic module naming a
step, so that adding a step touches none of the modules that hold the guarantees."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KERNELS = [
    "tasks.steps.generate.synth",
    "tasks.steps.preprocess.clean",
    "tasks.steps.preprocess.counters",
    "tasks.steps.dedup.minhash",
]


def test_kernels_import_neither_prefect_nor_ray():
    code = (
        f"import sys; import {', '.join(KERNELS)}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'ray'}))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[]"


GENERIC = ["tasks/store", "tasks/cluster", "tasks/orchestration", "tasks/nightly"]
# The pipeline, its backfill and what a pipeline step is know steps only through the
# steps union (flows/steps.py) and each step's own class.
GENERIC_FLOWS = [
    "flows/pipeline.py",
    "flows/backfill.py",
    "flows/pipeline_step.py",
    "flows/runner.py",
    "flows/runs.py",
]
STEP_NAME = re.compile(
    r"""["'](generate|preprocess|filter|dedup|tokenize|preprocessed|filtered|deduped|"""
    r"""tokenized)["']"""
)


def test_no_generic_module_names_a_step():
    """Step names appear only inside their own step packages: a new step touches none
    of the modules that hold the guarantees."""
    generic = [p for d in GENERIC for p in sorted((ROOT / d).rglob("*.py"))]
    generic += [ROOT / "tasks/steps/skeleton.py", ROOT / "tasks/steps/reading.py"]
    generic += [ROOT / path for path in GENERIC_FLOWS]
    found = [
        f"{path.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}: {m.group()}"
        for path in generic
        for text in [path.read_text()]
        for m in STEP_NAME.finditer(text)
    ]
    assert not found, "\n".join(found)
