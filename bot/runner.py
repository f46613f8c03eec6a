"""`crisis-comms run`: the bot against Telegram, or, with no token, the local sandbox.

The sandbox runs in one process on the web host/port: the loopback Bot API server, the chat
page a person uses as their phone, and the bot itself, talking to each other over HTTP
exactly as the bot talks to Telegram.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

from aiohttp import web
from telegram import Update

from bot.app import BotApplication, build_application, start_application
from bot.config import SANDBOX_TOKEN, Settings
from bot.sandbox.botapi import LoopbackBotApi
from bot.services import Services
from bot.webhook import WEBHOOK_PATH, webhook_app
from messages.contacts import Pseudonymizer
from storage.database import Database, connect, upgrade

log = logging.getLogger("crisis_comms.run")


def sandbox_key(data_dir: Path) -> bytes:
    """The sandbox's pseudonym key, made once and kept, so pseudonyms survive restarts."""
    path = data_dir / "sandbox-pseudonym.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


async def open_database(settings: Settings) -> Database:
    database = connect(settings.database_url)
    await upgrade(database)
    return database


async def run(settings: Settings) -> None:
    database = await open_database(settings)
    try:
        async with _bot_api(settings) as api_root:
            settings = replace(settings, api_root=api_root)
            key = settings.pseudonym_key or sandbox_key(settings.data_dir)
            services = Services(settings, database, Pseudonymizer(key))
            await _serve(build_application(services), settings)
    finally:
        await database.dispose()


@contextlib.asynccontextmanager
async def _bot_api(settings: Settings) -> AsyncIterator[str]:
    """The Bot API server to use: Telegram's (or the configured one), or the sandbox's own."""
    if not settings.sandbox:
        yield settings.api_root
        return
    api = LoopbackBotApi(token=SANDBOX_TOKEN, host=settings.web_host, port=settings.web_port)
    await api.start()
    print(f"Crisis Comms sandbox: open {api.url} in your browser (Ctrl+C to stop)", flush=True)
    try:
        yield api.url
    finally:
        await api.stop()


async def _serve(application: BotApplication, settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with application:
        await start_application(application)
        runner = None
        if settings.mode == "webhook":
            runner = await _start_webhook(application, settings)
        else:
            assert application.updater is not None
            await application.updater.start_polling(allowed_updates=Update.ALL_TYPES)
        log.info("bot running (%s)", "sandbox" if settings.sandbox else settings.mode)
        await stop.wait()
        log.info("stopping")
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if runner is not None:
            await runner.cleanup()
        await application.stop()


async def _start_webhook(application: BotApplication, settings: Settings) -> web.AppRunner:
    assert settings.webhook_url is not None and settings.webhook_secret is not None
    runner = web.AppRunner(webhook_app(application, settings.webhook_secret))
    await runner.setup()
    await web.TCPSite(runner, settings.web_host, settings.web_port).start()
    url = settings.webhook_url.rstrip("/")
    if not url.endswith(WEBHOOK_PATH):
        url += WEBHOOK_PATH
    await application.bot.set_webhook(
        url, secret_token=settings.webhook_secret, allowed_updates=Update.ALL_TYPES
    )
    return runner
