"""Onboarding: /start → consent notice → language choice → main menu.

The step is derived from the stored contact, not kept in memory, so a restart at any
point resumes where the person was, and a person who comes back after a week lands on
the menu in their language.

```mermaid
stateDiagram-v2
    [*] --> Summary: /start or any message (no consent stored)
    Summary --> Statement: "Read more"
    Statement --> FullNotice: "Full notice"
    Summary --> Language: "I agree" (contact created, consent version + time, default topics)
    Statement --> Language: "I agree"
    FullNotice --> Language: "I agree"
    Summary --> Declined: "No, thanks" (nothing stored)
    Statement --> Declined: "No, thanks"
    FullNotice --> Declined: "No, thanks"
    Declined --> Summary: /start or any message
    Language --> Menu: a language button (choice stored)
    Menu --> Language: "Language" or /language
    Menu --> Menu: /start, /menu
    Menu --> Summary: consent withdrawn (/privacy) or data deleted (/delete)
```

The three levels of the notice are the summary and the simplified statement
(bot/replies.py) and the full notice (bot/flows/privacy.py); each is an edit of the same
message, so nothing is stored while a person reads.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bot.flows.privacy import notice_for
from bot.keyboards import consent_keyboard, language_keyboard
from bot.people import Person, current_person, load_person
from bot.replies import (
    answer_stale_button,
    consent_statement,
    consent_summary,
    edit_quietly,
    send_current_step,
)
from bot.services import Handler, services_of
from messages.contacts import choose_language, record_consent
from messages.languages import get_language
from messages.subscriptions import subscribe_defaults

PRIVATE = filters.ChatType.PRIVATE


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = services_of(context)
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        if person.contact is not None:
            person.contact.unreachable_at = None  # they wrote: they can hear us again
    await send_current_step(context, person)


async def show_menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    person = await current_person(update, context)
    await send_current_step(context, person)


async def ask_language(context: ContextTypes.DEFAULT_TYPE, person: Person) -> None:
    settings = services_of(context).settings
    contact = person.contact
    current = contact.language if contact and contact.language_chosen else None
    await context.bot.send_message(
        person.chat_id,
        person.gettext("Choose your language:"),
        reply_markup=language_keyboard(settings.enabled_languages, current),
    )


async def language_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    person = await current_person(update, context)
    if person.contact is None or not person.contact.has_consented:
        await send_current_step(context, person)
    else:
        await ask_language(context, person)


async def on_consent(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    choice = query.data.removeprefix("consent:")
    services = services_of(context)
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        if choice == "accept" and not (person.contact and person.contact.has_consented):
            # A new contact, or one who withdrew (their subscriptions went with it), starts
            # with the default topics; a renewed consent keeps the choices made before.
            fresh = person.contact is None or person.contact.consent_withdrawn_at is not None
            person.contact = await record_consent(
                session, person.pseudonym, person.chat_id, person.language, services.clock()
            )
            if fresh:
                await subscribe_defaults(session, person.contact.id)
    _ = person.gettext
    await query.answer()
    if choice == "more":
        await edit_quietly(query, consent_statement(person), consent_keyboard(_, "statement"))
    elif choice == "full":
        await edit_quietly(query, notice_for(context, person), consent_keyboard(_, "full"))
    elif choice == "decline":
        await edit_quietly(query, consent_summary(person), None)
        await context.bot.send_message(
            person.chat_id,
            _(
                "Understood. We have not kept anything about you. "
                "If you change your mind, send /start."
            ),
        )
    else:
        await edit_quietly(query, None, None)
        await send_current_step(context, person)


async def on_language(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    code = query.data.removeprefix("lang:")
    services = services_of(context)
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        valid = code in services.settings.enabled_languages
        if valid and person.contact is not None and person.contact.has_consented:
            choose_language(person.contact, code)
            person.language = code
        else:
            valid = False
    if not valid:
        await answer_stale_button(update, context)
        return
    await query.answer()
    language = get_language(code)
    await edit_quietly(query, f"✓ {language.native_name if language else code}", None)
    _ = person.gettext
    await send_current_step(
        context, person, greeting=_("Thank you. Here is the main menu. Choose what you need:")
    )


def handlers() -> list[Handler]:
    return [
        CommandHandler("start", start, filters=PRIVATE),
        CommandHandler("menu", show_menu, filters=PRIVATE),
        CommandHandler("language", language_command, filters=PRIVATE),
        CallbackQueryHandler(on_consent, pattern=r"^consent:(accept|more|full|decline)$"),
        CallbackQueryHandler(on_language, pattern=r"^lang:[A-Za-z-]{2,8}$"),
    ]
