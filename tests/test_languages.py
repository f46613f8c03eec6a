"""Language data, right-to-left isolation, locale formatting, fallbacks, language choice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from messages.bidi import FSI, LRI, PDI, format_text, isolate
from messages.content import pick, render
from messages.detection import Detection
from messages.formatting import country_name, date_time, distance, number, time_ago
from messages.i18n import translations
from messages.language_choice import initial_language, remember, switch_suggestion
from messages.languages import all_languages, fallback_chain, get_language, is_rtl, match_language

ENABLED = tuple(language.code for language in all_languages())
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_native_names_and_direction() -> None:
    names = {language.code: language.native_name for language in all_languages()}
    assert names["ar"] == "العربية" and names["fa-AF"] == "دری" and names["ti"] == "ትግርኛ"
    assert names["fr"] == "Français" and names["my"] == "မြန်မာ"
    assert {code for code in ENABLED if is_rtl(code)} == {"ar", "fa", "fa-AF", "ps", "ur"}


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        ("ar-EG", "ar"),
        ("fa_AF", "fa-AF"),
        ("FA-af", "fa-AF"),
        ("en-US", "en"),
        ("pt-BR", None),
        ("", None),
        (None, None),
    ],
)
def test_client_hints(hint: str | None, expected: str | None) -> None:
    assert match_language(hint, ENABLED) == expected


def test_persian_finds_dari_where_only_dari_is_enabled() -> None:
    assert match_language("fa", ("en", "fa-AF")) == "fa-AF"
    assert match_language("fa", ("en", "fa", "fa-AF")) == "fa"


def test_rtl_sentences_isolate_ltr_inserts() -> None:
    sentence = format_text(
        "رقم الهاتف {phone} والرمز {code}", True, phone="+509 3700 0000", code="AB-12"
    )
    assert f"{LRI}+509 3700 0000{PDI}" in sentence
    assert f"{LRI}AB-12{PDI}" in sentence
    # An Arabic insert needs no isolation; a mixed one gets a first-strong isolate.
    assert format_text("مرحبا {name}", True, name="أمينة") == "مرحبا أمينة"
    assert isolate("شارع Lamarre") == f"{FSI}شارع Lamarre{PDI}"
    # Left-to-right sentences are left alone.
    assert format_text("Call {phone}", False, phone="+509 3700 0000") == "Call +509 3700 0000"


def test_locale_formatting() -> None:
    assert time_ago(NOW - timedelta(hours=3), NOW, "en") == "3 hours ago"
    assert time_ago(NOW - timedelta(hours=3), NOW, "ar") == "قبل 3 ساعات"
    assert distance(2345, "en") == "2.3 km" and distance(420, "en") == "420 m"
    assert distance(2345, "fr") == "2,3\u202fkm"
    assert number(12345.5, "fr") == "12\u202f345,5"
    assert country_name("SY", "fr") == "Syrie" and country_name("SY", "ar") == "سوريا"
    assert date_time(NOW, "en", "Africa/Nairobi") == "Nov 21, 2026, 3:00:00\u202fPM"


def test_fallback_chain_and_content() -> None:
    assert fallback_chain("fa-AF", ("fr",)) == ("fa-AF", "fa", "fr", "en")
    texts = {"en": "Shelter open", "fa": "پناهگاه باز است"}
    assert pick(texts, "fa-AF", ("en",)).language == "fa"
    assert render(texts, "en", ("en",)) == "Shelter open"
    shown = render(texts, "ti", ("en",))
    note = translations("ti").gettext("This text is not yet available in your language.")
    assert shown == f"ℹ️ {note}\n\nShelter open"
    assert note != "This text is not yet available in your language."
    assert render({"so": "Hoy"}, "ar", ("en",)).endswith("Hoy"), "any text beats a blank"
    with pytest.raises(ValueError):
        render({"en": "  "}, "en", ("en",))


def test_language_precedence() -> None:
    confident = Detection("ar", 0.95)
    unsure = Detection("ar", 0.3)
    assert initial_language(confident, "fr", ENABLED, "en") == "ar"
    assert initial_language(unsure, "fr", ENABLED, "en") == "fr"
    assert initial_language(None, "pt-BR", ENABLED, "en") == "en"
    assert initial_language(confident, None, ("en", "fr"), "en") == "en"


def test_switch_is_offered_only_after_several_confident_messages() -> None:
    trail = None
    for _ in range(2):
        trail = remember(trail, Detection("ar", 0.95))
        assert switch_suggestion("en", trail, ENABLED) is None, "one short message never switches"
    trail = remember(trail, Detection("ar", 0.95))
    assert switch_suggestion("en", trail, ENABLED) == "ar"
    assert switch_suggestion("ar", trail, ENABLED) is None
    assert switch_suggestion("en", remember(trail, Detection(None, 0.0)), ENABLED) is None
    assert switch_suggestion("fa-AF", "fa,fa,fa", ENABLED) is None, "Dari readers write Persian"
    assert switch_suggestion("en", "ar,ar,ar", ("en", "fr")) is None


def test_every_language_resolves() -> None:
    for code in ENABLED:
        language = get_language(code)
        assert language is not None and language.native_name
