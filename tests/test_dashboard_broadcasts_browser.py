"""Composing a broadcast in a real headless Chromium, without any script on the page: log in
as a communications officer, write in English, add Arabic, preview the recipients per
language, send, and read the report."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from messages.broadcasts import Broadcast
from messages.contacts import Subscription, record_consent
from messages.outbox import OutboxMessage
from staff.models import Role, StaffMember
from staff.passwords import hash_password
from storage.base import utcnow
from storage.database import Database
from storage.references import spoken
from tests.test_sandbox_page import CHROMIUM, CHROMIUM_ARGS, require_chromium

PASSWORD = "correct horse battery"
COMPOSE_SCREENSHOT = Path("/tmp/dashboard_broadcast_compose.png")
PREVIEW_SCREENSHOT = Path("/tmp/dashboard_broadcast_preview.png")
REPORT_SCREENSHOT = Path("/tmp/dashboard_broadcast_report.png")
ENGLISH = "The school shelter closes tonight at 20:00. Go to the stadium."
ARABIC = "يغلق ملجأ المدرسة الليلة الساعة 20:00. توجهوا إلى الملعب."


async def seed(database: Database) -> StaffMember:
    """An officer, and people who hear general alerts: two in English, three in Arabic,
    one in Pashto (who gets the English text with a note)."""
    async with database.transaction() as session:
        officer = StaffMember(
            name="Lina Officer",
            role=Role.COMMUNICATIONS_OFFICER,
            password_hash=hash_password(PASSWORD),
        )
        session.add(officer)
        languages = ["en"] * 2 + ["ar"] * 3 + ["ps"]
        for n, language in enumerate(languages):
            contact = await record_consent(session, f"browser-{n}", 880_000 + n, language, utcnow())
            session.add(Subscription(contact_id=contact.id, topic="alerts", area=None))
        await session.flush()
        return officer


@pytest.mark.browser
async def test_an_officer_composes_previews_and_sends_in_chromium(
    database: Database, dashboard_url: str
) -> None:
    require_chromium()
    from playwright.async_api import async_playwright, expect

    officer = await seed(database)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        requested: list[str] = []
        context.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        context.on("weberror", lambda error: problems.append(str(error.error)))
        context.on(
            "response",
            lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        context.on("request", lambda r: requested.append(r.url))
        page = await context.new_page()

        await page.goto(f"{dashboard_url}/dashboard/broadcasts")
        await expect(page.locator("h1")).to_have_text("Log in")
        await page.fill("#username", str(officer.id))
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await expect(page.locator("h1")).to_have_text("Broadcasts")
        await expect(page.locator(".none")).to_have_text("No broadcasts yet.")
        await page.click("text=New broadcast")
        await expect(page.locator("h1")).to_have_text("New broadcast")

        # English first, then Arabic added with a submit that keeps what was typed.
        await page.fill("#text-en", ENGLISH)
        await page.check("input[name=topic][value=alerts]")
        await page.select_option("#add-language", "ar")
        await page.click("button[name=action][value=add]")
        await expect(page.locator("#text-ar")).to_have_attribute("dir", "rtl")
        await expect(page.locator("#text-en")).to_have_value(ENGLISH)
        await expect(page.locator("input[name=topic][value=alerts]")).to_be_checked()
        await page.fill("#text-ar", ARABIC)
        await page.screenshot(path=str(COMPOSE_SCREENSHOT), full_page=True)

        # Enter in a one-line field previews (it does not remove a language).
        await page.fill("#latitude", "")
        await page.press("#latitude", "Enter")
        await expect(page.locator("h1")).to_contain_text("Preview of broadcast")
        await expect(page.locator(".total")).to_have_text("6 people")
        rows = page.locator("table.preview-counts tbody tr")
        await expect(rows).to_have_count(3)
        await expect(rows.nth(0)).to_contain_text("Arabic (ar)")
        await expect(rows.nth(0).locator("td.num")).to_have_text("3")
        await expect(rows.nth(1).locator("td.num")).to_have_text("2")
        await expect(rows.nth(2)).to_contain_text("Pashto (ps)")
        await expect(rows.nth(2)).to_contain_text("fallback with a note")
        await expect(page.locator("blockquote[lang=ar]")).to_have_attribute("dir", "rtl")
        await page.screenshot(path=str(PREVIEW_SCREENSHOT), full_page=True)
        # The same preview in a second tab, to press Send there too.
        second = await context.new_page()
        await second.goto(page.url)

        await page.click("button.send")
        await expect(page.locator(".done")).to_contain_text("Broadcast queued")
        await expect(page.locator("h1 .status")).to_have_text("scheduled")
        await expect(page.locator("#count-recipients")).to_have_text("6")
        await expect(page.locator("#count-queued")).to_have_text("6")
        await expect(page.locator("blockquote[lang=ar]")).to_have_text(ARABIC)
        await page.screenshot(path=str(REPORT_SCREENSHOT), full_page=True)
        reference = (await page.locator("h1 .ref").inner_text()).strip()

        # Send in the stale second tab: nothing is queued twice.
        await second.click("button.send")
        await expect(second.locator(".done")).to_contain_text("had already been sent")
        await expect(second.locator("#count-queued")).to_have_text("6")

        await page.click("nav >> text=Broadcasts")
        await expect(page.locator("table.broadcast-list tbody tr")).to_have_count(1)
        await expect(page.locator("table.broadcast-list a.ref")).to_have_text(reference)
        await browser.close()

    async with database.transaction() as session:
        [broadcast] = list(await session.scalars(select(Broadcast)))
        queued = await session.scalar(select(func.count()).select_from(OutboxMessage))
    assert spoken(broadcast.reference) == reference
    assert broadcast.texts == {"en": ENGLISH, "ar": ARABIC} and queued == 6
    assert broadcast.created_by == officer.id
    assert problems == []
    assert requested and all(url.startswith(dashboard_url) for url in requested), "no internet"
