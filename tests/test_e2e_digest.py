"""The responders' chat end to end: the daily digest once a day (a restart sends nothing
again), a notice once for each new gap flag, never what people wrote, and nothing at all
without RESPONDERS_CHAT."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from bot.flows.digest import send_notices
from bot.sandbox.botapi import ChatMessage, LoopbackBotApi
from feedback.items import FeedbackItem
from storage.references import spoken
from tests.phone import Phone
from tests.sandbox_fixtures import RunningBot, StartBot
from tests.test_exports import add_item, person

GROUP = -600
DIGEST_SETTINGS = pytest.mark.settings(RESPONDERS_CHAT=str(GROUP), DIGEST_HOUR="0")
SECRET = "my neighbour Karim at 12 Olive Street has no insulin"


async def open_group(api: LoopbackBotApi) -> None:
    staff = Phone.of(api, first_name="Rana", language_code="en")
    await api.send_group_text(staff.user_id, GROUP, "responders' group")


def bot_messages(api: LoopbackBotApi) -> list[ChatMessage]:
    return [message for message in api.transcript(GROUP) if message.from_bot]


async def seed(bot: RunningBot, *, hours_ago: float, urgent: bool = False) -> FeedbackItem:
    async with bot.services.db.transaction() as session:
        contact = await person(session, f"p{hours_ago}", 1000 + int(hours_ago))
        at = bot.services.clock() - timedelta(hours=hours_ago)
        return await add_item(session, contact, SECRET, at, sectors=[3], urgent=urgent)


@DIGEST_SETTINGS
async def test_the_digest_goes_once_and_a_new_flag_once(
    bot_api: LoopbackBotApi, start_bot: StartBot
) -> None:
    await open_group(bot_api)
    async with start_bot() as bot:
        await seed(bot, hours_ago=1)
        await seed(bot, hours_ago=2)
        async with bot.services.db.transaction() as session:
            hidden = await person(session, "hidden", 77)
            await add_item(session, hidden, "he hurt me", bot.services.clock(), sensitive=True)
        assert await send_notices(bot.application.bot, bot.services) == 1
        [digest] = bot_messages(bot_api)
        text = digest.text or ""
        assert text.startswith("Feedback digest, ")
        assert "Last 7 days" in text and ": 2 messages." in text, "never the sensitive item"
        assert "Sectors: Transport Assistance for Affected Populations: 2" in text
        assert "Areas: XY01: 2" in text, "the code when the gazetteer has no name"
        assert "Waiting for an answer: 2" in text and "No gap flags." in text
        assert "insulin" not in text and "hurt" not in text, "never what people wrote"
        assert await send_notices(bot.application.bot, bot.services) == 0

    # A restart sends nothing again; a new flag (an urgent item past its target) goes once.
    async with start_bot() as bot:
        assert await send_notices(bot.application.bot, bot.services) == 0
        urgent = await seed(bot, hours_ago=5, urgent=True)
        assert await send_notices(bot.application.bot, bot.services) == 1
        notice = bot_messages(bot_api)[-1].text or ""
        assert notice.startswith("New gap flag: ") and spoken(urgent.reference) in notice
        assert "insulin" not in notice
        assert await send_notices(bot.application.bot, bot.services) == 0
        # The next day's digest lists the flag, with its reference code at most.
        services = bot.services
        tomorrow = replace(services, clock=lambda: services.clock() + timedelta(days=1))
        assert await send_notices(bot.application.bot, tomorrow) == 1
        next_digest = bot_messages(bot_api)[-1].text or ""
        assert "Gap flags (1):" in next_digest and spoken(urgent.reference) in next_digest
        assert "insulin" not in next_digest
    assert len(bot_messages(bot_api)) == 3


@pytest.mark.settings(RESPONDERS_CHAT=str(GROUP), DIGEST_HOUR="23", TIMEZONE="Pacific/Kiritimati")
async def test_the_digest_waits_for_its_hour(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    await open_group(bot_api)
    services = running_bot.services
    # 09:00 UTC is 23:00 at UTC+14, 08:59 UTC is still 22:59 there.
    day = services.clock().replace(hour=8, minute=59, second=0, microsecond=0)
    early = replace(services, clock=lambda: day)
    on_time = replace(services, clock=lambda: day + timedelta(minutes=1))
    assert await send_notices(running_bot.application.bot, early) == 0
    assert await send_notices(running_bot.application.bot, on_time) == 1
    local_date = (day + timedelta(hours=14, minutes=1)).date().isoformat()
    assert (bot_messages(bot_api)[0].text or "").startswith(f"Feedback digest, {local_date}")


@pytest.mark.settings(DIGEST_HOUR="0")
async def test_nothing_is_sent_without_a_responders_chat(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    await open_group(bot_api)
    await seed(running_bot, hours_ago=5, urgent=True)
    assert await send_notices(running_bot.application.bot, running_bot.services) == 0
    assert bot_messages(bot_api) == []
