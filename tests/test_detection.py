"""Language detection on short hand-written messages (no dev data needed)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from messages.detection import Detection, _langid, detect

ALL = ["en", "fr", "es", "ar", "fa", "fa-AF", "ps", "ur", "bn", "uk", "ru", "tr", "sw", "so"]
ALL += ["am", "ti", "ha", "ht", "my"]

# "Where is the shelter?" (or close to it) in each language; Dari is expected as "fa".
WHERE_IS_THE_SHELTER = [
    ("en", "Where is the shelter?"),
    ("fr", "Où est l'abri ?"),
    ("es", "¿Dónde está el refugio?"),
    ("ar", "أين يوجد المأوى؟"),
    ("fa", "پناهگاه کجاست؟"),
    ("fa", "پناهگاه در کجا است؟"),  # Dari
    ("ps", "پناه ځای چېرته دی؟"),
    ("ur", "پناہ گاہ کہاں ہے؟"),
    ("bn", "আশ্রয়কেন্দ্র কোথায়?"),
    ("uk", "Де знаходиться притулок?"),
    ("ru", "Где находится убежище?"),
    ("tr", "Barınak nerede?"),
    ("sw", "Makazi yako wapi?"),
    ("so", "Hoyga xaggee buu ku yaalaa?"),
    ("am", "መጠለያው የት ነው?"),
    ("ti", "መዕቆቢ ኣበይ ኣሎ?"),
    ("ha", "Ina wurin mafaka yake?"),
    ("ht", "Kote abri a ye?"),
    ("my", "ခိုလှုံရာနေရာ ဘယ်မှာလဲ"),
]


@pytest.mark.parametrize(("expected", "text"), WHERE_IS_THE_SHELTER)
def test_where_is_the_shelter(expected: str, text: str) -> None:
    found = detect(text, ALL)
    assert found.language == expected, found
    assert 0.5 <= found.confidence <= 1.0


@pytest.mark.parametrize(
    ("expected", "text"),
    [
        ("ht", "Mwen bezwen manje ak dlo pou timoun yo"),
        ("fr", "J'ai besoin de nourriture et d'eau pour les enfants"),
        ("ti", "ብዙሕ ሰባት ኣብዚ ኣለዉ"),
        ("am", "ብዙ ሰዎች እዚህ ውስጥ አሉ"),
        ("uk", "Дякую, мені потрібна допомога"),
        ("ru", "Спасибо, мне нужна помощь"),
    ],
)
def test_close_pairs(expected: str, text: str) -> None:
    assert detect(text, ALL).language == expected


def test_ethiopic_never_gives_a_latin_language() -> None:
    latin = ("en", "fr", "es", "tr", "sw", "so", "ha", "ht")
    assert detect("ሰላም ነው", latin).language is None
    assert detect("ሰላም ነው", (*latin, "am", "ti")).language in {"am", "ti"}


def test_answers_only_enabled_languages() -> None:
    assert detect("أين يوجد المأوى؟", ["en", "fr"]) == Detection(None, 0.0)
    # Pashto is still a hypothesis when disabled: it is not forced into Persian.
    assert detect("زه ډېره وږې یم، ډوډۍ غواړم", ["fa", "ar"]).language is None
    for _, text in WHERE_IS_THE_SHELTER:
        assert detect(text, ["en", "fr"]).language in {"en", "fr", None}


def test_dari_enabled_allows_persian() -> None:
    assert detect("پناهگاه کجاست؟", ["en", "fa-AF"]).language == "fa"


@pytest.mark.parametrize(
    "text", ["", "   ", "😀😀🙏", "12345", "+93 700 123 456", "ok", "?", "https://example.org/x"]
)
def test_nothing_to_detect(text: str) -> None:
    assert detect(text, ALL) == Detection(None, 0.0)


def test_hint_settles_an_ambiguous_short_text() -> None:
    # "Salam" is a greeting in Somali, Hausa, Turkish, Swahili...: the text alone is unsure.
    assert detect("Salam", ALL) == Detection(None, 0.0)
    assert detect("Salam", ALL, hint="so").language == "so"
    assert detect("Salam", ALL, hint="ha-NG").language == "ha"
    assert detect("ok merci", ALL, hint="fr").language == "fr"


def test_wrong_hint_does_not_override_a_clear_text() -> None:
    text = "Bonjour, nous avons besoin d'aide : ma fille est malade et nous n'avons plus d'eau."
    assert detect(text, ALL, hint="ht").language == "fr"
    assert detect(text, ALL, hint="en-US").language == "fr"
    assert detect("Мы ищем убежище для всей семьи", ALL, hint="uk").language == "ru"


def test_confidence_is_a_probability() -> None:
    for text in ("hello", "help me please", "Ina", "ማይ", "Tanpri ede m", "شكرا"):
        found = detect(text, ALL)
        assert 0.0 <= found.confidence <= 1.0
        assert (found.language is None) == (found.confidence == 0.0)


# --- py3langid's model, kept compact (messages/langid_model.py) ------------------------------


@pytest.fixture(scope="module")
def library() -> Any:
    """py3langid's own identifier, full tables and every language: the reference."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE)


def _texts() -> list[str]:
    """A sentence of every script, shouting, emoji, a long text and random characters of the
    first 5,000 code points (Latin to Ethiopic and beyond)."""
    chance = random.Random(7)
    noise = [
        "".join(chr(chance.randrange(32, 5000)) for _ in range(chance.randrange(1, 60)))
        for _ in range(200)
    ]
    shouted = ["WE NEED WATER NOW", "НАМ НУЖНА ВОДА"]
    return [text for _, text in WHERE_IS_THE_SHELTER] + shouted + ["🙏🙏 ok", "x" * 3000] + noise


def test_compact_model_finds_the_librarys_ngrams(library: Any) -> None:
    from py3langid.langid import visit_counts

    from messages.langid_model import _encode

    model = _langid()
    for text in _texts():
        data = _encode(text)
        expected = visit_counts(library.tk_nextmove, library._rowbase, library.tk_output, data)
        assert model.ngram_counts(data) == (expected or {}), text


def test_compact_model_scores_as_the_library(library: Any) -> None:
    model = _langid()
    assert "ti" not in model.languages  # py3langid has no Tigrinya model
    assert set(model.languages) == {lang for lang in ALL if lang not in ("ti", "fa-AF")}, (
        "the languages of data/scripts.toml, nothing else"
    )
    for text in _texts():
        expected = dict(library.rank(text))
        found = model.scores(text)
        if not found:  # no n-gram: the library scores every language alike
            assert len(set(expected.values())) == 1, text
            continue
        for lang, score in found.items():
            assert score == pytest.approx(float(expected[lang]), rel=1e-5, abs=1e-3), text
