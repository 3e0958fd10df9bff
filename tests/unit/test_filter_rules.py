"""The datatrove quality rules of tasks/steps/filter/rules.py, one threshold at a time."""

from __future__ import annotations

import random
import re
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from tasks.steps.filter.rules import (
    C4,
    PUNCTUATION_SET,
    FilterOptions,
    FineWeb,
    GopherQuality,
    GopherRepetition,
    evaluate,
    rule_names,
)

DEFAULTS = FilterOptions(language=None)
# fineweb's 1 % duplicate-character rule is stricter than every Gopher repetition
# threshold, so a document just inside one of those necessarily fails it.
NO_FINEWEB = FilterOptions(language=None, fineweb=None)

_CONSONANTS = "bcdfgjklmnprstvz"  # no h, w, y: no generated word is a stop word
_VOWELS = "aeiou"
_counter = iter(range(10**9))


def word(length: int = 6, index: int | None = None) -> str:
    """A fresh word of letters (never the same twice in a test run), or the ``index``-th."""
    i, letters = next(_counter) if index is None else index, []
    for position in range(length):
        alphabet = _CONSONANTS if position % 2 == 0 else _VOWELS
        i, digit = divmod(i, len(alphabet))
        letters.append(alphabet[digit])
    return "".join(letters)


def words(n: int, length: int = 6) -> list[str]:
    return [word(length) for _ in range(n)]


def sentence(n: int = 12, length: int = 6) -> str:
    return " ".join(words(n, length)) + "."


def base(lines: int = 6, per_line: int = 12, first: int | None = None) -> list[str]:
    """Lines of a document every rule keeps; the first holds the two stop words. With
    ``first``, its words are the ``first``-th on, whatever the test run made before."""
    if first is None:
        out = [sentence(per_line) for _ in range(lines)]
    else:
        at = iter(range(first, first + lines * per_line))
        out = [" ".join(word(index=next(at)) for _ in range(per_line)) + "." for _ in range(lines)]
    out[0] = "the of " + out[0]
    return out


def verdict(text: str, options: FilterOptions = DEFAULTS) -> tuple[str | None, dict[str, bool]]:
    v = evaluate(pa.array([text]), options)
    return v.reason[0].as_py(), {name: bool(mask[0]) for name, mask in v.fired.items()}


def check(rule: str, inside: str, outside: str, options: FilterOptions = DEFAULTS, kept=True):
    """``inside`` does not fail ``rule`` (nor any rule before it; with ``kept``, no rule at
    all); ``outside`` is rejected with exactly ``rule``."""
    reason, fired = verdict(inside, options)
    names = rule_names(options)
    earlier = names[: names.index(rule) + 1]
    assert [name for name in earlier if fired[name]] == []
    if kept:
        assert reason is None, reason
    reason, fired = verdict(outside, options)
    assert reason == rule
    assert fired[rule]


def test_the_base_document_is_kept():
    reason, fired = verdict("\n".join(base()))
    assert reason is None
    assert not any(fired.values())


# --- gopher_quality --------------------------------------------------------------------


def test_word_count_min():
    inside = "the of " + "\n".join(sentence(8) for _ in range(6))  # 50 words
    outside = "the of " + "\n".join(sentence(8) for _ in range(5)) + "\n" + sentence(7)
    check("gopher_quality.word_count", inside, outside)


def test_word_count_max():
    options = FilterOptions(language=None, gopher_quality=GopherQuality(max_doc_words=74))
    lines = base()  # 74 words
    check("gopher_quality.word_count", "\n".join(lines), "\n".join([*lines, "one"]), options)


def _by_lengths(lengths: list[int]) -> str:
    ws = ["the", "and"] + [word(n) for n in lengths]
    return "\n".join(" ".join(ws[i : i + 10]) + "." for i in range(0, len(ws), 10))


def test_mean_word_length_min():
    inside = _by_lengths([3] * 60)  # mean exactly 3
    outside = _by_lengths([3] * 59 + [2])
    check("gopher_quality.mean_word_length", inside, outside)


def test_mean_word_length_max():
    inside = _by_lengths([10] * 44 + [11] * 14)  # 594 + 6 characters over 60 words
    outside = _by_lengths([10] * 43 + [11] * 15)
    check("gopher_quality.mean_word_length", inside, outside)


def _with_tokens(token: str, count: int, n_words: int = 76) -> str:
    """``n_words`` words in 5 lines (+5 periods) with ``count`` extra tokens mid-line."""
    ws = ["the", "of", *words(n_words - 2)]
    lines = [ws[i::5] for i in range(5)]
    for i in range(count):
        lines[i % 5].insert(2 + 2 * (i // 5), token)
    return "\n".join(" ".join(line) + "." for line in lines)


def test_hash_ratio():
    # 76 words + 5 periods + 9 hashes = 90 tokens.
    inside = _with_tokens("#", 9, n_words=76)  # 9 / 90 = 0.1
    outside = _with_tokens("#", 10, n_words=76)
    check("gopher_quality.hash_ratio", inside, outside)


@pytest.mark.parametrize("mark", ["...", "…"])
def test_ellipsis_ratio(mark):
    inside = _with_tokens(mark, 9, n_words=76)
    outside = _with_tokens(mark, 10, n_words=76)
    check("gopher_quality.ellipsis_ratio", inside, outside)


def test_bullet_lines():
    def doc(bullets: int) -> str:
        lines = [sentence(9) for _ in range(10)]
        lines[-1] = "the of " + lines[-1]
        return "\n".join(("  - " if i < bullets else "") + line for i, line in enumerate(lines))

    check("gopher_quality.bullet_lines", doc(9), doc(10))
    assert verdict(doc(10).replace("-", "•"))[0] == "gopher_quality.bullet_lines"


def test_ellipsis_lines():
    def doc(ellipses: int) -> str:
        lines = base(10, 9)
        return "\n".join(
            line[:-1] + "... " if i < ellipses else line for i, line in enumerate(lines)
        )

    check("gopher_quality.ellipsis_lines", doc(3), doc(4))


def test_alpha_words():
    def doc(numbers: int) -> str:
        lines = base()  # 74 words + 6 periods = 80 tokens, 74 with a letter
        for i in range(numbers):
            lines[i % 6] = f"{10000 + next(_counter) % 80000} " + lines[i % 6]
        return "\n".join(lines)

    inside = doc(12)  # 74 / 92 = 0.804
    outside = doc(13)  # 74 / 93 = 0.796
    check("gopher_quality.alpha_words", inside, outside)


def test_stop_words():
    lines = base()
    outside = "\n".join([lines[0].replace("the of ", "the "), *lines[1:]])
    check("gopher_quality.stop_words", "\n".join(lines), outside)
    # Case matters, as in datatrove: "The" is not "the".
    assert verdict("\n".join(lines).replace("the of", "The of"))[0] == "gopher_quality.stop_words"


# --- gopher_repetition -----------------------------------------------------------------


def _paragraphs(unique: int, repeats: int, short: str = "Hi.") -> str:
    paras = ["\n".join(base(2, 12)) for _ in range(unique)] + [short] * repeats
    return "\n\n".join(paras)


def test_dup_para_frac():
    inside = _paragraphs(6, 4)  # 3 repeats of 10 paragraphs
    outside = _paragraphs(8, 5)  # 4 of 13
    check("gopher_repetition.dup_para_frac", inside, outside, NO_FINEWEB)


def _char_doc(repeated: str, unique: int, separator: str) -> str:
    parts = [" ".join(base(1, 12)) for _ in range(unique)]
    return separator.join([repeated, *parts, repeated])


def _just_around(limit: float, build) -> tuple[str, str]:
    """The docs ``build(k)`` for the largest k with ratio <= limit and the next one."""
    previous = None
    for k in range(1, 400):
        doc, ratio = build(k)
        if ratio > limit:
            assert previous is not None
            return previous, doc
        previous = doc
    raise AssertionError("no crossing")


def test_dup_para_char_frac():
    unique = "\n\n".join("\n".join(base(2, 12)) for _ in range(4))

    def build(k: int) -> tuple[str, float]:
        repeated = sentence(k)
        doc = "\n\n".join([repeated, unique, repeated])
        return doc, len(repeated) / len(doc)

    inside, outside = _just_around(0.2, build)
    check("gopher_repetition.dup_para_char_frac", inside, outside, NO_FINEWEB, kept=False)


def test_dup_line_frac():
    def doc(unique: int, repeats: int) -> str:
        return "\n".join(base(unique, 12) + ["Hi."] * repeats)

    # Lines only: the repeats sit in one paragraph, so paragraphs do not repeat.
    check("gopher_repetition.dup_line_frac", doc(6, 4), doc(8, 5), NO_FINEWEB)


def test_dup_line_char_frac():
    unique = "\n".join(base(8, 12))

    def build(k: int) -> tuple[str, float]:
        repeated = sentence(k)
        doc = "\n".join([repeated, unique, repeated])
        return doc, len(repeated) / len(doc)

    inside, outside = _just_around(0.2, build)
    check("gopher_repetition.dup_line_char_frac", inside, outside, NO_FINEWEB, kept=False)


@pytest.mark.parametrize(("n", "limit"), [(2, 0.20), (3, 0.18), (4, 0.16)])
def test_top_n_gram(n, limit):
    gram = words(n, 4)
    text = " ".join(gram)
    unique = "\n".join(base(6, 12))

    def build(k: int) -> tuple[str, float]:
        # k copies of the n-gram between fresh words, so no longer n-gram repeats.
        doc = unique + "\n" + " ".join(f"{text} {word()}" for _ in range(k)) + "."
        return doc, k * len(text) / len(doc)

    inside, outside = _just_around(limit, build)
    check(f"gopher_repetition.top_{n}_gram", inside, outside, NO_FINEWEB, kept=False)


@pytest.mark.parametrize("n", range(5, 11))
def test_dup_n_gram(n):
    limit = 0.15 - (n - 5) * 0.01
    unique = "\n".join(base(8, 12))

    def build(k: int) -> tuple[str, float]:
        # Distinct n-grams, each twice; no shorter n-gram repeats more than twice.
        grams = [" ".join(words(n, 5)) for _ in range(k)]
        doc = unique + "\n" + " ".join(grams) + "\n" + " ".join(grams) + "."
        return doc, sum(len(g.replace(" ", "")) for g in grams) / len(doc)

    # The greedy scan counts repeats from the second copy: exactly the chars of `grams`
    # (the final period is its own word, outside the n-grams).
    inside, outside = _just_around(limit, build)
    options = FilterOptions(
        language=None,
        fineweb=None,
        gopher_repetition=GopherRepetition(
            **{f"max_top_{m}_gram_frac": None for m in (2, 3, 4)},
            **{f"max_dup_{m}_gram_frac": None for m in range(5, n)},
        ),
    )
    check(f"gopher_repetition.dup_{n}_gram", inside, outside, options, kept=False)


def test_dup_n_gram_greedy_skip():
    """A repeat skips n words that are then never remembered (datatrove's scan)."""
    a = words(6, 5)
    # a0..a5 then a0..a5: the 5-gram at position 6 repeats, skip to 11.
    doc_words = a + a
    v = evaluate(pa.array([" ".join(doc_words)]), FilterOptions(language=None, gopher_quality=None))
    chars = sum(map(len, a[:5]))  # one 5-gram repeat; the next starts at a[5] alone
    text_len = len(" ".join(doc_words))
    expected = chars / text_len > 0.15
    assert bool(v.fired["gopher_repetition.dup_5_gram"][0]) == expected


# --- c4 --------------------------------------------------------------------------------


def test_lorem_ipsum():
    lines = base()
    outside = "\n".join([*lines[:-1], "Lorem ipsum dolor sit amet."])
    check("c4.lorem_ipsum", "\n".join(lines), outside)
    # A line C4 would drop anyway (no terminal punctuation) does not count.
    assert verdict("\n".join([*lines, "lorem ipsum dolor sit amet"]))[0] is None


def test_curly_bracket():
    lines = base()
    check("c4.curly_bracket", "\n".join(lines), "\n".join([*lines, "var x = {a: b} is set."]))
    # Javascript lines are dropped before the bracket check.
    assert verdict("\n".join([*lines, "some javascript {a} here."]))[0] is None


def test_too_few_sentences():
    long = base(3, 25)
    inside = "\n".join([*long[:2], "Short one. Another one here. Third one."])
    outside = "\n".join([*long[:2], "Short one. Another one here, third one."])
    check("c4.too_few_sentences", inside, outside)
    # Lines without terminal punctuation, short lines and policy lines do not count.
    dropped = "\n".join(
        [*long[:2], "x y.", "no end mark here", "we use cookies on this site.", "a b c."]
    )
    assert verdict(dropped)[0] == "c4.too_few_sentences"


# --- fineweb ---------------------------------------------------------------------------


def test_fineweb_empty():
    options = FilterOptions(language=None, gopher_quality=None, gopher_repetition=None, c4=None)
    check("fineweb.empty", "x", " \n\t\n ", options, kept=False)


def test_line_punct_ratio():
    def doc(ended: int) -> str:
        lines = [sentence(7)[:-1] for _ in range(25)]
        lines[0] = "the of " + lines[0]
        return "\n".join(line + "." if i < ended else line for i, line in enumerate(lines))

    # 3 / 25 = 0.12 is kept; 2 / 25 = 0.08 is not (C4 needs 5 sentences: C4 off).
    check("fineweb.line_punct_ratio", doc(3), doc(2), FilterOptions(language=None, c4=None))


def test_short_line_ratio():
    def doc(short: int) -> str:
        lines = base(6, 12) + [f"{word(4)} {word(4)}." for _ in range(short)]
        return "\n".join(lines)

    # 12 / 18 = 0.667 <= 0.67 is kept, 13 / 19 = 0.684 is not.
    check("fineweb.short_line_ratio", doc(12), doc(13))


def test_char_dup_ratio():
    unique = "\n".join(base(10, 12))

    def build(k: int) -> tuple[str, float]:
        repeated = "x" * k + "."
        doc = "\n".join([repeated, unique, repeated])
        return doc, len(repeated) / len(doc.replace("\n", ""))

    inside, outside = _just_around(0.01, build)
    check("fineweb.char_dup_ratio", inside, outside)


def test_list_ratio():
    def doc(extra: int) -> str:
        lines = [f"{word()}." for _ in range(10)]  # 20 words (periods count), 9 newlines
        lines[0] = " ".join(words(extra)) + " " + lines[0]
        return "\n".join(lines)

    # 9 / 30 = 0.3 is kept, 9 / 29 is not. Only fineweb, without its short-line rule:
    # short one-sentence lines are what this document is made of.
    options = FilterOptions(
        language=None,
        gopher_quality=None,
        gopher_repetition=None,
        c4=None,
        fineweb=FineWeb(short_line_thr=None),
    )
    check("fineweb.list_ratio", doc(10), doc(9), options, kept=False)


# --- options and batches ---------------------------------------------------------------


def test_fired_is_independent_of_order_and_of_other_rules():
    texts = ["\n".join(base()), "", "Hi.\n\nHi.\n\nHi.", "#" * 10 + " word " * 60]
    full = evaluate(pa.array(texts), DEFAULTS)
    alone = evaluate(
        pa.array(texts),
        FilterOptions(language=None, gopher_quality=None, gopher_repetition=None, c4=None),
    )
    reversed_ = evaluate(pa.array(texts[::-1]), DEFAULTS)
    for name, mask in alone.fired.items():
        np.testing.assert_array_equal(mask, full.fired[name])
    for name, mask in full.fired.items():
        np.testing.assert_array_equal(mask, reversed_.fired[name][::-1])


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (GopherQuality, "max_symbol_word_ratio", 1.5),
        (GopherQuality, "min_doc_words", -1),
        (GopherRepetition, "max_top_2_gram_frac", 1.5),
        (C4, "min_num_sentences", -1),
        (FineWeb, "short_line_length", -3),
        (FineWeb, "line_punct_thr", -0.1),
    ],
)
def test_bad_thresholds_are_refused_naming_the_field(model, field, value):
    with pytest.raises(ValidationError) as error:
        model(**{field: value})
    assert field in str(error.value)


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError):
        GopherQuality(min_words=3)


def test_filter_options_from_dicts():
    options = FilterOptions.model_validate({"language": None, "c4": None, "fineweb": {}})
    assert options.c4 is None
    assert options.fineweb == FineWeb()
    assert options.gopher_quality == GopherQuality()
    names = rule_names(options)
    assert not any(name.startswith("c4.") for name in names)
    assert "fineweb.list_ratio" in names


def test_nulls_and_empty_strings():
    good = "\n".join(base())
    texts = pa.array([good, None, "", good, None], pa.string())
    v = evaluate(texts, DEFAULTS)
    assert v.reason.to_pylist() == [
        None,
        "gopher_quality.word_count",
        "gopher_quality.word_count",
        None,
        "gopher_quality.word_count",
    ]
    assert v.keep.tolist() == [True, False, False, True, False]
    off = FilterOptions(
        language=None, gopher_quality=None, gopher_repetition=None, c4=None, fineweb=None
    )
    assert evaluate(texts, off).reason.null_count == 5
    chunked = evaluate(pa.chunked_array([texts[:2], texts[2:]]), DEFAULTS)
    assert chunked.reason.to_pylist() == v.reason.to_pylist()
    assert evaluate(pa.array([], pa.large_string()), DEFAULTS).reason.to_pylist() == []


# --- reference check: plain Python re-implementations agree ----------------------------

_VOCAB = ["the", "of", "and", "cat", "dog", "sat", "on", "a", "mat", "ran", "big", "fox"]
_VOCAB += ["jumps", "...", "#", "-", "•"]


def _tokens(text: str) -> list[str]:
    # The vocabulary is ASCII, so Python's \w equals the module's word characters.
    return re.findall(r"\.\.+|\w+(?:['’.]\w+|,\d+)*|\S", text)


def _mean_word_length_fails(text: str) -> bool:
    non_symbol = [w for w in _tokens(text) if any(c not in PUNCTUATION_SET for c in w)]
    if not non_symbol:
        return False
    mean = sum(map(len, non_symbol)) / len(non_symbol)
    return mean < 3 or mean > 10


def _ellipsis_lines_fail(text: str) -> bool:
    lines = text.splitlines()
    if not lines:
        return False
    ending = sum(line.rstrip().endswith(("...", "…")) for line in lines)
    return ending / len(lines) > 0.3


def _top_2_gram_fails(text: str) -> bool:
    tokens = _tokens(text)
    grams = [" ".join(tokens[i : i + 2]) for i in range(len(tokens) - 1)]
    if not grams:
        return False
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count / len(text) > 0.2


def test_agrees_with_plain_python_on_random_documents():
    rng = random.Random(7)
    docs = []
    for _ in range(300):
        n = rng.randint(0, 60)
        parts = [
            rng.choice(_VOCAB) + rng.choice(["", "", " ", "\n", "...", "  "]) for _ in range(n)
        ]
        docs.append(" ".join(parts))
    v = evaluate(pa.array(docs), DEFAULTS)
    for name, reference in [
        ("gopher_quality.mean_word_length", _mean_word_length_fails),
        ("gopher_quality.ellipsis_lines", _ellipsis_lines_fail),
        ("gopher_repetition.top_2_gram", _top_2_gram_fails),
    ]:
        expected = [reference(doc) for doc in docs]
        assert v.fired[name].tolist() == expected, name


def _dup_n_gram_chars(text: str, n: int) -> int:
    """datatrove's greedy scan, on word tuples (see the module's differences)."""
    tokens = _tokens(text)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    seen, total, i = set(), 0, 0
    while i < len(grams):
        if grams[i] in seen:
            total += len("".join(grams[i]))
            i += n
        else:
            seen.add(grams[i])
            i += 1
    return total


def _top_n_gram_chars(text: str, n: int) -> int:
    tokens = _tokens(text)
    grams = [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_repetition_agrees_with_plain_python_on_repetitive_documents(seed):
    """Documents made of a few phrases repeated with variations, so the repeated n-gram
    rules sit near their thresholds: every n from 2 to 10 against plain Python."""
    rng = random.Random(seed)
    docs = []
    for _ in range(200):
        phrases = [[rng.choice(_VOCAB[:12]) for _ in range(rng.randint(3, 9))] for _ in range(4)]
        words: list[str] = []
        for _ in range(rng.randint(2, 30)):
            words += rng.choice(phrases) if rng.random() < 0.6 else [rng.choice(_VOCAB)]
        docs.append(" ".join(words))
    options = FilterOptions(language=None, c4=None, fineweb=None, gopher_quality=None)
    v = evaluate(pa.array(docs), options)
    defaults = GopherRepetition()
    fired_somewhere = 0
    for n in range(2, 11):
        kind = "top" if n <= 4 else "dup"
        limit = getattr(defaults, f"max_{kind}_{n}_gram_frac")
        measure = _top_n_gram_chars if n <= 4 else _dup_n_gram_chars
        expected = [measure(doc, n) / len(doc) > limit if doc else False for doc in docs]
        assert v.fired[f"gopher_repetition.{kind}_{n}_gram"].tolist() == expected, n
        fired_somewhere += 0 < sum(expected) < len(docs)
    assert fired_somewhere == 9  # every rule both fires and does not on this set


def test_long_documents_are_judged_in_pieces_with_the_same_verdicts(monkeypatch):
    """A batch over MAX_JUDGED_BYTES is judged in slices (memory stays bounded on
    100,000-character documents) and gives the verdicts of one whole pass."""
    import tasks.steps.filter.rules as rules

    rng = random.Random(5)
    docs = [" ".join(rng.choice(_VOCAB) for _ in range(rng.randint(0, 400))) for _ in range(60)]
    whole = evaluate(pa.array(docs), DEFAULTS)
    monkeypatch.setattr(rules, "MAX_JUDGED_BYTES", 3000)
    pieces = evaluate(pa.array(docs), DEFAULTS)
    assert pieces.reason.to_pylist() == whole.reason.to_pylist()
    assert all((pieces.fired[k] == whole.fired[k]).all() for k in whole.fired)
    assert len(pieces.language) == len(docs)
