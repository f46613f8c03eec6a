"""Telegram's side of webhook mode, for end-to-end tests: the loopback server holds what
people send, and `delivering` posts each update to the bot's webhook in order, as Telegram
does, confirming it only after a 200 and posting it again otherwise."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web

from bot.app import BotApplication, build_application, start_application
from bot.config import SANDBOX_TOKEN, Settings
from bot.runner import inbox_worker
from bot.sandbox.botapi import LoopbackBotApi
from bot.services import Services
from bot.webhook import SECRET_HEADER, WEBHOOK_PATH, InboxKeeper, webhook_app
from bot.worker import InboxWorker
from messages.contacts import Pseudonymizer
from storage.base import utcnow
from storage.database import Database
from tests.sandbox_fixtures import TEST_KEY

SECRET = "s3cret-token-for-tests"


@dataclass
class Delivery:
    posted: int = 0
    refused: list[int] = field(default_factory=list)  # statuses other than 200


@asynccontextmanager
async def delivering(api: LoopbackBotApi, *urls: str) -> AsyncIterator[Delivery]:
    """Several `urls`: each update goes to the next in turn (a load balancer in front)."""
    delivery = Delivery()
    get_updates = f"{api.url}/bot{SANDBOX_TOKEN}/getUpdates"

    async def pump() -> None:
        offset = 0
        async with aiohttp.ClientSession() as http:
            while True:
                async with http.post(get_updates, json={"offset": offset, "timeout": 1}) as r:
                    updates = (await r.json())["result"]
                for update in updates:
                    url = urls[delivery.posted % len(urls)]
                    while True:
                        async with http.post(
                            url, json=update, headers={SECRET_HEADER: SECRET}
                        ) as response:
                            delivery.posted += 1
                            if response.status == 200:
                                break
                            delivery.refused.append(response.status)
                        await asyncio.sleep(0.05)
                    offset = update["update_id"] + 1

    task = asyncio.create_task(pump())
    try:
        yield delivery
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class WebhookBot:
    application: BotApplication
    services: Services
    url: str
    worker: InboxWorker | None


def webhook_settings(settings: Settings, api: LoopbackBotApi, **services: Any) -> Settings:
    return replace(
        settings,
        api_root=api.url,
        mode="webhook",
        webhook_url="https://bot.example.org",
        webhook_secret=SECRET,
        services=replace(settings.services, **services),
    )


@asynccontextmanager
async def webhook_bot(
    api: LoopbackBotApi,
    database: Database,
    settings: Settings,
    *,
    work: bool = True,
    name: str = "worker-1",
    clock: Callable[[], datetime] | None = None,
) -> AsyncIterator[WebhookBot]:
    """A bot process in webhook mode: its webhook keeps updates in the inbox; with `work`,
    its worker processes them (without, it is a process that crashed after answering)."""
    services = Services(
        webhook_settings(settings, api, worker_name=name),
        database,
        Pseudonymizer(TEST_KEY),
        clock=clock or utcnow,
    )
    application = build_application(services)
    async with application:
        await start_application(application)
        worker = inbox_worker(application) if work else None
        if worker is not None:
            await worker.start()
        keep = InboxKeeper(
            database, services.clock, services.metrics, worker.wake if worker else lambda: None
        )
        runner = web.AppRunner(webhook_app(keep, SECRET))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        try:
            yield WebhookBot(
                application, services, f"http://127.0.0.1:{port}{WEBHOOK_PATH}", worker
            )
        finally:
            await runner.cleanup()
            if worker is not None:
                await worker.stop()
            await application.stop()
