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


class UpperParams(BaseModel):
    input_uri: str
    column: str = "text"


@dataclass(frozen=True)
class UpperPart:
    output_uri: str
    index: int
    uri: str
    column: str


class Upper(Step[UpperParams]):
    name = "upper"

    def prepare(self) -> int:
        self.source = storage.resolve(self.params.input_uri)
        self.manifest = dataset.read_manifest(self.source)
        if self.manifest is None:
            raise InputError(f"{self.source.uri} is not a committed dataset")
        return self.manifest["size_bytes"]

    def plan(self) -> Plan:
        files = [self.source.child(f["path"]).uri for f in self.manifest["files"]]
        specs = [
            UpperPart(self.run.output.uri, i, uri, self.params.column)
            for i, uri in enumerate(files)
        ]
        return Plan(specs, pq.read_schema(files[0]), self.manifest["num_rows"])

    @staticmethod
    def write_part(spec: UpperPart) -> PartResult:
        table = pq.read_table(spec.uri)
        at = table.schema.get_field_index(spec.column)
        table = table.set_column(at, spec.column, pc.utf8_upper(table[spec.column]))
        root = storage.resolve(spec.output_uri)
        return PartResult(part_files.write_part(root, spec.index, [table], table.schema))

    def finish(self, parts: list) -> Record:
        return Record(parameters=self.params.model_dump(), stats={})
