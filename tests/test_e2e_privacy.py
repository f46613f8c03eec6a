"""Data rights end to end: the three-level notice, nothing stored before consent, /privacy
and withdrawing consent, /mydata, /delete, and stale, forged or mistyped answers."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from bot.flows.privacy import MESSAGE_LIMIT, full_notice, pack, utf16_length
from bot.keyboards import consent_keyboard
from bot.people import Person
from bot.replies import consent_statement, consent_summary
from bot.sandbox.botapi import ChatMessage, LoopbackBotApi
from feedback.coding import default_coder
from feedback.intake import Received, take_message
from feedback.items import FeedbackItem
from feedback.replies import delivered, record_reply
from messages.bidi import LRI, PDI
from messages.contacts import CONSENT_VERSION, Contact, ContactAddress, Subscription
from messages.i18n import translations
from messages.languages import all_languages
from staff.audit import Action, AuditEvent
from storage.database import Database
from storage.models import metadata
from tests.phone import Phone, inline_data, inline_labels, reply_labels
from tests.sandbox_fixtures import RunningBot, StartBot
from tests.test_e2e_onboarding import MENU, onboard, stored_contacts

FULL_NOTICE = "📜 Full notice"
REFERENCE = re.compile(r"[A-Z0-9]{3}-[A-Z0-9]{3}")


def t(code: str, message: str) -> str:
    translated = translations(code).gettext(message)
    assert translated != message, f"{code} has no translation for {message!r}"
    return translated


async def audit(bot: RunningBot, action: Action) -> list[AuditEvent]:
    async with bot.services.db.transaction() as session:
        rows = await session.scalars(select(AuditEvent).where(AuditEvent.action == action.value))
        return list(rows)


async def contact_of(bot: RunningBot, pseudonym: str) -> Contact | None:
    async with bot.services.db.transaction() as session:
        return await session.scalar(select(Contact).where(Contact.pseudonym == pseudonym))


def pseudonym(bot: RunningBot, phone: Phone) -> str:
    return bot.services.pseudonymize("telegram", phone.user_id)


async def table_rows(database: Database) -> dict[str, int]:
    """Rows in every table the models declare."""
    async with database.transaction() as session:
        return {
            table.name: int(await session.scalar(select(func.count()).select_from(table)) or 0)
            for table in metadata.sorted_tables
        }


# --- the notice ------------------------------------------------------------------------


@pytest.mark.settings(RETENTION_DAYS="30")
async def test_three_levels_in_english(phone: Phone, running_bot: RunningBot) -> None:
    summary = await phone.send("/start")
    text = summary.text or ""
    assert text.startswith("Welcome. Humanitarian responders run this service")
    assert text.endswith("Do you agree?") and text.count("\n\n") == 2, "two lines and a question"
    assert inline_labels(summary) == ["✅ I agree", "📄 Read more", "No, thanks"]

    await phone.press_data(summary.message_id, inline_data(summary, "Read more"))
    statement = await phone.next_edit()
    assert statement.message_id == summary.message_id
    assert (statement.text or "").startswith("How we use your information")
    assert "Your rights" in (statement.text or "") and "/privacy" in (statement.text or "")
    assert inline_labels(statement) == ["✅ I agree", FULL_NOTICE, "No, thanks"]

    await phone.press_data(summary.message_id, inline_data(statement, "Full notice"))
    full = await phone.next_edit()
    body = full.text or ""
    assert body.startswith(f"Privacy notice (version {CONSENT_VERSION})")
    for heading in (
        "Who is responsible",
        "Why we use your information",
        "Legal basis: your consent",
        "vital interests",
        "What we collect",
        "What we do not collect",
        "Who receives it",
        "at most 30 days after you last write",  # RETENTION_DAYS
        "Security",
        "/mydata",
        "/delete",
        "/privacy",
    ):
        assert heading in body, heading
    assert inline_labels(full) == ["✅ I agree", "No, thanks"]
    assert await stored_contacts(running_bot) == [], "reading stores nothing"

    choose = await phone.tap(full, "I agree")
    assert choose.text == "Choose your language:"
    [contact] = await stored_contacts(running_bot)
    assert contact.consent_version == CONSENT_VERSION == "2026-11-v2"


async def test_three_levels_in_arabic(bot_api: LoopbackBotApi, running_bot: RunningBot) -> None:
    phone = Phone.of(bot_api, first_name="Huda", language_code="ar")
    summary = await phone.send("/start")
    assert (summary.text or "").startswith(
        t(
            "ar",
            "Welcome. Humanitarian responders run this service to tell you where to find help "
            "and to hear what you need.",
        )
    )
    assert t(
        "ar", "We keep only what you choose to tell us, and you can see or delete it at any time."
    ) in (summary.text or "")
    assert inline_labels(summary)[1] == "📄 " + t("ar", "Read more")

    await phone.press_data(summary.message_id, "consent:more")
    statement = await phone.next_edit()
    assert (statement.text or "").startswith(t("ar", "How we use your information"))
    assert inline_labels(statement)[1] == "📜 " + t("ar", "Full notice")

    await phone.press_data(summary.message_id, "consent:full")
    full = await phone.next_edit()
    body = full.text or ""
    assert f"{LRI}{CONSENT_VERSION}{PDI}" in body, "the Latin version isolated in Arabic"
    assert (
        t(
            "ar",
            "What we do not collect: your name, your Telegram contacts or profile, your "
            "exact location when you only search for a shelter, or anything else from your "
            "phone.",
        )
        in body
    )
    assert "180" in body and "/mydata" in body
    choose = await phone.tap(full, t("ar", "I agree"))
    assert choose.text == t("ar", "Choose your language:")


def test_every_level_fits_in_one_message_in_every_language() -> None:
    for language in all_languages():
        person = Person("p", 1, None, language.code)
        gettext = person.gettext
        for text in (
            consent_summary(person),
            consent_statement(person),
            full_notice(person, CONSENT_VERSION, 99_999),  # the longest retention allowed
        ):
            assert utf16_length(text) <= MESSAGE_LIMIT, (language.code, text[:40])
        if language.code != "en":
            assert gettext("Full notice") != "Full notice", language.code
        assert len(consent_keyboard(gettext).inline_keyboard) == 3


async def test_nothing_is_stored_before_consent(
    bot_api: LoopbackBotApi, start_bot: StartBot, database: Database
) -> None:
    seeded = await table_rows(database)
    assert len(seeded) >= 20, "every table of the schema is counted"
    assert seeded["send_pace"] == 1, "rows the migrations seed are the baseline"
    phone = Phone.of(bot_api, first_name="Amina", language_code="fr")
    async with start_bot():
        summary = await phone.send("/start")
        await phone.press_data(summary.message_id, "consent:more")
        await phone.next_edit()
        await phone.press_data(summary.message_id, "consent:full")
        await phone.next_edit()
        await phone.press_data(summary.message_id, "consent:decline")
        declined = await phone.next_message()
        assert "/start" in (declined.text or "")
        again = await phone.send("Nous n'avons pas d'eau depuis hier")
        assert inline_labels(again)[0] == "✅ " + t("fr", "I agree")
        for command in ("/mydata", "/delete", "/privacy"):
            answer = await phone.send(command)
            if command != "/privacy":
                assert answer.text == t("fr", "We hold nothing about you.")
                answer = await phone.next_message()
            assert inline_labels(answer)[0] == "✅ " + t("fr", "I agree"), command
        await phone.api.send_voice(phone.user_id)
        assert inline_labels(await phone.next_message())[0] == "✅ " + t("fr", "I agree")
        after = await table_rows(database)
    changed = {name: count for name, count in after.items() if count != seeded[name]}
    assert changed == {}, "nothing is stored before consent"


async def test_text_and_old_buttons_while_reading_the_notice(
    phone: Phone, running_bot: RunningBot
) -> None:
    summary = await phone.send("/start")
    await phone.press_data(summary.message_id, "consent:more")
    await phone.next_edit()
    typed = await phone.send("yes ok")
    assert inline_labels(typed) == ["✅ I agree", "📄 Read more", "No, thanks"], "notice again"
    for data in ("consent:maybe", "priv:del:yes:1", "priv:data"):  # old, forged, nothing held
        await phone.press_data(summary.message_id, data)
        answered = await phone.next_event("answer_callback")
        assert answered.callback_text == "This button is no longer active.", data
        again = await phone.next_message()
        assert inline_labels(again)[0] == "✅ I agree", data
    assert await stored_contacts(running_bot) == []
    # The first notice's "I agree" still works: it was the person's own notice.
    await phone.press_data(summary.message_id, "consent:accept")
    choose = await phone.next_message()
    assert choose.text == "Choose your language:"
    assert len(await stored_contacts(running_bot)) == 1


# --- /privacy and withdrawing consent ---------------------------------------------------


async def test_withdrawing_consent(phone: Phone, running_bot: RunningBot) -> None:
    await onboard(phone)
    receipt = await phone.send("We have no water since yesterday")
    assert "Thank you for your message" in (receipt.text or "")
    statement = await phone.send("/privacy")
    assert (statement.text or "").startswith("How we use your information")
    assert "Do you agree?" not in (statement.text or "")
    assert inline_labels(statement) == [
        "📄 See my data",
        "🗑 Delete my data",
        "✋ Withdraw consent",
        FULL_NOTICE,
    ]
    await phone.press_data(statement.message_id, "priv:full")
    full = await phone.next_edit()
    assert "Legal basis" in (full.text or "") and FULL_NOTICE not in inline_labels(full)

    ask = await phone.tap(statement, "Withdraw consent")
    assert (ask.text or "").startswith("Withdraw your consent?")
    assert inline_labels(ask) == ["✋ Yes, withdraw my consent", "No, keep my consent"]
    typed = await phone.send("yes withdraw")  # words instead of a tap: an ordinary message
    assert "Thank you for your message" in (typed.text or "")
    await phone.press_data(ask.message_id, "priv:wd:no")
    kept = await phone.next_edit()
    assert kept.text == "Nothing has changed." and inline_labels(kept) == []
    assert await audit(running_bot, Action.CONSENT_WITHDRAWN) == []

    ask = await phone.tap(statement, "Withdraw consent")
    done = await phone.tap(ask, "Yes, withdraw my consent")
    text = done.text or ""
    assert text.startswith("Your consent is withdrawn.") and "/delete" in text
    assert (done.reply_markup or {}).get("remove_keyboard") is True, "the menu goes"
    [event] = await audit(running_bot, Action.CONSENT_WITHDRAWN)
    assert (event.actor, event.target, event.staff_id) == ("person", None, None)
    contact = await contact_of(running_bot, pseudonym(running_bot, phone))
    assert contact is not None and contact.consent_at is None and contact.consent_withdrawn_at

    # A second tap on the same "yes" does nothing more.
    await phone.press_data(ask.message_id, inline_data(ask, "Yes, withdraw"))
    answered = await phone.next_event("answer_callback")
    assert answered.callback_text == "This button is no longer active."
    assert inline_labels(await phone.next_message())[0] == "✅ I agree", "the notice"
    assert len(await audit(running_bot, Action.CONSENT_WITHDRAWN)) == 1

    # Their next message is not kept: it shows the notice.
    notice = await phone.send("hello, are you there?")
    assert inline_labels(notice) == ["✅ I agree", "📄 Read more", "No, thanks"]
    async with running_bot.services.db.transaction() as session:
        texts = list(await session.scalars(select(FeedbackItem.text).order_by(FeedbackItem.id)))
    assert texts == ["We have no water since yesterday", "yes withdraw"], "kept, nothing new"

    # /privacy now says so, without the withdraw button.
    withdrawn = await phone.send("/privacy")
    assert (withdrawn.text or "").startswith("You withdrew your consent on ")
    assert "✋ Withdraw consent" not in inline_labels(withdrawn)

    # Agreeing again: the same contact, back to the menu, the default topics again.
    choose = await phone.tap(notice, "I agree")
    assert reply_labels(choose) == MENU
    again = await contact_of(running_bot, pseudonym(running_bot, phone))
    assert again is not None and again.id == contact.id and again.has_consented
    updates = await phone.send("🔔 Updates")
    assert "📢 General alerts: Everywhere" in (updates.text or "")


# --- /mydata ---------------------------------------------------------------------------


async def add_items(bot: RunningBot, phone: Phone, texts: list[str]) -> list[FeedbackItem]:
    """Items as the intake keeps them, written directly (sending them would trip the pace)."""
    async with bot.services.db.transaction() as session:
        contact = await session.scalar(
            select(Contact).where(Contact.pseudonym == pseudonym(bot, phone))
        )
        assert contact is not None
        items: list[FeedbackItem] = []
        for number, text in enumerate(texts):
            received = Received(contact.id, text, "en", bot.services.clock(), "telegram", number)
            items.extend((await take_message(session, received, default_coder())).items)
        return items


async def receive_all(phone: Phone) -> list[ChatMessage]:
    """Every message the bot sends until the one with the menu keyboard (the last)."""
    messages = [await phone.next_message()]
    while not reply_labels(messages[-1]):
        messages.append(await phone.next_message())
    return messages


async def test_mydata_lists_what_we_hold(phone: Phone, running_bot: RunningBot) -> None:
    await onboard(phone)
    await phone.send("The bridge to the camp is broken")
    await phone.api.send_voice(phone.user_id)
    await phone.next_message()
    async with running_bot.services.db.transaction() as session:
        item = await session.scalar(
            select(FeedbackItem).where(FeedbackItem.text == "The bridge to the camp is broken")
        )
        assert item is not None
        reply = await record_reply(session, item, None, "A team goes there today", item.created_at)
        await delivered(session, item, reply, item.created_at)
        reference = item.reference

    await phone.api.send_text(phone.user_id, "/mydata")
    [message] = await receive_all(phone)
    text = message.text or ""
    for expected in (
        "This is everything we hold about you.",
        "Language: English (you chose it)",
        f"You agreed to our notice (version {CONSENT_VERSION}) on ",
        "With us since: ",
        "📢 General alerts: Everywhere",
        "Your messages to us: 2",
        f"{reference[:3]}-{reference[3:]}",
        "The bridge to the camp is broken",
        "Files: 1",
        "A team goes there today",
        "answered",
    ):
        assert expected in text, expected
    assert str(phone.user_id) not in text, "never the Telegram id"
    assert reply_labels(message) == MENU


async def test_mydata_splits_long_holdings_between_items(
    phone: Phone, running_bot: RunningBot
) -> None:
    await onboard(phone)
    texts = [f"Message {n}: " + "water " * 500 for n in range(6)]  # about 3,000 characters
    await add_items(running_bot, phone, texts)
    await phone.api.send_text(phone.user_id, "/mydata")
    messages = await receive_all(phone)
    assert len(messages) >= 4
    bodies = [m.text or "" for m in messages]
    assert all(utf16_length(body) <= MESSAGE_LIMIT for body in bodies)
    for n, original in enumerate(texts):
        holding = [body for body in bodies if f"Message {n}:" in body]
        assert len(holding) == 1 and original.strip() in holding[0], "an item is never cut"
    assert [reply_labels(m) for m in messages] == [[]] * (len(messages) - 1) + [MENU]


def test_pack_splits_an_oversized_block_without_losing_anything() -> None:
    long_line = "𓀀" * 3000  # outside the BMP: two UTF-16 units each
    blocks = ["heading", "line one\n" + long_line, "tail"]
    messages = pack(blocks)
    assert all(utf16_length(m) <= MESSAGE_LIMIT for m in messages)
    assert "".join(messages).replace("\n", "") == "".join(blocks).replace("\n", "")


async def test_mydata_in_arabic_isolates_latin_text(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    phone = Phone.of(bot_api, first_name="Huda", language_code="en")
    await onboard(phone, "العربية")
    await phone.send("Water needed at camp 7")
    await phone.api.send_text(phone.user_id, "/mydata")
    [message] = await receive_all(phone)
    text = message.text or ""
    assert text.startswith(t("ar", "This is everything we hold about you."))
    assert f"{LRI}Water needed at camp 7{PDI}" in text
    found = REFERENCE.search(text)
    assert found is not None and f"{LRI}{found.group(0)}{PDI}" in text
    assert t("ar", "Your messages to us: {count}").split("{count}")[0] in text


# --- /delete ---------------------------------------------------------------------------


async def test_delete_cancel_confirm_and_stale_taps(phone: Phone, running_bot: RunningBot) -> None:
    await onboard(phone)
    await phone.send("My passport was stolen at the border")
    before = await contact_of(running_bot, pseudonym(running_bot, phone))
    assert before is not None

    ask = await phone.send("/delete")
    assert (ask.text or "").startswith("Delete everything we hold about you?")
    assert inline_labels(ask) == ["🗑 Yes, delete everything", "No, keep my data"]
    await phone.press_data(ask.message_id, "priv:del:no")
    kept = await phone.next_edit()
    assert kept.text == "Nothing has changed."
    # Typing instead of tapping: an ordinary message, nothing deleted.
    typed = await phone.send("yes delete")
    assert "Thank you for your message" in (typed.text or "")
    # A forged confirmation for somebody else's contact does nothing.
    await phone.press_data(ask.message_id, f"priv:del:yes:{before.id + 1000}")
    answered = await phone.next_event("answer_callback")
    assert answered.callback_text == "This button is no longer active."
    await phone.next_message()  # the current step: the menu
    assert await audit(running_bot, Action.ERASURE) == []

    ask = await phone.send("/delete")
    done = await phone.tap(ask, "Yes, delete everything")
    text = done.text or ""
    assert text.startswith("Your data is deleted:")
    assert "• Messages: 2" in text and "anonymous counts" in text
    assert (done.reply_markup or {}).get("remove_keyboard") is True
    [event] = await audit(running_bot, Action.ERASURE)
    assert (event.actor, event.target) == ("person", None)
    assert event.detail is not None and event.detail.startswith("items=2 ")
    assert await contact_of(running_bot, pseudonym(running_bot, phone)) is None
    async with running_bot.services.db.transaction() as session:
        texts = set(await session.scalars(select(FeedbackItem.text)))
        assert texts == {""}, "the words are gone, the items counted"
        assert await session.scalar(select(func.count()).select_from(ContactAddress)) == 0
        assert await session.scalar(select(func.count()).select_from(Subscription)) == 0

    # A second tap on "yes": nothing left to act on.
    await phone.press_data(ask.message_id, inline_data(ask, "Yes, delete everything"))
    answered = await phone.next_event("answer_callback")
    assert answered.callback_text == "This button is no longer active."
    notice = await phone.next_message()
    assert inline_labels(notice)[0] == "✅ I agree"
    assert len(await audit(running_bot, Action.ERASURE)) == 1

    # Coming back: the notice, and agreeing makes a fresh contact.
    summary = await phone.send("/start")
    assert inline_labels(summary) == ["✅ I agree", "📄 Read more", "No, thanks"]
    choose = await phone.tap(summary, "I agree")
    assert choose.text == "Choose your language:", "nothing remembered, not even the language"
    fresh = await contact_of(running_bot, pseudonym(running_bot, phone))
    assert fresh is not None and fresh.id != before.id
    # The old confirmation, tapped once more, is not for this new contact.
    await phone.press_data(ask.message_id, inline_data(ask, "Yes, delete everything"))
    answered = await phone.next_event("answer_callback")
    assert answered.callback_text == "This button is no longer active."
    assert await contact_of(running_bot, pseudonym(running_bot, phone)) is not None


@pytest.mark.parametrize("data", ["priv:", "priv:nope", "priv:del:yes:x", "priv:wd:maybe"])
async def test_malformed_privacy_buttons(phone: Phone, data: str) -> None:
    await onboard(phone)
    statement = await phone.send("/privacy")
    await phone.press_data(statement.message_id, data)
    answered = await phone.next_event("answer_callback")
    assert answered.callback_text == "This button is no longer active."
    step = await phone.next_message()
    assert step.text == "Main menu. Choose what you need:"


async def test_data_rights_commands_work_inside_a_registration(phone: Phone) -> None:
    await onboard(phone)
    question = await phone.send("🚌 Register for evacuation or transport")
    assert "Who are you registering?" in (question.text or "")
    ask = await phone.send("/delete")
    assert (ask.text or "").startswith("Delete everything we hold about you?")
    done = await phone.tap(ask, "Yes, delete everything")
    assert "• Registrations: 1" in (done.text or "")
    # The registration's old buttons are stale now; the person sees the notice.
    await phone.press_data(question.message_id, inline_data(question, "Just me"))
    answered = await phone.next_event("answer_callback")
    assert answered.callback_text == "This button is no longer active."
