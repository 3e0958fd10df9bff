"""Step 6: each document as its token ids, in Megatron's indexed-dataset shards: what
LLM training reads."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import numpy as np
from prefect import flow, get_run_logger
from prefect_aws import AwsCredentials
from pydantic import Field

from flows.pipeline_step import options_of
from flows.runner import PipelineRayTaskRunner, run_step_task, start_ray
from flows.runs import flow_run_name
from tasks.cluster.options import RayOptions
from tasks.orchestration import deadline
from tasks.orchestration.exclusive import exclusive_output, reading
from tasks.orchestration.health import HealthBounds
from tasks.steps.tokenize.step import Tokenize, TokenizeParams, tokenized_bytes
from tasks.store.storage import canonical_uri, settings_for, split_glob


@flow(
    name="tokenize",
    flow_run_name=flow_run_name("tokenize", "output_uri"),
    task_runner=PipelineRayTaskRunner(),
)
def tokenize(
    input_uri: str,
    output_uri: str,
    tokenizer: Annotated[str, Field(min_length=1)],
    text_column: Annotated[str, Field(min_length=1)] = "text",
    eos_token: Annotated[str, Field(min_length=1)] | None = None,
    shuffle_seed: Annotated[int, Field(ge=0)] | None = None,
    input_format: Literal["auto", "parquet", "json"] = "auto",
    batch_size: Annotated[int, Field(ge=1)] = 1024,
    ray: RayOptions = RayOptions(),  # noqa: B008 (frozen, so one shared default is safe)
    aws_credentials: AwsCredentials | None = None,
    timeout_minutes: Annotated[float, Field(gt=0)] | None = None,
    health: HealthBounds = HealthBounds(),  # noqa: B008 (frozen, so one shared default is safe)
) -> str:
    """Write every row's text_column as its token ids, one shard per input file
    (shuffled across them with shuffle_seed).

    A shard is part-NNNNN.bin (the ids) and part-NNNNN.idx (its index), Megatron's
    indexed dataset: Megatron-LM and NeMo open it by the prefix part-NNNNN. Each
    document is one sequence: the tokenizer's ids, no special tokens added, then the id
    of eos_token if given; a null text is an empty document. Ids are uint16 for a
    vocabulary under 65,500 tokens, int32 otherwise, as Megatron stores them.

    Args:
        input_uri: What to tokenize: anything preprocess reads (a committed dataset, a
            directory, a file, a glob; Parquet or JSON Lines, also compressed).
        output_uri: Where the shards go (not inside the input).
        tokenizer: A Hugging Face tokenizer.json, or a folder holding one, local or on
            S3; read offline, nothing is downloaded.
        text_column: The column to tokenize (cleaned_text after preprocess, text for
            the raw text).
        eos_token: A token of the vocabulary ended each document with (e.g.
            <|endoftext|>); none by default.
        shuffle_seed: Shuffle the documents across all shards with this seed (the
            same seed and input write the same bytes); input order if none. Each
            token is staged once in the output before the shards are written.
        input_format: parquet, json, or auto to tell by the file names.
        batch_size: Rows tokenized at a time.
        ray: Where and how the parts run on Ray.
        aws_credentials: A prefect-aws AwsCredentials block for S3.
        timeout_minutes: Fail the run this long after it starts; nothing is committed.
        health: Bounds on what it commits (see the preprocess flow); an input of 0
            rows alerts whatever the bounds.
    """
    until = deadline.after(timeout_minutes)
    source, output = canonical_uri(input_uri), canonical_uri(output_uri)
    vocabulary = canonical_uri(tokenizer)
    start_ray(ray.init)
    with exclusive_output(output), reading([split_glob(source)[0]]):
        manifest = run_step_task(
            Tokenize,
            TokenizeParams(
                input_uri=source,
                tokenizer=vocabulary,
                input_format=input_format,
                text_column=text_column,
                eos_token=eos_token,
                shuffle_seed=shuffle_seed,
                batch_size=batch_size,
            ),
            output,
            until,
            scheduling=ray,
            s3=settings_for([source, output, vocabulary], aws_credentials),
            health=health,
        )
    stats = manifest["stats"]
    get_run_logger().info(
        "committed %d documents, %d tokens (%s) in %d shards at %s",
        stats["documents"],
        stats["tokens"],
        manifest["tokenized"]["dtype"],
        len(manifest["tokenized"]["shards"]),
        output,
    )
    return output


class TokenizeStep(options_of(tokenize)):
    """Each document as its token ids: Megatron's indexed-dataset shards."""

    name: ClassVar[str] = "tokenize"
    dataset: ClassVar[str] = "tokenized"
    final: ClassVar[bool] = True

    def output_bytes(self, input_bytes: int, rows: int) -> int:
        # The vocabulary is not read yet: ids as wide as they come (int32).
        shards = tokenized_bytes(input_bytes, np.dtype(np.int32))
        return shards * (1 if self.shuffle_seed is None else 2)

    def reads(self) -> set[str]:
        return {self.text_column}
