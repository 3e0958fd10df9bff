"""The bytes `make run` commits do not change when the code is reorganised.

The digests in ``tests/data/make_run_digests.json`` were recorded before the step
skeleton (issue 24) replaced the stages' hand-written copies of it: the pipeline as
``pipeline/default`` runs it, then ``dedup/default`` (near) and an exact dedup of its
preprocessed dataset. Recorded again when pipeline/default began generating a tenth of
its rows as copies (issue 26), so that dedup/default has something to remove; and when
the signature index moved beside its dataset and near dedup's sketch changed (issue
33: raw, preprocessed and exact dedup's parts kept their bytes, near dedup removes two
rows more, those at or above its threshold it had missed). Set
``RECORD_DIGESTS=1`` to record them again after a change that is meant to change the
bytes (and say why in the commit).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from flows.dedup import dedup
from flows.pipeline import pipeline
from tests.helpers import committed_bytes

pytestmark = pytest.mark.usefixtures("flows_env")

RECORDED = Path(__file__).parent / "data" / "make_run_digests.json"


def committed_digests(root: Path) -> dict[str, str]:
    """sha256 of every file the committed dataset at ``root`` lists, and of its
    companions' files as ``{companion}:{path}``."""
    return {path: hashlib.sha256(data).hexdigest() for path, data in committed_bytes(root).items()}


def test_make_runs_datasets_are_byte_for_byte_as_recorded(tmp_path):
    bucket = tmp_path / "local-bucket"
    # prefect.yaml's pipeline/default and dedup/default, and dedup in exact mode.
    pipeline(str(bucket), num_rows=20000, num_files=4, duplicates=0.1)
    dedup(str(bucket / "preprocessed"), str(bucket / "deduped"), mode="near")
    dedup(str(bucket / "preprocessed"), str(bucket / "exact"), mode="exact")
    found = {
        name: committed_digests(bucket / name)
        for name in ("raw", "preprocessed", "deduped", "exact")
    }
    if os.environ.get("RECORD_DIGESTS") == "1":
        RECORDED.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")
    assert found == json.loads(RECORDED.read_text())
