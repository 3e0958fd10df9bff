"""The dedup flow killed in the middle of each of its passes, then rerun: the rerun
commits exactly what an uninterrupted run does, and nothing before it looks committed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.steps.dedup import grouping, step
from tasks.steps.dedup.step import INDEX, STAGING
from tests.helpers import assert_committed, committed_bytes, dedup_dataset, kill_flow_when
from tests.integration.test_dedup_dataset import corpus

pytestmark = pytest.mark.usefixtures("flows_env")

# The flow run's own process on the session's Ray, with the test write faults installed
# in its workers (tests.write_faults): a ``part-N.parquet.slow`` request holds a part.
KILLED = """
import os, sys
import ray
from flows.runner import code_runtime_env
faults = {
    "worker_process_setup_hook": "tests.write_faults.install",
    "env_vars": {"PIPELINE_TEST_WRITE_FAULTS": os.environ["PIPELINE_TEST_WRITE_FAULTS"]},
}
ray.init(runtime_env={**code_runtime_env(), **faults})
from flows.dedup import dedup
dedup(sys.argv[1], sys.argv[2], mode="near")
"""

# Parts 0 and 1 of the corpus's three start together on the session's two CPUs: part 1
# is held (it sleeps before writing) while part 0 is written.
HELD = "part-00001.parquet"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, ray_cluster) -> tuple[str, Path]:
    """The corpus and its output from a run nobody interrupted."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    source, *_ = corpus(tmp, seed=3)
    dedup_dataset(source, str(tmp / "out"), mode="near")
    return source, tmp / "out"


@pytest.mark.parametrize("phase", ["signatures", "groups", "filter"])
def test_a_run_killed_mid_phase_then_rerun_commits_the_uninterrupted_output(
    phase, tmp_path, uninterrupted, ray_cluster, faults, monkeypatch
):
    source, reference = uninterrupted
    out = tmp_path / "out"
    staged, written = out / STAGING / HELD, out / HELD

    request, held = faults / f"{HELD}.slow", faults / f"{HELD}.slow.fired"

    def ready(log: str) -> bool:
        if phase == "groups":
            return "pass 2/3" in log and (faults / "grouping.slow.fired").exists()
        if phase == "filter" and "pass 2/3" in log and not (request.exists() or held.exists()):
            request.write_text("120")  # hold part 1 of pass 3 (its signatures are written)
        first = out / STAGING if phase == "signatures" else out
        return (first / "part-00000.parquet").exists() and held.exists()

    if phase == "signatures":
        request.write_text("120")
    if phase == "groups":  # hold the first band shard, wherever the grouping runs
        (faults / "grouping.slow").write_text("120")
    kill_flow_when(
        KILLED.replace("sys.argv[1], sys.argv[2]", f"{source!r}, {str(out)!r}"),
        str(out),
        ray_cluster.address_info["gcs_address"],
        tmp_path / "killed.log",
        ready,
        reads=(source,),
    )
    # Killed where the test meant to, and nothing looks committed.
    assert not (out / "_manifest.json").exists() and (out / "_writing.json").exists()
    if phase == "signatures":
        assert not staged.exists()
    else:
        assert staged.exists() and not written.exists()
    if phase == "groups":
        assert not list(out.glob("part-*.parquet"))

    if phase == "groups":
        # The rerun also groups differently: on Ray, the 150 rows' 2,400 band rows in
        # shards of 100 rows, and verified in rounds of 10 pairs (the reference grouped
        # them in its own process, in one shard). The output may not depend on that.
        monkeypatch.setattr(step, "SMALL_ROWS", 0)
        monkeypatch.setattr(grouping, "SHARD_ROWS", 100)
        monkeypatch.setattr(grouping, "VERIFY_ROUND_PAIRS", 10)
    manifest = dedup_dataset(source, str(out), mode="near")
    assert_committed(out)
    assert not (out / STAGING).exists()
    assert manifest["dedup"] == assert_committed(reference)["dedup"]
    assert committed_bytes(out) == committed_bytes(reference)  # parts and index, byte for byte
    assert any(name.startswith(INDEX) for name in committed_bytes(out))
