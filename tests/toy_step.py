"""A toy data step, upper-casing one column of a committed dataset, written the way a
new step is: one class on the step skeleton, and nothing else anywhere."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel

from tasks.errors import InputError
from tasks.steps.skeleton import PartResult, Plan, Record, Step
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


class Upper(Step[UpperParams]):
    name = "upper"

    def prepare(self) -> int:
        self.source = storage.resolve(self.params.input_uri, self.run.s3)
        self.manifest = dataset.read_manifest(self.source)
        if self.manifest is None:
            raise InputError(f"{self.source.uri} is not a committed dataset")
        return self.manifest["size_bytes"]

    def plan(self) -> Plan:
        files = [self.source.child(f["path"]) for f in self.manifest["files"]]
        specs = [UpperPart(self.run.output, i, f, self.params.column) for i, f in enumerate(files)]
        schema = pq.read_schema(files[0].path, filesystem=files[0].fs)
        return Plan(specs, schema, self.manifest["num_rows"])

    @staticmethod
    def write_part(spec: UpperPart) -> PartResult:
        table = pq.read_table(spec.source.path, filesystem=spec.source.fs)
        at = table.schema.get_field_index(spec.column)
        table = table.set_column(at, spec.column, pc.utf8_upper(table[spec.column]))
        return PartResult(part_files.write_part(spec.output, spec.index, [table], table.schema))

    def finish(self, parts: list) -> Record:
        return Record(parameters=self.params.model_dump(), stats={})
