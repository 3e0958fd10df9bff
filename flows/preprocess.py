"""Step 3: clean the text for LLM training into a new Parquet dataset."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from prefect import flow, get_run_logger
from prefect_aws import AwsCredentials
from pydantic import Field

from flows.pipeline_step import options_of
from flows.runner import PipelineRayTaskRunner, run_step_task, start_ray
from flows.runs import flow_run_name
from tasks.cluster.options import RayOptions
from tasks.orchestration import deadline
from tasks.orchestration.exclusive import exclusive_output
from tasks.orchestration.health import HealthBounds
from tasks.steps.preprocess.clean import CLEANED_COLUMN
from tasks.steps.preprocess.step import Preprocess, PreprocessParams, preprocessed_bytes
from tasks.store.storage import canonical_uri, settings_for


@flow(
    name="preprocess",
    flow_run_name=flow_run_name("preprocess", "output_uri"),
    task_runner=PipelineRayTaskRunner(),
)
def preprocess(
    input_uri: str,
    output_uri: str,
    input_format: Literal["auto", "parquet", "json"] = "auto",
    text_column: Annotated[str, Field(min_length=1)] = "text",
    keep_text: bool = True,
    compression: Literal["snappy", "zstd", "none"] = "snappy",
    batch_size: Annotated[int, Field(ge=1)] = 1024,
    num_files: Annotated[int, Field(ge=1)] | None = None,
    rows_per_file: Annotated[int, Field(ge=1)] | None = None,
    ray: RayOptions = RayOptions(),  # noqa: B008 (frozen, so one shared default is safe)
    aws_credentials: AwsCredentials | None = None,
    timeout_minutes: Annotated[float, Field(gt=0)] | None = None,
    health: HealthBounds = HealthBounds(),  # noqa: B008 (frozen, so one shared default is safe)
) -> str:
    """Clean text_column of every input row (the seed's regex, lower-cased) into cleaned_text.

    Every other input column reaches the output unchanged. Nothing is written until the
    input has been read through and found good; the output is committed by its manifest.

    Args:
        input_uri: What to clean: a committed dataset, a directory (walked recursively,
            names starting with _ or . skipped), one file, or a glob such as
            s3://bucket/c4/en/c4-train.*.json.gz. Local paths, file:// or s3://.
        output_uri: Where the cleaned dataset goes (not inside the input).
        input_format: parquet, json (JSON Lines, also .gz, .zst or .bz2 compressed), or
            auto to tell by the file names.
        text_column: The column to clean.
        keep_text: Keep the raw text column beside cleaned_text (false halves the output).
        compression: Parquet codec of the output files.
        batch_size: Rows cleaned at a time.
        num_files: How many output files, the rows re-cut in order without a shuffle
            (default: one per input file).
        rows_per_file: At most this many rows per output file, instead of num_files.
        ray: Where and how the parts run on Ray: CPUs and custom resources per part,
            tasks or an actor pool, read blocks, Dataset.map options, the size of a
            local Ray.
        aws_credentials: A prefect-aws AwsCredentials block for S3; without one, the
            standard AWS environment (variables, profile, instance role) is used.
        timeout_minutes: Fail the run this long after it starts; the dataset being
            written is then not committed.
        health: Bounds on what it commits (kept fraction, rows against the median of
            the earlier dates); out of them, the run alerts as unhealthy data. It
            alerts on an input of 0 rows, or 0 rows kept from some, whatever the bounds.
    """
    until = deadline.after(timeout_minutes)
    source, output = canonical_uri(input_uri), canonical_uri(output_uri)
    start_ray(ray.init)
    with exclusive_output(output):
        manifest = run_step_task(
            Preprocess,
            PreprocessParams(
                input_uri=source,
                input_format=input_format,
                text_column=text_column,
                keep_text=keep_text,
                compression=compression,
                batch_size=batch_size,
                num_files=num_files,
                rows_per_file=rows_per_file,
            ),
            output,
            until,
            scheduling=ray,
            s3=settings_for([source, output], aws_credentials),
            health=health,
        )
    get_run_logger().info(
        "committed %d cleaned rows in %d files at %s",
        manifest["num_rows"],
        len(manifest["files"]),
        output,
    )
    return output


class PreprocessStep(options_of(preprocess)):
    """Clean the text (the seed's regex, lower-cased) into cleaned_text."""

    name: ClassVar[str] = "preprocess"
    dataset: ClassVar[str] = "preprocessed"

    def output_bytes(self, input_bytes: int, rows: int) -> int:
        return preprocessed_bytes(input_bytes, self.keep_text)

    def reads(self) -> set[str]:
        return {self.text_column}

    def adds(self) -> set[str]:
        return {CLEANED_COLUMN}

    def columns(self, columns: set[str]) -> set[str]:
        kept = columns if self.keep_text else columns - {self.text_column}
        return kept | self.adds()
