"""The responders' dashboard through aiohttp's test client: sign-in, CSRF, roles, the queue,
an item's codes, status and replies; and the bot delivering replies recorded there."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.dashboard import Dashboard, mount_dashboard
from bot.dashboard.auth import LoginThrottle, Sessions, ThrottleLimits
from bot.sandbox.botapi import LoopbackBotApi
from evacuation.registrations import Registration
from feedback.codes import CodeSet, Correction, correct
from feedback.items import FeedbackItem, ItemCode, record_item
from feedback.replies import Reply, record_reply
from feedback.review import ItemEvent
from messages.contacts import Contact, ContactAddress, record_consent
from messages.i18n import translations
from messages.places import Place, PlaceKind
from messages.shelters import Shelter, ShelterStatus
from privacy.erasure import erase_contact
from staff.models import Role, StaffMember
from staff.passwords import (
    PasswordError,
    hash_password,
    needs_rehash,
    set_password,
    verify_password,
)
from storage.database import Database
from storage.references import spoken
from tests.clock import FakeClock
from tests.phone import Phone
from tests.sandbox_fixtures import RunningBot
from tests.test_e2e_onboarding import onboard

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Site:
    client: TestClient[Any, Any]
    dashboard: Dashboard
    db: Database
    clock: FakeClock
    staff: dict[Role, StaffMember] = field(default_factory=dict)
    items: dict[str, FeedbackItem] = field(default_factory=dict)


async def add_member(
    session: AsyncSession, name: str, role: Role, password: str | None = PASSWORD
) -> StaffMember:
    member = StaffMember(
        name=name,
        role=role,
        created_at=NOW - timedelta(days=40),
        password_hash=hash_password(password) if password else None,
    )
    session.add(member)
    await session.flush()
    return member


async def add_item(
    session: AsyncSession,
    contact: Contact,
    text: str,
    at: datetime,
    *,
    sectors: Iterable[int] = (),
    clusters: Iterable[str] = (),
    sensitive: bool = False,
    area: tuple[str, str] = ("XY01", "Riverside"),
) -> FeedbackItem:
    item = await record_item(session, contact.id, text, "en", at, channel="telegram", area=area)
    codes = CodeSet(
        type="request",
        sectors=frozenset(sectors),
        clusters=frozenset(clusters),
        sensitive=sensitive,
        sensitive_categories=frozenset({"gbv"}) if sensitive else frozenset(),
    )
    await correct(session, item, codes, None, at)
    return item


async def seed(session: AsyncSession, site: Site) -> None:
    for role in Role:
        site.staff[role] = await add_member(session, f"Staff {role.value}", role)
    amina = await record_consent(session, "a1b2c3d4e5f6a7b8", 555001, "ar", NOW - timedelta(days=9))
    old = NOW - timedelta(days=5)
    site.items["tent"] = await add_item(
        session, amina, "Our tent is flooded, we need a shelter", old, sectors=[2]
    )
    site.items["water"] = await add_item(
        session, amina, "No water in the camp since Monday", old, sectors=[9], clusters=["wash"]
    )
    site.items["secret"] = await add_item(
        session, amina, "He hit me at the distribution", old, sectors=[10], sensitive=True
    )


@asynccontextmanager
async def open_site(
    database: Database, settings: Settings, limits: ThrottleLimits
) -> AsyncIterator[Site]:
    """The dashboard on a test server with a stopped clock and the seeded items."""
    clock = FakeClock(NOW)
    dashboard = Dashboard(
        database, b"test-deployment-key-0123456789abcdef", settings, clock=clock, limits=limits
    )
    root = web.Application()
    mount_dashboard(root, dashboard)
    client: TestClient[Any, Any] = TestClient(TestServer(root))
    await client.start_server()
    result = Site(client, dashboard, database, clock)
    async with database.transaction() as session:
        await seed(session, result)
    try:
        yield result
    finally:
        await client.close()


@pytest.fixture
async def site(database: Database, settings: Settings) -> AsyncIterator[Site]:
    async with open_site(database, settings, ThrottleLimits(per_name=3, per_address=5)) as site:
        yield site


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match is not None, "the page has a form with a CSRF token"
    return match.group(1)


async def login(
    site: Site, username: str, password: str = PASSWORD, **headers: str
) -> tuple[int, str, str]:
    """(status, Location or body, Set-Cookie) of a login with a fresh cookie jar."""
    site.client.session.cookie_jar.clear()
    page = await site.client.get("/dashboard/login")
    assert page.status == 200
    response = await site.client.post(
        "/dashboard/login",
        data={"csrf": csrf_of(await page.text()), "username": username, "password": password},
        headers=headers,
        allow_redirects=False,
    )
    body = response.headers.get("Location", "") or await response.text()
    cookies = ", ".join(response.headers.getall("Set-Cookie", []))
    return response.status, body, cookies


async def login_as(site: Site, role: Role) -> None:
    status, location, _ = await login(site, str(site.staff[role].id))
    assert (status, location) == (303, "/dashboard/"), location


async def get(site: Site, path: str) -> tuple[int, str]:
    """(status, Location of a redirect or the page)."""
    response = await site.client.get(path, allow_redirects=False)
    return response.status, response.headers.get("Location", "") or await response.text()


async def post(site: Site, path: str, page: str, **fields: Any) -> tuple[int, str]:
    """Post a form with the CSRF token of `page` (a dashboard path)."""
    _, html = await get(site, page)
    response = await site.client.post(
        path, data={"csrf": csrf_of(html), **fields}, allow_redirects=False
    )
    return response.status, response.headers.get("Location", "") or await response.text()


async def fresh(site: Site, name: str) -> FeedbackItem:
    async with site.db.transaction() as session:
        item = await session.get(FeedbackItem, site.items[name].id)
        assert item is not None
        return item


# --- passwords ------------------------------------------------------------------------------


async def test_passwords_are_hashed_checked_and_strong_enough(database: Database) -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert verify_password(stored, PASSWORD) and not verify_password(stored, PASSWORD + "!")
    assert not verify_password(None, PASSWORD) and not verify_password("not a hash", PASSWORD)
    assert not needs_rehash(stored)
    assert needs_rehash("$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$bm90aGluZw")
    for weak in ("short", " padded password ", "x" * 2000):
        with pytest.raises(PasswordError):
            hash_password(weak)
    async with database.transaction() as session:
        member = await add_member(session, "Rana", Role.RESPONDER, password=None)
        await set_password(session, member.id, PASSWORD)
        assert member.password_hash and verify_password(member.password_hash, PASSWORD)
        member.active = False
        with pytest.raises(PasswordError, match="not active"):
            await set_password(session, member.id, PASSWORD)
        with pytest.raises(PasswordError, match="unknown"):
            await set_password(session, 9999, PASSWORD)


# --- signing in -----------------------------------------------------------------------------


async def test_login_success_failure_and_session_cookie(site: Site) -> None:
    status, location = await get(site, "/dashboard/items?sector=2")
    target = urlsplit(location)
    assert (status, target.path) == (303, "/dashboard/login")
    assert parse_qs(target.query) == {"next": ["/dashboard/items?sector=2"]}
    responder = site.staff[Role.RESPONDER]

    status, body, _ = await login(site, str(responder.id), "wrong password!!")
    assert status == 401 and "Wrong staff id or password." in body
    status, body, _ = await login(site, "Staff responder")  # the name is not the username
    assert status == 401
    status, body, _ = await login(site, str(site.staff[Role.VIEWER].id) + "0")
    assert status == 401

    status, location, cookies = await login(site, str(responder.id))
    assert (status, location) == (303, "/dashboard/")
    assert "cc_dashboard=" in cookies and "HttpOnly" in cookies
    assert "SameSite=Strict" in cookies and "Path=/dashboard" in cookies
    assert "Secure" not in cookies, "plain http in the test"
    status, html = await get(site, "/dashboard/")
    assert status == 200 and "Staff responder · responder" in html

    _, _, cookies = await login(site, str(responder.id), **{"X-Forwarded-Proto": "https"})
    assert "Secure" in cookies

    # Sessions expire after 8 hours of the dashboard's clock.
    site.clock.now = NOW + timedelta(hours=8, minutes=1)
    status, location = await get(site, "/dashboard/")
    assert status == 303 and location.startswith("/dashboard/login")


async def test_the_member_is_read_again_on_every_request(site: Site) -> None:
    responder = site.staff[Role.RESPONDER]
    await login_as(site, Role.RESPONDER)
    assert (await get(site, "/dashboard/items"))[0] == 200
    async with site.db.transaction() as session:
        member = await session.get(StaffMember, responder.id)
        assert member is not None
        member.role = Role.VIEWER
    assert (await get(site, "/dashboard/items"))[0] == 403, "a new role applies at once"
    async with site.db.transaction() as session:
        await set_password(session, responder.id, "a brand new password")
    status, location = await get(site, "/dashboard/")
    assert status == 303 and "/dashboard/login" in location, "a new password ends sessions"
    await login(site, str(responder.id), "a brand new password")
    assert (await get(site, "/dashboard/"))[0] == 200
    async with site.db.transaction() as session:
        member = await session.get(StaffMember, responder.id)
        assert member is not None
        member.active = False
    assert (await get(site, "/dashboard/"))[0] == 303, "deactivated: logged out"
    assert (await login(site, str(responder.id), "a brand new password"))[0] == 401


async def test_logout_needs_the_csrf_token_and_ends_the_session(site: Site) -> None:
    await login_as(site, Role.RESPONDER)
    response = await site.client.post("/dashboard/logout", allow_redirects=False)
    assert response.status == 411 or response.status == 403
    status, location = await post(site, "/dashboard/logout", "/dashboard/")
    assert (status, location) == (303, "/dashboard/login")
    assert (await get(site, "/dashboard/"))[0] == 303


async def test_login_attempts_are_limited_per_name_and_per_address(site: Site) -> None:
    responder, focal = site.staff[Role.RESPONDER], site.staff[Role.PROTECTION_FOCAL_POINT]
    for _ in range(3):
        assert (await login(site, str(responder.id), "guessing wrong..."))[0] == 401
    status, body, _ = await login(site, str(responder.id))
    assert status == 429 and "Too many failed attempts" in body, "even the right password"
    # Another name from the same address still works until the address limit.
    assert (await login(site, str(focal.id)))[:2] == (303, "/dashboard/")
    for _ in range(2):
        assert (await login(site, str(focal.id), "guessing wrong..."))[0] == 401
    assert (await login(site, str(site.staff[Role.ADMIN].id)))[0] == 429, "5 from one address"
    site.clock.now = NOW + timedelta(minutes=16)
    assert (await login(site, str(responder.id)))[:2] == (303, "/dashboard/")


def test_the_throttle_forgets_old_keys_and_successes() -> None:
    throttle = LoginThrottle(ThrottleLimits(per_name=2, per_address=100, max_keys=4))
    for name in ("1", "2", "3"):
        throttle.failed(name, "10.0.0.1", NOW)
    assert len(throttle._failures) == 4, "three names and one address, within the bound"
    throttle.failed("1", "10.0.0.1", NOW)
    assert throttle.retry_after("1", "10.0.0.2", NOW) == timedelta(minutes=15)
    throttle.succeeded("1")
    assert throttle.retry_after("1", "10.0.0.2", NOW) is None


def test_session_cookies_and_csrf_tokens_are_bound_to_the_key() -> None:
    member = StaffMember(id=7, name="R", role=Role.RESPONDER, active=True, password_hash="h")
    member.created_at = NOW - timedelta(days=1)
    sessions = Sessions(b"k" * 32)
    cookie = sessions.issue(member, NOW)
    data = sessions.read(cookie, NOW + timedelta(hours=1))
    assert data is not None and data.staff_id == 7 and sessions.matches(data, member)
    assert Sessions(b"other key" * 4).read(cookie, NOW) is None
    assert sessions.read(cookie[:-2] + "xx", NOW) is None
    assert sessions.read(cookie, NOW - timedelta(hours=1)) is None, "issued in the future"
    token = sessions.csrf_token(cookie)
    assert sessions.csrf_ok(cookie, token) and not sessions.csrf_ok(cookie + "x", token)
    assert not sessions.csrf_ok(cookie, None) and not sessions.csrf_ok(None, token)


# --- CSRF and roles -------------------------------------------------------------------------


async def test_posts_without_the_right_csrf_token_are_refused(site: Site) -> None:
    await login_as(site, Role.RESPONDER)
    reference = site.items["tent"].reference
    path = f"/dashboard/items/{reference}/status"
    for data in ({"status": "closed"}, {"status": "closed", "csrf": "0" * 64}):
        response = await site.client.post(path, data=data, allow_redirects=False)
        assert response.status == 403 and "out of date" in await response.text()
    assert (await fresh(site, "tent")).status == "new"
    # A token from someone else's session does not fit this one.
    _, page = await get(site, "/dashboard/")
    token = csrf_of(page)
    await login_as(site, Role.PROTECTION_FOCAL_POINT)
    response = await site.client.post(
        path, data={"status": "closed", "csrf": token}, allow_redirects=False
    )
    assert response.status == 403 and (await fresh(site, "tent")).status == "new"
    # Login itself needs the pre-login cookie's token.
    site.client.session.cookie_jar.clear()
    response = await site.client.post(
        "/dashboard/login",
        data={"username": str(site.staff[Role.RESPONDER].id), "password": PASSWORD},
        allow_redirects=False,
    )
    assert response.status == 403 and "The form expired" in await response.text()


async def test_a_viewer_sees_aggregates_only(site: Site) -> None:
    await login_as(site, Role.VIEWER)
    status, html = await get(site, "/dashboard/")
    assert status == 200 and "Gap flags" in html and "Unanswered" in html
    assert "/dashboard/items" not in html, "no queue in the menu, no links to items"
    assert "/dashboard/shelters" not in html
    reference = site.items["tent"].reference
    for path in ("/dashboard/items", f"/dashboard/items/{reference}", "/dashboard/shelters"):
        status, html = await get(site, path)
        assert status == 403 and "Your role (viewer) may not see this page." in html
    status, _ = await post(site, f"/dashboard/items/{reference}/reply", "/dashboard/", text="hi")
    assert status == 403
    async with site.db.transaction() as session:
        assert list(await session.scalars(select(ItemEvent).where(ItemEvent.kind == "view"))) == []


async def test_a_communications_officer_sees_overview_and_shelters(site: Site) -> None:
    await login_as(site, Role.COMMUNICATIONS_OFFICER)
    assert (await get(site, "/dashboard/"))[0] == 200
    assert (await get(site, "/dashboard/shelters"))[0] == 200
    assert (await get(site, "/dashboard/items"))[0] == 403


async def test_sensitive_items_only_for_the_protection_focal_point(site: Site) -> None:
    secret = site.items["secret"].reference
    for role in (Role.RESPONDER, Role.ADMIN):
        await login_as(site, role)
        status, html = await get(site, f"/dashboard/items/{secret}")
        assert status == 404 and f"No item {secret}." in html, "as if it did not exist"
        _, queue = await get(site, "/dashboard/items?include_sensitive=1")
        assert secret not in queue and site.items["tent"].reference in queue
        status, _ = await post(
            site, f"/dashboard/items/{secret}/reply", "/dashboard/", text="Are you safe?"
        )
        assert status == 404
    await login_as(site, Role.PROTECTION_FOCAL_POINT)
    status, html = await get(site, f"/dashboard/items/{secret}")
    assert status == 200 and "He hit me at the distribution" in html
    assert "gender-based violence" in html
    _, queue = await get(site, "/dashboard/items")
    assert secret not in queue, "sensitive items only when asked for"
    _, queue = await get(site, "/dashboard/items?include_sensitive=1")
    assert secret in queue


# --- the queue and the overview -------------------------------------------------------------


async def test_the_queue_filters_and_pseudonymises(site: Site) -> None:
    await login_as(site, Role.RESPONDER)
    status, html = await get(site, "/dashboard/items?sector=9&cluster=wash&statuses=new")
    assert status == 200 and "1 item" in html
    assert site.items["water"].reference in html and site.items["tent"].reference not in html
    assert "a1b2c3d4…" in html and "a1b2c3d4e5f6" not in html, "a shortened pseudonym"
    assert "555001" not in html, "never a chat id"
    status, html = await get(site, "/dashboard/items?area_code=NOWHERE")
    assert status == 200 and "0 items" in html
    # Empty form fields mean "any"; "-" means "not known".
    status, html = await get(site, "/dashboard/items?sector=&area_code=&language=&type=")
    assert status == 200 and "2 items" in html
    status, html = await get(site, "/dashboard/items?area_code=-")
    assert status == 200 and "0 items" in html


@pytest.mark.parametrize(
    "query",
    [
        "sector=abc",
        "sector=16",
        "cluster=knitting",
        "type=gossip",
        "statuses=bogus",
        "since=2026-01-01T00:00",
        "until=yesterday",
        "page=0",
        "page=x",
        "order=sideways",
    ],
)
async def test_bad_filters_are_a_400_not_a_500(site: Site, query: str) -> None:
    await login_as(site, Role.RESPONDER)
    status, html = await get(site, f"/dashboard/items?{query}")
    assert status == 400, html
    assert "Not done" in html


async def test_bad_overview_choices_are_a_400(site: Site) -> None:
    await login_as(site, Role.RESPONDER)
    assert (await get(site, "/dashboard/?days=5"))[0] == 400
    assert (await get(site, "/dashboard/?area=" + "X" * 40))[0] == 400
    assert (await get(site, "/dashboard/?days=90&area=XY01"))[0] == 200


async def test_the_overview_leads_from_a_flag_to_its_items(site: Site) -> None:
    await login_as(site, Role.RESPONDER)
    response = await site.client.get("/dashboard/?days=30")
    html = await response.text()
    assert response.status == 200
    assert "script-src" not in response.headers["Content-Security-Policy"], "no script at all"
    assert "<script" not in html and "style=" not in html and "<style" not in html
    assert response.headers["Cache-Control"] == "no-store"
    assert html.index("Gap flags") < html.index("By MCOF sector"), "flags first"
    assert "Unanswered" in html and "<svg" in html and 'class="heat-' in html
    assert "2 · Shelter and Non-food Items" in html
    links = re.findall(r'<a class="drill" href="([^"]+)"', html)
    assert links, "each flag links to its items"
    # Unanswered: one flag per class (shelter is a critical sector now, water is not).
    pages = []
    for link in links:
        if "references=" in link:
            status, queue = await get(site, link.replace("&amp;", "&"))
            assert status == 200
            pages.append(queue)
    assert len(pages) == 2
    assert site.items["tent"].reference in pages[0] and site.items["water"].reference in pages[1]
    assert all(site.items["secret"].reference not in page for page in pages)
    css = await site.client.get("/dashboard/static/dashboard.css")
    assert css.status == 200 and css.content_type == "text/css"


# --- one item -------------------------------------------------------------------------------


async def test_opening_an_item_records_the_view_and_shows_everything(site: Site) -> None:
    await login_as(site, Role.RESPONDER)
    reference = site.items["water"].reference
    status, html = await get(site, f"/dashboard/items/{reference.lower()}")
    assert status == 200 and "No water in the camp since Monday" in html
    assert "wash" in html and "100%" in html and "9 · " in html
    assert "new → in_review" in html and "Staff responder" in html
    item = await fresh(site, "water")
    assert item.status == "in_review"
    async with site.db.transaction() as session:
        views = list(await session.scalars(select(ItemEvent).where(ItemEvent.kind == "view")))
    assert [v.staff_id for v in views] == [site.staff[Role.RESPONDER].id]
    assert (await get(site, "/dashboard/items/NOPE99"))[0] == 404


async def test_a_code_correction_is_stored_with_who_made_it(site: Site) -> None:
    await login_as(site, Role.RESPONDER)
    reference = site.items["tent"].reference
    page = f"/dashboard/items/{reference}"
    path = f"{page}/codes"
    status, location = await post(
        site, path, page, type="question", sector=["2", "4"], cluster="shelter", urgent="1"
    )
    assert (status, location) == (303, f"{page}?done=codes")
    _, html = await get(site, location)
    assert "Codes saved." in html
    async with site.db.transaction() as session:
        corrections = list(
            await session.scalars(
                select(Correction).where(Correction.staff_id == site.staff[Role.RESPONDER].id)
            )
        )
        codes = list(
            await session.scalars(select(ItemCode).where(ItemCode.item_id == site.items["tent"].id))
        )
    [correction] = corrections
    assert correction.before["sectors"] == [2] and correction.after["sectors"] == [2, 4]
    assert correction.after["type"] == "question" and correction.after["urgent"] is True
    assert sorted((c.scheme, c.value, c.source) for c in codes) == [
        ("cluster", "shelter", "staff"),
        ("sector", "2", "staff"),
        ("sector", "4", "staff"),
    ]
    for bad in (
        {"type": "question", "sector": "16"},
        {"type": "question", "sector": "two"},
        {"type": "question", "cluster": "knitting"},
        {"type": "gossip"},
        {"type": "question", "sensitive": "bad_hair_day"},
    ):
        assert (await post(site, path, page, **bad))[0] == 400, bad
    async with site.db.transaction() as session:
        count = len(
            list(await session.scalars(select(Correction).where(Correction.staff_id.is_not(None))))
        )
    assert count == 1, "nothing stored from a refused form"


async def test_marking_an_item_sensitive_hides_it_from_the_responder(site: Site) -> None:
    await login_as(site, Role.RESPONDER)
    page = f"/dashboard/items/{site.items['tent'].reference}"
    status, location = await post(
        site, f"{page}/codes", page, type="request", sector="2", sensitive="gbv"
    )
    assert (status, location) == (303, "/dashboard/items?done=hidden")
    assert (await fresh(site, "tent")).sensitive
    assert (await get(site, page))[0] == 404


async def test_status_changes_follow_the_lifecycle(site: Site) -> None:
    await login_as(site, Role.RESPONDER)
    page = f"/dashboard/items/{site.items['tent'].reference}"
    status, location = await post(site, f"{page}/status", page, status="referred")
    assert (status, location) == (303, f"{page}?done=status")
    item = await fresh(site, "tent")
    assert item.status == "referred" and item.referred_at == NOW
    status, body = await post(site, f"{page}/status", page, status="new")
    assert status == 409 and "Not changed: referred cannot become new." in body
    assert (await post(site, f"{page}/status", page, status="closed"))[0] == 303
    status, body = await post(site, f"{page}/status", page, status="in_review")
    assert status == 409 and "closed cannot become in_review" in body
    assert (await post(site, f"{page}/status", page, status="lost"))[0] == 400
    async with site.db.transaction() as session:
        moves = list(
            await session.scalars(
                select(ItemEvent.detail).where(
                    ItemEvent.kind == "status",
                    ItemEvent.staff_id == site.staff[Role.RESPONDER].id,
                )
            )
        )
    assert moves == ["new>in_review", "in_review>referred", "referred>closed"]


async def test_a_reply_is_recorded_pending_for_the_bot(site: Site) -> None:
    await login_as(site, Role.RESPONDER)
    page = f"/dashboard/items/{site.items['tent'].reference}"
    status, location = await post(
        site, f"{page}/reply", page, text="  A tent is on its way to you today.  "
    )
    assert (status, location) == (303, f"{page}?done=reply")
    _, html = await get(site, location)
    assert "Reply recorded" in html and "pending" in html
    async with site.db.transaction() as session:
        [reply] = list(await session.scalars(select(Reply)))
    assert reply.text == "A tent is on its way to you today."
    assert reply.staff_id == site.staff[Role.RESPONDER].id
    assert reply.delivered_at is None and reply.failed_at is None
    assert (await fresh(site, "tent")).status == "in_review", "answered only once delivered"
    assert (await post(site, f"{page}/reply", page, text="   "))[0] == 400
    assert (await post(site, f"{page}/reply", page, text="x" * 3501))[0] == 400


async def test_no_reply_is_recorded_for_a_person_who_deleted_their_data(site: Site) -> None:
    item = site.items["tent"]
    async with site.db.transaction() as session:
        contact = await session.get(Contact, item.contact_id)
        assert contact is not None
        await erase_contact(session, contact, NOW)
    await login_as(site, Role.RESPONDER)
    page = f"/dashboard/items/{item.reference}"
    _, html = await get(site, page)
    assert "the person deleted their data" in html and 'name="text"' not in html
    status, _ = await post(site, f"{page}/reply", page, text="A tent is on its way.")
    assert status == 409
    async with site.db.transaction() as session:
        assert list(await session.scalars(select(Reply))) == []


# --- shelters and registrations -------------------------------------------------------------


async def test_shelters_and_registrations_at_a_glance(site: Site) -> None:
    async with site.db.transaction() as session:
        for external_id, shelter_status, updated in (
            ("SH-FRESH", ShelterStatus.OPEN, NOW - timedelta(hours=2)),
            ("SH-OLD", ShelterStatus.FULL, NOW - timedelta(days=3)),
        ):
            session.add(
                Shelter(
                    external_id=external_id,
                    names={"en": f"Shelter {external_id}"},
                    latitude=1.0,
                    longitude=1.0,
                    adm1_code="XY01",
                    adm1_name="Riverside",
                    capacity=100,
                    occupancy=40 if shelter_status is ShelterStatus.OPEN else 100,
                    status=shelter_status,
                    updated_at=updated,
                    updated_by="test",
                )
            )
        point = Place(
            external_id="DP-1",
            kind=PlaceKind.DEPARTURE_POINT,
            names={"en": "Bus station"},
            updated_by="test",
        )
        session.add(point)
        await session.flush()
        for n, registration_status in enumerate(("submitted", "submitted", "draft")):
            contact = await record_consent(session, f"p{n}", 9000 + n, "en", NOW)
            session.add(
                Registration(
                    contact_id=contact.id,
                    status=registration_status,
                    adults=2,
                    children=1,
                    departure_point_id=point.id,
                )
            )
    await login_as(site, Role.COMMUNICATIONS_OFFICER)
    status, html = await get(site, "/dashboard/shelters")
    assert status == 200
    fresh_row = html[html.index("Shelter SH-FRESH") : html.index("</tr>", html.index("SH-FRESH"))]
    old_row = html[html.index("Shelter SH-OLD") : html.index("</tr>", html.index("SH-OLD"))]
    assert "40 / 100" in fresh_row and "out of date" not in fresh_row
    assert "100 / 100" in old_row and "out of date" in old_row
    point_row = html[html.index("Bus station") : html.index("</tr>", html.index("Bus station"))]
    cells = re.findall(r'<td class="num">(\d+)</td>', point_row)
    assert cells == ["2", "6", "1", "0"], "submitted, people, unfinished, cancelled"


# --- the bot delivers what the dashboard recorded -------------------------------------------


async def record_pending(bot: RunningBot, text: str) -> FeedbackItem:
    async with bot.services.db.transaction() as session:
        [item] = list(await session.scalars(select(FeedbackItem)))
        await record_reply(session, item, None, text, bot.services.clock())
        return item


async def settled_reply(bot: RunningBot) -> Reply:
    """The only reply, once the bot recorded its outcome (it sends, then records)."""
    for _ in range(100):
        async with bot.services.db.transaction() as session:
            [reply] = list(await session.scalars(select(Reply)))
        if reply.delivered_at is not None or reply.failed_at is not None:
            return reply
        await asyncio.sleep(0.1)
    raise AssertionError("the reply is still pending")


async def test_the_bot_delivers_pending_replies_in_the_persons_language(
    bot_api: LoopbackBotApi, running_bot: RunningBot, phone: Phone
) -> None:
    await onboard(phone, "Français")
    await phone.send("Notre tente est inondée")
    question = max(m.message_id for m in bot_api.transcript(phone.user_id) if not m.from_bot)
    item = await record_pending(running_bot, "Une tente arrive aujourd'hui.")
    answer = await phone.next_message()
    heading = translations("fr").gettext(
        "Reply from the response team about your message {reference}:"
    )
    assert (answer.text or "").startswith(heading.format(reference=spoken(item.reference)))
    assert (answer.text or "").endswith("Une tente arrive aujourd'hui.")
    assert answer.reply_to_message_id == question, "quoting their message"
    reply = await settled_reply(running_bot)
    assert reply.delivered_at is not None and reply.failed_at is None
    async with running_bot.services.db.transaction() as session:
        stored = await session.get(FeedbackItem, item.id)
    assert stored is not None and stored.status == "answered"


async def test_a_reply_that_cannot_be_delivered_is_marked_failed(
    bot_api: LoopbackBotApi, running_bot: RunningBot, phone: Phone
) -> None:
    await onboard(phone)
    await phone.send("Our tent is flooded")
    bot_api.block(phone.user_id)
    item = await record_pending(running_bot, "A tent comes today.")
    reply = await settled_reply(running_bot)
    assert reply.failed_at is not None and reply.delivered_at is None
    async with running_bot.services.db.transaction() as session:
        stored = await session.get(FeedbackItem, item.id)
        address = await session.scalar(select(ContactAddress))
    assert stored is not None and stored.status == "new", "the item keeps its status"
    assert address is not None


# --- served in every mode -------------------------------------------------------------------


async def test_the_dashboard_is_served_in_sandbox_and_polling_modes(
    database: Database, settings: Settings
) -> None:
    import socket

    import aiohttp

    from bot.metrics import Metrics
    from bot.operations import Probe
    from bot.runner import _bot_api, _start_api_site
    from bot.staff_api import StaffApi

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    key = b"test-deployment-key-0123456789abcdef"
    async with aiohttp.ClientSession() as http:
        polling = replace(settings, web_port=free_port())
        runner = await _start_api_site(
            StaffApi(database, key, polling),
            Dashboard(database, key, polling),
            polling,
            Probe(database, Metrics()),
        )
        assert runner is not None
        try:
            base = f"http://127.0.0.1:{polling.web_port}"
            async with http.get(f"{base}/dashboard") as response:
                assert response.status == 200 and response.url.path == "/dashboard/login"
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
        finally:
            await runner.cleanup()
        sandbox = replace(settings, web_port=free_port())
        assert sandbox.sandbox
        staff_api = StaffApi(database, key, sandbox)
        async with _bot_api(sandbox, staff_api, Dashboard(database, key, sandbox)) as root:
            response = await http.get(f"{root}/dashboard/")
            assert response.status == 200 and response.url.path == "/dashboard/login"
            assert "Staff id" in await response.text()
