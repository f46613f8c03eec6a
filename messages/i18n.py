"""Translated text for each language, from the gettext catalogs in locales/.

Catalogs are compiled to .mo by the set-up and test commands; when a .mo is missing or older
than its .po (a fresh checkout, an edited catalog) the .po is compiled in memory, so the
bot never shows a blank or a raw message id. Untranslated messages fall back to English,
the source language.
"""

from __future__ import annotations

import gettext
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from messages.languages import get_language

DOMAIN = "messages"
LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"


def N_(message: str) -> str:
    return message


@cache
def translations(language_code: str) -> gettext.NullTranslations:
    """The translations for a language code such as "fa-AF"; English for unknown codes."""
    language = get_language(language_code)
    if language is None or language.code == "en":
        return gettext.NullTranslations()
    catalog = _load(language.locale)
    for other in language.fallbacks:  # Dari readers read Persian, and the other way round
        related = get_language(other)
        if related is not None:
            catalog.add_fallback(_load(related.locale))
    return catalog


def _load(locale: str) -> gettext.NullTranslations:
    folder = LOCALES_DIR / locale / "LC_MESSAGES"
    po_path, mo_path = folder / f"{DOMAIN}.po", folder / f"{DOMAIN}.mo"
    if mo_path.exists() and (
        not po_path.exists() or mo_path.stat().st_mtime >= po_path.stat().st_mtime
    ):
        with mo_path.open("rb") as handle:
            return gettext.GNUTranslations(handle)
    if po_path.exists():
        return gettext.GNUTranslations(_compile(po_path))
    return gettext.NullTranslations()


def _compile(po_path: Path) -> BytesIO:
    with po_path.open("rb") as handle:
        catalog = read_po(handle)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return buffer
