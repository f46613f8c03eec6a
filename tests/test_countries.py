"""Countries by what a person types, in their language and script, with typos and demonyms."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from messages.countries import (
    NOT_COUNTRIES,
    country_codes,
    is_country_code,
    match_countries,
)
from messages.geo import normalize_name
from messages.languages import language_codes

ROOT = Path(__file__).resolve().parent.parent
ALL = language_codes()
DEPLOYMENT = ("en", "fr", "ar", "fa", "uk")


@pytest.mark.parametrize(
    ("typed", "language", "code"),
    [
        # English, with the typos people make
        ("Afghanistan", "en", "AF"),
        ("Afganistan", "en", "AF"),
        ("afghanstan", "en", "AF"),
        ("Etiopia", "en", "ET"),
        ("Erithrea", "en", "ER"),
        ("Venezuala", "en", "VE"),
        ("south sudan", "en", "SS"),
        # demonyms
        ("Syrian", "en", "SY"),
        ("Ethiopian", "en", "ET"),
        ("Eritrean", "en", "ER"),
        ("Afghan", "en", "AF"),
        ("Sudanese", "en", "SD"),
        ("Somali", "en", "SO"),
        ("Ukrainian", "uk", "UA"),
        ("Haitian", "fr", "HT"),
        ("Bangladeshi", "en", "BD"),
        # other names (the alias file)
        ("DRC", "en", "CD"),
        ("Burma", "en", "MM"),
        ("Ivory Coast", "fr", "CI"),
        # Arabic, with and without hamza, and demonyms
        ("سوريا", "ar", "SY"),
        ("سوري", "ar", "SY"),
        ("السودان", "ar", "SD"),
        ("أفغانستان", "ar", "AF"),
        ("افغانستان", "ar", "AF"),
        ("اريتريا", "ar", "ER"),
        # French, with and without accents
        ("Érythrée", "fr", "ER"),
        ("erythree", "fr", "ER"),
        ("Syrie", "fr", "SY"),
        ("Haïti", "fr", "HT"),
        ("Éthiopie", "fr", "ET"),
        # Persian, with Persian letters
        ("افغانستان", "fa", "AF"),
        ("سوریه", "fa", "SY"),
        ("ایران", "fa", "IR"),
        ("افغان", "fa", "AF"),
        # Ukrainian, correct and with Russian spelling
        ("Україна", "uk", "UA"),
        ("Сирія", "uk", "SY"),
        ("Афганістан", "uk", "AF"),
        ("Афганистан", "uk", "AF"),
        ("українець", "uk", "UA"),
    ],
)
def test_country_found_first(typed: str, language: str, code: str) -> None:
    matches = match_countries(typed, language, languages=DEPLOYMENT)
    assert matches, f"nothing for {typed!r}"
    assert matches[0].code == code, [(m.code, m.score) for m in matches]


@pytest.mark.parametrize(
    "typed", ["asdfgh", "qwerty", "", "  ", "x", "I need help", "1234", "???", "Atlantis"]
)
def test_garbage_matches_no_country(typed: str) -> None:
    assert match_countries(typed, "en", languages=ALL) == []


def test_names_in_the_persons_language_and_scores_ordered() -> None:
    [syria, *_] = match_countries("Syria", "ar", languages=DEPLOYMENT)
    assert (syria.code, syria.name, syria.score) == ("SY", "سوريا", 1.0)
    assert match_countries("سوريا", "uk", languages=DEPLOYMENT)[0].name == "Сирія"
    matches = match_countries("Sudan", "en", languages=DEPLOYMENT, limit=5)
    assert [m.code for m in matches][:2] == ["SD", "SS"]
    scores = [m.score for m in matches]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    assert len(match_countries("Congo", "en", languages=DEPLOYMENT, limit=1)) == 1


def test_names_are_searched_in_the_deployments_languages() -> None:
    # "Нідерланди" is Ukrainian for the Netherlands; no alias and no English look-alike.
    assert match_countries("Нідерланди", "en", languages=()) == []
    assert match_countries("Нідерланди", "en", languages=("uk",))[0].code == "NL"
    assert match_countries("Нідерланди", "uk", languages=())[0].name == "Нідерланди"


def test_only_real_countries() -> None:
    codes = country_codes()
    assert 240 <= len(codes) <= 260
    assert {"SY", "AF", "UA", "SS", "PS", "XK"} <= codes
    assert not codes & NOT_COUNTRIES
    assert all(len(code) == 2 and code.isalpha() and code.isupper() for code in codes)
    assert is_country_code("sy") and not is_country_code("EU") and not is_country_code("001")
    for region in ("European Union", "Unknown Region", "United Nations", "world", "Europe"):
        found = {m.code for m in match_countries(region, "en", languages=ALL)}
        assert not found & {"EU", "ZZ", "UN", "001", "150"}, region


def test_alias_file_is_consistent() -> None:
    text = (ROOT / "messages" / "data" / "country_aliases.toml").read_text("utf-8")
    assert "Source:" in text
    aliases: dict[str, list[str]] = tomllib.loads(text)["aliases"]
    owner: dict[str, str] = {}
    for code, names in aliases.items():
        assert is_country_code(code), code
        for name in names:
            key = normalize_name(name)
            assert owner.setdefault(key, code) == code, f"{name!r} is under two codes"
            assert match_countries(name, "en", languages=())[0].code == code, name
