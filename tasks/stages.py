"""The pipeline's Prefect tasks: thin, retrying wrappers around the work in this package.

The work modules never import Prefect, so the Ray Data tasks they run stay light.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from tasks import storage
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


def _stage(work: Callable[..., dict[str, Any]], name: str) -> Task[..., dict[str, Any]]:
    """A Prefect task running ``work(**params)`` with the flow's S3 settings in force."""

    def run(params: dict[str, Any], s3: storage.S3Settings | None = None) -> dict[str, Any]:
        with storage.using_s3(s3):
            return work(**params)

    run.__name__ = work.__name__
    run.__doc__ = work.__doc__
    return task(run, name=name, **_STAGE)


create_bucket_task = _stage(ensure_bucket, "create-bucket")
generate_task = _stage(generate_dataset, "generate-dataset")
preprocess_task = _stage(preprocess_dataset, "preprocess-dataset")
