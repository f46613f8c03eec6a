"""Countries by what a person types: "Afganistan", "Syrian", "سوري", "Érythrée", "Україна".

A person asked for their nationality answers in their own words and script, often with a
demonym or a typo. Names come from Babel (CLDR) in the person's language, the deployment's
languages and English, plus a small reviewed file of other names CLDR lacks
(data/country_aliases.toml). Pure: no database, no network.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from babel import Locale

from messages.formatting import babel_locale, country_name
from messages.geo import MATCH_CUTOFF, name_similarity, normalize_name

# CLDR territory codes of two letters that are not countries a person is a national of:
# ISO 3166-1 exceptionally reserved codes (Ascension, Clipperton, Sark, Diego Garcia, Ceuta
# and Melilla, Canary Islands, Tristan da Cunha, EU, Eurozone, UN) and user-assigned codes
# (Outlying Oceania, the pseudo-locales, Unknown). XK (Kosovo) is user-assigned too, but
# used by the UN, the EU and IOM, so it stays.
NOT_COUNTRIES = frozenset(
    {"AC", "CP", "CQ", "DG", "EA", "EU", "EZ", "IC", "QO", "TA", "UN", "XA", "XB", "ZZ"}
)


@dataclass(frozen=True)
class CountryMatch:
    code: str  # ISO 3166-1 alpha-2
    name: str  # in the language asked for
    score: float  # 0..1


@cache
def country_codes() -> frozenset[str]:
    """The ISO 3166-1 alpha-2 codes of real countries and territories, as CLDR knows them."""
    territories = Locale.parse("en").territories
    codes = (code for code in territories if isinstance(code, str))
    return frozenset(
        code
        for code in codes
        if len(code) == 2 and code.isalpha() and code.isupper() and code not in NOT_COUNTRIES
    )


def is_country_code(code: str) -> bool:
    return code.strip().upper() in country_codes()


@cache
def _names(locale: str) -> tuple[tuple[str, str], ...]:
    """(normalised name, code) for every country, in one Babel locale."""
    territories = Locale.parse(locale).territories
    return tuple(
        (normalize_name(str(territories[code])), code)
        for code in sorted(country_codes())
        if code in territories
    )


@cache
def _aliases() -> tuple[tuple[str, str], ...]:
    """(normalised alias, code) from data/country_aliases.toml."""
    text = resources.files("messages").joinpath("data/country_aliases.toml").read_text("utf-8")
    table: dict[str, list[str]] = tomllib.loads(text)["aliases"]
    return tuple(
        (normalize_name(alias), code) for code, aliases in table.items() for alias in aliases
    )


def match_countries(
    text: str, language: str, *, languages: Sequence[str], limit: int = 5
) -> list[CountryMatch]:
    """The countries a person most likely meant, best first, named in `language`; [] for text
    that is no country.

    Searched: CLDR names in `language`, in every language of `languages` (the deployment's)
    and in English, and the aliases. Each country counts once, with its best score; equal
    scores are ordered by code, so the answer is stable.
    """
    query = normalize_name(text)
    if len(query) < 2:
        return []
    locales = dict.fromkeys(babel_locale(code) for code in (language, *languages, "en"))
    best: dict[str, float] = {}
    for entries in [*(_names(locale) for locale in locales), _aliases()]:
        for name, code in entries:
            score = name_similarity(query, name)
            if score >= MATCH_CUTOFF and score > best.get(code, 0.0):
                best[code] = score
    ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [
        CountryMatch(code, country_name(code, language), round(score, 3)) for code, score in ranked
    ]
