"""Size limits on the inputs that had none, or none tested: each gets a clear answer, never
a 500 or a traceback. (The others are tested where their feature is: see the list in
SECURITY.md.)"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient

from bot.dashboard import broadcasts as pages
from bot.dashboard.app import MAX_FORM
from evacuation.registrations import MAX_TEXT, clean_text
from staff.models import Role
from storage.database import Database
from tests.test_cli import run_cli
from tests.test_dashboard import Site, csrf_of, get, login_as, site  # noqa: F401
from tests.test_dashboard_broadcasts import compose, setting, submit
from tests.test_log_privacy import capture_logs
from tests.test_staff_api import bearer, client  # noqa: F401

Client = TestClient[Any, Any]


# --- the dashboard ---------------------------------------------------------------------------


async def test_a_dashboard_form_over_64_kib_is_refused_unread(site: Site) -> None:  # noqa: F811
    await login_as(site, Role.RESPONDER)
    page = f"/dashboard/items/{site.items['tent'].reference}"
    _, html = await get(site, page)
    response = await site.client.post(
        f"{page}/reply", data={"csrf": csrf_of(html), "text": "x" * MAX_FORM}
    )
    assert response.status == 413
    assert "The form is too large." in await response.text()


async def test_a_login_form_over_64_kib_is_refused(site: Site) -> None:  # noqa: F811
    page = await site.client.get("/dashboard/login")
    response = await site.client.post(
        "/dashboard/login",
        data={"csrf": csrf_of(await page.text()), "username": "1", "password": "p" * MAX_FORM},
    )
    assert response.status == 413


async def test_a_form_without_a_length_is_refused(site: Site) -> None:  # noqa: F811
    async def chunks() -> Any:
        yield b"csrf=x&username=1&password=y"

    response = await site.client.post("/dashboard/login", data=chunks())
    assert response.status == 411
    assert "Send the form with its length." in await response.text()


async def test_broadcast_texts_over_512_kib_together_are_refused(
    site: Site,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every text field of the compose form together (scaled down here)."""
    await login_as(site, Role.COMMUNICATIONS_OFFICER)
    fields = await compose(site, en="Shelter B opens tomorrow.")
    assert pages.MAX_FIELDS == 512 * 1024
    monkeypatch.setattr(pages, "MAX_FIELDS", 4000)
    fields = setting(fields, "text-en", "x" * 3800)
    status, html = await submit(site, fields)
    assert status == 303, "3,800 characters and the other fields fit: on to the preview"
    status, html = await submit(site, setting(fields, "text-fr", "x" * 3800))
    assert status == 413 and "The form is too large." in html


async def test_a_broadcast_post_over_its_size_is_refused_unread(
    site: Site,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await login_as(site, Role.COMMUNICATIONS_OFFICER)
    fields = await compose(site, en="Shelter B opens tomorrow.")
    assert pages.MAX_BODY == 2 * 20 * 1024 * 1024 + 512 * 1024
    monkeypatch.setattr(pages, "MAX_BODY", 2000)
    status, html = await submit(site, fields, document=("routes.pdf", b"%PDF" + b"x" * 3000))
    assert status == 413 and "the document may have at most 20 MB" in html


# --- the staff API ---------------------------------------------------------------------------


@pytest.mark.parametrize("sector", ["99999999999999999999999", "0", "16", "-1"])
async def test_an_impossible_sector_is_a_400_not_a_500(
    client: Client,  # noqa: F811
    database: Database,
    sector: str,
) -> None:
    headers = await bearer(database, Role.RESPONDER)
    response = await client.get(f"/api/items.csv?sector={sector}", headers=headers)
    assert response.status == 400
    body = await response.json()
    assert body["error"].startswith("bad item filter")


async def test_an_overlong_query_is_refused_by_the_server(client: Client) -> None:  # noqa: F811
    """aiohttp reads at most 8,190 bytes of request line; a longer one never reaches us."""
    url = client.make_url("/api/items.csv?references=" + "A" * 9000)
    async with ClientSession() as session, session.get(url) as response:
        assert 400 <= response.status < 500


async def test_an_unexpected_failure_is_logged_without_its_message(
    client: Client,  # noqa: F811
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A database error's text can quote what a person wrote: only its type and place."""
    import bot.staff_api

    async def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("He hit me at the distribution, call me on 0712345678")

    monkeypatch.setattr(bot.staff_api, "aggregate_rows", broken)
    headers = await bearer(database, Role.VIEWER)
    with capture_logs() as capture:
        response = await client.get("/api/aggregates", headers=headers)
    assert response.status == 500
    assert (await response.json()) == {"error": "internal error"}
    failures = [line for line in capture.lines if "failed" in line]
    assert failures and "builtins.RuntimeError at" in failures[0]
    assert not [line for line in capture.lines if "He hit me" in line or "0712345678" in line]


async def test_a_dashboard_failure_is_logged_without_its_message(
    site: Site,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import bot.dashboard.data

    async def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("He hit me at the distribution")

    monkeypatch.setattr(bot.dashboard.data, "registrations_by_point", broken)
    await login_as(site, Role.ADMIN)
    with capture_logs() as capture:
        status, html = await get(site, "/dashboard/shelters")
    assert status == 500 and "Something went wrong" in html
    assert [line for line in capture.lines if "builtins.RuntimeError at" in line]
    assert not [line for line in capture.lines if "He hit me" in line]


# --- registration answers and the command line ------------------------------------------------


def test_a_typed_registration_answer_is_one_line_of_at_most_120_characters() -> None:
    typed = "Near the\nmosque\t\u202e" + "behind the market " * 20 + "\x00"
    kept = clean_text(typed)
    assert len(kept) == MAX_TEXT == 120
    assert kept.startswith("Near the mosque behind the market")
    assert kept.isprintable() and "\n" not in kept


@pytest.mark.parametrize("name", ["x" * 121, "   ", "Rana\x07Haddad"])
def test_a_staff_name_is_one_printable_line_of_at_most_120_characters(
    name: str, tmp_path: Any
) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}", "CRISIS_DATA_DIR": str(tmp_path)}
    result = run_cli("staff", "add", "--role", "viewer", name, env=env)
    assert result.returncode == 2
    assert "must be 1 to 120 printable characters on one line" in result.stderr
