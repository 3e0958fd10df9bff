"""Step 5: keep the rows that pass the quality rules, and every rejected row with its
reason in the ``rejected`` companion beside them (``filtered-rejected/`` for
``filtered/``).

One part per input file: the task reads the file once, in batches, judges each batch
with :func:`tasks.steps.filter.rules.evaluate`, and streams the kept rows into the part
and the rejected ones, with ``filter_reason``, into the companion's part of the same
name. The step skeleton commits both, the companion first; every input row ends in
exactly one of the two, and readers of the dataset's folder see only the kept rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from tasks.errors import InputError
from tasks.steps import reading
from tasks.steps.filter import decontaminate, pii, urls
from tasks.steps.filter.options import FilterOptions
from tasks.steps.filter.rules import evaluate, rule_names
from tasks.steps.preprocess.clean import CLEANED_COLUMN, clean_array
from tasks.steps.skeleton import Counts, PartResult, Plan, Record, ReportTable, Run, Step, total
from tasks.steps.text import check_text_column, is_text_type, text_as_string
from tasks.store import dataset, inputs, part_files, storage
from tasks.store.storage import Location

REJECTED = "rejected"  # the companion of rejected rows
REASON_COLUMN = "filter_reason"
# What a rejected row matched, where its rule says (the n-gram, the blocked domain).
DETAIL_COLUMN = "filter_detail"
LANGUAGE_COLUMN, SCORE_COLUMN = "language", "language_score"
ADDED_COLUMNS = (LANGUAGE_COLUMN, SCORE_COLUMN, REASON_COLUMN, DETAIL_COLUMN)
URL_RULE = "url.blocked_domain"
# The blocklist and the n-gram index, made once per run and read by every part from the
# run's staging folders (removed before the commit).
BLOCKLIST, INDEX = "_blocklist", "_decontaminate"
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
    rejected: Location  # the companion's folder
    cleaned_from_text: bool  # cleaned_text is there, made from text_column
    blocklist: Location | None = None  # the run's blocked domains (url on)
    ngram_index: Location | None = None  # the run's n-gram index (decontaminate on)
    digest: str = ""  # of the blocklist and the index: what a worker may reuse


def all_rule_names(filters: FilterOptions) -> list[str]:
    """Every rule the step reports, in verdict order: the URL first (as datatrove's
    FineWeb pipeline), then language and the quality rules, then decontamination."""
    url = [URL_RULE] if filters.url is not None else []
    benchmarks = filters.decontaminate.benchmarks if filters.decontaminate is not None else ()
    return url + rule_names(filters) + [f"decontaminate.{b.name}" for b in benchmarks]


def detailed(filters: FilterOptions) -> bool:
    """Whether rejected rows say what they matched (``DETAIL_COLUMN``)."""
    return filters.url is not None or filters.decontaminate is not None


def output_schema(schema: pa.Schema) -> pa.Schema:
    """The input's columns plus each row's language and the model's probability for it."""
    return schema.append(pa.field(LANGUAGE_COLUMN, pa.string())).append(
        pa.field(SCORE_COLUMN, pa.float32())
    )


def rejected_schema(schema: pa.Schema, detail: bool = False) -> pa.Schema:
    """The kept rows' columns plus the first rule each rejected row failed (and, with
    ``detail``, what it matched there)."""
    out = output_schema(schema).append(pa.field(REASON_COLUMN, pa.string()))
    return out.append(pa.field(DETAIL_COLUMN, pa.string())) if detail else out


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


@dataclass(frozen=True)
class Fired(Counts):
    """A rule's rows and bytes it removed first (earlier rules passed them), and the
    rows it fails at all."""

    removed_rows: int = 0
    removed_bytes: int = 0
    fired_rows: int = 0


@dataclass(frozen=True)
class Tally(Counts):
    """A language's rows, rows kept, and rows removed per rule."""

    rows: int = 0
    kept: int = 0
    removed: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Judged(Counts):
    """What a part's rows (or a run's) came to: per rule, per language, the start of a
    few rejected texts per rule, and PII found per kind."""

    rules: dict[str, Fired] = field(default_factory=dict)
    languages: dict[str, Tally] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    pii: dict[str, int] = field(default_factory=dict)
    urls_without_host: int = 0  # kept: the blocklist cannot judge them

    @classmethod
    def zero(cls, filters: FilterOptions) -> Judged:
        """Every rule and PII kind these options run, at 0."""
        names = all_rule_names(filters)
        return cls(
            {name: Fired() for name in names}, {}, {name: [] for name in names}, pii_counts(filters)
        )

    def capped(self) -> Judged:
        """With the first ``EXAMPLE_ROWS`` examples of each rule only."""
        shown = {name: texts[:EXAMPLE_ROWS] for name, texts in self.examples.items()}
        return dataclasses.replace(self, examples=shown)


def _judged(
    text: pa.Array,
    sizes: np.ndarray,
    language: pa.Array,
    code: np.ndarray,
    names: list[str],
    fired: dict[str, np.ndarray],
    shown: dict[str, list[str]],
) -> Judged:
    """A batch's counts: each row's ``code`` is the first rule it failed (-1: kept);
    examples only for rules with fewer than ``EXAMPLE_ROWS`` already ``shown``."""
    rules, examples = {}, {}
    for at, name in enumerate(names):
        first = code == at
        rules[name] = Fired(int(first.sum()), int(sizes[first].sum()), int(fired[name].sum()))
        rows = np.flatnonzero(first)[: EXAMPLE_ROWS - len(shown.get(name, ()))]
        examples[name] = [str(text[int(row)].as_py() or "")[:EXAMPLE_CHARS] for row in rows]
    languages = {}
    codes = pc.dictionary_encode(language)
    for at, lang in enumerate(codes.dictionary.to_pylist()):
        mine = code[_np_bool(pc.equal(codes.indices, at))]
        removed = np.unique(mine[mine >= 0], return_counts=True)
        languages[lang] = Tally(
            len(mine),
            int((mine < 0).sum()),
            {names[rule]: int(n) for rule, n in zip(*removed, strict=True)},
        )
    return Judged(rules, languages, examples)


def pii_counts(filters: FilterOptions) -> dict[str, int]:
    """A zero count per PII kind these options redact."""
    kinds = filters.pii
    return {kind: 0 for kind in pii.KINDS if kinds is not None and getattr(kinds, kind)}


def _np_bool(mask: pa.Array) -> np.ndarray:
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _with_text(table: pa.Table, text: pa.Array, spec: FilterPart) -> pa.Table:
    """``table`` with ``text`` as its text column, and ``cleaned_text`` made again from it
    where preprocess made it from that column."""
    at = table.schema.get_field_index(spec.text_column)
    table = table.set_column(at, table.schema.field(at), text.cast(table.schema.field(at).type))
    if spec.cleaned_from_text:
        where = table.schema.get_field_index(CLEANED_COLUMN)
        cleaned = clean_array(text).cast(table.schema.field(where).type)
        table = table.set_column(where, table.schema.field(where), cleaned)
    return table


def _redacted(table: pa.Table, spec: FilterPart, found: dict[str, int]) -> pa.Table:
    """``table`` with PII redacted in its text column (:func:`_with_text`); adds what
    was found to ``found``."""
    column = table.column(spec.text_column)
    if pa.types.is_null(column.type):  # a column of nulls only: nothing to redact
        return table
    text, counts = pii.redact(text_as_string(column), spec.filters.pii)
    for name, n in counts.items():
        found[name] += n
    return _with_text(table, text, spec)


# What a worker process read from a run's staging (location -> digest, value): the
# blocklist and the index are read once per process, not once per part.
_STAGED: dict[str, tuple[str, Any]] = {}


def _staged(loc: Location, digest: str, load: Any) -> Any:
    """``load(table)`` of the staged file at ``loc``, read once per worker process for
    this ``digest`` (a later run's file at the same place has another)."""
    kept = _STAGED.get(loc.uri)
    if kept is None or kept[0] != digest:
        with storage.explained(loc, "read"), loc.fs.open_input_file(loc.path) as handle:
            value = load(pq.read_table(handle))
        while len(_STAGED) >= 2:  # the blocklist and the index of the run at hand
            _STAGED.pop(next(iter(_STAGED)))
        _STAGED[loc.uri] = kept = (digest, value)
    return kept[1]


def _more_rules(
    spec: FilterPart, table: pa.Table, text: pa.Array
) -> tuple[dict[str, np.ndarray], list[str | None], int]:
    """The URL and decontamination rules' masks on a batch, what each row matched (the
    blocked domain, else the n-gram), and its rows without a host."""
    fired: dict[str, np.ndarray] = {}
    detail: list[str | None] = [None] * table.num_rows
    without = 0
    f = spec.filters
    if f.decontaminate is not None and spec.ngram_index is not None:
        index = _staged(spec.ngram_index, spec.digest, decontaminate.from_table)
        found, grams = index.matches(text)
        for at, benchmark in enumerate(f.decontaminate.benchmarks):
            fired[f"decontaminate.{benchmark.name}"] = (found & np.uint64(1 << at)) != 0
        detail = grams
    if f.url is not None and spec.blocklist is not None:
        domains = _staged(spec.blocklist, spec.digest, urls.from_table)
        blocked, matched, without = urls.judge(
            text_as_string(table.column(f.url.url_column)), domains
        )
        fired[URL_RULE] = blocked
        # The URL comes first in the verdict: its detail wins.
        detail = [m if m is not None else d for m, d in zip(matched, detail, strict=True)]
    return fired, detail, without


def write_filtered_part(spec: FilterPart) -> PartResult:
    """Judge one input file's rows; kept ones into the part, the rest into the
    ``rejected`` companion's part of the same name, in one read of the file: memory is
    a batch and the two writers' pending row groups, whatever the file's size."""
    names = all_rule_names(spec.filters)
    counted = Judged.zero(spec.filters)
    redacted = pii_counts(spec.filters)
    text_bytes = 0
    reasons = pa.array(names, pa.string())
    detail_on = detailed(spec.filters)

    def kept(aside: part_files.PartWriter) -> Iterator[pa.Table]:
        nonlocal text_bytes, counted
        for table in reading.iter_slice(spec.format, spec.source, spec.batch_size, spec.schema):
            table = table.select(spec.schema.names).cast(spec.schema)
            if spec.filters.pii is not None:
                table = _redacted(table, spec, redacted)
            text = text_as_string(table.column(spec.text_column))
            sizes = np.asarray(pc.fill_null(pc.binary_length(text), 0), dtype=np.int64)
            text_bytes += int(sizes.sum())
            verdicts = evaluate(text, spec.filters)
            more, detail, without = _more_rules(spec, table, text)
            fired = {**verdicts.fired, **more}
            code = np.full(table.num_rows, -1, dtype=np.int16)
            for at, name in enumerate(names):
                code[fired[name] & (code < 0)] = at
            counted += _judged(text, sizes, verdicts.language, code, names, fired, counted.examples)
            counted += Judged(urls_without_host=without)
            table = table.append_column(LANGUAGE_COLUMN, verdicts.language).append_column(
                SCORE_COLUMN, verdicts.score
            )
            out = code >= 0
            if out.any():  # as judged: the input's text (PII redacted)
                why = pc.take(reasons, pa.array(code[out], pa.int32()))
                rejected = table.filter(pa.array(out)).append_column(REASON_COLUMN, why)
                if detail_on:
                    what = [_detail(names[code[r]], detail[r]) for r in np.flatnonzero(out)]
                    rejected = rejected.append_column(DETAIL_COLUMN, pa.array(what, pa.string()))
                aside.write(rejected)
            passed = table.filter(pa.array(~out))
            if spec.filters.keep_rewritten_text and verdicts.text is not None:
                passed = _with_text(passed, verdicts.text.filter(pa.array(~out)), spec)
            yield passed

    storage.make_dirs(spec.rejected)
    # Always written, empty or not: the companion has one part per part of the output.
    with part_files.PartWriter(
        spec.rejected, spec.index, rejected_schema(spec.schema, detail_on), spec.compression
    ) as aside:
        target = output_schema(spec.schema)
        entry = part_files.write_part(
            spec.output, spec.index, kept(aside), target, spec.compression
        )
        aside_entry = aside.close()
    found = dataclasses.replace(counted, pii=redacted)
    return PartResult(
        entry, text_bytes, found, companions={REJECTED: aside_entry}, set_aside=REJECTED
    )


def _detail(reason: str, matched: str | None) -> str | None:
    """What a rejected row's rule matched, for the rules that say (else null)."""
    return matched if reason == URL_RULE or reason.startswith("decontaminate.") else None


def _stage(folder: Location, table: pa.Table, hashes: bool = False) -> Location:
    """``table`` as the one part of a staging folder; its location."""
    storage.make_dirs(folder)
    part_files.write_part(folder, 0, [table], table.schema, "none", hashes=hashes)
    return folder.child(dataset.part_name(0))


def cleaned_from(input_root: Location) -> str:
    """The column ``cleaned_text`` was made from in a dataset at ``input_root``: as its
    preprocess manifest says, or preprocess's default for any other input."""
    manifest = dataset.read_manifest(input_root)
    if manifest and manifest.get("stage") == "preprocess":
        return str((manifest.get("parameters") or {}).get("text_column", "text"))
    return "text"


def _check_url_column(schema: pa.Schema, where: str, column: str) -> None:
    """Refuse, by name, a URL column that is missing or does not hold strings."""
    if column not in schema.names:
        raise InputError(
            f"{where}: no {column!r} column for filters.url (columns: "
            f"{', '.join(schema.names)}); set filters.url.url_column to the column of URLs"
        )
    kind = schema.field(column).type
    if not is_text_type(kind):
        raise InputError(f"{where}: filters.url.url_column {column!r} holds {kind}, not strings")


def _check_apart(read: Location, where: str, run: Run) -> None:
    """Refuse a list read from where this run writes (its output, its companions): a
    rerun would read what the run before wrote there."""
    for written in (run.output, *(run.companion(name) for name in run.companions)):
        if read.contains(written) or written.contains(read):
            raise InputError(
                f"{where} {read.uri} overlaps {written.uri}, which this run writes: "
                "keep the lists apart from the step's output"
            )


def _lists(
    filters: FilterOptions, schema: pa.Schema, source: str, run: Run
) -> tuple[frozenset[str] | None, decontaminate.Index | None, dict[str, Any]]:
    """The run's blocked domains and n-gram index (None where off), read before anything
    is written, and what the manifest records of them. The URL column is checked first,
    so that a missing one fails before any list is read."""
    domains = index = None
    staged: dict[str, Any] = {}
    if filters.url is not None:
        _check_url_column(schema, f"input {source}", filters.url.url_column)
        if isinstance(filters.url.block_domains, str):
            where = storage.resolve(filters.url.block_domains, run.s3)
            _check_apart(where, "filters.url.block_domains", run)
        domains, staged["url"] = urls.blocklist(filters.url.block_domains, run.s3)
    chosen = filters.decontaminate
    if chosen is not None:
        roots = decontaminate.roots(chosen, run.s3)
        for benchmark, root in zip(chosen.benchmarks, roots, strict=True):
            _check_apart(root, f"filters.decontaminate benchmark {benchmark.name}", run)
        index, staged["decontaminate"] = decontaminate.index_of(chosen, run.s3)
    return domains, index, staged


class Filter(Step[FilterParams, None]):
    name = "filter"
    companions = (REJECTED,)
    staging_folders = (BLOCKLIST, INDEX)

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
        self.cleaned_from_text = (
            CLEANED_COLUMN in self.schema.names and cleaned_from(found.root) == p.text_column
        )
        self.domains, self.index, self.staged = _lists(p.filters, self.schema, found.uri, self.run)
        # Every row is written once, kept or rejected (plus its reason); the lists staged.
        ratio = inputs.COMPRESSED_JSON_RATIO
        rows = sum(f.size_bytes * (ratio if inputs.codec_of(f.uri) else 1) for f in found.files)
        lists = self.index.nbytes if self.index is not None else 0
        return rows + lists + sum(len(d) + 1 for d in self.domains or ())

    def plan(self) -> Plan[None]:
        p = self.params
        blocklist = ngram_index = None
        if self.domains is not None:
            blocklist = _stage(self.run.output.child(BLOCKLIST), urls.as_table(self.domains))
        if self.index is not None:
            table = decontaminate.as_table(self.index)
            ngram_index = _stage(self.run.output.child(INDEX), table, hashes=True)
        digest = "+".join(str(v.get("sha256", "")) for v in self.staged.values())
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
                self.run.companion(REJECTED),
                self.cleaned_from_text,
                blocklist,
                ngram_index,
                digest,
            )
            for i, f in enumerate(self.found.files)
        ]
        companions = {REJECTED: rejected_schema(self.schema, detailed(p.filters))}
        return Plan(specs, output_schema(self.schema), self.rows, companions)

    write_part = staticmethod(write_filtered_part)

    def finish(self, state: None, parts: list[PartResult[Judged]]) -> Record:
        p, found = self.params, self.found
        names = all_rule_names(p.filters)
        judged = total((part.counts for part in parts), Judged.zero(p.filters))
        languages = {lang: dataclasses.asdict(t) for lang, t in judged.languages.items()}
        rejected = sum(part.companions[REJECTED].num_rows for part in parts)
        return Record(
            resolved={"input_uri": found.uri, "input_format": found.format},
            inputs=found.record(self.rows),
            stats={"text_bytes": sum(part.text_bytes for part in parts)},
            sections={
                "filters": {
                    "rows_in": self.rows,
                    "kept": self.rows - rejected,
                    "rejected": rejected,
                    "rules": {name: dataclasses.asdict(n) for name, n in judged.rules.items()},
                    # Most rows first; a rule's removals in verdict order.
                    "languages": {
                        lang: {
                            **t,
                            "removed": {r: t["removed"][r] for r in names if r in t["removed"]},
                        }
                        for lang, t in sorted(languages.items(), key=lambda kv: -kv[1]["rows"])
                    },
                    "pii_redacted": judged.pii,
                    "examples": judged.capped().examples,
                    **(
                        {"url": {**self.staged["url"], "without_host": judged.urls_without_host}}
                        if "url" in self.staged
                        else {}
                    ),
                    **(
                        {"decontaminate": self.staged["decontaminate"]}
                        if "decontaminate" in self.staged
                        else {}
                    ),
                }
            },
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
