"""HTTP routes of the browser sandbox: the chat page and its JSON API under /sandbox/api/.

The page plays one simulated Telegram user; every action goes through the same
``LoopbackBotApi`` methods the end-to-end tests use, so the bot cannot tell the difference.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from importlib import resources
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from aiohttp import web

if TYPE_CHECKING:
    from bot.sandbox.botapi import LoopbackBotApi

API: Final = "/sandbox/api"
LONG_POLL_MAX_SECONDS: Final = 30.0
_STATIC: Final = {
    "chat.html": "text/html",
    "chat.js": "text/javascript",
    "chat.css": "text/css",
}
# No inline scripts or styles anywhere, so the page can run under a strict policy.
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class PageError(Exception):
    """An error answer of the page API: ``{"ok": false, "error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _ok(body: Any) -> web.Response:
    return web.json_response({"ok": True, **body}, headers={"Cache-Control": "no-store"})


def _guarded(handler: RouteHandler) -> RouteHandler:
    """Turns PageError / ValueError / KeyError into JSON errors with a clear message."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except PageError as error:
            status, message = error.status, error.message
        except KeyError as error:
            status, message = 404, str(error.args[0]) if error.args else "not found"
        except ValueError as error:
            status, message = 400, str(error)
        return web.json_response({"ok": False, "error": message}, status=status)

    return wrapper


async def _json_body(request: web.Request) -> dict[str, Any]:
    # Requiring JSON means a foreign web page cannot post here with a "simple" CORS request.
    if request.content_type != "application/json":
        raise PageError(415, "send the request body as application/json")
    try:
        body = await request.json()
    except ValueError:
        raise PageError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise PageError(400, "request body must be a JSON object")
    return body


def _text_field(body: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise PageError(400, f'"{key}" must be a non-empty string')
    return value


def _number(body: dict[str, Any], key: str) -> float:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PageError(400, f'"{key}" must be a number')
    return float(value)


def _int_param(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise PageError(400, f'"{name}" must be an integer') from None


class _PageRoutes:
    def __init__(self, api: LoopbackBotApi) -> None:
        self.api = api

    def _user_id(self, request: web.Request) -> int:
        user_id = _int_param(request.match_info["user_id"], "user_id")
        self.api.user(user_id)  # KeyError -> 404 with a helpful message
        return user_id

    async def index(self, request: web.Request) -> web.StreamResponse:
        return self._static_file("chat.html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        return self._static_file(request.match_info["name"])

    @staticmethod
    def _static_file(name: str) -> web.Response:
        if name not in _STATIC:
            raise web.HTTPNotFound()
        body = resources.files("bot.sandbox").joinpath("static", name).read_bytes()
        return web.Response(
            body=body, content_type=_STATIC[name], charset="utf-8", headers=_SECURITY_HEADERS
        )

    async def bot_info(self, request: web.Request) -> web.StreamResponse:
        return _ok({"bot": self.api.bot_user(), "instance": self.api.instance_id})

    async def list_users(self, request: web.Request) -> web.StreamResponse:
        return _ok({"users": [asdict(user) for user in self.api.users()]})

    async def save_user(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        raw_id = body.get("id")
        if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, int)):
            raise PageError(400, '"id" must be an integer')
        user = self.api.add_user(
            first_name=_text_field(body, "first_name") or "",
            language_code=_text_field(body, "language_code", required=False) or "",
            user_id=raw_id,
            last_name=_text_field(body, "last_name", required=False),
            username=_text_field(body, "username", required=False),
            # The person may come back after a restart while the bot still knows them.
            started=True,
        )
        return _ok({"user": asdict(user)})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        user_id = self._user_id(request)
        after = _int_param(request.query.get("after_version", "-1"), "after_version")
        timeout = min(float(_int_param(request.query.get("timeout", "0"), "timeout")),
                      LONG_POLL_MAX_SECONDS)  # fmt: skip
        # A different server instance means our version numbers are meaningless: answer now.
        if request.query.get("instance", self.api.instance_id) == self.api.instance_id:
            await self.api.wait_chat_change(user_id, after, timeout)
        return _ok(self.api.chat_view(user_id))

    async def send_text(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        message = await self.api.send_text(self._user_id(request), _text_field(body, "text") or "")
        return _ok({"message": message})

    async def press_button(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        message_id = body.get("message_id")
        if not isinstance(message_id, int):
            raise PageError(400, '"message_id" must be an integer')
        query_id = await self.api.press_button(
            self._user_id(request), message_id, _text_field(body, "data") or ""
        )
        return _ok({"callback_query_id": query_id})

    async def share_location(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        message = await self.api.share_location(
            self._user_id(request), _number(body, "latitude"), _number(body, "longitude")
        )
        return _ok({"message": message})

    async def send_sticker(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        emoji = _text_field(body, "emoji", required=False) or "👍"
        return _ok({"message": await self.api.send_sticker(self._user_id(request), emoji)})

    async def send_contact(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        phone = _text_field(body, "phone_number") or ""
        return _ok({"message": await self.api.send_contact(self._user_id(request), phone)})

    async def commands(self, request: web.Request) -> web.StreamResponse:
        user_id = _int_param(request.query.get("user_id", ""), "user_id")
        return _ok({"commands": self.api.effective_commands(user_id)})

    async def download(self, request: web.Request) -> web.StreamResponse:
        stored = self.api.stored_file(request.match_info["file_id"])
        if stored is None:
            raise PageError(404, "no such file")
        disposition = f"attachment; filename*=UTF-8''{quote(stored.file_name, safe='')}"
        return web.Response(
            body=stored.content,
            content_type="application/octet-stream",
            headers={"Content-Disposition": disposition, "X-Content-Type-Options": "nosniff"},
        )


def add_page_routes(app: web.Application, api: LoopbackBotApi) -> None:
    """Mounts the page (``/``, ``/static/...``) and its API (``/sandbox/api/...``)."""
    routes = _PageRoutes(api)
    chat = f"{API}/chats/{{user_id}}"
    app.router.add_get("/", routes.index)
    app.router.add_get("/static/{name}", routes.static)
    for method, path, handler in (
        ("GET", f"{API}/bot", routes.bot_info),
        ("GET", f"{API}/users", routes.list_users),
        ("POST", f"{API}/users", routes.save_user),
        ("GET", f"{chat}/messages", routes.messages),
        ("POST", f"{chat}/text", routes.send_text),
        ("POST", f"{chat}/callback", routes.press_button),
        ("POST", f"{chat}/location", routes.share_location),
        ("POST", f"{chat}/sticker", routes.send_sticker),
        ("POST", f"{chat}/contact", routes.send_contact),
        ("GET", f"{API}/commands", routes.commands),
        ("GET", f"{API}/files/{{file_id}}", routes.download),
    ):
        app.router.add_route(method, path, _guarded(handler))
