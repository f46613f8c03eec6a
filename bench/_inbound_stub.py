"""A fast Bot API stub for bench/inbound.py and bench/faults.py, in a process of its own.

    python bench/_inbound_stub.py --port P

Answers every method python-telegram-bot calls with the smallest valid result: getMe a bot
user; send* (sendMessage, sendLocation, sendVenue, ...) a Message in the request's chat with
a fresh message_id; getMyCommands and getUpdates an empty list; anything else `true`. It
counts the send* calls per method and sendMessage per chat, read (and reset) over HTTP:

    GET  /stub/counts   {"methods": {"sendMessage": n, ...}, "messages": {"<chat>": n, ...}}
    POST /stub/reset    forget the counts
    GET  /readyz        200

No Telegram rate limit is enforced: the benchmarks measure the bot, not Telegram.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

BOT_USER = {
    "id": 123456,
    "is_bot": True,
    "first_name": "Bench bot",
    "username": "bench_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
EMPTY_LIST = ("getMyCommands", "getUpdates")


@dataclass
class Counts:
    methods: Counter[str] = field(default_factory=Counter)
    messages: Counter[int] = field(default_factory=Counter)  # sendMessage per chat
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


def answer(result: object) -> web.Response:
    return web.Response(
        body=json.dumps({"ok": True, "result": result}, separators=(",", ":")),
        content_type="application/json",
    )


def make_app(counts: Counts) -> web.Application:
    async def method(request: web.Request) -> web.Response:
        name = request.match_info["method"]
        counts.methods[name] += 1
        if name == "getMe":
            return answer(BOT_USER)
        if name in EMPTY_LIST:
            return answer([])
        if not name.startswith("send"):
            return answer(True)
        form = await request.post()
        raw = form.get("chat_id", "0")
        chat = int(raw) if isinstance(raw, str) and raw.lstrip("-").isdigit() else 0
        if name == "sendMessage":
            counts.messages[chat] += 1
        chat_type = "private" if chat > 0 else "group"
        message = {
            "message_id": next(counts.ids),
            "date": int(time.time()),
            "chat": {"id": chat, "type": chat_type},
            "from": BOT_USER,
        }
        if name == "sendMessage":
            message["text"] = str(form.get("text", ""))
        return answer(message)

    async def read_counts(request: web.Request) -> web.Response:
        body = {"methods": dict(counts.methods), "messages": dict(counts.messages)}
        return web.json_response(body)

    async def reset(request: web.Request) -> web.Response:
        counts.methods.clear()
        counts.messages.clear()
        return web.json_response({"ok": True})

    async def ready(request: web.Request) -> web.Response:
        return web.Response(status=200)

    app = web.Application()
    app.router.add_get("/readyz", ready)
    app.router.add_get("/stub/counts", read_counts)
    app.router.add_post("/stub/reset", reset)
    app.router.add_route("*", "/bot{token}/{method}", method)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(make_app(Counts()), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
