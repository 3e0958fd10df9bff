"""Step 3 of the seed: clean the ``text`` column for LLM training, Parquet in and out.

Each output part reads its slice of the input, cleans it batch by batch and streams it
to Parquet in the same task, so memory stays flat and nothing is shuffled.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from tasks.errors import InputError
from tasks.steps import reading
from tasks.steps.preprocess import counters
from tasks.steps.preprocess.clean import CLEANED_COLUMN, check_input_schema, clean_batch
from tasks.steps.skeleton import PartResult, Plan, Record, ReportTable, Step, total
from tasks.store import dataset, inputs, part_files
from tasks.store.storage import Location


class PreprocessParams(BaseModel):
    """What to clean and how the output is cut (see the preprocess flow's arguments)."""

    model_config = ConfigDict(frozen=True)

    input_uri: str
    input_format: str = "auto"
    text_column: str = "text"
    keep_text: bool = True
    compression: str = "snappy"
    batch_size: int = 1024
    num_files: int | None = None
    rows_per_file: int | None = None


@dataclass(frozen=True)
class CleanPart:
    """One output part: the input slices it holds, cleaned, as ``schema``."""

    output: Location
    index: int
    slices: list[tuple[Location, int, int]]  # (input file, first row, stop row)
    format: str
    schema: pa.Schema
    input_schema: pa.Schema
    text_column: str
    compression: str
    batch_size: int


def output_schema(
    input_schema: pa.Schema, where: str, text_column: str = "text", keep_text: bool = True
) -> pa.Schema:
    """The input's columns as they are (the text column as string, or left out without
    ``keep_text``) plus ``cleaned_text``."""
    check_input_schema(input_schema, where, text_column)
    schema = input_schema.remove_metadata()
    at = schema.get_field_index(text_column)
    schema = (
        schema.remove(at) if not keep_text else schema.set(at, pa.field(text_column, pa.string()))
    )
    return schema.append(pa.field(CLEANED_COLUMN, pa.string()))


def preprocessed_bytes(input_bytes: int, keep_text: bool, compressed_json: bool = False) -> int:
    """About how large preprocess writes an input of ``input_bytes`` on storage: the
    cleaned text, and the raw text too with ``keep_text``."""
    text = input_bytes * (inputs.COMPRESSED_JSON_RATIO if compressed_json else 1)
    return text * (2 if keep_text else 1)


class Preprocess(Step[PreprocessParams, None]):
    name = "preprocess"

    def prepare(self) -> int:
        """Inputs are validated before the output is touched: a bad input leaves an
        earlier committed output as it was."""
        p = self.params
        part_files.check_options(p.compression, p.batch_size)
        if p.num_files is not None and p.num_files < 1:
            raise InputError(f"num_files must be at least 1 or None, got {p.num_files}")
        dataset.file_count(1, p.num_files, p.rows_per_file)  # checked before any read
        found, self.inspected, self.source_schema = reading.open_inputs(
            p.input_uri,
            p.input_format,
            self.run,
            check=lambda schema, uri: check_input_schema(schema, uri, p.text_column),
            comparable=lambda schema, uri: output_schema(schema, uri, p.text_column),
        )
        self.found = found
        self.schema = output_schema(self.source_schema, found.uri, p.text_column, p.keep_text)
        self.rows = sum(i.num_rows for i in self.inspected)
        if self.rows == 0:
            raise InputError(f"input {found.uri} has no rows")
        return sum(
            preprocessed_bytes(f.size_bytes, p.keep_text, inputs.codec_of(f.uri) is not None)
            for f in found.files
        )

    def plan(self) -> Plan[None]:
        p = self.params
        files = [f.loc for f in self.found.files]
        counts = [i.num_rows for i in self.inspected]
        num_files = dataset.file_count(self.rows, p.num_files, p.rows_per_file)
        specs = [
            CleanPart(
                self.run.output,
                index,
                [(files[i], a, b) for i, a, b in slices],
                self.found.format,
                self.schema,
                self.source_schema,
                p.text_column,
                p.compression,
                p.batch_size,
            )
            for index, slices in enumerate(reading.plan_parts(counts, num_files))
        ]
        return Plan(specs, self.schema, self.rows)

    @staticmethod
    def write_part(spec: CleanPart) -> PartResult:
        """Read one part's input slices, clean them batch by batch, write the part."""
        schema = spec.schema
        counts: list[counters.Quality] = []

        def cleaned() -> Iterator[pa.Table]:
            for loc, start, stop in spec.slices:
                uri = loc.uri
                for table in reading.iter_slice(
                    spec.format, loc, spec.batch_size, spec.input_schema, start, stop
                ):
                    out = clean_batch(table, where=uri, text_column=spec.text_column)
                    counts.append(counters.part_quality(out, spec.text_column))
                    try:
                        out = out.select(schema.names).cast(schema)
                    except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                        raise InputError(
                            f"{uri}: columns {out.schema.names} do not match the dataset's "
                            f"{schema.names} ({exc})"
                        ) from exc
                    yield out

        entry = part_files.write_part(spec.output, spec.index, cleaned(), schema, spec.compression)
        quality = total(counts, counters.Quality())
        return PartResult(entry, quality.text_bytes, quality)

    def finish(self, state: None, parts: list[PartResult]) -> Record:
        found = self.found
        return Record(
            resolved={
                "input_uri": found.uri,
                "input_format": found.format,
                "read_blocks": self.run.scheduling.read_blocks,
            },
            inputs=found.record(self.rows),
            stats=total((part.counts for part in parts), counters.Quality()).stats(),
        )

    @classmethod
    def tables(cls, manifest: dict[str, Any]) -> list[ReportTable]:
        return [
            ReportTable(
                "quality",
                counters.quality_table(manifest["stats"]),
                "Labels, null texts and how much cleaning removed",
            )
        ]
