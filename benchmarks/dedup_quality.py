"""How well near dedup finds what it should: planted pairs at known Jaccard similarity.

A corpus of unrelated documents, each followed (somewhere later, in another file perhaps)
by an edited copy whose word-shingle Jaccard similarity to it spans 0.3 to 1.0. The
similarity of every planted pair, and of a sample of unrelated pairs, is computed by
brute force (``tasks.steps.dedup.minhash.jaccard``); the dedup step then runs on the corpus as it
runs on any dataset (the Dedup step on Ray), once per MinHash
setting, and what it removed is scored against those similarities:

* recall: the share of pairs at or above ``threshold + 0.05`` whose copy was removed;
* false merges: the share of pairs below ``threshold - 0.2`` whose copy was removed, and
  of unrelated rows removed at all.

:func:`measure_in_process` scores the same corpus without Ray: passes 1 and 2 of the
step (signatures, group files, candidates and their verification) called directly.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.steps.dedup import minhash as dedup
from tasks.steps.dedup.step import Dedup, DedupParams
from tasks.steps.skeleton import run_step
from tasks.store.dataset import read_dataset

VOCABULARY = 50_000
WORDS = (100, 250)  # words per document: about the seed's 1 KB of text
FILES = 4
# Settings compared: (shingle, num_perm, bands); the first is the default.
SETTINGS = [(5, 128, 16), (5, 64, 8), (5, 128, 32), (5, 256, 32), (3, 128, 16)]
HIGH_MARGIN, LOW_MARGIN = 0.05, 0.2  # the bands around the threshold
BINS = [(0.85, 0.9), (0.9, 0.95), (0.95, 1.01)]


def edited(rng: random.Random, words: list[str], rate: float) -> list[str]:
    """``words`` with about ``rate`` of them edited: replaced, deleted or one inserted."""
    out = []
    for word in words:
        roll = rng.random()
        if roll >= rate:
            out.append(word)
        elif roll < rate / 2:
            out.append(f"w{rng.randrange(VOCABULARY)}")
        elif roll < 3 * rate / 4:
            out += [word, f"w{rng.randrange(VOCABULARY)}"]
        # else deleted
    return out


def corpus(root: Path, pairs: int, seed: int = 0) -> list[tuple[int, int, str, str]]:
    """Write the corpus as ``FILES`` Parquet files of ``id``, ``text``; return each planted
    pair as (original id, copy id, original text, copy text), the copy later in order."""
    rng = random.Random(seed)
    planted = []
    for _ in range(pairs):
        words = [f"w{rng.randrange(VOCABULARY)}" for _ in range(rng.randint(*WORDS))]
        # A target similarity spread over 0.3 to 1; for 5-word shingles, Jaccard J keeps
        # a share s = 2J / (1 + J) of shingles, each of which survives with (1 - e)^5.
        target = rng.uniform(0.3, 1.0)
        rate = 1 - (2 * target / (1 + target)) ** (1 / 5)
        planted.append((" ".join(words), " ".join(edited(rng, words, rate))))
    # Pairs interleaved at random: each pair's first place holds the original, its
    # second the copy.
    slots = [number for number in range(pairs) for _ in range(2)]
    rng.shuffle(slots)
    rows, places = [], {}
    for position, number in enumerate(slots):
        rows.append(planted[number][number in places])
        places.setdefault(number, []).append(position)
    result = [(*places[n], *planted[n]) for n in range(pairs)]
    root.mkdir(parents=True)
    step = -(-len(rows) // FILES)
    for f in range(FILES):
        ids = list(range(f * step, min((f + 1) * step, len(rows))))
        table = pa.table({"id": pa.array(ids, pa.int64()), "text": [rows[i] for i in ids]})
        pq.write_table(table, root / f"part-{f}.parquet")
    return result


def score(
    removed: set[int],
    pairs: list[tuple[int, int, float]],
    unrelated: int,
    explained: set[int],
    threshold: float,
) -> dict[str, Any]:
    """Recall and false merges of one run, from the ids it removed."""
    high = [p for p in pairs if p[2] >= threshold + HIGH_MARGIN]
    low = [p for p in pairs if p[2] < threshold - LOW_MARGIN]
    found = sum(1 for _, copy, _ in high if copy in removed)
    merged = sum(1 for _, copy, _ in low if copy in removed)
    bins = {}
    for lo, hi in BINS:
        within = [copy for _, copy, j in pairs if lo <= j < hi]
        bins[f"{lo:g}-{min(hi, 1):g}"] = {
            "pairs": len(within),
            "recall": sum(1 for c in within if c in removed) / max(len(within), 1),
        }
    # Removed rows with no planted partner at or above threshold - 0.2: merged with an
    # unrelated document.
    stray = len(removed - explained)
    return {
        "high_pairs": len(high),
        "recall": found / max(len(high), 1),
        "recall_by_similarity": bins,
        "low_pairs": len(low),
        "false_merges": merged / max(len(low), 1),
        "unrelated_rows": unrelated,
        "unrelated_removed": stray / max(unrelated, 1),
    }


def measure(work: Path, pairs: int, threshold: float = 0.8) -> list[dict[str, Any]]:
    """Score each of ``SETTINGS`` on one corpus of ``pairs`` planted pairs."""
    source = work / "dedup-quality"
    planted = corpus(source, pairs)
    rows = 2 * pairs
    results = []
    truths: dict[int, list[tuple[int, int, float]]] = {}  # brute force, once per shingle
    for shingle, num_perm, bands in SETTINGS:
        if shingle not in truths:
            truths[shingle] = [(a, b, dedup.jaccard(x, y, shingle)) for a, b, x, y in planted]
        truth = truths[shingle]
        explained = {b for _, b, j in truth if j >= threshold - LOW_MARGIN}
        params = dedup.MinHashParams(threshold, shingle, num_perm, bands)
        out = work / f"dedup-quality-{shingle}-{num_perm}-{bands}"
        started = time.perf_counter()
        step = DedupParams(input_uri=str(source), mode="near", text_column="text", minhash=params)
        manifest = run_step(Dedup, step, str(out))
        seconds = time.perf_counter() - started
        kept = set(read_dataset(str(out), columns=["id"]).column("id").to_pylist())
        removed = set(range(rows)) - kept
        results.append(
            {
                "shingle": shingle,
                "num_perm": num_perm,
                "bands": bands,
                "seconds": seconds,
                "candidate_probability_at_threshold": params.candidate_probability(threshold),
                "removed": manifest["dedup"]["exact_duplicates_removed"]
                + manifest["dedup"]["near_duplicates_removed"],
                **score(removed, truth, rows - len(explained), explained, threshold),
            }
        )
    return results


def group_files(
    work: Path, files: list[list[str | None]], params: dedup.MinHashParams | None, shards: Any
) -> tuple[Any, list[str], list[tuple[str, int]]]:
    """Pass 1's signature and group files of ``files`` (lists of texts, in input order)
    under ``work``, as the step writes them, in this process: (root, group file names,
    signature files as pass 2 takes them)."""
    from tasks.steps.dedup import grouping, sketch
    from tasks.steps.dedup.step import STAGING, signature_table
    from tasks.store import dataset, part_files, storage

    root = storage.resolve(str(work))
    staging = root.child(STAGING)
    storage.make_dirs(staging)
    names, sources = [], []
    for number, texts in enumerate(files):
        keys = dedup.order_keys(number, 0, len(texts))
        table, _ = signature_table(pa.array(texts, pa.string()), keys, params)
        part_files.write_part(staging, number, [table], table.schema, "none", hashes=True)
        name = dataset.part_name(number)
        tags = sketch.tags_from(table.column(grouping.SIGNATURE)) if params else None
        digests = table.column(grouping.DIGEST).combine_chunks()
        grouping.write_group_files(root, name, keys, digests, tags, params, shards)
        names.append(name)
        sources.append((staging.child(name).uri, number))
    return root, names, sources


def removed_in_process(work: Path, files: list[list[str]], params: dedup.MinHashParams) -> Any:
    """Order keys (an int64 array) of the rows near dedup removes from ``files`` (lists
    of texts, in input order): the step's passes 1 and 2, in this process, under
    ``work``."""
    from tasks.steps.dedup import grouping

    rows = sum(len(texts) for texts in files)
    shards = grouping.Shards(
        grouping.shard_count(len(files), rows),
        grouping.shard_count(len(files), rows * params.bands),
    )
    root, names, sources = group_files(work, files, params, shards)
    found = grouping.find_duplicates(
        root, names, sources, params, shards, lambda fn, specs: [fn(s) for s in specs]
    )
    return found.removed


def measure_in_process(
    work: Path,
    pairs: int,
    threshold: float = 0.8,
    settings: list[tuple[int, int, int]] | None = None,
) -> list[dict[str, Any]]:
    """Score ``settings`` (default: the first of ``SETTINGS``) on one corpus of ``pairs``
    planted pairs, as :func:`measure` does, with the passes that decide what is removed
    run in this process (no Ray)."""
    source = work / "dedup-quality"
    planted = corpus(source, pairs)
    files = [pq.read_table(source / f"part-{f}.parquet") for f in range(FILES)]
    ids = [t.column("id").to_numpy() for t in files]
    rows = 2 * pairs
    results = []
    for shingle, num_perm, bands in settings or SETTINGS[:1]:
        truth = [(a, b, dedup.jaccard(x, y, shingle)) for a, b, x, y in planted]
        explained = {b for _, b, j in truth if j >= threshold - LOW_MARGIN}
        params = dedup.MinHashParams(threshold, shingle, num_perm, bands)
        out = work / f"dedup-quality-{shingle}-{num_perm}-{bands}"
        out.mkdir(parents=True)
        started = time.perf_counter()
        keys = removed_in_process(out, [t.column("text").to_pylist() for t in files], params)
        seconds = time.perf_counter() - started
        removed = {int(ids[k >> dedup.ROW_BITS][k & 0xFFFFFFFF]) for k in keys.tolist()}
        results.append(
            {
                "shingle": shingle,
                "num_perm": num_perm,
                "bands": bands,
                "seconds": seconds,
                "removed": len(removed),
                **score(removed, truth, rows - len(explained), explained, threshold),
            }
        )
    return results
