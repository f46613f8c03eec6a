"""Everything else people send: unknown commands, media, locations, edits, groups, old buttons.

Each gets a short answer in the person's language, or is ignored on purpose; none raises.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bot.flows import shelters
from bot.keyboards import main_menu
from bot.people import current_person, hinted_language
from bot.replies import answer_stale_button, onboarded_person
from bot.services import Handler, services_of
from messages.bidi import format_text
from messages.i18n import translations
from messages.languages import is_rtl

PRIVATE = filters.ChatType.PRIVATE


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Also the answer staff commands give to anyone not allowed to use them."""
    person = await current_person(update, context)
    await context.bot.send_message(
        person.chat_id,
        person.gettext("Sorry, I do not know that command. Send /help to see what I can do."),
    )


async def on_media(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    person = await onboarded_person(update, context)
    if person is None:
        return
    _ = person.gettext
    await context.bot.send_message(
        person.chat_id,
        _("For now I can only read text and button taps. Please type your message in words."),
        reply_markup=main_menu(_),
    )


async def on_location(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A location shared outside any conversation: the shelters near it."""
    await shelters.on_location(update, context)


async def ignore(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Edits of old messages and chatter in groups: answering would only add noise."""


async def group_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """In a group, only point to the private chat: nobody should share needs in public."""
    chat = update.effective_chat
    if chat is None:
        return
    language = hinted_language(update, services_of(context))
    _ = translations(language).gettext
    text = format_text(
        _("Please write to me in a private chat: {link}"),
        is_rtl(language),
        link=f"https://t.me/{context.bot.username}",
    )
    await context.bot.send_message(chat.id, text)


def handlers() -> list[Handler]:
    """In the order they must be tried (after the flows)."""
    return [
        MessageHandler(PRIVATE & filters.COMMAND, unknown_command),
        MessageHandler(PRIVATE & filters.LOCATION, on_location),
        MessageHandler(PRIVATE & ~filters.StatusUpdate.ALL, on_media),
        CallbackQueryHandler(answer_stale_button),
    ]


def early_handlers() -> list[Handler]:
    """Tried before every flow: updates no flow should see."""
    return [
        MessageHandler(filters.UpdateType.EDITED, ignore),
        MessageHandler(~PRIVATE & filters.COMMAND, group_command),
        MessageHandler(~PRIVATE, ignore),
    ]
