"""End to end: what people send that the bot does not expect. Each gets a clear answer or
is ignored on purpose, and the bot keeps working."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from bot.logs import configure
from bot.sandbox.botapi import LoopbackBotApi
from messages.contacts import Contact
from tests.phone import Phone, inline_labels, reply_labels
from tests.sandbox_fixtures import RunningBot
from tests.test_e2e_onboarding import MENU, onboard

UNKNOWN = "Sorry, I do not know that command. Send /help to see what I can do."
MEDIA = "For now I can only read text and button taps. Please type your message in words."


async def test_unknown_command(phone: Phone) -> None:
    answer = await phone.send("/teleport")
    assert answer.text == UNKNOWN


async def test_a_sticker_gets_a_text_only_answer(phone: Phone) -> None:
    """A sticker says nothing we could keep; voice notes, photos and files are kept
    (tests/test_e2e_feedback.py)."""
    await onboard(phone)
    await phone.api.send_sticker(phone.user_id)
    answer = await phone.next_message()
    assert answer.text == MEDIA
    assert reply_labels(answer) == MENU


async def test_media_before_consent_shows_the_notice(phone: Phone) -> None:
    await phone.api.send_sticker(phone.user_id)
    answer = await phone.next_message()
    assert inline_labels(answer)[0] == "✅ I agree"


async def test_location_outside_a_flow(phone: Phone) -> None:
    await onboard(phone)
    await phone.api.share_location(phone.user_id, 18.54, -72.34)
    answer = await phone.next_message()
    assert "location" in (answer.text or "")


async def test_edited_messages_are_ignored(phone: Phone) -> None:
    await onboard(phone)
    sent = await phone.api.send_text(phone.user_id, "❓ Help")
    await phone.next_message()
    await phone.api.edit_user_message(phone.user_id, sent["message_id"], "🏠 Find a shelter")
    # Updates are processed in order: the next answer is to /menu, nothing came for the edit.
    answer = await phone.send("/menu")
    assert answer.text == "Main menu. Choose what you need:"


async def test_groups_get_only_a_pointer_to_the_private_chat(
    bot_api: LoopbackBotApi, phone: Phone
) -> None:
    group_id = -100123
    await bot_api.send_group_text(phone.user_id, group_id, "hello everyone")
    await bot_api.send_group_text(phone.user_id, group_id, "/start")
    [event] = await bot_api.wait_for_bot(group_id, count=1, timeout=10)
    assert event.message is not None
    assert "private chat" in (event.message.text or "")
    assert bot_api.pending_bot_events(group_id) == []


async def test_a_very_long_message(phone: Phone) -> None:
    """Telegram delivers at most 4,096 characters a message; clients split a longer text."""
    await onboard(phone)
    text = "We need help " * 400  # 5,200 characters
    for part in (text[:4096], text[4096:]):
        answer = await phone.send(part)
        assert "Thank you for your message" in (answer.text or "")
        assert len(answer.text or "") <= 4096


async def test_emoji_and_wrong_script_text(phone: Phone) -> None:
    await onboard(phone)
    for text in ("🙏🙏🙏", "مرحبا أحتاج مساعدة", "\u200f\u200e.", "Ẓ̴̡a̷l̵g̶o̸"):
        answer = await phone.send(text)
        assert answer.text, f"no answer to {text!r}"


@pytest.mark.parametrize("data", ["lang:xx", "consent:maybe", "menu:teleport", "garbage", "lang:"])
async def test_stale_or_malformed_buttons(phone: Phone, data: str) -> None:
    await onboard(phone)
    menu_message = phone.api.transcript(phone.user_id)[-1]
    await phone.press_data(menu_message.message_id, data)
    answered = await phone.next_event("answer_callback")
    assert answered.callback_text == "This button is no longer active."
    step = await phone.next_message()
    assert step.text == "Main menu. Choose what you need:"


async def test_language_button_before_consent_is_stale(phone: Phone) -> None:
    notice = await phone.send("/start")
    await phone.press_data(notice.message_id, "lang:fr")
    answered = await phone.next_event("answer_callback")
    assert answered.callback_text == "This button is no longer active."
    again = await phone.next_message()
    assert inline_labels(again)[0] == "✅ I agree"


async def test_a_person_who_blocked_the_bot(phone: Phone, running_bot: RunningBot) -> None:
    await onboard(phone)
    phone.api.block(phone.user_id)
    await phone.api.send_text(phone.user_id, "❓ Help")
    # The next update is processed only after the failed one: wait for it to be handled.
    other = Phone.of(phone.api, first_name="Other", language_code="en")
    assert (await other.send("/teleport")).text == UNKNOWN
    async with running_bot.services.db.transaction() as session:
        contact = await session.scalar(select(Contact))
        assert contact is not None and contact.unreachable_at is not None
    phone.api.unblock(phone.user_id)
    menu = await phone.send("/start")
    assert menu.text == "Main menu. Choose what you need:"
    async with running_bot.services.db.transaction() as session:
        contact = await session.scalar(select(Contact))
        assert contact is not None and contact.unreachable_at is None


@pytest.fixture
def production_log() -> Iterator[io.StringIO]:
    """The log as `crisis-comms run` writes it, at its most verbose level."""
    buffer = io.StringIO()
    handler = configure("DEBUG", buffer)
    yield buffer
    logging.getLogger().removeHandler(handler)


async def test_a_crashing_handler_apologises_and_logs_nothing_personal(
    phone: Phone, monkeypatch: pytest.MonkeyPatch, production_log: io.StringIO
) -> None:
    await onboard(phone)

    def broken(*_args: object) -> str:
        raise RuntimeError("secret: We have no water at Rue Lamarre 12, call +509 3700 0000")

    monkeypatch.setattr("bot.flows.menu.help_text", broken)
    answer = await phone.send("❓ Help")
    assert answer.text == "Sorry, something went wrong. Please try again."
    # And the bot still works.
    assert (await phone.send("/menu")).text == "Main menu. Choose what you need:"
    log = production_log.getvalue()
    assert "handler failed" in log and "RuntimeError" in log
    for private in ("Rue Lamarre", "+509", "Help", "Amina", str(phone.user_id), "/menu"):
        assert private not in log


async def test_third_party_logs_are_redacted(production_log: io.StringIO) -> None:
    logging.getLogger("telegram.ext.ExtBot").critical(
        "Error while parsing updates! Received data was %s", [{"text": "I am at Rue Lamarre"}]
    )
    try:
        raise ValueError("Rue Lamarre")
    except ValueError:
        logging.getLogger("httpx").exception("request to /bot123:SECRET/getMe failed")
    logging.getLogger("crisis_comms.test").warning("own line kept: %s", "update_id=5")
    log = production_log.getvalue()
    assert "Error while parsing updates! Received data was [redacted]" in log
    assert "[redacted] message at test_e2e_bad_input" in log and "(ValueError)" in log
    assert "own line kept: update_id=5" in log
    assert "Rue Lamarre" not in log and "SECRET" not in log


async def test_rate_limited_by_telegram_the_reply_still_arrives(phone: Phone) -> None:
    await onboard(phone)
    phone.api.fail_next("sendMessage", error_code=429, retry_after=1)
    answer = await phone.send("/menu")
    assert answer.text == "Main menu. Choose what you need:"
