"""PII redaction for the quality-filter step, computed per Arrow batch.

A pure kernel: pyarrow, numpy and pydantic only. ``redact(texts, options)`` replaces
every match of the enabled kinds by a placeholder (``<email>``, ``<ip>``, ``<phone>``,
``<rrn>``) and counts the replacements per kind. All of it is RE2 (pyarrow.compute)
over whole arrays; no Python runs per row: one scan with every enabled pattern finds
the rows with anything to redact, and each kind is counted and replaced in those rows
only. The patterns aim at precision: a redaction tears a hole in the text, so numbers
that only look like personal data (versions, section numbers, timestamps, barcodes,
ISBNs, coordinates, dates, order numbers, prices) stay.

RE2 has no lookaround. A pattern consumes the character before and after a number (its
context) and the replacement puts them back; a phone number or RRN that needs a keyword
consumes the keyword too. "Part of a longer number" below means: a digit, an ASCII
letter or ``_`` right before or after it, or a ``.`` or ``-`` that joins it to another
digit (``37.0212345678``, ``010-1234-5678-9``); such a number never matches. A keyword's
"window" is what may stand between it and its number: 은 or 는, at most three spaces or
ASCII punctuation marks (or a full-width colon), and the same again after 번호,
``number``, ``no`` or ``num`` (``전화번호는 ``, ``Tel. ``, ``phone number: ``); any
other character (a word, a digit, another number, redacted or not) ends it.

What counts
    email         a local part of ASCII letters, digits and ``._%+-`` starting with a
                  letter or digit (``john.doe+news``), ``@``, one or more domain labels
                  (letters, digits, inner hyphens) each followed by a dot, and a
                  top-level domain of two or more letters, not followed by a word
                  character. ``a@b``, ``@x.com`` and non-ASCII addresses do not match.
    ip_address    public IPv4: four dotted decimal octets 0-255 without leading zeros,
                  whose first octet is 1-223 (no multicast, reserved or broadcast, hence
                  no netmask like ``255.255.255.0``) outside 10/8, 127/8, 100.64/10
                  (carrier NAT), 169.254/16, 172.16/12 and 192.168/16; also written
                  IPv4-mapped (``::ffff:8.8.8.8``, redacted whole). It must stand alone:
                  not part of a longer number or dotted run (``1.2.3.4.5``,
                  ``5.15.0.91.88``, ``v1.2.3.4``), not after a word and a hyphen
                  (``linux-image-5.15.0.91``), not followed by a hyphen and a letter
                  (``5.15.0.91-generic``) or by 절, 장, 조 or 항 (``1.2.3.4절``), and not
                  right after a version or section word and 은 or 는 and at most three
                  spaces or punctuation marks: ``version 1.2.3.4``, ``Sec. 8.8.8.8``,
                  ``§ 2.1.3.4``, ``버전은 1.2.3.4`` stay. The words, of any case and
                  starting a word: ``v``, ``ver``, ``version``, ``release``, ``build``,
                  ``kernel``, ``linux``, ``firmware``, ``rev``, ``revision``,
                  ``section``, ``sec``, ``sect``, ``chapter``, ``chap``, ``ch``,
                  ``clause``, ``article``, ``paragraph``, ``para``, ``part``,
                  ``appendix``, ``figure``, ``fig``, ``table``; and ``§``, ``¶``, 버전,
                  커널, 빌드, 릴리스, 릴리즈, 펌웨어. A range ``1.2.3.4-1.2.3.9`` is two
                  addresses.
                  IPv6: global unicast (2000::/3, a first group of four hex digits
                  starting with 2 or 3) and link-local (fe80::/10, a first group
                  ``fe80``-``febf``: its interface identifier usually comes from the
                  device's hardware address), in the full eight-group form or
                  ``::``-compressed with at least one group on each side of ``::`` and
                  at most seven in all. That excludes ``::1``, ``::``, unique-local
                  fc00::/7, site-local fec0::/10, multicast, prefixes ending in ``::``
                  (``2001:db8::/32``) and words like ``std::vector`` or ``CAFE::BEEF``;
                  times like ``12:30:45`` and MAC addresses have no ``::`` and fewer
                  than eight groups. Not preceded by a word character or a colon, except
                  the colon of a label such as ``IPv6:`` (a word with a non-hex letter);
                  not followed by a word character (a zone ``%eth0`` stays).
    korean_phone  a national number: trunk ``0``, then mobile ``1[016789]``, Seoul ``2``
                  or an area code ``[3-6][1-5]`` with 3 or 4 digits, or ``70`` (internet
                  phone) with 4 digits, then 4 digits. Redacted when written
                  - with a separator (``-``, ``.`` or one space, mixed) between each of
                    the three groups: ``010-1234-5678``, ``02 123 4567``;
                  - with the area code in parentheses: ``(02) 123-4567``,
                    ``(031)1234-5678``;
                  - after ``+82`` (an optional separator, the trunk 0 optional, groups
                    separated or not): ``+82 10-1234-5678``, ``+821012345678``,
                    ``+82 010-1234-5678``, all redacted whole;
                  - in any of these forms or with fewer separators (``01012345678``,
                    ``010-12345678``) right after a phone keyword: 전화, 연락처, 휴대폰,
                    핸드폰, or, any case and starting a word, ``tel``, ``mobile`` or a
                    word ending in ``phone``, and its window (``전화번호는 01012345678``,
                    ``Tel. 0311234567``, ``tel010-1234-5678``).
                  A bare run of digits without such a keyword is not a phone number
                  (``0198526636`` is as likely an ISBN), nor is one that is part of a
                  longer number. 1588-style, 050x and 080 numbers never are.
    korean_rrn    resident (and foreigner) registration numbers ``YYMMDD-GNNNNNN``: a
                  date whose month is 01-12 and whose day exists in that month (29
                  February always does), a hyphen, a gender/century digit 1-8 and six
                  digits, not part of a longer number. Without the hyphen (13 digits, or
                  with a space) only right after a keyword: 주민등록번호, 주민번호,
                  외국인등록번호 (spaces allowed inside), or, any case and starting a
                  word, ``RRN`` or ``resident registration``, and its window
                  (``주민등록번호: 9001011234567``). The check digit is not verified:
                  numbers issued since October 2020 do not follow it.

Not redacted either: private, loopback and other non-public
addresses; e-mail-like strings without a dotted domain; separators other than ``-``,
``.`` and a space (en dash, ``~``); IPv6 with an embedded IPv4 tail (other than
``::ffff:``); names and street addresses. Documentation ranges (192.0.2/24,
2001:db8::/32, ...) are redacted like any public address.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

KINDS = ("email", "ip_address", "korean_phone", "korean_rrn")

# --- patterns (RE2, as pyarrow.compute takes them) ------------------------------------

# While redacting, every match becomes a mark, a Unicode noncharacter (reserved for a
# program's internal use, so no text needs one) chosen per batch among those the texts
# do not hold; the marks become the replacements at the end. A mark counts as part of
# a number for every context below (never a boundary, never inside a keyword window),
# so what one kind or pass replaced reads, to the next, like the digits it stood for.
_MARKS = tuple(chr(c) for c in range(0xFDD0, 0xFDF0))
_NC = r"\x{FDD0}-\x{FDEF}"  # _MARKS, inside a character class

# What may stand between a keyword and its number: 은 or 는, at most three spaces or
# ASCII punctuation marks (or a full-width colon), and once more after 번호, number, no
# or num: "전화번호는 ", "Tel. ", "phone number: ". No digit, letter or mark, so the window
# ends at the next number, redacted or not. (A few characters of a small class: a
# broader window, like any 12 characters but digits, makes RE2 several times slower.)
_PUNCT = r"[\s!-/:-@\[-`{-~：]"
_WINDOW = rf"[은는]?{_PUNCT}{{0,3}}(?:(?:번호|(?i:number|no|num))[은는]?{_PUNCT}{{0,3}})?"


def _digits_between(lo: str, hi: str) -> list[str]:
    """Alternatives matching exactly the numbers from ``lo`` to ``hi`` (same length)."""
    if lo == hi:
        return [lo]
    if len(lo) == 1:
        return [f"[{lo}-{hi}]"]
    if lo[0] == hi[0]:
        return [lo[0] + _group(_digits_between(lo[1:], hi[1:]))]
    rest = len(lo) - 1
    out, first, last = [], int(lo[0]), int(hi[0])
    if lo[1:] != "0" * rest:  # the partial head: lo[0] then lo[1:]..99
        out.append(lo[0] + _group(_digits_between(lo[1:], "9" * rest)))
        first += 1
    tail = None
    if hi[1:] != "9" * rest:  # the partial tail: hi[0] then 00..hi[1:]
        tail = hi[0] + _group(_digits_between("0" * rest, hi[1:]))
        last -= 1
    if first <= last:
        head = str(first) if first == last else f"[{first}-{last}]"
        out.append(head + "[0-9]" * rest)
    if tail is not None:
        out.append(tail)
    return out


def _group(alternatives: list[str]) -> str:
    return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"


def _decimal(*ranges: tuple[int, int]) -> str:
    """A group matching the decimal numbers (no leading zeros) in the inclusive ranges."""
    out: list[str] = []
    for lo, hi in ranges:
        for width in range(len(str(lo)), len(str(hi)) + 1):
            a = max(lo, 10 ** (width - 1) if width > 1 else 0)
            b = min(hi, 10**width - 1)
            if a <= b:
                out.extend(_digits_between(str(a), str(b)))
    return "(?:" + "|".join(out) + ")"


# The texts are padded with a newline at both ends (see _PAD), so a context character
# always exists and no ^ or $ is needed: pyarrow's count_substring_regex resumes after
# each match as if the text began there, so a ^ (or a leading \b) would count matches
# that the replacement does not make. No pattern below starts with either.

_OCTET = _decimal((0, 255))
# First octets that are public whatever the second one: 1-223 (no 0/8, no multicast
# 224/4, no reserved 240/4) without 10/8 and 127/8, and without 100, 169, 172 and 192,
# which are public only for some second octets (below).
_IPV4_FIRST = _decimal((1, 9), (11, 99), (101, 126), (128, 168), (170, 171), (173, 191), (193, 223))
_IPV4_HEAD = "|".join(
    (
        rf"{_IPV4_FIRST}\.{_OCTET}",
        rf"100\.{_decimal((0, 63), (128, 255))}",  # not 100.64/10 (carrier-grade NAT)
        rf"169\.{_decimal((0, 253), (255, 255))}",  # not 169.254/16 (link-local)
        rf"172\.{_decimal((0, 15), (32, 255))}",  # not 172.16/12 (private)
        rf"192\.{_decimal((0, 167), (169, 255))}",  # not 192.168/16 (private)
    )
)
_IPV4 = rf"(?:::[Ff]{{4}}:)?(?:{_IPV4_HEAD})\.{_OCTET}\.{_OCTET}"
# Group 1, before: no word character, dot, hyphen or mark; or a hyphen after anything
# but a letter, underscore or dot (a range "1.2.3.4-1.2.3.9", not "image-5.15.0.91").
# Group 2, after: no word character, dot, hyphen, mark nor a Korean section suffix; or a
# dot and no digit (end of sentence); or a hyphen and no letter.
IPV4_PATTERN = (
    rf"([^0-9A-Za-z_.\-{_NC}]|[^A-Za-z_.]-){_IPV4}"
    rf"([^0-9A-Za-z_.\-절장조항{_NC}]|\.[^0-9{_NC}]|-[^A-Za-z_])"
)
# A version or section word, then 은 or 는 and at most three spaces or punctuation
# marks: the dotted quad after it (group 2) gets a mark before it, which no IPv4 context
# accepts; the mark goes after the IPv4 passes. An ASCII word must start a word (group 1
# takes the character before it).
_VERSION_WORDS = (
    r"[^A-Za-z](?i:v|ver|version|release|build|kernel|linux|firmware|rev|revision"
    r"|section|sec|sect|chapter|chap|ch|clause|article|paragraph|para|part|appendix"
    r"|figure|fig|table)"
    r"|§|¶|버전|커널|빌드|릴리스|릴리즈|펌웨어"
)
VERSION_CONTEXT_PATTERN = (
    rf"((?:{_VERSION_WORDS})[은는]?{_PUNCT}{{0,3}})([0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}})"
)

_HEX = "[0-9A-Fa-f]{1,4}"
# Global unicast 2000::/3 is 0x2000-0x3FFF in the first group: four hex digits, 2 or 3
# first (written shorter, the group is below 0x1000 and so not global); link-local
# fe80::/10 is 0xFE80-0xFEBF.
_IPV6_FIRST = "(?:[23][0-9A-Fa-f]{3}|[Ff][Ee][89ABab][0-9A-Fa-f])"
_IPV6_FORMS = [rf"{_IPV6_FIRST}(?::{_HEX}){{7}}"] + [
    # k groups before "::" (the first one first), 1..7-k after it.
    rf"{_IPV6_FIRST}(?::{_HEX}){{{k - 1}}}::{_HEX}(?::{_HEX}){{0,{6 - k}}}"
    for k in range(1, 7)
]
# Group 1 is the context before: a character that is no ASCII word character, colon or
# mark, optionally followed by a label ending in a colon ("IPv6:") whose word has a
# letter beyond a-f (so "fd12:3456::1" does not yield its tail "3456::1").
_IPV6_LEAD = rf"[^0-9A-Za-z_:{_NC}](?:[0-9A-Za-z_]*[G-Zg-z_][0-9A-Za-z_]*:)?"
_IPV6 = "(?:" + "|".join(_IPV6_FORMS) + ")"
IPV6_PATTERN = rf"({_IPV6_LEAD}){_IPV6}\b"

EMAIL_PATTERN = (
    r"[A-Za-z0-9][A-Za-z0-9._%+\-]*@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}\b"
)

# The context of a phone number or an RRN. Before: no digit, ASCII letter, "_", mark,
# ".", "-" or "+", or "." or "-" after a character that is none of the first four
# ("- 010..." as a list item). After: no word character, mark, "." or "-", or "." or
# "-" followed by no digit or mark (end of sentence). A comma separates list items:
# "010-1234-5678,02-123-4567" is two numbers.
_NUMBER_BEFORE = rf"[^0-9A-Za-z_.+\-{_NC}]|[^0-9A-Za-z_{_NC}][.\-]"
_NUMBER_AFTER = rf"[^0-9A-Za-z_.\-{_NC}]|[.\-][^0-9{_NC}]"

_SEP = "[-. ]"  # between groups, each chosen on its own
_AREA_34 = "(?:1[016789]|2|[3-6][1-5])"  # mobile, Seoul, regional: 3-4 digit middle
_AREA_4 = "70"  # internet phone: 4-digit middle


def _national(sep: str) -> str:
    """A national number after its trunk 0, with ``sep`` between the groups."""
    return rf"(?:{_AREA_34}{sep}[0-9]{{3,4}}|{_AREA_4}{sep}[0-9]{{4}}){sep}[0-9]{{4}}"


_PHONE_SEPARATED = "0" + _national(_SEP)
_PHONE_LOOSE = "0" + _national(_SEP + "?")
_PHONE_INTL = r"\+82[-. ]?0?" + _national(_SEP + "?")
_PHONE_PAREN = rf"\(0(?:{_AREA_34}\) ?[0-9]{{3,4}}|{_AREA_4}\) ?[0-9]{{4}}){_SEP}?[0-9]{{4}}"
_PHONE_WORDS_KO = "전화|연락처|휴대폰|핸드폰"
_PHONE_WORDS_EN = "(?i:tel|mobile|[a-z]*phone)"
# Groups: 1 a keyword and its window, 2 the context before, 3 the context after. An
# English keyword starts a word, and not after "<": "<phone> 0198526636", text redacted
# before, is no keyword and a bare number.
KOREAN_PHONE_PATTERN = (
    rf"(?:((?:{_PHONE_WORDS_KO}|[^A-Za-z<]{_PHONE_WORDS_EN}){_WINDOW}){_PHONE_LOOSE}"
    rf"|({_NUMBER_BEFORE})(?:{_PHONE_SEPARATED}|{_PHONE_INTL}|{_PHONE_PAREN}))"
    rf"({_NUMBER_AFTER})"
)

# A date: month 01-12 and a day that month has (29 February always).
_MMDD = (
    "(?:(?:0[13578]|1[02])(?:0[1-9]|[12][0-9]|3[01])"
    "|(?:0[469]|11)(?:0[1-9]|[12][0-9]|30)"
    "|02(?:0[1-9]|[12][0-9]))"
)
_RRN_HYPHEN = rf"[0-9]{{2}}{_MMDD}-[1-8][0-9]{{6}}"
_RRN_LOOSE = rf"[0-9]{{2}}{_MMDD}[- ]?[1-8][0-9]{{6}}"
_RRN_WORDS_KO = r"주민\s*(?:등록\s*)?번호|외국인\s*등록\s*번호"
_RRN_WORDS_EN = r"(?i:rrn|resident\s+registration)"
# Groups as in KOREAN_PHONE_PATTERN.
KOREAN_RRN_PATTERN = (
    rf"(?:((?:{_RRN_WORDS_KO}|[^A-Za-z<]{_RRN_WORDS_EN}){_WINDOW}){_RRN_LOOSE}"
    rf"|({_NUMBER_BEFORE}){_RRN_HYPHEN})"
    rf"({_NUMBER_AFTER})"
)

# --- options -------------------------------------------------------------------------


class PII(BaseModel):
    """Which kinds of personal data ``redact`` replaces, and by what."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: bool = Field(True, description="replace e-mail addresses")
    ip_address: bool = Field(True, description="replace public IPv4 and IPv6 addresses")
    korean_phone: bool = Field(True, description="replace Korean phone numbers")
    korean_rrn: bool = Field(
        True, description="replace Korean resident registration numbers (주민등록번호)"
    )
    email_replacement: str = Field("<email>", description="what an e-mail address becomes")
    ip_replacement: str = Field("<ip>", description="what an IP address becomes")
    phone_replacement: str = Field("<phone>", description="what a phone number becomes")
    rrn_replacement: str = Field("<rrn>", description="what a resident registration number becomes")

    @field_validator("email_replacement", "ip_replacement", "phone_replacement", "rrn_replacement")
    @classmethod
    def _not_redactable(cls, value: str, info: ValidationInfo) -> str:
        # Every pattern needs an '@' or a digit: a replacement without them cannot be
        # matched again by a later kind, nor counted twice.
        if "@" in value or any(c.isdigit() for c in value):
            raise ValueError(
                f"{info.field_name} {value!r} must contain no '@' and no digit: "
                "the PII patterns would match the replacement itself"
            )
        return value


# --- kernel --------------------------------------------------------------------------

# Per kind, a pattern matching wherever the kind's pattern does (without the contexts):
# a row none of them matches has nothing to redact.
_FIND = {
    "email": EMAIL_PATTERN,
    "ip_address": f"{_IPV4}|{_IPV6}",
    "korean_phone": (
        f"{_PHONE_SEPARATED}|{_PHONE_INTL}|{_PHONE_PAREN}"
        f"|(?:{_PHONE_WORDS_KO}|{_PHONE_WORDS_EN}){_WINDOW}{_PHONE_LOOSE}"
    ),
    "korean_rrn": f"{_RRN_HYPHEN}|(?:{_RRN_WORDS_KO}|{_RRN_WORDS_EN}){_WINDOW}{_RRN_LOOSE}",
}
_REPLACEMENT = {
    "email": "email_replacement",
    "ip_address": "ip_replacement",
    "korean_phone": "phone_replacement",
    "korean_rrn": "rrn_replacement",
}
_PAD = "\n"  # around every text while redacting: a context character for the patterns


def as_numpy(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False)


def _pad(text: pa.Array) -> pa.Array:
    pad = pa.scalar(_PAD, text.type)
    return pc.binary_join_element_wise(pad, text, pad, pa.scalar("", text.type))


def _unpad(text: pa.Array) -> pa.Array:
    """Drop the one-byte pads; as bytes, which skips counting and checking UTF-8."""
    raw = pa.large_binary() if pa.types.is_large_string(text.type) else pa.binary()
    return pc.binary_slice(text.view(raw), 1, -1).view(text.type)


def _rewrite(replacement: str) -> str:
    """``replacement`` as a literal RE2 rewrite string (only a backslash is special)."""
    return replacement.replace("\\", "\\\\")


def _free_marks(text: pa.Array, replacements: str, n: int) -> list[str] | None:
    """``n`` marks that neither the texts nor the replacements hold, or None."""
    free = [mark for mark in _MARKS if mark not in replacements]
    data = text.buffers()[2]
    # Every mark is EF B7 9x/Ax in UTF-8: a byte search rules them all out at once.
    if data is None or _MARKS[0].encode()[:2] not in data.to_pybytes():
        return free[:n] if len(free) >= n else None
    clash = as_numpy(pc.fill_null(pc.match_substring_regex(text, pattern=f"[{_NC}]"), False))
    if clash.any():  # a text holding noncharacters: rare, and only those rows are read
        held = text.filter(pa.array(clash))
        free = [mark for mark in free if not pc.any(pc.match_substring(held, mark)).as_py()]
    return free[:n] if len(free) >= n else None


def _substitute(
    text: pa.Array, pattern: str, rewrite: str, rows: np.ndarray | None = None
) -> tuple[pa.Array, int, np.ndarray]:
    """Replace ``pattern`` by ``rewrite`` in ``text`` (only in ``rows`` if given).

    Counts first, then rewrites just the rows with a match (a replace copies every
    string). Returns the new text, the number of replacements and the mask of the rows
    that had any.
    """
    index = np.arange(len(text)) if rows is None else np.flatnonzero(rows)
    subset = text if rows is None else text.take(pa.array(index))
    counts = as_numpy(pc.fill_null(pc.count_substring_regex(subset, pattern=pattern), 0))
    hit = np.zeros(len(text), dtype=bool)
    hit[index[counts > 0]] = True
    if not hit.any():
        return text, 0, hit
    mask = pa.array(hit)
    changed = pc.replace_substring_regex(text.filter(mask), pattern=pattern, replacement=rewrite)
    return pc.replace_with_mask(text, mask, changed), int(counts.sum()), hit


def _substitute_twice(
    text: pa.Array, pattern: str, rewrite: str, rows: np.ndarray | None = None
) -> tuple[pa.Array, int, np.ndarray]:
    """``_substitute`` for a pattern that consumes context on both sides.

    Of two matches with one context character between them ("1.1.1.1 8.8.8.8") a pass
    takes only the first: a second pass over the rows changed finds what the first one
    skipped (the contexts are put back, and no skipped match is next to another one).
    """
    text, n, hit = _substitute(text, pattern, rewrite, rows)
    if n:
        text, more, _ = _substitute(text, pattern, rewrite, rows=hit)
        n += more
    return text, n, hit


def _replace_literal(text: pa.Array, rows: np.ndarray, old: str, new: str) -> pa.Array:
    mask = pa.array(rows)
    changed = pc.replace_substring(text.filter(mask), pattern=old, replacement=new)
    return pc.replace_with_mask(text, mask, changed)


def _redact_ip(text: pa.Array, tag: str, protect: str | None) -> tuple[pa.Array, int, np.ndarray]:
    rows = as_numpy(pc.fill_null(pc.count_substring_regex(text, pattern=IPV4_PATTERN), 0)) > 0
    protected = None
    if protect is not None and rows.any():
        # A mark before the dotted quads after a version or section word, in the rows
        # with an IPv4 candidate only; it goes again after the IPv4 passes.
        text, _, protected = _substitute(
            text, VERSION_CONTEXT_PATTERN, rf"\1{protect}\2", rows=rows
        )
    rewrite = _rewrite(tag)
    text, n4, hit4 = _substitute_twice(text, IPV4_PATTERN, rf"\1{rewrite}\2", rows=rows)
    text, n6, hit6 = _substitute(text, IPV6_PATTERN, rf"\1{rewrite}")
    if protected is not None and protected.any():
        text = _replace_literal(text, protected, protect, "")
    return text, n4 + n6, hit4 | hit6


def redact(texts: pa.Array | pa.ChunkedArray, options: PII) -> tuple[pa.Array, dict[str, int]]:
    """The texts with the enabled kinds of PII replaced, and how many each kind replaced.

    Nulls stay null; the result has the input's length and type (string or large_string).
    The counts hold the enabled kinds only (zero when none found), in ``KINDS`` order.
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks else pa.array([], texts.type)
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        raise TypeError(f"texts must be strings, got {texts.type}")
    kinds = [kind for kind in KINDS if getattr(options, kind)]
    counts = dict.fromkeys(kinds, 0)
    if not kinds or len(texts) == 0:
        return texts, counts
    # One scan for every kind at once finds the rows with anything to redact (few, in
    # most text); the per-kind passes below only see those.
    found = pc.match_substring_regex(texts, pattern="|".join(_FIND[kind] for kind in kinds))
    rows = as_numpy(pc.fill_null(found, False))
    if not rows.any():
        return texts, counts
    mask = pa.array(rows)
    text = _pad(texts.filter(mask))
    replacements = {kind: getattr(options, _REPLACEMENT[kind]) for kind in kinds}
    # A mark per kind and one to protect version numbers. Without free marks (a batch
    # holding nearly every noncharacter) the replacements are written directly, and
    # version and section words protect nothing: more is redacted, never less.
    marks = _free_marks(text, "".join(replacements.values()), len(KINDS) + 1)
    tags = dict(zip(KINDS, marks, strict=False)) if marks else replacements
    protect = marks[-1] if marks else None
    hits: dict[str, np.ndarray] = {}
    # Order: e-mail first, since a local part may read as a phone number or an RRN
    # (01012345678@example.com) and must go whole. The others cannot overlap (an octet
    # has no leading zero, a phone number starts with 0, + or ( and ends with 4 digits,
    # an RRN has 13 digits, all bounded by contexts); marks keep what one kind replaced
    # from opening a context or a keyword window for the next.
    if options.email:
        text, counts["email"], hits["email"] = _substitute(
            text, EMAIL_PATTERN, _rewrite(tags["email"])
        )
    if options.ip_address:
        text, counts["ip_address"], hits["ip_address"] = _redact_ip(
            text, tags["ip_address"], protect
        )
    if options.korean_phone:
        text, counts["korean_phone"], hits["korean_phone"] = _substitute_twice(
            text, KOREAN_PHONE_PATTERN, rf"\1\2{_rewrite(tags['korean_phone'])}\3"
        )
    if options.korean_rrn:
        text, counts["korean_rrn"], hits["korean_rrn"] = _substitute_twice(
            text, KOREAN_RRN_PATTERN, rf"\1\2{_rewrite(tags['korean_rrn'])}\3"
        )
    if marks:
        for kind in kinds:
            if counts[kind]:
                text = _replace_literal(text, hits[kind], tags[kind], replacements[kind])
    return pc.replace_with_mask(texts, mask, _unpad(text)), counts
