"""Step 4: remove exact and near duplicates into a new Parquet dataset."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from prefect import flow, get_run_logger
from prefect_aws import AwsCredentials
from pydantic import Field

from flows.pipeline_step import StepRun, options_of
from flows.runner import PipelineRayTaskRunner, run_step_task, start_ray
from flows.runs import flow_run_name
from tasks.cluster.options import RayOptions
from tasks.orchestration import deadline
from tasks.orchestration.exclusive import exclusive_outputs, reading
from tasks.orchestration.health import HealthBounds
from tasks.steps.dedup.against import earlier_candidates
from tasks.steps.dedup.minhash import MinHashParams
from tasks.steps.dedup.step import Dedup, DedupParams, deduplicated_bytes
from tasks.store.dataset import companion_uris
from tasks.store.storage import canonical_uri, resolve, settings_for, split_glob


@flow(
    name="dedup",
    flow_run_name=flow_run_name("dedup", "output_uri"),
    task_runner=PipelineRayTaskRunner(),
)
def dedup(
    input_uri: str,
    output_uri: str,
    mode: Literal["exact", "near"] = "exact",
    text_column: Annotated[str, Field(min_length=1)] = "cleaned_text",
    threshold: Annotated[float, Field(gt=0, le=1)] = MinHashParams.threshold,
    shingle: Annotated[int, Field(ge=1)] = MinHashParams.shingle,
    num_perm: Annotated[int, Field(ge=1)] = MinHashParams.num_perm,
    bands: Annotated[int, Field(ge=1)] = MinHashParams.bands,
    against: list[str] | None = None,
    against_earlier: bool = False,
    compression: Literal["snappy", "zstd", "none"] = "snappy",
    ray: RayOptions = RayOptions(),  # noqa: B008 (frozen, so one shared default is safe)
    aws_credentials: AwsCredentials | None = None,
    timeout_minutes: Annotated[float, Field(gt=0)] | None = None,
    health: HealthBounds = HealthBounds(),  # noqa: B008 (frozen, so one shared default is safe)
) -> str:
    """Remove the rows whose text_column duplicates an earlier row's.

    Of a group of duplicates the row first in input order survives: files in manifest
    order, then rows in file order. The same input gives the same output on any number
    of nodes and in any rerun.

    Args:
        input_uri: A committed dataset, or any input preprocess reads.
        output_uri: Where the deduplicated dataset goes (not inside the input).
        mode: exact (byte-identical text) or near (MinHash with LSH over word shingles;
            exact duplicates are removed too).
        text_column: The column compared.
        threshold: near: rows whose estimated Jaccard similarity of word shingles
            reaches this are duplicates.
        shingle: near: words per shingle.
        num_perm: near: MinHash values per row (one-permutation bins of 8 bits each).
        bands: near: LSH bands (must divide num_perm); more bands find less similar pairs.
        against: Earlier outputs of this step (for the nightly, earlier dt= partitions)
            whose rows count as already kept: input rows duplicating them are removed,
            read through their signature indexes, not their text. In near mode they
            must have been written with the same shingle, num_perm and bands, and in
            either mode by a version of this step that digests and sketches rows as
            this one does; one that is, holds or lies inside the input or output is
            refused.
        against_earlier: Also compare against this step's committed outputs in the
            dt= folders beside output_uri dated before it (the nightly's earlier dates);
            those that cannot be used are skipped, each recorded in the manifest.
        compression: Parquet codec of the output files.
        ray: Where and how the parts run on Ray.
        aws_credentials: A prefect-aws AwsCredentials block for S3.
        timeout_minutes: Fail the run this long after it starts; nothing is committed.
        health: Bounds on what it commits (kept fraction, rows against the median of
            the earlier dates); out of them, the run alerts as unhealthy data. It
            alerts on an input of 0 rows, or 0 rows kept from some, whatever the bounds.
    """
    until = deadline.after(timeout_minutes)
    source, output = canonical_uri(input_uri), canonical_uri(output_uri)
    earlier = [canonical_uri(uri) for uri in against or []]
    params = (
        MinHashParams(threshold=threshold, shingle=shingle, num_perm=num_perm, bands=bands)
        if mode == "near"
        else None
    )
    s3 = settings_for([source, output, *earlier], aws_credentials)
    # Everything this run reads across its passes, leased so that no writer and no
    # retention changes it meanwhile (the earlier dates it may compare with too).
    read = [split_glob(source)[0], *earlier]
    if against_earlier:
        read += earlier_candidates(resolve(output, s3))
    start_ray(ray.init)
    writes = [output, *companion_uris(output, Dedup.companions)]
    with exclusive_outputs(writes), reading(read):
        manifest = run_step_task(
            Dedup,
            DedupParams(
                input_uri=source,
                mode=mode,
                text_column=text_column,
                minhash=params,
                compression=compression,
                against=earlier,
                against_earlier=against_earlier,
            ),
            output,
            until,
            scheduling=ray,
            s3=s3,
            health=health,
        )
    stats = manifest["dedup"]
    get_run_logger().info(
        "committed %d of %d rows at %s: %d exact and %d near duplicates removed",
        manifest["num_rows"],
        stats["rows_in"],
        output,
        stats["exact_duplicates_removed"],
        stats["near_duplicates_removed"],
    )
    return output


class DedupStep(options_of(dedup)):
    """Remove exact or near duplicates (with a daily run, of the earlier dates too)."""

    name: ClassVar[str] = "dedup"
    dataset: ClassVar[str] = "deduped"

    # The flow's default is False; in a pipeline, None: compare with a daily run.
    against_earlier: bool | None = Field(
        default=None,
        description="Compare against this step's earlier dates; by default with a daily run.",
    )

    def flow_options(self, run: StepRun | None = None) -> dict[str, Any]:
        options = super().flow_options(run)
        if options["against_earlier"] is None:  # the pipeline's choice: with a daily run
            options["against_earlier"] = bool(run and run.daily)
        return options

    def reads_earlier_dates(self, daily: bool) -> bool:
        return daily if self.against_earlier is None else self.against_earlier

    def output_bytes(self, input_bytes: int, rows: int) -> int:
        near = self.mode == "near"
        return deduplicated_bytes(
            input_bytes, rows, self.num_perm if near else 0, self.bands if near else 0
        )

    def reads(self) -> set[str]:
        return {self.text_column}
