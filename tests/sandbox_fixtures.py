"""Fixtures that run the real Application against the loopback Bot API server over HTTP.

Reusable by every end-to-end test: `bot_api` is the fake Telegram, `start_bot` runs the bot
(and can run it again on the same database, as after a restart), `phone` is a person.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime

import pytest
from aiohttp import web

from bot.app import BotApplication, build_application, start_application
from bot.config import SANDBOX_TOKEN, Settings
from bot.dashboard import Dashboard, mount_dashboard
from bot.sandbox.botapi import LoopbackBotApi
from bot.services import Services
from messages.contacts import Pseudonymizer
from storage.base import utcnow
from storage.database import Database
from tests.phone import Phone
from tests.test_log_privacy import capture_logs, leaks, needles_from

TEST_KEY = b"test-pseudonym-key-0123456789abcdef"
# A test with any of these talks to the loopback Bot API: its logs are scanned.
END_TO_END = frozenset({"bot_api", "phone", "running_bot", "start_bot"})


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


@pytest.fixture(autouse=True)
def logs_hold_no_personal_data(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every end-to-end test: no log line (as production writes it, at DEBUG) holds what a
    simulated person sent, their names or a Telegram id (tests/test_log_privacy.py)."""
    if not END_TO_END & set(request.fixturenames):
        yield
        return
    api = request.getfixturevalue("bot_api")  # set up first, so it is torn down after the scan
    assert isinstance(api, LoopbackBotApi)
    with capture_logs() as capture:
        yield
    found = leaks(capture.lines, needles_from(api))
    assert not found, "personal data in the logs:\n" + "\n".join(found[:20])


@asynccontextmanager
async def bot_with(
    api: LoopbackBotApi,
    database: Database,
    settings: Settings,
    clock: Callable[[], datetime] | None = None,
) -> AsyncIterator[RunningBot]:
    """The real Application (and the sender inside it) polling the loopback server; `clock`
    replaces the bot's time."""
    services = Services(
        replace(settings, api_root=api.url),
        database,
        Pseudonymizer(TEST_KEY),
        clock=clock or utcnow,
    )
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


@pytest.fixture
def start_bot(bot_api: LoopbackBotApi, database: Database, settings: Settings) -> StartBot:
    return lambda: bot_with(bot_api, database, settings)


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
