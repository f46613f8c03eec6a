"""The ceiling for bench/inbound.py: a bare python-telegram-bot echo bot behind a webhook.

    python bench/_inbound_echo.py --port P --api http://127.0.0.1:STUB [--concurrency 8]

An Application (no persistence, no rate limiter) with one MessageHandler that sends the
text back (or "ok" for anything without text) and one CallbackQueryHandler that answers the
tap; an aiohttp server takes the updates on /telegram/webhook (secret header checked, body
parsed into an Update) and puts them on the Application's queue after noting when each
arrived, then answers 200. Per update it records the handler time (the processor's await of
the handlers) and the time from arrival to the end of processing:

    GET /echo/stats   {"processed": n, "wall": s, "handler": [s, ...], "e2e": [s, ...]}
    GET /readyz       200 once the Application runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from telegram import Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@dataclass
class Timings:
    arrived: dict[int, float] = field(default_factory=dict)
    handler: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    first: float | None = None
    last: float | None = None


class TimedProcessor(BaseUpdateProcessor):
    """Runs `concurrency` updates at a time, timing each as bot/conversations.py does."""

    def __init__(self, concurrency: int, timings: Timings) -> None:
        super().__init__(concurrency)
        self.timings = timings

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        started = time.perf_counter()
        try:
            await coroutine
        finally:
            done = time.perf_counter()
            self.timings.handler.append(done - started)
            if isinstance(update, Update):
                arrived = self.timings.arrived.pop(update.update_id, started)
                self.timings.e2e.append(done - arrived)
            self.timings.last = done

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is not None:
        await context.bot.send_message(message.chat_id, message.text or "ok")


async def tap(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.callback_query is not None:
        await update.callback_query.answer()


def build(
    token: str, api: str, concurrency: int, timings: Timings
) -> Application[Any, Any, Any, Any, Any, Any]:
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{api}/bot")
        .concurrent_updates(TimedProcessor(concurrency, timings))
        .build()
    )
    application.add_handler(MessageHandler(filters.ALL, echo))
    application.add_handler(CallbackQueryHandler(tap))
    return application


def server(
    application: Application[Any, Any, Any, Any, Any, Any], secret: str, timings: Timings
) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        if request.headers.get(SECRET_HEADER) != secret:
            return web.Response(status=403)
        data = json.loads(await request.read())
        now = time.perf_counter()
        timings.first = timings.first or now
        update = Update.de_json(data, application.bot)
        timings.arrived[update.update_id] = now
        await application.update_queue.put(update)
        return web.Response(status=200)

    async def stats(request: web.Request) -> web.Response:
        wall = (timings.last or 0.0) - (timings.first or 0.0)
        body = {
            "processed": len(timings.handler),
            "wall": wall,
            "handler": timings.handler,
            "e2e": timings.e2e,
        }
        return web.json_response(body)

    async def ready(request: web.Request) -> web.Response:
        return web.Response(status=200 if application.running else 503)

    app = web.Application()
    app.router.add_post("/telegram/webhook", receive)
    app.router.add_get("/echo/stats", stats)
    app.router.add_get("/readyz", ready)
    return app


async def main(args: argparse.Namespace) -> None:
    timings = Timings()
    application = build(args.token, args.api, args.concurrency, timings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with application:
        await application.start()
        runner = web.AppRunner(server(application, args.secret, timings), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", args.port).start()
        await stop.wait()
        await runner.cleanup()
        await application.stop()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api", required=True, help="the Bot API's root URL (the stub)")
    parser.add_argument("--token", default="123456:bench-token")
    parser.add_argument("--secret", default="bench-webhook-secret-0123456789")
    parser.add_argument("--concurrency", type=int, default=8)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
