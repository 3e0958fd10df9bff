"""Running one function per part file on the cluster with Ray Data.

Each item (a small JSON-able spec: which rows or input slices go into which part)
becomes one Ray Data block, so Ray Data schedules, streams and retries the parts while
the part function does its own reading and writing under a deterministic name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from tasks import storage
from tasks.errors import InputError

Item = dict[str, Any]


class Done(NamedTuple):
    """One finished part: what ``fn`` returned, where it ran, how long it took."""

    result: Item
    node_id: str
    seconds: float


def map_items(
    fn: Callable[[Item], Item],
    items: list[Item],
    *,
    ray_remote_args: dict[str, Any] | None = None,
    on_done: Callable[[int, int, Done], None] | None = None,
) -> list[Done]:
    """``fn(item)`` for every item, run as Ray Data tasks (one CPU each by default).

    ``ray_remote_args`` passes through to ``map`` (``num_cpus``, ``memory``, custom
    ``resources`` such as ``{"Intel": 1}`` to pin the work to a node type, as the seed
    suggests). Results stream back as parts finish; ``on_done(done, total, part)`` is
    called for each, in the caller's process. Errors from ``fn`` surface with their own
    type, so a bad input fails the stage as an :class:`InputError` instead of a generic
    wrapper. Returns the parts in the order of ``items``.
    """
    import ray
    import ray.data

    if not items:
        return []
    context = ray.data.DataContext.get_current()
    context.raise_original_map_exception = True
    rows = [{"index": i, "item": json.dumps(item)} for i, item in enumerate(items)]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
    # The settings travel in the closure (pickled with the task, never logged), so every
    # worker reads and writes S3 the way the flow was configured to.
    s3 = storage.current_s3()

    def run(row: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        with storage.using_s3(s3):
            result = fn(json.loads(row["item"]))
        return {
            "index": row["index"],
            "result": json.dumps(result),
            "node_id": ray.get_runtime_context().get_node_id(),
            "seconds": time.perf_counter() - started,
        }

    options = {"num_cpus": 1, **(ray_remote_args or {})}
    done: dict[int, Done] = {}
    try:
        for row in dataset.map(run, **options).iter_rows():
            part = Done(json.loads(row["result"]), row["node_id"], row["seconds"])
            done[row["index"]] = part
            if on_done is not None:
                on_done(len(done), len(items), part)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, InputError):
            raise type(cause)(str(cause)) from None
        raise
    return [done[i] for i in range(len(items))]


def node_type(resources: dict[str, float]) -> str:
    """A node's type as its custom resources name it (``Intel``, ``Graviton``), else "default"."""
    builtin = ("CPU", "GPU", "memory", "object_store_memory", "node:", "accelerator_type:")
    custom = sorted(r for r in resources if not r.startswith(builtin))
    return "+".join(custom) or "default"


def execution_summary(parts: list[Done], sizes: list[tuple[int, int]]) -> dict[str, Any]:
    """Per node: its type, CPUs, and the parts, rows, bytes and task seconds it did.

    ``sizes`` holds (rows, bytes) for each part.
    """
    import ray

    known = {n["NodeID"]: n for n in ray.nodes()}
    nodes: dict[str, dict[str, Any]] = {}
    for part, (rows, size) in zip(parts, sizes, strict=True):
        info = known.get(part.node_id, {})
        resources = info.get("Resources", {})
        node = nodes.setdefault(
            part.node_id,
            {
                "node_id": part.node_id,
                "address": info.get("NodeManagerAddress"),
                "type": node_type(resources),
                "cpus": resources.get("CPU", 0),
                "parts": 0,
                "rows": 0,
                "bytes": 0,
                "task_seconds": 0.0,
            },
        )
        node["parts"] += 1
        node["rows"] += rows
        node["bytes"] += size
        node["task_seconds"] = round(node["task_seconds"] + part.seconds, 3)
    return {"nodes": list(nodes.values())}


def spilled_bytes() -> int | None:
    """Bytes the cluster's object stores have spilled since it started; None if unknown."""
    import ray
    from ray._private.internal_api import get_memory_info_reply, get_state_from_address

    try:
        state = get_state_from_address(ray.get_runtime_context().gcs_address)
        return int(get_memory_info_reply(state).store_stats.spilled_bytes_total)
    except Exception:  # an internal API: a summary without it beats a failed stage
        return None


def dashboard_url() -> str | None:
    """The Ray dashboard's address as the cluster publishes it, if it runs one."""
    from ray._private.services import get_webui_url_from_internal_kv

    try:
        url = get_webui_url_from_internal_kv()
    except Exception:
        return None
    if not url:
        return None
    return url if "://" in url else f"http://{url}"
