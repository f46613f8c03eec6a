"""The global error handler: no exception stops the bot, and nothing personal reaches the log.

Logged: the exception type, the handler's update kind and update_id, and the traceback
frames (file/line/function), but never the exception message, which for Telegram errors
and database errors can quote what a person wrote.
"""

from __future__ import annotations

import logging
import traceback

from telegram import Update
from telegram.error import Forbidden, TelegramError
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot.people import hinted_language, pseudonym_of
from bot.services import services_of
from bot.worker import note_error
from messages.contacts import mark_unreachable
from messages.i18n import translations

log = logging.getLogger("crisis_comms.errors")


def describe(error: BaseException) -> str:
    """Type and frames of an exception, without its message."""
    frames = traceback.extract_tb(error.__traceback__)
    where = " <- ".join(
        f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}:{f.name}" for f in reversed(frames[-6:])
    )
    return f"{type(error).__module__}.{type(error).__qualname__} at {where or '?'}"


def update_kind(update: object) -> str:
    if not isinstance(update, Update):
        return type(update).__name__
    for kind in ("message", "edited_message", "callback_query", "channel_post", "my_chat_member"):
        if getattr(update, kind, None) is not None:
            return kind
    return "other"


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    error = context.error
    if error is None:
        return
    update_id = update.update_id if isinstance(update, Update) else None
    if note_error(error):  # an inbox update, tried again once the database answers
        services_of(context).metrics.errors.labels(kind="database").inc()
        log.warning("handler: database unreachable, update_id=%s will be retried", update_id)
        raise ApplicationHandlerStop  # no later handler group may answer it meanwhile
    services_of(context).metrics.errors.labels(kind="handler").inc()
    if isinstance(update, Update) and isinstance(error, Forbidden):
        await _mark_blocked(update, context)
        log.info("recipient unreachable (403) update_id=%s", update_id)
        return
    log.error(
        "handler failed update_id=%s kind=%s error=%s",
        update_id,
        update_kind(update),
        describe(error),
    )
    if isinstance(update, Update):
        await _apologise(update, context)


async def _mark_blocked(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = services_of(context)
    pseudonym = pseudonym_of(update, services)
    if pseudonym is None:
        return
    async with services.db.transaction() as session:
        await mark_unreachable(session, pseudonym, services.clock())


async def _apologise(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat = update.effective_chat
    if chat is None or chat.type != "private":
        return
    services = services_of(context)
    # The database may be what failed: use the client's language hint, not the contact.
    _ = translations(hinted_language(update, services)).gettext
    try:
        await context.bot.send_message(chat.id, _("Sorry, something went wrong. Please try again."))
        if update.callback_query is not None:
            await update.callback_query.answer()
    except TelegramError as error:
        log.warning("could not send the apology: %s", describe(error))
