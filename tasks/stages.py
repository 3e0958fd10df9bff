"""The pipeline's Prefect tasks: thin, retrying wrappers around the work in this package.

The work modules never import Prefect, so the Ray Data tasks they run stay light.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

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

create_bucket_task = task(ensure_bucket, name="create-bucket", **_STAGE)
generate_task = task(generate_dataset, name="generate-dataset", **_STAGE)
preprocess_task = task(preprocess_dataset, name="preprocess-dataset", **_STAGE)
