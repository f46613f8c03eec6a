"""The main menu and what people type outside a flow.

The menu is a persistent reply keyboard: on a cheap phone a tap sends the label as text,
which works on every client and survives a bad connection better than inline buttons.
Services that later work adds answer "coming soon" for now.
"""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import CommandHandler, ContextTypes, MessageHandler, filters

from bot.flows.feedback import ask_needs, receive
from bot.flows.onboarding import ask_language
from bot.flows.subscriptions import show_subscriptions
from bot.keyboards import MenuItem, main_menu, menu_item_for
from bot.people import Person, current_person
from bot.replies import send_current_step
from bot.services import Handler, services_of
from messages.bidi import format_text
from messages.detection import detect
from messages.i18n import translations
from messages.languages import get_language

PRIVATE = filters.ChatType.PRIVATE


def help_text(person: Person) -> str:
    _ = person.gettext
    return "\n\n".join(
        (
            _(
                "This service shares checked information from the humanitarian response and "
                "passes what you tell us to the people who can help."
            ),
            _(
                "Use the buttons at the bottom of the chat. You can also send:\n"
                "/menu - the main menu\n/language - change the language\n/help - this message"
            ),
            _(
                "Your data: /privacy - how we use it, /mydata - see it, /delete - erase it "
                "(we then keep only counts without names)."
            ),
            _(
                "In danger right now? Call the local emergency number or go to the nearest "
                "humanitarian staff."
            ),
        )
    )


def coming_soon(person: Person) -> str:
    return person.gettext(
        "This service is being prepared and will be available here soon. "
        "For urgent help, go to the nearest humanitarian staff."
    )


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    person = await current_person(update, context)
    markup = main_menu(person.gettext) if person.onboarded else None
    await context.bot.send_message(person.chat_id, help_text(person), reply_markup=markup)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    assert message is not None and message.text is not None
    services = services_of(context)
    enabled = services.settings.enabled_languages
    item = menu_item_for(message.text, enabled)
    if item is None:
        # Words: a feedback item, with the language trail in the same transaction.
        person, suggestion = await receive(
            update, context, text=message.text, detection=detect(message.text, enabled)
        )
        if suggestion is not None:
            await offer_switch(context, person.chat_id, suggestion)
        return
    person = await current_person(update, context)
    if not person.onboarded:
        await send_current_step(context, person)
        return
    await answer_menu_item(context, person, item)


async def offer_switch(context: ContextTypes.DEFAULT_TYPE, chat_id: int, code: str) -> None:
    """Asked in the language they write in, with one button to switch."""
    language = get_language(code)
    assert language is not None
    text = format_text(
        translations(code).gettext(
            "You seem to write in {language}. Shall I answer in {language}?"
        ),
        language.rtl,
        language=language.native_name,
    )
    button = InlineKeyboardButton(f"🌐 {language.native_name}", callback_data=f"lang:{code}")
    await context.bot.send_message(chat_id, text, reply_markup=InlineKeyboardMarkup([[button]]))


async def answer_menu_item(
    context: ContextTypes.DEFAULT_TYPE, person: Person, item: MenuItem | None
) -> None:
    _ = person.gettext
    if item is MenuItem.LANGUAGE:
        await ask_language(context, person)
        return
    if item is MenuItem.FEEDBACK:
        await ask_needs(context, person)
        return
    if item is MenuItem.UPDATES:
        await show_subscriptions(context, person)
        return
    text = help_text(person) if item is MenuItem.HELP else coming_soon(person)
    await context.bot.send_message(person.chat_id, text, reply_markup=main_menu(_))


async def nothing_to_cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/cancel outside any conversation (inside one, the conversation answers it)."""
    person = await current_person(update, context)
    _ = person.gettext
    markup = main_menu(_) if person.onboarded else None
    await context.bot.send_message(
        person.chat_id, _("There is nothing to cancel. Here is the main menu."), reply_markup=markup
    )


def handlers() -> list[Handler]:
    return [
        CommandHandler("help", help_command, filters=PRIVATE),
        CommandHandler("cancel", nothing_to_cancel, filters=PRIVATE),
        MessageHandler(PRIVATE & filters.TEXT & ~filters.COMMAND, on_text),
    ]
