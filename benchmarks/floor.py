"""The floor of a flow run's fixed cost: what prefect-ray and Ray Data cost by themselves.

A bare flow on prefect-ray's ``RayTaskRunner`` whose one task runs a one-row Ray Data
job: a new Ray job whose fresh worker imports Ray, Ray Data and Prefect, as every flow
run of the pipeline is. ``make bench`` times it beside a one-row generate flow run.
"""

from __future__ import annotations

import os

from prefect import flow, task
from prefect_ray import RayTaskRunner


@task
def one_row_job() -> int:
    import ray.data

    return len(ray.data.range(1).map(lambda row: row).take_all())


@flow(name="floor", task_runner=RayTaskRunner(address=os.environ.get("RAY_ADDRESS")))
def bare_flow() -> int:
    return one_row_job.submit().result()
