"""Webhook mode: updates posted to our aiohttp server reach the bot; strangers are refused."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bot.app import build_application, start_application
from bot.sandbox.botapi import LoopbackBotApi
from bot.webhook import SECRET_HEADER, WEBHOOK_PATH, webhook_app
from tests.sandbox_fixtures import StartBot

SECRET = "s3cret-token-for-tests"


@pytest.fixture
async def webhook_url(start_bot: StartBot, bot_api: LoopbackBotApi) -> AsyncIterator[str]:
    async with start_bot() as polling_bot:
        services = polling_bot.services
    application = build_application(services)
    async with application:
        await start_application(application)
        runner = web.AppRunner(webhook_app(application, SECRET))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
        await runner.cleanup()
        await application.stop()


def start_update(user_id: int, update_id: int = 1) -> dict[str, object]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "Amina"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Amina", "language_code": "en"},
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def test_webhook_checks_the_secret_and_delivers(
    webhook_url: str, bot_api: LoopbackBotApi
) -> None:
    user = bot_api.add_user(first_name="Amina", language_code="en")
    # Telegram lets a bot write only to people who wrote first: open the chat. That message
    # waits in the loopback server's getUpdates queue, which nobody polls in webhook mode.
    await bot_api.send_text(user.id, "/start")
    async with aiohttp.ClientSession() as http:
        async with http.post(webhook_url, json=start_update(user.id)) as response:
            assert response.status == 403
        headers = {SECRET_HEADER: "wrong"}
        async with http.post(webhook_url, json=start_update(user.id), headers=headers) as response:
            assert response.status == 403
        headers = {SECRET_HEADER: SECRET}
        async with http.post(webhook_url, data=b"{not json", headers=headers) as response:
            assert response.status == 400
        big = b"x" * (2 * 1024 * 1024)
        async with http.post(webhook_url, data=big, headers=headers) as response:
            assert response.status == 413
        async with http.post(webhook_url, json=start_update(user.id), headers=headers) as response:
            assert response.status == 200
    [event] = await bot_api.wait_for_bot(user.id, count=1, timeout=10)
    assert event.message is not None and "Humanitarian responders" in (event.message.text or "")
