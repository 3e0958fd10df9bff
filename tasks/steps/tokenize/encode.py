"""Texts to token ids with a Hugging Face tokenizer, read from a ``tokenizer.json`` (or
a folder holding one), local or on S3, offline: nothing is downloaded."""

from __future__ import annotations

from collections.abc import Sequence
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
        return Tokenizer.from_str(data.decode("utf-8"))
    except Exception as exc:  # a bad encoding, or tokenizers' own plain Exception
        raise InputError(f"{name} is not a Hugging Face tokenizer.json: {exc}") from None


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
    document (its ``eos`` alone)."""
    encoded = tokenizer.encode_batch_fast([text or "" for text in texts], add_special_tokens=False)
    extra = 0 if eos is None else 1
    lengths = np.fromiter((len(e.ids) + extra for e in encoded), np.int64, len(encoded))
    tokens = np.empty(int(lengths.sum()), dtype=np.int64)
    at = 0
    for document in encoded:
        ids = document.ids
        tokens[at : at + len(ids)] = ids
        at += len(ids)
        if eos is not None:
            tokens[at] = eos
            at += 1
    return tokens, lengths
