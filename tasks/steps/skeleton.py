"""The one skeleton every data step runs on, and what a step supplies to it.

A step is a small class (:class:`Step`, as a filter is one class in HF datatrove). It
has its parameters (one typed model) and supplies only what is its own:

- :meth:`Step.prepare`: check the parameters, read what it needs to know about its
  input, and say how many bytes it will write. Nothing is written yet.
- :meth:`Step.plan`: the output is now ours to write; run any pass of its own (into its
  ``side_folders``) and return the typed specs of its parts.
- :meth:`Step.write_part`: write one part on a Ray worker, idempotently.
- :meth:`Step.finish`: what the manifest records beyond files and rows.
- :meth:`Step.tables` and :meth:`Step.summary_rows`: its own reports.

:func:`run_step` owns the guarantees every step gives: the free-space check from the
step's own estimate, an output location that is ours (what we did not write is never
touched), parts on Ray with per-part retries and node records, the deadline, the row
check, the manifest, staging removed, and the commit, exactly once. No Prefect here:
``tasks.orchestration`` runs it as a task and publishes its reports.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import pyarrow as pa
from pydantic import BaseModel

from tasks.cluster.mapping import Done, map_items
from tasks.cluster.nodes import NodeBook, execution_summary
from tasks.cluster.options import RayOptions
from tasks.nightly import space
from tasks.store import dataset, storage
from tasks.store.dataset import FileEntry
from tasks.store.storage import Location

log = logging.getLogger(__name__)

P = TypeVar("P", bound=BaseModel)
OnDone = Callable[[int, int, Done], None]


@dataclass(frozen=True)
class PartResult:
    """What writing one part gives back: its file, the bytes of text it held (for the
    throughput figures), the rows it set aside in a side file instead (a filter's
    rejected rows), and the step's own counts for it."""

    entry: FileEntry
    text_bytes: int = 0
    counts: dict[str, Any] = field(default_factory=dict)
    set_aside: int = 0


@dataclass(frozen=True)
class Plan:
    """The parts to write (typed specs, one per part file), the schema they share, and
    how many rows they must hold between them (set-aside rows included)."""

    specs: Sequence[Any]
    schema: pa.Schema
    expected_rows: int


@dataclass
class Record:
    """What a step's manifest records beyond its files, rows and schema: ``sections``
    are top-level keys of its own, ``side_files`` the files it keeps in its side folders
    (listed in the manifest apart from ``files``)."""

    parameters: dict[str, Any]
    stats: dict[str, Any]
    inputs: dict[str, Any] | None = None
    sections: dict[str, Any] = field(default_factory=dict)
    side_files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReportTable:
    """One table artifact of a step's own, published as ``{step}-{key}``."""

    key: str
    rows: list[dict[str, Any]]
    description: str


@dataclass
class Run:
    """One run of a step: where it writes, how its parts run, its deadline, and who
    hears of its parts and phases."""

    output: Location  # with the S3 settings of the run (each spec carries its locations)
    scheduling: RayOptions = field(default_factory=RayOptions)
    s3: storage.S3Settings | None = None
    deadline: float | None = None
    on_done: OnDone | None = None
    on_phase: Callable[[str], None] = log.info
    nodes: NodeBook = field(default_factory=NodeBook)

    def map(
        self, fn: Callable[[Any], Any], specs: Sequence[Any], *, parts: bool = False
    ) -> list[Done]:
        """``fn(spec)`` for every spec on Ray, with per-part retries and the deadline;
        ``parts`` says these are the output's parts (``on_done`` hears of each)."""
        return map_items(
            fn,
            list(specs),
            scheduling=self.scheduling,
            on_done=self.on_done if parts else None,
            deadline=self.deadline,
            book=self.nodes,
        )


class Step(ABC, Generic[P]):
    """A data step: what it has of its own. One instance serves one run."""

    name: ClassVar[str]  # the manifest's stage, the artifacts' and task's prefix
    # Folders inside the output the step writes besides its parts; the staging ones are
    # removed before the commit, the others are listed in the manifest's side_files.
    side_folders: ClassVar[tuple[str, ...]] = ()
    staging_folders: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: P, run: Run) -> None:
        self.params, self.run = params, run

    @abstractmethod
    def prepare(self) -> int:
        """Check the parameters and the input; return about how many bytes the step
        writes at the output. Nothing may be written here."""

    @abstractmethod
    def plan(self) -> Plan:
        """The parts to write; passes of the step's own may run first (``self.run.map``)."""

    @staticmethod
    @abstractmethod
    def write_part(spec: Any) -> PartResult:
        """Write one part as its spec says, on a Ray worker; a rerun writes the same bytes."""

    @abstractmethod
    def finish(self, parts: list[Done]) -> Record:
        """What the manifest records, once every part is written."""

    @classmethod
    def tables(cls, manifest: dict[str, Any]) -> list[ReportTable]:
        """Report tables of the step's own (beyond the summary, nodes and links)."""
        return []

    @classmethod
    def summary_rows(cls, manifest: dict[str, Any]) -> list[tuple[str, Any]]:
        """Rows the step adds to its ``{step}-summary`` table."""
        return []


def run_step(
    step_type: type[Step[P]],
    params: P,
    output_uri: str,
    scheduling: RayOptions | None = None,
    *,
    s3: storage.S3Settings | None = None,
    deadline: float | None = None,
    on_done: OnDone | None = None,
    on_phase: Callable[[str], None] = log.info,
) -> dict[str, Any]:
    """Run one step into a committed dataset at ``output_uri``; return its manifest.
    ``s3`` says how this run reaches S3 (None: as each process's environment says).

    A bad parameter or input fails before the output is touched; an output holding
    files we did not write is refused; past ``deadline`` (epoch seconds) nothing is
    committed; a rerun after a kill at any point writes the same bytes.
    """
    started = time.monotonic()
    run = Run(
        storage.resolve(output_uri, s3),
        scheduling or RayOptions(),
        s3,
        deadline,
        on_done,
        on_phase,
    )
    step = step_type(params, run)
    needed = step.prepare()
    space.check_free_space(run.output, needed, step.name)
    leftovers = dataset.prepare_output(run.output, step.side_folders)
    plan = step.plan()
    parts = run.map(step.write_part, plan.specs, parts=True)
    record = step.finish(parts)
    results: list[PartResult] = [part.result for part in parts]
    rows = sum(result.entry.num_rows + result.set_aside for result in results)
    if rows != plan.expected_rows:
        raise RuntimeError(
            f"{step.name} wrote {rows} rows at {run.output.uri}, expected {plan.expected_rows}"
        )
    manifest = dataset.build_manifest(
        [result.entry for result in results],
        plan.schema,
        stage=step.name,
        parameters=record.parameters,
        **({"inputs": record.inputs} if record.inputs is not None else {}),
        stats=record.stats,
        **record.sections,
        side_folders=[f for f in step.side_folders if f not in step.staging_folders],
        side_files=record.side_files,
        timings={"total_seconds": round(time.monotonic() - started, 3)},
        execution=execution_summary(
            parts, [(r.entry.num_rows, r.text_bytes) for r in results], run.nodes
        ),
    )
    # Staging goes before the commit: a run killed after it leaves none behind (and a
    # rerun or retention removes our marker and anything of ours left).
    for folder in step.staging_folders:
        remove_staging(run.output.child(folder))
    dataset.commit(run.output, manifest, leftovers, deadline)
    return manifest


def remove_staging(folder: Location) -> None:
    """Delete our part-named files in a staging folder, then the folder if empty."""
    for relative in dataset.own_files(folder):
        storage.delete_file(folder.child(relative))
    storage.remove_empty_dir(folder)
