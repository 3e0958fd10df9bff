"""How a stage shows in the Prefect UI, in one place: a progress artifact that moves as
part files are written, one log line per part, and keyed summary artifacts whose
history the Artifacts page shows across runs.

Reporting never fails the work: a report that cannot be made is a warning.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.runtime import task_run

from tasks.cluster import internals, nodes
from tasks.cluster.mapping import Done
from tasks.cluster.options import RayOptions
from tasks.orchestration import summary
from tasks.steps.skeleton import Step


@contextlib.contextmanager
def best_effort(what: str) -> Iterator[None]:
    """Turn a failure to report into a warning: the committed data matters, a missing
    report does not."""
    try:
        yield
    except Exception as exc:
        get_run_logger().warning("could not %s: %s", what, exc)


def metrics(stage: str, result: dict[str, Any]) -> None:
    """A ``{stage}-summary`` table of ``result``'s items, for stages that write no dataset."""
    with best_effort("publish the run summary"):
        create_table_artifact(
            [{"metric": k.replace("_", " "), "value": v} for k, v in result.items()],
            key=f"{stage}-summary",
            description=f"What this {stage} run did",
        )


class StageReport:
    """The reports of one dataset-writing stage run: create it before the work starts,
    pass :meth:`part_done` as the work's ``on_done``, :meth:`publish` its manifest."""

    def __init__(self, stage: str, output_uri: str, scheduling: RayOptions | None) -> None:
        self.stage, self.output_uri = stage, output_uri
        self.logger = get_run_logger()
        self.started = time.monotonic()
        self.spilled_before = internals.spilled_bytes()
        for name in nodes.missing_resources(scheduling):
            self.logger.warning(
                "no live Ray node offers the resource %r yet: the parts wait until one joins",
                name,
            )
        self.progress = None
        with best_effort("create the progress artifact"):
            self.progress = create_progress_artifact(
                0.0,
                key=f"{stage}-progress",
                description=f"Part files of {output_uri} written so far",
            )

    def part_done(self, done: int, total: int, part: Done) -> None:
        if self.progress is not None:
            with best_effort("update the progress artifact"):
                update_progress_artifact(self.progress, 100.0 * done / total)
        self.logger.info(
            "part %d/%d: %s, %d rows, %.1f s on node %s",
            done,
            total,
            part.result.entry.path,
            part.result.entry.num_rows,
            part.seconds,
            part.node_id[:12],
        )

    def publish(self, manifest: dict[str, Any], step: type[Step]) -> None:
        """The keyed summary artifacts of the committed run of ``step``: the summary,
        the nodes, the step's own tables, the links."""
        with best_effort("publish the run summary"):
            self._publish(manifest, step, time.monotonic() - self.started)

    def _publish(self, manifest: dict[str, Any], step: type[Step], seconds: float) -> None:
        stage, output = self.stage, self.output_uri
        spilled_after = internals.spilled_bytes()
        spilled = (
            spilled_after - self.spilled_before
            if spilled_after is not None and self.spilled_before is not None
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
                extra=step.summary_rows(manifest),
            ),
            key=f"{stage}-summary",
            description=f"What this {stage} run committed at {output}",
        )
        create_table_artifact(
            summary.node_table(manifest),
            key=f"{stage}-nodes",
            description="Work and throughput per Ray node type",
        )
        for table in step.tables(manifest):
            create_table_artifact(
                table.rows, key=f"{stage}-{table.key}", description=table.description
            )
        links = [f"- Output: [{output}]({output}) (read it through `_manifest.json`)"]
        if dashboard := internals.dashboard_url():
            links.append(f"- Ray dashboard: [{dashboard}]({dashboard})")
        create_markdown_artifact(
            "\n".join(links), key=f"{stage}-links", description="Where to look"
        )
