"""Application wiring: the python-telegram-bot Application with our handlers and services."""

from __future__ import annotations

from typing import Any, TypeAlias

from telegram.ext import AIORateLimiter, Application, ApplicationBuilder

from bot.commands import register_commands
from bot.config import SANDBOX_TOKEN
from bot.errors import on_error
from bot.flows import fallbacks, menu, onboarding, staff
from bot.services import Services, install, services_of_app

# The Application as ApplicationBuilder builds it; its generic parameters do not matter here.
BotApplication: TypeAlias = Application[Any, Any, Any, Any, Any, Any]


def build_application(services: Services) -> BotApplication:
    settings = services.settings
    token = settings.token or SANDBOX_TOKEN
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(settings.api_base_url)
        .base_file_url(settings.api_base_file_url)
        .rate_limiter(AIORateLimiter(max_retries=3))
        .concurrent_updates(False)  # one update at a time keeps each chat's order
        .build()
    )
    install(application.bot_data, services)
    add_handlers(application)
    return application


async def start_application(application: BotApplication) -> None:
    """Start processing updates (after `initialize`) and tell Telegram our commands."""
    await application.start()
    await register_commands(application, services_of_app(application))


def add_handlers(application: BotApplication) -> None:
    for handler in fallbacks.early_handlers():
        application.add_handler(handler)
    for module in (staff, onboarding, menu):
        for handler in module.handlers():
            application.add_handler(handler)
    for handler in fallbacks.handlers():
        application.add_handler(handler)
    application.add_error_handler(on_error)
