"""The command list Telegram shows in the "/" menu, per language (setMyCommands)."""

from __future__ import annotations

from typing import Any

from telegram import BotCommand
from telegram.ext import Application

from bot.services import Services
from messages.i18n import N_, translations

PUBLIC_COMMANDS = (
    ("start", N_("Start again")),
    ("menu", N_("Main menu")),
    ("myregistration", N_("See, change or cancel my registration")),
    ("subscriptions", N_("Choose the updates you receive")),
    ("language", N_("Change the language")),
    ("privacy", N_("How my data is used, withdraw consent")),
    ("mydata", N_("See what you hold about me")),
    ("delete", N_("Delete my data")),
    ("help", N_("How this service works")),
)


def commands_in(language: str) -> list[BotCommand]:
    gettext = translations(language).gettext
    return [BotCommand(name, gettext(description)) for name, description in PUBLIC_COMMANDS]


async def register_commands(
    application: Application[Any, Any, Any, Any, Any, Any], services: Services
) -> None:
    settings = services.settings
    bot = application.bot
    await bot.set_my_commands(commands_in(settings.default_language))
    # Telegram keys per-language lists by two-letter ISO 639-1 code only.
    for code in settings.enabled_languages:
        if len(code) == 2 and code != settings.default_language:
            await bot.set_my_commands(commands_in(code), language_code=code)
