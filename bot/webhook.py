"""Webhook mode: Telegram posts updates to our aiohttp server.

The secret token header is compared in constant time before the body is read, and the body
size is limited, so a stranger who finds the URL can neither inject updates nor exhaust
memory: 403 without the secret, 413 past MAX_BODY, 400 for a body that is not an update
(nothing is queued in any of these cases). Security headers as on every server we run.
"""

from __future__ import annotations

import hmac
import json
import logging

from aiohttp import web
from telegram import Update

from bot.app import BotApplication
from bot.web_security import protect

log = logging.getLogger("crisis_comms.webhook")
WEBHOOK_PATH = "/telegram/webhook"
MAX_BODY = 1024 * 1024  # Telegram updates are small; a megabyte is generous
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def webhook_app(application: BotApplication, secret: str) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        # The header's raw bytes back (any byte may arrive), compared in constant time.
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, secret.encode()):
            return web.Response(status=403)
        try:
            data = json.loads(await request.read())
            # Update.de_json assumes an object with a numeric id.
            if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
                raise ValueError("not an update")
            update = Update.de_json(data, application.bot)
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("webhook: malformed update body")
            return web.Response(status=400)
        await application.update_queue.put(update)
        return web.Response(status=200)

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = protect(web.Application(client_max_size=MAX_BODY))
    app.router.add_post(WEBHOOK_PATH, receive)
    app.router.add_get("/healthz", health)
    return app
