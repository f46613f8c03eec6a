"""The dashboard in a real headless Chromium, beside the real bot and the loopback Bot API
server: log in, see a gap flag, drill down to its items, open one, correct a code, reply, and
the person's chat receives the reply from the bot."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.sandbox.botapi import LoopbackBotApi
from feedback.codes import Correction
from feedback.items import FeedbackItem
from feedback.replies import Reply
from feedback.rollups import recount
from staff.models import Role, StaffMember
from staff.passwords import hash_password
from storage.database import Database
from storage.references import spoken
from tests.phone import Phone
from tests.sandbox_fixtures import RunningBot
from tests.test_e2e_onboarding import onboard
from tests.test_sandbox_page import CHROMIUM, CHROMIUM_ARGS, require_chromium

PASSWORD = "correct horse battery"
SCREENSHOT = Path("/tmp/dashboard_overview.png")
ITEM_SCREENSHOT = Path("/tmp/dashboard_item.png")


async def age_items(database: Database, days: int) -> FeedbackItem:
    """Make the one item `days` old (counts kept right), so it is past any response target."""
    async with database.transaction() as session:
        [item] = list(await session.scalars(select(FeedbackItem)))
        item.created_at = item.created_at - timedelta(days=days)
        await recount(session, item)
        return item


async def add_responder(database: Database) -> StaffMember:
    async with database.transaction() as session:
        member = StaffMember(
            name="Rana Haddad", role=Role.RESPONDER, password_hash=hash_password(PASSWORD)
        )
        session.add(member)
        await session.flush()
        return member


async def settled(database: Database) -> Reply:
    for _ in range(100):
        async with database.transaction() as session:
            [reply] = list(await session.scalars(select(Reply)))
        if reply.delivered_at is not None or reply.failed_at is not None:
            return reply
        await asyncio.sleep(0.1)
    raise AssertionError("the reply is still pending")


@pytest.mark.browser
async def test_a_responder_follows_a_flag_corrects_and_replies_in_chromium(
    bot_api: LoopbackBotApi,
    running_bot: RunningBot,
    phone: Phone,
    database: Database,
    dashboard_url: str,
) -> None:
    require_chromium()
    from playwright.async_api import async_playwright, expect

    await onboard(phone)
    await phone.send("Our tent is flooded and we have nowhere to sleep")
    question_id = max(m.message_id for m in bot_api.transcript(phone.user_id) if not m.from_bot)
    item = await age_items(database, days=5)
    member = await add_responder(database)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        requested: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on(
            "response",
            lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        page.on("request", lambda r: requested.append(r.url))

        # Not logged in: the login page, then back to the overview.
        await page.goto(f"{dashboard_url}/dashboard/")
        await expect(page.locator("h1")).to_have_text("Log in")
        await page.fill("#username", str(member.id))
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await expect(page.locator("h1")).to_have_text("Overview")

        # The unanswered flag comes first, explained, with a link to its items.
        flag = page.locator(".flag.kind-unanswered").first
        await expect(flag).to_be_visible()
        await expect(flag.locator(".explanation")).to_contain_text("1 open")
        await page.screenshot(path=str(SCREENSHOT), full_page=True)
        await flag.locator("a.drill").click()
        await expect(page.locator("h1")).to_have_text("Item queue")
        row_link = page.locator("a.ref", has_text=spoken(item.reference))
        await expect(row_link).to_be_visible()
        await expect(page.locator("table.queue tbody tr")).to_have_count(1)

        # Open it, correct a code.
        await row_link.click()
        await expect(page.locator(".message")).to_contain_text("Our tent is flooded")
        await page.click("details.correct summary")
        await page.check("input[name=sector][value='3']")
        await page.click("form.codes-form button[type=submit]")
        await expect(page.locator(".done")).to_have_text("Codes saved.")
        await expect(page.locator("input[name=sector][value='3']")).to_be_checked()

        # Reply: recorded by the dashboard, sent by the bot.
        await page.fill("#reply-text", "A family tent is on its way to your area today.")
        await page.click("form.reply-form button[type=submit]")
        await expect(page.locator(".done")).to_contain_text("Reply recorded")
        answer = await phone.next_message()
        assert (answer.text or "").endswith("A family tent is on its way to your area today.")
        assert spoken(item.reference) in (answer.text or "")
        assert answer.reply_to_message_id == question_id, "quoting the person's message"
        reply = await settled(database)
        assert reply.delivered_at is not None and reply.staff_id == member.id
        await page.reload()
        await expect(page.locator(".reply-delivered .state")).to_have_text("delivered")
        await expect(page.locator("h1 .status")).to_have_text("answered")
        await page.screenshot(path=str(ITEM_SCREENSHOT), full_page=True)

        await browser.close()

    async with database.transaction() as session:
        [correction] = list(
            await session.scalars(select(Correction).where(Correction.staff_id == member.id))
        )
    assert 3 in correction.after["sectors"]  # type: ignore[operator]
    assert problems == []
    assert requested and all(url.startswith(dashboard_url) for url in requested), "no internet"
