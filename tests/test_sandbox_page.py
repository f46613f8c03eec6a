"""The sandbox chat page and its JSON API: a person chats with the bot through a browser."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    Update,
)

from bot.sandbox.botapi import LoopbackBotApi

TOKEN = "123456:SANDBOX-TOKEN"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path("/tmp/sandbox_page.png")


@pytest.fixture
async def api() -> AsyncIterator[LoopbackBotApi]:
    server = LoopbackBotApi(token=TOKEN)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    response = await http.request(method, url, **kwargs)
    return response.status, await response.json()


# --- page assets and JSON API (no browser needed) ---------------------------------------------


async def test_page_is_served_without_inline_scripts(
    api: LoopbackBotApi, http: aiohttp.ClientSession
) -> None:
    response = await http.get(f"{api.url}/")
    html = await response.text()
    assert response.status == 200 and response.content_type == "text/html"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all("src=" in tag for tag in scripts)
    assert "style=" not in html and "<style" not in html
    for name, kind in (("chat.js", "text/javascript"), ("chat.css", "text/css")):
        asset = await http.get(f"{api.url}/static/{name}")
        assert (asset.status, asset.content_type) == (200, kind)
    assert (await http.get(f"{api.url}/static/botapi.py")).status == 404


async def test_page_api_round_trip(api: LoopbackBotApi, http: aiohttp.ClientSession) -> None:
    base = f"{api.url}/sandbox/api"
    amina = {"id": 4242, "first_name": "Amina", "language_code": "ar"}
    status, body = await call(http, "POST", f"{base}/users", json=amina)
    assert status == 200 and body["user"] == {
        "id": 4242, "first_name": "Amina", "language_code": "ar", "last_name": None,
        "username": None,
    }  # fmt: skip
    status, body = await call(http, "POST", f"{base}/chats/4242/text", json={"text": "/start"})
    assert status == 200 and body["message"]["entities"][0]["type"] == "bot_command"
    assert api.pending_updates()[0]["message"]["text"] == "/start"

    status, view = await call(http, "GET", f"{base}/chats/4242/messages?after_version=-1")
    poll = asyncio.create_task(
        call(http, "GET", f"{base}/chats/4242/messages?after_version={view['version']}&timeout=5")
    )
    await asyncio.sleep(0.1)
    assert not poll.done()  # long polling waits for a change
    async with Bot(TOKEN, base_url=api.base_url) as bot:
        keyboard = ReplyKeyboardMarkup([["Yes", "No"]], input_field_placeholder="Answer")
        await bot.send_message(4242, "Are you safe?", reply_markup=keyboard)
    status, changed = await asyncio.wait_for(poll, 2)
    assert changed["version"] > view["version"]
    assert [m["text"] for m in changed["messages"]] == ["/start", "Are you safe?"]
    assert changed["reply_keyboard"]["keyboard"] == [[{"text": "Yes"}, {"text": "No"}]]

    status, body = await call(
        http, "POST", f"{base}/chats/4242/location", json={"latitude": 1.5, "longitude": 2.5}
    )
    assert status == 200 and body["message"]["location"] == {"latitude": 1.5, "longitude": 2.5}
    status, body = await call(http, "POST", f"{base}/chats/4242/text", data="text=hi")
    assert (status, body["ok"]) == (415, False) and "application/json" in body["error"]
    status, body = await call(http, "POST", f"{base}/chats/999/text", json={"text": "hi"})
    assert status == 404 and "unknown simulated user" in body["error"]
    status, body = await call(
        http, "POST", f"{base}/chats/4242/callback", json={"message_id": 99, "data": "x"}
    )
    assert status == 400 and "no bot message 99" in body["error"]


# --- the page in Chromium ---------------------------------------------------------------------


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing; install Debian's chromium package on the CI image")
    pytest.skip(f"{CHROMIUM} is not installed")


async def next_update(bot: Bot, after: int) -> Update:
    updates = await bot.get_updates(offset=after + 1, timeout=5)
    assert updates, "the page action produced no update"
    return updates[0]


@pytest.mark.browser
async def test_chat_page_in_chromium(api: LoopbackBotApi) -> None:
    require_chromium()
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as playwright, Bot(TOKEN, base_url=api.base_url) as bot:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = await browser.new_page(viewport={"width": 390, "height": 800})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on(
            "response",
            lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        await page.goto(api.url)

        # Create the simulated user and say hello.
        await page.fill("#user-name", "Amina")
        await page.select_option("#user-lang", "ar")
        await page.click("#user-save")
        await expect(page.locator("#message-input")).to_be_enabled()
        await page.fill("#message-input", "/start")
        await page.press("#message-input", "Enter")
        queued = await api.wait_for_updates(1)
        assert queued[0]["message"]["text"] == "/start"
        hello = await next_update(bot, 0)
        assert hello.message is not None and hello.message.text == "/start"
        user = hello.message.from_user
        assert user is not None and (user.first_name, user.language_code) == ("Amina", "ar")
        await expect(page.locator(".msg.user")).to_have_count(1)

        # The test plays the bot: inline keyboard, reply keyboard, Arabic text, commands.
        await bot.set_my_commands([BotCommand("help", "How this service works")])
        topics = InlineKeyboardMarkup(
            [[InlineKeyboardButton("Shelter", callback_data="t:shelter"),
              InlineKeyboardButton("Food", callback_data="t:food")]]
        )  # fmt: skip
        ask = ReplyKeyboardMarkup(
            [[KeyboardButton("Share my location", request_location=True)], ["Skip"]],
            resize_keyboard=True,
        )
        await bot.send_message(user.id, "<b>Welcome!</b> Pick a topic:", "HTML",
                               reply_markup=topics)  # fmt: skip
        await bot.send_message(user.id, "مرحبا بكم في خدمة المعلومات", reply_markup=ask)
        await bot.send_venue(user.id, 46.2, 6.14, "IOM Office", "17 Route des Morillons")

        shelter = page.locator(".msg.bot .inline-btn", has_text="Shelter")
        await expect(shelter).to_be_visible()
        await expect(page.locator(".msg.bot strong")).to_have_text("Welcome!")
        await expect(page.locator(".reply-btn")).to_have_count(2)
        await expect(page.locator(".card.venue .osm-link")).to_be_visible()

        arabic = page.locator(".msg.bot .text", has_text="مرحبا")
        assert await arabic.evaluate("e => getComputedStyle(e).direction") == "rtl"
        english = page.locator(".msg.bot .text", has_text="Pick a topic")
        assert await english.evaluate("e => getComputedStyle(e).direction") == "ltr"

        await page.click("#commands-btn")
        await expect(page.locator(".command-item[data-command='help']")).to_be_visible()
        await page.click("#commands-btn")

        await page.screenshot(path=str(SCREENSHOT))

        # Inline button -> callback_query; the bot's answer shows as a toast.
        await shelter.click()
        pressed = await next_update(bot, hello.update_id)
        query = pressed.callback_query
        assert query is not None and query.data == "t:shelter"
        await bot.answer_callback_query(query.id, text="Saved: shelter")
        await expect(page.locator("#toast")).to_contain_text("Saved: shelter")

        # request_location reply button -> location form -> location update.
        await page.click(".reply-btn.request-location")
        await expect(page.locator("#location-form")).to_be_visible()
        await page.fill("#loc-lat", "33.5138")
        await page.fill("#loc-lon", "36.2765")
        await page.click("#loc-share")
        shared = await next_update(bot, pressed.update_id)
        assert shared.message is not None and shared.message.location is not None
        assert (shared.message.location.latitude, shared.message.location.longitude) == (
            33.5138,
            36.2765,
        )
        await expect(page.locator(".card.location")).to_be_visible()

        # Edits and deletes by the bot show up live.
        last = api.last_bot_message(user.id)
        assert last is not None
        await bot.delete_message(user.id, last.message_id)
        await expect(page.locator(".card.venue")).to_have_count(0)

        await browser.close()
    assert problems == []
