"""The one skeleton every data step runs on, and what a step supplies to it.

A step is a small class (:class:`Step`, as a filter is one class in HF datatrove). It
has its parameters (one typed model) and supplies only what is its own:

- :meth:`Step.prepare`: check the parameters, read what it needs to know about its
  input, and say how many bytes it will write. Nothing is written yet.
- :meth:`Step.plan`: the output is now ours to write; run any pass of its own (into its
  ``staging_folders``) and return the typed specs of its parts, with what its passes
  found for :meth:`Step.finish` (``Plan.state``, typed by the step).
- :meth:`Step.write_part`: write one part on a Ray worker, idempotently: a part file at
  the output, and one in each of its ``companions`` (rejected rows, an index), the
  datasets it keeps beside the output (:func:`tasks.store.dataset.companion`).
- :meth:`Step.finish`: from the plan's state and the parts' typed :class:`Counts`
  (which add), what the manifest records beyond files and rows.
- :meth:`Step.tables` and :meth:`Step.summary_rows`: its own reports.

:func:`run_step` owns the guarantees every step gives: the free-space check from the
step's own estimate, an output location that is ours (what we did not write is never
touched), parts on Ray with per-part retries and node records, the deadline, the row
check, a check that the step wrote only its parts where it may, the manifests, staging
removed, and the commit, exactly once: the companions first, the output's manifest last
(the commit point, recording each companion's manifest digest). No Prefect here:
``tasks.orchestration`` runs it as a task and publishes its reports.
"""

from __future__ import annotations

import functools
import logging
import operator
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Generic, Self, TypeVar

import pyarrow as pa
from pydantic import BaseModel

from tasks.cluster.mapping import Done, map_items
from tasks.cluster.nodes import NodeBook, execution_summary
from tasks.cluster.options import RayOptions
from tasks.nightly import retention
from tasks.store import dataset, space, storage
from tasks.store.dataset import FileEntry
from tasks.store.storage import Location

log = logging.getLogger(__name__)

P = TypeVar("P", bound=BaseModel)
S = TypeVar("S")
OnDone = Callable[[int, int, Done], None]


@dataclass(frozen=True)
class Counts:
    """What a step counts in a part, as a dataclass of its own (fields with defaults):
    two add field by field, ints as numbers, dicts key by key (values added in turn),
    lists by joining, nested counts as counts; a run's are :func:`total` of its parts'.
    This base counts nothing."""

    def __add__(self, other: Self) -> Self:
        if type(other) is not type(self):
            return NotImplemented
        return type(self)(
            **{f.name: _added(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)}
        )


def _added(a: Any, b: Any) -> Any:
    if isinstance(a, dict):
        return {
            **a,
            **{key: _added(a[key], value) if key in a else value for key, value in b.items()},
        }
    return a + b


C = TypeVar("C", bound=Counts)


def total(counts: Iterable[C], start: C) -> C:
    """``start`` plus every one of ``counts`` (``start``: the zero, or the keys that
    must be there however few parts there are)."""
    return functools.reduce(operator.add, counts, start)


@dataclass(frozen=True)
class PartResult(Generic[C]):
    """What writing one part gives back: its file (and any further ``files``), the bytes
    of text it held (for the throughput figures), the step's own counts for it (typed,
    :class:`Counts`), and its file in each companion.
    Rows of its input that went to a companion instead (a filter's rejected rows) are
    counted by ``set_aside`` (which names that companion)."""

    entry: FileEntry
    text_bytes: int = 0
    counts: C = Counts()  # type: ignore[assignment]
    companions: dict[str, FileEntry] = field(default_factory=dict)
    set_aside: str | None = None
    # Further files of the part at the output, of no rows (a tokenized shard's index).
    files: tuple[FileEntry, ...] = ()

    @property
    def rows_accounted(self) -> int:
        """The input rows this part holds, set-aside ones included."""
        aside = self.companions[self.set_aside].num_rows if self.set_aside else 0
        return self.entry.num_rows + aside


@dataclass(frozen=True)
class Plan(Generic[S]):
    """The parts to write (typed specs, one per part file), the schema they share, how
    many rows they must hold between them (set-aside rows included), the schema of
    each companion's files, and ``state``: what the step's own passes found that its
    :meth:`Step.finish` records (typed by the step; None if it has none)."""

    specs: Sequence[Any]
    schema: pa.Schema
    expected_rows: int
    companions: dict[str, pa.Schema] = field(default_factory=dict)
    state: S = None  # type: ignore[assignment]


@dataclass
class Record:
    """What a step's manifest records beyond its files, rows and schema: ``resolved``,
    the values it settled over its parameters (the input it found, a count it
    computed), recorded over its whole parameters model; ``sections``, top-level keys
    of its own."""

    stats: dict[str, Any]
    inputs: dict[str, Any] | None = None
    sections: dict[str, Any] = field(default_factory=dict)
    resolved: dict[str, Any] = field(default_factory=dict)


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
    companions: tuple[str, ...] = ()  # the step's (Step.companions)
    scheduling: RayOptions = field(default_factory=RayOptions)
    s3: storage.S3Settings | None = None
    deadline: float | None = None
    on_done: OnDone | None = None
    on_phase: Callable[[str], None] = log.info
    nodes: NodeBook = field(default_factory=NodeBook)

    def companion(self, name: str) -> Location:
        """Where the output's companion ``name`` goes (beside the output, never in it)."""
        return dataset.companion(self.output, name)

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


class Step(ABC, Generic[P, S]):
    """A data step: what it has of its own. One instance serves one run: its
    :meth:`prepare` may keep what it found of its input on the instance (settled before
    anything is written); what later passes find travels in ``Plan.state``."""

    name: ClassVar[str]  # the manifest's stage, the artifacts' and task's prefix
    # Folders inside the output a run writes besides its parts, removed before the commit.
    staging_folders: ClassVar[tuple[str, ...]] = ()
    # Datasets the step keeps beside its output (``Run.companion``), one file per part.
    companions: ClassVar[tuple[str, ...]] = ()
    # The suffixes of its part files; recorded in its marks, so that only where a mark
    # names them is a ``part-00000.bin`` ours.
    part_suffixes: ClassVar[tuple[str, ...]] = dataset.PARQUET

    def __init__(self, params: P, run: Run) -> None:
        self.params, self.run = params, run

    @abstractmethod
    def prepare(self) -> int:
        """Check the parameters and the input; return about how many bytes the step
        writes at the output. Nothing may be written here."""

    @abstractmethod
    def plan(self) -> Plan[S]:
        """The parts to write; passes of the step's own may run first (``self.run.map``),
        what they found handed on as the plan's ``state``."""

    @staticmethod
    @abstractmethod
    def write_part(spec: Any) -> PartResult:
        """Write one part as its spec says, on a Ray worker; a rerun writes the same bytes."""

    @abstractmethod
    def finish(self, state: S, parts: list[PartResult]) -> Record:
        """What the manifest records, once every part is written: from the plan's
        ``state`` and what each part gave back, in part order."""

    @classmethod
    def tables(cls, manifest: dict[str, Any]) -> list[ReportTable]:
        """Report tables of the step's own (beyond the summary, nodes and links)."""
        return []

    @classmethod
    def summary_rows(cls, manifest: dict[str, Any]) -> list[tuple[str, Any]]:
        """Rows the step adds to its ``{step}-summary`` table."""
        return []


def run_step(
    step_type: type[Step[P, Any]],
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
        step_type.companions,
        scheduling or RayOptions(),
        s3,
        deadline,
        on_done,
        on_phase,
    )
    step = step_type(params, run)
    needed = step.prepare()
    space.check_free_space(run.output, needed, step.name)
    # Every location is checked before any is changed (the output by its own prepare,
    # which refuses before it writes); the output is uncommitted first: from here until
    # its new manifest lands, no reader takes it and its companions for a committed pair.
    for name in step.companions:
        dataset.check_output(run.companion(name), companion=name)
    leftovers = dataset.prepare_output(
        run.output,
        step.staging_folders,
        suffixes=step.part_suffixes,
        companions=step.companions,
    )
    beside = {
        name: dataset.prepare_output(
            run.companion(name), companion=name, companion_of=run.output.uri
        )
        for name in step.companions
    }
    plan = step.plan()
    parts = run.map(step.write_part, plan.specs, parts=True)
    results: list[PartResult] = [part.result for part in parts]
    record = step.finish(plan.state, results)
    undeclared = {n for r in results for n in r.companions} - set(step.companions)
    if undeclared:
        raise RuntimeError(f"{step.name} wrote companions it does not declare: {undeclared}")
    rows = sum(result.rows_accounted for result in results)
    if rows != plan.expected_rows:
        raise RuntimeError(
            f"{step.name} wrote {rows} rows at {run.output.uri}, expected {plan.expected_rows}"
        )
    output_files = [entry for r in results for entry in (r.entry, *r.files)]
    if any(entry.num_rows for r in results for entry in r.files):
        raise RuntimeError(f"{step.name} counted rows in a part's further files")
    check_written(
        step.name, run.output, output_files, leftovers, step.staging_folders, step.part_suffixes
    )
    written = {n: [r.companions[n] for r in results if n in r.companions] for n in beside}
    for name, entries in written.items():
        check_written(f"{step.name} ({name})", run.companion(name), entries, beside[name])
    execution = execution_summary(
        parts, [(r.entry.num_rows, r.text_bytes) for r in results], run.nodes
    )
    # Staging goes before the commit: a run killed after it leaves none behind. One
    # killed before it leaves its staging under our marker: the date's rerun removes it
    # (retention leaves a write that never committed alone: it removes datasets).
    for folder in step.staging_folders:
        remove_staging(run.output.child(folder), step.part_suffixes)
    # The companions commit first, then the output, whose manifest records each one's
    # digest: a run killed between leaves the output uncommitted (its rerun writes
    # both again), never an output whose companion is missing or another run's.
    committed: dict[str, Any] = {}
    for name, entries in written.items():
        where = run.companion(name)
        side = dataset.build_manifest(
            entries,
            plan.companions[name],
            stage=f"{step.name}.{name}",
            companion=name,
            companion_of=run.output.uri,
        )
        digest = dataset.commit(where, side, beside[name], deadline)
        committed[name] = {"uri": where.uri, "manifest_sha256": digest}
    manifest = dataset.build_manifest(
        output_files,
        plan.schema,
        stage=step.name,
        **(
            {"part_suffixes": list(step.part_suffixes)}
            if step.part_suffixes != dataset.PARQUET
            else {}
        ),
        # The parameters model whole, so that a knob added to it is recorded with no
        # further line; what the step resolved over it.
        parameters={**step.params.model_dump(mode="json"), **record.resolved},
        **({"inputs": record.inputs} if record.inputs is not None else {}),
        stats=record.stats,
        **record.sections,
        **({"companions": committed} if committed else {}),
        timings={"total_seconds": round(time.monotonic() - started, 3)},
        execution=execution,
    )
    # The companions an older dataset here had and this one has not go before the
    # commit: once it lands, nothing would name them as this dataset's.
    for name in leftovers.companions:
        if name not in committed:
            retention.remove_companion(run.companion(name), name)
    dataset.commit(run.output, manifest, leftovers, deadline)
    return manifest


def check_written(
    step: str,
    root: Location,
    entries: list[FileEntry],
    leftovers: list[str],
    staging: Sequence[str] = (),
    suffixes: Sequence[str] = dataset.PARQUET,
) -> None:
    """Refuse to commit unless ``root`` holds exactly what the step may leave there: its
    parts (part-named, at the top, as big as the entries say), our control files, our
    leftovers (which the commit deletes) and part-named files in its staging folders
    (anything else there would outlive the staging's removal)."""
    listed = {e.path: e.size_bytes for e in entries}
    bad_names = [p for p in listed if not dataset.is_part_name(p, suffixes)]
    if bad_names or len(listed) != len(entries):
        raise RuntimeError(f"{step} named parts it may not write at {root.uri}: {bad_names}")
    found = {
        Location(root.scheme, f.path).relative_to(root): f.size for f in storage.list_files(root)
    }
    missing = [p for p, size in listed.items() if found.get(p) != size]

    def staged(path: str) -> bool:  # a part-named file of ours in a staging folder
        folder, _, name = path.rpartition("/")
        return folder in staging and dataset.is_own_file(name, (), suffixes)

    stray = [
        p
        for p in found
        if p not in listed
        and p not in leftovers
        and p not in (dataset.WRITING_NAME, dataset.MANIFEST_NAME)
        and not staged(p)
    ]
    if missing or stray:
        raise RuntimeError(
            f"{step} wrote what it may not commit at {root.uri}: "
            + "; ".join(
                [f"part {p} missing or not the size it reported" for p in missing[:5]]
                + [f"{p} is not one of its parts" for p in stray[:5]]
            )
        )


def remove_staging(folder: Location, suffixes: Sequence[str] = dataset.PARQUET) -> None:
    """Delete our part-named files in a staging folder, then the folder if empty."""
    for relative in dataset.own_files(folder, suffixes=suffixes):
        storage.delete_file(folder.child(relative))
    storage.remove_empty_dir(folder)
