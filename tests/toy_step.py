"""A toy data step, upper-casing one column of a committed dataset, written the way a
new step is: one class on the step skeleton, a flow, and its options as a pipeline
step; nothing else anywhere but an entry in the steps union."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import pyarrow.compute as pc
import pyarrow.parquet as pq
from prefect import flow
from pydantic import BaseModel

from flows.pipeline_step import Source, StepRun, options_of
from flows.runner import PipelineRayTaskRunner, run_step_task
from tasks.cluster.options import RayOptions
from tasks.errors import InputError
from tasks.orchestration import deadline
from tasks.orchestration.exclusive import exclusive_output
from tasks.steps.skeleton import Counts, PartResult, Plan, Record, Step, total
from tasks.store import dataset, part_files, storage
from tasks.store.storage import Location


class UpperParams(BaseModel):
    input_uri: str
    column: str = "text"


@dataclass(frozen=True)
class UpperPart:
    output: Location  # locations carry the run's S3 settings to the worker
    index: int
    source: Location
    column: str


@dataclass(frozen=True)
class Changed(Counts):
    """Texts the step changed (any lower-case letter in them)."""

    changed: int = 0


class Upper(Step[UpperParams, None]):
    name = "upper"

    def prepare(self) -> int:
        self.source = storage.resolve(self.params.input_uri, self.run.s3)
        self.manifest = dataset.read_manifest(self.source)
        if self.manifest is None:
            raise InputError(f"{self.source.uri} is not a committed dataset")
        return self.manifest["size_bytes"]

    def plan(self) -> Plan[None]:
        files = [self.source.child(f["path"]) for f in self.manifest["files"]]
        specs = [UpperPart(self.run.output, i, f, self.params.column) for i, f in enumerate(files)]
        schema = pq.read_schema(files[0].path, filesystem=files[0].fs)
        return Plan(specs, schema, self.manifest["num_rows"])

    @staticmethod
    def write_part(spec: UpperPart) -> PartResult[Changed]:
        table = pq.read_table(spec.source.path, filesystem=spec.source.fs)
        at = table.schema.get_field_index(spec.column)
        upper = pc.utf8_upper(table[spec.column])
        changed = Changed(pc.sum(pc.not_equal(upper, table[spec.column])).as_py() or 0)
        table = table.set_column(at, spec.column, upper)
        entry = part_files.write_part(spec.output, spec.index, [table], table.schema)
        return PartResult(entry, counts=changed)

    def finish(self, state: None, parts: list[PartResult[Changed]]) -> Record:
        return Record(stats=dataclasses.asdict(total((p.counts for p in parts), Changed())))


@dataclass(frozen=True)
class NotedPart(UpperPart):
    notes: Location  # the companion's folder


class Noted(Upper):
    """The toy step keeping each part's rows as they were in a companion, ``notes``."""

    name = "noted"
    companions = ("notes",)

    def plan(self) -> Plan[None]:
        plan = super().plan()
        notes = self.run.companion("notes")
        specs = [NotedPart(*vars(s).values(), notes) for s in plan.specs]
        return Plan(specs, plan.schema, plan.expected_rows, {"notes": plan.schema})

    @staticmethod
    def write_part(spec: NotedPart) -> PartResult:
        table = pq.read_table(spec.source.path, filesystem=spec.source.fs)
        storage.make_dirs(spec.notes)
        notes = part_files.write_part(spec.notes, spec.index, [table], table.schema)
        return dataclasses.replace(Upper.write_part(spec), companions={"notes": notes})


class Stray(Upper):
    """A step with a bug: it leaves a file of its own beside its parts."""

    name = "stray"

    @staticmethod
    def write_part(spec: UpperPart) -> PartResult:
        result = Upper.write_part(spec)
        storage.write_bytes_atomic(spec.output.child(f"debug-{spec.index}.txt"), b"oops")
        return result


@flow(task_runner=PipelineRayTaskRunner())
def upper(
    input_uri: str, output_uri: str, column: str = "text", timeout_minutes: float | None = None
) -> dict:
    """The toy step as a flow runs any step: its task on Ray, holding the output's slot."""
    with exclusive_output(output_uri):
        return run_step_task(
            Upper,
            UpperParams(input_uri=input_uri, column=column),
            output_uri,
            deadline.after(timeout_minutes),
            scheduling=RayOptions(),
            s3=None,
        )


class UpperStep(options_of(upper)):
    """Upper-case one column."""

    name: ClassVar[str] = "upper"
    dataset: ClassVar[str] = "uppered"

    def run(self, source: Source, output_uri: str, run: StepRun) -> str:
        upper(source.uri, output_uri, **self.flow_options(), timeout_minutes=run.minutes_left())
        return storage.canonical_uri(output_uri)

    def output_bytes(self, input_bytes: int, rows: int) -> int:
        return input_bytes

    def reads(self) -> set[str]:
        return {self.column}
