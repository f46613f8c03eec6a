"""Web security: headers on every server we run, the webhook's guard, CSRF on every form,
how the dashboard keeps passwords and cookies, and pseudonymous ids in every export."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import re
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer
from openpyxl import load_workbook
from sqlalchemy import inspect, select, text

from bot.config import Settings, load_settings
from bot.dashboard import Dashboard, mount_dashboard
from bot.dashboard.auth import Sessions, ThrottleLimits
from bot.metrics import Metrics
from bot.operations import Probe
from bot.runner import (
    api_server_app,
    deployment_key,
    sandbox_key,
    sandbox_server,
    webhook_server_app,
)
from bot.sandbox.botapi import LoopbackBotApi
from bot.staff_api import StaffApi, mount_staff_api
from bot.web_security import DEFAULT_CSP
from bot.webhook import MAX_BODY, SECRET_HEADER, WEBHOOK_PATH, webhook_app
from feedback.report import build_report, render
from feedback.summary import Window
from messages.contacts import Contact
from staff.models import Role
from staff.tokens import issue_token
from storage.database import Database
from tests.phone import Phone
from tests.sandbox_fixtures import TEST_KEY, RunningBot
from tests.test_dashboard import PASSWORD, csrf_of
from tests.test_e2e_onboarding import onboard
from tests.test_roles import (
    Site,
    concrete,
    dashboard_table,
    fetch,
    routes_of,
    seed,
    sign_in,
)

KEY = b"web-security-test-key-0123456789abcdef"
SECRET = "s3cret-token-for-tests"
Client = TestClient[web.Request, web.Application]


# --- security headers on every server -------------------------------------------------------


@dataclass
class FakeInbox:
    """What the webhook needs: somewhere to keep an update (here, a list)."""

    kept: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, data: dict[str, Any]) -> None:
        self.kept.append(data)


def directive(csp: str, name: str) -> str | None:
    for part in csp.split(";"):
        words = part.split()
        if words and words[0] == name:
            return " ".join(words[1:])
    return None


def assert_protected(response: Any, where: str) -> None:
    headers = response.headers
    csp = headers.get("Content-Security-Policy", "")
    scripts = directive(csp, "script-src") or directive(csp, "default-src")
    assert scripts in ("'none'", "'self'"), (where, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, (where, csp)
    assert directive(csp, "frame-ancestors") == "'none'", (where, csp)
    assert headers.get("X-Frame-Options") == "DENY", where
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("Referrer-Policy") in ("no-referrer", "same-origin"), where


def url_of(method: str, path: str) -> str:
    """A concrete URL for a route: every placeholder filled with a harmless value."""
    filled = re.sub(r"\{[^}]+\}", "x", path)
    return filled + "/x.css" if path.endswith("/static") else filled


async def every_route_answers_with_headers(client: Client, app: web.Application) -> int:
    """Request every route of `app` (and a 404 beside each), whatever the answer; count them."""
    seen = 0
    for method, path in routes_of(app):
        for url in (url_of(method, path), url_of(method, path).rstrip("/") + "/no-such/page"):
            response = await client.request(
                "GET" if method == "*" else method, url, allow_redirects=False
            )
            assert_protected(response, f"{method} {url} → {response.status}")
            seen += 1
    for url in ("/", "/no-such-page", "/api/no-such", "/dashboard/no-such"):
        response = await client.get(url, allow_redirects=False)
        assert_protected(response, f"GET {url} → {response.status}")
    return seen


@pytest.fixture
def staff_api(database: Database, settings: Settings) -> StaffApi:
    return StaffApi(database, KEY, settings)


@pytest.fixture
def dashboard(database: Database, settings: Settings) -> Dashboard:
    return Dashboard(database, KEY, settings)


async def test_the_sandbox_server_sets_the_headers_everywhere(
    settings: Settings, staff_api: StaffApi, dashboard: Dashboard
) -> None:
    api = sandbox_server(settings, staff_api, dashboard)
    async with TestClient(TestServer(api.app)) as client:
        assert await every_route_answers_with_headers(client, api.app) > 30
        page = await client.get("/")
        csp = page.headers["Content-Security-Policy"]
        assert page.status == 200 and directive(csp, "script-src") == "'self'"
        assert directive(csp, "default-src") == "'none'"
        login = await client.get("/dashboard/login")
        assert login.status == 200 and "script-src" not in login.headers["Content-Security-Policy"]


async def test_the_polling_server_sets_the_headers_everywhere(
    staff_api: StaffApi, dashboard: Dashboard
) -> None:
    app = api_server_app(staff_api, dashboard, Probe(staff_api.db, Metrics()))
    async with TestClient(TestServer(app)) as client:
        assert await every_route_answers_with_headers(client, app) > 20
        health = await client.get("/healthz")
        assert health.status == 200
        assert health.headers["Content-Security-Policy"] == DEFAULT_CSP


async def test_the_webhook_server_sets_the_headers_everywhere(
    staff_api: StaffApi, dashboard: Dashboard
) -> None:
    fake = FakeInbox()
    app = webhook_server_app(fake, SECRET, staff_api, dashboard)
    async with TestClient(TestServer(app)) as client:
        assert await every_route_answers_with_headers(client, app) > 20
        refused = await client.post(WEBHOOK_PATH, json={"update_id": 1})
        assert refused.status == 403
        assert_protected(refused, "the webhook's 403")


async def test_streamed_exports_and_https_get_the_headers(
    database: Database, staff_api: StaffApi, dashboard: Dashboard
) -> None:
    """A CSV streamed before its handler returns, and HSTS behind an HTTPS proxy."""
    app = api_server_app(staff_api, dashboard, Probe(staff_api.db, Metrics()))
    staff, *_ = await seed(database)
    token = issue_token(KEY, staff[Role.RESPONDER], days=1, now=datetime.now(UTC)).token
    async with TestClient(TestServer(app)) as client:
        items = await client.get("/api/items.csv", headers={"Authorization": f"Bearer {token}"})
        assert items.status == 200
        assert_protected(items, "a streamed CSV")
        assert "Strict-Transport-Security" not in items.headers, "plain http"
        https = await client.get("/dashboard/login", headers={"X-Forwarded-Proto": "https"})
        assert https.headers["Strict-Transport-Security"].startswith("max-age=")


# --- the webhook ----------------------------------------------------------------------------


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[Client, FakeInbox]]:
    fake = FakeInbox()
    async with TestClient(TestServer(webhook_app(fake, SECRET))) as client:
        yield client, fake


def an_update(update_id: int = 7) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": 42, "type": "private", "first_name": "Amina"},
            "from": {"id": 42, "is_bot": False, "first_name": "Amina"},
            "text": "hello",
        },
    }


async def test_the_webhook_refuses_without_the_secret_and_queues_nothing(
    webhook: tuple[Client, FakeInbox],
) -> None:
    client, fake = webhook
    for headers in (
        {},
        {SECRET_HEADER: ""},
        {SECRET_HEADER: "wrong"},
        {SECRET_HEADER: SECRET[:-1]},
    ):
        response = await client.post(WEBHOOK_PATH, json=an_update(), headers=headers)
        assert response.status == 403, headers
    # The secret is checked before the body is read: a stranger's large body is not read.
    big = b"x" * (MAX_BODY + 1)
    assert (await client.post(WEBHOOK_PATH, data=big)).status == 403
    assert not fake.kept


async def raw_status(client: Client, head: bytes, body: bytes = b"") -> int:
    """Send a request byte for byte (headers no HTTP client would write); its status."""
    server = client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    length = f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
    writer.write(head.replace(b"\n", b"\r\n") + length + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return int(answer.split(b" ", 2)[1])


async def test_a_secret_header_that_is_not_utf8_is_refused_not_an_error(
    webhook: tuple[Client, FakeInbox],
) -> None:
    client, fake = webhook
    head = f"POST {WEBHOOK_PATH} HTTP/1.1\nHost: bot\n{SECRET_HEADER}: ".encode() + b"\xff\n"
    assert await raw_status(client, head, b"{}") == 403
    assert not fake.kept


async def test_the_webhook_limits_the_body_and_rejects_what_is_not_an_update(
    webhook: tuple[Client, FakeInbox],
) -> None:
    client, fake = webhook
    headers = {SECRET_HEADER: SECRET}
    response = await client.post(WEBHOOK_PATH, data=b"{" + b" " * MAX_BODY + b"}", headers=headers)
    assert response.status == 413
    for body in (b"{not json", b"[]", b'"x"', b"null", b"42", b"{}", b'{"update_id": "7"}'):
        response = await client.post(WEBHOOK_PATH, data=body, headers=headers)
        assert response.status == 400, body
    broken = {"update_id": 1, "message": {"text": "no date, no chat"}}
    assert (await client.post(WEBHOOK_PATH, json=broken, headers=headers)).status == 400
    assert not fake.kept, "nothing kept"
    response = await client.post(WEBHOOK_PATH, json=an_update(), headers=headers)
    assert response.status == 200
    [kept] = fake.kept
    assert kept["update_id"] == 7


async def test_the_webhook_compares_the_secret_in_constant_time(
    webhook: tuple[Client, FakeInbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = webhook
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(given: bytes, expected: bytes) -> bool:
        compared.append((given, expected))
        return real(given, expected)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    response = await client.post(WEBHOOK_PATH, json=an_update(), headers={SECRET_HEADER: "nope"})
    assert response.status == 403
    assert compared == [(b"nope", SECRET.encode())]


# --- CSRF on every form, cookies and passwords ----------------------------------------------


async def database_rows(database: Database) -> dict[str, list[str]]:
    """Every row of every table, to prove a refused request changed nothing."""
    async with database.transaction() as session:
        connection = await session.connection()
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        dump = {}
        for name in sorted(names):
            rows = (await session.execute(text(f'SELECT * FROM "{name}"'))).all()
            dump[name] = sorted(repr(tuple(row)) for row in rows)
        return dump


@pytest.fixture
async def site(database: Database, settings: Settings) -> AsyncIterator[Site]:
    dashboard = Dashboard(database, KEY, settings, limits=ThrottleLimits(per_name=50))
    root = web.Application()
    mount_dashboard(root, dashboard)
    staff, item, secret, broadcast = await seed(database)
    client: Client = TestClient(TestServer(root))
    await client.start_server()
    yield Site(client, root, database, staff, item, secret, broadcast)
    await client.close()


async def test_every_post_route_needs_the_csrf_token(site: Site) -> None:
    """Without a token, with a made-up one, or with one bound to another session: 403, and
    not a row of the database changes."""
    await sign_in(site, Role.ADMIN)  # admins may post every form but a sensitive item's
    posts = [(path, rule) for method, path, rule in dashboard_table(site.root) if method == "POST"]
    assert len(posts) >= 7
    someone_elses = Sessions(KEY).csrf_token("another staff member's session cookie")
    before = await database_rows(site.db)
    for path, rule in posts:
        if path == "/dashboard/login":
            continue  # below, with its pre-login cookie
        url = concrete(site, path, rule)
        for token in (None, "", "0" * 64, someone_elses):
            form = dict(rule.form) if token is None else {**rule.form, "csrf": token}
            status, body = await fetch(site, "POST", url, form)
            assert status == 403 and "out of date" in body, (url, token)
            multipart = await site.client.post(url, data=multipart_of(form), allow_redirects=False)
            assert multipart.status == 403, (url, token)
    assert await database_rows(site.db) == before, "nothing changed"
    assert (await fetch(site, "GET", "/dashboard/"))[0] == 200, "still signed in: no logout"

    site.client.session.cookie_jar.clear()
    _, page = await fetch(site, "GET", "/dashboard/login")
    login = {"username": str(site.staff[Role.ADMIN].id), "password": PASSWORD}
    for token in (None, "0" * 64, csrf_of(page) + "0"):
        form = login if token is None else {**login, "csrf": token}
        response = await site.client.post("/dashboard/login", data=form, allow_redirects=False)
        assert response.status == 403 and "cc_dashboard=" not in response.headers.get(
            "Set-Cookie", ""
        )


async def test_tokens_cookies_and_form_tokens_of_odd_bytes_are_refused_not_errors(
    site: Site, staff_api: StaffApi
) -> None:
    """Bytes that are not UTF-8 in a bearer token or a cookie, non-ASCII in a CSRF field:
    401, the login page or 403, never a 500."""
    api_root = web.Application()
    mount_staff_api(api_root, staff_api)
    async with TestClient(TestServer(api_root)) as api_client:
        head = b"GET /api/shelters HTTP/1.1\nHost: x\nAuthorization: Bearer \xff\xfe.a.b\n"
        assert await raw_status(api_client, head) == 401
        response = await api_client.get("/api/shelters", headers={"Authorization": "Bearer é"})
        assert response.status == 401
    client = cast(Client, site.client)
    head = b"GET /dashboard/ HTTP/1.1\nHost: x\nCookie: cc_dashboard=\xff\xfe\n"
    assert await raw_status(client, head) == 303, "to the login page"
    head = b"GET /dashboard/login HTTP/1.1\nHost: x\nCookie: cc_dashboard_login=\xff\n"
    assert await raw_status(client, head) == 200
    head = (
        b"POST /dashboard/login HTTP/1.1\nHost: x\nCookie: cc_dashboard_login=\xff\n"
        b"Content-Type: application/x-www-form-urlencoded\n"
    )
    assert await raw_status(client, head, b"username=1&password=x&csrf=%C3%A9") == 403
    await sign_in(site, Role.ADMIN)
    assert (await fetch(site, "POST", "/dashboard/logout", {"csrf": "é"}))[0] == 403
    assert (await fetch(site, "GET", "/dashboard/"))[0] == 200, "still signed in"


def multipart_of(fields: dict[str, str]) -> FormData:
    form = FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("document", b"%PDF", filename="notice.pdf", content_type="application/pdf")
    return form


async def test_cookies_are_secure_http_only_same_site_and_the_password_is_never_stored(
    site: Site,
) -> None:
    https = {"X-Forwarded-Proto": "https"}
    page = await site.client.get("/dashboard/login", headers=https)
    prelogin = page.headers["Set-Cookie"]
    assert "cc_dashboard_login=" in prelogin
    for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/dashboard"):
        assert flag in prelogin, flag
    form = {
        "csrf": csrf_of(await page.text()),
        "username": str(site.staff[Role.RESPONDER].id),
        "password": PASSWORD,
    }
    # The test client speaks plain http, so its jar keeps a Secure cookie to itself.
    value = page.cookies["cc_dashboard_login"].value
    cookie = {"Cookie": f"cc_dashboard_login={value}"}
    response = await site.client.post(
        "/dashboard/login", data=form, headers=https | cookie, allow_redirects=False
    )
    assert response.status == 303
    [session] = [c for c in response.headers.getall("Set-Cookie") if "cc_dashboard=" in c]
    for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/dashboard", "Max-Age=28800"):
        assert flag in session, flag
    rows = await database_rows(site.db)
    dumped = "\n".join(row for table in rows.values() for row in table)
    assert PASSWORD not in dumped, "only the hash is stored"
    assert dumped.count("$argon2id$") == len(Role), "an argon2id hash per staff member"


# --- pseudonymous ids -----------------------------------------------------------------------

TELEGRAM_ID = 7392018465  # shaped like a real Telegram id, to search every output for


def keyed_hash(key: bytes, user_id: int) -> str:
    """The pseudonym, computed here independently of messages/contacts.py."""
    return hmac.new(key, f"telegram:{user_id}".encode(), hashlib.sha256).hexdigest()[:32]


async def test_exports_and_reports_carry_the_keyed_pseudonym_never_the_telegram_id(
    bot_api: LoopbackBotApi, running_bot: RunningBot, settings: Settings
) -> None:
    user = bot_api.add_user(first_name="Amina", language_code="en", user_id=TELEGRAM_ID)
    phone = Phone(bot_api, user.id)
    await onboard(phone)
    await phone.send("No water in the camp since Monday, we need help")
    database = running_bot.services.db
    async with database.transaction() as session:
        [contact] = list(await session.scalars(select(Contact)))
        contact_id = contact.id
        assert contact.pseudonym == keyed_hash(TEST_KEY, TELEGRAM_ID)
        assert contact.pseudonym != keyed_hash(b"another deployment's key 0123456789", TELEGRAM_ID)
    rows = await database_rows(database)
    holding = {name for name, table in rows.items() if any(str(TELEGRAM_ID) in r for r in table)}
    assert holding <= {"contact_addresses"}, "the raw id only where the bot must write back"

    staff, *_ = await seed(database)  # staff, a sensitive item, a registration, a shelter
    await attach_registration(database, contact_id)
    root = web.Application()
    mount_staff_api(root, StaffApi(database, KEY, settings))
    mount_dashboard(root, Dashboard(database, KEY, settings))
    outputs: dict[str, str] = {}
    async with TestClient(TestServer(root)) as client:
        for role, paths in (
            (Role.PROTECTION_FOCAL_POINT, API_OUTPUTS),
            (Role.ADMIN, ["/api/manifests/DP-1.csv", "/api/manifests/DP-1.xlsx"]),
        ):
            token = issue_token(KEY, staff[role], days=1, now=datetime.now(UTC)).token
            for path in paths:
                response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
                assert response.status == 200, path
                outputs[path] = readable(await response.read())
        for role in (Role.PROTECTION_FOCAL_POINT, Role.VIEWER):
            await dashboard_sign_in(client, staff[role].id)
            queue = await (await client.get("/dashboard/items?include_sensitive=1")).text()
            outputs[f"queue as {role}"] = queue
            for path in ("/dashboard/", "/dashboard/shelters", "/dashboard/broadcasts"):
                outputs[f"{path} as {role}"] = await (await client.get(path)).text()
            for reference in set(re.findall(r"/dashboard/items/([A-Z0-9]{6})", queue)):
                page = await client.get(f"/dashboard/items/{reference}")
                outputs[f"item {reference}"] = await page.text()
    async with database.transaction() as session:
        now = datetime.now(UTC)
        report = await build_report(
            session,
            settings.crisis,
            settings.services.flags,
            Window(now.date() - timedelta(days=6), now.date()),
            now,
            include_sensitive=True,
        )
    for output in ("text", "markdown", "json"):
        outputs[f"report {output}"] = render(report, output)

    assert len(outputs) >= 15
    leaking = [name for name, body in outputs.items() if str(TELEGRAM_ID) in body]
    assert leaking == [], "no raw Telegram id in any report or export"
    pseudonym = keyed_hash(TEST_KEY, TELEGRAM_ID)
    assert pseudonym in outputs["/api/items.csv"] and pseudonym in outputs["/api/items.xlsx"]
    assert "No water in the camp" in outputs["/api/items.csv"], "the item is in the export"
    assert any(f"{pseudonym[:8]}…" in body for name, body in outputs.items() if "queue" in name)


API_OUTPUTS = [
    "/api/items.csv?include_sensitive=1",
    "/api/items.csv",
    "/api/items.xlsx",
    "/api/aggregates",
    "/api/aggregates.csv",
    "/api/aggregates.csv?by=item",
    "/api/registrations/summary",
    "/api/shelters",
]


def readable(body: bytes) -> str:
    """A CSV or JSON as text; an XLSX as the text of its cells."""
    if body.startswith(b"PK"):
        book = load_workbook(io.BytesIO(body))
        return "\n".join(
            ",".join("" if cell is None else str(cell) for cell in row)
            for sheet in book.worksheets
            for row in sheet.iter_rows(values_only=True)
        )
    return body.decode("utf-8-sig")


async def dashboard_sign_in(client: Client, staff_id: int) -> None:
    client.session.cookie_jar.clear()
    page = await (await client.get("/dashboard/login")).text()
    form = {"csrf": csrf_of(page), "username": str(staff_id), "password": PASSWORD}
    response = await client.post("/dashboard/login", data=form, allow_redirects=False)
    assert response.status == 303


async def attach_registration(database: Database, contact_id: int) -> None:
    from evacuation.registrations import Registration
    from messages.places import Place

    async with database.transaction() as session:
        point = await session.scalar(select(Place).where(Place.external_id == "DP-1"))
        assert point is not None
        session.add(
            Registration(
                contact_id=contact_id,
                reference="KM74PX",
                status="submitted",
                adults=1,
                departure_point_id=point.id,
                phone="+509 3412 0000",
                consent_share=True,
                submitted_at=datetime.now(UTC),
            )
        )


def test_the_key_comes_only_from_configuration(tmp_path: Path) -> None:
    configured = "k" * 40
    with_token = load_settings(
        {
            "TELEGRAM_BOT_TOKEN": "123456:ABCDEFGHIJ",
            "PSEUDONYM_KEY": configured,
            "CRISIS_DATA_DIR": str(tmp_path / "deployment"),
        }
    )
    assert deployment_key(with_token) == configured.encode()
    assert not (tmp_path / "deployment").exists(), "no key file made beside a configured key"

    # The sandbox: a random key made once per data folder, readable by its owner only.
    sandbox = load_settings({"CRISIS_DATA_DIR": str(tmp_path / "sandbox")})
    key = deployment_key(sandbox)
    path = tmp_path / "sandbox" / "sandbox-pseudonym.key"
    assert re.fullmatch(rb"[0-9a-f]{64}", key) and path.read_bytes().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert deployment_key(sandbox) == key, "kept across restarts"
    assert sandbox_key(tmp_path / "elsewhere") != key, "each data folder its own"
    # Once configured, the sandbox file is ignored.
    assert (
        deployment_key(replace(sandbox, pseudonym_key=configured.encode())) == configured.encode()
    )
