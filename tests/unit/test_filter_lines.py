"""The compiled lines and paragraphs (tasks/steps/filter/lines.py) against Python's own
``str.splitlines``, ``str.strip``, ``str.split`` and ``re.split``, which datatrove's rules
call."""

from __future__ import annotations

import random
import re

import pyarrow as pa
import pytest

from tasks.steps.filter import lines

_PIECES = [
    "a", "B", "word", "é", "e\u0301", "한국어는띄어쓰기없이", "中文", "🙂", "👍🏽", "1", " ", "  ",
    "\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028",
    "\u2029", "\u00a0", "\u3000", "•", "-", "- ", "...", "…", ". ", "x y z", "[1]", "{", "#",
]  # fmt: skip


def _texts(seed: int, n: int = 20_000) -> list[str]:
    rng = random.Random(seed)
    texts = ["".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 14))) for _ in range(n)]
    long = "\n".join(
        rng.choice(["same line", "other line", "한국어 줄", "🙂 …", ""]) for _ in range(40_000)
    )
    return [*texts, "", "\n", "a\n", "a\nb", "\n\n", " \n ", long, "x" * 200_000 + "\n" + "y"]


@pytest.mark.parametrize("seed", range(2))
def test_lines_are_pythons_splitlines_with_what_the_rules_ask_of_them(seed):
    texts = _texts(seed)
    found = lines.lines(pa.array(texts, pa.string()))
    expected = [(row, line) for row, text in enumerate(texts) for line in text.splitlines()]
    assert found.row.tolist() == [row for row, _ in expected]
    assert found.count.tolist() == [len(text.splitlines()) for text in texts]
    plain = [line for _, line in expected]
    assert found.strings().to_pylist() == plain
    assert found.strings(stripped=True).to_pylist() == [line.strip() for line in plain]
    assert found.chunks.tolist() == [len(line.split()) for line in plain]
    assert found.longest.tolist() == [max(map(len, line.split()), default=0) for line in plain]
    assert found.bullet.tolist() == [line.lstrip().startswith(("•", "-")) for line in plain]
    assert found.ellipsis.tolist() == [line.rstrip().endswith(("...", "…")) for line in plain]


@pytest.mark.parametrize(("breaks", "strip"), [(1, False), (2, True), (2, False), (3, True)])
def test_repeated_pieces_are_re_split_and_an_earlier_equal_piece(breaks, strip):
    texts = _texts(7, 5_000)
    count, repeats, chars = lines.repeated(pa.array(texts, pa.string()), breaks, strip)
    for row, text in enumerate(texts):
        pieces = re.split(rf"\n{{{breaks},}}", text.strip() if strip else text)
        seen: set[str] = set()
        want_repeats = want_chars = 0
        for piece in pieces:
            if piece in seen:
                want_repeats += 1
                want_chars += len(piece)
            seen.add(piece)
        assert (count[row], repeats[row], chars[row]) == (len(pieces), want_repeats, want_chars)


def test_lines_read_slices_and_large_strings():
    texts = pa.array(["skip\nme", "a\r\nb\n\nb", "  • x …  "], pa.large_string()).slice(1)
    found = lines.lines(texts)
    assert found.strings().to_pylist() == ["a", "b", "", "b", "  • x …  "]
    assert found.row.tolist() == [0, 0, 0, 0, 1]
    assert found.bullet.tolist() == [False, False, False, False, True]
    assert found.ellipsis.tolist() == [False, False, False, False, True]
    # "a\r", "b", "b" and "  • x …  ": the second "b" repeats the first
    assert [list(x) for x in lines.repeated(texts, 1, False)] == [[3, 1], [1, 0], [1, 0]]


def test_marks_are_arrows_substring_counts():
    import pyarrow.compute as pc

    texts = pa.array([*_texts(3, 5_000), "....", ".....", "......", "…...", "##"], pa.string())
    found = lines.marks(texts)
    for name, pattern in (("hashes", "#"), ("dots", "..."), ("ellipses", "…"), ("breaks", "\n")):
        assert getattr(found, name).tolist() == pc.count_substring(texts, pattern).to_pylist()
    assert lines.holds(texts, 0x0D)
    assert not lines.holds(pa.array(["a\nb", "\r"]).slice(0, 1), 0x0D)


@pytest.mark.parametrize("seed", range(2))
def test_c4_marks_are_pythons_answers(seed):
    """What C4 asks of a stripped line, against Python's str (datatrove lower-cases with
    str.lower(): the Kelvin sign is a k there, and İ an i with a dot above)."""
    from tasks.steps.filter.charsets import C4_POLICY_PHRASES

    phrases = [
        "Lorem Ipsum", "LOREM IPSUM", "lorem  ipsum", "JavaScript", "javascrip", "Terms of Use",
        "privacy policy", "Cookie Policy", "uses cookies", "use of cookies", "use cookies",
        "coo\u212aie policy", "Lorem \u0130psum", "javascr\u0130pt", "[1]", "{", "}", ".", "?",
        "!", '"', "'", "...", "…", "é", "한국", "🙂", " ", "x", "u", "c", "l", "\u212a",
    ]  # fmt: skip
    rng = random.Random(seed)
    texts = ["".join(rng.choice(phrases) for _ in range(rng.randint(0, 8))) for _ in range(20_000)]
    found = lines.lines(pa.array(texts, pa.string()))
    marks = lines.c4_marks(found.data, found.stripped)
    stripped = found.strings(stripped=True).to_pylist()
    assert stripped == [line.strip() for text in texts for line in text.splitlines()]
    expected = {
        lines.CITED: ["[" in line for line in stripped],
        lines.END_PUNCT: [line.endswith((".", "?", "!", '"', "'")) for line in stripped],
        lines.END_DOTS: [line.endswith("...") for line in stripped],
        lines.CURLY: ["{" in line for line in stripped],
        lines.LOREM: ["lorem ipsum" in line.lower() for line in stripped],
        lines.JAVASCRIPT: ["javascript" in line.lower() for line in stripped],
        lines.POLICY: [any(p in line.lower() for p in C4_POLICY_PHRASES) for line in stripped],
    }
    for bit, want in expected.items():
        assert ((marks & bit) != 0).tolist() == want, bit
    assert any(expected[lines.POLICY]) and not all(expected[lines.POLICY])
    assert (lines.c4_marks_of(pa.array(stripped, pa.string())) == marks).all()
    # The only characters str.lower() makes (start with) an ASCII letter: the kernel's
    # folding stands on it.
    becomes_ascii = {cp for cp in range(0x80, 0x110000) if chr(cp).lower()[:1].isascii()}
    assert becomes_ascii == {0x130, 0x212A}


def test_chunk_counts_are_pythons_split():
    texts = _texts(5, 10_000)
    assert lines.chunk_counts(pa.array(texts, pa.string())).tolist() == [
        len(text.split()) for text in texts
    ]


@pytest.mark.parametrize("seed", range(2))
def test_sentences_are_the_break_pattern_after_dot_runs(seed):
    """The compiled count against what C4's sentences were: RE2 (Arrow) replacing runs of
    2+ dots by one "…", then counting SENTENCE_BREAK_PATTERN, plus 1 for a line with a
    character outside RE2's \\s. The pieces hold terminals of other scripts, punctuation
    that is no terminal, RE2's blanks and the ones it does not count (\\v, NBSP)."""
    import pyarrow.compute as pc

    from tasks.steps.filter.charsets import SENTENCE_BREAK_PATTERN

    pieces = [
        "a", "Word", "1", "한", "é", " ", "  ", "\t", "\n", "\r", "\x0b", "\x0c", "\u00a0",
        ".", "..", "...", "?", "!", "。", "।", "؟", "…", ",", '"', "'", ")", "(", "-", "«",
        "»", "¿", "#", "$", "+", "🙂", "\u0301",
    ]  # fmt: skip
    rng = random.Random(seed)
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) for _ in range(20_000)]
    texts += ["", " ", "A. B", "A.. B", "A .B", "A! . B", "A. . .", "A.\u00a0B", "A.\x0bB"]
    array = pa.array(texts, pa.string())
    dotted = pc.replace_substring_regex(array, pattern=r"\.\.+", replacement="…")
    breaks = pc.count_substring_regex(dotted, SENTENCE_BREAK_PATTERN).to_pylist()
    nonblank = pc.match_substring_regex(array, r"[^\s]").to_pylist()
    want = [1 + b if n else 0 for b, n in zip(breaks, nonblank, strict=True)]
    assert lines.sentences(array).tolist() == want
    assert sum(b > 0 for b in breaks) > 1_000 and max(breaks) >= 2  # the pieces make breaks
