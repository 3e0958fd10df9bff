"""How runs read in the Prefect UI: names with stage, dataset and date; stage and storage tags."""

from __future__ import annotations

from collections.abc import Callable

from prefect import get_client, get_run_logger, tags
from prefect.context import FlowRunContext
from prefect.runtime import flow_run

from tasks import partitions
from tasks.errors import InputError


def storage_kind(uri: str) -> str:
    return "s3" if uri.strip().lower().startswith("s3:") else "local"


def stage_location(params: dict) -> str:
    """Where a stage task writes: its ``output_uri``, or the bucket it creates."""
    return str(params.get("output_uri") or params.get("bucket_uri") or "")


def dataset_name(uri: str) -> str:
    """The last two segments of a location, e.g. ``local-bucket/raw``."""
    return "/".join(uri.strip().rstrip("/").split("/")[-2:]) or uri


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
        return f"{stage} {dataset_name(str(where))} {_day()}"

    return name


def stage_tags(stage: str, uri: str) -> tuple[str, str]:
    return f"stage:{stage}", f"storage:{storage_kind(uri)}"


def tag_flow_run(stage: str, uri: str, *extra: str) -> None:
    """Add the stage and storage tags (and ``extra``) to the running flow run.

    Tags it already has (a deployment's, or a parent flow's) stay.
    """
    context = FlowRunContext.get()
    if context is None:
        return
    wanted = set(context.flow_run.tags) | set(stage_tags(stage, uri)) | set(extra)
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(context.flow_run.id, tags=sorted(wanted))
    except Exception as exc:  # tags help people find runs; they never fail one
        get_run_logger().warning("could not tag the flow run: %s", exc)
        return
    context.flow_run.tags = sorted(wanted)


def tagged(stage: str, uri: str) -> tags:
    """Context manager: task and subflow runs created inside carry the stage's tags."""
    return tags(*stage_tags(stage, uri))
