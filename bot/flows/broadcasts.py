"""Officers compose broadcasts in Telegram (a short wizard), list them, read their reports
and cancel them.

Commands (private chat; anyone without the role gets the unknown-command answer):

- ``/broadcast`` (communications officer, admin): the wizard below; with a draft already
  open, its current step again.
- ``/broadcasts``: the last ten, with status, priority, recipients, sent and failed.
- ``/broadcast_report REF``: queued, sent, failed (and uncertain), blocked, cancelled,
  started, finished, throughput.
- ``/broadcast_cancel REF`` (communications officer, admin): messages not yet handed to
  Telegram are cancelled; then the report.

Every staff role may read the list and the reports: they hold counts, never a person or a
text. Staff texts are English, like the other staff commands.

The wizard's state is the draft itself: a `Broadcast` row (status ``draft``, ``created_by``
the officer) created at the first step, updated at every step in the same transaction as
the step (`Broadcast.compose_step`, see `broadcast_views.Step`). Nothing is kept in
user_data, so a restart of the bot in the middle resumes at the same step, and a button of
an earlier step is recognised as stale.

Typed input (texts, the attachment, a time) is read by `input_handlers`, in a handler group
of their own before every other (bot/app.py): a message from an officer with a draft open
stops there, and never reaches the feedback flow; anyone else's goes on. The commands and
buttons are in the main group (`handlers`).

```mermaid
stateDiagram-v2
    [*] --> TOPICS: /broadcast (draft row created)
    [*] --> CURRENT: /broadcast with a draft open → its step again
    TOPICS --> TOPICS: toggle a topic
    TOPICS --> AREAS: Next (at least one topic)
    AREAS --> AREAS: Everywhere, or toggle an adm1 area
    AREAS --> FILTERS: Next
    FILTERS --> FILTERS: toggle a language or a departure point
    FILTERS --> TEXTS: Next
    TEXTS --> TEXT: tap a language
    TEXT --> TEXT: not text, or too long (hint)
    TEXT --> TEXTS: text received
    TEXTS --> ATTACHMENT: Next (at least one text)
    ATTACHMENT --> ATTACHMENT: not a location or a document, caption too long (hint)
    ATTACHMENT --> PRIORITY: location, document, or No attachment
    PRIORITY --> WHEN: Normal or Emergency
    WHEN --> WHEN: not a time, or a time past (hint)
    WHEN --> PREVIEW: Send now, or a typed time
    PREVIEW --> TEXTS: Edit text (then Preview returns here)
    PREVIEW --> [*]: Send → enqueued (scheduled), reference and report command
    note right of PREVIEW
        Every step: Back to the one before; Cancel or /cancel deletes the draft.
        A button of an earlier step shows the current step instead of acting.
    end note
```
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Message, Update
from telegram.ext import (
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.config import Settings
from bot.flows.broadcast_views import (
    CALLBACK,
    TIME_HINT,
    Point,
    PreviewFacts,
    Screen,
    Step,
    StepName,
    areas_screen,
    attachment_screen,
    filters_screen,
    list_text,
    parse_send_time,
    preview_screen,
    priority_screen,
    queued_text,
    report_text,
    sent_line,
    text_prompt,
    texts_screen,
    topics_screen,
    when_screen,
)
from bot.flows.staff import ANY_STAFF, staff_only
from bot.people import pseudonym_of
from bot.replies import edit_quietly
from bot.services import Handler, Services, services_of
from messages.areas import area_names
from messages.broadcasts import (
    OPEN_STATUSES,
    Audience,
    Broadcast,
    BroadcastStatus,
    Draft,
    Priority,
    audience_of,
    cancel,
    create,
    enqueue,
    find_broadcast,
    preview,
    problems,
    recent_broadcasts,
    report,
)
from messages.places import Place, PlaceKind, display_name
from messages.topics import TOPIC_KEYS
from staff import audit
from staff.access import allowed, find_staff
from staff.models import Role, StaffMember
from storage.references import spoken

log = logging.getLogger(__name__)
PRIVATE = filters.ChatType.PRIVATE
OFFICERS = frozenset({Role.ADMIN, Role.COMMUNICATIONS_OFFICER})
READERS = ANY_STAFF
LISTED = 10
MAX_POINTS = 40  # departure points offered as filters (Telegram allows 100 buttons)
MAX_AREAS = 60
# Values that fit in callback data (64 bytes with the rest).
SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
T = TypeVar("T", str, int)


# --- reading and writing the draft --------------------------------------------------


async def open_draft(session: AsyncSession, staff_id: int) -> Broadcast | None:
    """The officer's draft being composed in Telegram (the latest, should there be two)."""
    return await session.scalar(
        select(Broadcast)
        .where(
            Broadcast.created_by == staff_id,
            Broadcast.status == BroadcastStatus.DRAFT.value,
            Broadcast.compose_step.is_not(None),
        )
        .order_by(Broadcast.id.desc())
        .limit(1)
    )


def draft_of(broadcast: Broadcast) -> Draft:
    return Draft(
        texts=dict(broadcast.texts or {}),
        audience=audience_of(broadcast),
        priority=Priority(broadcast.priority),
        send_at=broadcast.send_at,
        location=broadcast.location,
        document_file_id=broadcast.document_file_id,
        document_name=broadcast.document_name,
    )


def new_problems(before: Draft, after: Draft, settings: Settings) -> list[str]:
    """What a change would break: problems of `after` that `before` did not have."""
    old = set(problems(before, settings.enabled_languages))
    return [p for p in problems(after, settings.enabled_languages) if p not in old]


def ordered_languages(settings: Settings) -> tuple[str, ...]:
    default = settings.default_language
    return (default, *(code for code in settings.enabled_languages if code != default))


async def departure_points(session: AsyncSession) -> list[Point]:
    rows = await session.scalars(
        select(Place)
        .where(Place.kind == PlaceKind.DEPARTURE_POINT)
        .order_by(Place.id)
        .limit(MAX_POINTS)
    )
    return [Point(place.id, display_name(place.names, "en")[:40]) for place in rows]


async def offered_areas(session: AsyncSession) -> dict[str, str]:
    names = await area_names(session)
    usable = {code: name for code, name in names.items() if SAFE_VALUE.match(code)}
    return dict(sorted(usable.items(), key=lambda item: item[1])[:MAX_AREAS])


async def render(
    session: AsyncSession, services: Services, draft: Broadcast, hint: str = ""
) -> Screen:
    """The screen of the draft's current step."""
    settings = services.settings
    step = Step.decode(draft.compose_step) or Step(StepName.TOPICS)
    languages = ordered_languages(settings)
    match step.name:
        case StepName.TOPICS:
            return topics_screen(draft, hint)
        case StepName.AREAS:
            return areas_screen(draft, await offered_areas(session), hint)
        case StepName.FILTERS:
            return filters_screen(draft, languages, await departure_points(session), hint)
        case StepName.TEXTS:
            return texts_screen(draft, languages, step.to_preview, hint)
        case StepName.TEXT:
            return text_prompt(draft, step.language or settings.default_language, hint)
        case StepName.ATTACHMENT:
            return attachment_screen(draft, hint)
        case StepName.PRIORITY:
            return priority_screen(draft, settings.services.quiet_hours, hint)
        case StepName.WHEN:
            return when_screen(draft, settings.timezone, hint)
        case StepName.PREVIEW:
            return preview_screen(draft, await preview_facts(session, services, draft), hint)


async def preview_facts(
    session: AsyncSession, services: Services, draft: Broadcast
) -> PreviewFacts:
    settings = services.settings
    content = draft_of(draft)
    points = {point.id: point.name for point in await departure_points(session)}
    return PreviewFacts(
        area_names=await area_names(session),
        point_names=points,
        preview=await preview(
            session, content, settings.default_language, settings.fallback_languages
        ),
        problems=problems(content, settings.enabled_languages),
        quiet=settings.services.quiet_hours,
        now=services.clock(),
        timezone=settings.timezone,
    )


def toggled(values: Sequence[T] | None, value: T) -> list[T]:
    current: list[T] = list(values or ())
    if value in current:
        return [v for v in current if v != value]
    current.append(value)
    return current


# --- /broadcast and the buttons --------------------------------------------------------


async def broadcast_command(
    update: Update, context: ContextTypes.DEFAULT_TYPE, member: StaffMember
) -> None:
    chat = update.effective_chat
    assert chat is not None
    services = services_of(context)
    async with services.db.transaction() as session:
        draft = await open_draft(session, member.id)
        resumed = draft is not None
        if draft is None:
            empty = Draft(texts={}, audience=Audience(topics=()))
            draft = await create(session, empty, member.id, services.clock())
            draft.compose_step = Step(StepName.TOPICS).encode()
        screen = await render(session, services, draft)
        reference = draft.reference
    text = screen.text
    if resumed:
        text = f"Your draft {spoken(reference)} is still open (/cancel drops it).\n\n{text}"
    await context.bot.send_message(chat.id, text, reply_markup=screen.markup)


@dataclass(frozen=True)
class Outcome:
    screen: Screen | None  # shown in place of the message with the button
    answer: str | None = None  # the callback answer
    alert: bool = False  # as a popup, for something the officer must read
    closed: bool = False  # the draft is gone: its buttons are taken away


async def on_button(
    update: Update, context: ContextTypes.DEFAULT_TYPE, member: StaffMember
) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    match = CALLBACK.match(query.data)
    assert match is not None
    draft_id, step_name, action, value = match.groups()
    services = services_of(context)
    async with services.db.transaction() as session:
        draft = await session.get(Broadcast, int(draft_id))
        outcome = await tap(session, services, member, draft, step_name, action, value or "")
    await query.answer(outcome.answer, show_alert=outcome.alert)
    if outcome.screen is not None:
        await edit_quietly(query, outcome.screen.text, outcome.screen.markup)
    elif outcome.closed:
        await edit_quietly(query, None, None)


async def tap(
    session: AsyncSession,
    services: Services,
    member: StaffMember,
    draft: Broadcast | None,
    step_name: str,
    action: str,
    value: str,
) -> Outcome:
    """Apply one button of the wizard to the draft; the screen to show next."""
    if (
        draft is None
        or draft.created_by != member.id
        or draft.status != BroadcastStatus.DRAFT.value
        or draft.compose_step is None
    ):
        # Sent, dropped or not theirs: the message keeps its text (a sent one's reference).
        return Outcome(None, "This draft is closed. /broadcast starts a new one.", closed=True)
    if action == "cancel":
        reference = draft.reference
        await session.delete(draft)
        log.info("broadcast draft dropped")
        return Outcome(Screen(f"Draft {spoken(reference)} dropped; nothing was sent."), "Dropped.")
    step = Step.decode(draft.compose_step) or Step(StepName.TOPICS)
    if step.name.value != step_name:
        return Outcome(await render(session, services, draft), "That step is over: here it is now.")
    if action == "back":
        draft.compose_step = step.previous().encode()
        return Outcome(await render(session, services, draft))
    if action == "next":
        return await next_step(session, services, draft, step)
    if step.name is StepName.PREVIEW and action == "send":
        return await send(session, services, draft)
    problem = await change(session, services, draft, step, action, value)
    if problem:
        return Outcome(await render(session, services, draft), problem, alert=True)
    return Outcome(await render(session, services, draft))


async def next_step(
    session: AsyncSession, services: Services, draft: Broadcast, step: Step
) -> Outcome:
    if step.name is StepName.TOPICS and not draft.topics:
        return Outcome(None, "Choose at least one topic.", alert=True)
    if step.name is StepName.TEXTS and not draft.texts:
        return Outcome(None, "Write the text in at least one language.", alert=True)
    draft.compose_step = step.following().encode()
    return Outcome(await render(session, services, draft))


async def change(
    session: AsyncSession,
    services: Services,
    draft: Broadcast,
    step: Step,
    action: str,
    value: str,
) -> str | None:
    """A button that changes the draft; a problem to show, or None."""
    settings = services.settings
    match (step.name, action):
        case (StepName.TOPICS, "topic") if value in TOPIC_KEYS:
            chosen = toggled(draft.topics, value)
            draft.topics = [key for key in TOPIC_KEYS if key in chosen]
        case (StepName.AREAS, "all"):
            draft.areas = []
        case (StepName.AREAS, "area"):
            if value not in await offered_areas(session):
                return "This area is no longer on record."
            draft.areas = toggled(draft.areas, value)
        case (StepName.FILTERS, "lang") if value in settings.enabled_languages:
            draft.languages = toggled(draft.languages, value)
        case (StepName.FILTERS, "point") if value.isdigit():
            points = {point.id for point in await departure_points(session)}
            if int(value) not in points:
                return "This departure point is no longer on record."
            draft.departure_point_ids = toggled(draft.departure_point_ids, int(value))
        case (StepName.TEXTS, "write") if value in settings.enabled_languages:
            draft.compose_step = Step(StepName.TEXT, value, step.to_preview).encode()
        case (StepName.ATTACHMENT, "skip"):
            draft.latitude = draft.longitude = None
            draft.document_file_id = draft.document_name = None
            draft.compose_step = step.following().encode()
        case (StepName.ATTACHMENT, "keep"):
            draft.compose_step = step.following().encode()
        case (StepName.PRIORITY, "prio") if value in {p.value for p in Priority}:
            draft.priority = value
            draft.compose_step = step.following().encode()
        case (StepName.WHEN, "now"):
            draft.send_at = None
            draft.compose_step = step.following().encode()
        case (StepName.PREVIEW, "edit"):
            draft.compose_step = Step(StepName.TEXTS, to_preview=True).encode()
        case _:
            return "That button no longer applies."
    return None


async def send(session: AsyncSession, services: Services, draft: Broadcast) -> Outcome:
    """Enqueue the draft, in the transaction of the tap: all its recipients or none."""
    settings = services.settings
    found = problems(draft_of(draft), settings.enabled_languages)
    if found:
        return Outcome(await render(session, services, draft), found[0], alert=True)
    recipients = await enqueue(session, draft, services.clock(), settings.default_language)
    draft.compose_step = None
    await audit.record(
        session,
        audit.Action.BROADCAST,
        services.clock(),
        staff_id=draft.created_by,  # the sender: tap() lets only its author send a draft
        target=draft.reference,
        detail=f"queued recipients={recipients} priority={draft.priority}",
    )
    log.info("broadcast %s queued for %d recipients", draft.reference, recipients)
    return Outcome(Screen(queued_text(draft, recipients, settings.timezone)), "Queued.")


# --- typed input while composing -------------------------------------------------------


async def composing(session: AsyncSession, update: Update, services: Services) -> Broadcast | None:
    """The draft the sender of this update is composing, if they are an officer."""
    pseudonym = pseudonym_of(update, services)
    member = None if pseudonym is None else await find_staff(session, pseudonym)
    if member is None or not allowed(member, OFFICERS):
        return None
    return await open_draft(session, member.id)


async def on_input(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Anything an officer composing a broadcast sends: the step's answer, or a hint. Anyone
    else's message goes on to the other handler groups."""
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None:
        return
    services = services_of(context)
    async with services.db.transaction() as session:
        draft = await composing(session, update, services)
        screen = None if draft is None else await take(session, services, draft, message)
    if screen is None:
        return
    await context.bot.send_message(chat.id, screen.text, reply_markup=screen.markup)
    raise ApplicationHandlerStop


async def on_cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/cancel while composing drops the draft; otherwise the other groups answer it."""
    chat = update.effective_chat
    if chat is None:
        return
    services = services_of(context)
    async with services.db.transaction() as session:
        draft = await composing(session, update, services)
        reference = None if draft is None else draft.reference
        if draft is not None:
            await session.delete(draft)
    if reference is None:
        return
    await context.bot.send_message(chat.id, f"Draft {spoken(reference)} dropped; nothing was sent.")
    raise ApplicationHandlerStop


async def take(
    session: AsyncSession, services: Services, draft: Broadcast, message: Message
) -> Screen:
    """Apply a message to the draft's step; the next screen, or the same one with a hint."""
    step = Step.decode(draft.compose_step) or Step(StepName.TOPICS)
    match step.name:
        case StepName.TEXT:
            return await take_text(session, services, draft, step, message)
        case StepName.ATTACHMENT:
            return await take_attachment(session, services, draft, step, message)
        case StepName.WHEN:
            return await take_time(session, services, draft, step, message)
        case StepName.TEXTS:
            hint = "First tap the language of the text, then send the text."
        case _:
            hint = "Use the buttons of this step, or /cancel to drop the draft."
    return await render(session, services, draft, hint)


async def take_text(
    session: AsyncSession, services: Services, draft: Broadcast, step: Step, message: Message
) -> Screen:
    if message.text is None:
        return await render(session, services, draft, "Send the text as a written message.")
    language = step.language or services.settings.default_language
    texts = {**(draft.texts or {}), language: message.text.strip()}
    before = draft_of(draft)
    found = new_problems(before, dataclasses.replace(before, texts=texts), services.settings)
    if found:
        return await render(session, services, draft, " ".join(found) + " Send a shorter text.")
    draft.texts = texts
    draft.compose_step = step.following().encode()
    screen = await render(session, services, draft)
    return Screen(f"✅ Saved the {language} text.\n\n{screen.text}", screen.markup)


async def take_attachment(
    session: AsyncSession, services: Services, draft: Broadcast, step: Step, message: Message
) -> Screen:
    before = draft_of(draft)
    if message.location is not None:
        location = (message.location.latitude, message.location.longitude)
        after = dataclasses.replace(
            before, location=location, document_file_id=None, document_name=None
        )
        what = "Location"
    elif message.document is not None:
        document = message.document
        after = dataclasses.replace(
            before,
            location=None,
            document_file_id=document.file_id,
            document_name=document.file_name or "document",
        )
        what = "Document"
    else:
        hint = (
            "Send the photo as a file (📎 → File), or tap No attachment."
            if message.photo
            else "Send a location or a document, or tap No attachment."
        )
        return await render(session, services, draft, hint)
    found = new_problems(before, after, services.settings)
    if found:
        return await render(session, services, draft, " ".join(found))
    draft.latitude, draft.longitude = after.location or (None, None)
    draft.document_file_id, draft.document_name = after.document_file_id, after.document_name
    draft.compose_step = step.following().encode()
    screen = await render(session, services, draft)
    return Screen(f"✅ {what} attached.\n\n{screen.text}", screen.markup)


async def take_time(
    session: AsyncSession, services: Services, draft: Broadcast, step: Step, message: Message
) -> Screen:
    if message.text is None:
        return await render(session, services, draft, TIME_HINT)
    try:
        draft.send_at = parse_send_time(message.text, services.clock(), services.settings.timezone)
    except ValueError as error:
        return await render(session, services, draft, str(error))
    draft.compose_step = step.following().encode()
    return await render(session, services, draft)


# --- lists, reports, cancelling ---------------------------------------------------------


def _argument(context: ContextTypes.DEFAULT_TYPE) -> str | None:
    args = list(context.args or [])
    return args[0] if len(args) == 1 else None


async def list_command(
    update: Update, context: ContextTypes.DEFAULT_TYPE, member: StaffMember
) -> None:
    chat = update.effective_chat
    assert chat is not None
    services = services_of(context)
    timezone = services.settings.timezone
    async with services.db.transaction() as session:
        lines = [
            sent_line(broadcast, await report(session, broadcast), timezone)
            for broadcast in await recent_broadcasts(session, LISTED)
        ]
    await context.bot.send_message(chat.id, list_text(lines)[:4096])


async def report_command(
    update: Update, context: ContextTypes.DEFAULT_TYPE, member: StaffMember
) -> None:
    await answer_with_report(update, context, member, cancelling=False)


async def cancel_command(
    update: Update, context: ContextTypes.DEFAULT_TYPE, member: StaffMember
) -> None:
    await answer_with_report(update, context, member, cancelling=True)


async def answer_with_report(
    update: Update, context: ContextTypes.DEFAULT_TYPE, member: StaffMember, *, cancelling: bool
) -> None:
    chat = update.effective_chat
    assert chat is not None
    command = "/broadcast_cancel" if cancelling else "/broadcast_report"
    reference = _argument(context)
    if reference is None:
        await context.bot.send_message(chat.id, f"Usage: {command} REF (see /broadcasts)")
        return
    services = services_of(context)
    lead = ""
    async with services.db.transaction() as session:
        broadcast = await find_broadcast(session, reference)
        if broadcast is not None and cancelling:
            lead = await cancel_broadcast(session, services, broadcast, member)
        text = (
            None
            if broadcast is None
            else report_text(await report(session, broadcast), services.settings.timezone)
        )
    if text is None:
        await context.bot.send_message(
            chat.id, f"No broadcast {reference}. /broadcasts lists the latest."
        )
        return
    await context.bot.send_message(chat.id, f"{lead}{text}")


async def cancel_broadcast(
    session: AsyncSession, services: Services, broadcast: Broadcast, member: StaffMember
) -> str:
    name = spoken(broadcast.reference)
    if broadcast.status not in OPEN_STATUSES:
        return f"{name} is {broadcast.status}: nothing to cancel.\n\n"
    stopped = await cancel(session, broadcast, services.clock(), member.id)
    broadcast.compose_step = None
    await audit.record(
        session,
        audit.Action.BROADCAST,
        services.clock(),
        staff_id=member.id,
        target=broadcast.reference,
        detail=f"cancelled unsent={stopped}",
    )
    log.info("broadcast %s cancelled, %d messages not sent", broadcast.reference, stopped)
    return f"🛑 Cancelled {name}: {stopped} messages will not be sent.\n\n"


def handlers() -> list[Handler]:
    """For the main group, before the feedback flow (bot/app.py)."""
    return [
        CommandHandler("broadcast", staff_only(OFFICERS, broadcast_command), filters=PRIVATE),
        CommandHandler("broadcasts", staff_only(READERS, list_command), filters=PRIVATE),
        CommandHandler("broadcast_report", staff_only(READERS, report_command), filters=PRIVATE),
        CommandHandler("broadcast_cancel", staff_only(OFFICERS, cancel_command), filters=PRIVATE),
        CallbackQueryHandler(staff_only(OFFICERS, on_button), pattern=CALLBACK),
    ]


def input_handlers() -> list[Handler]:
    """For a handler group of their own, before every other: an officer's typed answers
    while composing stop there; everyone else's messages go on."""
    message = PRIVATE & filters.UpdateType.MESSAGE
    return [
        CommandHandler("cancel", on_cancel, filters=message),
        MessageHandler(message & ~filters.COMMAND & ~filters.StatusUpdate.ALL, on_input),
    ]
