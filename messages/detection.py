"""Offline language detection tuned for short chat messages.

Three steps: the dominant Unicode script narrows the hypotheses to the bot's languages written
in it (data/scripts.toml); py3langid and CLD2 score those hypotheses, together with letters and
common words specific to each language; a client hint (Telegram's `language_code`) adds a
prior. The softmax of the combined score is the confidence; below MIN_CONFIDENCE we answer
None rather than guess.

Models ship inside the py3langid and pycld2 wheels: nothing is downloaded. They load on the
first call to detect(), not at import.
"""

from __future__ import annotations

import math
import re
import tomllib
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from messages.langid_model import ByteNgramModel

MIN_CONFIDENCE = 0.5  # a guess right less often than not is worse than asking the person
MIN_LETTERS = 3  # "ok", "hi", "?" say nothing about a language
MAX_CHARS = 1000  # the language is clear long before; bounds the time a huge message takes
LATIN_SHARE = 4  # see _dominant_script
MAX_CONFIDENCE = 0.99  # the dev set never justifies certainty; keep room for the unseen

# URLs, e-mails, @mentions, #tags and tokens with digits (codes, phone numbers, "COVID-19").
_NOISE = re.compile(r"https?://\S+|www\.\S+|\S+@\S+\.\S+|[@#]\w+|[^\s\d]*\d\S*")
_WORD = re.compile(r"\w+(?:['’]\w+)*")
# Codes for Persian that mean "Persian is allowed"; Dari cannot be told from Iranian Persian.
_PERSIAN_ALIASES = frozenset({"fa", "fa-af", "prs"})


@dataclass(frozen=True)
class Detection:
    language: str | None
    confidence: float


@dataclass(frozen=True)
class _Weights:
    """How much each signal counts, in log-odds units (set by hand; see bench/README.md)."""

    langid: float = 1.0  # py3langid log-probability, length-normalised as the library does
    cld2: float = 3.0  # CLD2's share of the text (0..1) for a language
    letter: float = 2.5  # per distinct script-specific letter seen (for, or against)
    word: float = 1.5  # per token found in the language's lexicon
    hint: float = 2.0  # prior for the hinted language
    temperature: float = 1.0  # final softening of the combined scores


WEIGHTS = _Weights()


@dataclass(frozen=True)
class _Rules:
    scripts: Mapping[str, tuple[str, ...]]
    letters: Mapping[str, frozenset[str]]
    words: Mapping[str, frozenset[str]]


def detect(text: str, enabled: Sequence[str], hint: str | None = None) -> Detection:
    """The language of `text`, one of `enabled` ("fa-AF" allows "fa"), or None when unsure."""
    allowed = {_base_code(code) for code in enabled}
    cleaned = _clean(text)
    script, letters = _dominant_script(cleaned)
    hypotheses = _rules().scripts.get(script or "", ())
    if letters < MIN_LETTERS or not allowed.intersection(hypotheses):
        return Detection(None, 0.0)
    probabilities = _probabilities(cleaned, hypotheses, _base_code(hint) if hint else None)
    best = max(probabilities, key=probabilities.__getitem__)
    confidence = min(probabilities[best], MAX_CONFIDENCE)
    # Disabled languages stay hypotheses so that, e.g., Pashto is not forced into Persian.
    if best not in allowed or confidence < MIN_CONFIDENCE:
        return Detection(None, 0.0)
    return Detection(best, round(confidence, 4))


def _clean(text: str) -> str:
    # Lone surrogates (broken emoji from some clients) would make the UTF-8 models raise.
    text = text[:MAX_CHARS].encode("utf-8", "replace").decode("utf-8")
    return _NOISE.sub(" ", text)


def _base_code(code: str) -> str:
    lowered = code.replace("_", "-").lower()
    return "fa" if lowered in _PERSIAN_ALIASES else lowered.split("-")[0]


def _dominant_script(text: str) -> tuple[str | None, int]:
    """The script `text` is written in and how many of its letters and marks it has.

    Latin names and terms often appear inside Arabic, Ethiopic or Burmese messages, seldom
    the reverse, so a non-Latin script wins unless Latin has LATIN_SHARE times its characters.
    """
    counts = Counter(
        unicodedata.name(ch, "?").split(" ")[0]
        for ch in text
        if unicodedata.category(ch)[0] in "LM"  # marks: Brahmic vowel signs are not letters
    )
    latin = counts.pop("LATIN", 0)
    if counts:
        script, count = counts.most_common(1)[0]
        if count >= MIN_LETTERS and latin < LATIN_SHARE * count:
            return script, count
    return ("LATIN", latin) if latin else (None, 0)


def _probabilities(text: str, hypotheses: Sequence[str], hint: str | None) -> dict[str, float]:
    if len(hypotheses) == 1:
        return {hypotheses[0]: 1.0}
    scores = dict.fromkeys(hypotheses, 0.0)
    for signal in (_langid_scores, _cld2_scores, _letter_scores, _word_scores):
        for language, score in signal(text, hypotheses).items():
            scores[language] += score
    if hint in scores:
        scores[hint] += WEIGHTS.hint
    return _softmax({lang: s / WEIGHTS.temperature for lang, s in scores.items()})


def _langid_scores(text: str, hypotheses: Sequence[str]) -> dict[str, float]:
    model = _langid()
    if not set(hypotheses) <= set(model.languages):
        return {}  # py3langid lacks Tigrinya: a one-sided score would bias Ethiopic to Amharic
    raw = model.scores(text)
    if not raw:
        return {}  # no known n-gram: py3langid scores every language alike
    # Raw naive-Bayes log-likelihoods grow with length; the library's own softmax divides by
    # sqrt(bytes) to keep long texts from looking certain.
    scale = math.sqrt(max(len(text.encode()), 1))
    log_probs = _log_softmax({lang: raw[lang] / scale for lang in hypotheses})
    return {lang: WEIGHTS.langid * lp for lang, lp in log_probs.items()}


def _cld2_scores(text: str, hypotheses: Sequence[str]) -> dict[str, float]:
    reliable, _, details = _cld2_detect(text)
    factor = WEIGHTS.cld2 if reliable else WEIGHTS.cld2 / 2
    return {code: factor * percent / 100 for _, code, percent, _ in details if code in hypotheses}


def _letter_scores(text: str, hypotheses: Sequence[str]) -> dict[str, float]:
    letters = _rules().letters
    marked = frozenset().union(*(letters.get(lang, frozenset()) for lang in hypotheses))
    seen = marked.intersection(text.lower())
    if not seen:
        return {}
    return {
        lang: WEIGHTS.letter * (len(seen & own) - len(seen - own))
        for lang in hypotheses
        for own in [letters.get(lang, frozenset())]
    }


def _word_scores(text: str, hypotheses: Sequence[str]) -> dict[str, float]:
    words = _rules().words
    tokens = [token.replace("’", "'") for token in _WORD.findall(text.lower())]
    return {
        lang: WEIGHTS.word * sum(token in words.get(lang, ()) for token in tokens)
        for lang in hypotheses
    }


def _log_softmax(scores: Mapping[str, float]) -> dict[str, float]:
    top = max(scores.values())
    log_total = top + math.log(sum(math.exp(s - top) for s in scores.values()))
    return {lang: s - log_total for lang, s in scores.items()}


def _softmax(scores: Mapping[str, float]) -> dict[str, float]:
    return {lang: math.exp(lp) for lang, lp in _log_softmax(scores).items()}


def _cld2_detect(text: str) -> tuple[bool, int, Iterable[tuple[str, str, int, float]]]:
    import pycld2  # imported here: the bot imports this module at start-up

    try:
        result: tuple[bool, int, Iterable[tuple[str, str, int, float]]]
        result = pycld2.detect(text, bestEffort=True)
    except pycld2.error:  # invalid UTF-8 such as lone surrogates
        return False, 0, ()
    return result


@cache
def _langid() -> ByteNgramModel:
    """py3langid's model for the languages of data/scripts.toml, the only hypotheses."""
    from messages import langid_model  # numpy and the model load on first use, not at import

    return langid_model.load({lang for langs in _rules().scripts.values() for lang in langs})


@cache
def _rules() -> _Rules:
    raw = tomllib.loads(resources.files("messages").joinpath("data/scripts.toml").read_text())
    return _Rules(
        scripts={script: tuple(langs) for script, langs in raw["scripts"].items()},
        letters={lang: frozenset(chars) for lang, chars in raw["letters"].items()},
        words={lang: frozenset(words.lower().split()) for lang, words in raw["words"].items()},
    )


def preload() -> None:
    """Load the models now (e.g. in a benchmark or a warm-up task) instead of on first use."""
    _langid()
    _rules()
    _cld2_detect("warm up")
