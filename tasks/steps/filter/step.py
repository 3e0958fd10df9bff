"""Step 5: keep the rows that pass the quality rules, and every rejected row with its
reason in ``_rejected/`` beside them.

One part per input file: the task reads the file in batches, judges each batch with
:func:`tasks.steps.filter.rules.evaluate`, and streams the kept rows into the part and
the rejected ones, with ``filter_reason``, into ``_rejected/`` under the same name.
Both are committed together by the manifest (``_rejected/`` as side files, so readers
of the dataset never see them); every input row ends in exactly one of the two.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from tasks.cluster.mapping import Done
from tasks.steps import reading
from tasks.steps.filter.rules import FilterOptions, evaluate, rule_names
from tasks.steps.preprocess.clean import check_text_column, text_as_string
from tasks.steps.skeleton import PartResult, Plan, Record, ReportTable, Step
from tasks.store import dataset, inputs, part_files, storage
from tasks.store.storage import Location

REJECTED = "_rejected"
REASON_COLUMN = "filter_reason"
# The rejected rows a run shows per rule, and how much of each text.
EXAMPLE_ROWS, EXAMPLE_CHARS = 3, 200


class FilterParams(BaseModel):
    """What to filter and with which rules (see the filter flow's arguments)."""

    model_config = ConfigDict(frozen=True)

    input_uri: str
    input_format: str = "auto"
    text_column: str = "text"
    filters: FilterOptions = Field(default_factory=FilterOptions)
    compression: str = "snappy"
    batch_size: int = 1024


@dataclass(frozen=True)
class FilterPart:
    """One input file, filtered into the part and the rejected part of the same index."""

    output: Location
    index: int
    source: Location
    format: str
    schema: pa.Schema
    text_column: str
    filters: FilterOptions
    compression: str
    batch_size: int


def rejected_schema(schema: pa.Schema) -> pa.Schema:
    """The input's columns plus the first rule each rejected row failed."""
    return schema.append(pa.field(REASON_COLUMN, pa.string()))


def _counts(names: list[str]) -> dict[str, dict[str, int]]:
    return {name: {"removed_rows": 0, "removed_bytes": 0, "fired_rows": 0} for name in names}


def write_filtered_part(spec: FilterPart) -> PartResult:
    """Judge one input file's rows; kept ones into the part, the rest into ``_rejected/``.

    Two reads of the file, so that memory stays a batch whatever is rejected: the first
    judges every batch and writes the kept rows, keeping only each row's verdict (two
    bytes a row); the second writes the rejected rows with their reasons.
    """
    names = rule_names(spec.filters)
    counts = _counts(names)
    examples: dict[str, list[str]] = {name: [] for name in names}
    verdicts: list[np.ndarray] = []  # per batch: -1 kept, else the first failing rule
    text_bytes = 0

    def batches() -> Iterator[pa.Table]:
        for table in reading.iter_slice(spec.format, spec.source, spec.batch_size, spec.schema):
            yield table.select(spec.schema.names).cast(spec.schema)

    def kept() -> Iterator[pa.Table]:
        nonlocal text_bytes
        for table in batches():
            text = text_as_string(table.column(spec.text_column))
            sizes = np.asarray(pc.fill_null(pc.binary_length(text), 0), dtype=np.int64)
            text_bytes += int(sizes.sum())
            judged = evaluate(text, spec.filters)
            code = np.full(table.num_rows, -1, dtype=np.int16)
            for at, name in enumerate(names):
                mask = judged.fired[name]
                counts[name]["fired_rows"] += int(mask.sum())
                first = mask & (code < 0)
                code[first] = at
                counts[name]["removed_rows"] += int(first.sum())
                counts[name]["removed_bytes"] += int(sizes[first].sum())
                for row in np.flatnonzero(first)[: EXAMPLE_ROWS - len(examples[name])]:
                    value = table.column(spec.text_column)[int(row)].as_py()
                    examples[name].append(str(value or "")[:EXAMPLE_CHARS])
            verdicts.append(code)
            yield table.filter(pa.array(code < 0))

    def rejected() -> Iterator[pa.Table]:
        reasons = pa.array(names, pa.string())
        for table, code in zip(batches(), verdicts, strict=True):
            out = code >= 0
            if out.any():
                why = pc.take(reasons, pa.array(code[out], pa.int32()))
                yield table.filter(pa.array(out)).append_column(REASON_COLUMN, why)

    entry = part_files.write_part(spec.output, spec.index, kept(), spec.schema, spec.compression)
    target = rejected_schema(spec.schema)
    storage.make_dirs(spec.output.child(REJECTED))
    # Always written, empty or not: the manifest lists one rejected file per part.
    aside = part_files.write_part(
        spec.output.child(REJECTED), spec.index, rejected(), target, spec.compression
    )
    return PartResult(
        entry, text_bytes, {"rules": counts, "examples": examples}, set_aside=aside.num_rows
    )


class Filter(Step[FilterParams]):
    name = "filter"
    side_folders = (REJECTED,)

    def prepare(self) -> int:
        p = self.params
        part_files.check_options(p.compression, p.batch_size)
        found, self.inspected, schema = reading.open_inputs(
            p.input_uri,
            p.input_format,
            self.run,
            check=lambda schema, uri: check_text_column(schema, uri, p.text_column),
        )
        self.found, self.schema = found, schema.remove_metadata()
        self.rows = sum(i.num_rows for i in self.inspected)
        # Every row is written once, kept or rejected (plus its reason).
        ratio = inputs.COMPRESSED_JSON_RATIO
        return sum(f.size_bytes * (ratio if inputs.codec_of(f.uri) else 1) for f in found.files)

    def plan(self) -> Plan:
        p = self.params
        specs = [
            FilterPart(
                self.run.output,
                i,
                f.loc,
                self.found.format,
                self.schema,
                p.text_column,
                p.filters,
                p.compression,
                p.batch_size,
            )
            for i, f in enumerate(self.found.files)
        ]
        return Plan(specs, self.schema, self.rows)

    write_part = staticmethod(write_filtered_part)

    def finish(self, parts: list[Done]) -> Record:
        p, found = self.params, self.found
        names = rule_names(p.filters)
        rules = _counts(names)
        examples: dict[str, list[str]] = {name: [] for name in names}
        for part in parts:
            for name, counted in part.result.counts["rules"].items():
                for key, value in counted.items():
                    rules[name][key] += value
            for name, shown in part.result.counts["examples"].items():
                examples[name].extend(shown[: EXAMPLE_ROWS - len(examples[name])])
        rejected = sum(part.result.set_aside for part in parts)
        return Record(
            parameters={
                "input_uri": found.uri,
                "input_format": found.format,
                "text_column": p.text_column,
                "filters": p.filters.model_dump(mode="json"),
                "compression": p.compression,
                "batch_size": p.batch_size,
            },
            inputs=found.record(self.rows),
            stats={"text_bytes": sum(part.result.text_bytes for part in parts)},
            sections={
                "filters": {
                    "rows_in": self.rows,
                    "kept": self.rows - rejected,
                    "rejected": rejected,
                    "rules": rules,
                    "examples": examples,
                }
            },
            side_files=[f"{REJECTED}/{dataset.part_name(i)}" for i in range(len(parts))],
        )

    @classmethod
    def tables(cls, manifest: dict[str, Any]) -> list[ReportTable]:
        stats = manifest["filters"]
        examples = [
            {"rule": name, "text (start)": text}
            for name, shown in stats["examples"].items()
            for text in shown
        ]
        rules = [{"rule": name, **counted} for name, counted in stats["rules"].items()]
        return [
            ReportTable("rules", rules, "Per rule: rows and bytes it removed first, rows it fails"),
            ReportTable("examples", examples, "The start of a few rejected rows per rule"),
        ]

    @classmethod
    def summary_rows(cls, manifest: dict[str, Any]) -> list[tuple[str, Any]]:
        stats = manifest["filters"]
        return [("rows kept", stats["kept"]), ("rows rejected", stats["rejected"])] + [
            (f"removed by {name}", counted["removed_rows"])
            for name, counted in stats["rules"].items()
            if counted["removed_rows"]
        ]
