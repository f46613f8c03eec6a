"""The audit log records what the issue asks for, wherever it happens: staff changes and
exports on the command line, exports through the staff API, and on Telegram a staff member
linking their account, broadcasts sent and cancelled, and manifests sent. (The dashboard's
events, and the item events feedback/review.py mirrors, are in test_dashboard_audit.py;
the retention job's in test_retention.py.)"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.config import Settings
from bot.sandbox.botapi import LoopbackBotApi
from bot.staff_api import StaffApi, mount_staff_api
from evacuation.registrations import Registration
from messages.contacts import record_consent
from messages.places import Place, PlaceKind
from staff.audit import Action, AuditEvent
from staff.models import Role, StaffMember
from storage.base import utcnow
from storage.database import Database, connect
from tests.phone import inline_data
from tests.sandbox_fixtures import RunningBot
from tests.test_cli import COMMAND, ROOT, run_cli
from tests.test_e2e_broadcasts import EN_TEXT, compose, officer, subscriber
from tests.test_e2e_broadcasts import send as send_broadcast
from tests.test_staff_api import KEY, bearer

Row = tuple[str, int | None, str, str | None, str | None]  # actor, staff, action, target, detail


async def events(database: Database, *actions: Action) -> list[Row]:
    """The audit log, oldest first, as (actor, staff id, action, target, detail)."""
    query = select(AuditEvent).order_by(AuditEvent.id)
    if actions:
        query = query.where(AuditEvent.action.in_([a.value for a in actions]))
    async with database.transaction() as session:
        return [
            (e.actor, e.staff_id, e.action, e.target, e.detail)
            for e in await session.scalars(query)
        ]


# --- the command line -----------------------------------------------------------------------


def cli_with_input(text: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        env={"PATH": os.environ["PATH"], **env},
        cwd=ROOT,
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_command_line_records_staff_changes_and_exports(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "CRISIS_DATA_DIR": str(tmp_path)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        result = run_cli(*args, env=env)
        assert result.returncode == 0, (args, result.stderr)
        return result

    await asyncio.to_thread(cli, "staff", "add", "--role", "responder", "Rana Haddad")
    code = await asyncio.to_thread(cli, "staff", "code", "1")
    assert code.stdout.startswith("One-time link code for staff #1: STAFF-")
    password = await asyncio.to_thread(
        cli_with_input, "a long enough password\n", "staff", "password", "1", env=env
    )
    assert password.returncode == 0, password.stderr
    changed = await asyncio.to_thread(cli, "staff", "role", "1", "admin")
    assert changed.stdout.strip() == "Rana Haddad (staff #1) is now admin."
    unknown = await asyncio.to_thread(run_cli, "staff", "role", "7", "viewer", env=env)
    assert unknown.returncode == 1 and "no staff member 7" in unknown.stderr
    await asyncio.to_thread(cli, "staff", "deactivate", "1")
    listed = await asyncio.to_thread(cli, "staff", "list")
    assert listed.stdout == "1\tRana Haddad\tadmin\tnot linked\tinactive\n"
    again = await asyncio.to_thread(run_cli, "staff", "deactivate", "1", env=env)
    assert again.returncode == 1 and "not active" in again.stderr
    manifest = str(tmp_path / "manifest.csv")
    await asyncio.to_thread(cli, "registrations", "manifest", "unassigned", "-o", manifest)
    await asyncio.to_thread(
        cli, "export", "items", "--format", "xlsx", "-o", str(tmp_path / "items.xlsx")
    )
    await asyncio.to_thread(
        cli, "export", "items", "--sector", "2", "-o", str(tmp_path / "items.csv")
    )
    await asyncio.to_thread(cli, "export", "aggregates", "-o", str(tmp_path / "counts.csv"))

    database = connect(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    try:
        assert await events(database) == [
            ("cli", None, "staff_added", "staff:1", "responder"),
            ("cli", None, "link_code", "staff:1", None),
            ("cli", None, "link_code", "staff:1", None),
            ("cli", None, "password_set", "staff:1", None),
            ("cli", None, "role_change", "staff:1", "responder>admin"),
            ("cli", None, "staff_deactivated", "staff:1", None),
            ("cli", None, "export", "manifest:unassigned", "csv rows=0"),
            ("cli", None, "export", "items.xlsx", "rows=0"),
            ("cli", None, "export", "items.csv", "rows=0 sector=2"),
            ("cli", None, "export", "aggregates.csv", "by=sector rows=0"),
        ]
        async with database.transaction() as session:
            member = await session.get(StaffMember, 1)
            assert member is not None and member.role is Role.ADMIN and not member.active
    finally:
        await database.dispose()

    # `crisis-comms audit`: newest first, filtered, and the reading itself is recorded.
    listed = await asyncio.to_thread(cli, "audit", "--limit", "2")
    lines = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(line[0], line[2], line[4], line[5]) for line in lines] == [
        ("10", "cli", "export", "aggregates.csv"),
        ("9", "cli", "export", "items.csv"),
    ]
    assert lines[0][1].endswith(" UTC") and lines[0][3] == "-"
    roles = await asyncio.to_thread(cli, "audit", "--action", "role_change")
    [line] = roles.stdout.splitlines()
    assert line.split("\t")[4:] == ["role_change", "staff:1", "responder>admin"]
    views = await asyncio.to_thread(cli, "audit", "--action", "audit_view")
    assert [line.split("\t")[6] for line in views.stdout.splitlines()] == [
        "action=role_change",
        "-",
    ]
    wrong = await asyncio.to_thread(run_cli, "audit", "--action", "nonsense", env=env)
    assert wrong.returncode == 2 and "unknown action" in wrong.stderr


# --- the staff API --------------------------------------------------------------------------


@pytest.fixture
async def api_client(database: Database, settings: Settings) -> AsyncIterator[Any]:
    root = web.Application()
    mount_staff_api(root, StaffApi(database, KEY, settings))
    async with TestClient(TestServer(root)) as test_client:
        yield test_client


async def test_every_api_export_is_recorded_with_its_filter(
    api_client: Any, database: Database
) -> None:
    async with database.transaction() as session:
        session.add(
            Place(
                external_id="DP-1",
                kind=PlaceKind.DEPARTURE_POINT,
                names={"en": "Bus station"},
                updated_by="test",
            )
        )
    responder = await bearer(database, Role.RESPONDER, "Responder")
    officer_headers = await bearer(database, Role.COMMUNICATIONS_OFFICER, "Officer")
    async with database.transaction() as session:
        ids = {m.role: m.id for m in await session.scalars(select(StaffMember))}

    for path, headers in (
        ("/api/items.csv?sector=2&statuses=new", responder),
        ("/api/items.xlsx", responder),
        ("/api/manifests/DP-1.csv", officer_headers),
        ("/api/aggregates?days=3&area=XY01", responder),
        ("/api/aggregates.csv?by=item&since=2026-01-01&until=2026-01-31", officer_headers),
    ):
        response = await api_client.get(path, headers=headers)
        assert response.status == 200, (path, await response.text())
        await response.read()
    # Refused and wrong requests export nothing, so record nothing.
    refused = await api_client.get("/api/items.csv?include_sensitive=1", headers=responder)
    assert refused.status == 403
    wrong = await api_client.get("/api/manifests/NOPE.csv", headers=officer_headers)
    assert wrong.status == 404

    today = utcnow().date()
    three_days = f"since={today.fromordinal(today.toordinal() - 2)} until={today}"
    staff = ids[Role.RESPONDER]
    assert await events(database) == [
        ("staff", staff, "export", "items.csv", "sector=2&statuses=new"),
        ("staff", staff, "export", "items.xlsx", "rows=0"),
        ("staff", ids[Role.COMMUNICATIONS_OFFICER], "export", "manifest:DP-1", "csv rows=0"),
        ("staff", staff, "export", "aggregates", f"by=sector {three_days} area=XY01"),
        (
            "staff",
            ids[Role.COMMUNICATIONS_OFFICER],
            "export",
            "aggregates.csv",
            "by=item since=2026-01-01 until=2026-01-31 area=-",
        ),
    ]


# --- Telegram -------------------------------------------------------------------------------


@pytest.mark.settings(ENABLED_LANGUAGES="en,fr,ar", TIMEZONE="UTC")
async def test_telegram_linking_broadcasts_and_manifests_are_recorded(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    database = running_bot.services.db
    await subscriber(bot_api, running_bot, "Amal", "English")
    nadia = await officer(bot_api, running_bot, Role.ADMIN)
    async with database.transaction() as session:
        staff_id = await session.scalar(select(StaffMember.id))
    assert await events(database, Action.STAFF_LINKED) == [
        ("staff", staff_id, "staff_linked", f"staff:{staff_id}", None)
    ]

    reference = await send_broadcast(nadia, await compose(nadia, {"en": EN_TEXT}))
    cancelled = await nadia.send(f"/broadcast_cancel {reference}")
    assert "Cancelled" in (cancelled.text or "")
    rows = await events(database, Action.BROADCAST)
    assert rows[0] == ("staff", staff_id, "broadcast", reference, rows[0][4])
    assert (rows[0][4] or "").startswith("queued recipients=1 priority=normal")
    assert rows[1][:4] == ("staff", staff_id, "broadcast", reference)
    assert (rows[1][4] or "").startswith("cancelled unsent=")
    assert len(rows) == 2

    # A manifest sent to the chat is an export.
    async with database.transaction() as session:
        point = Place(
            external_id="DP-9",
            kind=PlaceKind.DEPARTURE_POINT,
            names={"en": "Harbour"},
            updated_by="test",
        )
        session.add(point)
        await session.flush()
        contact = await record_consent(session, "pseudo-traveller", 4242, "en", utcnow())
        session.add(
            Registration(
                contact_id=contact.id,
                status="submitted",
                departure_point_id=point.id,
                consent_share=True,
            )
        )
    menu = await nadia.send("/manifest")
    await nadia.press_data(menu.message_id, inline_data(menu, "Harbour"))
    document = await nadia.next_message()
    assert document.document is not None
    assert await events(database, Action.EXPORT) == [
        ("staff", staff_id, "export", "manifest:DP-9", "telegram csv+xlsx rows=1")
    ]
