"""How runs read in the Prefect UI: names with stage, dataset and date; stage and storage tags."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import get_client, get_run_logger, tags
from prefect.context import FlowRunContext
from prefect.runtime import flow_run
from prefect.states import Cancelled

from tasks.errors import InputError
from tasks.orchestration.alerts import FAILED_STEP_TAG, deployment_run
from tasks.store import partitions, storage


def _day() -> str:
    params = flow_run.parameters
    try:
        return partitions.run_date(
            params.get("run_date"), flow_run.scheduled_start_time, params.get("timezone") or "UTC"
        ).isoformat()
    except (InputError, ValueError):  # the flow itself reports the bad parameter
        return str(params.get("run_date"))


def flow_run_name(stage: str, location_parameter: str) -> Callable[[], str]:
    """``flow_run_name`` for a stage: ``generate local-bucket/raw 2026-11-26``."""

    def name() -> str:
        where = flow_run.parameters.get(location_parameter) or ""
        return f"{stage} {storage.short_name(str(where))} {_day()}"

    return name


def stage_tags(stage: str, uri: str) -> tuple[str, str]:
    return f"stage:{stage}", f"storage:{'s3' if storage.is_s3(uri) else 'local'}"


def tag_flow_run(stage: str, uri: str, *extra: str) -> None:
    """Add the stage and storage tags (and ``extra``) to the running flow run.

    Tags it already has (a deployment's, or a parent flow's) stay, but for a failed step's
    tag left by an earlier attempt of the run (retried from the UI): it starts again.
    """
    context = FlowRunContext.get()
    if context is None:
        return
    try:
        with get_client(sync_client=True) as client:
            now = client.read_flow_run(context.flow_run.id).tags
            kept = {tag for tag in now if not tag.startswith(FAILED_STEP_TAG)}
            wanted = sorted(kept | set(stage_tags(stage, uri)) | set(extra))
            client.update_flow_run(context.flow_run.id, tags=wanted)
    except Exception as exc:  # tags help people find runs; they never fail one
        get_run_logger().warning("could not tag the flow run: %s", exc)
        return
    context.flow_run.tags = wanted


# The prefixes of the tags the flows add to their runs (the others are the deployment's
# or the person's who started the run).
OWN_TAGS = ("stage:", "storage:", "dt:", FAILED_STEP_TAG)


def subflows_tagged() -> tags:
    """Context manager: subflow runs created inside carry the running flow run's tags
    that it did not add itself (its deployment's), as Prefect does not pass them on."""
    context = FlowRunContext.get()
    given = context.flow_run.tags if context else []
    return tags(*(tag for tag in given if not tag.startswith(OWN_TAGS)))


def mark_failed_step(stage: str) -> None:
    """Tag the running flow run, and the run its deployment started, with the failed
    ``stage``: the failure alert names the step from the tag."""
    context = FlowRunContext.get()
    if context is None:
        return
    try:
        with get_client(sync_client=True) as client:
            started = deployment_run(client, context.flow_run.id)
            for run_id in {context.flow_run.id, started.id}:
                run = client.read_flow_run(run_id)
                client.update_flow_run(run_id, tags=sorted({*run.tags, FAILED_STEP_TAG + stage}))
    except Exception as exc:  # the failure itself is what matters; the tag only names it
        get_run_logger().warning("could not tag the run with the failed step: %s", exc)


def tagged(stage: str, uri: str) -> tags:
    """Context manager: task and subflow runs created inside carry the stage's tags."""
    return tags(*stage_tags(stage, uri))


def mark_cancelled(task_run_id: Any, message: str) -> None:
    """Record a task run we cancelled on Ray as Cancelled: it cannot report that itself."""
    try:
        with get_client(sync_client=True) as client:
            client.set_task_run_state(task_run_id, Cancelled(message=message), force=True)
    except Exception as exc:  # the run's own failure says what happened
        get_run_logger().warning("could not mark task run %s cancelled: %s", task_run_id, exc)
