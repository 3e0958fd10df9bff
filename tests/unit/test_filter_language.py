"""Language identification and the rules per language, on real text that ships in
packages: Faker's word lists in 24 languages, konlpy's Constitution of the Republic of
Korea (a public-domain text) and its National Assembly bills."""

from __future__ import annotations

import collections
from importlib import resources

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from faker import Faker
from pydantic import ValidationError

from tasks.steps.filter.language import identify, kiwi_words, top_languages
from tasks.steps.filter.options import KOREAN, FilterOptions, LanguageID
from tasks.steps.filter.rules import LANGUAGE_RULES, evaluate, rule_names

# Faker locales with a word list of their own, and the language each is written in.
LOCALES = {
    "ar_AA": "ar", "az_AZ": "az", "bn_BD": "bn", "cs_CZ": "cs", "da_DK": "da",
    "de_DE": "de", "el_GR": "el", "en_US": "en", "es_ES": "es", "fa_IR": "fa",
    "fr_FR": "fr", "he_IL": "he", "hy_AM": "hy", "it_IT": "it", "ja_JP": "ja",
    "mk_MK": "mk", "nl_NL": "nl", "pl_PL": "pl", "ru_RU": "ru", "th_TH": "th",
    "tl_PH": "tl", "uk_UA": "uk", "vi_VN": "vi", "zh_CN": "zh",
}  # fmt: skip
PER_LANGUAGE = 40
ENGLISH_ONLY = FilterOptions(language=None)


def korean_corpus(name: str) -> str:
    return resources.files("konlpy").joinpath("data", "corpus", name).read_text("utf-8")


def constitution_articles() -> list[str]:
    """The Constitution's articles (제N조 ...), one text each, as people write them."""
    text = korean_corpus("kolaw/constitution.txt")
    articles, current = [], []
    for line in map(str.strip, text.splitlines()):
        if line.startswith("제") and "조" in line[:6] and current:
            articles.append("\n".join(current))
            current = []
        if line:
            current.append(line)
    articles.append("\n".join(current))
    return [a for a in articles if a.startswith("제")]


def constitution_chapters(min_chars: int = 1500) -> list[str]:
    """Runs of consecutive articles of at least ``min_chars``: documents of the length
    the word-count rules are made for (an article alone is a few sentences)."""
    docs, current = [], []
    for article in constitution_articles():
        current.append(article)
        if sum(map(len, current)) >= min_chars:
            docs.append("\n".join(current))
            current = []
    return docs


def labelled_set() -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for locale, code in LOCALES.items():
        fake = Faker(locale)
        fake.seed_instance(2026)
        for _ in range(PER_LANGUAGE):
            texts.append(fake.text(max_nb_chars=600))
            labels.append(code)
    for name in sorted(resources.files("konlpy").joinpath("data", "corpus", "kobill").iterdir()):
        for paragraph in name.read_text("utf-8").split("\n\n"):
            if len(paragraph.strip()) >= 200:
                texts.append(paragraph.strip())
                labels.append("ko")
    return texts, labels


def test_language_identification_is_right_for_95_percent_in_over_20_languages():
    texts, labels = labelled_set()
    found, scores = identify(pa.array(texts))
    right = np.array(found.to_pylist()) == np.array(labels)
    per_language = collections.defaultdict(list)
    for label, ok in zip(labels, right, strict=True):
        per_language[label].append(ok)
    assert len(per_language) >= 20
    assert right.mean() >= 0.95, {k: np.mean(v) for k, v in per_language.items()}
    assert ((scores >= 0) & (scores <= 1)).all()


def test_identification_reads_nulls_and_newlines():
    found, scores = identify(pa.array(["첫 줄입니다.\n둘째 줄은 한국어로 썼습니다.", None, ""]))
    assert found.to_pylist()[0] == "ko" and scores[0] > 0.9
    assert found.null_count == 0 and len(scores) == 3


def test_kiwi_splits_korean_into_morphemes():
    (words,) = kiwi_words(pa.array(["대한민국은 민주공화국이다."])).to_pylist()
    assert words == ["대한민국", "은", "민주", "공화국", "이", "다", "."]
    assert kiwi_words(pa.array([None, ""])).to_pylist() == [[], []]


def test_the_constitution_is_kept_by_the_defaults_and_rejected_by_the_english_rules():
    chapters = constitution_chapters()
    assert len(chapters) >= 10
    texts = pa.array(chapters)
    korean = evaluate(texts, FilterOptions())
    assert korean.language.to_pylist() == ["ko"] * len(chapters)
    reasons = korean.reason.to_pylist()
    assert reasons[:5] == [None] * 5, reasons  # articles 1 to about 60
    # Later chapters repeat their boilerplate ("...의 조직·직무범위 기타 필요한 사항은
    # 법률로 정한다" four times in articles 90-93): the repetition rules may take those.
    assert all(r is None or r.startswith("gopher_repetition.") for r in reasons), reasons
    english = evaluate(texts, ENGLISH_ONLY)
    reasons = set(english.reason.to_pylist())
    assert None not in reasons  # every chapter rejected by English rules
    assert english.fired["gopher_quality.stop_words"].all()  # "the", "be", ... are absent


def test_korean_rules_are_fineweb_2s():
    """FineWeb-2's kor_Hang values and its choices for every language."""
    assert KOREAN.words == "kiwi" and KOREAN.c4 is None
    gq, rep, fw = KOREAN.gopher_quality, KOREAN.gopher_repetition, KOREAN.fineweb
    assert (gq.min_avg_word_length, gq.max_avg_word_length) == (1, 6)
    assert gq.min_alpha_words_ratio == 0.791 and len(gq.stop_words) == 21
    assert rep.max_dup_line_frac == 0.374 and rep.max_dup_para_frac is None
    assert (rep.max_top_2_gram_frac, rep.max_top_3_gram_frac, rep.max_top_4_gram_frac) == (
        0.282,
        0.228,
        0.185,
    )
    assert (fw.line_punct_thr, fw.char_duplicates_ratio, fw.short_line_thr) == (0.062, 0.1, None)
    assert fw.new_line_ratio == 0.196


def test_korean_words_change_the_verdict():
    """Kiwi's morphemes make mean word length Korean-sized: split on spaces only, the
    same chapters have longer 'words', and a 2-character maximum rejects more."""
    texts = pa.array(constitution_chapters()[:4])
    strict = KOREAN.model_copy(
        update={
            "gopher_quality": KOREAN.gopher_quality.model_copy(update={"max_avg_word_length": 2})
        }
    )
    kiwi = evaluate(texts, FilterOptions(language_rules={"ko": strict}))
    spaces = evaluate(
        texts, FilterOptions(language_rules={"ko": strict.model_copy(update={"words": "default"})})
    )
    mean_length = "gopher_quality.mean_word_length"
    assert not kiwi.fired[mean_length].any()
    assert spaces.fired[mean_length].all()


def test_other_languages_skip_the_english_word_list():
    fake = Faker("de_DE")
    fake.seed_instance(1)
    german = " ".join(fake.paragraph(nb_sentences=12) for _ in range(6))
    judged = evaluate(pa.array([german]), FilterOptions())
    assert judged.language.to_pylist() == ["de"]
    assert not judged.fired["gopher_quality.stop_words"].any()
    as_english = evaluate(pa.array([german]), FilterOptions(language=None))
    assert as_english.fired["gopher_quality.stop_words"].all()


def test_keep_and_min_score():
    texts = pa.array(
        ["This is an English sentence about the weather and the sea.", "이것은 한국어 문장입니다."]
    )
    only_korean = FilterOptions(language=LanguageID(keep=("ko",), min_score=None))
    judged = evaluate(texts, only_korean)
    assert judged.fired["language.not_kept"].tolist() == [True, False]
    scores = evaluate(texts, FilterOptions()).score.to_numpy()
    between = float(scores.min() + scores.max()) / 2
    picky = evaluate(texts, FilterOptions(language=LanguageID(min_score=between)))
    assert picky.fired["language.low_score"].tolist() == (scores < between).tolist()
    assert picky.fired["language.low_score"].sum() == 1
    assert rule_names(only_korean)[0] == LANGUAGE_RULES[0]
    assert LANGUAGE_RULES[1] not in rule_names(only_korean)  # min_score off
    assert rule_names(FilterOptions())[0] == LANGUAGE_RULES[1]  # keep every language


def test_language_off_assumes_one_language_for_every_row():
    judged = evaluate(pa.array(["이것은 한국어 문장입니다."]), FilterOptions(language=None))
    assert judged.language.to_pylist() == ["en"] and judged.score.null_count == 1
    korean = FilterOptions(language=None, assume_language="ko")
    assert evaluate(pa.array(["x"]), korean).language.to_pylist() == ["ko"]
    assert not any(name.startswith(("language.", "c4.")) for name in rule_names(korean))


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"language": {"keep": ["Korean"]}}, "keep"),
        ({"language": {"keep": []}}, "keep"),
        ({"language": {"min_score": 1.5}}, "min_score"),
        ({"assume_language": "EN"}, "assume_language"),
        ({"language_rules": {"ko": {"words": "spaces"}}}, "words"),
    ],
)
def test_bad_language_options_are_refused_by_name(bad, field):
    with pytest.raises(ValidationError, match=field):
        FilterOptions.model_validate(bad)


def test_language_rules_are_added_to_the_defaults_and_null_removes_one():
    chinese = {"zh": {"gopher_quality": None, "gopher_repetition": None}}
    both = FilterOptions.model_validate({"language_rules": chinese})
    assert set(both.language_rules) == {"ko", "zh"} and both.rules_for("ko") == KOREAN
    assert both.rules_for("zh").gopher_quality is None
    without_korean = FilterOptions.model_validate({"language_rules": {"ko": None}})
    assert without_korean.language_rules == {"ko": None}  # kept, so that it round-trips
    assert without_korean.own_rules() == {}
    assert without_korean.rules_for("ko").c4 is not None  # the English sets, no stop words
    assert without_korean.rules_for("ko").gopher_quality.min_stop_words is None


def _mixed() -> tuple[str, dict[str, float]]:
    """A French paragraph and an English one: French first, English second, both well
    below FineWeb's 0.65, English above 0.2; and the model's top probabilities."""
    french, english = Faker("fr_FR"), Faker("en_US")
    french.seed_instance(3)
    english.seed_instance(3)
    text = french.paragraph(nb_sentences=6) + " " + english.paragraph(nb_sentences=4)
    ((codes, probabilities),) = top_languages(pa.array([text]), 3)
    scores = dict(zip(codes, probabilities, strict=True))
    assert codes[:2] == ["fr", "en"] and 0.2 < scores["en"] < scores["fr"] < 0.65, scores
    return text, scores


def test_a_row_is_kept_when_any_wanted_language_reaches_min_score():
    """datatrove's LanguageFilter(languages=...) keeps a document when any of them scores
    above the threshold, not only the most likely one; the row is then judged as (and
    labelled with) that language."""
    text, scores = _mixed()
    en, fr = scores["en"], scores["fr"]
    texts = pa.array([text])

    def judged(keep: tuple[str, ...], min_score: float) -> tuple[str | None, str, float]:
        v = evaluate(texts, FilterOptions(language=LanguageID(keep=keep, min_score=min_score)))
        return v.reason[0].as_py(), v.language[0].as_py(), v.score[0].as_py()

    # English is second, yet above min_score: kept, as English with its score.
    reason, language, score = judged(("en",), en - 0.05)
    assert not (reason or "").startswith("language.")
    assert (language, score) == ("en", pytest.approx(en))
    # Both above: the likelier of the wanted ones.
    assert judged(("en", "fr"), en - 0.05)[1:] == ("fr", pytest.approx(fr))
    assert judged(("en", "de"), en - 0.05)[1] == "en"
    # English below min_score, French not wanted: not kept, labelled as the model's top.
    assert judged(("en",), en + 0.01) == ("language.not_kept", "fr", pytest.approx(fr))
    # French wanted but below min_score: a low score.
    assert judged(("fr",), fr + 0.01) == ("language.low_score", "fr", pytest.approx(fr))
    # Without keep, the model's top language and its score, as before.
    reason, language, score = judged(None, 0.5)
    assert (reason, language, score) == ("language.low_score", "fr", pytest.approx(fr))


class _NumpyScores:
    """fasttext-predict's model as the fasttext package's: numpy probabilities."""

    def __init__(self, model) -> None:
        self.model = model

    def predict(self, text: str, k: int = 1, threshold: float = 0.0):
        labels, scores = self.model.predict(text, k=k, threshold=threshold)
        return labels, np.asarray(scores)


def test_language_verdicts_are_datatroves():
    """Our LanguageFilter semantics beside datatrove's class, on the same model (lid.176's
    .ftz handed to it), for several wanted lists and thresholds."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import LanguageFilter

    from tasks.steps.filter.language import _fasttext

    texts, _ = labelled_set()
    mixed, _ = _mixed()
    texts = [mixed, *texts[:: len(texts) // 60]]
    for languages, threshold in [(["en"], 0.65), (["en"], 0.3), (["fr", "en"], 0.2), (None, 0.65)]:
        # The class checks for its own fastText package at construction: skip that check.
        theirs = object.__new__(LanguageFilter)
        LanguageFilter.__init__(theirs, languages=languages, language_threshold=threshold)
        theirs.model._model = _NumpyScores(_fasttext())
        keep = tuple(languages) if languages else None
        options = FilterOptions(language=LanguageID(keep=keep, min_score=threshold))
        ours = evaluate(pa.array(texts), options)
        language_reasons = pc.starts_with(pc.fill_null(ours.reason, ""), "language.")
        for row, text in enumerate(texts):
            doc = Document(text=text, id=str(row))
            assert bool(theirs.filter(doc)) == (not language_reasons[row].as_py()), (
                languages,
                threshold,
                text[:80],
            )


def _crlf_documents() -> list[str]:
    english = Faker("en_US")
    english.seed_instance(5)
    prose = "\n\n".join(
        "\n".join(english.paragraph(nb_sentences=3) for _ in range(3)) for _ in range(3)
    )
    bullets = "Things to pack for the trip:\n" + "\n".join(
        f"- {english.sentence(nb_words=8)}" for _ in range(20)
    )
    code = "\n".join(
        [
            "def mean(values):",
            '    """The mean of the values, or None without any."""',
            "    if not values:",
            "        return None",
            "    return sum(values) / len(values)",
            "",
            "for name in sorted(scores):",
            "    print(name, mean(scores[name]))",
        ]
        * 3
    )
    return [prose, bullets, code, *constitution_chapters()[:3]]


def test_crlf_and_cr_twins_get_the_same_verdicts():
    """English prose, a bullet list, code and Korean: with \\r\\n or \\r line endings, the
    same reason, the same fired rules, language and score as with \\n."""
    docs = _crlf_documents()
    lf = evaluate(pa.array(docs), FilterOptions())
    assert lf.language.to_pylist()[3:] == ["ko"] * 3
    assert None in lf.reason.to_pylist()  # some are kept: every rule was judged
    for ending in ("\r\n", "\r"):
        twins = pa.array([doc.replace("\n", ending) for doc in docs])
        v = evaluate(twins, FilterOptions())
        assert v.reason.to_pylist() == lf.reason.to_pylist(), ending
        assert v.language.to_pylist() == lf.language.to_pylist()
        assert v.score.to_pylist() == lf.score.to_pylist()
        for name, mask in lf.fired.items():
            assert v.fired[name].tolist() == mask.tolist(), (ending, name)
        # Korean has no C4: its text is not rewritten, line endings and all.
        if v.text is not None:
            assert v.text.to_pylist()[3:] == twins.to_pylist()[3:]


def test_with_prefix_chars_the_model_reads_each_texts_start_only():
    assert LanguageID().prefix_chars is None  # the whole text, as datatrove
    texts, _ = labelled_set()
    whole, _ = identify(pa.array(texts))
    start, _ = identify(pa.array(texts), prefix=2000)
    assert start.to_pylist() == whole.to_pylist()
    # Only the start is read: English first, then far more Korean.
    mixed = "The quick brown fox jumps over the lazy dog. " * 60 + "안녕하세요 반갑습니다. " * 2000
    assert identify(pa.array([mixed]))[0].to_pylist() == ["ko"]
    assert identify(pa.array([mixed]), prefix=2000)[0].to_pylist() == ["en"]
    options = FilterOptions(language=LanguageID(prefix_chars=2000))
    assert evaluate(pa.array([mixed]), options).language.to_pylist() == ["en"]
    assert evaluate(pa.array([mixed]), FilterOptions()).language.to_pylist() == ["ko"]
