"""The staff web API: tokens, roles, shelter updates with attribution and history, counts
and manifests; and that every run mode serves it."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openpyxl import load_workbook
from sqlalchemy import delete

from bot.config import Settings
from bot.runner import _start_webhook
from bot.sandbox.botapi import LoopbackBotApi
from bot.staff_api import MAX_BODY, StaffApi, mount_staff_api
from bot.webhook import WEBHOOK_PATH
from messages.places import Place, PlaceKind
from messages.shelters import Shelter, ShelterStatus
from staff.access import add_staff
from staff.models import Role, StaffMember
from staff.tokens import MAX_DAYS, TokenError, issue_token, read_token
from storage.base import utcnow
from storage.database import Database
from tests.sandbox_fixtures import StartBot
from tests.test_cli import COMMAND, ROOT, free_port, run_cli, sandbox

KEY = b"staff-api-test-key-0123456789abcdef"
CONTENT_TYPE_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(database: Database, settings: Settings) -> AsyncIterator[Client]:
    root = web.Application()
    mount_staff_api(root, StaffApi(database, KEY, settings))
    async with TestClient(TestServer(root)) as test_client:
        yield test_client


async def member(database: Database, name: str, role: Role) -> StaffMember:
    async with database.transaction() as session:
        issued = await add_staff(session, name, role, utcnow())
        found = await session.get(StaffMember, issued.staff_id)
        assert found is not None
        return found


async def bearer(database: Database, role: Role, name: str = "Officer One") -> dict[str, str]:
    staff = await member(database, name, role)
    token = issue_token(KEY, staff, days=1, now=utcnow()).token
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def seeded(database: Database) -> None:
    async with database.transaction() as session:
        session.add_all(
            [
                Shelter(
                    external_id="SH-1",
                    names={"en": "Riverside School"},
                    latitude=10.0,
                    longitude=20.0,
                    status=ShelterStatus.OPEN,
                    capacity=100,
                    occupancy=40,
                    services=["water"],
                    updated_at=utcnow() - timedelta(days=2),
                    updated_by="import:shelters.csv",
                ),
                Shelter(
                    external_id="SH-2",
                    names={"en": "Church Hall"},
                    latitude=10.1,
                    longitude=20.0,
                    status=ShelterStatus.CLOSED,
                    updated_at=utcnow(),
                    updated_by="import:shelters.csv",
                ),
                Place(
                    external_id="DP-1",
                    kind=PlaceKind.DEPARTURE_POINT,
                    names={"en": "Riverside bus station"},
                    alt_names=[],
                    latitude=10.0,
                    longitude=20.0,
                    updated_by="test",
                ),
            ]
        )


async def error_of(response: aiohttp.ClientResponse) -> str:
    assert response.content_type == "application/json"
    body = await response.json()
    return str(body["error"])


# --- authentication -------------------------------------------------------------------------


async def test_no_token(client: Client, seeded: None) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}):
        response = await client.get("/api/shelters", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Bearer" in await error_of(response)


async def test_bad_tokens(client: Client, database: Database, seeded: None) -> None:
    staff = await member(database, "Officer One", Role.COMMUNICATIONS_OFFICER)
    good = issue_token(KEY, staff, days=1, now=utcnow()).token
    other_key = issue_token(b"another-deployment-key-0123456789", staff, days=1, now=utcnow())
    for token in ("garbage", good[:-2] + "xx", other_key.token, good + "."):
        response = await client.get("/api/shelters", headers={"Authorization": f"Bearer {token}"})
        assert response.status == 401, token
        assert await error_of(response) == "the token is not valid"


async def test_expired_token(client: Client, database: Database, seeded: None) -> None:
    staff = await member(database, "Officer One", Role.COMMUNICATIONS_OFFICER)
    old = issue_token(KEY, staff, days=1, now=utcnow() - timedelta(days=2))
    response = await client.get("/api/shelters", headers={"Authorization": f"Bearer {old.token}"})
    assert response.status == 401
    assert (await error_of(response)).startswith("the token expired at ")


async def test_inactive_and_unknown_staff(client: Client, database: Database, seeded: None) -> None:
    headers = await bearer(database, Role.ADMIN)
    assert (await client.get("/api/shelters", headers=headers)).status == 200
    async with database.transaction() as session:
        staff = await session.get(StaffMember, 1)
        assert staff is not None
        staff.active = False
    response = await client.get("/api/shelters", headers=headers)
    assert response.status == 401
    assert await error_of(response) == "the token's staff member is not active"
    async with database.transaction() as session:
        await session.execute(delete(StaffMember))
    response = await client.get("/api/shelters", headers=headers)
    assert response.status == 401
    assert await error_of(response) == "the token's staff member does not exist"


async def test_a_reused_id_does_not_inherit_a_token(
    client: Client, database: Database, seeded: None
) -> None:
    headers = await bearer(database, Role.ADMIN, "First")
    async with database.transaction() as session:
        await session.execute(delete(StaffMember))
    async with database.transaction() as session:
        later = utcnow() + timedelta(minutes=1)
        session.add(StaffMember(id=1, name="Second", role=Role.ADMIN, created_at=later))
    response = await client.get("/api/shelters", headers=headers)
    assert response.status == 401
    assert await error_of(response) == "the token's staff member does not exist"


def test_token_lifetime_is_bounded() -> None:
    staff = StaffMember(id=1, name="X", role=Role.ADMIN, active=True, created_at=utcnow())
    for days in (0, MAX_DAYS + 1):
        with pytest.raises(ValueError, match="1 to"):
            issue_token(KEY, staff, days=days, now=utcnow())
    staff.active = False
    with pytest.raises(ValueError, match="not active"):
        issue_token(KEY, staff, days=1, now=utcnow())
    with pytest.raises(TokenError):
        read_token(KEY, "x.y.z", utcnow())


async def test_roles(client: Client, database: Database, seeded: None) -> None:
    viewer = await bearer(database, Role.VIEWER, "Viewer")
    assert (await client.get("/api/shelters", headers=viewer)).status == 200
    assert (await client.get("/api/registrations/summary", headers=viewer)).status == 200
    for method, path in (
        ("PATCH", "/api/shelters/SH-1"),
        ("GET", "/api/manifests/DP-1.csv"),
        ("GET", "/api/manifests/DP-1.xlsx"),
    ):
        response = await client.request(method, path, headers=viewer, json={"status": "full"})
        assert response.status == 403, path
        assert "your role (viewer) may not do this" in await error_of(response)
    responder = await bearer(database, Role.RESPONDER, "Responder")
    assert (await client.patch("/api/shelters/SH-1", headers=responder, json={})).status == 403
    admin = await bearer(database, Role.ADMIN, "Admin")
    assert (await client.patch("/api/shelters/SH-1", headers=admin, json={})).status == 200


# --- shelters -------------------------------------------------------------------------------


async def test_list_and_show(client: Client, database: Database, seeded: None) -> None:
    headers = await bearer(database, Role.VIEWER)
    listing = await (await client.get("/api/shelters", headers=headers)).json()
    assert [s["external_id"] for s in listing["shelters"]] == ["SH-2", "SH-1"]
    school = next(s for s in listing["shelters"] if s["external_id"] == "SH-1")
    assert school["status"] == "open" and school["places_free"] == 60
    assert school["stale"] is True, "two days old"
    assert school["services"] == ["water"]
    one = await client.get("/api/shelters/SH-1", headers=headers)
    assert one.status == 200
    assert (await one.json())["history"] == []
    missing = await client.get("/api/shelters/NOPE", headers=headers)
    assert missing.status == 404
    assert await error_of(missing) == "no shelter 'NOPE'"
    nowhere = await client.get("/api/nothing/here", headers=headers)
    assert nowhere.status == 404
    assert "no such endpoint" in await error_of(nowhere)


async def test_patch_updates_with_attribution_and_history(
    client: Client, database: Database, seeded: None
) -> None:
    headers = await bearer(database, Role.COMMUNICATIONS_OFFICER, "Rana Haddad")
    response = await client.patch("/api/shelters/SH-1", headers=headers, json={"status": "full"})
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "full" and body["occupancy"] == 40
    assert body["updated_by"] == "Rana Haddad (staff #1)"
    assert body["stale"] is False
    response = await client.patch("/api/shelters/SH-1", headers=headers, json={"occupancy": 60})
    body = await response.json()
    assert body["status"] == "open", "an occupancy below capacity reopens a full shelter"
    response = await client.patch(
        "/api/shelters/SH-1", headers=headers, json={"occupancy": 100, "status": "open"}
    )
    body = await response.json()
    assert (body["status"], body["occupancy"], body["places_free"]) == ("open", 100, 0)
    history = (await (await client.get("/api/shelters/SH-1", headers=headers)).json())["history"]
    assert [(c["status"], c["occupancy"], c["by"]) for c in history] == [
        ("full", 40, "Rana Haddad (staff #1)"),
        ("open", 60, "Rana Haddad (staff #1)"),
        ("open", 100, "Rana Haddad (staff #1)"),
    ]
    # {} confirms: nothing changes, but the shelter is current again.
    confirmed = await (await client.patch("/api/shelters/SH-1", headers=headers, json={})).json()
    assert confirmed["occupancy"] == 100 and len(confirmed["history"]) == 4


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("not json", "the body must be a JSON object"),
        ("[1, 2]", "the body must be a JSON object"),
        ('{"capacity": 5}', "unknown field(s) capacity: only status and occupancy"),
        ('{"status": "gone"}', "status must be one of open, full, closed, not 'gone'"),
        ('{"status": null}', "status must be one of open, full, closed, not None"),
        ('{"occupancy": "12"}', "occupancy must be a whole number, not '12'"),
        ('{"occupancy": true}', "occupancy must be a whole number, not True"),
        ('{"occupancy": 1.5}', "occupancy must be a whole number, not 1.5"),
        ('{"occupancy": -3}', "occupancy must be 0 or more, not -3"),
        ('{"occupancy": 99999999}', "occupancy 99999999 is not plausible for one shelter"),
    ],
)
async def test_patch_validation(
    client: Client, database: Database, seeded: None, body: str, problem: str
) -> None:
    headers = await bearer(database, Role.COMMUNICATIONS_OFFICER)
    response = await client.patch("/api/shelters/SH-1", headers=headers, data=body)
    assert response.status == 400
    assert await error_of(response) == problem
    unchanged = await (await client.get("/api/shelters/SH-1", headers=headers)).json()
    assert unchanged["history"] == [] and unchanged["occupancy"] == 40


async def test_patch_limits(client: Client, database: Database, seeded: None) -> None:
    headers = await bearer(database, Role.COMMUNICATIONS_OFFICER)
    big = json.dumps({"status": "open", "padding": "x" * MAX_BODY})
    response = await client.patch("/api/shelters/SH-1", headers=headers, data=big)
    assert response.status == 413
    assert "larger than" in await error_of(response)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(MAX_BODY // 1000 + 2):
            yield b" " * 1000

    response = await client.patch("/api/shelters/SH-1", headers=headers, data=chunks())
    assert response.status == 413
    missing = await client.patch("/api/shelters/NOPE", headers=headers, json={"status": "open"})
    assert missing.status == 404


# --- registrations and manifests ------------------------------------------------------------


async def test_summary_and_manifests(client: Client, database: Database, seeded: None) -> None:
    headers = await bearer(database, Role.COMMUNICATIONS_OFFICER)
    counts = await (await client.get("/api/registrations/summary", headers=headers)).json()
    assert counts == {
        "registrations": 0,
        "people": 0,
        "by_departure_point": {},
        "by_nationality": {},
        "by_need": {},
    }
    csv_response = await client.get("/api/manifests/DP-1.csv", headers=headers)
    assert csv_response.status == 200
    assert csv_response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in csv_response.headers["Content-Disposition"]
    assert csv_response.headers["Cache-Control"] == "no-store"
    text = (await csv_response.read()).decode("utf-8-sig")
    assert text.splitlines()[0].startswith("reference,departure_point,")
    xlsx = await client.get("/api/manifests/unassigned.xlsx", headers=headers)
    assert xlsx.status == 200
    assert xlsx.content_type == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    sheet = load_workbook(io.BytesIO(await xlsx.read())).active
    assert sheet is not None and sheet["A1"].value == "reference"
    for path in ("/api/manifests/NOPE.csv", "/api/manifests/DP-1.pdf", "/api/manifests/DP-1"):
        response = await client.get(path, headers=headers)
        assert response.status == 404, path


# --- every mode serves it -------------------------------------------------------------------


def get_json(url: str, token: str | None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_cli_token_and_the_sandbox_with_demo_data(tmp_path: Path) -> None:
    env = {"CRISIS_DATA_DIR": str(tmp_path)}
    added = run_cli("staff", "add", "--role", "communications_officer", "Rana Haddad", env=env)
    assert added.returncode == 0, added.stderr
    issued = run_cli("staff", "token", "1", "--days", "3", env=env)
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert "For Rana Haddad (communications_officer), valid until" in issued.stderr
    assert run_cli("staff", "token", "7", env=env).returncode == 1, "unknown staff"
    unknown = run_cli("staff", "token", "7", env=env)
    assert "staff member 7 is unknown" in unknown.stderr
    for days in ("0", "91", "x"):
        assert run_cli("staff", "token", "1", "--days", days, env=env).returncode == 2

    with sandbox(tmp_path, free_port()) as url:
        status, body = get_json(f"{url}/api/shelters", None)
        assert status == 401
        status, body = get_json(f"{url}/api/shelters", token)
        assert status == 200
        assert len(body["shelters"]) == 12, "the demo data set, loaded into the empty database"
        assert all(s["updated_by"] == "demo data" for s in body["shelters"])


async def test_polling_with_a_token_serves_the_api_on_the_web_port(tmp_path: Path) -> None:
    bot_token = "424242:polling-bot-with-staff-api"
    api = LoopbackBotApi(token=bot_token, port=0)
    await api.start()
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "TELEGRAM_BOT_TOKEN": bot_token,
        "TELEGRAM_API_BASE_URL": api.url,
        "PSEUDONYM_KEY": "p" * 40,
        "CRISIS_DATA_DIR": str(tmp_path),
        "WEB_PORT": str(port),
    }
    run_env = {key: value for key, value in env.items() if key != "PATH"}
    assert run_cli("staff", "add", "--role", "viewer", "V", env=run_env).returncode == 0
    token = run_cli("staff", "token", "1", env=run_env).stdout.strip()
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "run", env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline:
            try:
                status, body = await asyncio.to_thread(
                    get_json, f"http://127.0.0.1:{port}/api/shelters", token
                )
                break
            except OSError:
                await asyncio.sleep(0.2)
        assert status == 200
        assert body == {"shelters": []}, "no demo data outside the sandbox"
    finally:
        process.terminate()
        await asyncio.wait_for(process.communicate(), timeout=20)
        await api.stop()


async def test_webhook_mode_serves_the_api_beside_the_webhook(
    start_bot: StartBot, database: Database, seeded: None
) -> None:
    from bot.app import build_application, start_application

    async with start_bot() as polling_bot:
        services = polling_bot.services
    port = free_port()
    settings = replace(
        services.settings,
        mode="webhook",
        webhook_url="https://bot.example.org",
        webhook_secret="s3cret-token-for-tests",
        web_port=port,
    )
    application = build_application(replace(services, settings=settings))
    async with application:
        await start_application(application)
        runner = await _start_webhook(application, settings, StaffApi(database, KEY, settings))
        try:
            headers = await bearer(database, Role.VIEWER)
            async with aiohttp.ClientSession() as http:
                base = f"http://127.0.0.1:{port}"
                async with http.get(f"{base}/api/shelters/SH-1", headers=headers) as response:
                    assert response.status == 200
                    assert (await response.json())["external_id"] == "SH-1"
                async with http.post(f"{base}{WEBHOOK_PATH}", json={}) as response:
                    assert response.status == 403, "the webhook still checks its secret"
        finally:
            await runner.cleanup()
            await application.stop()


# --- feedback aggregates and item exports ---------------------------------------------------


@pytest.fixture
async def feedback_items(database: Database) -> dict[str, str]:
    from tests.test_exports import add_item, person

    async with database.transaction() as session:
        amina = await person(session)
        tent = await add_item(session, amina, "+1 tent please", utcnow(), sectors=[2])
        hurt = await add_item(session, amina, "he hurt me", utcnow(), sectors=[10], sensitive=True)
        return {"tent": tent.reference, "hurt": hurt.reference}


async def test_feedback_aggregates_for_every_role(
    client: Client, database: Database, feedback_items: dict[str, str]
) -> None:
    for role in Role:
        headers = await bearer(database, role, f"Staff {role.value}")
        response = await client.get("/api/aggregates", headers=headers)
        assert response.status == 200, role
        body = await response.json()
        assert body["summary"]["total"] == 1, "never the sensitive item"
        assert [(r["sector_code"], r["items"]) for r in body["rows"]] == [(2, 1)]
        assert body["rows"][0]["sector_name"] == "Shelter and Non-food Items"
        hxl = await client.get("/api/aggregates.csv?by=item", headers=headers)
        assert hxl.status == 200 and hxl.headers["Cache-Control"] == "no-store"
        lines = (await hxl.read()).decode("utf-8-sig").splitlines()
        assert lines[1].startswith("#date,#adm1+name,#adm1+code,") and len(lines) == 3
    text = (await (await client.get("/api/aggregates", headers=headers)).read()).decode()
    assert "tent" not in text and feedback_items["tent"] not in text, "aggregates only"
    old = await client.get("/api/aggregates?since=2020-01-01&until=2020-01-31", headers=headers)
    assert (await old.json())["rows"] == []
    for query, problem in (
        ("days=0", "days must be a whole number"),
        ("since=yesterday", "since and until must be dates"),
        ("since=2026-01-01&days=3", "not both"),
        ("since=2026-02-01&until=2026-01-01", "is after until"),
        ("by=person", "by must be one of sector, cluster, item"),
    ):
        response = await client.get(f"/api/aggregates?{query}", headers=headers)
        assert response.status == 400, query
        assert problem in await error_of(response)


async def test_item_exports_by_role(
    client: Client, database: Database, feedback_items: dict[str, str]
) -> None:
    for role in (Role.VIEWER, Role.COMMUNICATIONS_OFFICER):
        headers = await bearer(database, role, f"Staff {role.value}")
        for path in ("/api/items.csv", "/api/items.xlsx"):
            response = await client.get(path, headers=headers)
            assert response.status == 403, (role, path)

    responder = await bearer(database, Role.RESPONDER, "Responder")
    response = await client.get("/api/items.csv", headers=responder)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    text = (await response.read()).decode("utf-8-sig")
    assert text.splitlines()[0].startswith("reference,created_at,")
    assert ",'+1 tent please," in text, "a formula start is neutralised"
    assert "he hurt me" not in text and feedback_items["hurt"] not in text
    refused = await client.get("/api/items.csv?include_sensitive=1", headers=responder)
    assert refused.status == 403 and "sensitive" in await error_of(refused)
    wrong = await client.get("/api/items.csv?statuses=lost", headers=responder)
    assert wrong.status == 400 and "unknown status" in await error_of(wrong)
    none = await client.get("/api/items.csv?sector=4", headers=responder)
    assert len((await none.read()).decode("utf-8-sig").splitlines()) == 1, "the header only"
    xlsx = await client.get("/api/items.xlsx", headers=responder)
    assert xlsx.status == 200 and xlsx.content_type == CONTENT_TYPE_XLSX
    sheet = load_workbook(io.BytesIO(await xlsx.read())).active
    assert sheet is not None and sheet.max_row == 2 and sheet["N2"].value == "'+1 tent please"

    focal = await bearer(database, Role.PROTECTION_FOCAL_POINT, "Focal")
    both = await client.get("/api/items.csv?include_sensitive=1", headers=focal)
    assert both.status == 200
    assert "he hurt me" in (await both.read()).decode("utf-8-sig")
    plain = await client.get("/api/items.csv", headers=focal)
    assert "he hurt me" not in (await plain.read()).decode("utf-8-sig"), "only when asked"
    admin = await bearer(database, Role.ADMIN, "Admin")
    assert (await client.get("/api/items.csv", headers=admin)).status == 200
