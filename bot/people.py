"""Who wrote: the pseudonymous contact behind an update, and the language to answer in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Update
from telegram.ext import ContextTypes

from bot.services import Services, services_of
from messages.contacts import Contact, find_contact
from messages.i18n import translations
from messages.languages import match_language

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


async def load_person(session: AsyncSession, update: Update, services: Services) -> Person:
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None, "load_person needs a user and a chat"
    pseudonym = services.pseudonymize(CHANNEL, user.id)
    contact = await find_contact(session, pseudonym)
    language = hinted_language(update, services)
    if contact is not None and contact.language in services.settings.enabled_languages:
        language = contact.language
    return Person(pseudonym=pseudonym, chat_id=chat.id, contact=contact, language=language)


async def current_person(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Person:
    """The person behind an update, read in a transaction of its own."""
    services = services_of(context)
    async with services.db.transaction() as session:
        return await load_person(session, update, services)
