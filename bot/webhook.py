"""Webhook mode: Telegram posts updates to our aiohttp server, which keeps each one in the
inbox (inbox/updates.py) before answering 200. Workers process them from there
(bot/worker.py), so a crash after the answer loses nothing, and a repeated delivery of the
same update_id is kept once and processed once.

The secret token header is compared in constant time before the body is read, and the body
size is limited, so a stranger who finds the URL can neither inject updates nor exhaust
memory: 403 without the secret, 413 past MAX_BODY, 400 for a body that is not an update
(nothing is kept in any of these cases). When the database cannot be reached the answer is
503 and Telegram delivers the update again later. Security headers as on every server we run.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from telegram import Update

from bot.metrics import Metrics
from bot.web_security import protect
from bot.worker import is_transient
from inbox import updates as inbox
from storage.database import Database

log = logging.getLogger("crisis_comms.webhook")
WEBHOOK_PATH = "/telegram/webhook"
MAX_BODY = 1024 * 1024  # Telegram updates are small; a megabyte is generous
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# Keeps one update (a JSON object with an integer update_id) durably, or raises.
Keep = Callable[[dict[str, Any]], Awaitable[None]]


class InboxKeeper:
    """Writes updates to the inbox and wakes this process's worker.

    Group commit: while one transaction is being written, the updates that arrive meanwhile
    wait and go together in the next one, so a burst costs a few commits, not one each.
    Every caller still gets its answer only once its update is committed.
    """

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        metrics: Metrics,
        on_kept: Callable[[], None] = lambda: None,
    ) -> None:
        self.db, self.clock, self.metrics, self.on_kept = db, clock, metrics, on_kept
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def __call__(self, data: dict[str, Any]) -> None:
        kept: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((data, kept))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        await kept

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                async with self.db.transaction() as session:
                    new = await inbox.receive(session, [data for data, _ in batch], self.clock())
            except Exception as error:  # each caller answers for its own update
                for _, kept in batch:
                    if not kept.done():
                        kept.set_exception(error)
                continue
            self.metrics.received.labels(outcome="new").inc(new)
            self.metrics.received.labels(outcome="repeat").inc(len(batch) - new)
            for _, kept in batch:
                if not kept.done():
                    kept.set_result(None)
            if new:
                self.on_kept()


def parse_update(body: bytes) -> dict[str, Any]:
    """The update's JSON object, checked to be an update; ValueError otherwise."""
    try:
        data = json.loads(body)
        # Update.de_json assumes an object with a numeric id.
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            raise ValueError("not an update")
        Update.de_json(data, None)
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ValueError("not an update") from None
    return data


def webhook_app(keep: Keep, secret: str) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        # The header's raw bytes back (any byte may arrive), compared in constant time.
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, secret.encode()):
            return web.Response(status=403)
        try:
            data = parse_update(await request.read())
        except ValueError:
            log.warning("webhook: malformed update body")
            return web.Response(status=400)
        try:
            await keep(data)
        except Exception as error:
            if not is_transient(error):
                raise
            # Not kept: Telegram keeps the update and delivers it again.
            log.warning("webhook: database unreachable (%s), answered 503", type(error).__name__)
            return web.Response(status=503)
        return web.Response(status=200)

    app = protect(web.Application(client_max_size=MAX_BODY))
    app.router.add_post(WEBHOOK_PATH, receive)
    return app
