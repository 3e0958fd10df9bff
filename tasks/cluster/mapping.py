"""Running one function per part file on the cluster with Ray Data.

Each item (a small typed spec: which rows or input slices go into which part, pickled)
becomes one Ray Data block, so Ray Data schedules, streams and retries the parts while
the part function does its own reading and writing under a deterministic name.
"""

from __future__ import annotations

import functools
import logging
import pickle
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from tasks.cluster.nodes import NodeBook
from tasks.cluster.options import RayOptions
from tasks.errors import InputError, TransientPartError
from tasks.orchestration.deadline import check as deadline_check
from tasks.orchestration.retry import is_transient
from tasks.store import storage

Item = Any  # a part's spec or result: anything that pickles

log = logging.getLogger(__name__)


class Done(NamedTuple):
    """One finished part: what ``fn`` returned, where it ran, how long it took, and the
    nodes its attempts started on, when they were tracked (a cluster of several nodes)."""

    result: Item
    node_id: str
    seconds: float
    attempts: tuple[str, ...] = ()


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


def _attempt_record(book: NodeBook) -> Any:
    """An :class:`_Attempts` actor when the cluster has several nodes, else None (one
    node cannot be lost while the run goes on, and the actor's process is not free)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if sum(1 for node in book.look().values() if node.get("Alive")) < 2:
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

    def __init__(self, fn: Callable[[Item], Item], attempts: Any):
        self.fn, self.attempts = fn, attempts

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        return _run_part(self.fn, self.attempts, row)


def _run_part(fn: Callable[[Item], Item], attempts: Any, row: dict[str, Any]) -> dict[str, Any]:
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
    # The spec carries its locations, each with the S3 settings it is reached with.
    item = pickle.loads(row["item"])
    try:
        # Parts are idempotent: one refused by S3 runs again with fresh credentials.
        result = storage.with_fresh_credentials(lambda: fn(item))
    except Exception as exc:
        if is_transient(exc):  # Ray Data retries this part alone (see map_options)
            raise TransientPartError(f"part {row['index']}: {exc}") from exc
        raise
    return {
        "index": row["index"],
        "result": pickle.dumps(result),
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
    book: NodeBook | None = None,
) -> list[Done]:
    """``fn(item)`` for every item, run by Ray Data as ``scheduling`` says.

    Results stream back as parts finish; ``on_done(done, total, part)`` is called for
    each, in the caller's process. Past ``deadline`` (epoch seconds) the job stops with
    :class:`DeadlineExceeded` as the next part finishes. Errors from ``fn`` surface with
    their own type, so a bad input fails the stage as an :class:`InputError` instead of a
    generic wrapper. ``book`` keeps what is seen of the nodes for the run's summary.
    Returns the parts in the order of ``items``.
    """
    import ray
    import ray.data

    if not items:
        return []
    deadline_check(deadline, f"run {len(items)} parts")
    scheduling = scheduling or RayOptions()
    rows = [{"index": i, "item": pickle.dumps(item)} for i, item in enumerate(items)]
    blocks = min(scheduling.read_blocks or len(rows), len(rows))
    dataset = ray.data.from_items(rows, override_num_blocks=blocks)
    # This job's own copy of Ray Data's settings (the process-wide one is left alone):
    # a part's error surfaces as itself, not as Ray Data's UserCodeException.
    dataset.context.raise_original_map_exception = True
    attempts = _attempt_record(book or NodeBook())
    if scheduling.compute == "actors":
        mapped = dataset.map(
            _PartActor, fn_constructor_args=(fn, attempts), **scheduling.map_options()
        )
    else:
        part = functools.partial(_run_part, fn, attempts)
        mapped = dataset.map(part, **scheduling.map_options())
    done: dict[int, Done] = {}
    try:
        for row in mapped.iter_rows():
            part = Done(pickle.loads(row["result"]), row["node_id"], row["seconds"])
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
