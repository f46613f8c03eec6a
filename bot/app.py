"""Application wiring: the python-telegram-bot Application with our handlers and services."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeAlias

from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    BaseHandler,
    ContextTypes,
)

from bot.commands import register_commands
from bot.config import SANDBOX_TOKEN, Settings
from bot.conversations import ConversationMemory, StateProcessor, StoredConversation
from bot.errors import on_error
from bot.flood import GROUP as FLOOD_GROUP
from bot.flood import FloodLimits
from bot.flood import handler as flood_handler
from bot.flood import install as install_flood
from bot.flows import (
    broadcasts,
    consulates,
    digest,
    fallbacks,
    feedback,
    manifests,
    menu,
    onboarding,
    privacy,
    registration,
    responders,
    shelter_updates,
    shelters,
    staff,
    subscriptions,
)
from bot.sender import start_in_application
from bot.services import Services, install, services_of, services_of_app
from bot.worker import note_answer
from evacuation.registrations import purge_stale_drafts
from inbox.updates import purge_done
from privacy.retention import apply_retention
from storage.locks import exclusive

log = logging.getLogger("crisis_comms.app")
# The Application as ApplicationBuilder builds it; its generic parameters do not matter here.
BotApplication: TypeAlias = Application[Any, Any, Any, Any, Any, Any]


def build_application(services: Services) -> BotApplication:
    settings = services.settings
    token = settings.token or SANDBOX_TOKEN
    memory = ConversationMemory(services.db, services.clock)
    processor = StateProcessor(concurrency(services), memory, services.metrics)
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(settings.api_base_url)
        .base_file_url(settings.api_base_file_url)
        .rate_limiter(answer_limiter(settings.services.answer_rate))
        .concurrent_updates(processor)
        .build()
    )
    install(application.bot_data, services)
    install_flood(
        application.bot_data,
        FloodLimits(settings.services.flood_updates, settings.services.flood_window),
    )
    add_handlers(application, settings)
    memory.track(stored_conversations(application))
    assert application.job_queue is not None
    application.job_queue.run_repeating(purge_drafts, interval=3600, first=0)
    # Personal data past RETENTION_DAYS is erased or anonymised (privacy/retention.py).
    application.job_queue.run_repeating(retention_job, interval=3600, first=300)
    application.job_queue.run_repeating(responders.alerts_job, interval=60, first=5)
    # The responders' digest and new-flag notices (nothing without RESPONDERS_CHAT).
    application.job_queue.run_repeating(digest.digest_job, interval=60, first=30)
    # Replies recorded on the dashboard (or left pending by a lost connection) go out here.
    application.job_queue.run_repeating(responders.replies_job, interval=2, first=2)
    # Processed webhook updates are kept a day to recognise repeats (inbox/updates.py).
    application.job_queue.run_repeating(inbox_purge_job, interval=3600, first=600)
    return application


class AnswerLimiter(AIORateLimiter):
    """Telegram's pace for answers, which also tells the inbox worker when an answer
    reached Telegram (bot/worker.py `note_answer`)."""

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        result = await super().process_request(
            callback, args, kwargs, endpoint, data, rate_limit_args
        )
        if endpoint.startswith(ANSWERS):
            await note_answer()
        return result


ANSWERS = ("send", "copy", "forward")  # Bot API methods a person sees as a new message


def answer_limiter(rate: float) -> AnswerLimiter:
    """`rate` answers a second overall (0: no overall pace; 429s still waited out), 20 a
    minute per group, and up to three retries after a 429."""
    return AnswerLimiter(overall_max_rate=rate, max_retries=3)


def concurrency(services: Services) -> int:
    """Updates processed at once. Polling hands updates over in one queue, whose order only
    one at a time keeps; webhook workers on PostgreSQL get whole chats from the inbox, so
    several chats can go at once. SQLite has one writer: one at a time there too."""
    settings = services.settings
    postgres = services.db.engine.dialect.name == "postgresql"
    if settings.mode == "webhook" and postgres:
        return settings.services.worker_concurrency
    return 1


def stored_conversations(application: BotApplication) -> list[StoredConversation]:
    return [
        handler
        for group in application.handlers.values()
        for handler in group
        if isinstance(handler, StoredConversation)
    ]


async def start_application(application: BotApplication) -> None:
    """Start processing updates (after `initialize`) and tell Telegram our commands."""
    await application.start()
    services = services_of_app(application)
    await register_commands(application, services)
    if services.settings.services.sender_in_bot:
        start_in_application(application, services)


def add_handlers(application: BotApplication, settings: Settings) -> None:
    # Groups -2 and -1 see every update first; a handler there stops the others only on
    # purpose. One lookup per group: in a group only the first matching handler runs, and
    # each lookup's "anything else ends the question" matches every update.
    # Flood control sees every update before anyone; it stops only held-back commands and taps.
    application.add_handler(flood_handler(), group=FLOOD_GROUP)
    # An officer composing a broadcast: typed answers stop in this first group (one database
    # lookup tells whether they are composing); everyone else's messages go on.
    for composing in broadcasts.input_handlers():
        application.add_handler(composing, group=-3)
    for handler in shelters.early_handlers(settings):
        application.add_handler(handler, group=-2)
    for handler in consulates.early_handlers(settings):
        application.add_handler(handler, group=-1)
    handlers: list[BaseHandler[Any, Any, Any]] = [
        *fallbacks.early_handlers(),
        # Data rights before every flow: no conversation may swallow /delete.
        *privacy.handlers(),
        *shelters.handlers(settings),
        *staff.handlers(),
        *responders.handlers(),
        *broadcasts.handlers(),
        *manifests.handlers(),
        *shelter_updates.handlers(),
        registration.conversation(settings),
        *consulates.handlers(),
        *subscriptions.handlers(),
        *onboarding.handlers(),
        *menu.handlers(),
        *feedback.handlers(),
        *fallbacks.handlers(),
    ]
    application.add_handlers(handlers)
    application.add_error_handler(on_error)


# Every bot and worker process runs the jobs below; on a shared PostgreSQL database a
# process that finds another one in the job's section (storage/locks.py) skips that run.


async def purge_drafts(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Unfinished registrations nobody touched for the retention period are deleted."""
    services = services_of(context)
    async with exclusive(services.db, "purge_drafts") as held:
        if not held:
            return
        async with services.db.transaction() as session:
            await purge_stale_drafts(
                session, services.settings.services.draft_retention, services.clock()
            )


async def retention_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Erase or anonymise what the retention period has run out for (batched, audited)."""
    services = services_of(context)
    async with exclusive(services.db, "retention") as held:
        if not held:
            return
        report = await apply_retention(
            services.db, services.clock(), services.settings.services.retention
        )
    if report:
        log.info("retention: %s", report.describe())


async def inbox_purge_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Delete processed inbox updates older than a day (Telegram has stopped redelivering)."""
    services = services_of(context)
    async with exclusive(services.db, "inbox_purge") as held:
        if not held:
            return
        async with services.db.transaction() as session:
            purged = await purge_done(session, services.clock())
    if purged:
        log.info("inbox: %d processed updates purged", purged)
