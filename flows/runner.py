"""Where the flows run: prefect-ray's task runner, wired for this project, and how a flow
runs a stage task on it."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import ray
from prefect import Task, get_run_logger
from prefect.blocks.core import Block
from prefect.context import FlowRunContext
from prefect.task_runners import TaskRunner
from prefect_ray import RayTaskRunner
from prefect_ray.context import remote_options
from pydantic import BaseModel
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from flows import runs
from tasks.cluster.options import RayInit, RayOptions
from tasks.errors import DeadlineExceeded
from tasks.orchestration import deadline as deadlines
from tasks.orchestration.health import HealthBounds
from tasks.orchestration.health import report as health_report
from tasks.orchestration.tasks import step_reference, task_for
from tasks.steps.skeleton import Step
from tasks.store import dataset, storage
from tasks.store.storage import saved_block_id

R = TypeVar("R")


# Run by Ray in each new worker process of a flow run's Ray (tasks/cluster/worker.py).
WORKER_SETUP = "tasks.cluster.worker.setup"


class PipelineRayTaskRunner(RayTaskRunner):
    """``RayTaskRunner`` that joins the cluster in ``RAY_ADDRESS`` or starts its own.

    The address is read when a flow run starts, not at import; ``RAY_ADDRESS=auto``
    joins the cluster of the node the flow runs on. Without ``RAY_ADDRESS`` a fresh local
    Ray is started ("local"), where a bare ``ray.init()`` would attach to whichever
    cluster last ran on this host; it starts when the flow first needs it, so that the
    flow's ``ray.init`` parameter can size it (see :func:`start_ray`). A Ray instance
    already running in this process (a parent flow's, or the test suite's) is reused.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started_ray = False  # whether start_local started this run's Ray

    def __enter__(self):
        if self.address is None:
            self.address = os.environ.get("RAY_ADDRESS") or "local"
        if not ray.is_initialized():
            runtime_env = self.init_kwargs.setdefault("runtime_env", {})
            # Every worker of this run sets its process-wide settings once, as it starts.
            runtime_env.setdefault("worker_process_setup_hook", WORKER_SETUP)
        if self.address == "local" and not ray.is_initialized():
            TaskRunner.__enter__(self)  # Prefect's bookkeeping; Ray starts in start_ray
            return self
        if not ray.is_initialized():  # joining a cluster: its nodes run this run's code
            runtime_env = self.init_kwargs["runtime_env"]
            if "working_dir" not in runtime_env and "py_modules" not in runtime_env:
                runtime_env.update(code_runtime_env())
        return super().__enter__()

    def start_local(self, options: dict[str, Any]) -> None:
        """Start this run's local Ray with ``options``; it is shut down with the runner."""
        self.logger.info("Creating a local Ray instance (%s)", options or "defaults")
        ray.init("local", **self.init_kwargs, **options)
        self.started_ray = True

    def __exit__(self, *exc_info: Any) -> None:
        super().__exit__(*exc_info)
        # prefect-ray shuts down only a Ray its own __enter__ started; this one is ours.
        if self.started_ray:
            self.started_ray = False
            ray.shutdown()

    def submit(self, *args: Any, **kwargs: Any):
        if not ray.is_initialized():
            self.start_local({})
        with _blocks_as_references():
            return super().submit(*args, **kwargs)


@contextlib.contextmanager
def _blocks_as_references() -> Iterator[None]:
    """The flow run's block parameters as references while a task is submitted.

    prefect-ray ships the flow run's context, parameters included and secrets revealed,
    with every task it submits: an ``AwsCredentials`` block's keys would be pickled into
    the task's arguments. A task that needs a block loads it by its reference instead.
    """
    context = FlowRunContext.get()
    blocks = {
        name: value
        for name, value in (context.parameters if context else {}).items()
        if isinstance(value, Block)
    }
    if not blocks:
        yield
        return
    references = {name: _reference(block) for name, block in blocks.items()}

    with context.model_copy(update={"parameters": {**context.parameters, **references}}):
        yield


def _reference(block: Block) -> dict[str, Any] | None:
    """``{"$ref": {"block_document_id": ...}}`` for a saved block; None for an unsaved
    one (nothing to refer to, and nothing to ship)."""
    block_id = saved_block_id(block)
    return {"$ref": {"block_document_id": block_id}} if block_id else None


# What a checkout holds besides code: never shipped (Ray also skips what .gitignore names).
SHIP_EXCLUDES = [".git", ".venv", ".tools", ".prefect", ".run", "/data", "/docs", "**/__pycache__"]


def code_runtime_env() -> dict[str, Any]:
    """Ray's ``runtime_env`` that ships this flow run's own code to every node.

    The checkout (the directory holding the ``tasks`` package) becomes the job's
    ``working_dir``: each worker imports the project from its unpacked copy of it, ahead
    of any copy the node has, even one at the same path (``py_modules`` alone would lose
    to the driver's directory, which Ray puts first on a worker's ``sys.path`` unless a
    ``working_dir`` is set). Ray uploads it once per distinct content. Dependencies stay
    installed on the nodes.
    """
    import flows
    import tasks

    root = Path(tasks.__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file():
        return {"working_dir": str(root), "excludes": list(SHIP_EXCLUDES)}
    # Installed as a package, not run from a checkout: ship the packages themselves.
    return {"py_modules": [tasks, flows]}


def ray_init_options(init: RayInit | None) -> dict[str, Any]:
    """``ray.init`` keyword arguments for a flow run's own local Ray."""
    options: dict[str, Any] = (init or RayInit()).model_dump(exclude_none=True)
    spill_dir = options.pop("spill_dir", None)
    if spill_dir is not None:
        spilling = {"type": "filesystem", "params": {"directory_path": str(spill_dir)}}
        options["_system_config"] = {"object_spilling_config": json.dumps(spilling)}
    return options


def start_ray(init: RayInit | None) -> None:
    """Start the flow run's local Ray as ``init`` says if it has not started yet.

    When the run joins a running Ray (``RAY_ADDRESS``, a parent flow's, the tests'),
    that Ray's own settings hold and ``init`` is ignored, with a warning if given.
    """
    options = ray_init_options(init)
    context = FlowRunContext.get()
    runner = context.task_runner if context else None
    if ray.is_initialized() or not isinstance(runner, PipelineRayTaskRunner):
        if options:
            get_run_logger().warning("ray.init is ignored: this run uses a Ray already running")
        return
    runner.start_local(options)


def run_stage(
    stage: Task[..., R],
    name: str,
    where: str,
    deadline: float | None = None,
    *,
    commits: bool | None = None,
    **parameters: Any,
) -> R:
    """Run a stage task on Ray and return its result.

    The flow run and the task run are tagged with the stage ``name`` and the kind of
    storage ``where`` it writes. The task only drives a Ray Data job, so it reserves no
    CPU: holding one while the job waits for CPUs deadlocks a small machine. Past
    ``deadline`` (epoch seconds, also given to the task) the task is cancelled, which
    stops its Ray Data job, and :class:`DeadlineExceeded` is raised; the task itself
    refuses to commit after the deadline, so nothing it wrote is left looking committed.

    A stage that ``commits`` a dataset at ``where`` (by default: one whose ``output_uri``
    is ``where``) is committed once its manifest is written, whatever follows: when the
    task is cancelled at the deadline, or fails, after writing a new manifest (cleanup or
    reports still running), that manifest is returned with a warning. The caller holds
    the output's write slot, so a manifest that was not there before is this run's.
    """
    runs.tag_flow_run(name, where)
    options: dict[str, Any] = {"num_cpus": 0}
    if ray.is_initialized():
        # On the flow run's own node if it can: it outlives the worker nodes, which an
        # autoscaler or a spot market may take away while their parts are retried elsewhere.
        here = ray.get_runtime_context().get_node_id()
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(here, soft=True)
    if deadline is not None:
        parameters["deadline"] = deadline
    if commits is None:
        commits = parameters.get("output_uri") == where
    output = _Output(where, parameters.get("s3")) if commits else None
    with remote_options(**options), runs.tagged(name, where):
        future = stage.submit(**parameters)
    remaining = deadlines.remaining(deadline)
    if remaining is not None:
        # The task notices the deadline itself as its next part finishes; the grace lets
        # it say so before it is cancelled.
        ready, _ = ray.wait([future.wrapped_future], timeout=remaining + CANCEL_GRACE_SECONDS)
        if not ready:
            ray.cancel(future.wrapped_future, force=True)
            runs.mark_cancelled(future.task_run_id, "cancelled: the flow run's timeout passed")
            if output is not None:
                # Let the cancellation land first: a dead task can no longer commit.
                ray.wait([future.wrapped_future], timeout=CANCEL_GRACE_SECONDS)
                if (manifest := output.new_manifest()) is not None:
                    get_run_logger().warning(
                        "%s of %s committed at %s but was still cleaning up/reporting past "
                        "the timeout; cancelled after the commit",
                        name,
                        where,
                        manifest.get("committed_at"),
                    )
                    return manifest  # type: ignore[return-value]
            runs.mark_failed_step(name)
            raise DeadlineExceeded(
                f"{name} of {where} was still running {CANCEL_GRACE_SECONDS:.0f} s after the "
                "run's timeout and was cancelled; nothing of it is committed"
            )
    try:
        return future.result()
    except Exception as exc:
        manifest = output.new_manifest() if output is not None else None
        if manifest is None:
            runs.mark_failed_step(name)
            raise
        get_run_logger().warning(
            "%s of %s committed at %s but failed after the commit (%s: %s); the output "
            "stays committed",
            name,
            where,
            manifest.get("committed_at"),
            type(exc).__name__,
            exc,
        )
        return manifest  # type: ignore[return-value]


def run_step_task(
    step: type[Step],
    params: BaseModel,
    output: str,
    deadline: float | None,
    *,
    scheduling: RayOptions,
    s3: storage.S3Settings | None,
    health: HealthBounds | None = None,
) -> dict[str, Any]:
    """Run the data ``step`` with ``params`` into ``output`` as its Prefect task on Ray
    (:func:`run_stage`), then report its data health under ``health``'s bounds (the
    defaults when None); the committed manifest."""
    started = time.monotonic()
    manifest = run_stage(
        task_for(step),
        step.name,
        output,
        deadline,
        s3=s3,
        step=step_reference(step),
        params=params,
        output_uri=output,
        scheduling=scheduling,
    )
    seconds = time.monotonic() - started
    source = getattr(params, "input_uri", None)
    health_report(step.name, source, output, manifest, seconds, health or HealthBounds(), s3)
    return manifest


class _Output:
    """The dataset a stage writes at ``where``: whether it has a manifest now that it did
    not have when the stage was submitted (``s3``: the stage's S3 settings)."""

    def __init__(self, where: str, s3: storage.S3Settings | None) -> None:
        self.where, self.s3 = where, s3
        self.known = True
        self.before: str | None = None
        try:
            self.before = self._fingerprint()
        except Exception as exc:  # the stage itself reports an unreadable output
            self.known = False
            get_run_logger().warning(
                "could not read the manifest of %s before the stage (%s): a failure after "
                "its commit will be reported as a failure",
                where,
                exc,
            )

    def _fingerprint(self) -> str | None:
        return dataset.manifest_fingerprint(storage.resolve(self.where, self.s3))

    def new_manifest(self) -> dict[str, Any] | None:
        """The manifest committed since the stage was submitted, or None (no manifest, the
        one from before, or one that cannot be read)."""
        if not self.known:
            return None
        try:
            root = storage.resolve(self.where, self.s3)
            fingerprint = dataset.manifest_fingerprint(root)
            if fingerprint is None or fingerprint == self.before:
                return None
            return dataset.read_manifest(root)
        except Exception as exc:
            get_run_logger().warning("could not read the manifest of %s: %s", self.where, exc)
            return None


# How long past the deadline a stage may take to stop by itself before it is cancelled.
CANCEL_GRACE_SECONDS = 10.0
