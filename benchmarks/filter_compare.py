"""Our quality rules beside datatrove's four filter classes, on the same real documents.

datatrove's side calls each class's ``filter`` on a ``Document`` of its own per document
(``C4QualityFilter`` rewrites ``doc.text`` of the documents it keeps), with the classes'
defaults: English, words from spaCy's blank ``en`` tokenizer, nothing downloaded. Our
side is the kernel, ``tasks.steps.filter.rules.evaluate``, over Arrow batches, with
language identification off (datatrove's classes here are English-only). Both write
each document's verdict per filter to a Parquet file; ``agreement`` compares them.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# Our filter, and datatrove's class of the same rules.
FILTERS = {
    "gopher_quality": "GopherQualityFilter",
    "gopher_repetition": "GopherRepetitionFilter",
    "c4": "C4QualityFilter",
    "fineweb": "FineWebQualityFilter",
}
EXAMPLES = 5  # disagreements shown per filter


def options_dict(only: str | None = None) -> dict[str, None]:
    """What differs from our default ``FilterOptions`` in the comparison: no language
    identification (where the options have it), and with ``only`` that filter alone."""
    from tasks.steps.filter.rules import FilterOptions

    # Language identification (on by default) and PII redaction (off by default) are
    # no part of datatrove's four classes; both are turned off where the options have them.
    off = {name: None for name in ("language", "pii") if name in FilterOptions.model_fields}
    if only is not None:
        off |= {name: None for name in FILTERS if name != only}
    return off


def options(only: str | None = None) -> Any:
    """Our ``FilterOptions`` with datatrove's English defaults (see ``options_dict``)."""
    from tasks.steps.filter.rules import FilterOptions

    return FilterOptions(**options_dict(only))


def _cpu() -> float:
    return time.process_time()


def run_datatrove(
    batches: list[pa.RecordBatch], warmup: list[pa.RecordBatch], verdicts: Path
) -> dict[str, Any]:
    """Each of datatrove's four classes on every document; seconds in all and per filter."""
    from datatrove.data import Document
    from datatrove.pipeline import filters as datatrove_filters

    classes = {name: getattr(datatrove_filters, cls)() for name, cls in FILTERS.items()}

    def judge(doc_id: str, text: str, seconds: dict[str, float] | None) -> list[Any]:
        out: list[Any] = []
        for name, instance in classes.items():
            started = time.perf_counter()
            try:
                result = instance.filter(Document(text=text, id=doc_id))
            except Exception as error:  # datatrove divides by counts that can be 0
                result = (None, f"error: {type(error).__name__}")
            if seconds is not None:
                seconds[name] += time.perf_counter() - started
            keep, reason = result if isinstance(result, tuple) else (result, None)
            out.append((None if keep is None else bool(keep), reason))
        return out

    for batch in warmup:
        texts = batch.column("text").to_pylist()
        for doc_id, text in zip(batch.column("id").to_pylist(), texts, strict=True):
            judge(doc_id, text, None)
    seconds = dict.fromkeys(classes, 0.0)
    ids: list[str] = []
    results: list[list[Any]] = []
    cpu, started = _cpu(), time.perf_counter()
    for batch in batches:
        texts = batch.column("text").to_pylist()
        doc_ids = batch.column("id").to_pylist()
        for doc_id, text in zip(doc_ids, texts, strict=True):
            results.append(judge(doc_id, text, seconds))
        ids += doc_ids
    filter_seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    columns: dict[str, list[Any]] = {"id": ids}
    for at, name in enumerate(classes):
        columns[name] = [r[at][0] for r in results]
        columns[f"{name}_reason"] = [r[at][1] for r in results]
    pq.write_table(pa.table(columns), verdicts)
    return {
        "filter_seconds": filter_seconds,
        "cpu_seconds": cpu,
        "filters_seconds": seconds,
        "errors": {n: sum(r[at][0] is None for r in results) for at, n in enumerate(classes)},
        **_sized(batches),
    }


def _keep_per_filter(fired: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    keep = {name: np.ones(n, dtype=bool) for name in FILTERS}
    for rule, mask in fired.items():
        keep[rule.split(".", 1)[0]] &= ~mask
    return keep


def run_ours(
    batches: list[pa.RecordBatch], warmup: list[pa.RecordBatch], verdicts: Path, per_filter: bool
) -> dict[str, Any]:
    """The kernel over the batches with the four filters, then (``per_filter``) with each
    filter alone; seconds of each pass."""
    from tasks.steps.filter.rules import evaluate

    every = options()
    for batch in warmup:
        evaluate(batch.column("text"), every)
    fired: list[dict[str, np.ndarray]] = []
    cpu, started = _cpu(), time.perf_counter()
    for batch in batches:
        fired.append(evaluate(batch.column("text"), every).fired)
    filter_seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    seconds: dict[str, float] = {}
    for name in FILTERS if per_filter else ():
        alone = options(only=name)
        started = time.perf_counter()
        for batch in batches:
            evaluate(batch.column("text"), alone)
        seconds[name] = time.perf_counter() - started
    columns: dict[str, Any] = {"id": pa.concat_arrays([b.column("id") for b in batches])}
    for name in FILTERS:
        keeps, rules = [], []
        for batch, masks in zip(batches, fired, strict=True):
            keeps.append(_keep_per_filter(masks, batch.num_rows)[name])
            own = {rule: mask for rule, mask in masks.items() if rule.startswith(f"{name}.")}
            rules += [
                [rule.split(".", 1)[1] for rule, mask in own.items() if mask[row]]
                for row in range(batch.num_rows)
            ]
        columns[name] = np.concatenate(keeps)
        columns[f"{name}_rules"] = pa.array(rules, pa.list_(pa.string()))
    pq.write_table(pa.table(columns), verdicts)
    return {
        "filter_seconds": filter_seconds,
        "cpu_seconds": cpu,
        "filters_seconds": seconds,
        **_sized(batches),
    }


def _sized(batches: Iterable[pa.RecordBatch]) -> dict[str, int]:
    batches = list(batches)
    return {
        "documents": sum(b.num_rows for b in batches),
        "text_bytes": sum(pc.sum(pc.binary_length(b.column("text"))).as_py() or 0 for b in batches),
    }


def long_documents(docs: list[tuple[str, str]], rows: int, chars: int) -> pa.Array:
    """``rows`` texts of exactly ``chars`` characters, each real documents joined by
    blank lines from a different starting document (so no two are the same)."""
    texts = []
    for row in range(rows):
        parts, length, at = [], 0, row
        while length < chars:
            text = docs[at % len(docs)][1]
            parts.append(text)
            length += len(text) + 2
            at += 1
        texts.append("\n\n".join(parts)[:chars])
    return pa.array(texts, pa.string())


def _status(field: str) -> int:
    """A field of /proc/self/status in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


def long_batch_memory(texts: pa.Array) -> dict[str, Any]:
    """Peak resident memory of the kernel judging one batch of long texts: the process's
    high-water mark is reset (``/proc/self/clear_refs``) once the batch is in memory."""
    import gc

    from tasks.steps.filter.rules import evaluate

    every = options()
    evaluate(texts.slice(0, 1), every)  # warm: imports, pattern compilation
    gc.collect()
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    started = time.perf_counter()
    judged = evaluate(texts, every)
    seconds = time.perf_counter() - started
    peak = _status("VmHWM")
    return {
        "filter_seconds": seconds,
        "documents": len(texts),
        "chars": int(pc.max(pc.utf8_length(texts)).as_py()),
        "text_bytes": int(pc.sum(pc.binary_length(texts)).as_py()),
        "rss_before_bytes": before,
        "peak_rss_bytes": peak,
        "kept": int(judged.keep.sum()),
    }


def agreement(datatrove: Path, ours: Path) -> dict[str, Any]:
    """Per filter, on the distinct documents datatrove judged (a repeated document once):
    the share on which both keep or both reject, the disagreements each way, what they
    were (datatrove's reason, our rules that fired) and a few examples."""
    theirs, mine = pq.read_table(datatrove), pq.read_table(ours)
    n = theirs.num_rows
    ids = theirs.column("id").to_pylist()
    if mine.num_rows < n or mine.column("id").slice(0, n).to_pylist() != ids:
        raise RuntimeError("the two sides judged different documents")
    sources = [doc_id.split("/", 1)[1] for doc_id in ids]
    first = np.zeros(n, dtype=bool)
    first[np.unique(sources, return_index=True)[1]] = True
    out: dict[str, Any] = {"documents": int(first.sum()), "filters": {}}
    for name in FILTERS:
        their_keep = theirs.column(name).to_pylist()
        reasons = theirs.column(f"{name}_reason").to_pylist()
        my_keep = mine.column(name).to_pylist()
        my_rules = mine.column(f"{name}_rules").to_pylist()
        judged = agree = 0
        errors = 0
        only_theirs = only_mine = 0  # rejected by one side alone
        causes: collections.Counter[str] = collections.Counter()
        examples = []
        for row in np.flatnonzero(first):
            if their_keep[row] is None:
                errors += 1
                continue
            judged += 1
            if their_keep[row] == my_keep[row]:
                agree += 1
                continue
            if my_keep[row]:
                only_theirs += 1
                causes[f"datatrove {reasons[row]}"] += 1
            else:
                only_mine += 1
                causes.update(f"ours {rule}" for rule in my_rules[row])
            if len(examples) < EXAMPLES:
                examples.append(
                    {
                        "id": sources[row],
                        "datatrove": "keep" if their_keep[row] else reasons[row],
                        "ours": my_rules[row] or "keep",
                    }
                )
        out["filters"][name] = {
            "documents": judged,
            "agreement": agree / judged if judged else None,
            "disagreements": judged - agree,
            "rejected_by_datatrove_only": only_theirs,
            "rejected_by_ours_only": only_mine,
            "datatrove_errors": errors,
            "rejected_by_datatrove": sum(
                1 for row in np.flatnonzero(first) if their_keep[row] is False
            ),
            "rejected_by_ours": sum(1 for row in np.flatnonzero(first) if not my_keep[row]),
            "causes": dict(causes.most_common()),
            "examples": examples,
        }
    return out
