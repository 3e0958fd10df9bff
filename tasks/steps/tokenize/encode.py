"""Texts to token ids with a Hugging Face tokenizer, read from a ``tokenizer.json`` (or
a folder holding one), local or on S3, offline: nothing is downloaded."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow.fs as pafs

from tasks.errors import InputError
from tasks.store import storage
from tasks.store.storage import Location

TOKENIZER_FILE = "tokenizer.json"


def tokenizer_file(where: Location) -> Location:
    """``where`` if it is a file, else the ``tokenizer.json`` inside it; an InputError
    naming what is missing."""
    found = storage.info(where)
    if found.type == pafs.FileType.NotFound:
        raise InputError(f"tokenizer {where.uri} does not exist")
    if found.type == pafs.FileType.Directory:
        inside = where.child(TOKENIZER_FILE)
        if not storage.exists(inside):
            raise InputError(f"tokenizer folder {where.uri} holds no {TOKENIZER_FILE}")
        return inside
    return where


def load_tokenizer(data: bytes, name: str) -> Any:
    """The tokenizer serialized in ``data`` (a ``tokenizer.json``, named ``name`` in
    errors)."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_str(data.decode("utf-8"))
    except Exception as exc:  # a bad encoding, or tokenizers' own plain Exception
        raise InputError(f"{name} is not a Hugging Face tokenizer.json: {exc}") from None
    # A document's own "<|endoftext|>" is text, not the end of a document: it is
    # encoded as ordinary pieces, so no document can end or split itself.
    tokenizer.encode_special_tokens = True
    # A tokenizer.json saved for batched inference may pad and truncate: a document is
    # its whole encoding, whatever the batch it was encoded in.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def id_bound(tokenizer: Any) -> int:
    """One more than the tokenizer's largest id (added tokens included): what the ids'
    dtype must hold, whatever gaps the vocabulary has."""
    ids = tokenizer.get_vocab(with_added_tokens=True).values()
    return max(ids, default=-1) + 1


def eos_id(tokenizer: Any, eos_token: str | None, name: str) -> int | None:
    """The id of ``eos_token`` in the tokenizer's vocabulary (None for none)."""
    if eos_token is None:
        return None
    found = tokenizer.token_to_id(eos_token)
    if found is None:
        raise InputError(f"eos_token {eos_token!r} is not in the vocabulary of {name}")
    return int(found)


def encode(
    tokenizer: Any, texts: Sequence[str | None], eos: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Every text's token ids, no special tokens added, then ``eos`` if given, one
    document after another; and each document's length. A null text is an empty
    document (its ``eos`` alone). Texts go to the tokenizer ``CHUNK_BYTES`` of text at
    a time: its encodings take about 90 times the text's bytes while they live."""
    pieces: list[np.ndarray] = []
    lengths: list[int] = []
    for chunk in _chunks([text or "" for text in texts]):
        for document in tokenizer.encode_batch_fast(chunk, add_special_tokens=False):
            ids = np.asarray(document.ids, dtype=np.int64)
            pieces.append(ids if eos is None else np.append(ids, eos))
            lengths.append(len(pieces[-1]))
    tokens = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    return tokens, np.asarray(lengths, dtype=np.int64)


CHUNK_BYTES = 8 * 1024 * 1024


def _chunks(texts: list[str]) -> Iterator[list[str]]:
    """``texts`` in order, in runs of about ``CHUNK_BYTES`` (a longer text alone)."""
    run: list[str] = []
    size = 0
    for text in texts:
        # UTF-8 bytes, not characters: Korean takes three a character.
        length = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        if run and size + length > CHUNK_BYTES:
            yield run
            run, size = [], 0
        run.append(text)
        size += length
    if run:
        yield run
