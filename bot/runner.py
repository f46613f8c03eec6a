"""`crisis-comms run`: the bot against Telegram, or, with no token, the local sandbox.

The sandbox runs in one process on the web host/port: the loopback Bot API server, the chat
page a person uses as their phone, and the bot itself, talking to each other over HTTP
exactly as the bot talks to Telegram. On an empty database it loads the demo data set
(messages/demo.py), so that every service can be tried at once.

The staff web API (bot/staff_api.py) is served under /api, and the responders' dashboard
(bot/dashboard/) under /dashboard, in every mode: on the sandbox's server, on the webhook's
server, or, when polling Telegram, on a server of its own on the web host/port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import secrets
import signal
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

from aiohttp import web
from telegram import Update

from bot.app import BotApplication, build_application, concurrency, start_application
from bot.config import SANDBOX_TOKEN, Settings
from bot.dashboard import Dashboard, mount_dashboard
from bot.metrics import Metrics
from bot.operations import Probe, mount_operations
from bot.sandbox.botapi import LoopbackBotApi
from bot.services import Services, services_of_app
from bot.staff_api import StaffApi, mount_staff_api, standalone_app
from bot.web_security import protect
from bot.webhook import WEBHOOK_PATH, InboxKeeper, Keep, webhook_app
from bot.worker import InboxWorker, default_name
from feedback.coding import default_coder
from messages.contacts import Pseudonymizer
from messages.demo import load_demo_data
from messages.detection import preload
from storage.base import utcnow
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


def deployment_key(settings: Settings) -> bytes:
    """The pseudonym key: configured, or the sandbox's own. Staff API tokens derive from it."""
    return settings.pseudonym_key or sandbox_key(settings.data_dir)


def load_models() -> None:
    """Language detection and the coder, loaded before serving: the first person is not kept
    waiting for them, and their loading's passing peak of memory comes while the process is
    still small. Then the C allocator is asked to give that passing memory back (glibc keeps
    freed memory for reuse otherwise: ~35 MB here)."""
    preload()
    default_coder()
    libc = ctypes.util.find_library("c")
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to give back
        ctypes.CDLL(libc).malloc_trim(0)


async def open_database(settings: Settings) -> Database:
    database = connect(settings.database_url)
    await upgrade(database)
    return database


async def run(settings: Settings) -> None:
    load_models()
    database = await open_database(settings)
    try:
        key = deployment_key(settings)
        if not settings.services.protection_chats:
            # Sensitive reports are still kept, hidden and answered; nobody is alerted.
            log.warning("PROTECTION_CHATS is not set: sensitive reports will alert nobody")
        staff_api = StaffApi(database, key, settings)
        dashboard = Dashboard(database, key, settings)
        ready = asyncio.Event()
        probe = Probe(database, Metrics(), ready.is_set)
        if settings.sandbox:
            await _load_demo_data(database)
        async with _bot_api(settings, staff_api, dashboard, probe) as api_root:
            settings = replace(settings, api_root=api_root)
            services = Services(settings, database, Pseudonymizer(key), metrics=probe.metrics)
            await _serve(build_application(services), settings, staff_api, dashboard, ready)
    finally:
        await database.dispose()


async def work(settings: Settings, port: int | None) -> int:
    """`crisis-comms worker`: one more process working the webhook's inbox on the shared
    database, with /healthz, /readyz and /metrics on `port` when given. Stops cleanly on
    SIGINT/SIGTERM (updates in hand finish, the rest go back to the queue)."""
    if settings.mode != "webhook":
        print("crisis-comms worker: workers process the webhook's inbox; set TELEGRAM_MODE=webhook")
        return 2
    load_models()
    database = await open_database(settings)
    try:
        services = Services(settings, database, Pseudonymizer(deployment_key(settings)))
        application = build_application(services)
        ready = asyncio.Event()
        stop = _stop_on_signals()
        async with application:
            await start_application(application)
            worker = inbox_worker(application)
            await worker.start()
            runner = None
            if port is not None:
                ops = mount_operations(protect(web.Application()), probe_of(application, ready))
                runner = await _start_site(ops, replace(settings, web_port=port))
            ready.set()
            log.info("worker running")
            await stop.wait()
            ready.clear()
            await worker.stop()
            if runner is not None:
                await runner.cleanup()
            await application.stop()
    finally:
        await database.dispose()
    return 0


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def _load_demo_data(database: Database) -> None:
    async with database.transaction() as session:
        if await load_demo_data(session, utcnow()):
            log.info("sandbox: the database was empty, demo data loaded")


@contextlib.asynccontextmanager
async def _bot_api(
    settings: Settings, staff_api: StaffApi, dashboard: Dashboard, probe: Probe | None = None
) -> AsyncIterator[str]:
    """The Bot API server to use: Telegram's (or the configured one), or the sandbox's own,
    which also serves the staff API and the dashboard."""
    if not settings.sandbox:
        yield settings.api_root
        return
    api = sandbox_server(settings, staff_api, dashboard, probe)
    await api.start()
    print(f"Crisis Comms sandbox: open {api.url} in your browser (Ctrl+C to stop)", flush=True)
    try:
        yield api.url
    finally:
        await api.stop()


def inbox_worker(application: BotApplication) -> InboxWorker:
    """This process's worker on the inbox (webhook mode, and `crisis-comms worker`)."""
    services = services_of_app(application)
    return InboxWorker(
        application,
        services.db,
        services.settings.services.worker_name or default_name(),
        services.clock,
        services.metrics,
        concurrency(services),
        services.settings.services.flood_window,
    )


def sandbox_server(
    settings: Settings, staff_api: StaffApi, dashboard: Dashboard, probe: Probe | None = None
) -> LoopbackBotApi:
    """The sandbox's one server: loopback Bot API, chat page, staff API and dashboard."""
    api = LoopbackBotApi(token=SANDBOX_TOKEN, host=settings.web_host, port=settings.web_port)
    _mount_common(api.app, staff_api, dashboard, probe)
    return api


def api_server_app(
    staff_api: StaffApi, dashboard: Dashboard, probe: Probe | None = None
) -> web.Application:
    """The server of polling mode with a token: the staff API and the dashboard."""
    app = standalone_app(staff_api)
    mount_dashboard(app, dashboard)
    if probe is not None:
        mount_operations(app, probe)
    return app


def webhook_server_app(
    keep: Keep,
    secret: str,
    staff_api: StaffApi,
    dashboard: Dashboard | None,
    probe: Probe | None = None,
) -> web.Application:
    """The server of webhook mode: the webhook, the staff API and the dashboard."""
    app = webhook_app(keep, secret)
    _mount_common(app, staff_api, dashboard, probe)
    return app


def _mount_common(
    app: web.Application, staff_api: StaffApi, dashboard: Dashboard | None, probe: Probe | None
) -> None:
    """/api, /dashboard and the operations endpoints (/healthz, /readyz, /metrics)."""
    mount_staff_api(app, staff_api)
    if dashboard is not None:
        mount_dashboard(app, dashboard)
    if probe is not None:
        mount_operations(app, probe)


async def _serve(
    application: BotApplication,
    settings: Settings,
    staff_api: StaffApi,
    dashboard: Dashboard,
    ready: asyncio.Event,
) -> None:
    stop = _stop_on_signals()
    async with application:
        await start_application(application)
        runner = worker = None
        if settings.mode == "webhook":
            worker = inbox_worker(application)
            await worker.start()
            runner = await _start_webhook(
                application, settings, staff_api, dashboard, worker, probe_of(application, ready)
            )
        else:
            assert application.updater is not None
            await application.updater.start_polling(allowed_updates=Update.ALL_TYPES)
            if not settings.sandbox:  # the sandbox's server already serves the staff API
                runner = await _start_api_site(
                    staff_api, dashboard, settings, probe_of(application, ready)
                )
        ready.set()
        log.info("bot running (%s)", "sandbox" if settings.sandbox else settings.mode)
        await stop.wait()
        ready.clear()
        log.info("stopping")
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if runner is not None:
            await runner.cleanup()
        if worker is not None:
            await worker.stop()
        await application.stop()


async def _start_site(app: web.Application, settings: Settings) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.web_host, settings.web_port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def probe_of(application: BotApplication, ready: asyncio.Event | None = None) -> Probe:
    services = services_of_app(application)
    running = ready.is_set if ready is not None else lambda: bool(application.running)
    return Probe(services.db, services.metrics, running)


async def _start_api_site(
    staff_api: StaffApi, dashboard: Dashboard, settings: Settings, probe: Probe | None = None
) -> web.AppRunner | None:
    """Polling needs no server but the staff API and the dashboard do. When the address is
    taken, the bot still serves people: the problem is logged, not fatal."""
    try:
        runner = await _start_site(api_server_app(staff_api, dashboard, probe), settings)
    except OSError as problem:
        log.error(
            "staff API not served: cannot listen on %s:%s (%s); set WEB_HOST and WEB_PORT",
            settings.web_host,
            settings.web_port,
            problem.strerror or problem,
        )
        return None
    log.info(
        "staff API on http://%s:%s/api, dashboard on /dashboard",
        settings.web_host,
        settings.web_port,
    )
    return runner


async def _start_webhook(
    application: BotApplication,
    settings: Settings,
    staff_api: StaffApi,
    dashboard: Dashboard | None = None,
    worker: InboxWorker | None = None,
    probe: Probe | None = None,
) -> web.AppRunner:
    assert settings.webhook_url is not None and settings.webhook_secret is not None
    services = services_of_app(application)
    keep = InboxKeeper(
        services.db, services.clock, services.metrics, worker.wake if worker else lambda: None
    )
    app = webhook_server_app(keep, settings.webhook_secret, staff_api, dashboard, probe)
    runner = await _start_site(app, settings)
    url = settings.webhook_url.rstrip("/")
    if not url.endswith(WEBHOOK_PATH):
        url += WEBHOOK_PATH
    await application.bot.set_webhook(
        url, secret_token=settings.webhook_secret, allowed_updates=Update.ALL_TYPES
    )
    return runner
