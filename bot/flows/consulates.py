"""Consulate contacts: the person names their country (typed in any language, or picked) and
gets the missions on record for it, or the help line when there are none.

Country buttons ("con:XX") work at any time, from any old message: looking a country up
needs no state. Only "type your country" does, kept for a few minutes.

```mermaid
stateDiagram-v2
    [*] --> ASKED: menu "Consulate contacts"
    ASKED --> ASKED: typed name → "did you mean" buttons / not found
    ASKED --> [*]: country button → missions or help line
    ASKED --> [*]: another menu button, a command, or 10 minutes idle
```
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    ApplicationHandlerStop,
    BaseHandler,
    CallbackQueryHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.config import Settings
from bot.conversations import StoredConversation
from bot.keyboards import MenuItem, MenuTap, main_menu
from bot.people import Person, load_person
from bot.replies import help_line, send_current_step
from bot.services import services_of
from messages.consulates import (
    Mission,
    MissionKind,
    MissionService,
    countries_with_missions,
    missions_for,
)
from messages.content import render
from messages.countries import match_countries
from messages.formatting import country_name, time_ago
from messages.i18n import N_
from messages.misses import Service, record_miss
from messages.places import display_name

PRIVATE = filters.ChatType.PRIVATE
ASKED = "asked"
END = ConversationHandler.END
MAX_SHOWN = 5  # a Telegram message holds 4096 characters; five missions fit with room
KIND_LABELS = {
    MissionKind.EMBASSY: N_("Embassy"),
    MissionKind.CONSULATE: N_("Consulate"),
    MissionKind.HONORARY_CONSULATE: N_("Honorary consulate"),
}
Handler = BaseHandler[Update, ContextTypes.DEFAULT_TYPE, object]


def missions_text(
    person: Person, code: str, missions: Sequence[Mission], settings: Settings, now: datetime
) -> str:
    """Every contact detail on record, in the person's language; the help line if none."""
    _ = person.gettext
    country = country_name(code, person.language)
    if not missions:
        return "\n\n".join(
            (
                person.format(
                    _("We have no embassy or consulate of {country} on record."), country=country
                ),
                help_line(person, settings),
            )
        )
    blocks = [person.format(_("Embassies and consulates of {country}:"), country=country)]
    for mission in missions[:MAX_SHOWN]:
        blocks.append(_mission_block(person, mission, settings, now))
    return "\n\n".join(blocks)


def _mission_block(person: Person, mission: Mission, settings: Settings, now: datetime) -> str:
    _ = person.gettext
    kind = _(KIND_LABELS[MissionKind(mission.kind)])
    lines = [f"🏛 {display_name(mission.names, person.language)} · {kind}"]
    details = (
        ("📍", mission.address or mission.city),
        ("📞", mission.phone),
        (
            "🚨",
            person.format(_("Emergency: {phone}"), phone=mission.emergency_phone)
            if mission.emergency_phone
            else None,
        ),
        ("✉", mission.email),
        ("🕘", mission.hours),
    )
    lines += [f"{icon} {person.format('{value}', value=value)}" for icon, value in details if value]
    services = [service for service in MissionService if service.value in mission.services]
    if services:
        lines.append("🛂 " + ", ".join(_(service.label) for service in services))
    if any(note.strip() for note in mission.notes.values()):
        lines.append(render(mission.notes, person.language, settings.fallback_languages))
    lines.append(
        person.format(_("Updated {when}"), when=time_ago(mission.updated_at, now, person.language))
    )
    return "\n".join(lines)


def country_keyboard(person: Person, codes: Sequence[str]) -> InlineKeyboardMarkup | None:
    """A button per country with a mission on record; None when there are none (Telegram
    refuses an empty keyboard)."""
    if not codes:
        return None
    named = sorted((country_name(code, person.language), code) for code in codes)
    buttons = [InlineKeyboardButton(name, callback_data=f"con:{code}") for name, code in named]
    return InlineKeyboardMarkup([buttons[i : i + 2] for i in range(0, len(buttons), 2)])


async def ask_country(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
    services = services_of(context)
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        codes = await countries_with_missions(session) if person.onboarded else []
    if not person.onboarded:
        await send_current_step(context, person)
        return END
    _ = person.gettext
    await context.bot.send_message(
        person.chat_id,
        _("Which country's embassy or consulate? Type the country in any language, or pick it."),
        reply_markup=country_keyboard(person, codes),
    )
    return ASKED


async def on_country_typed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
    message = update.effective_message
    assert message is not None and message.text is not None
    services = services_of(context)
    typed = " ".join(message.text.split())[:80]
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        matches = match_countries(
            typed, person.language, languages=services.settings.enabled_languages, limit=4
        )
        codes = [] if matches else await countries_with_missions(session)
    _ = person.gettext
    if not matches:
        text = person.format(
            _(
                "I could not find a country called “{text}”. Check the spelling, "
                "try another language, or pick it below."
            ),
            text=typed[:60],
        )
        await context.bot.send_message(
            person.chat_id, text, reply_markup=country_keyboard(person, codes)
        )
        return ASKED
    buttons = [[InlineKeyboardButton(m.name, callback_data=f"con:{m.code}")] for m in matches]
    await context.bot.send_message(
        person.chat_id, _("Did you mean:"), reply_markup=InlineKeyboardMarkup(buttons)
    )
    return ASKED


async def on_country_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
    query = update.callback_query
    assert query is not None and query.data is not None
    code = query.data.removeprefix("con:")
    services = services_of(context)
    now = services.clock()
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        missions = await missions_for(session, code) if person.onboarded else []
        if person.onboarded and person.contact is not None and not missions:
            # Evidence for the "priority sector unmet" flag: the country and area, not who.
            area = person.contact.area_code
            await record_miss(session, Service.CONSULATE, now, key=code, area_code=area)
    await query.answer()
    if not person.onboarded:
        await send_current_step(context, person)
        return END
    text = missions_text(person, code, missions, services.settings, now)
    await context.bot.send_message(person.chat_id, text, reply_markup=main_menu(person.gettext))
    return END


async def leave(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
    """Anything else ends the question; the other handlers then answer it as usual."""
    return END


def early_handlers(settings: Settings) -> list[Handler]:
    """Run before every other handler group: the question and the typed answer stop there
    (ApplicationHandlerStop); anything else ends the question and goes on to the others."""
    words = PRIVATE & filters.TEXT & ~filters.COMMAND & ~MenuTap(settings.enabled_languages)
    return [
        StoredConversation(
            entry_points=[
                MessageHandler(
                    PRIVATE & MenuTap(settings.enabled_languages, MenuItem.CONSULATE),
                    stopping(ask_country),
                )
            ],
            states={ASKED: [MessageHandler(words, stopping(on_country_typed))]},
            fallbacks=[TypeHandler(Update, leave)],
            conversation_timeout=600,
            allow_reentry=True,
            name="consulate_question",
        )
    ]


def handlers() -> list[Handler]:
    """Country buttons work from any message, at any time."""
    return [CallbackQueryHandler(on_country_button, pattern=r"^con:[A-Z]{2}$")]


def stopping(
    callback: Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, object]],
) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, object]]:
    async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
        raise ApplicationHandlerStop(await callback(update, context))

    return handle
