"""Running one function per part file on the cluster with Ray Data.

Each item (a small JSON-able spec: which rows or input slices go into which part)
becomes one Ray Data block, so Ray Data schedules, streams and retries the parts while
the part function does its own reading and writing under a deterministic name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tasks import storage
from tasks.errors import InputError

Item = dict[str, Any]


def map_items(
    fn: Callable[[Item], Item],
    items: list[Item],
    *,
    ray_remote_args: dict[str, Any] | None = None,
) -> list[Item]:
    """``[fn(item) for item in items]``, run as Ray Data tasks (one CPU each by default).

    ``ray_remote_args`` passes through to ``map`` (``num_cpus``, ``memory``, custom
    ``resources`` such as ``{"Intel": 1}`` to pin the work to a node type, as the seed
    suggests). Errors from ``fn`` surface with their own type, so a bad input fails the
    stage as an :class:`InputError` instead of a generic wrapper.
    """
    import ray
    import ray.data

    if not items:
        return []
    context = ray.data.DataContext.get_current()
    context.raise_original_map_exception = True
    rows = [{"item": json.dumps(item)} for item in items]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
    # The settings travel in the closure (pickled with the task, never logged), so every
    # worker reads and writes S3 the way the flow was configured to.
    s3 = storage.current_s3()

    def run(row: dict[str, str]) -> dict[str, str]:
        with storage.using_s3(s3):
            return {"result": json.dumps(fn(json.loads(row["item"])))}

    options = {"num_cpus": 1, **(ray_remote_args or {})}
    try:
        results = dataset.map(run, **options).take_all()
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, InputError):
            raise type(cause)(str(cause)) from None
        raise
    return [json.loads(r["result"]) for r in results]
