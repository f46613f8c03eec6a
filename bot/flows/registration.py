"""Registering for evacuation or transport: a ConversationHandler whose state lives in the
database (`Registration.step`, read before each update by `bot.conversations`, so that
any worker process can take the next answer).

Every answer is saved in the same transaction as the new step before anything is sent, so
a restart, a crash or a phone that dies halfway loses nothing. A button from an earlier
step, or a step the database disagrees with, gets the current question again.

```mermaid
stateDiagram-v2
    [*] --> SCOPE: menu "Register", no registration
    [*] --> RESUME: menu "Register" or /myregistration, unfinished draft
    [*] --> MANAGE: menu "Register" or /myregistration, already registered
    RESUME --> SCOPE: start again
    RESUME --> REVIEW: continue (all answered)
    RESUME --> PEOPLE: continue (first unanswered question)
    SCOPE --> PEOPLE
    PEOPLE --> NATIONALITY
    NATIONALITY --> NATIONALITY: typed name → "did you mean" / not found
    NATIONALITY --> DOCUMENTS
    DOCUMENTS --> NEEDS: (some or none: consulate contacts sent)
    NEEDS --> NEEDS: toggle a need
    NEEDS --> LOCATION
    LOCATION --> LOCATION: typed name → "which place"
    LOCATION --> DESTINATION
    DESTINATION --> PHONE
    PHONE --> PHONE: not a phone number
    PHONE --> CONSENT
    CONSENT --> CONSENT: no → explained
    CONSENT --> REVIEW: yes
    REVIEW --> PEOPLE: change (each question returns to REVIEW)
    REVIEW --> [*]: confirm → reference code
    MANAGE --> REVIEW: change
    MANAGE --> CANCEL: cancel
    CANCEL --> [*]: yes (cancelled) / no (kept)
    MANAGE --> [*]: close
    note right of REVIEW
        Every question has Back (the question before, or the review).
        /cancel: a draft is deleted; a change to a registration stops.
        Idle past the timeout, a menu button or another command: paused,
        answers kept (drafts for DRAFT_RETENTION_DAYS) and offered on return.
    end note
```
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardMarkup, Message, Update
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
from bot.conversations import StoredConversation, registration_step
from bot.flows import consulates
from bot.flows import registration_views as views
from bot.flows.menu import answer_menu_item, help_command
from bot.flows.onboarding import language_command, on_consent, on_language, show_menu, start
from bot.flows.registration_views import QUESTIONS, Reply, Step
from bot.flows.subscriptions import subscriptions_command
from bot.keyboards import MenuItem, MenuTap, main_menu, menu_item_for
from bot.people import Person, load_person
from bot.replies import edit_quietly, send_current_step
from bot.services import Services, services_of
from evacuation.registrations import (
    AgeGroup,
    Documents,
    Need,
    Registration,
    by_key,
    cancel,
    clean_text,
    discard_draft,
    find_registration,
    missing_answers,
    normalize_phone,
    reset,
    set_location,
    start_registration,
    submit,
)
from messages.areas import area_near, remember_area
from messages.consulates import countries_with_missions, missions_for
from messages.countries import match_countries
from messages.formatting import time_ago
from messages.geo import valid_coordinates
from messages.misses import Service, record_miss
from messages.places import match_places, nearest_departure_point
from storage.references import spoken

PRIVATE = filters.ChatType.PRIVATE
END = ConversationHandler.END
REGISTRATION = "registration"
Handler = BaseHandler[Update, ContextTypes.DEFAULT_TYPE, object]


@dataclass
class Turn:
    """One update inside the conversation: who, their registration, and the open session."""

    person: Person
    registration: Registration
    session: AsyncSession
    services: Services
    now: datetime
    update: Update

    @property
    def data(self) -> str:
        """The value part of "reg:<step>:<value>"."""
        query = self.update.callback_query
        return (query.data or "").split(":", 2)[-1] if query else ""

    @property
    def text(self) -> str:
        message = self.update.effective_message
        return (message.text or "") if message else ""


@dataclass
class Move:
    """Where an answer leads: the next step (None: the conversation ends) and what to send.

    Without `reply`, the next step's question is sent. `edit` redraws the tapped message
    instead of sending a new one (steppers and toggles).
    """

    step: Step | None
    reply: Reply | None = None
    before: list[Reply] = field(default_factory=list)
    note: str | None = None
    edit: bool = False


Answer = Callable[[Turn], Awaitable[Move]]
Callback = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, object]]


# --- entering -------------------------------------------------------------------------


async def enter(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
    """The menu button: start, resume or show the registration."""
    return await _open(update, context, show_none=False)


async def my_registration(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
    return await _open(update, context, show_none=True)


async def _open(update: Update, context: ContextTypes.DEFAULT_TYPE, *, show_none: bool) -> object:
    services = services_of(context)
    now = services.clock()
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        if not person.onboarded or person.contact is None:
            reply, step = None, None
        else:
            existing = await find_registration(session, person.contact.id)
            if show_none and (existing is None or existing.status == "cancelled"):
                reply, step = _no_registration(person), None
            else:
                registration = await start_registration(session, person.contact.id, now)
                turn = Turn(person, registration, session, services, now, update)
                move = _opening_move(turn)
                step = move.step
                registration.step = step.value if step else None
                reply = move.reply or await _question(turn, step)
    if reply is None:
        await send_current_step(context, person)
        return END
    await _send(context, person.chat_id, reply)
    return step or END


def _opening_move(turn: Turn) -> Move:
    registration = turn.registration
    if registration.submitted:
        return Move(Step.MANAGE, views.manage(turn.person, registration))
    if registration.for_household is not None:
        when = time_ago(registration.updated_at, turn.now, turn.person.language)
        return Move(Step.RESUME, views.resume_question(turn.person, when))
    return Move(Step.SCOPE)


def _no_registration(person: Person) -> Reply:
    _ = person.gettext
    return Reply(
        _("You have no registration. To register, tap “Register for evacuation or transport”."),
        main_menu(_),
    )


# --- answers, one function per step ----------------------------------------------------


async def on_scope(turn: Turn) -> Move:
    household = turn.data == "household"
    registration = turn.registration
    if registration.for_household != household:
        registration.for_household = household
        for group in AgeGroup:
            registration.set_count(group, 0)
        if household:
            registration.adults = 1
        return Move(Step.PEOPLE)  # new counts are needed, even from the review
    return _after(turn, Step.SCOPE)


async def on_people(turn: Turn) -> Move:
    registration = turn.registration
    action, _, key = turn.data.partition("-")
    group = by_key(AgeGroup, key)
    if action == "one" and group is not None:
        for other in AgeGroup:
            registration.set_count(other, 1 if other is group else 0)
        return _after(turn, Step.PEOPLE)
    if action in ("plus", "minus") and group is not None and registration.for_household:
        registration.set_count(group, registration.count(group) + (1 if action == "plus" else -1))
        return Move(Step.PEOPLE, edit=True)
    if action == "done" and registration.people > 0:
        return _after(turn, Step.PEOPLE)
    if action == "done":
        return Move(Step.PEOPLE, note=turn.person.gettext("Please count at least one person."))
    return Move(Step.PEOPLE, edit=True)  # the label rows: nothing to change


async def on_nationality_button(turn: Turn) -> Move:
    value = turn.data
    if value == "again":
        return Move(Step.NATIONALITY)
    if value != "none" and not re.fullmatch(r"[A-Z]{2}", value):
        return Move(Step.NATIONALITY)
    turn.registration.nationality = value
    return _after(turn, Step.NATIONALITY)


async def on_nationality_text(turn: Turn) -> Move:
    person = turn.person
    typed = clean_text(turn.text)
    matches = match_countries(
        typed, person.language, languages=turn.services.settings.enabled_languages, limit=4
    )
    if not matches:
        note = person.format(
            person.gettext(
                "I could not find a country called “{text}”. Check the spelling, "
                "try another language, or pick it below."
            ),
            text=typed[:60],
        )
        return Move(Step.NATIONALITY, note=note)
    choices = [(match.code, match.name) for match in matches]
    return Move(Step.NATIONALITY, views.country_choices(person, choices))


async def on_documents(turn: Turn) -> Move:
    choice = by_key(Documents, turn.data)
    if choice is None:
        return Move(Step.DOCUMENTS)
    registration = turn.registration
    registration.documents = choice.key
    move = _after(turn, Step.DOCUMENTS)
    if choice is not Documents.ALL and registration.nationality not in (None, "none"):
        code = registration.nationality or ""
        missions = await missions_for(turn.session, code)
        move.before.append(
            Reply(
                consulates.missions_text(
                    turn.person, code, missions, turn.services.settings, turn.now
                )
            )
        )
    return move


async def on_needs(turn: Turn) -> Move:
    registration = turn.registration
    if turn.data == "done":
        registration.needs = list(registration.needs or [])
        return _after(turn, Step.NEEDS)
    need = by_key(Need, turn.data)
    if need is None:
        return Move(Step.NEEDS)
    chosen = list(registration.needs or [])
    registration.needs = (
        [key for key in chosen if key != need.key] if need.key in chosen else [*chosen, need.key]
    )
    return Move(Step.NEEDS, edit=True)


async def on_location_shared(turn: Turn) -> Move:
    message = turn.update.effective_message
    location = message.location if message else None
    assert location is not None
    if not valid_coordinates(location.latitude, location.longitude):
        note = turn.person.gettext("That location cannot be right. Please share it again.")
        return Move(Step.LOCATION, note=note)
    set_location(turn.registration, None, location.latitude, location.longitude)
    await _assign_departure_point(turn)
    return _after(turn, Step.LOCATION)


async def on_location_text(turn: Turn) -> Move:
    person = turn.person
    if _is_label(person, turn.text, views.BACK_LABEL):
        return _back(turn, Step.LOCATION)
    typed = clean_text(turn.text)
    set_location(turn.registration, typed, None, None)
    turn.registration.departure_point_id = None
    matches = await match_places(turn.session, typed, person.language, limit=3)
    if matches:
        choices = [(match.place.id, match.name) for match in matches]
        return Move(Step.LOCATION, views.place_choices(person, typed, choices))
    move = _after(turn, Step.LOCATION)
    move.note = person.format(
        person.gettext(
            "I could not find “{text}” on our map. We keep what you wrote, and responders "
            "will read it. Sharing your location helps them find you faster: you can change "
            "it in the review."
        ),
        text=typed[:60],
    )
    return move


async def on_location_button(turn: Turn) -> Move:
    if turn.data == "keep":
        return _after(turn, Step.LOCATION)
    if not turn.data.isdigit():
        return Move(Step.LOCATION)
    matches = await match_places(
        turn.session, turn.registration.location_text or "", turn.person.language, limit=3
    )
    place = next((m for m in matches if m.place.id == int(turn.data)), None)
    if place is None:
        return Move(Step.LOCATION)
    set_location(turn.registration, place.name, place.place.latitude, place.place.longitude)
    await _assign_departure_point(turn)
    return _after(turn, Step.LOCATION)


async def _assign_departure_point(turn: Turn) -> None:
    """The nearest departure point within reach; also the person's area (code and name only,
    never the coordinates) and, when none is within reach, a departure miss counted there."""
    registration = turn.registration
    registration.departure_point_id = None
    latitude, longitude = registration.latitude, registration.longitude
    if latitude is None or longitude is None:
        return
    within_km = turn.services.settings.services.departure_radius_km
    nearest = await nearest_departure_point(turn.session, latitude, longitude, within_km=within_km)
    area = await area_near(turn.session, latitude, longitude, within_km=within_km)
    if turn.person.contact is not None:
        remember_area(turn.person.contact, area)
    if nearest is not None:
        registration.departure_point_id = nearest[0].id
    else:
        code = area.code if area else None
        await record_miss(turn.session, Service.DEPARTURE, turn.now, area_code=code)


async def on_destination_text(turn: Turn) -> Move:
    turn.registration.destination = clean_text(turn.text)
    return _after(turn, Step.DESTINATION)


async def on_destination_button(turn: Turn) -> Move:
    if turn.data != "any":
        return Move(Step.DESTINATION)
    turn.registration.destination = ""
    return _after(turn, Step.DESTINATION)


async def on_phone_text(turn: Turn) -> Move:
    phone = normalize_phone(turn.text)
    if phone is None:
        note = turn.person.gettext(
            "That does not look like a phone number. Use digits, with the country code."
        )
        return Move(Step.PHONE, note=note)
    turn.registration.phone = phone
    return _after(turn, Step.PHONE)


async def on_phone_contact(turn: Turn) -> Move:
    message = turn.update.effective_message
    user = turn.update.effective_user
    contact = message.contact if message else None
    assert contact is not None and user is not None
    phone = normalize_phone(contact.phone_number)
    if contact.user_id != user.id or phone is None:
        note = turn.person.gettext("Please share your own number, or type it.")
        return Move(Step.PHONE, note=note)
    turn.registration.phone = phone
    return _after(turn, Step.PHONE)


async def on_phone_button(turn: Turn) -> Move:
    if turn.data != "skip":
        return Move(Step.PHONE)
    turn.registration.phone = None
    return _after(turn, Step.PHONE)


async def on_consent_answer(turn: Turn) -> Move:
    registration = turn.registration
    if turn.data == "yes":
        registration.consent_share = True
        registration.reviewing = True
        return Move(Step.REVIEW)
    if turn.data == "no":
        registration.consent_share = False
        return Move(Step.CONSENT, views.consent_question(turn.person, declined=True))
    if turn.data == "discard":
        return await _discard(turn)
    return Move(Step.CONSENT)


async def on_review(turn: Turn) -> Move:
    registration = turn.registration
    value = turn.data
    if value.startswith("edit-"):
        step = next((s for s, _ in views.CHANGEABLE if s.value == value[5:]), None)
        registration.reviewing = True
        return Move(step or Step.REVIEW)
    if value == "confirm" and not registration.submitted:
        missing = missing_answers(registration)
        if missing:
            return Move(Step(missing[0]))
        await submit(turn.session, registration, turn.now)
        return Move(None, _registered(turn.person, registration, first=True))
    if value == "done" and registration.submitted:
        registration.reviewing = False
        return Move(None, _registered(turn.person, registration, first=False))
    if value == "discard" and not registration.submitted:
        return await _discard(turn)
    return Move(Step.REVIEW)


async def on_resume(turn: Turn) -> Move:
    if turn.data == "restart":
        reset(turn.registration, turn.now)
        return Move(Step.SCOPE)
    if turn.data != "continue":
        return Move(Step.RESUME)
    missing = missing_answers(turn.registration)
    if not missing or turn.registration.reviewing:
        turn.registration.reviewing = True
        return Move(Step.REVIEW if not missing else Step(missing[0]))
    return Move(Step(missing[0]))


async def on_manage(turn: Turn) -> Move:
    registration = turn.registration
    if turn.data == "change":
        registration.reviewing = True
        return Move(Step.REVIEW)
    if turn.data == "cancel":
        return Move(Step.CANCEL, views.cancel_question(turn.person, registration))
    if turn.data == "close":
        _ = turn.person.gettext
        return Move(None, Reply(_("Main menu. Choose what you need:"), main_menu(_)))
    return Move(Step.MANAGE, views.manage(turn.person, registration))


async def on_cancel_confirm(turn: Turn) -> Move:
    _ = turn.person.gettext
    registration = turn.registration
    if turn.data == "yes":
        reference = spoken(registration.reference or "")
        cancel(registration, turn.now)
        text = turn.person.format(
            _("Registration {reference} is cancelled. You can register again at any time."),
            reference=reference,
        )
        return Move(None, Reply(text, main_menu(_)))
    if turn.data == "no":
        return Move(None, Reply(_("Your registration is kept, unchanged."), main_menu(_)))
    return Move(Step.CANCEL, views.cancel_question(turn.person, registration))


async def _discard(turn: Turn) -> Move:
    await discard_draft(turn.session, turn.registration)
    _ = turn.person.gettext
    return Move(
        None,
        Reply(_("Registration cancelled. We deleted your answers."), main_menu(_)),
    )


def _registered(person: Person, registration: Registration, *, first: bool) -> Reply:
    _ = person.gettext
    reference = spoken(registration.reference or "")
    if first:
        text = person.format(
            _(
                "You are registered. Your reference is {reference}. Write it down: the transport "
                "team will ask for it. To see, change or cancel it, send /myregistration."
            ),
            reference=reference,
        )
    else:
        text = person.format(_("Your registration {reference} is updated."), reference=reference)
    return Reply(text, main_menu(_))


# --- moving between steps --------------------------------------------------------------


def _after(turn: Turn, step: Step) -> Move:
    """The next question, or back to the review once it has been shown."""
    if turn.registration.reviewing:
        return Move(Step.REVIEW)
    index = QUESTIONS.index(step)
    return Move(QUESTIONS[index + 1])


def _back(turn: Turn, step: Step) -> Move:
    if turn.registration.reviewing or step not in QUESTIONS:
        return Move(Step.REVIEW)
    index = QUESTIONS.index(step)
    return Move(QUESTIONS[max(0, index - 1)])


def _is_label(person: Person, text: str, label: str) -> bool:
    normalized = " ".join(text.replace("⬅", " ").split()).casefold()
    return normalized in {person.gettext(label).casefold(), label.casefold()}


async def _question(turn: Turn, step: Step | None, note: str | None = None) -> Reply | None:
    """What to show for `step` (None: nothing more to ask)."""
    person, registration = turn.person, turn.registration
    if step is None:
        return None
    if step is Step.NATIONALITY:
        codes = await countries_with_missions(turn.session)
        return views.nationality_question(person, codes, note)
    if step is Step.LOCATION:
        return views.location_question(person, note)
    if step is Step.DESTINATION:
        return views.destination_question(person, note)
    if step is Step.PHONE:
        return views.phone_question(person, note)
    simple: dict[Step, Callable[[], Reply]] = {
        Step.SCOPE: lambda: views.scope_question(person),
        Step.PEOPLE: lambda: views.people_question(person, registration),
        Step.DOCUMENTS: lambda: views.documents_question(person),
        Step.NEEDS: lambda: views.needs_question(person, registration),
        Step.CONSENT: lambda: views.consent_question(person),
        Step.REVIEW: lambda: views.review(person, registration),
        Step.MANAGE: lambda: views.manage(person, registration),
        Step.CANCEL: lambda: views.cancel_question(person, registration),
        Step.RESUME: lambda: views.resume_question(
            person, time_ago(registration.updated_at, turn.now, person.language)
        ),
    }
    reply = simple[step]()
    return Reply(f"{note}\n\n{reply.text}", reply.markup) if note else reply


# --- the machinery every step shares ---------------------------------------------------


async def registration_of(session: AsyncSession, person: Person) -> Registration | None:
    if person.contact is None:
        return None
    return await find_registration(session, person.contact.id)


def step_handler(step: Step, answer: Answer) -> Callback:
    """Run `answer` for `step` inside one transaction, then send what it leads to.

    When the database says the person is elsewhere (a button from an old message, or a
    send that failed after the answer was saved), the current question is shown again.
    """

    async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
        services = services_of(context)
        now = services.clock()
        query = update.callback_query
        async with services.db.transaction() as session:
            person = await load_person(session, update, services)
            registration = await registration_of(session, person)
            if registration is None or registration.step is None:
                stale, move, reply = True, Move(None), None
            else:
                turn = Turn(person, registration, session, services, now, update)
                stale = registration.step != step.value
                if stale:
                    move = Move(Step(registration.step))
                elif query is not None and turn.data == "back":
                    move = _back(turn, step)
                else:
                    move = await answer(turn)
                if registration in session:  # a discarded draft is gone
                    registration.step = move.step.value if move.step else None
                    registration.updated_at = now
                reply = move.reply or await _question(turn, move.step, move.note)
                if move.reply is not None and move.note:
                    reply = Reply(f"{move.note}\n\n{move.reply.text}", move.reply.markup)
        if query is not None:
            text = person.gettext("This button is no longer active.") if stale else None
            await query.answer(text)
        if reply is None:
            if stale:
                await show_menu(update, context)
            return END
        for before in move.before:
            await _send(context, person.chat_id, before)
        if move.edit and query is not None:
            await edit_quietly(query, reply.text, _inline(reply))
        else:
            await _send(context, person.chat_id, reply)
        return move.step or END

    return handle


def _inline(reply: Reply) -> InlineKeyboardMarkup | None:
    return reply.markup if isinstance(reply.markup, InlineKeyboardMarkup) else None


async def _send(context: ContextTypes.DEFAULT_TYPE, chat_id: int, reply: Reply) -> Message:
    return await context.bot.send_message(chat_id, reply.text, reply_markup=reply.markup)


async def _pause(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Person:
    """Leave the conversation with every answer kept; the next "Register" offers to go on."""
    services = services_of(context)
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        registration = await registration_of(session, person)
        if registration is not None:
            registration.step = None
            registration.reviewing = registration.reviewing or registration.submitted
    return person


def paused_then(
    callback: Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]],
) -> Callback:
    """Another command or button during the registration: pause it and do what was asked."""

    async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
        await _pause(update, context)
        await callback(update, context)
        return END

    return handle


async def on_menu_tap(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
    message = update.effective_message
    assert message is not None and message.text is not None
    services = services_of(context)
    item = menu_item_for(message.text, services.settings.enabled_languages)
    if item is MenuItem.EVACUATION:
        return await repeat_question(update, context)
    person = await _pause(update, context)
    await answer_menu_item(context, person, item)
    return END


async def on_timeout(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
    if await _answered_elsewhere(update, context):
        return END
    person = await _pause(update, context)
    _ = person.gettext
    days = services_of(context).settings.services.draft_retention.days
    text = person.format(
        person.ngettext(
            "Your registration is paused. Your answers are kept for {days} day: tap "
            "“Register for evacuation or transport” to go on.",
            "Your registration is paused. Your answers are kept for {days} days: tap "
            "“Register for evacuation or transport” to go on.",
            days,
        ),
        days=days,
    )
    await context.bot.send_message(person.chat_id, text, reply_markup=main_menu(_))
    return END


async def _answered_elsewhere(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """This process's timer is stale: another worker took an answer since it was set, or
    ended the registration. That worker's own timer pauses it if the person goes quiet."""
    services = services_of(context)
    timeout = services.settings.services.registration_timeout
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        registration = await registration_of(session, person)
    if registration is None or registration.step is None:
        return True  # ended meanwhile: here a timer stops when its conversation ends
    # The timer was set just after its own answer was saved, a timeout before now.
    return registration.updated_at > services.clock() - timeout


async def on_cancel_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
    services = services_of(context)
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        registration = await registration_of(session, person)
        submitted = registration is not None and registration.submitted
        reference = spoken(registration.reference or "") if registration else ""
        if registration is not None and submitted:
            registration.step = None
            registration.reviewing = False
        elif registration is not None:
            await discard_draft(session, registration)
    _ = person.gettext
    if submitted:
        text = person.format(
            _(
                "Stopped. Registration {reference} is still valid. To cancel it, send "
                "/myregistration."
            ),
            reference=reference,
        )
    else:
        text = _("Registration cancelled. We deleted your answers.")
    await context.bot.send_message(person.chat_id, text, reply_markup=main_menu(_))
    return END


async def repeat_question(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
    """Anything the current step cannot use (a sticker, text where buttons are expected,
    an old button): say so and ask again."""
    services = services_of(context)
    query = update.callback_query
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        registration = await registration_of(session, person)
        if registration is None or registration.step is None:
            reply = None
        else:
            turn = Turn(person, registration, session, services, services.clock(), update)
            _ = person.gettext
            if query is not None:
                note = None
            else:
                note = _(
                    "Please answer the question below, with the buttons or in words. "
                    "To stop, send /cancel."
                )
            reply = await _question(turn, Step(registration.step), note)
            step = Step(registration.step)
    if query is not None:
        await query.answer(person.gettext("This button is no longer active."))
    if reply is None:
        await show_menu(update, context)
        return END
    await _send(context, person.chat_id, reply)
    return step


# --- wiring ----------------------------------------------------------------------------


def conversation(settings: Settings) -> ConversationHandler[ContextTypes.DEFAULT_TYPE]:
    menu_tap = MenuTap(settings.enabled_languages)
    words = PRIVATE & filters.TEXT & ~filters.COMMAND & ~menu_tap

    def press(
        step: Step, answer: Answer, values: str
    ) -> CallbackQueryHandler[ContextTypes.DEFAULT_TYPE, object]:
        return CallbackQueryHandler(
            step_handler(step, answer), pattern=rf"^reg:{step.value}:({values}|back)$"
        )

    def typed(step: Step, answer: Answer, kind: filters.BaseFilter = words) -> Handler:
        return MessageHandler(kind, step_handler(step, answer))

    group_keys = "|".join(group.key for group in AgeGroup)
    need_keys = "|".join(need.key for need in Need)
    document_keys = "|".join(choice.key for choice in Documents)
    states: dict[object, list[Handler]] = {
        Step.SCOPE: [press(Step.SCOPE, on_scope, "self|household")],
        Step.PEOPLE: [press(Step.PEOPLE, on_people, rf"(one|plus|minus|show)-({group_keys})|done")],
        Step.NATIONALITY: [
            press(Step.NATIONALITY, on_nationality_button, r"[A-Z]{2}|none|again"),
            typed(Step.NATIONALITY, on_nationality_text),
        ],
        Step.DOCUMENTS: [press(Step.DOCUMENTS, on_documents, document_keys)],
        Step.NEEDS: [press(Step.NEEDS, on_needs, rf"{need_keys}|done")],
        Step.LOCATION: [
            press(Step.LOCATION, on_location_button, r"\d+|keep"),
            typed(Step.LOCATION, on_location_shared, PRIVATE & filters.LOCATION),
            typed(Step.LOCATION, on_location_text),
        ],
        Step.DESTINATION: [
            press(Step.DESTINATION, on_destination_button, "any"),
            typed(Step.DESTINATION, on_destination_text),
        ],
        Step.PHONE: [
            press(Step.PHONE, on_phone_button, "skip"),
            typed(Step.PHONE, on_phone_contact, PRIVATE & filters.CONTACT),
            typed(Step.PHONE, on_phone_text),
        ],
        Step.CONSENT: [press(Step.CONSENT, on_consent_answer, "yes|no|discard")],
        Step.REVIEW: [press(Step.REVIEW, on_review, r"edit-[a-z]+|confirm|done|discard")],
        Step.RESUME: [press(Step.RESUME, on_resume, "continue|restart")],
        Step.MANAGE: [press(Step.MANAGE, on_manage, "change|cancel|close")],
        Step.CANCEL: [press(Step.CANCEL, on_cancel_confirm, "yes|no")],
        ConversationHandler.TIMEOUT: [TypeHandler(Update, on_timeout)],
    }
    evacuation = PRIVATE & MenuTap(settings.enabled_languages, MenuItem.EVACUATION)
    return StoredConversation(
        entry_points=[
            MessageHandler(evacuation, enter),
            CommandHandler("myregistration", my_registration, filters=PRIVATE),
        ],
        states=states,
        fallbacks=[
            CommandHandler("cancel", on_cancel_command, filters=PRIVATE),
            CommandHandler("start", paused_then(start), filters=PRIVATE),
            CommandHandler("menu", paused_then(show_menu), filters=PRIVATE),
            CommandHandler("help", paused_then(help_command), filters=PRIVATE),
            CommandHandler("language", paused_then(language_command), filters=PRIVATE),
            CommandHandler("subscriptions", paused_then(subscriptions_command), filters=PRIVATE),
            CommandHandler("myregistration", paused_then_reopen, filters=PRIVATE),
            MessageHandler(PRIVATE & menu_tap, on_menu_tap),
            CallbackQueryHandler(paused_then(on_language), pattern=r"^lang:[A-Za-z-]{2,8}$"),
            CallbackQueryHandler(paused_then(on_consent), pattern=r"^consent:"),
            # Old registration buttons; other buttons (countries, places, staff) go on to
            # their own handlers, the registration staying where it is.
            CallbackQueryHandler(repeat_question, pattern=r"^reg:"),
            MessageHandler(PRIVATE & ~filters.StatusUpdate.ALL, repeat_question),
        ],
        name=REGISTRATION,
        own_state=registration_step,
        conversation_timeout=settings.services.registration_timeout.total_seconds(),
        per_chat=True,
        per_user=True,
    )


async def paused_then_reopen(update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
    await _pause(update, context)
    return await my_registration(update, context)
