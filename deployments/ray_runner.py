"""Where the flows run: prefect-ray's task runner, wired for this project."""

from __future__ import annotations

import os
from typing import Any, TypeVar

from prefect import Task
from prefect_ray import RayTaskRunner
from prefect_ray.context import remote_options

from deployments import runs
from tasks.storage import S3Settings

R = TypeVar("R")


class PipelineRayTaskRunner(RayTaskRunner):
    """``RayTaskRunner`` that joins the cluster in ``RAY_ADDRESS`` or starts its own.

    The address is read when a flow run starts, not at import. Without ``RAY_ADDRESS``
    it starts a fresh local Ray ("local"), where a bare ``ray.init()`` would attach to
    whichever cluster last ran on this host. A Ray instance already running in this
    process (a parent flow's, or the test suite's) is reused as is.
    """

    def __enter__(self):
        if self.address is None:
            self.address = os.environ.get("RAY_ADDRESS") or "local"
        return super().__enter__()


def run_stage(stage: Task[..., R], name: str, s3: S3Settings | None = None, **parameters: Any) -> R:
    """Run a stage task on Ray with the flow's S3 settings and return its result.

    The flow run and the task run are tagged with the stage ``name`` and the kind of
    storage written. The task only drives a Ray Data job, so it reserves no CPU: holding
    one while the job waits for CPUs deadlocks a small machine.
    """
    where = str(parameters.get("output_uri") or parameters.get("bucket_uri") or "")
    runs.tag_flow_run(name, where)
    with remote_options(num_cpus=0), runs.tagged(name, where):
        return stage.submit(params=parameters, s3=s3).result()
