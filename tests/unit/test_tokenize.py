"""Tokenized shards: Megatron's indexed dataset read back by a reader written here from
the format's description, with a tokenizer trained by `tokenizers` itself (nothing is
downloaded)."""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import numpy as np
import pytest

from tasks.errors import InputError
from tasks.steps.tokenize import encode, indexed, shuffle
from tasks.store import storage
from tests.helpers import train_tokenizer

CODES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 8: np.uint16}
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다.",
    "",
    None,
    "Emoji 🙂 and combining marks: e\u0301, 한\u1100",
    "line one\r\nline two\n\nthird paragraph",
]


def read_indexed(bin_bytes: bytes, idx_bytes: bytes) -> tuple[np.dtype, list[list[int]]]:
    """Every document of a shard: magic, version 1, dtype code, sequence and document
    counts, int32 lengths, int64 byte pointers, int64 document indices."""
    magic, version, code, sequences, documents = struct.unpack_from("<9sQBQQ", idx_bytes)
    assert (magic, version) == (b"MMIDIDX\x00\x00", 1)
    at = struct.calcsize("<9sQBQQ")
    lengths = np.frombuffer(idx_bytes, "<i4", sequences, at)
    pointers = np.frombuffer(idx_bytes, "<i8", sequences, at + 4 * sequences)
    starts = np.frombuffer(idx_bytes, "<i8", documents, at + 12 * sequences)
    assert len(idx_bytes) == at + 12 * sequences + 8 * documents
    dtype = np.dtype(CODES[code]).newbyteorder("<")
    sequence = [
        np.frombuffer(bin_bytes, dtype, n, p).tolist()
        for n, p in zip(lengths, pointers, strict=True)
    ]
    # A document is the sequences from its index to the next one's.
    docs = [[t for s in sequence[a:b] for t in s] for a, b in itertools.pairwise(starts)]
    return dtype, docs


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory) -> Path:
    return train_tokenizer(tmp_path_factory.mktemp("tokenizer"), [t for t in TEXTS if t] * 20)


def _load(where: Path):
    file = encode.tokenizer_file(storage.resolve(str(where)))
    return encode.load_tokenizer(storage.read_bytes(file), file.uri)


def test_every_document_reads_back_as_its_encoding_plus_eos(tokenizer_json):
    tokenizer = _load(tokenizer_json.parent)  # the folder holding tokenizer.json
    eos = encode.eos_id(tokenizer, "<|endoftext|>", "t")
    tokens, lengths = encode.encode(tokenizer, TEXTS, eos)
    shard = indexed.shard(tokens, lengths, indexed.token_dtype(tokenizer.get_vocab_size()))
    dtype, docs = read_indexed(shard.bin, shard.idx)
    assert dtype == np.dtype("<u2")
    assert (shard.documents, shard.tokens) == (len(TEXTS), len(tokens))
    for text, doc in zip(TEXTS, docs, strict=True):
        expected = tokenizer.encode(text or "", add_special_tokens=False).ids
        assert doc == [*expected, eos]
        assert tokenizer.decode(doc[:-1]) == (text or "")  # byte-level: lossless
    plain, plain_lengths = encode.encode(tokenizer, TEXTS, None)
    bare = indexed.shard(plain, plain_lengths, dtype)
    assert read_indexed(bare.bin, bare.idx)[1] == [d[:-1] for d in docs]


def test_the_dtype_follows_the_vocabulary_as_megatron_picks_it():
    assert indexed.token_dtype(50_257) == np.uint16  # GPT-2
    assert indexed.token_dtype(65_499) == np.uint16
    assert indexed.token_dtype(65_500) == np.int32
    assert indexed.token_dtype(128_256) == np.int32  # Llama 3
    ids = np.array([0, 70_000, 128_255, 5])
    shard = indexed.shard(ids, np.array([3, 1]), indexed.token_dtype(128_256))
    dtype, docs = read_indexed(shard.bin, shard.idx)
    assert dtype == np.dtype("<i4") and docs == [[0, 70_000, 128_255], [5]]
    with pytest.raises(ValueError, match="do not fit uint16"):
        indexed.shard(ids, np.array([3, 1]), np.uint16)
    with pytest.raises(ValueError, match="add up to 3, not the 4"):
        indexed.shard(ids, np.array([2, 1]), np.int32)


def test_an_empty_shard_is_a_valid_index():
    shard = indexed.shard(np.array([], dtype=np.int64), np.array([], dtype=np.int64), np.uint16)
    assert read_indexed(shard.bin, shard.idx) == (np.dtype("<u2"), [])
    assert shard.bin == b""


def test_a_missing_or_bad_tokenizer_and_an_unknown_eos_are_named(tmp_path, tokenizer_json):
    with pytest.raises(InputError, match=r"tokenizer \S*nowhere does not exist"):
        encode.tokenizer_file(storage.resolve(str(tmp_path / "nowhere")))
    with pytest.raises(InputError, match=r"holds no tokenizer\.json"):
        encode.tokenizer_file(storage.resolve(str(tmp_path)))
    with pytest.raises(InputError, match=r"bad\.json is not a Hugging Face tokenizer\.json"):
        encode.load_tokenizer(b'{"not": "a tokenizer"}', "bad.json")
    with pytest.raises(InputError, match="eos_token '</s>' is not in the vocabulary of t"):
        encode.eos_id(_load(tokenizer_json), "</s>", "t")


def test_a_documents_own_special_token_text_is_text(tokenizer_json):
    """A document holding "<|endoftext|>" does not end itself there."""
    tokenizer = _load(tokenizer_json)
    eos = encode.eos_id(tokenizer, "<|endoftext|>", "t")
    tokens, _ = encode.encode(tokenizer, ["ab<|endoftext|>cd"], eos)
    assert tokens.tolist().count(eos) == 1 and tokens[-1] == eos
    assert tokenizer.decode(tokens[:-1].tolist()) == "ab<|endoftext|>cd"


def test_batches_are_cut_by_bytes_with_the_same_ids(tokenizer_json, monkeypatch):
    tokenizer = _load(tokenizer_json)
    whole = encode.encode(tokenizer, TEXTS * 3, 0)
    monkeypatch.setattr(encode, "CHUNK_BYTES", 40)  # a few texts per call, a long one alone
    cut = encode.encode(tokenizer, TEXTS * 3, 0)
    assert whole[0].tolist() == cut[0].tolist() and whole[1].tolist() == cut[1].tolist()
    assert [len(c) for c in encode._chunks(["a" * 50, "b", "c" * 30, "d" * 20])] == [1, 2, 1]
    # Measured in UTF-8 bytes: 15 Hangul syllables are 45 bytes, over 40 on their own.
    assert [len(c) for c in encode._chunks(["가" * 15, "b", "나" * 5])] == [1, 2]


def test_a_tokenizer_saved_to_pad_and_truncate_encodes_whole_documents(
    tmp_path, tokenizer_json, monkeypatch
):
    """A tokenizer.json saved for batched inference (padding, truncation on) still
    gives every document its whole encoding, whatever the batch it is in."""
    from tokenizers import Tokenizer

    saved = Tokenizer.from_file(str(tokenizer_json))
    saved.enable_truncation(max_length=8)
    saved.enable_padding(pad_id=0)
    saved.save(str(tmp_path / "tokenizer.json"))
    padded = encode.load_tokenizer((tmp_path / "tokenizer.json").read_bytes(), "padded")
    plain = _load(tokenizer_json)
    texts = ["hi", TEXTS[4] * 3]
    expected = [plain.encode(t, add_special_tokens=False).ids for t in texts]
    assert len(expected[1]) > 8
    for chunk_bytes in (1, encode.CHUNK_BYTES):  # one document per call, or both at once
        monkeypatch.setattr(encode, "CHUNK_BYTES", chunk_bytes)
        tokens, lengths = encode.encode(padded, texts, None)
        assert lengths.tolist() == [len(e) for e in expected]
        assert tokens.tolist() == [i for e in expected for i in e], chunk_bytes


def test_the_dtype_holds_the_largest_id_whatever_the_vocabularys_gaps():
    from tokenizers import Tokenizer, models

    sparse = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1, "b": 70_000}, unk_token="[UNK]"))
    assert sparse.get_vocab_size() == 3
    assert encode.id_bound(sparse) == 70_001
    assert indexed.token_dtype(encode.id_bound(sparse)) == np.int32


def _documents(tokens: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
    ends = np.cumsum(lengths)
    return [tokens[e - n : e].tolist() for e, n in zip(ends, lengths, strict=True)]


@pytest.mark.parametrize("block_tokens", [1, 3, 1 << 22])
def test_reorder_moves_whole_documents_in_any_block_size(block_tokens):
    rng = np.random.default_rng(5)
    lengths = rng.integers(0, 9, 200)  # empty documents too
    tokens = rng.integers(0, 60000, int(lengths.sum())).astype(np.uint16)
    order = rng.permutation(len(lengths))
    moved, moved_lengths = shuffle.reorder(tokens, lengths, order, block_tokens)
    before = _documents(tokens, lengths)
    assert _documents(moved, moved_lengths) == [before[k] for k in order]
    assert moved.dtype == tokens.dtype


def test_shuffle_draws_depend_on_the_seed_and_index_only():
    def draw(seed, index, first=0, documents=1000, shards=5):
        return shuffle.targets(seed, index, first, documents, shards).tolist()

    assert draw(7, 3) == draw(7, 3)
    assert draw(7, 3) != draw(8, 3) and draw(7, 3) != draw(7, 4)
    first = shuffle.permutation(7, 0, 50)
    assert first.tolist() == shuffle.permutation(7, 0, 50).tolist()
    assert sorted(first.tolist()) == list(range(50)) and first.tolist() != list(range(50))
    # The scatter's and the permutation's draws are not one stream.
    assert shuffle.permutation(7, 0, 5).tolist() != draw(7, 0, documents=5)


@pytest.mark.parametrize("sizes", [[1] * 12, [3, 1, 0, 7, 2], [1000, 1, 1]])
def test_shuffle_shards_are_balanced_and_none_is_empty(sizes):
    """However the documents fall into files, the shards (one per file with documents)
    differ by at most one document: none is empty."""
    shards = sum(1 for n in sizes if n)
    counts = np.zeros(shards, dtype=np.int64)
    first = 0
    for index, n in enumerate(sizes):
        counts += np.bincount(shuffle.targets(3, index, first, n, shards), minlength=shards)
        first += n
    assert counts.sum() == sum(sizes)
    assert counts.max() - counts.min() <= 1 and counts.min() >= 1


def test_group_keeps_input_order_within_a_shard():
    lengths = np.array([1, 2, 3, 1, 2])
    tokens = np.arange(9, dtype=np.uint16)
    shard_of = np.array([1, 0, 1, 0, 1])
    grouped, moved, documents, counts = shuffle.group(tokens, lengths, shard_of, 3)
    assert _documents(grouped, moved) == [[1, 2], [6], [0], [3, 4, 5], [7, 8]]
    assert documents.tolist() == [2, 3, 0] and counts.tolist() == [3, 6, 0]
