"""Keyboards shown to people, with labels in their language.

Callback data is short and versioned by prefix ("consent:", "lang:", "menu:"), so that a
button from an older message or another version of the bot is recognised as stale.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from functools import cache
from typing import Literal

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
)
from telegram.ext import filters

from messages.i18n import N_, translations
from messages.languages import get_language

Gettext = Callable[[str], str]


class MenuItem(enum.Enum):
    SHELTER = ("shelter", "🏠", N_("Find a shelter"))
    EVACUATION = ("evacuation", "🚌", N_("Register for evacuation or transport"))
    CONSULATE = ("consulate", "🏛", N_("Consulate contacts"))
    FEEDBACK = ("feedback", "💬", N_("Tell us what you need"))
    UPDATES = ("updates", "🔔", N_("Updates"))
    LANGUAGE = ("language", "🌐", N_("Language"))
    HELP = ("help", "❓", N_("Help"))

    def __init__(self, key: str, icon: str, label: str) -> None:
        self.key = key
        self.icon = icon
        self.label = label

    def text(self, gettext: Gettext) -> str:
        return f"{self.icon} {gettext(self.label)}"


MENU_ROWS: tuple[tuple[MenuItem, ...], ...] = (
    (MenuItem.SHELTER,),
    (MenuItem.EVACUATION,),
    (MenuItem.CONSULATE, MenuItem.FEEDBACK),
    (MenuItem.UPDATES, MenuItem.LANGUAGE, MenuItem.HELP),
)


def main_menu(gettext: Gettext) -> ReplyKeyboardMarkup:
    rows = [[KeyboardButton(item.text(gettext)) for item in row] for row in MENU_ROWS]
    return ReplyKeyboardMarkup(rows, resize_keyboard=True, is_persistent=True)


@cache
def menu_lookup(languages: tuple[str, ...]) -> dict[str, MenuItem]:
    """Menu label -> item, in every enabled language: a keyboard shown before a language
    change still works after it."""
    lookup: dict[str, MenuItem] = {}
    for code in ("en", *languages):
        gettext = translations(code).gettext
        for item in MenuItem:
            lookup[_normalize(item.text(gettext))] = item
            lookup[_normalize(gettext(item.label))] = item
    return lookup


def _normalize(text: str) -> str:
    return " ".join(text.split()).casefold()


def menu_item_for(text: str, languages: tuple[str, ...]) -> MenuItem | None:
    return menu_lookup(languages).get(_normalize(text))


class MenuTap(filters.MessageFilter):
    """Text that is a main-menu label in an enabled language: any item, or only `item`."""

    def __init__(self, languages: tuple[str, ...], item: MenuItem | None = None) -> None:
        super().__init__(name=f"MenuTap({item.key if item else 'any'})")
        self.languages = languages
        self.item = item

    def filter(self, message: Message) -> bool:
        if message.text is None:
            return False
        found = menu_item_for(message.text, self.languages)
        return found is not None and (self.item is None or found is self.item)


NoticeLevel = Literal["summary", "statement", "full"]


def consent_keyboard(gettext: Gettext, level: NoticeLevel = "summary") -> InlineKeyboardMarkup:
    """The notice's buttons: each level offers the next one (summary → statement → full)."""
    rows = [[InlineKeyboardButton("✅ " + gettext("I agree"), callback_data="consent:accept")]]
    if level == "summary":
        more = InlineKeyboardButton("📄 " + gettext("Read more"), callback_data="consent:more")
        rows.append([more])
    elif level == "statement":
        full = InlineKeyboardButton("📜 " + gettext("Full notice"), callback_data="consent:full")
        rows.append([full])
    rows.append([InlineKeyboardButton(gettext("No, thanks"), callback_data="consent:decline")])
    return InlineKeyboardMarkup(rows)


def language_keyboard(codes: Iterable[str], current: str | None) -> InlineKeyboardMarkup:
    buttons = []
    for code in codes:
        language = get_language(code)
        if language is None:
            continue
        mark = "✓ " if code == current else ""
        buttons.append(
            InlineKeyboardButton(mark + language.native_name, callback_data=f"lang:{code}")
        )
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    return InlineKeyboardMarkup(rows)
