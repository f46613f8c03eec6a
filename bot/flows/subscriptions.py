"""Subscriptions: what a person receives (topics, areas), and the one-tap stop on broadcasts.

One message, edited in place: the topics with toggles, an area picker, Done. Every tap
is saved at once, so nothing is lost if the person walks away; the screen keeps no state
but the page number in its buttons. Under every broadcast, "Stop" ends its topic and turns
into "Subscribe again", which undoes it.

```mermaid
stateDiagram-v2
    [*] --> Topics: menu "Updates" or /subscriptions
    Topics --> Topics: tap a topic (on/off, saved)
    Topics --> Areas: "Areas" (at least one topic on)
    Areas --> Areas: Everywhere / an area (saved), page ◀ ▶
    Areas --> Topics: Back
    Topics --> [*]: Done (summary, no buttons)
    state Broadcast {
        [*] --> Subscribed
        Subscribed --> Stopped: "Stop: topic" (every area)
        Stopped --> Subscribed: "Subscribe again"
    }
    note right of Topics
        A button from an old screen or another version: "no longer active",
        and the screen as it is now. Not onboarded: the onboarding step.
    end note
```
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bot.people import Person, current_person, load_person
from bot.replies import edit_quietly, send_current_step
from bot.services import Handler, services_of
from messages.areas import area_names
from messages.i18n import N_
from messages.subscriptions import (
    Areas,
    Subscriptions,
    area_choice,
    set_areas,
    subscribe,
    subscriptions_of,
    toggle_topic,
    toggled_area,
    unsubscribe_topic,
)
from messages.topics import TOPICS, Topic, get_topic

PRIVATE = filters.ChatType.PRIVATE
PAGE_SIZE = 8
# Telegram takes 64 bytes of callback data: "subs:x:999:" leaves room for a 50-byte code.
MAX_CODE_BYTES = 50

# subs:t:<topic> toggle a topic; subs:a:<page> the area picker; subs:e:<page> everywhere;
# subs:x:<page>:<code> toggle an area; subs:v back to the topics; subs:done close.
SUBS_DATA = re.compile(
    r"^subs:(?:t:(?P<topic>[a-z_]{1,20})|a:(?P<page>\d{1,3})|e:(?P<epage>\d{1,3})"
    rf"|x:(?P<xpage>\d{{1,3}}):(?P<code>.{{1,{MAX_CODE_BYTES}}})|(?P<view>v)|(?P<done>done))$"
)
STOP_DATA = re.compile(r"^(?P<action>unsub|resub):(?P<topic>[a-z_]{1,20})$")

HEADING = N_("Your updates:")
NOTHING = N_("You receive no updates for now.")
EVERYWHERE = N_("Everywhere")
TAP_TOPIC = N_("Tap a topic to turn it on or off.")
AREAS = N_("Areas")
DONE = N_("Done")
BACK = N_("Back")
PICK_AREAS = N_("Choose the areas you want news about:")
TOPIC_FIRST = N_("Turn on a topic first.")
CHANGE_LATER = N_("To change this, send /subscriptions.")
STOP = N_("Stop: {topic}")
STOPPED = N_("You will no longer get: {topic}. To subscribe again, send /subscriptions.")
AGAIN = N_("Subscribe again")
RESUMED = N_("You will get {topic} again.")
STALE = N_("This button is no longer active.")

Gettext = Callable[[str], str]


@dataclass(frozen=True)
class Screen:
    text: str
    markup: InlineKeyboardMarkup | None


def topic_text(gettext: Gettext, topic: Topic) -> str:
    return f"{topic.icon} {gettext(topic.label)}"


def stop_markup(gettext: Gettext, topic_key: str) -> InlineKeyboardMarkup:
    """The button under every broadcast: stop its topic in one tap."""
    topic = get_topic(topic_key)
    label = gettext(topic.label) if topic else topic_key
    text = "🔕 " + gettext(STOP).format(topic=label)
    return InlineKeyboardMarkup([[InlineKeyboardButton(text, callback_data=f"unsub:{topic_key}")]])


def resubscribe_markup(gettext: Gettext, topic_key: str) -> InlineKeyboardMarkup:
    text = "🔔 " + gettext(AGAIN)
    return InlineKeyboardMarkup([[InlineKeyboardButton(text, callback_data=f"resub:{topic_key}")]])


# --- the topics screen ----------------------------------------------------------------


def area_list(person: Person, areas: Areas, names: Mapping[str, str]) -> str:
    if areas is None:
        return person.gettext(EVERYWHERE)
    shown = sorted((names.get(code, code) for code in areas), key=str.casefold)
    return ", ".join(person.format("{name}", name=name) for name in shown)


def summary(person: Person, subscriptions: Subscriptions, names: Mapping[str, str]) -> str:
    _ = person.gettext
    if not subscriptions:
        return _(NOTHING)
    lines = [_(HEADING)]
    for topic in TOPICS:
        if topic.key in subscriptions:
            areas = area_list(person, subscriptions[topic.key], names)
            lines.append(f"{topic_text(_, topic)}: {areas}")
    return "\n".join(lines)


def topics_screen(person: Person, subscriptions: Subscriptions, names: Mapping[str, str]) -> Screen:
    _ = person.gettext
    rows = [
        [
            InlineKeyboardButton(
                ("✅ " if topic.key in subscriptions else "◻️ ") + topic_text(_, topic),
                callback_data=f"subs:t:{topic.key}",
            )
        ]
        for topic in TOPICS
    ]
    if subscriptions:
        rows.append([InlineKeyboardButton("📍 " + _(AREAS), callback_data="subs:a:0")])
    rows.append([InlineKeyboardButton("✔️ " + _(DONE), callback_data="subs:done")])
    text = summary(person, subscriptions, names) + "\n\n" + _(TAP_TOPIC)
    return Screen(text, InlineKeyboardMarkup(rows))


def done_screen(person: Person, subscriptions: Subscriptions, names: Mapping[str, str]) -> Screen:
    text = summary(person, subscriptions, names) + "\n\n" + person.gettext(CHANGE_LATER)
    return Screen(text, None)


# --- the area picker ------------------------------------------------------------------


def ordered_areas(person: Person, names: Mapping[str, str]) -> list[tuple[str, str]]:
    """(code, name): the person's own area first, then the others by name. Codes too long
    for a button's data are left out (adm1 codes are short in practice)."""
    usable = {code: name for code, name in names.items() if len(code.encode()) <= MAX_CODE_BYTES}
    own = person.contact.area_code if person.contact else None
    first = [(own, usable[own])] if own in usable else []
    rest = sorted(
        ((code, name) for code, name in usable.items() if code != own),
        key=lambda pair: (pair[1].casefold(), pair[0]),
    )
    return first + rest


def pages(count: int) -> int:
    return max(1, -(-count // PAGE_SIZE))


def areas_screen(person: Person, chosen: Areas, names: Mapping[str, str], page: int) -> Screen:
    _ = person.gettext
    areas = ordered_areas(person, names)
    page = min(max(page, 0), pages(len(areas)) - 1)
    own = person.contact.area_code if person.contact else None
    mark = "✅ " if chosen is None else "◻️ "
    rows = [[InlineKeyboardButton(f"{mark}🌍 {_(EVERYWHERE)}", callback_data=f"subs:e:{page}")]]
    for code, name in areas[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]:
        mark = "✅ " if chosen is not None and code in chosen else "◻️ "
        pin = "📍 " if code == own else ""
        rows.append(
            [InlineKeyboardButton(mark + pin + name, callback_data=f"subs:x:{page}:{code}")]
        )
    nav = []
    if page > 0:
        nav.append(InlineKeyboardButton("◀️", callback_data=f"subs:a:{page - 1}"))
    if page + 1 < pages(len(areas)):
        nav.append(InlineKeyboardButton("▶️", callback_data=f"subs:a:{page + 1}"))
    if nav:
        rows.append(nav)
    rows.append([InlineKeyboardButton("⬅ " + _(BACK), callback_data="subs:v")])
    return Screen(_(PICK_AREAS), InlineKeyboardMarkup(rows))


# --- handlers -------------------------------------------------------------------------


async def show_subscriptions(context: ContextTypes.DEFAULT_TYPE, person: Person) -> None:
    """The topics screen as a new message (menu "Updates", /subscriptions)."""
    if not person.onboarded or person.contact is None:
        await send_current_step(context, person)
        return
    async with services_of(context).db.transaction() as session:
        subscriptions = await subscriptions_of(session, person.contact.id)
        names = await area_names(session)
    screen = topics_screen(person, subscriptions, names)
    await context.bot.send_message(person.chat_id, screen.text, reply_markup=screen.markup)


async def subscriptions_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await show_subscriptions(context, await current_person(update, context))


@dataclass(frozen=True)
class Outcome:
    screen: Screen
    notice: str | None = None  # the callback answer
    alert: bool = False


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    services = services_of(context)
    outcome: Outcome | None = None
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        if person.onboarded and person.contact is not None:
            outcome = await answer_button(session, person, person.contact.id, query.data)
    if outcome is None:
        await query.answer()
        await send_current_step(context, person)
        return
    await query.answer(outcome.notice, show_alert=outcome.alert)
    await edit_quietly(query, outcome.screen.text, outcome.screen.markup)


async def answer_button(
    session: AsyncSession, person: Person, contact_id: int, data: str
) -> Outcome:
    """Do what a button asks; a button whose data no longer makes sense (an old screen,
    another version, a topic or area gone) gets "no longer active" and the screen as it is."""
    names = await area_names(session)
    match = SUBS_DATA.match(data)
    outcome = await apply(session, person, contact_id, match, names) if match else None
    if outcome is None:
        subscriptions = await subscriptions_of(session, contact_id)
        outcome = Outcome(topics_screen(person, subscriptions, names), person.gettext(STALE))
    return outcome


async def apply(
    session: AsyncSession,
    person: Person,
    contact_id: int,
    match: re.Match[str],
    names: Mapping[str, str],
) -> Outcome | None:
    topic = match.group("topic")
    if topic is not None:
        if get_topic(topic) is None:
            return None
        await toggle_topic(session, contact_id, topic)
    subscriptions = await subscriptions_of(session, contact_id)
    if topic is not None or match.group("view") is not None:
        return Outcome(topics_screen(person, subscriptions, names))
    if match.group("done") is not None:
        return Outcome(done_screen(person, subscriptions, names))
    if not subscriptions:
        # Areas belong to topics: with none on there is nothing to limit.
        screen = topics_screen(person, subscriptions, names)
        return Outcome(screen, person.gettext(TOPIC_FIRST), alert=True)
    chosen = area_choice(subscriptions)
    page = int(match.group("page") or match.group("epage") or match.group("xpage"))
    if match.group("page") is None:
        code = match.group("code")  # None: "Everywhere"
        if code is not None and code not in names:
            return None
        chosen = toggled_area(chosen, code)
        await set_areas(session, contact_id, chosen)
    return Outcome(areas_screen(person, chosen, names, page))


async def on_stop_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """ "Stop" under a broadcast, and "Subscribe again" that replaces it."""
    query = update.callback_query
    assert query is not None and query.data is not None
    match = STOP_DATA.match(query.data)
    topic = get_topic(match.group("topic")) if match else None
    services = services_of(context)
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        contact = person.contact
        consented = contact is not None and contact.has_consented
        if consented and contact is not None and match is not None and topic is not None:
            if match.group("action") == "unsub":
                await unsubscribe_topic(session, contact.id, topic.key)
            else:
                current = await subscriptions_of(session, contact.id)
                await subscribe(session, contact.id, topic.key, area_choice(current))
    _ = person.gettext
    if not consented:
        await query.answer()
        await send_current_step(context, person)
        return
    if match is None or topic is None:
        await query.answer(_(STALE))
        await edit_quietly(query, None, None)
        return
    label = _(topic.label)
    if match.group("action") == "unsub":
        await query.answer(person.format(_(STOPPED), topic=label), show_alert=True)
        await edit_quietly(query, None, resubscribe_markup(_, topic.key))
    else:
        await query.answer(person.format(_(RESUMED), topic=label))
        await edit_quietly(query, None, stop_markup(_, topic.key))


def handlers() -> list[Handler]:
    return [
        CommandHandler("subscriptions", subscriptions_command, filters=PRIVATE),
        CallbackQueryHandler(on_button, pattern=r"^subs:"),
        CallbackQueryHandler(on_stop_button, pattern=r"^(unsub|resub):"),
    ]
