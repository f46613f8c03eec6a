"""Content written in several languages (shelter notes, consulate notes, broadcasts):
choosing the text to show a person, with a note when it is not in their language."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from messages.i18n import N_, translations
from messages.languages import fallback_chain

NOT_IN_YOUR_LANGUAGE = N_("This text is not yet available in your language.")


@dataclass(frozen=True)
class Localized:
    text: str
    language: str
    is_fallback: bool


def pick(texts: Mapping[str, str], language: str, deployment_chain: tuple[str, ...]) -> Localized:
    """The text in the person's language, else the first of the fallback chain, else any.

    Raises ValueError for content with no text at all: such content must not be saved.
    """
    present = {code: text for code, text in texts.items() if text and text.strip()}
    if not present:
        raise ValueError("content has no text in any language")
    for code in fallback_chain(language, deployment_chain):
        if code in present:
            return Localized(present[code], code, is_fallback=code != language)
    code = sorted(present)[0]
    return Localized(present[code], code, is_fallback=True)


def render(texts: Mapping[str, str], language: str, deployment_chain: tuple[str, ...]) -> str:
    """The text to send: in the person's language, or a fallback led by a short note in it."""
    chosen = pick(texts, language, deployment_chain)
    if not chosen.is_fallback:
        return chosen.text
    note = translations(language).gettext(NOT_IN_YOUR_LANGUAGE)
    return f"ℹ️ {note}\n\n{chosen.text}"
