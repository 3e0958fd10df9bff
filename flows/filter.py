"""Step 5: keep the rows that pass language identification and the quality rules of
Gopher, C4 and FineWeb (per language); every rejected row is kept too, with its reason,
in the dataset beside them (``filtered-rejected/`` for ``filtered/``)."""

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
from tasks.orchestration.exclusive import exclusive_outputs, reading
from tasks.orchestration.health import HealthBounds
from tasks.steps.filter.options import FilterOptions
from tasks.steps.filter.step import LANGUAGE_COLUMN, SCORE_COLUMN, Filter, FilterParams
from tasks.store.dataset import companion_uris
from tasks.store.storage import canonical_uri, settings_for, split_glob


@flow(
    name="filter",
    flow_run_name=flow_run_name("filter", "output_uri"),
    task_runner=PipelineRayTaskRunner(),
)
def filter_documents(
    input_uri: str,
    output_uri: str,
    text_column: Annotated[str, Field(min_length=1)] = "text",
    filters: FilterOptions = FilterOptions(),  # noqa: B008 (frozen, so one shared default is safe)
    input_format: Literal["auto", "parquet", "json"] = "auto",
    compression: Literal["snappy", "zstd", "none"] = "snappy",
    batch_size: Annotated[int, Field(ge=1)] = 1024,
    ray: RayOptions = RayOptions(),  # noqa: B008 (frozen, so one shared default is safe)
    aws_credentials: AwsCredentials | None = None,
    timeout_minutes: Annotated[float, Field(gt=0)] | None = None,
    health: HealthBounds = HealthBounds(),  # noqa: B008 (frozen, so one shared default is safe)
) -> str:
    """Keep the rows whose text_column passes every enabled quality rule.

    Every row gets language and language_score columns. The rules look at the text as it
    is (the raw text: cleaning strips the punctuation and line structure they measure).
    A rejected row goes to the dataset beside the output named as it is plus -rejected
    (filtered-rejected/dt=D for filtered/dt=D) with all its columns and filter_reason,
    the first rule it failed (with url or decontaminate on, filter_detail too: the
    blocked domain or the shared n-gram); the manifest counts, per rule, the rows and
    bytes it removed and the rows it fails.

    Args:
        input_uri: What to filter: anything preprocess reads (a committed dataset, a
            directory, a file, a glob; Parquet or JSON Lines, also compressed).
        output_uri: Where the kept rows go (not inside the input).
        text_column: The column the rules judge.
        filters: Language identification (language), the four rule sets (gopher_quality,
            gopher_repetition, c4, fineweb), PII redaction (pii), a URL blocklist (url)
            and decontamination against evaluation sets (decontaminate), each its
            settings or null to turn it off; {} is its defaults (datatrove's for English,
            FineWeb-2's for Korean rows in language_rules). Default: all on but pii, url
            and decontaminate.
        input_format: parquet, json, or auto to tell by the file names.
        compression: Parquet codec of the output files.
        batch_size: Rows judged at a time.
        ray: Where and how the parts run on Ray.
        aws_credentials: A prefect-aws AwsCredentials block for S3.
        timeout_minutes: Fail the run this long after it starts; nothing is committed.
        health: Bounds on what it commits (kept fraction, rows against the median of
            the earlier dates); out of them, the run alerts as unhealthy data. It
            alerts on an input of 0 rows, or 0 rows kept from some, whatever the bounds.
    """
    until = deadline.after(timeout_minutes)
    source, output = canonical_uri(input_uri), canonical_uri(output_uri)
    start_ray(ray.init)
    # The input is leased while it is read, so that no writer or retention changes it
    # between the inspection and the parts.
    writes = [output, *companion_uris(output, Filter.companions)]
    with exclusive_outputs(writes), reading([split_glob(source)[0]]):
        manifest = run_step_task(
            Filter,
            FilterParams(
                input_uri=source,
                input_format=input_format,
                text_column=text_column,
                filters=filters,
                compression=compression,
                batch_size=batch_size,
            ),
            output,
            until,
            scheduling=ray,
            s3=settings_for([source, output], aws_credentials),
            health=health,
        )
    stats = manifest["filters"]
    get_run_logger().info(
        "committed %d of %d rows at %s; %d rejected (in %s)",
        stats["kept"],
        stats["rows_in"],
        output,
        stats["rejected"],
        manifest["companions"]["rejected"]["uri"],
    )
    return output


class FilterStep(options_of(filter_documents)):
    """Keep the rows that pass the quality rules; rejected rows beside, with reasons."""

    name: ClassVar[str] = "filter"
    dataset: ClassVar[str] = "filtered"

    def output_bytes(self, input_bytes: int, rows: int) -> int:
        return input_bytes  # every row written once, kept or rejected

    def reads(self) -> set[str]:
        url = self.filters.url
        return {self.text_column} | ({url.url_column} if url is not None else set())

    def adds(self) -> set[str]:
        return {LANGUAGE_COLUMN, SCORE_COLUMN}
