"""The loopback server's own log of accepted sendMessage calls (`record_sends`)."""

from __future__ import annotations

import pytest
from telegram import Bot
from telegram.error import RetryAfter

from bot.sandbox.botapi import LoopbackBotApi, RateLimits, SentRecord

TOKEN = "123456:SANDBOX-TOKEN"
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*`retry_after` will be of type:telegram.warnings.PTBDeprecationWarning"
)


class ManualClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


async def test_sent_log_records_accepted_messages_only() -> None:
    clock = ManualClock()
    api = LoopbackBotApi(token=TOKEN, enforce_rate_limits=True, clock=clock, record_sends=True)
    amina = api.add_user("Amina", user_id=7001, started=True)
    omar = api.add_user("Omar", user_id=7002, started=True)
    await api.start()
    try:
        async with Bot(TOKEN, base_url=api.base_url) as bot:
            first = await bot.send_message(amina.id, "one")
            clock.now += 0.25
            second = await bot.send_message(omar.id, "two")
            for i in range(RateLimits().private_burst - 1):
                await bot.send_message(amina.id, f"burst {i}")
            with pytest.raises(RetryAfter):  # refused: not in the log
                await bot.send_message(amina.id, "one too many")
            await bot.send_location(omar.id, latitude=1.0, longitude=2.0)  # not sendMessage
    finally:
        await api.stop()
    assert api.rate_limited_count == 1
    assert api.sent_log[:2] == [
        SentRecord(amina.id, 500.0, first.message_id),
        SentRecord(omar.id, 500.25, second.message_id),
    ]
    assert [record.chat_id for record in api.sent_log] == [amina.id, omar.id, amina.id, amina.id]


async def test_sent_log_stays_empty_unless_asked() -> None:
    api = LoopbackBotApi(token=TOKEN)
    user = api.add_user("Amina", user_id=7001, started=True)
    await api.start()
    try:
        async with Bot(TOKEN, base_url=api.base_url) as bot:
            await bot.send_message(user.id, "hello")
    finally:
        await api.stop()
    assert api.sent_log == []
    assert len([m for m in api.transcript(user.id) if m.from_bot]) == 1
