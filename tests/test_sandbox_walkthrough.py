"""The issue's acceptance walk, in a real browser against `crisis-comms run` with no token:
/start → consent → language → menu, restart the process, and find it all remembered."""

from __future__ import annotations

from pathlib import Path

import pytest

from messages.i18n import translations
from tests.test_cli import free_port, sandbox
from tests.test_sandbox_page import CHROMIUM, CHROMIUM_ARGS, require_chromium

SCREENSHOT = Path("/tmp/sandbox_walkthrough.png")


# The sandbox process starts (migrations, demo data) before the page can enable its input;
# on a CI machine busy with other suites that has taken longer than Playwright's 5 s, and once
# (a fresh clone, the 16-minute suite) longer than 15 s.
STARTUP_MS = 30_000


@pytest.mark.browser
async def test_walkthrough_survives_a_restart(tmp_path: Path) -> None:
    require_chromium()
    from playwright.async_api import async_playwright, expect

    port = free_port()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = await browser.new_page(viewport={"width": 390, "height": 800})
        bot_messages = page.locator(".msg.bot")

        async def say(text: str) -> None:
            await page.fill("#message-input", text)
            await page.press("#message-input", "Enter")

        with sandbox(tmp_path, port) as url:
            await page.goto(url)
            await page.fill("#user-name", "Amina")
            await page.select_option("#user-lang", "en")
            await page.click("#user-save")
            await expect(page.locator("#message-input")).to_be_enabled(timeout=STARTUP_MS)
            await say("/start")
            await expect(bot_messages.last).to_contain_text("Humanitarian responders")
            await page.locator(".inline-btn", has_text="Read more").click()
            await expect(bot_messages.last).to_contain_text("Your rights")
            await page.locator(".inline-btn", has_text="I agree").click()
            await expect(bot_messages.last).to_contain_text("Choose your language:")
            await page.locator(".inline-btn", has_text="Español").click()
            await expect(page.locator(".reply-btn", has_text="Buscar un albergue")).to_be_visible()
            await page.screenshot(path=str(SCREENSHOT))
            await page.locator(".reply-btn", has_text="Ayuda").click()
            await expect(bot_messages.last).to_contain_text("/language")

        with sandbox(tmp_path, port):
            await page.reload()
            await expect(page.locator("#message-input")).to_be_enabled(timeout=STARTUP_MS)
            await say("/start")
            await expect(bot_messages.last).to_contain_text(
                translations("es").gettext("Main menu. Choose what you need:")
            )
            await expect(page.locator(".reply-btn", has_text="Buscar un albergue")).to_be_visible()
        await browser.close()


@pytest.mark.browser
async def test_a_newcomer_tries_every_service_on_the_demo_data(tmp_path: Path) -> None:
    """`crisis-comms run` with no token loads the demo data: shelters near the page's default
    location, a registration's first steps, and a consulate, all from the browser."""
    require_chromium()
    from playwright.async_api import async_playwright, expect

    port = free_port()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = await browser.new_page(viewport={"width": 390, "height": 800})
        bot_messages = page.locator(".msg.bot")
        with sandbox(tmp_path, port) as url:
            await page.goto(url)
            await page.fill("#user-name", "Amina")
            await page.select_option("#user-lang", "en")
            await page.click("#user-save")
            await expect(page.locator("#message-input")).to_be_enabled(timeout=STARTUP_MS)
            await page.fill("#message-input", "/start")
            await page.press("#message-input", "Enter")
            await page.locator(".inline-btn", has_text="I agree").click()
            await page.locator(".inline-btn", has_text="English").click()

            await page.locator(".reply-btn", has_text="Find a shelter").click()
            await page.locator(".reply-btn.request-location").click()
            await page.click("#loc-share")  # the default point is the demo's centre
            await expect(page.locator("[data-testid=card-venue]")).to_have_count(5)
            await expect(page.get_by_text("Shelters near you, nearest first:")).to_be_visible()
            await expect(page.locator("[data-testid=card-venue]").first).to_contain_text("1.")

            await page.locator(".reply-btn", has_text="Register for evacuation").click()
            await expect(bot_messages.last).to_contain_text("Who are you registering?")
            await page.locator(".inline-btn", has_text="Just me").last.click()
            await expect(bot_messages.last).to_contain_text("How old are you?")

            await page.locator(".reply-btn", has_text="Consulate contacts").click()
            await expect(bot_messages.last).to_contain_text("Which country's embassy")
            await page.locator(".inline-btn", has_text="Afghanistan").last.click()
            await expect(bot_messages.last).to_contain_text("Embassies and consulates of")
        await browser.close()
