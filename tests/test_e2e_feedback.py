"""Feedback intake end to end: every free text, voice note, photo and file is kept as an item
with a receipt, in the person's language; nothing before consent; nothing lost on restart."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bot.sandbox.botapi import LoopbackBotApi
from feedback.codes import current_codes
from feedback.items import FeedbackItem
from messages.i18n import translations
from tests.phone import Phone, inline_data, inline_labels, reply_labels
from tests.sandbox_fixtures import RunningBot, StartBot
from tests.test_e2e_onboarding import MENU, onboard

SPOKEN = re.compile(r"[A-Z0-9]{3}-[A-Z0-9]{3}")


async def stored_items(bot: RunningBot) -> list[FeedbackItem]:
    async with bot.services.db.transaction() as session:
        rows = await session.scalars(select(FeedbackItem).order_by(FeedbackItem.id))
        return list(rows)


async def test_free_text_becomes_an_item_with_a_receipt(
    phone: Phone, running_bot: RunningBot
) -> None:
    await onboard(phone)
    receipt = await phone.send("We have no water since yesterday in the camp")
    text = receipt.text or ""
    assert text.startswith("Thank you for your message. Your reference is ")
    assert reply_labels(receipt) == MENU
    [item] = await stored_items(running_bot)
    assert item.text == "We have no water since yesterday in the camp"
    assert item.language == "en" and item.status == "new" and item.channel == "telegram"
    match = SPOKEN.search(text)
    assert match is not None and match.group(0).replace("-", "") == item.reference
    assert str(phone.user_id) not in repr(vars(item)), "no Telegram id on the item"


async def test_receipt_in_the_persons_language_and_the_language_detected(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    phone = Phone.of(bot_api, first_name="Huda", language_code="en")
    await onboard(phone, "العربية")
    receipt = await phone.send("لا يوجد ماء في المخيم منذ يومين")
    arabic = translations("ar").gettext
    expected_start = arabic(
        "Thank you for your message. Your reference is {reference}. The response team "
        "reads every message and will answer here when they can."
    ).split("{reference}")[0]
    assert (receipt.text or "").startswith(expected_start)
    [item] = await stored_items(running_bot)
    assert item.language == "ar"


@pytest.mark.parametrize("kind", ["photo", "voice", "document"])
async def test_voice_photo_and_files_are_kept_as_attachments(
    phone: Phone, running_bot: RunningBot, kind: str
) -> None:
    await onboard(phone)
    sender = getattr(phone.api, f"send_{kind}")
    await sender(phone.user_id)
    receipt = await phone.next_message()
    assert (receipt.text or "").startswith("Thank you. We have kept what you sent (reference ")
    assert reply_labels(receipt) == MENU
    [item] = await stored_items(running_bot)
    [attachment] = item.attachments
    assert attachment.kind == kind and attachment.file_id


async def test_a_photo_caption_is_the_items_text(phone: Phone, running_bot: RunningBot) -> None:
    await onboard(phone)
    await phone.api.send_photo(phone.user_id, caption="The bridge is broken")
    await phone.next_message()
    [item] = await stored_items(running_bot)
    assert item.text == "The bridge is broken" and item.attachments[0].kind == "photo"


async def test_nothing_is_kept_before_consent(phone: Phone, running_bot: RunningBot) -> None:
    notice = await phone.send("help us please")
    assert "Do you agree?" in (notice.text or "")
    await phone.api.send_voice(phone.user_id)
    notice = await phone.next_message()
    assert "Do you agree?" in (notice.text or "")
    assert await stored_items(running_bot) == []


async def test_emoji_only_and_mixed_languages_are_kept(
    phone: Phone, running_bot: RunningBot
) -> None:
    await onboard(phone)
    for text in ("🙏🙏🙏", "We need مياء and food للأطفال please"):
        receipt = await phone.send(text)
        assert (receipt.text or "").startswith("Thank you for your message.")
    emoji, mixed = await stored_items(running_bot)
    assert emoji.text == "🙏🙏🙏" and emoji.type == "other"
    assert mixed.text.startswith("We need") and mixed.type == "request"


async def test_ten_thousand_characters_arrive_whole(phone: Phone, running_bot: RunningBot) -> None:
    """Telegram splits a long text into messages of 4,096; every part is kept, uncut."""
    await onboard(phone)
    words = ("water " * 1700)[:10_000]
    parts = [words[i : i + 4096] for i in range(0, len(words), 4096)]
    for part in parts:
        receipt = await phone.send(part)
        assert (receipt.text or "").startswith("Thank you for your message.")
    items = await stored_items(running_bot)
    assert [item.text for item in items] == [part.strip() for part in parts]
    assert sum(len(item.text) for item in items) >= 9_990


async def test_the_same_message_ten_times_is_one_item_and_then_a_slow_down(
    phone: Phone, running_bot: RunningBot
) -> None:
    await onboard(phone)
    first = await phone.send("same message")
    assert (first.text or "").startswith("Thank you for your message.")
    reference = SPOKEN.search(first.text or "")
    assert reference is not None
    answers = [(await phone.send("same message")).text or "" for _ in range(7)]
    for answer in answers:
        assert answer.startswith("We already have this message")
        assert reference.group(0) in answer
    notice = await phone.send("same message")  # the 9th within a minute
    assert "You have sent many messages in a short time" in (notice.text or "")
    await phone.api.send_text(phone.user_id, "same message")  # the 10th: kept, no answer
    help_answer = await phone.send("/help")
    assert "/menu" in (help_answer.text or ""), "nothing was sent for the 10th message"
    [item] = await stored_items(running_bot)
    assert item.repeats == 9


async def test_a_flood_is_kept_whole_with_one_polite_notice(
    phone: Phone, running_bot: RunningBot
) -> None:
    await onboard(phone)
    texts = [f"message number {n}: the road to the camp is blocked" for n in range(12)]
    answers = []
    for text in texts[:9]:
        answers.append((await phone.send(text)).text or "")
    assert all(a.startswith("Thank you for your message.") for a in answers[:8])
    assert "You have sent many messages in a short time" in answers[8]
    for text in texts[9:]:
        await phone.api.send_text(phone.user_id, text)
    help_answer = await phone.send("/help")
    assert "/menu" in (help_answer.text or ""), "no receipt while flooding"
    assert [item.text for item in await stored_items(running_bot)] == texts


async def test_tell_us_what_you_need_picks_needs_then_words(
    phone: Phone, running_bot: RunningBot
) -> None:
    await onboard(phone)
    picker = await phone.send("💬 Tell us what you need")
    assert picker.text == "What do you need? Tap one or more, then Done."
    assert "🏠 Shelter" in inline_labels(picker) and "Done" in inline_labels(picker)
    await phone.press_data(picker.message_id, inline_data(picker, "Shelter"))
    picker = await phone.next_edit()
    assert "✅ 🏠 Shelter" in inline_labels(picker)
    await phone.press_data(picker.message_id, inline_data(picker, "Health"))
    picker = await phone.next_edit()
    await phone.press_data(picker.message_id, inline_data(picker, "Done"))
    noted = await phone.next_message()
    assert (noted.text or "").startswith("Noted. Your reference is ")
    [item] = await stored_items(running_bot)
    assert item.needs == "shelter,health" and item.text == ""
    added = await phone.send("We are 6 people near the school, my mother is sick")
    assert (added.text or "").startswith("Thank you. We added this to your reference")
    [item] = await stored_items(running_bot)
    assert item.text.startswith("We are 6 people") and item.type == "request"
    async with running_bot.services.db.transaction() as session:
        codes = await current_codes(session, item)
    assert {"shelter", "health"} <= codes.clusters and {2, 4} <= codes.sectors


async def test_done_without_a_need_asks_for_one(phone: Phone, running_bot: RunningBot) -> None:
    await onboard(phone)
    picker = await phone.send("💬 Tell us what you need")
    await phone.press_data(picker.message_id, inline_data(picker, "Done"))
    event = await phone.next_event("answer_callback")
    assert event.callback_text == "Tap at least one need, or simply write your message."
    assert await stored_items(running_bot) == []


async def test_items_survive_a_restart(bot_api: LoopbackBotApi, start_bot: StartBot) -> None:
    phone = Phone.of(bot_api, first_name="Amina", language_code="en")
    async with start_bot():
        await onboard(phone)
        await phone.send("Our tent is flooded")
    async with start_bot() as bot:
        [item] = await stored_items(bot)
        assert item.text == "Our tent is flooded"
