"""Shelters near me: the person shares their location, or types the name of their town or
area, and gets the nearest open shelters, each as a map pin that opens in their map app.

What the person gets, sized for a cheap phone on a bad connection (at most six messages):

- one text: the five nearest open shelters, numbered, nearest first, each with its distance,
  "open", places free, services, contact, a note in the person's language (or a fallback
  language, led by a short note saying so) and "updated 3 hours ago", flagged as possibly
  out of date beyond SHELTER_MAX_AGE_HOURS; then the full shelters nearer than the last open
  one listed (at most three), marked as full and without a pin: a person must not walk to a
  shelter that cannot take them, yet should see it is there and why it is not offered;
- then one venue per open shelter, numbered as in the text, whose title and address carry
  the essentials (name; open, places free, distance, address), so the pins alone suffice;
  the last one restores the main menu keyboard.

Closed shelters are never shown. Nothing within SHELTER_RADIUS_KM: we say so and give the
help line. Typed names are matched in the person's language and script against the
gazetteer (`messages.places.match_places`); nothing leaves the deployment. An area with no
point on record (an administrative area without a centroid) gets the open shelters recorded
in that area, with no distances; a town with no point gets those of its district, else of its
province; with no area either, the person is asked to share their location.

Place buttons ("shp:<place id>") work at any time, from any old message: they need no
state. A location shared outside any conversation also gets the shelters near it
(`on_location`, wired from bot/flows/fallbacks.py). Only "type your town" needs state, kept
for ten minutes.

Every search, in its own transaction, keeps the person's adm1 area on their contact (code
and name only, never the location or the typed text), so that what they tell us next is
counted there, and counts a shelter miss when no listed open shelter has room
(messages/areas.py, messages/misses.py).

```mermaid
stateDiagram-v2
    [*] --> ASKED: menu "Find a shelter" (location button + "Main menu" keyboard)
    ASKED --> [*]: location shared → shelters near it, or none within the radius + help line
    ASKED --> [*]: typed name with one clear match → shelters near it
    ASKED --> ASKED: typed name with several matches → place buttons
    ASKED --> ASKED: typed name with no match, impossible location, sticker or voice → ask again
    ASKED --> [*]: place button → shelters near it (any time, from any message)
    ASKED --> [*]: "Main menu" or /cancel → main menu
    ASKED --> [*]: another menu button, a command, or 10 minutes idle
```

Wiring (bot/app.py): `early_handlers` in a group of their own before the consulates' group,
`handlers` first in the main group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.config import Settings
from bot.conversations import StoredConversation
from bot.flows.consulates import stopping
from bot.keyboards import Gettext, MenuItem, MenuTap, main_menu
from bot.people import Person, load_person
from bot.replies import help_line, onboarded_person, send_current_step
from bot.services import services_of
from messages.areas import Area, area_near, area_of_place, remember_area
from messages.contacts import Contact
from messages.content import render
from messages.formatting import distance, number, time_ago
from messages.geo import valid_coordinates
from messages.i18n import N_, translations
from messages.misses import Service, record_miss
from messages.places import Place, PlaceKind, PlaceMatch, display_name, match_places
from messages.shelters import (
    Shelter,
    ShelterStatus,
    is_stale,
    nearest_shelters,
    shelters_in_area,
)

PRIVATE = filters.ChatType.PRIVATE
MESSAGE = filters.UpdateType.MESSAGE  # not edits: an edited old message must not search
ASKED = "asked"
END = ConversationHandler.END
SHOWN = 5  # open shelters listed, each with a pin
MAX_FULL = 3  # full shelters named (no pin) when nearer than the last open one
SEARCH_LIMIT = 30  # enough rows to find five open ones among full ones
NOTE_CHARS = 280  # a shelter's note is cut here: five of them must fit one message
NAME_CHARS = 100
MAX_TEXT = 4096  # Telegram's limit for one message
CLEAR_LEAD = 0.1  # a typed name this far ahead of the next is used without asking
PICK = r"^shp:\d{1,10}$"
BACK_LABEL = N_("Main menu")
STATUS_LABELS = {ShelterStatus.OPEN: N_("Open"), ShelterStatus.FULL: N_("Full")}
Handler = BaseHandler[Update, ContextTypes.DEFAULT_TYPE, object]


# --- finding shelters -------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    shelter: Shelter
    distance_m: float | None  # None: found by area, no point to measure from


@dataclass(frozen=True)
class Found:
    """The answer to one search: open shelters (each gets a pin) and full ones to name."""

    open: list[Listed]
    full: list[Listed]


async def shelters_near(
    session: AsyncSession, latitude: float, longitude: float, within_km: float
) -> Found:
    """The SHOWN nearest open shelters, and the full ones nearer than the last of them."""
    nearby = await nearest_shelters(
        session, latitude, longitude, limit=SEARCH_LIMIT, within_km=within_km
    )
    opened = [n for n in nearby if n.shelter.status is ShelterStatus.OPEN][:SHOWN]
    cutoff = opened[-1].distance_m if len(opened) == SHOWN else math.inf
    full = [n for n in nearby if n.shelter.status is ShelterStatus.FULL]
    full = [n for n in full if n.distance_m <= cutoff][:MAX_FULL]
    return Found(
        [Listed(n.shelter, n.distance_m) for n in opened],
        [Listed(n.shelter, n.distance_m) for n in full],
    )


def area_of(place: Place) -> tuple[str, str] | None:
    """("adm1" or "adm2", code) of the area to search for a place with no point, if any."""
    if place.kind is PlaceKind.ADM1:
        return "adm1", place.adm1_code or place.external_id
    if place.kind is PlaceKind.ADM2:
        return "adm2", place.adm2_code or place.external_id
    if place.adm2_code:
        return "adm2", place.adm2_code
    if place.adm1_code:
        return "adm1", place.adm1_code
    return None


async def found_in_area(session: AsyncSession, level: str, code: str) -> Found:
    """Shelters recorded in an administrative area (no distance to sort by)."""
    shelters = await shelters_in_area(session, level, code)
    return Found(
        [Listed(s, None) for s in shelters if s.status is ShelterStatus.OPEN][:SHOWN],
        [Listed(s, None) for s in shelters if s.status is ShelterStatus.FULL][:MAX_FULL],
    )


def has_free_places(found: Found) -> bool:
    """An open shelter listed that may take the person: room left, or numbers unknown."""
    return any(listed.shelter.places_free != 0 for listed in found.open)


async def note_search(
    session: AsyncSession, person: Person, area: Area | None, found: Found, now: datetime
) -> None:
    """In the search's transaction: the person's area for what they tell us next (code and
    name only, never where they are), and a shelter miss when nothing listed has room."""
    contact = await session.get(Contact, person.contact.id) if person.contact else None
    if contact is not None:
        remember_area(contact, area)
    if not has_free_places(found):
        await record_miss(session, Service.SHELTER, now, area_code=area.code if area else None)


# --- what the person sees ---------------------------------------------------------------


@cache
def back_labels(languages: tuple[str, ...]) -> frozenset[str]:
    """The "Main menu" button in every enabled language: a keyboard sent before a language
    change still works after it."""
    return frozenset(
        _normalize(back_label(translations(code).gettext)) for code in ("en", *languages)
    )


def back_label(gettext: Gettext) -> str:
    return "⬅ " + gettext(BACK_LABEL)


def _normalize(text: str) -> str:
    return " ".join(text.split()).casefold()


def ask_keyboard(person: Person) -> ReplyKeyboardMarkup:
    _ = person.gettext
    return ReplyKeyboardMarkup(
        [
            [KeyboardButton("📍 " + _("Share my location"), request_location=True)],
            [KeyboardButton(back_label(_))],
        ],
        resize_keyboard=True,
    )


def question(person: Person) -> str:
    return person.gettext(
        "Where are you? Share your location with the button below, or type the name of "
        "your town or area."
    )


def results_text(
    person: Person,
    found: Found,
    *,
    where: str | None,
    area: bool,
    settings: Settings,
    now: datetime,
) -> str:
    """The summary. `where`: the place searched around (None: the person's location);
    `area`: the shelters were found by administrative area, not by distance."""
    _ = person.gettext
    radius = distance(settings.services.shelter_radius_km * 1000, person.language)
    if not found.open and not found.full:
        if area:
            nothing = person.format(_("We have no open shelter on record in {area}."), area=where)
        elif where is None:
            nothing = person.format(
                _("There is no open shelter within {distance} of your location."),
                distance=radius,
            )
        else:
            nothing = person.format(
                _("There is no open shelter within {distance} of {place}."),
                distance=radius,
                place=where,
            )
        return "\n\n".join((nothing, help_line(person, settings)))
    if area:
        header = person.format(_("Shelters in {area}:"), area=where)
    elif where is None:
        header = _("Shelters near you, nearest first:")
    else:
        header = person.format(_("Shelters near {place}, nearest first:"), place=where)
    full = [_full_line(person, listed, settings) for listed in found.full]
    if found.open:
        footer = [_("Each shelter follows as a map pin: tap it for directions.")]
    else:
        footer = [
            _("None of these shelters has free places right now."),
            help_line(person, settings),
        ]
    # Long addresses, hours and notes on every shelter could pass Telegram's limit: they are
    # then left out (the pins still carry the addresses), and as a last resort the text cut.
    for compact in (False, True):
        blocks = [
            _open_block(person, index, listed, settings, now, compact=compact)
            for index, listed in enumerate(found.open, start=1)
        ]
        text = "\n\n".join([header, *blocks, *(["\n".join(full)] if full else []), *footer])
        if len(text) <= MAX_TEXT:
            break
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _name(person: Person, shelter: Shelter, settings: Settings) -> str:
    name = shelter.name(person.language, settings.fallback_languages)
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


def _headline(person: Person, name: str, listed: Listed) -> str:
    if listed.distance_m is None:
        return name
    return person.format(
        "{name} · {distance}", name=name, distance=distance(listed.distance_m, person.language)
    )


def _availability(person: Person, shelter: Shelter) -> str:
    _ = person.gettext
    status = _(STATUS_LABELS[ShelterStatus.OPEN])
    free = shelter.places_free
    if free is None:
        return status
    places = person.format(
        person.ngettext("{count} place free", "{count} places free", free),
        count=number(free, person.language),
    )
    return f"{status} · {places}"


def _open_block(
    person: Person,
    index: int,
    listed: Listed,
    settings: Settings,
    now: datetime,
    *,
    compact: bool = False,
) -> str:
    _ = person.gettext
    shelter = listed.shelter
    name = _name(person, shelter, settings)
    lines = [
        person.format(
            "{index}. 🏠 {headline}", index=index, headline=_headline(person, name, listed)
        ),
        "✅ " + _availability(person, shelter),
    ]
    services = shelter.service_list()
    if services:
        lines.append(", ".join(f"{service.icon} {_(service.label)}" for service in services))
    for icon, value in (
        ("📍", None if compact else shelter.address),
        ("📞", shelter.contact_phone),
        ("🕘", None if compact else shelter.opening_hours),
    ):
        if value:
            lines.append(f"{icon} {person.format('{value}', value=value)}")
    if not compact and any(note.strip() for note in (shelter.notes or {}).values()):
        note = render(shelter.notes, person.language, settings.fallback_languages)
        lines.append(note if len(note) <= NOTE_CHARS else note[: NOTE_CHARS - 1] + "…")
    when = time_ago(min(shelter.updated_at, now), now, person.language)
    if is_stale(shelter, now, settings.services.shelter_max_age):
        lines.append("⚠️ " + person.format(_("Updated {when}: this may be out of date."), when=when))
    else:
        lines.append("🔄 " + person.format(_("Updated {when}"), when=when))
    return "\n".join(lines)


def _full_line(person: Person, listed: Listed, settings: Settings) -> str:
    name = _name(person, listed.shelter, settings)
    return "⛔ " + person.format(
        "{headline} · {status}",
        headline=_headline(person, name, listed),
        status=person.gettext(STATUS_LABELS[ShelterStatus.FULL]),
    )


def venue_address(person: Person, listed: Listed) -> str:
    """What a pin says under its title: open, places free, distance, the street address."""
    parts = [_availability(person, listed.shelter)]
    if listed.distance_m is not None:
        parts.append(distance(listed.distance_m, person.language))
    if listed.shelter.address:
        parts.append(listed.shelter.address)
    return " · ".join(parts)


async def send_results(
    context: ContextTypes.DEFAULT_TYPE,
    person: Person,
    found: Found,
    *,
    where: str | None,
    area: bool = False,
) -> None:
    services = services_of(context)
    settings = services.settings
    text = results_text(
        person, found, where=where, area=area, settings=settings, now=services.clock()
    )
    menu = main_menu(person.gettext)
    await context.bot.send_message(person.chat_id, text, reply_markup=None if found.open else menu)
    for index, listed in enumerate(found.open, start=1):
        shelter = listed.shelter
        await context.bot.send_venue(
            person.chat_id,
            latitude=shelter.latitude,
            longitude=shelter.longitude,
            title=f"{index}. {_name(person, shelter, settings)}",
            address=venue_address(person, listed),
            reply_markup=menu if index == len(found.open) else None,
        )


async def ask_again(context: ContextTypes.DEFAULT_TYPE, person: Person, note: str) -> object:
    await context.bot.send_message(
        person.chat_id, f"{note}\n\n{question(person)}", reply_markup=ask_keyboard(person)
    )
    return ASKED


# --- handlers ---------------------------------------------------------------------------


async def ask_place(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
    person = await onboarded_person(update, context)
    if person is None:
        return END
    await context.bot.send_message(
        person.chat_id, question(person), reply_markup=ask_keyboard(person)
    )
    return ASKED


async def answer_location(
    context: ContextTypes.DEFAULT_TYPE, person: Person, message: Message
) -> object:
    location = message.location
    assert location is not None
    latitude, longitude = location.latitude, location.longitude
    if not valid_coordinates(latitude, longitude):
        note = person.gettext("That location cannot be right. Please share it again.")
        return await ask_again(context, person, note)
    services = services_of(context)
    radius_km = services.settings.services.shelter_radius_km
    async with services.db.transaction() as session:
        found = await shelters_near(session, latitude, longitude, radius_km)
        area = await area_near(session, latitude, longitude, within_km=radius_km)
        await note_search(session, person, area, found, services.clock())
    await send_results(context, person, found, where=None)
    return END


async def on_location(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
    """A location shared while asked, or at any time outside other conversations."""
    message = update.effective_message
    assert message is not None
    person = await onboarded_person(update, context)
    if person is None:
        return END
    return await answer_location(context, person, message)


async def on_place_typed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
    message = update.effective_message
    assert message is not None and message.text is not None
    typed = " ".join(message.text.split())[:80]
    services = services_of(context)
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        matches = await match_places(session, typed, person.language, limit=3)
    _ = person.gettext
    if not matches:
        note = person.format(
            _(
                "I could not find “{text}” on our map. Check the spelling, type a bigger "
                "town nearby, or share your location with the button."
            ),
            text=typed[:60],
        )
        return await ask_again(context, person, note)
    best = clear_match(matches)
    if best is None:
        await context.bot.send_message(
            person.chat_id, _("Which place do you mean?"), reply_markup=place_buttons(matches)
        )
        return ASKED
    return await answer_place(context, person, best.place)


def clear_match(matches: Sequence[PlaceMatch]) -> PlaceMatch | None:
    """The one match to use without asking: the only one, or one clearly ahead of the next
    (an exact name against partial ones, a small typo against unrelated names)."""
    if len(matches) == 1 or round(matches[0].score - matches[1].score, 3) >= CLEAR_LEAD:
        return matches[0]
    return None


def place_buttons(matches: Sequence[PlaceMatch]) -> InlineKeyboardMarkup:
    rows = []
    for match in matches:
        area = match.place.adm2_name or match.place.adm1_name
        label = f"📍 {match.name}" + (f" · {area}" if area and area != match.name else "")
        rows.append([InlineKeyboardButton(label[:64], callback_data=f"shp:{match.place.id}")])
    return InlineKeyboardMarkup(rows)


async def on_place_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
    query = update.callback_query
    assert query is not None and query.data is not None
    services = services_of(context)
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        place = await session.get(Place, int(query.data.removeprefix("shp:")))
    if not person.onboarded:
        await query.answer()
        await send_current_step(context, person)
        return END
    if place is None:  # removed from the gazetteer since the button was sent
        await query.answer(person.gettext("This button is no longer active."))
        return await ask_again(context, person, person.gettext("Which place do you mean?"))
    await query.answer()
    return await answer_place(context, person, place)


async def answer_place(context: ContextTypes.DEFAULT_TYPE, person: Person, place: Place) -> object:
    services = services_of(context)
    settings = services.settings
    name = display_name(place.names, person.language, settings.fallback_languages)
    if place.latitude is not None and place.longitude is not None:
        radius_km = settings.services.shelter_radius_km
        async with services.db.transaction() as session:
            found = await shelters_near(session, place.latitude, place.longitude, radius_km)
            # A gazetteer point with no area of its own: the area of what is near it.
            adm1 = area_of_place(place) or await area_near(
                session, place.latitude, place.longitude, within_km=radius_km
            )
            await note_search(session, person, adm1, found, services.clock())
        await send_results(context, person, found, where=name)
        return END
    area = area_of(place)
    if area is None:
        note = person.format(
            person.gettext(
                "I know {place}, but not where exactly it is. Please share your location "
                "with the button, or type a town nearby."
            ),
            place=name,
        )
        return await ask_again(context, person, note)
    level, code = area
    async with services.db.transaction() as session:
        found = await found_in_area(session, level, code)
        await note_search(session, person, area_of_place(place), found, services.clock())
    area_name = (place.adm2_name if level == "adm2" else place.adm1_name) or code
    if place.kind in (PlaceKind.ADM1, PlaceKind.ADM2):
        area_name = name
    await send_results(context, person, found, where=area_name, area=True)
    return END


async def on_other_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
    """A sticker, a voice message, a photo... while asked for a place."""
    person = await onboarded_person(update, context)
    if person is None:
        return END
    note = person.gettext(
        "I can only read a typed place name or a shared location. Please type the name "
        "of your town or area, or share your location with the button."
    )
    await context.bot.send_message(person.chat_id, note, reply_markup=ask_keyboard(person))
    return ASKED


async def back_to_menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
    person = await onboarded_person(update, context)
    if person is not None:
        await send_current_step(context, person)
    return END


async def leave(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
    """Anything else ends the question; the other handlers then answer it as usual."""
    return END


# --- wiring -----------------------------------------------------------------------------


class BackTap(filters.MessageFilter):
    def __init__(self, languages: tuple[str, ...]) -> None:
        super().__init__(name="BackTap")
        self.languages = languages

    def filter(self, message: Message) -> bool:
        text = message.text
        return text is not None and _normalize(text) in back_labels(self.languages)


def early_handlers(settings: Settings) -> list[Handler]:
    """For a handler group of their own, before every other: the answers to the question and
    the place buttons stop there (ApplicationHandlerStop); anything else ends the question
    and goes on to the other groups.

    A group of its own, not the consulates' group: in a group only the first handler that
    matches runs, and either lookup's "anything else ends the question" matches everything.
    The "Find a shelter" tap itself goes on, so that the consulates' question (group -1)
    ends too; `handlers()` then keeps it from the main menu's answer.
    """
    languages = settings.enabled_languages
    menu_label, back = MenuTap(languages), BackTap(languages)
    private = PRIVATE & MESSAGE
    words = private & filters.TEXT & ~filters.COMMAND & ~menu_label & ~back
    other = private & ~filters.TEXT & ~filters.LOCATION & ~filters.StatusUpdate.ALL
    pick = CallbackQueryHandler(stopping(on_place_button), pattern=PICK)
    return [
        StoredConversation(
            entry_points=[
                MessageHandler(private & MenuTap(languages, MenuItem.SHELTER), ask_place),
                MessageHandler(private & back, stopping(back_to_menu)),
                pick,
            ],
            states={
                ASKED: [
                    MessageHandler(private & filters.LOCATION, stopping(on_location)),
                    CommandHandler("cancel", stopping(back_to_menu), filters=PRIVATE),
                    MessageHandler(words, stopping(on_place_typed)),
                    MessageHandler(other, stopping(on_other_message)),
                ]
            },
            fallbacks=[TypeHandler(Update, leave)],
            conversation_timeout=600,
            allow_reentry=True,
            name="shelter_question",
        )
    ]


async def answered(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The tap was answered by the conversation in `early_handlers`."""


def handlers(settings: Settings) -> list[Handler]:
    """First in the main group: "Find a shelter" was answered by the early handlers, and must
    not reach the main menu, which would answer it again."""
    tap = PRIVATE & MESSAGE & MenuTap(settings.enabled_languages, MenuItem.SHELTER)
    return [MessageHandler(tap, answered)]
