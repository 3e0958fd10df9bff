"""Data health: what a data step committed, as a Prefect event on its dataset, and the
bounds its figures must keep.

Every committed step emits ``ray-text-pipeline.dataset.committed`` with its figures (rows
and bytes in and out, kept fraction, seconds, MB/s). When a figure is out of bounds
(:func:`problems`) it also emits ``ray-text-pipeline.dataset.unhealthy`` naming what is
wrong, which the data-health automation (``tasks.orchestration.alerts``) sends to the
person on call. The run itself still completes: its data is committed and readable, and
whether a strange night is wrong is a person's call.
"""

from __future__ import annotations

import posixpath
import statistics
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.errors import InputError
from tasks.nightly.retention import partition_date
from tasks.store import dataset, storage

COMMITTED = "ray-text-pipeline.dataset.committed"
UNHEALTHY = "ray-text-pipeline.dataset.unhealthy"
MB = 1e6

Fraction = Annotated[float, Field(ge=0, le=1)]


class HealthBounds(BaseModel):
    """Bounds on what a step commits; outside them the run alerts as unhealthy.

    Whatever the bounds, a step alerts when its input has no rows, or when it commits no
    rows from an input that had some.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_kept_fraction: Fraction | None = Field(
        None, description="Alert when rows out / rows in is below this (filter: kept share)."
    )
    max_kept_fraction: Fraction | None = Field(
        None,
        description="Alert when rows out / rows in is above this (1 - the least share a step "
        "should remove, e.g. dedup).",
    )
    rows_vs_median: Annotated[float, Field(gt=0)] | None = Field(
        None,
        description="Alert when a daily partition's rows out differ from the median of the "
        "earlier dates' by more than this share of it (0.5: outside half to 1.5 times).",
    )
    history_dates: Annotated[int, Field(ge=1, le=366)] = Field(
        7, description="How many earlier committed dates rows_vs_median looks at."
    )

    @model_validator(mode="after")
    def _ordered(self) -> HealthBounds:
        low, high = self.min_kept_fraction, self.max_kept_fraction
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_kept_fraction {low} is above max_kept_fraction {high}")
        return self


def figures(manifest: dict[str, Any], seconds: float) -> dict[str, Any]:
    """What a committed manifest says the step did, as the event's payload figures."""
    inputs = manifest.get("inputs") or {}
    rows_in = inputs.get("num_rows")
    rows_out = manifest["num_rows"]
    text_bytes = (manifest.get("stats") or {}).get("text_bytes")
    return {
        "rows_in": rows_in,
        "rows_out": rows_out,
        "bytes_in": inputs.get("size_bytes"),
        "bytes_out": manifest["size_bytes"],
        "kept_fraction": round(rows_out / rows_in, 6) if rows_in else None,
        "removed_fraction": round(1 - rows_out / rows_in, 6) if rows_in else None,
        "seconds": round(seconds, 3),
        "text_mb_per_s": round(text_bytes / MB / seconds, 3) if text_bytes and seconds else None,
    }


def problems(
    found: dict[str, Any],
    bounds: HealthBounds,
    history: list[int] | None = None,
    empty_input_reported: bool = False,
) -> list[str]:
    """What is wrong with a step's ``found`` figures under ``bounds``; ``history`` is
    the rows out of the earlier dates (empty or None: no daily history). An empty input
    already reported (as the step before keeping nothing) is not a problem again."""
    rows_in, rows_out, kept = found["rows_in"], found["rows_out"], found["kept_fraction"]
    wrong: list[str] = []
    if rows_in == 0:
        if not empty_input_reported:
            wrong.append("its input has 0 rows")
    elif rows_in is not None and rows_out == 0:
        wrong.append(f"kept 0 of {rows_in:,} rows")
    if kept is not None:
        if bounds.min_kept_fraction is not None and kept < bounds.min_kept_fraction:
            wrong.append(
                f"kept {kept:.4f} of its rows, below min_kept_fraction {bounds.min_kept_fraction:g}"
            )
        if bounds.max_kept_fraction is not None and kept > bounds.max_kept_fraction:
            wrong.append(
                f"kept {kept:.4f} of its rows, above max_kept_fraction {bounds.max_kept_fraction:g}"
            )
    if bounds.rows_vs_median is not None and history:
        median = statistics.median(history)
        share = bounds.rows_vs_median
        if abs(rows_out - median) > share * median:
            wrong.append(
                f"{rows_out:,} rows out against a median of {median:,.0f} over the last "
                f"{len(history)} dates (rows_vs_median {share:g})"
            )
    return wrong


def earlier_rows(
    output: storage.Location, dates: int, unreadable: list[str] | None = None
) -> list[int]:
    """The committed rows of up to ``dates`` date partitions before ``output``'s, the
    latest first; empty when ``output`` is not a date partition (``.../dt=YYYY-MM-DD``).
    A partition whose manifest cannot be read is skipped, its name added to
    ``unreadable``: one bad date does not silence the others."""
    day = partition_date(output.name)
    if day is None:
        return []
    base = storage.Location(output.scheme, posixpath.dirname(output.path), output.s3)
    earlier = sorted(
        (other, name)
        for name in storage.list_dirs(base)
        if (other := partition_date(name)) is not None and other < day
    )
    rows: list[int] = []
    for _, name in reversed(earlier):
        if len(rows) == dates:
            break
        try:
            manifest = dataset.read_manifest(base.child(name))
            if manifest is not None:  # a date being written or removed: not history
                rows.append(int(manifest["num_rows"]))
        except (InputError, OSError, KeyError, TypeError, ValueError):
            if unreadable is not None:
                unreadable.append(name)
    return rows


# Outputs this process reported committing 0 rows from some: the next step of the same
# pipeline reads one as an empty input, which is the same night's one problem.
_REPORTED_EMPTY: set[str] = set()


def report(
    step: str,
    input_uri: str | None,
    output_uri: str,
    manifest: dict[str, Any],
    seconds: float,
    bounds: HealthBounds,
    s3: storage.S3Settings | None,
) -> list[str]:
    """Emit the committed step's events (see the module) from the flow run that ran it,
    related to the run its deployment started; what is wrong, also logged as a warning.

    Never fails the run: its data is committed whatever the report does.
    """
    from prefect import get_run_logger

    logger = get_run_logger()
    output = storage.resolve(output_uri, s3)
    found = figures(manifest, seconds)
    history: list[int] = []
    unreadable: list[str] = []
    if bounds.rows_vs_median:
        try:
            history = earlier_rows(output, bounds.history_dates, unreadable)
        except Exception as exc:  # the other checks need no history
            logger.warning("could not read the dates before %s: %s", output.uri, exc)
    if unreadable:
        logger.warning("skipped unreadable manifests of %s: %s", output.uri, unreadable)
    reported = bool(input_uri) and _canonical(input_uri) in _REPORTED_EMPTY
    wrong = problems(found, bounds, history, empty_input_reported=reported)
    if found["rows_in"] and not found["rows_out"]:
        _REPORTED_EMPTY.add(output.uri)
    if wrong:
        logger.warning("%s committed %s, but: %s", step, output.uri, "; ".join(wrong))
    day = partition_date(output.name)
    resource = {
        "prefect.resource.id": f"ray-text-pipeline.dataset.{output.uri}",
        "prefect.resource.name": storage.short_name(output.uri),
        "ray-text-pipeline.step": step,
        "ray-text-pipeline.date": day.isoformat() if day else "",
    }
    payload = {"step": step, "dataset": output.uri, **found, "history_rows": history}
    if unreadable:
        payload["history_unreadable"] = unreadable
    try:
        _emit(resource, payload, wrong, bounds)
    except Exception as exc:
        logger.warning("could not report the health of %s: %s", output.uri, exc)
    return wrong


def _canonical(uri: str) -> str:
    try:
        return storage.resolve(uri).uri
    except InputError:
        return uri


def _emit(
    resource: dict[str, str], payload: dict[str, Any], wrong: list[str], bounds: HealthBounds
) -> None:
    from prefect.events import emit_event

    related = _started_by()
    emit_event(COMMITTED, resource=resource, related=related, payload=payload)
    if wrong:
        payload = {**payload, "problems": wrong, "bounds": bounds.model_dump()}
        emit_event(UNHEALTHY, resource=resource, related=related, payload=payload)


def _started_by() -> list[dict[str, str]]:
    """The run a deployment started (:func:`alerts.deployment_run`), its flow, its
    deployment and its tags, as related resources: what the alert names, and what the
    automations match on. Listed first, so that an alert's ``flow_run`` is that run."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    from tasks.orchestration.alerts import deployment_run

    with get_client(sync_client=True) as client:
        run = deployment_run(client, FlowRunContext.get().flow_run.id)
        flow = client.read_flow(run.flow_id)
    related = [
        {
            "prefect.resource.id": f"prefect.flow-run.{run.id}",
            "prefect.resource.role": "flow-run",
            "prefect.resource.name": run.name,
        },
        {
            "prefect.resource.id": f"prefect.flow.{flow.id}",
            "prefect.resource.role": "flow",
            "prefect.resource.name": flow.name,
        },
    ]
    if run.deployment_id:
        related.append(
            {
                "prefect.resource.id": f"prefect.deployment.{run.deployment_id}",
                "prefect.resource.role": "deployment",
            }
        )
    related += [
        {"prefect.resource.id": f"prefect.tag.{tag}", "prefect.resource.role": "tag"}
        for tag in sorted(set(run.tags))
    ]
    return related
