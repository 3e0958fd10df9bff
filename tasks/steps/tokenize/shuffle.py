"""A deterministic shuffle of documents across every shard: which shard each document
goes to and in what order a shard holds its documents, from the seed alone.

Two passes, so that no process holds more than one input file's or one shard's tokens:
each input file's documents draw their shards and are written grouped by shard (stable,
so in input order within a group); each shard then gathers its group from every file
and permutes it. The draws are balanced: the documents of all files, numbered in input
order, go to shard number mod shards, each file's numbers dealt to its documents in a
seeded random order. So shards differ by at most one document, none is empty while
there are as many documents as shards (Megatron cannot map an empty ``.bin``), and a
file's documents still land on every shard at random.

Both draws come from numpy's ``SeedSequence`` of the seed, a pass number and the file's
or shard's index, so a rerun (or a retried part) writes the same bytes, and no draw
depends on how Ray scheduled the parts.
"""

from __future__ import annotations

import itertools

import numpy as np

_SCATTER, _PERMUTE = 0, 1


def _generator(seed: int, purpose: int, index: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, purpose, index])))


def targets(seed: int, file_index: int, first: int, documents: int, shards: int) -> np.ndarray:
    """The shard each of the ``documents`` of input file ``file_index`` goes to, its
    documents numbered from ``first`` among all files' (see the module docstring)."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    dealt = _generator(seed, _SCATTER, file_index).permutation(documents)
    return (dealt + first) % shards


def permutation(seed: int, shard: int, documents: int) -> np.ndarray:
    """The order shard ``shard`` writes its ``documents`` gathered ones in."""
    return _generator(seed, _PERMUTE, shard).permutation(documents)


def reorder(
    tokens: np.ndarray, lengths: np.ndarray, order: np.ndarray, block_tokens: int = 1 << 22
) -> tuple[np.ndarray, np.ndarray]:
    """Documents given as their ``tokens`` one after another and each one's length,
    rearranged so that document ``order[k]`` comes k-th. Moved ``block_tokens`` at a
    time (a longer document alone), so the positions take 16 bytes per token of a
    block, not of the whole."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total != len(tokens):
        raise ValueError(f"lengths add up to {total}, not {len(tokens)} tokens")
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    moved = lengths[order]
    ends = np.cumsum(moved)
    new_starts = ends - moved
    out = np.empty_like(tokens)
    cuts = np.searchsorted(ends, np.arange(block_tokens, total, block_tokens), side="right")
    bounds = np.unique(np.concatenate(([0], cuts, [len(moved)])))
    for a, b in itertools.pairwise(bounds):
        if a == b:
            continue
        lo, hi = int(new_starts[a]), int(ends[b - 1])
        # Each token's source: its new position shifted by how far its document moved.
        shift = np.repeat(starts[order[a:b]] - new_starts[a:b], moved[a:b])
        out[lo:hi] = tokens[np.arange(lo, hi, dtype=np.int64) + shift]
    return out, moved


def group(
    tokens: np.ndarray, lengths: np.ndarray, shard_of: np.ndarray, shards: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A file's documents grouped by shard (stable): their tokens and lengths, and how
    many documents and tokens each shard's group has."""
    order = np.argsort(shard_of, kind="stable")
    grouped, moved = reorder(tokens, lengths, order)
    documents = np.bincount(shard_of, minlength=shards)
    counts = np.bincount(shard_of, weights=lengths, minlength=shards).astype(np.int64)
    return grouped, moved, documents, counts
