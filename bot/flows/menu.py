"""The main menu and what people type outside a flow.

The menu is a persistent reply keyboard: on a cheap phone a tap sends the label as text,
which works on every client and survives a bad connection better than inline buttons.
Services that later work adds answer "coming soon" for now.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import CommandHandler, ContextTypes, MessageHandler, filters

from bot.flows.onboarding import ask_language
from bot.keyboards import MenuItem, main_menu, menu_item_for
from bot.people import Person, current_person
from bot.replies import onboarded_person
from bot.services import Handler, services_of

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
    person = await onboarded_person(update, context)
    if person is None:
        return
    languages = services_of(context).settings.enabled_languages
    item = menu_item_for(message.text, languages)
    await answer_menu_item(context, person, item)


async def answer_menu_item(
    context: ContextTypes.DEFAULT_TYPE, person: Person, item: MenuItem | None
) -> None:
    _ = person.gettext
    if item is MenuItem.LANGUAGE:
        await ask_language(context, person)
        return
    if item is MenuItem.HELP:
        text = help_text(person)
    elif item is None:
        # Free text: the feedback intake will keep it; until then, be honest about it.
        text = _(
            "Thank you for your message. Soon you will be able to tell us what you need "
            "here. For now, please choose from the menu."
        )
    else:
        text = coming_soon(person)
    await context.bot.send_message(person.chat_id, text, reply_markup=main_menu(_))


def handlers() -> list[Handler]:
    return [
        CommandHandler("help", help_command, filters=PRIVATE),
        MessageHandler(PRIVATE & filters.TEXT & ~filters.COMMAND, on_text),
    ]
