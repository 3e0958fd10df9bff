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
from tasks.errors import InputError
from tasks.steps import reading
from tasks.steps.filter import pii
from tasks.steps.filter.rules import FilterOptions, evaluate, rule_names
from tasks.steps.preprocess.clean import (
    CLEANED_COLUMN,
    check_text_column,
    clean_array,
    text_as_string,
)
from tasks.steps.skeleton import PartResult, Plan, Record, ReportTable, Step
from tasks.store import dataset, inputs, part_files, storage
from tasks.store.storage import Location

REJECTED = "_rejected"
REASON_COLUMN = "filter_reason"
LANGUAGE_COLUMN, SCORE_COLUMN = "language", "language_score"
ADDED_COLUMNS = (LANGUAGE_COLUMN, SCORE_COLUMN, REASON_COLUMN)
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


def output_schema(schema: pa.Schema) -> pa.Schema:
    """The input's columns plus each row's language and the model's probability for it."""
    return schema.append(pa.field(LANGUAGE_COLUMN, pa.string())).append(
        pa.field(SCORE_COLUMN, pa.float32())
    )


def rejected_schema(schema: pa.Schema) -> pa.Schema:
    """The kept rows' columns plus the first rule each rejected row failed."""
    return output_schema(schema).append(pa.field(REASON_COLUMN, pa.string()))


def check_input_columns(schema: pa.Schema, where: str, text_column: str) -> None:
    """Raise naming ``where`` unless the text column is a string and no column we add
    is there already (a filtered dataset's rows have been judged: filter its input)."""
    check_text_column(schema, where, text_column)
    taken = [name for name in ADDED_COLUMNS if name in schema.names]
    if taken:
        raise InputError(
            f"{where}: already has column(s) {', '.join(map(repr, taken))}, which the filter "
            "step adds; filter the dataset this one was made from, or drop those columns"
        )


def _counts(names: list[str]) -> dict[str, dict[str, int]]:
    return {name: {"removed_rows": 0, "removed_bytes": 0, "fired_rows": 0} for name in names}


def _per_language(
    tally: dict[str, dict[str, Any]], language: pa.Array, code: np.ndarray, names: list[str]
) -> None:
    """Add a batch's rows, kept rows and removals per rule to each language's tally."""
    codes = pc.dictionary_encode(language)
    for at, lang in enumerate(codes.dictionary.to_pylist()):
        mine = code[_np_bool(pc.equal(codes.indices, at))]
        entry = tally.setdefault(lang, {"rows": 0, "kept": 0, "removed": {}})
        entry["rows"] += len(mine)
        entry["kept"] += int((mine < 0).sum())
        for rule, count in zip(*np.unique(mine[mine >= 0], return_counts=True), strict=True):
            entry["removed"][names[rule]] = entry["removed"].get(names[rule], 0) + int(count)


def pii_counts(filters: FilterOptions) -> dict[str, int]:
    """A zero count per PII kind these options redact."""
    kinds = filters.pii
    return {kind: 0 for kind in pii.KINDS if kinds is not None and getattr(kinds, kind)}


def _np_bool(mask: pa.Array) -> np.ndarray:
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def write_filtered_part(spec: FilterPart) -> PartResult:
    """Judge one input file's rows; kept ones into the part, the rest into ``_rejected/``.

    Two reads of the file, so that memory stays a batch whatever is rejected: the first
    judges every batch and writes the kept rows, keeping each row's verdict (two bytes a
    row) and the rejected rows' languages; the second writes the rejected rows with
    their reasons (PII redaction, being pure, is applied again).
    """
    names = rule_names(spec.filters)
    counts = _counts(names)
    examples: dict[str, list[str]] = {name: [] for name in names}
    languages: dict[str, dict[str, Any]] = {}
    redacted = pii_counts(spec.filters)
    verdicts: list[tuple[np.ndarray, pa.Array, pa.Array]] = []
    text_bytes = 0
    text_type = spec.schema.field(spec.text_column).type

    def batches(first_read: bool) -> Iterator[tuple[pa.Table, pa.Array]]:
        """Each batch and its text column as strings, PII redacted (in the table too;
        counted on the first read only)."""
        for table in reading.iter_slice(spec.format, spec.source, spec.batch_size, spec.schema):
            table = table.select(spec.schema.names).cast(spec.schema)
            text = text_as_string(table.column(spec.text_column))
            if spec.filters.pii is not None:
                text, found = pii.redact(text, spec.filters.pii)
                for kind, n in found.items():
                    redacted[kind] += n if first_read else 0
                at = table.schema.get_field_index(spec.text_column)
                table = table.set_column(at, spec.schema.field(at), text.cast(text_type))
                if CLEANED_COLUMN in table.schema.names:  # preprocess made it from the text
                    at = table.schema.get_field_index(CLEANED_COLUMN)
                    cleaned = clean_array(text).cast(spec.schema.field(at).type)
                    table = table.set_column(at, spec.schema.field(at), cleaned)
            yield table, text

    def kept() -> Iterator[pa.Table]:
        nonlocal text_bytes
        for table, text in batches(first_read=True):
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
                    examples[name].append(str(text[int(row)].as_py() or "")[:EXAMPLE_CHARS])
            _per_language(languages, judged.language, code, names)
            out = pa.array(code >= 0)
            verdicts.append((code, judged.language.filter(out), judged.score.filter(out)))
            keep = pa.array(code < 0)
            yield (
                table.filter(keep)
                .append_column(LANGUAGE_COLUMN, judged.language.filter(keep))
                .append_column(SCORE_COLUMN, judged.score.filter(keep))
            )

    def rejected() -> Iterator[pa.Table]:
        reasons = pa.array(names, pa.string())
        for (table, _), (code, language, score) in zip(
            batches(first_read=False), verdicts, strict=True
        ):
            out = code >= 0
            if out.any():
                why = pc.take(reasons, pa.array(code[out], pa.int32()))
                yield (
                    table.filter(pa.array(out))
                    .append_column(LANGUAGE_COLUMN, language)
                    .append_column(SCORE_COLUMN, score)
                    .append_column(REASON_COLUMN, why)
                )

    target = output_schema(spec.schema)
    entry = part_files.write_part(spec.output, spec.index, kept(), target, spec.compression)
    storage.make_dirs(spec.output.child(REJECTED))
    # Always written, empty or not: the manifest lists one rejected file per part.
    aside = part_files.write_part(
        spec.output.child(REJECTED),
        spec.index,
        rejected(),
        rejected_schema(spec.schema),
        spec.compression,
    )
    found = {"rules": counts, "examples": examples, "languages": languages, "pii": redacted}
    return PartResult(entry, text_bytes, found, set_aside=aside.num_rows)


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
            check=lambda schema, uri: check_input_columns(schema, uri, p.text_column),
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
        return Plan(specs, output_schema(self.schema), self.rows)

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
        languages: dict[str, dict[str, Any]] = {}
        redacted = pii_counts(p.filters)
        for part in parts:
            for lang, tally in part.result.counts["languages"].items():
                mine = languages.setdefault(lang, {"rows": 0, "kept": 0, "removed": {}})
                mine["rows"] += tally["rows"]
                mine["kept"] += tally["kept"]
                for rule, n in tally["removed"].items():
                    mine["removed"][rule] = mine["removed"].get(rule, 0) + n
            for kind, n in part.result.counts["pii"].items():
                redacted[kind] += n
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
                    # Most rows first; a rule's removals in verdict order.
                    "languages": {
                        lang: {
                            **t,
                            "removed": {r: t["removed"][r] for r in names if r in t["removed"]},
                        }
                        for lang, t in sorted(languages.items(), key=lambda kv: -kv[1]["rows"])
                    },
                    "pii_redacted": redacted,
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
        languages = [
            {
                "language": lang,
                "rows": t["rows"],
                "kept": t["kept"],
                "removed most by": max(t["removed"], key=t["removed"].get, default=""),
            }
            for lang, t in stats.get("languages", {}).items()
        ]
        return [
            ReportTable("rules", rules, "Per rule: rows and bytes it removed first, rows it fails"),
            ReportTable("languages", languages, "Per language: rows in, rows kept"),
            ReportTable("examples", examples, "The start of a few rejected rows per rule"),
        ]

    @classmethod
    def summary_rows(cls, manifest: dict[str, Any]) -> list[tuple[str, Any]]:
        stats = manifest["filters"]
        redacted = [
            (f"{kind} redacted", n) for kind, n in stats.get("pii_redacted", {}).items() if n
        ]
        return (
            [("rows kept", stats["kept"]), ("rows rejected", stats["rejected"])]
            + [
                (f"removed by {name}", counted["removed_rows"])
                for name, counted in stats["rules"].items()
                if counted["removed_rows"]
            ]
            + redacted
        )
