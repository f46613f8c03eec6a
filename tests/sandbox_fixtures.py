"""Fixtures that run the real Application against the loopback Bot API server over HTTP.

Reusable by every end-to-end test: `bot_api` is the fake Telegram, `start_bot` runs the bot
(and can run it again on the same database, as after a restart), `phone` is a person.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace

import pytest
from aiohttp import web

from bot.app import BotApplication, build_application, start_application
from bot.config import SANDBOX_TOKEN, Settings
from bot.dashboard import Dashboard, mount_dashboard
from bot.sandbox.botapi import LoopbackBotApi
from bot.services import Services
from messages.contacts import Pseudonymizer
from storage.database import Database
from tests.phone import Phone

TEST_KEY = b"test-pseudonym-key-0123456789abcdef"


@dataclass
class RunningBot:
    application: BotApplication
    services: Services


StartBot = Callable[[], AbstractAsyncContextManager[RunningBot]]


@pytest.fixture
async def bot_api() -> AsyncIterator[LoopbackBotApi]:
    api = LoopbackBotApi(token=SANDBOX_TOKEN, host="127.0.0.1", port=0)
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
def start_bot(bot_api: LoopbackBotApi, database: Database, settings: Settings) -> StartBot:
    services = Services(replace(settings, api_root=bot_api.url), database, Pseudonymizer(TEST_KEY))

    @asynccontextmanager
    async def running() -> AsyncIterator[RunningBot]:
        application = build_application(services)
        async with application:
            await start_application(application)
            assert application.updater is not None
            await application.updater.start_polling(poll_interval=0.0, timeout=1)
            try:
                yield RunningBot(application, services)
            finally:
                await application.updater.stop()
                await application.stop()

    return running


@pytest.fixture
async def running_bot(start_bot: StartBot) -> AsyncIterator[RunningBot]:
    async with start_bot() as bot:
        yield bot


@pytest.fixture
async def dashboard_url(database: Database, settings: Settings) -> AsyncIterator[str]:
    """The dashboard on a server of its own, as when the bot polls Telegram."""
    root = web.Application()
    mount_dashboard(root, Dashboard(database, TEST_KEY, settings))
    runner = web.AppRunner(root, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
def phone(bot_api: LoopbackBotApi, running_bot: RunningBot) -> Phone:
    return Phone.of(bot_api, first_name="Amina", language_code="en")
