"""Step 2 of the seed: write synthetic text rows as a committed Parquet dataset."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from tasks.errors import InputError
from tasks.steps.generate import synth
from tasks.steps.skeleton import Counts, PartResult, Plan, Record, Step, total
from tasks.store import dataset, part_files
from tasks.store.storage import Location

# Per row besides its text: the id, the label and Parquet's overhead.
ROW_OVERHEAD_BYTES = 16


class GenerateParams(BaseModel):
    """What to generate: ``num_files`` or ``rows_per_file`` sets the file count."""

    model_config = ConfigDict(frozen=True)

    num_rows: int
    num_files: int | None = None
    rows_per_file: int | None = None
    text_length: int = 1000
    seed: int = 0
    duplicates: float = 0.0


@dataclass(frozen=True)
class GeneratePart:
    """One part: the ids ``start`` to ``stop`` of the rows of ``seed``."""

    output: Location
    index: int
    start: int
    stop: int
    seed: int
    text_length: int
    duplicates: float = 0.0


def generated_bytes(num_rows: int, text_length: int) -> int:
    """About how large generate writes ``num_rows`` rows of ``text_length`` characters."""
    return num_rows * (text_length + ROW_OVERHEAD_BYTES)


@dataclass(frozen=True)
class Copies(Counts):
    """Rows of a part that copy an earlier row: what dedup should find."""

    exact_copies: int = 0
    near_copies: int = 0


class Generate(Step[GenerateParams, None]):
    name = "generate"

    def prepare(self) -> int:
        p = self.params
        self.num_files = dataset.file_count(p.num_rows, p.num_files, p.rows_per_file)
        if self.num_files is None:
            raise InputError("give num_files or rows_per_file")
        synth.check_parameters(p.num_rows, self.num_files, p.text_length, p.seed, p.duplicates)
        return generated_bytes(p.num_rows, p.text_length)

    def plan(self) -> Plan[None]:
        p = self.params
        specs = [
            GeneratePart(self.run.output, i, start, stop, p.seed, p.text_length, p.duplicates)
            for i, (start, stop) in enumerate(synth.split_rows(p.num_rows, self.num_files))
        ]
        return Plan(specs, synth.SCHEMA, p.num_rows)

    @staticmethod
    def write_part(spec: GeneratePart) -> PartResult:
        rows = synth.generate_rows(
            spec.seed, spec.start, spec.stop, spec.text_length, spec.duplicates
        )
        entry = part_files.write_part(spec.output, spec.index, rows, synth.SCHEMA)
        exact, near = synth.copies_in(spec.seed, spec.start, spec.stop, spec.duplicates)
        copies = Copies(exact, near)
        return PartResult(entry, text_bytes=entry.num_rows * spec.text_length, counts=copies)

    def finish(self, state: None, parts: list[PartResult]) -> Record:
        p = self.params
        copies = total((part.counts for part in parts), Copies())
        return Record(
            resolved={
                "num_files": self.num_files,
                "chunk_rows": synth.CHUNK_ROWS,
                "generator_version": synth.GENERATOR_VERSION,
            },
            stats={
                "text_bytes": p.num_rows * p.text_length,  # ASCII: a byte per character
                **dataclasses.asdict(copies),
            },
        )

    @classmethod
    def summary_rows(cls, manifest: dict[str, Any]) -> list[tuple[str, Any]]:
        stats = manifest["stats"]
        if not stats.get("exact_copies") and not stats.get("near_copies"):
            return []
        return [("exact copies", stats["exact_copies"]), ("near copies", stats["near_copies"])]
