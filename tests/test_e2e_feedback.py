"""Feedback intake end to end: every free text, voice note, photo and file is kept as an item
with a receipt, in the person's language; nothing before consent; nothing lost on restart."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bot.sandbox.botapi import LoopbackBotApi
from feedback.items import FeedbackItem
from messages.i18n import translations
from tests.phone import Phone, reply_labels
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


async def test_emoji_long_and_repeated_messages_are_all_kept(
    phone: Phone, running_bot: RunningBot
) -> None:
    await onboard(phone)
    texts = ["🙏🙏🙏", "x" * 4096, *["same message"] * 10]
    for text in texts:
        receipt = await phone.send(text)
        assert (receipt.text or "").startswith("Thank you for your message.")
    items = await stored_items(running_bot)
    assert [item.text for item in items] == texts
    assert len({item.reference for item in items}) == len(texts), "one reference each"


async def test_items_survive_a_restart(bot_api: LoopbackBotApi, start_bot: StartBot) -> None:
    phone = Phone.of(bot_api, first_name="Amina", language_code="en")
    async with start_bot():
        await onboard(phone)
        await phone.send("Our tent is flooded")
    async with start_bot() as bot:
        [item] = await stored_items(bot)
        assert item.text == "Our tent is flooded"
