"""Real text rows of about 1,000 characters, from text that ships inside installed packages.

Half the rows are Korean, from konlpy's corpora: the Constitution of Korea (``kolaw``) and
ten bills of the National Assembly (``kobill``). The other half spread evenly over Faker's
locales that have a lorem word list of their own: real words of each language (English,
Japanese, Chinese, Russian, Arabic, Thai...) in random order, Faker's idea of a sentence.

The texts are cut into sentences (pieces of at most ``MAX_UNIT_CHARS``), each remembering
what followed it: a space, nothing (Japanese, Chinese, Thai) or a paragraph break. A row
takes one source and packs runs of consecutive sentences from random places in it, each
run a paragraph, up to ``ROW_CHARS`` characters; a sentence that does not fit is cut at a
space when the row would otherwise stay under ``MIN_ROW_CHARS``. Once cleaned, konlpy's
corpora hold some 35,000 characters (about 760 sentences): rows recombine them, so the
same runs recur across rows. Measured on 20,000 Korean rows of seed 0, the nearest other
row has a word-5-gram Jaccard similarity of 0.30 (median), 0.59 at most: below the 0.8
of the dedup step.

Rows come in chunks of ``CHUNK_ROWS`` whose random stream depends only on ``(seed,
chunk)``: the same seed gives the same rows in any process (for the same Faker version,
whose output the Faker rows are).
"""

from __future__ import annotations

import bisect
import functools
import importlib.util
import itertools
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from faker import Faker

ROW_CHARS = 1000  # the seed's rows are ~1 KB of text
MIN_ROW_CHARS = 900  # below this a row takes a cut sentence rather than stop short
MAX_RUN = 6  # consecutive sentences per run: a paragraph's worth, then a jump elsewhere
# A run stops before this many characters, so a row holds at least four: fewer runs from
# konlpy's few hundred sentences would make the same row twice now and then.
RUN_CHARS = 250
MAX_UNIT_CHARS = RUN_CHARS  # longer sentences are split at spaces to fit a run
KOREAN_SHARE = 0.5
FAKER_SENTENCES = 2000  # per locale: recombined, more would add nothing but start-up time
CHUNK_ROWS = 4096
KOREAN, OTHER = 0, 1
SCHEMA = pa.schema([("id", pa.int64()), ("text", pa.string()), ("label", pa.int64())])
# Row groups of about this many bytes, as tasks/store/part_files.py writes them.
ROW_GROUP_BYTES = 64 * 1024 * 1024

# Faker locales tried, in a fixed order; those whose lorem provider falls back to Latin
# (ko_KR, hi_IN, pt_BR... today) are dropped by _faker_source. Left out: he_IL, whose list
# is Lorem ipsum spelt in Hebrew letters, and copies (de_AT, es_MX, nl_BE...) of a list here.
FAKER_LOCALES = (
    "en_US", "ja_JP", "zh_CN", "zh_TW", "ko_KR", "de_DE", "fr_FR", "es_ES", "it_IT",
    "nl_NL", "da_DK", "pl_PL", "cs_CZ", "ru_RU", "uk_UA", "el_GR", "ar_AA", "fa_IR",
    "hi_IN", "bn_BD", "th_TH", "vi_VN", "pt_BR", "tr_TR", "id_ID",
)  # fmt: skip

# A bill's old/new comparison table interleaves two columns line by line (unreadable
# once flattened); the cost estimate that may follow it is prose again.
_TABLE_START = "구조문대비표"
_TABLE_END = "비용추계"
_PAGE_NUMBER = re.compile(r"-\s*\d+\s*-")
_DASHES = re.compile(r"-{3,}")  # the comparison table's "unchanged" marks
_LETTER = re.compile(r"[^\W\d_]")
# An item at the start of a line ("1. ", "①"); the items "가. " are indented, and "다. "
# unindented is the end of a sentence wrapped before its last syllable.
_ENUMERATOR = re.compile(r"\s*(?:\d{1,2}\.\s|[①-⑳])")
_SPACES = re.compile(r"[ \t]+")
# A Korean sentence ends with a syllable (or a closing parenthesis) and a full stop; two
# characters before the stop keep enumerators such as "다." (the fourth item) whole.
_SENTENCE_END = re.compile(r"(?<=[가-힣)][가-힣)][.?!])\s+")
_SHORT_LINE = 20  # a bill line this short ends its paragraph: a title, a name, a heading


@dataclass(frozen=True)
class Source:
    """One text cut into sentences; ``seps[i]`` is what followed ``units[i]`` in it."""

    name: str
    label: int
    units: tuple[str, ...]
    seps: tuple[str, ...]


def _corpus_dir() -> Path:
    # find_spec, not import: importing konlpy loads JPype, for taggers we do not use.
    spec = importlib.util.find_spec("konlpy")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("konlpy is not installed (uv sync --group dev)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "corpus"


def _split_long(sentence: str) -> list[str]:
    """``sentence`` in pieces of at most ``MAX_UNIT_CHARS``, cut at spaces if it has any."""
    pieces: list[str] = []
    while len(sentence) > MAX_UNIT_CHARS:
        cut = sentence.rfind(" ", 1, MAX_UNIT_CHARS + 1)
        cut = cut if cut > 0 else MAX_UNIT_CHARS
        pieces.append(sentence[:cut])
        sentence = sentence[cut:].lstrip()
    if sentence:
        pieces.append(sentence)
    return pieces


def _units(paragraphs: Iterable[str], connector: str = " ") -> tuple[list[str], list[str]]:
    """Sentences of Korean paragraphs and what follows each: ``connector`` inside a
    paragraph, a line break at its end."""
    units: list[str] = []
    seps: list[str] = []
    for paragraph in paragraphs:
        pieces = [p for s in _SENTENCE_END.split(paragraph) for p in _split_long(s.strip())]
        units.extend(pieces)
        seps.extend([connector] * (len(pieces) - 1) + ["\n"] * bool(pieces))
    return units, seps


def constitution_paragraphs(text: str) -> list[str]:
    """The Constitution's lines: each is a heading or a whole article paragraph."""
    return [_SPACES.sub(" ", line.strip()) for line in text.splitlines() if line.strip()]


def _bill_lines(text: str) -> list[str]:
    """A bill's lines without its comparison table, page numbers and letterless lines
    (table cells, dividers), with their spaces kept: they tell how a line was wrapped."""
    kept: list[str] = []
    in_table = False
    for line in text.splitlines():  # splitlines also splits at the page feeds
        if _TABLE_START in line:
            in_table = True
        elif in_table and _TABLE_END in line:
            in_table = False
        if in_table or not line.strip() or _PAGE_NUMBER.fullmatch(line.strip()):
            continue
        if _DASHES.search(line) or not _LETTER.search(line):
            continue
        kept.append(line)
    return kept


def _ends_paragraph(line: str, following: str) -> bool:
    """Whether a wrapped bill line is the last of its paragraph."""
    content = line.strip()
    return (
        len(content) < _SHORT_LINE
        or content.endswith((".", ":", "?", "!"))
        or following.startswith("  ")  # an indented line opens a paragraph or an item
        or _ENUMERATOR.match(following) is not None
    )


def bill_paragraphs(text: str) -> list[str]:
    """A bill's paragraphs, its hard-wrapped lines joined again.

    The bills are wrapped at a fixed width, often inside a word; a line that ends at a
    word ends with a space, so lines are joined with a space only where one was.
    """
    lines = _bill_lines(text)
    paragraphs: list[str] = []
    current = ""
    for line, following in zip(lines, [*lines[1:], ""], strict=True):
        if current and not (current[-1].isspace() or line[:1].isspace()):
            current += line  # wrapped inside a word
        else:
            current = f"{current} {line}" if current else line
        if _ends_paragraph(line, following):
            paragraphs.append(_SPACES.sub(" ", current).strip())
            current = ""
    return [p for p in paragraphs if p]


@functools.cache
def korean_sources() -> tuple[Source, ...]:
    """konlpy's Constitution and its bills (one source for all ten), in file order."""
    corpus = _corpus_dir()
    constitution = (corpus / "kolaw" / "constitution.txt").read_text(encoding="utf-8")
    # Each paragraph once: related bills share a third of their text (the same cost
    # statement), and a run of it met at two places would make the same row twice.
    bills = list(
        dict.fromkeys(
            paragraph
            for path in sorted((corpus / "kobill").glob("*.txt"))
            for paragraph in bill_paragraphs(path.read_text(encoding="utf-8"))
        )
    )
    sources = []
    for name, paragraphs in (("kolaw", constitution_paragraphs(constitution)), ("kobill", bills)):
        units, seps = _units(paragraphs)
        sources.append(Source(name, KOREAN, tuple(units), tuple(seps)))
    return tuple(sources)


def _faker_source(locale: str, seed: int) -> Source | None:
    """``FAKER_SENTENCES`` of Faker's sentences in ``locale``, in paragraphs of three to
    seven; None if the locale has no word list of its own (Faker then writes Latin)."""
    fake = Faker(locale)
    lorem = next(p for p in fake.factories[0].get_providers() if p.__provider__.endswith("lorem"))
    if lorem.__lang__ != locale:
        return None
    fake.seed_instance(seed)
    units: list[str] = []
    seps: list[str] = []
    while len(units) < FAKER_SENTENCES:
        size = fake.random.randint(3, 7)
        units.extend(fake.sentence(nb_words=10).strip() for _ in range(size))
        seps.extend([lorem.word_connector] * (size - 1) + ["\n"])
    label = KOREAN if locale.startswith("ko_") else OTHER
    return Source(locale, label, tuple(units), tuple(seps))


@functools.lru_cache(maxsize=4)
def sources(seed: int) -> tuple[tuple[Source, ...], tuple[float, ...]]:
    """Every source and the cumulative share of rows up to it: ``KOREAN_SHARE`` over
    konlpy's two in proportion to their characters, the rest evenly over Faker's."""
    korean = korean_sources()
    fakers = [s for s in (_faker_source(loc, seed) for loc in FAKER_LOCALES) if s is not None]
    korean_chars = [sum(map(len, s.units)) for s in korean]
    weights = [KOREAN_SHARE * n / sum(korean_chars) for n in korean_chars]
    weights += [(1 - KOREAN_SHARE) / len(fakers)] * len(fakers)
    return (*korean, *fakers), tuple(itertools.accumulate(weights))


def _cut(text: str, room: int) -> str:
    """At most ``room`` characters of ``text``, ending at a space where it has one."""
    if len(text) <= room:
        return text
    space = text.rfind(" ", 0, room + 1)
    return text[:space] if space > 0 else text[:room]


def _row(rng: random.Random, source: Source) -> str:
    """Runs of consecutive sentences (up to ``MAX_RUN`` and ``RUN_CHARS``) from random
    places, until about ``ROW_CHARS``."""
    units, seps, count = source.units, source.seps, len(source.units)
    parts: list[str] = []
    length = 0  # characters in parts, the trailing separator included
    while True:
        # random() rather than randrange(): a third of the time of a row goes to drawing.
        start = int(rng.random() * count)
        stop = min(start + 1 + int(rng.random() * MAX_RUN), count)
        run = 0
        for i in range(start, stop):
            unit = units[i]
            if run and run + len(unit) > RUN_CHARS:
                break
            if length + len(unit) > ROW_CHARS:
                # Short of the minimum: the part of the sentence that fits, after the
                # separator that preceded it; else the row ends without that separator.
                piece = _cut(unit, ROW_CHARS - length) if length < MIN_ROW_CHARS else ""
                if piece:
                    parts.append(piece)
                else:
                    parts.pop()
                return "".join(parts)
            parts.extend((unit, seps[i]))
            length += len(unit) + len(seps[i])
            run += len(unit) + len(seps[i])
        # A jump elsewhere starts a new paragraph.
        length += 1 - len(parts[-1])
        parts[-1] = "\n"


def chunk(seed: int, index: int) -> tuple[list[str], list[int]]:
    """The texts and labels of rows ``index * CHUNK_ROWS`` onwards."""
    found, cumulative = sources(seed)
    # A str seed goes through SHA-512: the same stream in every process, unlike hash().
    rng = random.Random(f"real_text/{seed}/{index}")
    texts: list[str] = []
    labels: list[int] = []
    for _ in range(CHUNK_ROWS):
        pick = bisect.bisect(cumulative, rng.random() * cumulative[-1])
        source = found[min(pick, len(found) - 1)]
        texts.append(_row(rng, source))
        labels.append(source.label)
    return texts, labels


def rows(count: int, seed: int = 0) -> list[str]:
    """The first ``count`` texts of ``seed``: the same list in every call and process.

    Rows hold about 900 to 1,000 characters (970 on average; 2.0 KB of UTF-8, a Korean row 2.3
    KB). Exact repeats are rare: none in the first 5,000,000 rows of seed 0 (measured).
    """
    texts: list[str] = []
    for index in itertools.count():
        if len(texts) >= count:
            break
        texts.extend(chunk(seed, index)[0])
    return texts[:count]


def _tables(seed: int, size_bytes: int) -> Iterator[pa.Table]:
    """The rows of ``seed`` as tables of a chunk each, until ``size_bytes`` of text."""
    written = 0
    for index in itertools.count():
        if written >= size_bytes:
            return
        texts, labels = chunk(seed, index)
        text = pa.array(texts, pa.string())
        cumulative = written + np.cumsum(pc.binary_length(text).to_numpy())
        # Rows up to and including the one that reaches the total.
        keep = min(len(texts), int(np.searchsorted(cumulative, size_bytes)) + 1)
        first = index * CHUNK_ROWS
        ids = pa.array(np.arange(first, first + keep, dtype=np.int64))
        yield pa.Table.from_arrays(
            [ids, text.slice(0, keep), pa.array(labels[:keep], pa.int64())], schema=SCHEMA
        )
        written = int(cumulative[keep - 1])


def _pieces(tables: Iterable[pa.Table], rows_per_file: int) -> Iterator[tuple[int, pa.Table]]:
    """(file number, rows) of consecutive tables, split where a file is full."""
    row = 0
    for table in tables:
        start = 0
        while start < table.num_rows:
            index, offset = divmod(row, rows_per_file)
            take = min(table.num_rows - start, rows_per_file - offset)
            yield index, table.slice(start, take)
            start, row = start + take, row + take


def write_parquet(root: Path, size_bytes: int, rows_per_file: int = 100_000, seed: int = 0) -> int:
    """Write the rows of ``seed`` (``id``, ``text``, ``label``: 0 Korean, 1 other) as
    ``part-00000.parquet``... of ``rows_per_file`` rows under ``root``, until about
    ``size_bytes`` of UTF-8 text; return how many rows. The texts are ``rows(n, seed)``.

    Memory stays at about a row group (``ROW_GROUP_BYTES``) whatever the size.
    """
    if rows_per_file < 1:
        raise ValueError(f"rows_per_file must be at least 1, got {rows_per_file}")
    root.mkdir(parents=True, exist_ok=True)
    if any(root.glob("*.parquet")):  # stale parts would silently join the dataset
        raise FileExistsError(f"{root} already holds Parquet files")
    total = 0
    current = -1
    writer: pq.ParquetWriter | None = None
    pending: list[pa.Table] = []

    def flush() -> None:
        if pending:
            assert writer is not None
            writer.write_table(pa.concat_tables(pending), row_group_size=1 << 62)
            pending.clear()

    try:
        for index, table in _pieces(_tables(seed, size_bytes), rows_per_file):
            if index != current:
                flush()
                if writer is not None:
                    writer.close()
                writer = pq.ParquetWriter(root / f"part-{index:05d}.parquet", SCHEMA)
                current = index
            pending.append(table)
            total += table.num_rows
            if sum(t.nbytes for t in pending) >= ROW_GROUP_BYTES:
                flush()
        flush()
    finally:
        if writer is not None:
            writer.close()
    return total
