"""The tokenize step: each document of a dataset (or any input preprocess reads) as its
token ids, in Megatron's indexed-dataset shards, what LLM training reads.

One shard per input file with rows, ``part-00000.bin`` and ``part-00000.idx`` (Megatron
opens it as the prefix ``part-00000``); each document one sequence of the tokenizer's
ids (no special tokens added) plus the id of ``eos_token`` if given. Without a
``shuffle_seed`` a shard holds its file's documents in input order, streamed to the
``.bin`` a batch at a time (memory holds one batch and the documents' lengths). With
one, documents are shuffled across all shards (:mod:`.shuffle`) through ``_shuffle/``
in the output, which goes before the commit: each pass holds one input file's or one
shard's tokens.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict

from tasks.errors import InputError
from tasks.steps import reading
from tasks.steps.skeleton import Counts, PartResult, Plan, Record, Step, total
from tasks.steps.text import check_text_column, text_as_string
from tasks.steps.tokenize import encode, indexed, shuffle
from tasks.store import dataset, inputs, storage
from tasks.store.dataset import FileEntry
from tasks.store.storage import Location

FORMAT = "megatron-indexed-dataset"
# Where a shuffled run keeps each input file's documents grouped by shard.
SHUFFLE = "_shuffle"


class TokenizeParams(BaseModel):
    """What to tokenize and with what (see the tokenize flow's arguments)."""

    model_config = ConfigDict(frozen=True)

    input_uri: str
    tokenizer: str
    input_format: str = "auto"
    text_column: str = "text"
    eos_token: str | None = None
    shuffle_seed: int | None = None
    batch_size: int = 1024


@dataclass(frozen=True)
class TokenizePart:
    """One shard: the input file it holds, and how its documents become tokens."""

    output: Location
    index: int
    source: Location
    rows: int
    format: str
    input_schema: pa.Schema
    text_column: str
    tokenizer: Location
    tokenizer_sha256: str
    eos: int | None
    dtype: str
    batch_size: int


@dataclass(frozen=True)
class ScatterPart:
    """Pass 1 of a shuffle: one input file's documents, grouped by the shard each drew."""

    part: TokenizePart
    seed: int
    shards: int
    first: int  # the number of the file's first document among all files' documents


@dataclass(frozen=True)
class Piece:
    """The documents one staged file holds for a shard: ``documents`` from document
    ``first`` on, ``tokens`` from token ``first_token`` on."""

    staged: Location  # the shuffle's folder
    file: int  # the staged file's index there
    first: int
    documents: int
    first_token: int
    tokens: int


@dataclass(frozen=True)
class GatherPart:
    """Pass 2 of a shuffle: one output shard, its documents from every staged file."""

    output: Location
    index: int
    pieces: tuple[Piece, ...]
    seed: int
    dtype: str
    text_bytes: int


# The tokenizer a worker process loaded last, by its file's digest: one load per process.
_LOADED: dict[str, Any] = {}


def _tokenizer(spec: TokenizePart) -> Any:
    # tokenizers encodes a batch on a rayon pool as wide as the machine, made at its
    # first use in the process; a part has the CPUs Ray gave it (Ray's OMP_NUM_THREADS
    # says how many), and the parts beside it have theirs.
    os.environ.setdefault("RAYON_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    if spec.tokenizer_sha256 not in _LOADED:
        data = storage.read_bytes(spec.tokenizer)
        if hashlib.sha256(data).hexdigest() != spec.tokenizer_sha256:
            raise InputError(f"tokenizer {spec.tokenizer.uri} changed while the run read it")
        _LOADED.clear()
        _LOADED[spec.tokenizer_sha256] = encode.load_tokenizer(data, spec.tokenizer.uri)
    return _LOADED[spec.tokenizer_sha256]


def shard_names(index: int) -> tuple[str, str]:
    """A shard's ``.bin`` and ``.idx`` names: one prefix, as Megatron opens them."""
    return dataset.part_name(index, "bin"), dataset.part_name(index, "idx")


def tokenized_bytes(input_bytes: int, dtype: np.dtype, compressed: bool = False) -> int:
    """At most how large the shards of an input of ``input_bytes`` are: a token per
    byte of text (a byte-level BPE on text it was not trained on; 3-4 bytes a token
    on text it was), a compressed input (Parquet, compressed JSON Lines) taken as
    ``COMPRESSED_JSON_RATIO`` times its size in text."""
    text = input_bytes * (inputs.COMPRESSED_JSON_RATIO if compressed else 1)
    return text * np.dtype(dtype).itemsize


class Tokenize(Step[TokenizeParams, None]):
    name = "tokenize"
    part_suffixes = ("bin", "idx")
    staging_folders = (SHUFFLE,)

    def prepare(self) -> int:
        p = self.params
        if p.batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {p.batch_size}")
        self.tokenizer = encode.tokenizer_file(storage.resolve(p.tokenizer, self.run.s3))
        data = storage.read_bytes(self.tokenizer)
        self.tokenizer_sha256 = hashlib.sha256(data).hexdigest()
        tokenizer = encode.load_tokenizer(data, self.tokenizer.uri)
        self.eos = encode.eos_id(tokenizer, p.eos_token, self.tokenizer.uri)
        self.vocab_size = encode.id_bound(tokenizer)
        self.dtype = indexed.token_dtype(self.vocab_size)
        found, self.inspected, self.source_schema = reading.open_inputs(
            p.input_uri,
            p.input_format,
            self.run,
            check=lambda schema, uri: check_text_column(schema, uri, p.text_column),
            comparable=lambda schema, _: pa.schema([schema.field(p.text_column)]),
        )
        self.found = found
        self.rows = sum(i.num_rows for i in self.inspected)
        if self.rows == 0:
            raise InputError(f"input {found.uri} has no rows")
        shards = sum(
            tokenized_bytes(
                f.size_bytes,
                self.dtype,
                found.format == "parquet" or inputs.codec_of(f.uri) is not None,
            )
            for f in found.files
        )
        # A shuffle stages every token once more before the shards are written.
        return shards * (1 if p.shuffle_seed is None else 2)

    def plan(self) -> Plan[None]:
        p = self.params
        files = [f.loc for f in self.found.files]
        counts = [i.num_rows for i in self.inspected]
        specs = [
            TokenizePart(
                self.run.output,
                index,
                files[i],
                stop,
                self.found.format,
                self.source_schema,
                p.text_column,
                self.tokenizer,
                self.tokenizer_sha256,
                self.eos,
                self.dtype.str,
                p.batch_size,
            )
            for index, [(i, _, stop)] in enumerate(reading.plan_parts(counts, None))
        ]
        schema = document_schema(self.dtype)
        if p.shuffle_seed is None:
            return Plan(specs, schema, self.rows)
        shards = len(specs)
        self.run.on_phase(f"pass 1/2: {shards} input files' documents grouped by shard")
        firsts = itertools.accumulate((s.rows for s in specs), initial=0)
        scatters = [
            ScatterPart(s, p.shuffle_seed, shards, first)
            for s, first in zip(specs, firsts, strict=False)
        ]
        scattered = [done.result for done in self.run.map(scatter, scatters)]
        self.run.on_phase(f"pass 2/2: {shards} shards gathered and permuted")
        return Plan(
            gather_specs(self.run.output, specs, scattered, p.shuffle_seed), schema, self.rows
        )

    @staticmethod
    def write_part(spec: TokenizePart | GatherPart) -> PartResult[Tokens]:
        """Tokenize one input file into one shard, or (a shuffle's last pass) gather
        one shard; a rerun writes the same bytes."""
        if isinstance(spec, GatherPart):
            return gather(spec)
        dtype = np.dtype(spec.dtype)
        bin_name, idx_name = shard_names(spec.index)
        bin_loc, idx_loc = spec.output.child(bin_name), spec.output.child(idx_name)
        lengths: list[np.ndarray] = []
        text_bytes = 0
        with (
            storage.explained(bin_loc, "write"),
            bin_loc.fs.open_output_stream(bin_loc.path) as sink,
        ):
            for ids, counts, sizes in _encoded(spec):
                sink.write(ids.tobytes())
                lengths.append(counts)
                text_bytes += int(sizes.sum())
        every = _joined(lengths, np.int64)
        storage.write_bytes_atomic(idx_loc, indexed.index_bytes(every, dtype))
        return _shard_result(spec.output, spec.index, every, text_bytes)

    def finish(self, state: None, parts: list[PartResult[Tokens]]) -> Record:
        p, found = self.params, self.found
        counted = total((part.counts for part in parts), Tokens())
        return Record(
            resolved={
                "input_uri": found.uri,
                "input_format": found.format,
                "tokenizer": self.tokenizer.uri,
            },
            inputs=found.record(self.rows),
            stats={
                **dataclasses.asdict(counted),
                "text_bytes": sum(part.text_bytes for part in parts),
            },
            sections={
                "tokenized": {
                    "format": FORMAT,
                    "dtype": self.dtype.name,
                    "ids_below": self.vocab_size,  # one more than the largest id
                    "eos_id": self.eos,
                    "tokenizer_sha256": self.tokenizer_sha256,
                    "shuffle_seed": p.shuffle_seed,
                    # Megatron cannot map an empty .bin: a shard of no tokens (its
                    # file's texts all empty, no EOS) is committed but not listed.
                    "shards": sorted(
                        part.entry.path.removesuffix(".bin") for part in parts if part.counts.tokens
                    ),
                }
            },
        )

    @classmethod
    def summary_rows(cls, manifest: dict[str, Any]) -> list[tuple[str, Any]]:
        stats = manifest["stats"]
        per_document = stats["tokens"] / stats["documents"] if stats["documents"] else None
        return [
            ("documents", stats["documents"]),
            ("tokens", stats["tokens"]),
            ("tokens per document", round(per_document, 1) if per_document else None),
            ("token dtype", manifest["tokenized"]["dtype"]),
        ]


def document_schema(dtype: np.dtype) -> pa.Schema:
    """What a shard holds per document, for the manifest's schema."""
    return pa.schema([pa.field("tokens", pa.list_(pa.from_numpy_dtype(np.dtype(dtype))))])


def _encoded(spec: TokenizePart) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """An input file's documents a batch at a time: their ids (as the ``.bin`` holds
    them), each one's length in tokens, and each one's text in UTF-8 bytes."""
    tokenizer = _tokenizer(spec)
    for table in reading.iter_slice(
        spec.format, spec.source, spec.batch_size, spec.input_schema, 0, spec.rows
    ):
        column = text_as_string(table.column(spec.text_column))
        sizes = pc.fill_null(pc.binary_length(column), 0).to_numpy(zero_copy_only=False)
        tokens, counts = encode.encode(tokenizer, column.to_pylist(), spec.eos)
        try:
            ids = indexed.as_ids(tokens, np.dtype(spec.dtype))
        except ValueError as exc:  # the vocabulary's size said otherwise
            raise InputError(f"{spec.tokenizer.uri}: {exc}") from None
        yield ids, counts, sizes.astype(np.int64)


@dataclass(frozen=True)
class Tokens(Counts):
    """The documents and tokens of a shard, or of all of them."""

    documents: int = 0
    tokens: int = 0


def _shard_result(
    output: Location, index: int, lengths: np.ndarray, text_bytes: int
) -> PartResult[Tokens]:
    """A written shard's entries: the ``.bin`` counts its documents, the ``.idx`` none."""
    bin_name, idx_name = shard_names(index)
    documents, tokens = len(lengths), int(lengths.sum())
    return PartResult(
        FileEntry(bin_name, documents, storage.info(output.child(bin_name)).size),
        text_bytes,
        Tokens(documents, tokens),
        files=(FileEntry(idx_name, 0, storage.info(output.child(idx_name)).size),),
    )


def scatter(spec: ScatterPart) -> dict[str, list[int]]:
    """Write one input file's documents to ``_shuffle/`` grouped by the shard each drew
    (one indexed dataset); return each shard's documents, tokens and text bytes."""
    part = spec.part
    batches = list(_encoded(part))
    dtype = np.dtype(part.dtype)
    ids = _joined([b[0] for b in batches], dtype)
    lengths, sizes = (_joined([b[k] for b in batches], np.int64) for k in (1, 2))
    del batches
    if len(lengths) != part.rows:
        raise RuntimeError(f"{part.source.uri}: {len(lengths)} rows read, {part.rows} counted")
    shard_of = shuffle.targets(spec.seed, part.index, spec.first, len(lengths), spec.shards)
    grouped, moved, documents, tokens = shuffle.group(ids, lengths, shard_of, spec.shards)
    _write_shard(part.output.child(SHUFFLE), part.index, grouped, moved, dtype)
    text = np.bincount(shard_of, weights=sizes, minlength=spec.shards)
    return {
        "documents": documents.tolist(),
        "tokens": tokens.tolist(),
        "text_bytes": text.astype(np.int64).tolist(),
    }


def gather_specs(
    output: Location, files: list[TokenizePart], scattered: list[dict[str, list[int]]], seed: int
) -> list[GatherPart]:
    """Each shard's pieces of every staged file, from what pass 1 counted."""
    staged = output.child(SHUFFLE)
    firsts = [[0, *itertools.accumulate(r["documents"])] for r in scattered]
    first_tokens = [[0, *itertools.accumulate(r["tokens"])] for r in scattered]
    return [
        GatherPart(
            output,
            shard,
            tuple(
                Piece(
                    staged,
                    file.index,
                    first[shard],
                    r["documents"][shard],
                    tokens[shard],
                    r["tokens"][shard],
                )
                for file, r, first, tokens in zip(
                    files, scattered, firsts, first_tokens, strict=True
                )
                if r["documents"][shard]
            ),
            seed,
            files[0].dtype,
            sum(r["text_bytes"][shard] for r in scattered),
        )
        for shard in range(len(files))
    ]


def gather(spec: GatherPart) -> PartResult[Tokens]:
    """Read one shard's pieces of every staged file, permute its documents, write it."""
    dtype = np.dtype(spec.dtype).newbyteorder("<")
    ids: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    for piece in spec.pieces:
        bin_loc, idx_loc = (piece.staged.child(name) for name in shard_names(piece.file))
        counts = storage.read_range(idx_loc, indexed.lengths_at(piece.first), 4 * piece.documents)
        lengths.append(np.frombuffer(counts, dtype="<i4").astype(np.int64))
        if int(lengths[-1].sum()) != piece.tokens:
            raise RuntimeError(f"{idx_loc.uri} changed since pass 1 wrote it")
        raw = storage.read_range(
            bin_loc, piece.first_token * dtype.itemsize, piece.tokens * dtype.itemsize
        )
        ids.append(np.frombuffer(raw, dtype=dtype))
    every, tokens = _joined(lengths, np.int64), _joined(ids, dtype)
    del ids
    order = shuffle.permutation(spec.seed, spec.index, len(every))
    tokens, every = shuffle.reorder(tokens, every, order)
    _write_shard(spec.output, spec.index, tokens, every, dtype)
    return _shard_result(spec.output, spec.index, every, spec.text_bytes)


def _joined(arrays: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)


def _write_shard(
    folder: Location, index: int, tokens: np.ndarray, lengths: np.ndarray, dtype: np.dtype
) -> None:
    """Shard ``index``'s ``.bin`` and ``.idx`` in ``folder``, each written atomically."""
    written = indexed.shard(tokens, lengths, dtype)
    bin_name, idx_name = shard_names(index)
    storage.write_bytes_atomic(folder.child(bin_name), written.bin)
    storage.write_bytes_atomic(folder.child(idx_name), written.idx)
