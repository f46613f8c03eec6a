"""The audit log on the dashboard: only admins read it (newest first, 100 a page, filtered by
action and staff member, each reading recorded); and what the dashboard records in it —
logins and failed logins, broadcasts sent and cancelled, and the item events
feedback/review.py mirrors (views, status changes, corrections, replies)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, unquote

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.dashboard.app import CSP
from bot.dashboard.auth import ThrottleLimits
from feedback.items import FeedbackItem
from feedback.replies import Reply, delivered
from messages.broadcasts import Audience, Draft, create
from messages.contacts import Contact, Subscription
from staff.audit import Action, Actor, AuditEvent, record
from staff.models import Role
from storage.database import Database
from tests.test_audit import events
from tests.test_dashboard import NOW, Site, csrf_of, get, login, login_as, open_site, post
from tests.test_dashboard_broadcasts import table_rows

AUDIT = "/dashboard/audit"
OLDER = re.compile(r'href="/dashboard/audit\?([^"]+)">older events')


@pytest.fixture
async def site(database: Database, settings: Settings) -> AsyncIterator[Site]:
    async with open_site(database, settings, ThrottleLimits(per_name=3, per_address=50)) as site:
        yield site


def rows_of(html: str) -> list[list[str]]:
    return [[unescape(cell) for cell in row] for row in table_rows(html, "audit")]


def ids_of(html: str) -> list[int]:
    return [int(row[0]) for row in rows_of(html)]


def older_query(html: str) -> dict[str, str] | None:
    match = OLDER.search(html)
    if match is None:
        return None
    return {k: v[0] for k, v in parse_qs(unescape(match.group(1))).items()}


# --- who may read it ------------------------------------------------------------------------


async def test_only_admins_read_the_audit_log(site: Site) -> None:
    status, location = await get(site, AUDIT)
    assert (status, unquote(location)) == (303, "/dashboard/login?next=/dashboard/audit")
    for role in Role:
        await login_as(site, role)
        response = await site.client.get(AUDIT, allow_redirects=False)
        assert response.status == (200 if role is Role.ADMIN else 403), role
        _, overview = await get(site, "/dashboard/")
        assert ('href="/dashboard/audit"' in overview) == (role is Role.ADMIN), role
    await login_as(site, Role.ADMIN)
    response = await site.client.get(AUDIT)
    html = await response.text()  # the same layout and policy as every other page
    overview_response = await site.client.get("/dashboard/")
    assert response.headers["Content-Security-Policy"] == CSP
    assert overview_response.headers["Content-Security-Policy"] == CSP
    assert "<script" not in html and "<h1>Audit log</h1>" in html
    # Nothing but reading was allowed to the others: their tries left no audit_view.
    views = await events(site.db, Action.AUDIT_VIEW)
    assert views == [("staff", site.staff[Role.ADMIN].id, "audit_view", None, None)] * 2


# --- paging and filters ---------------------------------------------------------------------


async def test_newest_first_a_hundred_a_page_with_filters(site: Site) -> None:
    admin, responder = site.staff[Role.ADMIN].id, site.staff[Role.RESPONDER].id
    async with site.db.transaction() as session:
        for n in range(250):
            await record(
                session,
                Action.EXPORT,
                NOW + timedelta(seconds=n),
                staff_id=responder if n % 2 else admin,
                target=f"export-{n}",
            )
        await record(
            session,
            Action.ROLE_CHANGE,
            NOW,
            actor=Actor.CLI,
            target="staff:3",
            detail="viewer>responder",
        )
        exports = list(
            await session.scalars(
                select(AuditEvent.id)
                .where(AuditEvent.action == "export")
                .order_by(AuditEvent.id.desc())
            )
        )
    await login_as(site, Role.ADMIN)

    status, html = await get(site, f"{AUDIT}?action=export")
    assert status == 200
    assert ids_of(html) == exports[:100], "newest first"
    first_row = rows_of(html)[0]
    assert first_row[2:] == ["staff", f"#{responder} Staff responder", "export", "export-249", "–"]
    older = older_query(html)
    assert older == {"action": "export", "before": str(exports[99])}
    status, html = await get(site, f"{AUDIT}?action=export&before={exports[99]}")
    assert ids_of(html) == exports[100:200]
    assert 'href="/dashboard/audit?action=export">Newest' in html
    status, html = await get(site, f"{AUDIT}?action=export&before={exports[199]}")
    assert ids_of(html) == exports[200:] and len(exports[200:]) == 50
    assert older_query(html) is None, "the oldest page has no older link"

    status, html = await get(site, f"{AUDIT}?staff={responder}")
    rows = rows_of(html)
    assert len(rows) == 100 and {row[3] for row in rows} == {f"#{responder} Staff responder"}
    assert older_query(html) == {"staff": str(responder), "before": rows[-1][0]}
    status, html = await get(site, f"{AUDIT}?action=role_change")
    assert [row[2:] for row in rows_of(html)] == [
        ["cli", "–", "role_change", "staff:3", "viewer>responder"]
    ]
    status, html = await get(site, f"{AUDIT}?action=erasure&staff={responder}")
    assert "No events for this filter." in html

    # Unfiltered, the newest event comes first: the previous reading of the log.
    status, html = await get(site, AUDIT)
    assert rows_of(html)[0][4:6] == ["audit_view", "–"]
    views = [row[4] for row in await events(site.db, Action.AUDIT_VIEW)]
    assert views == [
        "action=export",
        f"action=export before={exports[99]}",
        f"action=export before={exports[199]}",
        f"staff={responder}",
        "action=role_change",
        f"action=erasure staff={responder}",
        None,
    ]
    for query in ("action=nonsense", "staff=abc", "before=-1", "staff=99999999999"):
        assert (await get(site, f"{AUDIT}?{query}"))[0] == 400, query


# --- what the dashboard records -------------------------------------------------------------


async def test_logins_and_failed_logins_are_recorded_never_what_was_typed(site: Site) -> None:
    responder = site.staff[Role.RESPONDER].id
    viewer = site.staff[Role.VIEWER].id
    assert (await login(site, str(responder)))[0] == 303
    assert (await login(site, str(viewer), "not the password"))[0] == 401
    assert (await login(site, "hunter2 secret words", "x"))[0] == 401
    assert (await login(site, "424242", "x"))[0] == 401
    # Past the throttle nothing is checked, and nothing more recorded (no flood of rows).
    for _ in range(3):
        await login(site, str(viewer), "wrong again")
    assert (await login(site, str(viewer), "wrong again"))[0] == 429
    rows = await events(site.db, Action.LOGIN, Action.LOGIN_FAILED)
    assert rows == [
        ("staff", responder, "login", None, None),
        ("staff", None, "login_failed", f"staff:{viewer}", None),
        ("staff", None, "login_failed", None, None),
        ("staff", None, "login_failed", "staff:424242", None),
        ("staff", None, "login_failed", f"staff:{viewer}", None),
        ("staff", None, "login_failed", f"staff:{viewer}", None),
    ]
    assert "hunter2" not in repr(await events(site.db))


async def test_item_views_statuses_corrections_and_replies_are_in_the_log(site: Site) -> None:
    """feedback/review.py mirrors every item event a staff member causes."""
    await login_as(site, Role.RESPONDER)
    responder = site.staff[Role.RESPONDER].id
    reference = site.items["tent"].reference
    page = f"/dashboard/items/{reference}"
    assert (await post(site, f"{page}/status", page, status="referred"))[0] == 303
    assert (await post(site, f"{page}/codes", page, type="question", sector="2"))[0] == 303
    assert (await post(site, f"{page}/reply", page, text="We are coming."))[0] == 303
    # The bot's replies_job delivers it; the reply event is written then, by `delivered`.
    async with site.db.transaction() as session:
        reply = await session.scalar(select(Reply))
        item = await session.get(FeedbackItem, site.items["tent"].id)
        assert reply is not None and item is not None
        await delivered(session, item, reply, NOW)
    rows = await events(site.db, Action.VIEW, Action.STATUS, Action.CORRECTION, Action.REPLY)
    assert {row[:2] for row in rows} == {("staff", responder)}
    assert {row[3] for row in rows} == {reference}
    changes = [(row[2], row[4]) for row in rows if row[2] != "view"]
    assert changes == [
        ("status", "new>in_review"),  # opening a new item puts it in review
        ("status", "in_review>referred"),
        ("correction", None),
        ("reply", None),
        ("status", "referred>answered"),
    ], changes
    assert len([row for row in rows if row[2] == "view"]) == 3, "each page opened"
    assert "We are coming" not in repr(await events(site.db)), "never what was written"


async def test_broadcasts_sent_and_cancelled_on_the_web(site: Site) -> None:
    officer = site.staff[Role.COMMUNICATIONS_OFFICER].id
    async with site.db.transaction() as session:
        amina = await session.scalar(select(Contact.id))
        assert amina is not None
        session.add(Subscription(contact_id=amina, topic="alerts", area=None))
        draft = Draft({"en": "The bridge is closed."}, Audience(("alerts",)))
        reference = (await create(session, draft, officer, NOW)).reference
    await login_as(site, Role.COMMUNICATIONS_OFFICER)
    status, html = await get(site, f"/dashboard/broadcasts/{reference}/preview")
    assert status == 200, html
    version = re.search(r'name="version" value="([^"]+)"', html)
    assert version is not None
    sent = await site.client.post(
        f"/dashboard/broadcasts/{reference}/send",
        data={"csrf": csrf_of(html), "version": version.group(1)},
        allow_redirects=False,
    )
    assert sent.status == 303
    again = await site.client.post(
        f"/dashboard/broadcasts/{reference}/send",
        data={"csrf": csrf_of(html), "version": version.group(1)},
        allow_redirects=False,
    )
    assert again.headers["Location"].endswith("done=already"), "not sent twice, not recorded"
    status, html = await get(site, f"/dashboard/broadcasts/{reference}")
    cancelled = await site.client.post(
        f"/dashboard/broadcasts/{reference}/cancel",
        data={"csrf": csrf_of(html)},
        allow_redirects=False,
    )
    assert cancelled.headers["Location"].endswith("done=cancelled")
    assert await events(site.db, Action.BROADCAST) == [
        ("staff", officer, "broadcast", reference, "queued recipients=1 priority=normal"),
        ("staff", officer, "broadcast", reference, "cancelled unsent=1"),
    ]
