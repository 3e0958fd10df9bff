"""Running one function per part file on the cluster with Ray Data.

Each item (a small JSON-able spec: which rows or input slices go into which part)
becomes one Ray Data block, so Ray Data schedules, streams and retries the parts while
the part function does its own reading and writing under a deterministic name.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from tasks.data import storage
from tasks.errors import InputError, TransientPartError
from tasks.nightly.deadline import check as deadline_check
from tasks.orchestration.retry import is_transient

Item = dict[str, Any]

log = logging.getLogger(__name__)


class Done(NamedTuple):
    """One finished part: what ``fn`` returned, where it ran, how long it took, and the
    nodes its attempts started on, when they were tracked (a cluster of several nodes)."""

    result: Item
    node_id: str
    seconds: float
    attempts: tuple[str, ...] = ()


class RayInit(BaseModel):
    """The local Ray a flow run starts when it joins no cluster (no ``RAY_ADDRESS``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_cpus: PositiveFloat | None = Field(None, description="CPUs it offers (default: all).")
    object_store_memory: PositiveInt | None = Field(
        None, description="Bytes of its object store (default: Ray's share of memory)."
    )
    spill_dir: str | None = Field(
        None, description="Where a full object store spills to (default: Ray's temp dir)."
    )


# Attempts after the first that Ray Data gives one part task (transient errors, lost
# workers or nodes) before the stage fails, and Prefect's stage retry takes over.
PART_RETRIES = 3

# Keys of Dataset.map that have a field of their own here.
_OWN_KEYS = {"num_cpus", "resources", "compute", "concurrency"}


class RayOptions(BaseModel):
    """Where and how a stage's parts run on Ray: the seed's scheduling knobs.

    Shared by the generate, preprocess and pipeline flows (the Prefect UI shows it as
    one nested form). The defaults run one part per task on one CPU anywhere.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_cpus: float = Field(1.0, gt=0, description="CPUs each part task reserves.")
    resources: dict[Annotated[str, Field(min_length=1)], Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description='Custom resources each part task needs: {"Intel": 1} runs the parts '
        "only on nodes advertising that resource (the seed's Intel/Graviton node types).",
    )
    compute: Literal["tasks", "actors"] = Field(
        "tasks", description="A Ray task per block, or a pool of long-lived actors."
    )
    actor_pool: tuple[PositiveInt, PositiveInt] | None = Field(
        None, description="(min, max) actors when compute is actors (default: 1 to all CPUs)."
    )
    read_blocks: PositiveInt | None = Field(
        None,
        description="preprocess: Ray Data tasks the parts are split into (default: one per "
        "part; fewer means each task writes several parts in turn, as the seed's "
        "read_parquet(parallelism=...)). generate ignores it.",
    )
    remote_args: dict[str, Any] = Field(
        default_factory=dict,
        description="Anything else Ray Data's Dataset.map takes (memory, "
        "scheduling_strategy, ...).",
    )
    init: RayInit = Field(
        default_factory=RayInit,
        description="Size of the local Ray a run starts when it joins no cluster.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> RayOptions:
        if self.actor_pool is not None:
            if self.compute != "actors":
                raise ValueError("actor_pool is only for compute='actors'")
            low, high = self.actor_pool
            if low > high:
                raise ValueError(
                    f"actor_pool must be (min, max) with min <= max, got {self.actor_pool}"
                )
        clash = _OWN_KEYS & set(self.remote_args)
        if clash:
            raise ValueError(
                f"remote_args may not set {sorted(clash)}: use the fields of that name"
            )
        return self

    def map_options(self) -> dict[str, Any]:
        """Keyword arguments for ``Dataset.map``."""
        import ray.data

        options: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.compute == "tasks":
            # A part that fails for a transient reason is retried by itself; a lost worker
            # or node counts against the same budget (Ray Data's default is unlimited).
            # Ray 2.60 deprecates passing these through Dataset.map's **ray_remote_args
            # (removal announced for 2.64) but has no named parameter for them yet: its
            # RayDeprecationWarning stays visible in the stage's worker log until then.
            options.update(max_retries=PART_RETRIES, retry_exceptions=[TransientPartError])
        options.update(self.remote_args)
        if self.resources:
            options["resources"] = dict(self.resources)
        if self.compute == "actors":
            low, high = self.actor_pool or (
                1,
                max(1, int(ray.cluster_resources().get("CPU", 1) // self.num_cpus)),
            )
            options["compute"] = ray.data.ActorPoolStrategy(min_size=low, max_size=high)
        return options


class _Attempts:
    """Which node each attempt of each part started on.

    A Ray actor on the stage's own node, so it outlives any worker node: a part whose
    node is lost is retried by Ray without a word to the caller, and only this record
    says where it had run.
    """

    def __init__(self) -> None:
        self.nodes: dict[int, list[str]] = {}

    def started(self, index: int, node_id: str) -> None:
        self.nodes.setdefault(index, []).append(node_id)

    def all(self) -> dict[int, list[str]]:
        return self.nodes


def _attempt_record() -> Any:
    """An :class:`_Attempts` actor when the cluster has several nodes, else None (one
    node cannot be lost while the run goes on, and the actor's process is not free)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if sum(1 for node in _nodes().values() if node.get("Alive")) < 2:
        return None
    # Hard affinity: a zero-CPU actor always fits on the node this code runs on, and a
    # soft one was seen placed on a busy cluster's other nodes, which may be lost.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    record = ray.remote(num_cpus=0, scheduling_strategy=here)(_Attempts).remote()
    # Ready before any part starts: a call to an actor still being created waits in the
    # caller's process, and would die there with a lost node.
    ray.get(record.all.remote())
    return record


class _PartActor:
    """The part function as a callable class, for Ray Data's actor pool."""

    def __init__(self, fn: Callable[[Item], Item], s3: Any, attempts: Any):
        self.fn, self.s3, self.attempts = fn, s3, attempts

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        return _run_part(self.fn, self.s3, self.attempts, row)


def _run_part(
    fn: Callable[[Item], Item], s3: Any, attempts: Any, row: dict[str, Any]
) -> dict[str, Any]:
    import ray

    started = time.perf_counter()
    node_id = ray.get_runtime_context().get_node_id()
    if attempts is not None:
        # Recorded before the work starts, so that a node lost mid-part is known to have
        # had it. A record out of reach costs the summary a line, never the part.
        try:
            ray.get(attempts.started.remote(row["index"], node_id), timeout=30)
        except Exception as exc:
            log.warning("part %s: could not record its attempt: %s", row["index"], exc)
    item = json.loads(row["item"])
    with storage.using_s3(s3):
        try:
            # Parts are idempotent: one refused by S3 runs again with fresh credentials.
            result = storage.with_fresh_credentials(lambda: fn(item))
        except Exception as exc:
            if is_transient(exc):  # Ray Data retries this part alone (see map_options)
                raise TransientPartError(f"part {row['index']}: {exc}") from exc
            raise
    return {
        "index": row["index"],
        "result": json.dumps(result),
        "node_id": node_id,
        "seconds": time.perf_counter() - started,
    }


def map_items(
    fn: Callable[[Item], Item],
    items: list[Item],
    *,
    scheduling: RayOptions | None = None,
    on_done: Callable[[int, int, Done], None] | None = None,
    deadline: float | None = None,
) -> list[Done]:
    """``fn(item)`` for every item, run by Ray Data as ``scheduling`` says.

    Results stream back as parts finish; ``on_done(done, total, part)`` is called for
    each, in the caller's process. Past ``deadline`` (epoch seconds) the job stops with
    :class:`DeadlineExceeded` as the next part finishes. Errors from ``fn`` surface with
    their own type, so a bad input fails the stage as an :class:`InputError` instead of a
    generic wrapper.
    Returns the parts in the order of ``items``.
    """
    import ray
    import ray.data

    if not items:
        return []
    deadline_check(deadline, f"run {len(items)} parts")
    scheduling = scheduling or RayOptions()
    context = ray.data.DataContext.get_current()
    context.raise_original_map_exception = True
    rows = [{"index": i, "item": json.dumps(item)} for i, item in enumerate(items)]
    blocks = min(scheduling.read_blocks or len(rows), len(rows))
    dataset = ray.data.from_items(rows, override_num_blocks=blocks)
    # The settings travel with the function (nothing secret in them: each worker
    # resolves its own credentials), so every worker reaches S3 as the flow was told to.
    s3 = storage.current_s3()
    attempts = _attempt_record()
    if scheduling.compute == "actors":
        mapped = dataset.map(
            _PartActor, fn_constructor_args=(fn, s3, attempts), **scheduling.map_options()
        )
    else:
        part = functools.partial(_run_part, fn, s3, attempts)
        mapped = dataset.map(part, **scheduling.map_options())
    done: dict[int, Done] = {}
    try:
        for row in mapped.iter_rows():
            part = Done(json.loads(row["result"]), row["node_id"], row["seconds"])
            done[row["index"]] = part
            if on_done is not None:
                on_done(len(done), len(items), part)
            if len(done) < len(items):
                deadline_check(deadline, f"run the {len(items) - len(done)} parts left")
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, InputError):
            raise type(cause)(str(cause)) from None
        raise
    finally:
        started = _attempts_and_kill(attempts)
    return [done[i]._replace(attempts=tuple(started.get(i, ()))) for i in range(len(items))]


def _attempts_and_kill(attempts: Any) -> dict[int, list[str]]:
    import ray

    if attempts is None:
        return {}
    try:
        return ray.get(attempts.all.remote(), timeout=60)
    except Exception as exc:  # the record is for the summary: a run is not failed for it
        log.warning("could not read the part attempts: %s", exc)
        return {}
    finally:
        ray.kill(attempts)


def missing_resources(scheduling: RayOptions | None) -> list[str]:
    """Custom resources the scheduling asks for that no live node offers right now.

    Parts asking for them wait until a node with them joins (an autoscaler may add
    one), so the stage says so instead of looking stuck.
    """
    import ray

    wanted = (scheduling.resources or {}) if scheduling else {}
    offered: set[str] = set()
    for node in ray.nodes():
        if node.get("Alive"):
            offered.update(node.get("Resources", {}))
    return sorted(name for name in wanted if name not in offered)


def node_type(resources: dict[str, float]) -> str:
    """A node's type as its custom resources name it (``Intel``, ``Graviton``), else "default"."""
    builtin = ("CPU", "GPU", "memory", "object_store_memory", "node:", "accelerator_type:")
    custom = sorted(r for r in resources if not r.startswith(builtin))
    return "+".join(custom) or "default"


def execution_summary(parts: list[Done], sizes: list[tuple[int, int]]) -> dict[str, Any]:
    """Per node: its type, CPUs, and the parts, rows, bytes and task seconds it did; the
    parts that ran more than once and the nodes lost while the stage ran.

    ``sizes`` holds (rows, bytes) for each part.
    """
    known = _nodes()
    nodes: dict[str, dict[str, Any]] = {}
    for part, (rows, size) in zip(parts, sizes, strict=True):
        node = nodes.get(part.node_id)
        if node is None:
            facts = _node_facts(part.node_id, known)
            node = nodes[part.node_id] = {**facts, "parts": 0, "rows": 0, "bytes": 0}
            node["task_seconds"] = 0.0
        node["parts"] += 1
        node["rows"] += rows
        node["bytes"] += size
        node["task_seconds"] = round(node["task_seconds"] + part.seconds, 3)
    redone = [
        {"part": index, "attempts": len(part.attempts), "nodes": list(part.attempts)}
        for index, part in enumerate(parts)
        if len(part.attempts) > 1
    ]
    tried = {node_id for part in parts for node_id in part.attempts}
    lost = [
        {
            **_node_facts(node_id, known),
            "parts_redone": sum(1 for r in redone if node_id in r["nodes"][:-1]),
        }
        for node_id in sorted(tried)
        if not known.get(node_id, {}).get("Alive", False)
    ]
    return {"nodes": list(nodes.values()), "redone_parts": redone, "lost_nodes": lost}


# What this process has seen of each node: Ray forgets a dead node's resources.
_SEEN_NODES: dict[str, dict[str, Any]] = {}


def _nodes() -> dict[str, dict[str, Any]]:
    """Every node Ray knows, alive or dead, with the resources it had when last seen alive."""
    import ray

    known = {}
    for node in ray.nodes():
        if node.get("Alive"):
            _SEEN_NODES[node["NodeID"]] = node
            known[node["NodeID"]] = node
        else:
            known[node["NodeID"]] = {**_SEEN_NODES.get(node["NodeID"], node), "Alive": False}
    return known


def _node_facts(node_id: str, known: dict[str, dict[str, Any]]) -> dict[str, Any]:
    info = known.get(node_id, {})
    resources = info.get("Resources", {})
    return {
        "node_id": node_id,
        "address": info.get("NodeManagerAddress"),
        "type": node_type(resources),
        "cpus": resources.get("CPU", 0),
        "object_store_bytes": int(resources.get("object_store_memory", 0)),
    }
