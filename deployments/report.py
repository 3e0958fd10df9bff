"""Print where the last completed run of a deployment put its output (used by `make run`)."""

from __future__ import annotations

import asyncio
import sys

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    DeploymentFilter,
    DeploymentFilterName,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort

OUTPUT_KEY = "pipeline-output"


async def last_output(deployment: str) -> str:
    flow_name, deployment_name = deployment.split("/", 1)
    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment_name])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))
            ),
            sort=FlowRunSort.END_TIME_DESC,
            limit=1,
        )
        if not runs:
            raise SystemExit(f"no completed run of {deployment}")
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[OUTPUT_KEY]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[runs[0].id]),
            )
        )
        if not artifacts:
            raise SystemExit(f"run {runs[0].name} of {deployment} recorded no {OUTPUT_KEY}")
        link = str(artifacts[0].data)
        # A link artifact is stored as markdown: [text](uri).
        return link[link.rfind("(") + 1 : -1] if link.endswith(")") else link


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "pipeline/default"
    print(f"output: {asyncio.run(last_output(name))}")
