"""Decontamination (tasks/steps/filter/decontaminate.py): the normalisation against a
plain-Python one, n-grams planted in documents found with the benchmark that holds them,
one word fewer never, and benchmarks read from JSON Lines and Parquet."""

from __future__ import annotations

import json
import random
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.errors import InputError
from tasks.steps.filter import decontaminate
from tasks.steps.filter.options import Benchmark, Decontaminate

QUESTION = (
    "Which of the following best explains why the Roman Republic relied on annually "
    "elected consuls rather than a single ruler during its early centuries?"
)
ANSWER = "Romans feared the concentration of power after expelling their last king."


def reference(text: str) -> str:
    """The normalisation in plain Python: punctuation, symbols, marks and format
    characters out; each character its compatibility decomposition without marks,
    lower-cased, where that is one character (else its lower case where that is one);
    words one space apart."""
    kept = []
    for c in text:
        category = unicodedata.category(c)
        if category[0] in "PSM" or category == "Cf":
            continue
        decomposed = unicodedata.normalize("NFKD", c)
        fold = "".join(d for d in decomposed if not unicodedata.category(d).startswith("M"))
        fold, low = fold.lower(), c.lower()
        kept.append(fold if len(fold) == 1 else low if len(low) == 1 else c)
    return " ".join("".join(kept).split())


_PIECES = [
    "Word", "word", "DON'T", "stop-now", "e.g.", "U.S.A.", "$5", "+", "«quoted»", "—", "…",
    "\t", "\n", "\r\n", " ", "  ", "\u00a0", "\u3000", "한국어", "中文", "🙂", "e\u0301",
    "ÉCOLE", "Straße", "ΣΊΣΥΦΟΣ", "1,000", "x²", "#tag", "@user", "a/b", "ﬁne", "Ａｂｃ",
    "soft\u00adhyphen", "zero\u200bwidth", "crème brûlée", "cre\u0300me", "한글",
    "\u1112\u1161\u11ab",
]  # fmt: skip


@pytest.mark.parametrize("seed", range(3))
def test_the_normalisation_is_plain_pythons(seed):
    rng = random.Random(seed)
    texts = ["".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 30))) for _ in range(3000)]
    for text in texts:
        assert decontaminate.normalised(text) == reference(text), repr(text)
    # A text and its normalised form have the same n-grams: the index meets them equal.
    for n in (1, 3):
        for text in texts[:500]:
            got, _ = decontaminate.ngram_keys(pa.array([text]), n)
            want, _ = decontaminate.ngram_keys(pa.array([reference(text)]), n)
            assert got.tolist() == want.tolist(), repr(text)


def test_composed_and_decomposed_accents_and_format_characters_meet():
    words = "the café served crème brûlée to a naïve señor in the old façade room today"
    index = _index({"menu": [words]})
    nfd = unicodedata.normalize("NFD", words)
    variants = [nfd, words.replace(" ", " \u00ad"), words.upper(), words.replace("é", "e")]
    found, _ = index.matches(pa.array(variants))
    assert found.tolist() == [1, 1, 1, 1]


def _index(items: dict[str, list[str]], n: int = 13) -> decontaminate.Index:
    keys = [np.unique(decontaminate.ngram_keys(pa.array(texts), n)[0]) for texts in items.values()]
    return decontaminate.build(list(items), keys, n)


def test_a_planted_span_across_question_and_answer_is_found_with_its_benchmark():
    index = _index({"history": [f"{QUESTION} {ANSWER}"], "other": ["nothing alike at all"]})
    words, asked = f"{QUESTION} {ANSWER}".split(), len(QUESTION.split())
    span = words[asked - 8 : asked + 5]  # the question's last 8 words and the answer's first 5
    assert span[7].endswith("?") and span[8] == "Romans"
    changed = " ".join(w.upper() if i % 2 else w + "," for i, w in enumerate(span))
    short = " ".join(span[:12])
    docs = [
        f"An essay.\n\n{changed}\nMore text follows here.",
        f"An essay. {short} and then it goes elsewhere entirely.",
        "",
        None,
        changed.replace(" ", "\n"),
    ]
    owner, found = index.matches(pa.chunked_array([docs[:2], docs[2:]], pa.string()))
    assert owner.tolist() == [1, 0, 0, 0, 1]  # a bit per benchmark: "history" is the first
    assert found[0] == found[4] == reference(" ".join(span))
    assert found[1:4] == [None, None, None]


def test_a_document_holding_several_benchmarks_n_grams_is_each_ones():
    shared = " ".join(f"w{i}" for i in range(13))
    own = " ".join(f"v{i}" for i in range(13))
    index = _index({"first": [f"a b {shared}", own], "second": [f"{shared} c d", "x " * 20]})
    docs = [f"zz {shared} zz", "x " * 13, f"{'x ' * 13} then {own} later"]
    found, grams = index.matches(pa.array(docs))
    assert found.tolist() == [3, 2, 3]
    # Named by the first benchmark's first n-gram, even where another's comes first.
    assert grams == [shared, ("x " * 13).strip(), own]


def test_the_index_looks_up_among_many_keys():
    """A million keys in the index (the directory's buckets hold several): every planted
    n-gram found, none of 20,000 others."""
    rng = random.Random(5)
    vocabulary = [f"v{i}" for i in range(5000)]
    items = [" ".join(rng.choices(vocabulary, k=40)) for _ in range(36_000)]
    index = _index({"big": items})
    assert len(index.keys) > 1_000_000
    docs = [" ".join(items[i].split()[j : j + 13]) for i, j in ((0, 0), (17, 27), (35_999, 5))]
    fresh = [" ".join(rng.choices(vocabulary, k=13)) for _ in range(20_000)]
    owner, _ = index.matches(pa.array(docs + fresh))
    assert owner[:3].tolist() == [1, 1, 1]
    assert (owner[3:] == 0).all()


def test_benchmarks_are_read_from_json_lines_and_parquet(tmp_path):
    rows = [
        {"question": QUESTION, "answer": ANSWER, "choices": ["a", None, "b"], "id": 1},
        {"question": "Too short.", "answer": None, "choices": None, "id": 2},
    ]
    (tmp_path / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pq" / "items.parquet")
    options = Decontaminate(
        benchmarks=[
            Benchmark(name="jsonl", uri=str(tmp_path / "qa.jsonl"), columns=["question"]),
            Benchmark(name="parquet", uri=str(tmp_path / "pq"), columns=["answer", "choices"]),
        ],
        ngram=5,
    )
    index, identity = decontaminate.index_of(options, None)
    described = {b["name"]: b for b in identity["benchmarks"]}
    assert described["jsonl"]["items"] == 2 and described["jsonl"]["items_too_short"] == 1
    assert described["parquet"]["files"] == [f"file://{tmp_path}/pq/items.parquet"]
    assert identity["ngrams"] == len(index.keys) and len(identity["sha256"]) == 64
    # "...last king. a b": the answer and the choices make one item (a null choice out).
    owner, found = index.matches(pa.array(["their last king a b", "elected consuls rather than"]))
    assert owner.tolist() == [2, 0] and found[0] == "their last king a b"
    again, _ = decontaminate.index_of(options, None)
    assert decontaminate.digest(again) == identity["sha256"]
    staged = decontaminate.from_table(decontaminate.as_table(index))
    assert staged.names == index.names and (staged.keys == index.keys).all()


def test_a_benchmark_without_its_column_or_items_is_refused_by_name(tmp_path):
    (tmp_path / "qa.jsonl").write_text(json.dumps({"question": "q"}) + "\n")
    (tmp_path / "empty.jsonl").write_text("")
    missing = Benchmark(name="mmlu", uri=str(tmp_path / "qa.jsonl"), columns=["question", "ans"])
    with pytest.raises(InputError, match=r"benchmark mmlu: .*qa.jsonl has no column 'ans'"):
        decontaminate.index_of(Decontaminate(benchmarks=[missing]), None)
    empty = Benchmark(name="none", uri=str(tmp_path / "empty.jsonl"), columns=["question"])
    with pytest.raises(InputError, match=r"benchmark none .* has no items"):
        decontaminate.index_of(Decontaminate(benchmarks=[empty]), None)
    short = Benchmark(name="short", uri=str(tmp_path / "qa.jsonl"), columns=["question"])
    with pytest.raises(InputError, match=r"benchmark short .*none of its 1 items has 13 words"):
        decontaminate.index_of(Decontaminate(benchmarks=[short]), None)
    nowhere = Benchmark(name="gone", uri=str(tmp_path / "nope" / "*.jsonl"), columns=["q"])
    with pytest.raises(InputError, match=r"filters\.decontaminate benchmark gone: "):
        decontaminate.index_of(Decontaminate(benchmarks=[nowhere]), None)
    nested = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"q": [[{"x": 1}]]}), nested)
    odd = Benchmark(name="odd", uri=str(nested), columns=["q"])
    with pytest.raises(InputError, match=r"benchmark odd: column 'q' .* not text"):
        decontaminate.index_of(Decontaminate(benchmarks=[odd]), None)


def test_the_options_refuse_a_bad_ngram_and_names_by_name():
    from pydantic import ValidationError

    item = {"name": "a", "uri": "x.jsonl", "columns": ["q"]}
    with pytest.raises(ValidationError, match="ngram"):
        Decontaminate(benchmarks=[item], ngram=0)
    with pytest.raises(ValidationError, match="given twice"):
        Decontaminate(benchmarks=[item, item])
    with pytest.raises(ValidationError, match="name"):
        Decontaminate(benchmarks=[{**item, "name": "Has Spaces"}])
