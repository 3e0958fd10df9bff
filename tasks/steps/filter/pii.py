"""PII redaction for the quality-filter step, computed per Arrow batch.

A pure kernel: pyarrow, numpy and pydantic only. ``redact(texts, options)`` replaces
every match of the enabled kinds by a placeholder (``<email>``, ``<ip>``, ``<phone>``,
``<rrn>``) and counts the replacements per kind. All of it is RE2 (pyarrow.compute)
over whole arrays; no Python runs per row: one scan with every enabled pattern finds
the rows with anything to redact, and each kind is counted and replaced in those rows
only. The patterns aim at precision: a redaction tears a hole in the text, so
ambiguous numbers (dates, versions, order numbers) stay.

RE2 has no lookaround. "Not glued" below means either RE2's zero-width ``\\b``, which
knows only ASCII word characters (so a Hangul syllable right after a number, as in
``010-1234-5678입니다``, is a boundary), or a context character the pattern consumes and
the replacement puts back.

What counts
    email         a local part of ASCII letters, digits and ``._%+-`` starting with a
                  letter or digit, ``@``, one or more domain labels (letters, digits,
                  inner hyphens) each followed by a dot, and a top-level domain of two or
                  more letters, not followed by a word character. ``a@b``, ``@x.com``
                  and non-ASCII (internationalised) addresses are not matched.
    ip_address    public IPv4: four dotted decimal octets 0-255 without leading zeros,
                  whose first octet is 1-223 (no multicast, reserved or broadcast, hence
                  no netmask like ``255.255.255.0``) outside 10/8, 127/8, 100.64/10
                  (carrier NAT), 169.254/16, 172.16/12 and 192.168/16. Not glued to an
                  ASCII letter, digit, underscore or dot before, nor to a word character
                  or a dot and a digit after: ``1.2.3.4.5``, ``v1.2.3.4`` stay whole.
                  Public IPv6: global unicast (2000::/3, so a first group of four hex
                  digits starting with 2 or 3), in the full eight-group form or
                  ``::``-compressed with at least one group on each side of ``::`` and
                  at most seven in all. That excludes ``::1``, ``::`` and ``::ffff:..``,
                  link-local fe80::/10, unique-local fc00::/7, multicast, and any word
                  like ``std::vector`` or ``CAFE::BEEF`` (the first group must start
                  with a digit); times like ``12:30:45`` and MAC addresses have no
                  ``::`` and fewer than eight groups. Not preceded by a word character or
                  a colon, except the colon of a label such as ``IPv6:`` (a word with a
                  non-hex letter); not followed by a word character.
    korean_phone  after a trunk ``0`` not glued to a word character before: mobile
                  ``1[016789]``, Seoul ``2`` or an area code ``[3-6][1-5]``, then 3 or
                  4 digits and 4 digits; or ``70`` (internet phone), 4 and 4 digits. The
                  groups may be separated by ``-``, ``.``, one space or nothing, each
                  separator chosen independently. The international form drops the trunk
                  ``0``: ``+82`` and an optional separator (``+82-10-1234-5678``,
                  ``+82 2 123 4567``, ``+821012345678``). The area code may also be in
                  parentheses: ``(02) 123-4567``, ``(031)123-4567``. The number is not
                  glued to a word character after (``010-1234-56789`` stays).
    korean_rrn    resident registration numbers ``YYMMDD-GNNNNNN``: six digits forming a
                  month 01-12 and a day 01-31, an optional hyphen, a gender/century digit
                  1-8 (5-8: foreign residents) and six more digits, not glued to a word
                  character on either side. The check digit is not verified.

Deliberately not redacted: private, loopback, link-local and other non-public
addresses; version strings and dotted runs longer than four numbers; dates and times;
digit runs longer than a phone number or an RRN (order numbers, card numbers); numbers
glued to ASCII letters (``tel010-1234-5678``, ``v1.2.3.4``); IPv6 network prefixes
ending in ``::`` (``2001:db8::/32``) and IPv4-mapped forms (``::ffff:..``, whose IPv4
part is redacted if public); business numbers (``1588-1234``), 050x virtual numbers
and 080 toll-free numbers. Not covered either: other separators (en dash, ``~``), an
international form that keeps the trunk 0 (``+82 010-..``: the national part is
redacted), IPv6 with an embedded IPv4 tail or a zone (``%eth0``), non-ASCII e-mail
addresses. Documentation ranges (192.0.2/24, 2001:db8::/32, ...) are redacted like any
public address.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

KINDS = ("email", "ip_address", "korean_phone", "korean_rrn")

# --- patterns (RE2, as pyarrow.compute takes them) ------------------------------------


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
_IPV4 = rf"(?:{_IPV4_HEAD})\.{_OCTET}\.{_OCTET}"
# Group 1, the character before, and group 2, what follows (a character that is not an
# ASCII word character or a dot, or a dot and a non-digit), are consumed and put back:
# RE2 has no lookaround. The texts are padded with a newline at both ends (see _PAD) so
# that no ^ or $ is needed: pyarrow's count_substring_regex resumes after each match as
# if the text began there, so a ^ would count matches that the replacement does not make.
IPV4_PATTERN = rf"([^0-9A-Za-z_.]){_IPV4}([^0-9A-Za-z_.]|\.[^0-9])"

_HEX = "[0-9A-Fa-f]{1,4}"
# Global unicast 2000::/3 is 0x2000-0x3FFF in the first group: four hex digits, 2 or 3
# first (written shorter, the group is below 0x1000 and so not global).
_GLOBAL_GROUP = "[23][0-9A-Fa-f]{3}"
_IPV6_FORMS = [rf"{_GLOBAL_GROUP}(?::{_HEX}){{7}}"] + [
    # k groups before "::" (the global one first), 1..7-k after it.
    rf"{_GLOBAL_GROUP}(?::{_HEX}){{{k - 1}}}::{_HEX}(?::{_HEX}){{0,{6 - k}}}"
    for k in range(1, 7)
]
# Group 1 is the context before: a character that is no ASCII word character nor a
# colon, optionally followed by a label ending in a colon ("IPv6:") whose word has a
# letter beyond a-f (so "fd12:3456::1" does not yield its tail "3456::1").
_IPV6_LEAD = r"[^0-9A-Za-z_:](?:[0-9A-Za-z_]*[G-Zg-z_][0-9A-Za-z_]*:)?"
_IPV6 = "(?:" + "|".join(_IPV6_FORMS) + ")"
IPV6_PATTERN = rf"({_IPV6_LEAD}){_IPV6}\b"

EMAIL_PATTERN = (
    r"[A-Za-z0-9][A-Za-z0-9._%+\-]*@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}\b"
)

_SEP = "[-. ]?"  # one separator between groups, each chosen on its own
_AREA_34 = "(?:1[016789]|2|[3-6][1-5])"  # mobile, Seoul, regional: 3-4 digit middle
_AREA_4 = "70"  # internet phone: 4-digit middle
_AFTER_AREA = rf"(?:{_AREA_34}{_SEP}[0-9]{{3,4}}|{_AREA_4}{_SEP}[0-9]{{4}}){_SEP}[0-9]{{4}}\b"
KOREAN_PHONE_PATTERN = (
    rf"(?:\b0|\+82[-. ]?){_AFTER_AREA}"
    rf"|\(0(?:{_AREA_34}\) ?[0-9]{{3,4}}|{_AREA_4}\) ?[0-9]{{4}}){_SEP}[0-9]{{4}}\b"
)

KOREAN_RRN_PATTERN = r"\b[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])-?[1-8][0-9]{6}\b"

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

# Per kind, a pattern matching wherever the kind's pattern does (the IP ones without their
# context): a row none of them matches has nothing to redact.
_FIND = {
    "email": EMAIL_PATTERN,
    "ip_address": f"{_IPV4}|{_IPV6}",
    "korean_phone": KOREAN_PHONE_PATTERN,
    "korean_rrn": KOREAN_RRN_PATTERN,
}
_PAD = "\n"  # around every text while redacting: a context character for IPV4/IPV6


def _np(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
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
    counts = _np(pc.fill_null(pc.count_substring_regex(subset, pattern=pattern), 0))
    hit = np.zeros(len(text), dtype=bool)
    hit[index[counts > 0]] = True
    if not hit.any():
        return text, 0, hit
    mask = pa.array(hit)
    changed = pc.replace_substring_regex(text.filter(mask), pattern=pattern, replacement=rewrite)
    return pc.replace_with_mask(text, mask, changed), int(counts.sum()), hit


def _redact_ip(text: pa.Array, replacement: str) -> tuple[pa.Array, int]:
    rewrite = _rewrite(replacement)
    # IPV4_PATTERN consumes a context character on both sides, so of two addresses with
    # one character between them ("1.1.1.1 8.8.8.8") a pass takes only the first: a
    # second pass over the rows changed finds what the first one skipped (the context
    # characters are put back, and no skipped address is next to another one).
    text, n4, hit = _substitute(text, IPV4_PATTERN, rf"\1{rewrite}\2")
    if n4:
        text, more, _ = _substitute(text, IPV4_PATTERN, rf"\1{rewrite}\2", rows=hit)
        n4 += more
    text, n6, _ = _substitute(text, IPV6_PATTERN, rf"\1{rewrite}")
    return text, n4 + n6


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
    rows = _np(pc.fill_null(found, False))
    if not rows.any():
        return texts, counts
    mask = pa.array(rows)
    text = _pad(texts.filter(mask))
    # Order: e-mail first, since a local part may read as a phone number or an RRN
    # (01012345678@example.com) and must go whole. The other kinds cannot overlap: an
    # octet has no leading zero and at most 3 digits, while a phone number starts with
    # a trunk 0 (or +82) and ends with 4 digits; phone numbers and RRNs are digit runs
    # bounded on both sides, of 9-12 and 13 digits. So their order does not matter.
    if options.email:
        text, counts["email"], _ = _substitute(
            text, EMAIL_PATTERN, _rewrite(options.email_replacement)
        )
    if options.ip_address:
        text, counts["ip_address"] = _redact_ip(text, options.ip_replacement)
    if options.korean_phone:
        text, counts["korean_phone"], _ = _substitute(
            text, KOREAN_PHONE_PATTERN, _rewrite(options.phone_replacement)
        )
    if options.korean_rrn:
        text, counts["korean_rrn"], _ = _substitute(
            text, KOREAN_RRN_PATTERN, _rewrite(options.rrn_replacement)
        )
    return pc.replace_with_mask(texts, mask, _unpad(text)), counts
