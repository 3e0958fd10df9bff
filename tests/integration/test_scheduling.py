"""The seed's scheduling knobs as flow parameters: resources, CPUs, tasks or actors,
read blocks, output file counts. Real local Ray and Prefect server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from prefect.exceptions import ParameterTypeError
from pydantic import ValidationError

from flows.generate import generate
from flows.preprocess import preprocess
from flows.runner import ray_init_options
from tasks.cluster.options import RayInit, RayOptions
from tasks.errors import InputError
from tasks.store.dataset import file_count, read_dataset
from tests.helpers import assert_cleaned_exactly, assert_committed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_cpus": 0}, "num_cpus\n  Input should be greater than 0"),
        ({"compute": "gpus"}, "compute\n  Input should be 'tasks' or 'actors'"),
        ({"actor_pool": (1, 2)}, "actor_pool is only for compute='actors'"),
        ({"compute": "actors", "actor_pool": (3, 2)}, "min <= max, got \\(3, 2\\)"),
        ({"compute": "actors", "actor_pool": (0, 2)}, "actor_pool.0\n  Input should be greater"),
        ({"read_blocks": 0}, "read_blocks\n  Input should be greater than 0"),
        ({"resources": {"Intel": 0}}, "resources.Intel\n  Input should be greater than 0"),
        ({"remote_args": {"num_cpus": 2}}, "remote_args may not set \\['num_cpus'\\]"),
        ({"num_cpu": 2}, "num_cpu\n  Extra inputs are not permitted"),
        ({"init": {"object_store": 1}}, "init.object_store\n  Extra inputs are not permitted"),
        ({"init": {"num_cpus": 0}}, "init.num_cpus\n  Input should be greater than 0"),
    ],
)
def test_bad_ray_options_are_named(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        RayOptions(**kwargs)


def test_file_count_from_rows_per_file():
    assert file_count(10, None, 3) == 4
    assert file_count(9, None, 3) == 3
    assert file_count(9, 5, None) == 5
    assert file_count(0, None, 3) == 1
    with pytest.raises(
        InputError, match="give num_files \\(2\\) or rows_per_file \\(3\\), not both"
    ):
        file_count(9, 2, 3)
    with pytest.raises(InputError, match="rows_per_file must be at least 1"):
        file_count(9, None, 0)


@pytest.mark.usefixtures("flows_env")
def test_actor_pool_read_blocks_and_rows_per_file_give_exact_results(tmp_path):
    raw = generate(str(tmp_path / "raw"), num_rows=2500, rows_per_file=1000, ray={"num_cpus": 0.5})
    generated = assert_committed(tmp_path / "raw")
    assert [f["num_rows"] for f in generated["files"]] == [833, 833, 834]  # 3 files, even
    assert generated["parameters"]["rows_per_file"] == 1000

    preprocess(
        raw,
        str(tmp_path / "clean"),
        rows_per_file=500,
        ray=RayOptions(read_blocks=2, compute="actors", actor_pool=(1, 2)),
    )
    cleaned = assert_committed(tmp_path / "clean")
    assert len(cleaned["files"]) == 5 and cleaned["num_rows"] == 2500
    assert cleaned["parameters"]["read_blocks"] == 2
    table = read_dataset(str(tmp_path / "clean"))
    assert table.column("id").to_pylist() == list(range(2500))
    assert_cleaned_exactly(table)


@pytest.mark.usefixtures("flows_env")
def test_bad_parameters_fail_the_flow_before_anything_is_written(tmp_path):
    with pytest.raises(
        ParameterTypeError, match="ray: Value error, actor_pool is only for compute='actors'"
    ):
        generate(str(tmp_path / "raw"), num_rows=10, num_files=1, ray={"actor_pool": (1, 2)})
    with pytest.raises(
        ParameterTypeError, match="num_rows: Input should be greater than or equal to 1"
    ):
        generate(str(tmp_path / "raw"), num_rows=0, num_files=1)
    with pytest.raises(InputError, match="not both"):
        generate(str(tmp_path / "raw"), num_rows=10, num_files=1, rows_per_file=5)
    assert not (tmp_path / "raw").exists()


def test_ray_init_options_map_to_ray_init():
    options = ray_init_options(
        RayInit(object_store_memory=200_000_000, spill_dir="/mnt/spill", num_cpus=1)
    )
    assert options["object_store_memory"] == 200_000_000 and options["num_cpus"] == 1
    spilling = json.loads(options["_system_config"]["object_spilling_config"])
    assert spilling == {"type": "filesystem", "params": {"directory_path": "/mnt/spill"}}
    assert ray_init_options(None) == {} == ray_init_options(RayInit())


# A flow run with no RAY_ADDRESS and no Ray in its process starts its own, sized by ray.init.
OWN_RAY = """
import sys
from flows.generate import generate
generate(sys.argv[1], num_rows=500, num_files=2, ray={"init": {
    "num_cpus": 1, "object_store_memory": 150_000_000, "spill_dir": sys.argv[2]}})
"""


@pytest.mark.usefixtures("prefect_server")
def test_a_run_without_a_cluster_starts_its_own_ray_as_ray_init_says(tmp_path):
    from prefect.settings import PREFECT_API_URL

    # No cluster to join; and Ray Data's progress bars on, as outside the tests.
    hidden = ("RAY_ADDRESS", "RAY_DATA_DISABLE_PROGRESS_BARS")
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    done = subprocess.run(
        [sys.executable, "-c", OWN_RAY, str(tmp_path / "out"), str(tmp_path / "spill")],
        env={**env, "PREFECT_API_URL": PREFECT_API_URL.value()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Creating a local Ray instance" in done.stderr
    # Ray Data's progress bars (tqdm, in the stage's Ray worker) reach the run's console.
    assert "Map(_run_part)" in done.stderr and "tqdm is not installed" not in done.stderr
    (node,) = assert_committed(tmp_path / "out")["execution"]["nodes"]
    assert node["cpus"] == 1
    assert node["object_store_bytes"] == pytest.approx(150_000_000, rel=0.01)
