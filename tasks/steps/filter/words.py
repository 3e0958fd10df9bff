"""English words as spaCy's blank ``en`` tokenizer splits them, for whole Arrow arrays.

datatrove counts words with spaCy. spaCy splits text on whitespace, then each piece
("chunk") by its rules: prefixes split off its start one at a time (opening brackets
and quotes, ``$``, ``#``, ``*``, ``=``, ...), suffixes off its end (closing brackets and
quotes, ``,`` ``;`` ``!``, a final ``.``, ``'s``, ...), and infixes split what is left
(a hyphen or ``/`` ``:`` ``=`` between a letter or digit and a letter, ``,`` between
letters, ``...`` anywhere, ...). A URL or an e-mail address stays one word, and so does
anything no rule splits (``|PyPI|``, ``x=1``, ``-----``, ``foo.py``, ``1.2.3``).

Here the rules are stated as a few RE2 passes (pyarrow.compute) over the chunks that
are not plain letters and digits: one regex splits each chunk into its prefix run, core
and suffix run; the runs are cut into single marks, the core is cut at its infixes. The
filter splits with :mod:`tasks.steps.filter.split`, the same rules in one compiled pass
(about 3x faster); this module is its reference, and tests check the two agree. The
character classes follow spaCy's lists (``spacy/lang/punctuation.py`` and
``char_classes.py``, facts not code); what is not reproduced: its exception table
(``Mr.``, ``e.g.``, ``U.S.A.`` stay whole there, and ``don't`` becomes ``do n't``; here
initialisms like ``e.g.`` stay whole, titles lose their period, and ``n't``, ``'s``,
``'m``, ``'re``, ``'ve``, ``'ll``, ``'d`` split off any word), emoticons, units after
numbers other than ``%``, its multi-mark suffixes (``):`` is one token there, two
here), and its URL pattern's finer points (any chunk starting with a scheme or
``www.`` is a URL here).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# spaCy's prefix characters: punctuation, quotes, currencies, § % = — – + (not before
# a digit, approximated as always).
_PREFIX = (
    r"§%=—–+…,:;!?¿؟¡()\[\]{}<>_#*&。？！，、；：～·।،۔؛٪"
    r"'\"”“`‘´’‚„»«「」『』（）〔〕【】《》〈〉⟦⟧$£€¥฿₽﷼₴₠-₿"
)
# Suffix characters: the same marks without the currencies, openers kept (spaCy's list
# has them too), % (a unit after numbers); the final period is handled apart.
_SUFFIX = (
    r"…,:;!?¿؟¡()\[\]{}<>_#*&。？！，、；：～·।،۔؛٪'\"”“`‘´’‚„»«「」『』（）〔〕【】《》〈〉⟦⟧%—–"
)
_CONTRACTION = r"(?:n't|N'T|n’t|N’T|['’](?:s|S|m|M|re|RE|ve|VE|ll|LL|d|D))"
# The same, reversed: suffix runs are found from the end of the reversed chunk.
_CONTRACTION_REVERSED = r"(?:t'n|T'N|t’n|T’N|(?:s|S|m|M|er|ER|ev|EV|ll|LL|d|D)['’])"
_PREFIX_RUN = rf"^((?:\.\.+|[{_PREFIX}])*)"
_SUFFIX_RUN_REVERSED = rf"^((?:{_CONTRACTION_REVERSED}|\.\.+|[{_SUFFIX}]|\.)*)"
# An initialism keeps its final period ("e.g.", "U.S."): a space after it ends the core.
_INITIALISM = r"^((?:\p{L}\.)+\p{L}\.)"
# Markers between prefix run, core and suffix run: Unicode noncharacters, which text
# for training has no business holding (a chunk that does is still split, less well).
_AFTER_PREFIX, _BEFORE_SUFFIX = "\ufdd0", "\ufdd1"
# One unit of a prefix or suffix run: an ellipsis, a contraction, or one character.
_UNIT = rf"\.\.+|{_CONTRACTION}|."
_URL = r"^(?:[A-Za-z][A-Za-z0-9+.\-]*://|www\.)\S|^[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+$"
_ALNUM = r"[\p{L}\p{N}]"
# Infixes, each a pass that puts spaces around the mark (RE2 has no lookaround, so the
# neighbours are captured and put back; a second pass catches marks that shared one).
_INFIXES = (
    (r"\.\.+|…", r" \0 "),
    (rf"({_ALNUM})(---|--|——|—|–|-|~|[:<>=/])(\p{{L}})", r"\1 \2 \3"),
    (r"(\p{L}),(\p{L})", r"\1 , \2"),
    (r"(\p{N})([+\-*^])(\p{N}|-)", r"\1 \2 \3"),
    (r"(\p{Ll})\.(\p{Lu})", r"\1 . \2"),
)
_PLAIN = r"^[\p{L}\p{N}\p{M}]*$"
_INFIX_MARKS = r"[.…\-–—~:<>=/,+*^]"


def _spaced(runs: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(runs, pattern=_UNIT, replacement=r" \0 ")


def _cut_core(core: pa.Array) -> pa.Array:
    """Spaces around the infixes of cores that have a candidate mark (most have none);
    URLs and e-mail addresses stay whole."""
    todo = pc.and_not(
        pc.match_substring_regex(core, _INFIX_MARKS), pc.match_substring_regex(core, _URL)
    )
    if not pc.any(todo).as_py():
        return core
    cut = core.filter(todo)
    for pattern, replacement in _INFIXES:
        cut = pc.replace_substring_regex(cut, pattern=pattern, replacement=replacement)
        if "\\3" in replacement:  # neighbours consumed by one match: once more
            cut = pc.replace_substring_regex(cut, pattern=pattern, replacement=replacement)
    cut = pc.replace_substring(cut, "and / or", "and/or")  # spaCy's one exception here
    return pc.replace_with_mask(core, todo, cut)


def _runs(chunks: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Each chunk's prefix run, core and suffix run (anchored passes, no lazy regex:
    the suffix run is found at the start of the reversed chunk)."""
    marked = pc.replace_substring_regex(chunks, _PREFIX_RUN, rf"\1{_AFTER_PREFIX}")
    pre_rest = pc.split_pattern(marked, _AFTER_PREFIX, max_splits=1)
    pre, rest = pc.list_element(pre_rest, 0), pc.list_element(pre_rest, 1)
    rest = pc.replace_substring_regex(rest, _INITIALISM, r"\1 ")
    reversed_marked = pc.replace_substring_regex(
        pc.utf8_reverse(rest), _SUFFIX_RUN_REVERSED, rf"\1{_BEFORE_SUFFIX}"
    )
    suf_core = pc.split_pattern(reversed_marked, _BEFORE_SUFFIX, max_splits=1)
    suf = pc.utf8_reverse(pc.list_element(suf_core, 0))
    core = pc.utf8_reverse(pc.list_element(suf_core, 1))
    return pre, core, suf


def spacy_like(chunks: pa.Array) -> pa.Array:
    """Each whitespace-free chunk with spaces inserted where spaCy would split it."""
    plain = pc.match_substring_regex(chunks, _PLAIN)
    if pc.all(plain).as_py() is not False:
        return chunks
    todo = pc.invert(plain)
    pre, core, suf = _runs(chunks.filter(todo))
    space = pa.scalar(" ", chunks.type)  # large_string texts need a large_string one
    joined = pc.binary_join_element_wise(_spaced(pre), _cut_core(core), _spaced(suf), space)
    # Trimmed, so that splitting on whitespace yields no empty piece at either end.
    return pc.replace_with_mask(chunks, todo, pc.utf8_trim_whitespace(joined))
