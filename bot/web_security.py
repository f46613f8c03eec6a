"""Security headers on every web server we run: the sandbox (chat page, loopback Bot API),
the staff API, the dashboard and the webhook.

Applied with `protect(app)` where each aiohttp application is built. It hooks
`on_response_prepare` rather than being a middleware, because a hook also reaches the answers
a middleware never sees: a 404 for a path no route matches, an exception aiohttp turns into
a response, a static file, and a streamed export whose headers are sent before its handler
returns.

Headers a handler or an inner middleware already set are kept (the dashboard's own CSP, the
chat page's `script-src 'self'`); everything else gets the strictest policy: nothing may be
loaded, framed, sniffed or sent as a referrer. `Strict-Transport-Security` is added when the
request came over HTTPS (directly or through a proxy that says so).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

# No script, style or image for an answer that did not ask for one: JSON, CSV, errors.
DEFAULT_CSP: Final = (
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
HEADERS: Final = {
    "Content-Security-Policy": DEFAULT_CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
HSTS: Final = "max-age=31536000"


def is_https(request: web.BaseRequest) -> bool:
    """Whether the client reached us over TLS (a terminating proxy sends X-Forwarded-Proto)."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


async def add_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if is_https(request):
        response.headers.setdefault("Strict-Transport-Security", HSTS)


def protect(app: web.Application) -> web.Application:
    """Give every answer of `app` (and of the applications mounted in it) the headers."""
    if add_headers not in app.on_response_prepare:
        app.on_response_prepare.append(add_headers)
    return app
