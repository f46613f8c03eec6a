"""End to end: an officer composes a broadcast in Telegram; the sender running inside the bot
delivers it through the loopback Bot API, to each subscriber in their language."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.flows.broadcasts import draft_of
from bot.sandbox.botapi import ChatMessage, LoopbackBotApi
from feedback.items import FeedbackItem
from messages.broadcasts import Broadcast, BroadcastStatus, find_broadcast, preview
from messages.contacts import find_contact
from messages.content import NOT_IN_YOUR_LANGUAGE
from messages.i18n import translations
from messages.outbox import OutboxMessage, OutboxState
from messages.places import Place, PlaceKind
from messages.subscriptions import subscribe
from staff.access import add_staff
from staff.models import Role
from storage.base import utcnow
from storage.database import Database
from tests.phone import Phone, inline_data, inline_labels
from tests.sandbox_fixtures import RunningBot, StartBot, bot_with
from tests.test_e2e_bad_input import UNKNOWN
from tests.test_e2e_onboarding import onboard
from tests.test_e2e_shelter_updates import link

LANGUAGES = {"ENABLED_LANGUAGES": "en,fr,ar", "TIMEZONE": "UTC"}
pytestmark = pytest.mark.settings(**LANGUAGES)
REFERENCE = re.compile(r"Broadcast ([A-Z0-9]{3})-([A-Z0-9]{3}) queued")
EN_TEXT = "The evacuation convoy leaves from the stadium at 06:00 tomorrow."
AR_TEXT = "تغادر قافلة الإجلاء من الملعب الساعة 06:00 غداً."
NEXT_YEAR = utcnow().year + 1


# --- helpers ------------------------------------------------------------------------------


async def press(phone: Phone, message: ChatMessage, label: str) -> ChatMessage:
    """Tap a wizard button: the wizard redraws that message."""
    await phone.press_data(message.message_id, inline_data(message, label))
    return await phone.next_edit()


async def subscriber(
    api: LoopbackBotApi, bot: RunningBot, name: str, language: str, topic: str = "evacuation"
) -> Phone:
    phone = Phone.of(api, first_name=name, language_code="en")
    await onboard(phone, language)
    if topic:
        async with bot.services.db.transaction() as session:
            pseudonym = bot.services.pseudonymize("telegram", phone.user_id)
            contact = await find_contact(session, pseudonym)
            assert contact is not None
            assert await subscribe(session, contact.id, topic)
    return phone


async def officer(
    api: LoopbackBotApi, bot: RunningBot, role: Role = Role.COMMUNICATIONS_OFFICER
) -> Phone:
    """A linked staff member (the code issued at the bot's time, which may be stopped)."""
    phone = Phone.of(api, first_name="Nadia", language_code="en")
    async with bot.services.db.transaction() as session:
        code = (await add_staff(session, "Nadia Officer", role, bot.services.clock())).code
    linked = await phone.send(code)
    assert (linked.text or "").startswith("Linked: Nadia Officer")
    return phone


async def to_texts(officer: Phone, topic: str = "Evacuation") -> ChatMessage:
    """/broadcast → a topic → everywhere → no filters: the texts step."""
    screen = await officer.send("/broadcast")
    assert "step 1 of 8" in (screen.text or "")
    screen = await press(officer, screen, topic)
    screen = await press(officer, screen, "Next")
    assert "step 2 of 8 · areas" in (screen.text or "")
    screen = await press(officer, screen, "Next")
    assert "step 3 of 8 · optional filters" in (screen.text or "")
    return await press(officer, screen, "Next")


async def write(officer: Phone, texts_screen: ChatMessage, language: str, text: str) -> ChatMessage:
    prompt = await press(officer, texts_screen, f"({language})")
    assert "Send the text in" in (prompt.text or "") and f"({language})" in (prompt.text or "")
    return await officer.send(text)


async def compose(
    officer: Phone,
    texts: dict[str, str],
    *,
    priority: str = "Normal",
    when: str | None = None,
) -> ChatMessage:
    """The whole wizard with no attachment; returns the preview."""
    screen = await to_texts(officer)
    for language, text in texts.items():
        screen = await write(officer, screen, language, text)
        assert f"Saved the {language} text" in (screen.text or "")
    screen = await press(officer, screen, "Next")
    assert "attachment" in (screen.text or "")
    screen = await press(officer, screen, "No attachment")
    screen = await press(officer, screen, priority)
    assert "step 7 of 8 · when" in (screen.text or "")
    if when is None:
        return await press(officer, screen, "Send now")
    return await officer.send(when)


async def send(officer: Phone, preview_screen: ChatMessage) -> str:
    queued = await press(officer, preview_screen, "Send")
    match = REFERENCE.search(queued.text or "")
    assert match is not None, queued.text
    reference = match.group(1) + match.group(2)
    assert f"/broadcast_report {reference}" in (queued.text or "")
    return reference


async def stored(bot: RunningBot, reference: str) -> Broadcast:
    async with bot.services.db.transaction() as session:
        broadcast = await find_broadcast(session, reference)
        assert broadcast is not None
        return broadcast


async def finished(bot: RunningBot, reference: str) -> Broadcast:
    for _ in range(100):
        broadcast = await stored(bot, reference)
        if broadcast.status == BroadcastStatus.FINISHED.value:
            return broadcast
        await asyncio.sleep(0.1)
    raise AssertionError(f"broadcast {reference} did not finish")


async def outbox(bot: RunningBot) -> list[OutboxMessage]:
    async with bot.services.db.transaction() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def preview_groups(text: str) -> dict[str, tuple[int, str]]:
    """ "• fr: 1 → en text (fallback with a note)" → {"fr": (1, "en text (fallback …)")}"""
    groups = {}
    for line in text.splitlines():
        if match := re.match(r"^• (\S+): (\d+) → (.+)$", line):
            groups[match.group(1)] = (int(match.group(2)), match.group(3))
    return groups


def stop_data(message: ChatMessage) -> str:
    return inline_data(message, "🔕")


# --- tests -------------------------------------------------------------------------------


async def test_an_officer_broadcasts_in_two_languages_and_each_subscriber_gets_theirs(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    english = await subscriber(bot_api, running_bot, "Amina", "English")
    arabic = await subscriber(bot_api, running_bot, "Huda", "العربية")
    french = await subscriber(bot_api, running_bot, "Claire", "Français")
    elsewhere = await subscriber(bot_api, running_bot, "Omar", "English", topic="health")
    nadia = await officer(bot_api, running_bot)

    shown = await compose(nadia, {"en": EN_TEXT, "ar": AR_TEXT})
    text = shown.text or ""
    assert "Recipients: 3" in text and "Priority: normal" in text and "When: now" in text
    assert preview_groups(text) == {
        "ar": (1, "ar text"),
        "en": (1, "en text"),
        "fr": (1, "en text (fallback with a note)"),
    }
    assert "Quiet hours" not in text and "Fix before sending" not in text
    assert inline_labels(shown)[:2] == ["✅ Send", "✏️ Edit text"]
    reference = await send(nadia, shown)
    await nadia.press_data(shown.message_id, inline_data(shown, "Send"))  # a second tap
    closed = await nadia.next_event("answer_callback")
    assert closed.callback_text == "This draft is closed. /broadcast starts a new one."

    got_en, got_ar, got_fr = (
        await english.next_message(),
        await arabic.next_message(),
        await french.next_message(),
    )
    assert got_en.text == EN_TEXT and got_ar.text == AR_TEXT
    note = translations("fr").gettext(NOT_IN_YOUR_LANGUAGE)
    assert note != NOT_IN_YOUR_LANGUAGE, "the note is in French"
    assert got_fr.text == f"ℹ️ {note}\n\n{EN_TEXT}"
    for message in (got_en, got_ar, got_fr):
        assert stop_data(message) == "unsub:evacuation"
        assert len(inline_labels(message)) == 1

    broadcast = await finished(running_bot, reference)
    rows = await outbox(running_bot)
    assert {row.state for row in rows} == {OutboxState.SENT.value}
    delivered = Counter(row.language for row in rows)
    counted = {language: count for language, (count, _) in preview_groups(text).items()}
    assert delivered == counted, "the preview counted exactly who received it"
    assert broadcast.recipients == 3 and broadcast.created_by is not None
    assert bot_api.pending_bot_events(elsewhere.user_id) == [], "not subscribed to the topic"

    report_message = await nadia.send(f"/broadcast_report {reference[:3]}-{reference[3:]}")
    body = report_message.text or ""
    assert "finished · normal" in body and "Sent: 3" in body and "Failed: 0" in body
    assert "Queued: 0" in body and "Blocked: 0" in body and "Started: 20" in body
    listing = await nadia.send("/broadcasts")
    assert f"{reference[:3]}-{reference[3:]} · finished · normal · 3 recipients · 3 sent" in (
        listing.text or ""
    )


async def test_the_broadcast_commands_look_unknown_to_people_and_responders(
    bot_api: LoopbackBotApi, running_bot: RunningBot, phone: Phone
) -> None:
    await onboard(phone)
    assert (await phone.send("/broadcast")).text == UNKNOWN
    assert (await phone.send("/broadcasts")).text == UNKNOWN
    assert (await phone.send("/broadcast_cancel ABC123")).text == UNKNOWN
    await phone.press_data((await phone.send("/menu")).message_id, "bc:1:topics:next")
    assert (await phone.next_message()).text == UNKNOWN

    responder = Phone.of(bot_api, first_name="Rana", language_code="en")
    await link(responder, running_bot, Role.RESPONDER)
    assert (await responder.send("/broadcast")).text == UNKNOWN
    assert (await responder.send("/broadcast_cancel ABC123")).text == UNKNOWN
    listing = await responder.send("/broadcasts")
    assert listing.text == "No broadcasts yet. Compose one with /broadcast."
    missing = await responder.send("/broadcast_report ABC123")
    assert missing.text == "No broadcast ABC123. /broadcasts lists the latest."


async def test_a_scheduled_broadcast_cancelled_reaches_nobody(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    person = await subscriber(bot_api, running_bot, "Amina", "English")
    nadia = await officer(bot_api, running_bot, Role.ADMIN)
    when = f"{NEXT_YEAR}-06-01 09:30"
    shown = await compose(nadia, {"en": EN_TEXT}, when=when)
    assert f"When: {when} UTC" in (shown.text or "")
    reference = await send(nadia, shown)
    assert (await stored(running_bot, reference)).send_at == datetime(
        NEXT_YEAR, 6, 1, 9, 30, tzinfo=UTC
    )

    cancelled = await nadia.send(f"/broadcast_cancel {reference}")
    body = cancelled.text or ""
    assert body.startswith(f"🛑 Cancelled {reference[:3]}-{reference[3:]}: 1 messages will not")
    assert "cancelled · normal" in body and "Cancelled: 1" in body and "Sent: 0" in body
    again = await nadia.send(f"/broadcast_cancel {reference}")
    assert "is cancelled: nothing to cancel" in (again.text or "")
    assert [row.state for row in await outbox(running_bot)] == [OutboxState.CANCELLED.value]
    await asyncio.sleep(1.5)  # the sender looks every half second
    assert bot_api.pending_bot_events(person.user_id) == []


async def test_restart_in_the_middle_of_the_wizard_resumes_it(
    bot_api: LoopbackBotApi, start_bot: StartBot
) -> None:
    nadia = Phone.of(bot_api, first_name="Nadia", language_code="en")
    async with start_bot() as bot:
        person = await subscriber(bot_api, bot, "Amina", "English")
        await link(nadia, bot, Role.COMMUNICATIONS_OFFICER)
        texts = await to_texts(nadia)
        prompt = await press(nadia, texts, "(en)")
        assert "Send the text in English (en) now." in (prompt.text or "")
        async with bot.services.db.transaction() as session:
            [draft] = list(await session.scalars(select(Broadcast)))
        assert draft.status == "draft" and draft.compose_step == "text:en"
        assert draft.topics == ["evacuation"]

    async with start_bot() as bot:
        saved = await nadia.send(EN_TEXT)
        assert "Saved the en text" in (saved.text or "") and "Written: en" in (saved.text or "")
        screen = await press(nadia, saved, "Next")
        screen = await press(nadia, screen, "No attachment")
        screen = await press(nadia, screen, "Normal")
        shown = await press(nadia, screen, "Send now")
        assert preview_groups(shown.text or "") == {"en": (1, "en text")}
        reference = await send(nadia, shown)
        assert reference == draft.reference, "the same draft, resumed"
        assert (await person.next_message()).text == EN_TEXT


async def test_a_location_goes_right_after_the_text(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    person = await subscriber(bot_api, running_bot, "Amina", "English")
    nadia = await officer(bot_api, running_bot)
    texts = await to_texts(nadia)
    screen = await write(nadia, texts, "en", EN_TEXT)
    screen = await press(nadia, screen, "Next")
    await bot_api.share_location(nadia.user_id, 33.5138, 36.2765)
    priority = await nadia.next_message()
    assert "Location attached" in (priority.text or "") and "priority" in (priority.text or "")
    when = await press(nadia, priority, "Normal")
    shown = await press(nadia, when, "Send now")
    assert "Attachment: location 33.51380, 36.27650" in (shown.text or "")
    await send(nadia, shown)

    text = await person.next_message()
    assert text.text == EN_TEXT and stop_data(text) == "unsub:evacuation"
    pin = await person.next_message()
    assert pin.content_kind == "location"
    assert pin.location is not None and pin.location["latitude"] == pytest.approx(33.5138)


async def test_wrong_input_at_each_step_gets_a_hint(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    person = await subscriber(bot_api, running_bot, "Amina", "English")
    nadia = Phone.of(bot_api, first_name="Nadia", language_code="en")
    await onboard(nadia)  # so that anything the wizard let through would become feedback
    await link(nadia, running_bot, Role.COMMUNICATIONS_OFFICER)

    topics = await nadia.send("/broadcast")
    await nadia.press_data(topics.message_id, inline_data(topics, "Next"))
    assert (await nadia.next_event("answer_callback")).callback_text == (
        "Choose at least one topic."
    )
    typed = await nadia.send("the convoy is late")
    assert (typed.text or "").startswith("⚠️ Use the buttons of this step, or /cancel")
    assert "step 1 of 8" in (typed.text or "")
    resumed = await nadia.send("/broadcast")
    assert (resumed.text or "").startswith("Your draft") and "step 1 of 8" in (resumed.text or "")
    stale = await press(nadia, topics, "Evacuation")  # the first message still works
    assert "✅ 🚌 Evacuation and transport" in inline_labels(stale)
    screen = await press(nadia, stale, "Next")
    screen = await press(nadia, screen, "Next")
    texts = await press(nadia, screen, "Next")
    await nadia.press_data(texts.message_id, inline_data(texts, "Next"))
    assert (await nadia.next_event("answer_callback")).callback_text == (
        "Write the text in at least one language."
    )
    await nadia.press_data(resumed.message_id, inline_data(resumed, "Health"))
    old_step = await nadia.next_edit()
    assert "step 4 of 8 · texts" in (old_step.text or ""), (
        "an old step's button shows the current step"
    )

    await press(nadia, texts, "(en)")
    await bot_api.send_sticker(nadia.user_id)
    sticker = await nadia.next_message()
    assert (sticker.text or "").startswith("⚠️ Send the text as a written message.")
    too_long = await nadia.send("x" * 4000)
    assert (too_long.text or "").startswith(
        "⚠️ The en text has 4000 characters; a message allows 3800. Send a shorter text."
    )
    long_caption = "y" * 1000
    texts = await nadia.send(long_caption)
    assert "Written: en (1000 characters)" in (texts.text or "")
    await press(nadia, texts, "Next")
    await bot_api.send_photo(nadia.user_id)
    photo = await nadia.next_message()
    assert (photo.text or "").startswith("⚠️ Send the photo as a file")
    await bot_api.send_document(nadia.user_id, "evacuation-map.pdf")
    refused = await nadia.next_message()
    assert (refused.text or "").startswith(
        "⚠️ The en text has 1000 characters; a document's caption allows 900."
    )
    texts = await press(nadia, refused, "Back")
    texts = await write(nadia, texts, "en", EN_TEXT)
    await press(nadia, texts, "Next")
    await bot_api.send_document(nadia.user_id, "evacuation-map.pdf")
    priority = await nadia.next_message()
    assert "Document attached" in (priority.text or "")
    await press(nadia, priority, "Normal")

    for typed_time, hint in (
        ("tomorrow morning", "⚠️ Not a time I understand."),
        ("2001-01-01 08:00", "⚠️ That time has passed"),
        (f"{NEXT_YEAR}-02-30 08:00", "⚠️ There is no such date."),
    ):
        answer = await nadia.send(typed_time)
        assert (answer.text or "").startswith(hint), answer.text
        assert "step 7 of 8 · when" in (answer.text or "")
    shown = await nadia.send("07:15")
    assert "07:15 UTC" in (shown.text or "") and "Attachment: document evacuation-map.pdf" in (
        shown.text or ""
    )
    shown = await press(nadia, shown, "Back")
    shown = await press(nadia, shown, "Send now")
    reference = await send(nadia, shown)

    document = await person.next_message()
    assert document.content_kind == "document" and document.caption == EN_TEXT
    assert stop_data(document) == "unsub:evacuation"
    assert (await stored(running_bot, reference)).document_name == "evacuation-map.pdf"
    async with running_bot.services.db.transaction() as session:
        items = await session.scalar(select(func.count()).select_from(FeedbackItem))
    assert items == 0, "nothing the officer typed while composing became feedback"


async def test_filters_narrow_the_audience_in_the_preview(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    await subscriber(bot_api, running_bot, "Amina", "English")
    await subscriber(bot_api, running_bot, "Huda", "العربية")
    async with running_bot.services.db.transaction() as session:
        session.add(
            Place(
                external_id="DP-1",
                kind=PlaceKind.DEPARTURE_POINT,
                names={"en": "Stadium gate"},
                updated_by="test",
            )
        )
    nadia = await officer(bot_api, running_bot)
    screen = await nadia.send("/broadcast")
    screen = await press(nadia, screen, "Evacuation")
    screen = await press(nadia, screen, "Next")
    assert inline_labels(screen)[0] == "✅ 🌍 Everywhere"
    filters = await press(nadia, screen, "Next")
    assert "▫️ 🚏 Stadium gate" in inline_labels(filters)
    filters = await press(nadia, filters, "ar")
    assert "(now: ar)" in (filters.text or "")
    texts = await press(nadia, filters, "Next")
    screen = await write(nadia, texts, "en", EN_TEXT)
    screen = await press(nadia, screen, "Next")
    screen = await press(nadia, screen, "No attachment")
    screen = await press(nadia, screen, "Normal")
    shown = await press(nadia, screen, "Send now")
    assert "Languages: ar" in (shown.text or "")
    assert preview_groups(shown.text or "") == {"ar": (1, "en text (fallback with a note)")}

    edit = await press(nadia, shown, "Edit text")
    assert inline_labels(edit)[-2:] == ["Preview ▶", "✖ Cancel"]
    back = [await press(nadia, edit, "Preview")]
    for _ in range(5):  # preview → when → priority → attachment → texts → filters
        back.append(await press(nadia, back[-1], "Back"))
    assert "optional filters" in (back[-1].text or "")
    filters = await press(nadia, back[-1], "Stadium gate")
    assert "✅ 🚏 Stadium gate" in inline_labels(filters)
    screen = filters
    for label in ("Next", "Next", "No attachment", "Normal"):
        screen = await press(nadia, screen, label)
    shown = await press(nadia, screen, "Send now")
    assert "Registered at: Stadium gate" in (shown.text or "")
    assert "Recipients: 0\nNobody subscribed matches this audience." in (shown.text or "")


async def test_cancel_drops_the_draft(bot_api: LoopbackBotApi, running_bot: RunningBot) -> None:
    nadia = await officer(bot_api, running_bot)
    texts = await to_texts(nadia)
    await press(nadia, texts, "(ar)")
    dropped = await nadia.send("/cancel")
    assert (dropped.text or "").endswith("dropped; nothing was sent.")
    async with running_bot.services.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Broadcast)) == 0
    nothing = await nadia.send("/cancel")
    assert "nothing to cancel" in (nothing.text or "").lower(), "the menu's answer again"
    topics = await nadia.send("/broadcast")
    dropped = await press(nadia, topics, "Cancel")
    assert (dropped.text or "").endswith("dropped; nothing was sent.") and not inline_labels(
        dropped
    )


# --- quiet hours and emergencies, at a fixed moment -----------------------------------------

QUIET_NIGHT = datetime(2030, 3, 1, 23, 30, tzinfo=UTC)


def bot_at(
    api: LoopbackBotApi, database: Database, settings: Settings, moment: datetime
) -> AbstractAsyncContextManager[RunningBot]:
    """The bot, and the sender inside it, with a clock stopped at `moment`."""
    return bot_with(api, database, settings, clock=lambda: moment)


@pytest.mark.settings(**LANGUAGES, QUIET_HOURS="22:00-07:00")
async def test_quiet_hours_hold_a_normal_broadcast_but_not_an_emergency(
    bot_api: LoopbackBotApi, database: Database, settings: Settings
) -> None:
    async with bot_at(bot_api, database, settings, QUIET_NIGHT) as bot:
        person = await subscriber(bot_api, bot, "Amina", "English")
        nadia = await officer(bot_api, bot)
        shown = await compose(nadia, {"en": "Shelter B opens tomorrow."})
        assert (
            "⚠️ Quiet hours (22:00–07:00 UTC): this normal broadcast is held until "
            "2030-03-02 07:00 UTC." in (shown.text or "")
        )
        normal = await send(nadia, shown)

        shown = await compose(nadia, {"en": EN_TEXT}, priority="Emergency")
        assert "Priority: 🚨 EMERGENCY" in (shown.text or "")
        assert "Quiet hours" not in (shown.text or "")
        async with bot.services.db.transaction() as session:
            [draft] = list(
                await session.scalars(select(Broadcast).where(Broadcast.status == "draft"))
            )
            counted = await preview(session, draft_of(draft), "en", ("en",))
        assert counted.total == 1
        emergency = await send(nadia, shown)

        alert = await person.next_message()
        assert alert.text == EN_TEXT and stop_data(alert) == "unsub:evacuation"
        await finished(bot, emergency)
        await asyncio.sleep(1.0)
        assert bot_api.pending_bot_events(person.user_id) == [], "the normal one waits"
        held = await stored(bot, normal)
        assert held.status == BroadcastStatus.SCHEDULED.value
        rows = {row.broadcast_id: row for row in await outbox(bot)}
        assert rows[held.id].state == OutboxState.QUEUED.value and rows[held.id].priority == 0
        assert rows[(await stored(bot, emergency)).id].priority == 1
