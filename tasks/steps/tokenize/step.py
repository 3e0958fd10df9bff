"""The tokenize step: each document of a dataset (or any input preprocess reads) as its
token ids, in Megatron's indexed-dataset shards, what LLM training reads.

One shard per input file with rows, ``part-00000.bin`` and ``part-00000.idx`` (Megatron
opens it as the prefix ``part-00000``); its documents in input order, each one sequence
of the tokenizer's ids (no special tokens added) plus the id of ``eos_token`` if given.
A part streams its tokens to the ``.bin`` a batch at a time and writes its ``.idx``
last, so memory holds one batch and the lengths of its documents.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict

from tasks.cluster.mapping import Done
from tasks.errors import InputError
from tasks.steps import reading
from tasks.steps.preprocess.clean import check_text_column, text_as_string
from tasks.steps.preprocess.step import plan_parts
from tasks.steps.skeleton import PartResult, Plan, Record, Step
from tasks.steps.tokenize import encode, indexed
from tasks.store import dataset, inputs, storage
from tasks.store.dataset import FileEntry
from tasks.store.storage import Location

FORMAT = "megatron-indexed-dataset"


class TokenizeParams(BaseModel):
    """What to tokenize and with what (see the tokenize flow's arguments)."""

    model_config = ConfigDict(frozen=True)

    input_uri: str
    tokenizer: str
    input_format: str = "auto"
    text_column: str = "text"
    eos_token: str | None = None
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


# The tokenizer a worker process loaded last, by its file's digest: one load per process.
_LOADED: dict[str, Any] = {}


def _tokenizer(spec: TokenizePart) -> Any:
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


def tokenized_bytes(input_bytes: int, dtype: np.dtype, compressed_json: bool = False) -> int:
    """About how large the shards of an input of ``input_bytes`` are: at most a token
    per two bytes of text (BPE vocabularies average three to four)."""
    text = input_bytes * (inputs.COMPRESSED_JSON_RATIO if compressed_json else 1)
    return text * np.dtype(dtype).itemsize // 2


class Tokenize(Step[TokenizeParams]):
    name = "tokenize"
    part_suffixes = ("bin", "idx")

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
        return sum(
            tokenized_bytes(f.size_bytes, self.dtype, inputs.codec_of(f.uri) is not None)
            for f in found.files
        )

    def plan(self) -> Plan:
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
            for index, [(i, _, stop)] in enumerate(plan_parts(counts, None))
        ]
        return Plan(specs, document_schema(self.dtype), self.rows)

    @staticmethod
    def write_part(spec: TokenizePart) -> PartResult:
        """Tokenize one input file into one shard; a rerun writes the same bytes."""
        tokenizer = _tokenizer(spec)
        dtype = np.dtype(spec.dtype)
        bin_name, idx_name = shard_names(spec.index)
        bin_loc, idx_loc = spec.output.child(bin_name), spec.output.child(idx_name)
        lengths: list[np.ndarray] = []
        text_bytes = 0
        with (
            storage.explained(bin_loc, "write"),
            bin_loc.fs.open_output_stream(bin_loc.path) as sink,
        ):
            for table in reading.iter_slice(
                spec.format, spec.source, spec.batch_size, spec.input_schema, 0, spec.rows
            ):
                column = text_as_string(table.column(spec.text_column))
                text_bytes += int(pc.sum(pc.binary_length(column)).as_py() or 0)
                tokens, counts = encode.encode(tokenizer, column.to_pylist(), spec.eos)
                try:
                    sink.write(indexed.token_bytes(tokens, dtype))
                except ValueError as exc:  # the vocabulary's size said otherwise
                    raise InputError(f"{spec.tokenizer.uri}: {exc}") from None
                lengths.append(counts)
        every = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
        storage.write_bytes_atomic(idx_loc, indexed.index_bytes(every, dtype))
        documents, tokens = len(every), int(every.sum())
        return PartResult(
            FileEntry(bin_name, documents, storage.info(bin_loc).size),
            text_bytes,
            {"documents": documents, "tokens": tokens},
            files=(FileEntry(idx_name, 0, storage.info(idx_loc).size),),
        )

    def finish(self, parts: list[Done]) -> Record:
        p, found = self.params, self.found
        documents = sum(part.result.counts["documents"] for part in parts)
        tokens = sum(part.result.counts["tokens"] for part in parts)
        return Record(
            parameters={
                "input_uri": found.uri,
                "input_format": found.format,
                "text_column": p.text_column,
                "tokenizer": self.tokenizer.uri,
                "eos_token": p.eos_token,
                "batch_size": p.batch_size,
            },
            inputs=found.record(self.rows),
            stats={
                "documents": documents,
                "tokens": tokens,
                "text_bytes": sum(part.result.text_bytes for part in parts),
            },
            sections={
                "tokenized": {
                    "format": FORMAT,
                    "dtype": self.dtype.name,
                    "ids_below": self.vocab_size,  # one more than the largest id
                    "eos_id": self.eos,
                    "tokenizer_sha256": self.tokenizer_sha256,
                    # Megatron cannot map an empty .bin: a shard of no tokens (its
                    # file's texts all empty, no EOS) is committed but not listed.
                    "shards": sorted(
                        part.result.entry.path.removesuffix(".bin")
                        for part in parts
                        if part.result.counts["tokens"]
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
