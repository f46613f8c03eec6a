"""What every handler needs, stored once in the Application's bot_data (no module globals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from telegram import Update
from telegram.ext import Application, BaseHandler, ContextTypes

from bot.config import Settings
from bot.metrics import Metrics
from messages.contacts import Pseudonymizer
from storage.base import utcnow
from storage.database import Database

_KEY = "services"

Handler = BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    pseudonymize: Pseudonymizer
    clock: Callable[[], datetime] = utcnow
    metrics: Metrics = field(default_factory=Metrics)  # this process's /metrics


def install(bot_data: dict[Any, Any], services: Services) -> None:
    bot_data[_KEY] = services


def services_of(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return _from(context.bot_data)


def services_of_app(application: Application[Any, Any, Any, Any, Any, Any]) -> Services:
    return _from(application.bot_data)


def _from(bot_data: dict[Any, Any]) -> Services:
    services = bot_data[_KEY]
    assert isinstance(services, Services)
    return services
