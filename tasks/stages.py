"""The pipeline's Prefect tasks: thin, retrying wrappers around the work in this package.

The work modules never import Prefect, so the Ray Data tasks they run stay light. The
wrappers run where the stage runs (a Ray worker, through prefect-ray) and report to the
Prefect API from there: a progress artifact that moves as part files are written, one
log line per part, and when the stage is done, keyed summary artifacts whose history
the Artifacts page shows across runs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from prefect import Task, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from prefect.tasks import exponential_backoff

from deployments import runs
from tasks import raydata, storage, summary
from tasks.bucket import ensure_bucket
from tasks.generate import generate_dataset
from tasks.preprocess import preprocess_dataset
from tasks.retry import retry_if_transient

# Up to three retries of transient failures only, after about 5 s, 10 s and 20 s (+-50%
# jitter so parallel runs do not retry in step). No caching: whether work can be skipped
# is for the manifest to say, not Prefect's result cache.
_STAGE = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=5),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
    "cache_policy": NO_CACHE,
}


def _task_run_name(stage: str) -> Callable[[], str]:
    def name() -> str:
        uri = runs.stage_location(task_run.parameters.get("params", {}))
        return f"{stage} {runs.dataset_name(uri)}" if uri else stage

    return name


@contextlib.contextmanager
def _best_effort(what: str) -> Iterator[None]:
    """Reporting never fails the work: a report that cannot be made is a warning."""
    try:
        yield
    except Exception as exc:  # the committed data matters; a missing report does not
        get_run_logger().warning("could not %s: %s", what, exc)


def _dataset_stage(stage: str, params: dict[str, Any], work: Callable[..., dict]) -> dict:
    """Run a dataset-writing stage with progress, per-part logs and summary artifacts."""
    logger = get_run_logger()
    output = params["output_uri"]
    started = time.monotonic()
    spilled_before = raydata.spilled_bytes()
    for name in raydata.missing_resources(params.get("scheduling")):
        logger.warning(
            "no live Ray node offers the resource %r yet: the parts wait until one joins", name
        )
    progress = None
    with _best_effort("create the progress artifact"):
        progress = create_progress_artifact(
            0.0, key=f"{stage}-progress", description=f"Part files of {output} written so far"
        )

    def on_done(done: int, total: int, part: raydata.Done) -> None:
        if progress is not None:
            with _best_effort("update the progress artifact"):
                update_progress_artifact(progress, 100.0 * done / total)
        logger.info(
            "part %d/%d: %s, %d rows, %.1f s on node %s",
            done,
            total,
            part.result["path"],
            part.result["num_rows"],
            part.seconds,
            part.node_id[:12],
        )

    manifest = work(**params, on_done=on_done)
    seconds = time.monotonic() - started
    with _best_effort("publish the run summary"):
        _publish(stage, manifest, output, seconds, spilled_before)
    return manifest


def _publish(
    stage: str, manifest: dict, output: str, seconds: float, spilled_before: int | None
) -> None:
    """The keyed summary artifacts of a committed stage run."""
    spilled_after = raydata.spilled_bytes()
    spilled = (
        spilled_after - spilled_before
        if spilled_after is not None and spilled_before is not None
        else None
    )
    create_table_artifact(
        summary.stage_summary(
            stage,
            manifest,
            output_uri=output,
            seconds=seconds,
            retries=task_run.run_count - 1,
            spilled_bytes=spilled,
        ),
        key=f"{stage}-summary",
        description=f"What this {stage} run committed at {output}",
    )
    create_table_artifact(
        summary.node_table(manifest),
        key=f"{stage}-nodes",
        description="Work and throughput per Ray node type",
    )
    if stage == "preprocess":
        create_table_artifact(
            summary.quality_table(manifest["stats"]),
            key="preprocess-quality",
            description="Labels, null texts and how much cleaning removed",
        )
    links = [f"- Output: [{output}]({output}) (read it through `_manifest.json`)"]
    if dashboard := raydata.dashboard_url():
        links.append(f"- Ray dashboard: [{dashboard}]({dashboard})")
    create_markdown_artifact("\n".join(links), key=f"{stage}-links", description="Where to look")


def _stage(work: Callable[..., dict[str, Any]], name: str, stage: str) -> Task[..., dict[str, Any]]:
    """A Prefect task running ``work(**params)`` with the flow's S3 settings in force."""

    def run(params: dict[str, Any], s3: storage.S3Settings | None = None) -> dict[str, Any]:
        with storage.using_s3(s3):
            if "output_uri" in params:
                return _dataset_stage(stage, params, work)
            result = work(**params)
        with _best_effort("publish the run summary"):
            create_table_artifact(
                [{"metric": k.replace("_", " "), "value": v} for k, v in result.items()],
                key=f"{stage}-summary",
                description=f"What this {stage} run did",
            )
        return result

    run.__name__ = work.__name__
    run.__doc__ = work.__doc__
    return task(run, name=name, task_run_name=_task_run_name(name), **_STAGE)


create_bucket_task = _stage(ensure_bucket, "create-bucket", "create-bucket")
generate_task = _stage(generate_dataset, "generate-dataset", "generate")
preprocess_task = _stage(preprocess_dataset, "preprocess-dataset", "preprocess")
