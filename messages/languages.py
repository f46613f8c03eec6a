"""The languages the bot speaks, read from data/languages.toml, with names from Babel (CLDR)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from babel import Locale


@dataclass(frozen=True)
class Language:
    code: str  # what we store on a contact: "fa-AF"
    locale: str  # Babel / gettext locale: "fa_AF"
    native_name: str  # the language's name in itself, for the language keyboard
    rtl: bool
    fallbacks: tuple[str, ...] = ()  # languages its readers also read


@cache
def all_languages() -> tuple[Language, ...]:
    text = resources.files("messages").joinpath("data/languages.toml").read_text("utf-8")
    return tuple(_language(entry) for entry in tomllib.loads(text)["language"])


def _language(entry: dict[str, Any]) -> Language:
    locale = Locale.parse(entry["locale"])
    name = entry.get("native_name") or locale.get_display_name(locale) or entry["code"]
    return Language(
        code=entry["code"],
        locale=entry["locale"],
        native_name=name[:1].upper() + name[1:],
        rtl=locale.character_order == "right-to-left",
        fallbacks=tuple(entry.get("fallbacks", ())),
    )


def language_codes() -> tuple[str, ...]:
    return tuple(language.code for language in all_languages())


def get_language(code: str) -> Language | None:
    return next((lang for lang in all_languages() if lang.code == code), None)


def match_language(hint: str | None, enabled: tuple[str, ...]) -> str | None:
    """The enabled language matching a client hint such as Telegram's `language_code`.

    "fa-AF" and "fa_af" both find Dari; "pt-BR" finds nothing; "ar-EG" finds Arabic.
    """
    if not hint:
        return None
    normalized = hint.replace("_", "-").lower()
    by_lower = {code.lower(): code for code in enabled}
    if normalized in by_lower:
        return by_lower[normalized]
    base = normalized.split("-")[0]
    # "ar-EG" finds "ar"; "fa" finds "fa-AF" where only Dari is enabled.
    return by_lower.get(base) or next(
        (code for code in enabled if code.lower().split("-")[0] == base), None
    )


def is_rtl(code: str) -> bool:
    language = get_language(code)
    return language is not None and language.rtl


def fallback_chain(code: str, deployment_chain: tuple[str, ...]) -> tuple[str, ...]:
    """The languages to try, in order, for a person who reads `code`: their own, the ones
    its readers also read, then the deployment's chain, then English (the source)."""
    language = get_language(code)
    chain = [code, *(language.fallbacks if language else ()), *deployment_chain, "en"]
    return tuple(dict.fromkeys(chain))
