"""The seed's cleaning of non-ASCII text in one compiled pass over the UTF-8 bytes.

A character is kept exactly when the seed's pattern does not match it; which ones those
are is read from the pattern itself for every code point of the Basic Multilingual
Plane (the class keeps Hangul syllables, ASCII letters and digits, and ``str.isspace``
characters, none above U+FFFF), and kept ASCII letters are lower-cased: every other kept
character has no case mapping. Imported only when a batch is not all ASCII, so runs on
ASCII text never load Numba.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
import pyarrow as pa

from tasks.steps.preprocess.clean import clean_text, rebuilt
from tasks.steps.text import string_buffers


@functools.cache
def _tables() -> tuple[np.ndarray, np.ndarray]:
    """What each ASCII byte becomes (-1: dropped), and which BMP code points are kept."""
    ascii_out = np.array(
        [ord(clean_text(chr(c))) if clean_text(chr(c)) else -1 for c in range(128)], np.int16
    )
    bmp = np.array(
        [not 0xD800 <= c <= 0xDFFF and clean_text(chr(c)) == chr(c) for c in range(0x10000)],
        np.bool_,
    )
    return ascii_out, bmp


@numba.njit(cache=True)
def _clean(
    data: np.ndarray,
    offsets: np.ndarray,
    valid: np.ndarray,
    ascii_out: np.ndarray,
    bmp: np.ndarray,
    out: np.ndarray,
    new_offsets: np.ndarray,
) -> int:
    """Kept bytes of every valid row into ``out``, row ends into ``new_offsets``; returns
    the bytes written."""
    j = 0
    new_offsets[0] = 0
    for row in range(len(offsets) - 1):
        i, end = offsets[row], offsets[row + 1]
        if not valid[row]:
            i = end
        while i < end:
            b = data[i]
            if b < 0x80:
                kept = ascii_out[b]
                if kept >= 0:
                    out[j] = kept
                    j += 1
                i += 1
            elif b < 0xE0:  # two bytes
                if bmp[((b & 0x1F) << 6) | (data[i + 1] & 0x3F)]:
                    out[j], out[j + 1] = b, data[i + 1]
                    j += 2
                i += 2
            elif b < 0xF0:  # three bytes
                code = ((b & 0x0F) << 12) | ((data[i + 1] & 0x3F) << 6) | (data[i + 2] & 0x3F)
                if bmp[code]:
                    out[j], out[j + 1], out[j + 2] = b, data[i + 1], data[i + 2]
                    j += 3
                i += 3
            else:  # four bytes: above U+FFFF, never kept
                i += 4
        new_offsets[row + 1] = j
    return j


def clean_utf8(text: pa.Array) -> pa.Array:
    """``clean_text`` over a string or large string array (valid UTF-8, as Arrow's
    strings are); nulls stay null."""
    data, offsets = string_buffers(text)
    width = offsets.dtype
    valid = np.asarray(text.is_valid(), dtype=np.bool_)
    out = np.empty(int(offsets[-1] - offsets[0]), np.uint8)
    new_offsets = np.empty(len(offsets), width)
    ascii_out, bmp = _tables()
    size = _clean(data, offsets.astype(np.int64), valid, ascii_out, bmp, out, new_offsets)
    return rebuilt(text, new_offsets, out[:size])
