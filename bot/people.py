"""Who wrote: the pseudonymous contact behind an update, and the language to answer in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Update
from telegram.ext import ContextTypes

from bot.services import Services, services_of
from messages.bidi import format_text
from messages.contacts import Contact, find_contact, touch
from messages.detection import detect
from messages.i18n import translations
from messages.language_choice import initial_language
from messages.languages import is_rtl, match_language

CHANNEL = "telegram"


@dataclass
class Person:
    pseudonym: str
    chat_id: int
    contact: Contact | None
    language: str

    @property
    def gettext(self) -> Callable[[str], str]:
        return translations(self.language).gettext

    @property
    def ngettext(self) -> Callable[[str, str, int], str]:
        return translations(self.language).ngettext

    def format(self, translated: str, /, **values: Any) -> str:
        """Fill a translated template, isolating left-to-right values (codes, numbers,
        links) when the person reads right to left."""
        return format_text(translated, is_rtl(self.language), **values)

    @property
    def onboarded(self) -> bool:
        return (
            self.contact is not None and self.contact.has_consented and self.contact.language_chosen
        )


def pseudonym_of(update: Update, services: Services) -> str | None:
    user = update.effective_user
    return None if user is None else services.pseudonymize(CHANNEL, user.id)


def hinted_language(update: Update, services: Services) -> str:
    """Telegram's client language is only a hint; the deployment default comes last."""
    user = update.effective_user
    settings = services.settings
    hint = match_language(user.language_code if user else None, settings.enabled_languages)
    return hint or settings.default_language


def free_text(update: Update) -> str | None:
    """What the person typed, if it is words and not a command."""
    message = update.effective_message
    text = message.text if message is not None else None
    return None if text is None or text.startswith("/") else text


def detected_language(update: Update, services: Services) -> str:
    """For someone who has not chosen: what they write, else their client's language."""
    user = update.effective_user
    settings = services.settings
    text = free_text(update)
    hint = user.language_code if user else None
    detection = detect(text, settings.enabled_languages, hint=hint) if text else None
    return initial_language(detection, hint, settings.enabled_languages, settings.default_language)


async def load_person(session: AsyncSession, update: Update, services: Services) -> Person:
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None, "load_person needs a user and a chat"
    pseudonym = services.pseudonymize(CHANNEL, user.id)
    contact = await find_contact(session, pseudonym)
    if contact is not None and contact.has_consented:
        touch(contact, services.clock())
    enabled = services.settings.enabled_languages
    if contact is not None and contact.language_chosen and contact.language in enabled:
        language = contact.language
    else:
        language = detected_language(update, services)
    return Person(pseudonym=pseudonym, chat_id=chat.id, contact=contact, language=language)


async def current_person(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Person:
    """The person behind an update, read in a transaction of its own."""
    services = services_of(context)
    async with services.db.transaction() as session:
        return await load_person(session, update, services)
