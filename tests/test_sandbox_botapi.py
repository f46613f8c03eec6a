"""The loopback Bot API answers a real python-telegram-bot client the way Telegram does."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeAllPrivateChats,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.sandbox.botapi import (
    ApiError,
    BotEventTimeout,
    LoopbackBotApi,
    RateLimits,
    SimUser,
    format_text,
)

TOKEN = "123456:SANDBOX-TOKEN"
# PTB itself reads the deprecated int form of RetryAfter.retry_after when building the message.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*`retry_after` will be of type:telegram.warnings.PTBDeprecationWarning"
)


@pytest.fixture
async def api() -> AsyncIterator[LoopbackBotApi]:
    server = LoopbackBotApi(token=TOKEN)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: LoopbackBotApi) -> AsyncIterator[Bot]:
    client = Bot(TOKEN, base_url=api.base_url, base_file_url=api.base_file_url)
    async with client:
        yield client


async def started_user(api: LoopbackBotApi, name: str = "Amina", lang: str = "ar") -> SimUser:
    """A user who already sent /start (Telegram only lets bots write to such users)."""
    user = api.add_user(first_name=name, language_code=lang)
    await api.send_text(user.id, "/start")
    return user


@contextlib.contextmanager
def telegram_error(kind: type[TelegramError], text: str) -> Iterator[None]:
    """PTB drops the "Bad Request: " prefix and capitalises the rest, so compare loosely."""
    with pytest.raises(kind) as caught:
        yield
    assert text.lower() in caught.value.message.lower(), caught.value.message


def retry_seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB warns while migrating retry_after to timedelta
        value = error.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


async def raw_call(
    api: LoopbackBotApi, method: str, http_method: str = "POST", **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    """Calls the API without PTB, to check the wire format itself."""
    url = f"{api.base_url}{TOKEN}/{method}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(http_method, url, **kwargs) as resp,
    ):
        return resp.status, await resp.json()


# --- identity, tokens, wire formats ------------------------------------------------------------


async def test_get_me_reports_bot_identity(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "CrisisCommsBot", True)
    assert me.first_name == "Crisis Comms"


async def test_wrong_token_is_unauthorized(api: LoopbackBotApi) -> None:
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{api.base_url}999:WRONG/getMe")
        assert response.status == 401
        body = await response.json()
    assert body == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    wrong = Bot("999:WRONG", base_url=api.base_url)
    with pytest.raises(InvalidToken):
        await wrong.initialize()


async def test_unknown_method_is_not_found(api: LoopbackBotApi) -> None:
    status, body = await raw_call(api, "sendTeleportation")
    assert status == 404
    assert body == {"ok": False, "error_code": 404, "description": "Not Found"}
    status, body = await raw_call(api, "sendDice")  # real method the fake does not implement
    assert status == 400 and "not implemented" in body["description"]


async def test_json_query_and_form_requests_keep_text_a_string(api: LoopbackBotApi) -> None:
    user = await started_user(api)
    markup = {"inline_keyboard": [[{"text": "OK", "callback_data": "1"}]]}
    status, body = await raw_call(
        api, "sendMessage", json={"chat_id": user.id, "text": "123", "reply_markup": markup}
    )
    assert status == 200 and body["result"]["text"] == "123"
    assert body["result"]["reply_markup"] == markup
    status, body = await raw_call(
        api,
        "sendmessage",  # method names are case-insensitive, like Telegram's
        data={"chat_id": str(user.id), "text": "true", "reply_markup": json.dumps(markup)},
    )
    assert status == 200 and body["result"]["text"] == "true"
    status, body = await raw_call(
        api, "sendMessage", http_method="GET", params={"chat_id": user.id, "text": "42"}
    )
    assert status == 200 and body["result"]["text"] == "42"
    texts = [m.text for m in api.transcript(user.id) if m.from_bot]
    assert texts == ["123", "true", "42"]


# --- messages ---------------------------------------------------------------------------------


async def test_send_edit_delete_round_trip(api: LoopbackBotApi, bot: Bot) -> None:
    user = await started_user(api)
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="yes")]])
    sent = await bot.send_message(user.id, "Need help?", reply_markup=keyboard)
    assert sent.chat.id == user.id and sent.from_user is not None and sent.from_user.is_bot
    assert api.last_bot_message(user.id) is not None
    assert api.button_data(api.last_bot_message(user.id), "Yes") == "yes"  # type: ignore[arg-type]

    edited = await bot.edit_message_text("Need help now?", user.id, sent.message_id)
    assert edited.text == "Need help now?"  # type: ignore[union-attr]
    assert edited.reply_markup is None  # type: ignore[union-attr]  # omitted markup is removed
    with telegram_error(BadRequest, "message is not modified"):
        await bot.edit_message_text("Need help now?", user.id, sent.message_id)
    await bot.edit_message_reply_markup(user.id, sent.message_id, reply_markup=keyboard)
    with telegram_error(BadRequest, "message is not modified"):
        await bot.edit_message_reply_markup(user.id, sent.message_id, reply_markup=keyboard)

    assert await bot.delete_message(user.id, sent.message_id) is True
    with telegram_error(BadRequest, "message to delete not found"):
        await bot.delete_message(user.id, sent.message_id)
    with telegram_error(BadRequest, "message to edit not found"):
        await bot.edit_message_text("again", user.id, sent.message_id)
    with telegram_error(BadRequest, "message to edit not found"):
        await bot.edit_message_text("never", user.id, 9999)

    bot_message = next(m for m in api.transcript(user.id) if m.from_bot)
    assert (bot_message.edited, bot_message.deleted) == (True, True)
    events = await api.wait_for_bot(user.id, count=4)
    assert [e.kind for e in events] == ["send", "edit", "edit", "delete"]
    assert events[0].message is not None and events[0].message.text == "Need help?"
    assert events[1].message is not None and events[1].message.text == "Need help now?"


async def test_telegram_errors_for_bad_sends(api: LoopbackBotApi, bot: Bot) -> None:
    user = await started_user(api)
    with telegram_error(BadRequest, "message is too long"):
        await bot.send_message(user.id, "x" * 4097)
    assert (await bot.send_message(user.id, "x" * 4096)).text == "x" * 4096
    with telegram_error(BadRequest, "message text is empty"):
        await bot.send_message(user.id, " \n ")
    with telegram_error(BadRequest, "chat not found"):
        await bot.send_message(424242, "hi")
    stranger = api.add_user(first_name="Never Started")
    with telegram_error(Forbidden, "bot can't initiate conversation"):
        await bot.send_message(stranger.id, "hi")
    too_long_data = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="d" * 65)]])
    with telegram_error(BadRequest, "BUTTON_DATA_INVALID"):
        await bot.send_message(user.id, "pick", reply_markup=too_long_data)
    with telegram_error(BadRequest, "can't parse entities"):
        await bot.send_message(user.id, "<b>unclosed", parse_mode="HTML")
    with telegram_error(BadRequest, 'Unsupported start tag "p"'):
        await bot.send_message(user.id, "<p>para</p>", parse_mode="HTML")
    with telegram_error(BadRequest, "Character '.' is reserved"):
        await bot.send_message(user.id, "Done.", parse_mode="MarkdownV2")
    assert len([m for m in api.transcript(user.id) if m.from_bot]) == 1


async def test_parse_modes_become_entities_with_utf16_offsets(
    api: LoopbackBotApi, bot: Bot
) -> None:
    user = await started_user(api)
    html = await bot.send_message(
        user.id,
        "🆘 <b>Help &amp; <i>info</i></b> <a href='https://iom.int'>IOM</a>\n",
        parse_mode="HTML",
    )
    assert html.text == "🆘 Help & info IOM"  # markup parsed, trailing whitespace trimmed
    spans = [(e.type, e.offset, e.length) for e in html.entities]
    assert spans == [("bold", 3, 11), ("italic", 10, 4), ("text_link", 15, 3)]
    assert html.entities[2].url == "https://iom.int"
    md = await bot.send_message(user.id, r"*Shelter* \- open 24h\.", parse_mode="MarkdownV2")
    assert md.text == "Shelter - open 24h."
    assert [(e.type, e.offset, e.length) for e in md.entities] == [("bold", 0, 7)]


async def test_blocked_user_gets_forbidden_until_unblocked(api: LoopbackBotApi, bot: Bot) -> None:
    user = await started_user(api)
    sent = await bot.send_message(user.id, "before")
    api.block(user.id)
    with telegram_error(Forbidden, "bot was blocked by the user"):
        await bot.send_message(user.id, "hello?")
    with telegram_error(Forbidden, "bot was blocked by the user"):
        await bot.edit_message_text("edited", user.id, sent.message_id)
    updates = await bot.get_updates(timeout=0)
    status = [u.my_chat_member.new_chat_member.status for u in updates if u.my_chat_member]
    assert status == ["kicked"]
    api.unblock(user.id)
    assert (await bot.send_message(user.id, "welcome back")).text == "welcome back"
    updates = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    member = updates[0].my_chat_member
    assert member is not None
    assert (member.old_chat_member.status, member.new_chat_member.status) == ("kicked", "member")


async def test_fail_next_injects_telegram_errors(api: LoopbackBotApi, bot: Bot) -> None:
    user = await started_user(api)
    api.fail_next("sendMessage", retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(user.id, "one")
    assert retry_seconds(caught.value) == 7
    assert api.rate_limited_count == 1
    api.fail_next("sendMessage", error_code=502, times=2)
    for _ in range(2):
        with pytest.raises(NetworkError):
            await bot.send_message(user.id, "two")
    assert (await bot.send_message(user.id, "three")).text == "three"
    assert [m.text for m in api.transcript(user.id) if m.from_bot] == ["three"]


# --- updates ----------------------------------------------------------------------------------


async def test_long_poll_returns_user_command_with_entity(api: LoopbackBotApi, bot: Bot) -> None:
    user = api.add_user(first_name="Omar", language_code="fa")
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    await api.send_text(user.id, "/start@CrisisCommsBot lang_fa")
    updates = await poll
    assert time.monotonic() - started < 2  # answered as soon as the update arrived
    message = updates[0].message
    assert message is not None and message.text == "/start@CrisisCommsBot lang_fa"
    assert message.from_user is not None and message.from_user.language_code == "fa"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bot_command", 0, 21)]
    assert message.chat.type == "private"
    plain = await api.send_text(user.id, "hello")
    assert "entities" not in plain


async def test_offset_limit_and_timeout(api: LoopbackBotApi, bot: Bot) -> None:
    user = api.add_user(first_name="Lina")
    for text in ("one", "two", "three"):
        await api.send_text(user.id, text)
    first_two = await bot.get_updates(limit=2, timeout=0)
    assert [u.message.text for u in first_two] == ["one", "two"]  # type: ignore[union-attr]
    assert not api.updates_confirmed(first_two[0].update_id)
    rest = await bot.get_updates(offset=first_two[1].update_id + 1, timeout=0)
    assert [u.message.text for u in rest] == ["three"]  # type: ignore[union-attr]
    assert api.updates_confirmed(first_two[1].update_id)
    assert not api.updates_confirmed(rest[0].update_id)
    started = time.monotonic()
    assert await bot.get_updates(offset=rest[0].update_id + 1, timeout=1) == ()
    assert 0.9 <= time.monotonic() - started < 3
    assert api.pending_updates() == []


async def test_other_user_content_parses_in_ptb(api: LoopbackBotApi, bot: Bot) -> None:
    user = api.add_user(first_name="Kofi", language_code="sw")
    text = await api.send_text(user.id, "typo")
    await api.send_sticker(user.id)
    await api.send_photo(user.id, caption="my tent")
    await api.send_voice(user.id)
    await api.send_contact(user.id, "+254700000000")
    await api.edit_user_message(user.id, text["message_id"], "fixed")
    await api.send_group_text(user.id, 777, "/help@CrisisCommsBot", group_title="Camp B")
    updates = await bot.get_updates(timeout=0)
    msgs = [u.message for u in updates if u.message]
    assert msgs[1].sticker is not None and msgs[1].sticker.emoji == "👍"
    assert msgs[2].photo[-1].width == 1280 and msgs[2].caption == "my tent"
    assert msgs[3].voice is not None and msgs[3].voice.to_dict()["duration"] == 3
    assert msgs[4].contact is not None and msgs[4].contact.user_id == user.id
    edited = [u.edited_message for u in updates if u.edited_message]
    assert edited[0].text == "fixed" and edited[0].edit_date is not None
    group = msgs[-1]
    assert (group.chat.id, group.chat.type, group.chat.title) == (-777, "group", "Camp B")


async def test_callback_query_round_trip(api: LoopbackBotApi, bot: Bot) -> None:
    user = await started_user(api)
    await bot.get_updates(timeout=0)
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton("Shelter", callback_data="topic:shelter")]]
    )
    sent = await bot.send_message(user.id, "Topic?", reply_markup=keyboard)
    (send_event,) = await api.wait_for_bot(user.id)
    assert send_event.message is not None
    data = api.button_data(send_event.message, "Shelter")
    query_id = await api.press_button(user.id, sent.message_id, data)
    updates = await bot.get_updates(offset=-1, timeout=1)
    query = updates[-1].callback_query
    assert query is not None and query.id == query_id and query.data == "topic:shelter"
    assert query.message is not None and query.message.message_id == sent.message_id
    assert query.from_user.id == user.id
    assert await bot.answer_callback_query(query_id, text="Saved", show_alert=True)
    (answer,) = await api.wait_for_bot(user.id)
    assert (answer.kind, answer.callback_text, answer.show_alert) == (
        "answer_callback",
        "Saved",
        True,
    )
    with telegram_error(BadRequest, "query is too old"):
        await bot.answer_callback_query(query_id)
    # Stale keyboards send data the message no longer offers; bots must cope, so it is allowed.
    stale_id = await api.press_button(user.id, sent.message_id, "topic:food")
    stale = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    assert stale[0].callback_query is not None and stale[0].callback_query.id == stale_id
    await bot.delete_message(user.id, sent.message_id)
    with pytest.raises(ValueError, match="no bot message"):
        await api.press_button(user.id, sent.message_id, "topic:shelter")


async def test_location_venue_and_keyboards(api: LoopbackBotApi, bot: Bot) -> None:
    user = await started_user(api)
    ask = ReplyKeyboardMarkup(
        [[KeyboardButton("Share location", request_location=True)], ["Cancel"]],
        one_time_keyboard=True,
    )
    sent = await bot.send_message(user.id, "Where are you?", reply_markup=ask)
    assert sent.reply_markup is None  # Telegram does not echo reply keyboards
    stored = api.last_bot_message(user.id)
    assert stored is not None and stored.reply_markup is not None
    assert stored.reply_markup["keyboard"][1][0] == {"text": "Cancel"}
    assert api.chat_view(user.id)["reply_keyboard"]["keyboard"][0][0]["request_location"]
    await api.share_location(user.id, 36.2, 37.1)
    assert api.chat_view(user.id)["reply_keyboard"] is None  # one-time keyboard hides
    updates = await bot.get_updates(timeout=0)
    location = updates[-1].message.location  # type: ignore[union-attr]
    assert location is not None and (location.latitude, location.longitude) == (36.2, 37.1)
    await bot.send_location(user.id, 36.21, 37.13)
    await bot.send_venue(
        user.id, 36.2, 37.15, "Clinic", "Main road 1", reply_markup=ReplyKeyboardRemove()
    )
    events = await api.wait_for_bot(user.id, count=3)
    assert events[1].message is not None and events[1].message.location == {
        "latitude": 36.21, "longitude": 37.13,
    }  # fmt: skip
    venue = events[2].message.venue if events[2].message else None
    assert venue is not None and venue["title"] == "Clinic" and venue["address"] == "Main road 1"


async def test_send_document_upload_and_download(api: LoopbackBotApi, bot: Bot) -> None:
    user = await started_user(api)
    content = b"%PDF-1.4 leaflet" * 100
    sent = await bot.send_document(
        user.id, document=content, filename="leaflet.pdf", caption="Info"
    )
    assert sent.document is not None
    assert (sent.document.file_name, sent.document.file_size) == ("leaflet.pdf", len(content))
    assert sent.caption == "Info"
    again = await bot.send_document(user.id, document=sent.document.file_id)
    assert again.document is not None and again.document.file_id == sent.document.file_id
    file = await bot.get_file(sent.document.file_id)
    assert bytes(await file.download_as_bytearray()) == content
    with telegram_error(BadRequest, "wrong file identifier"):
        await bot.send_document(user.id, document="not-a-file-id")
    upload = await api.send_document(user.id, file_name="id.pdf", content=b"scan")
    user_file = await bot.get_file(upload["document"]["file_id"])
    assert bytes(await user_file.download_as_bytearray()) == b"scan"
    stored = api.last_bot_message(user.id)
    assert stored is not None and stored.document is not None
    assert stored.document["file_name"] == "leaflet.pdf"


async def test_commands_are_stored_per_scope_and_language(api: LoopbackBotApi, bot: Bot) -> None:
    user = api.add_user(first_name="Sara", language_code="ar")
    await bot.set_my_commands([BotCommand("start", "Start"), BotCommand("help", "Help")])
    await bot.set_my_commands(
        [BotCommand("start", "ابدأ")], scope=BotCommandScopeAllPrivateChats(), language_code="ar"
    )
    assert [c.command for c in await bot.get_my_commands()] == ["start", "help"]
    arabic = await bot.get_my_commands(scope=BotCommandScopeAllPrivateChats(), language_code="ar")
    assert [c.description for c in arabic] == ["ابدأ"]
    assert api.commands("all_private_chats", "ar") == [{"command": "start", "description": "ابدأ"}]
    assert api.effective_commands(user.id) == [{"command": "start", "description": "ابدأ"}]
    assert await bot.delete_my_commands(scope=BotCommandScopeAllPrivateChats(), language_code="ar")
    assert [c["command"] for c in api.effective_commands(user.id)] == ["start", "help"]
    with telegram_error(BadRequest, "BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Start!", "bad")])


async def test_webhook_blocks_get_updates_until_deleted(api: LoopbackBotApi, bot: Bot) -> None:
    with telegram_error(BadRequest, "HTTPS URL must be provided"):
        await bot.set_webhook("http://127.0.0.1:9/hook")
    assert await bot.set_webhook("https://bot.example.org/hook")
    assert (await bot.get_webhook_info()).url == "https://bot.example.org/hook"
    with telegram_error(Conflict, "can't use getUpdates method while webhook is active"):
        await bot.get_updates(timeout=0)
    assert await bot.delete_webhook()
    assert api.webhook_url is None
    assert await bot.get_updates(timeout=0) == ()


async def test_second_poller_terminates_first(api: LoopbackBotApi, bot: Bot) -> None:
    other = Bot(TOKEN, base_url=api.base_url)
    async with other:
        first = asyncio.create_task(bot.get_updates(timeout=5))
        await asyncio.sleep(0.2)
        second = asyncio.create_task(other.get_updates(timeout=1))
        with telegram_error(Conflict, "terminated by other getUpdates request"):
            await first
        assert await second == ()


# --- flood control ----------------------------------------------------------------------------


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_rate_limits_answer_429_with_retry_after() -> None:
    clock = ManualClock()
    api = LoopbackBotApi(token=TOKEN, enforce_rate_limits=True, clock=clock)
    await api.start()
    try:
        async with Bot(TOKEN, base_url=api.base_url) as bot:
            user = await started_user(api)
            for i in range(RateLimits().private_burst):
                await bot.send_message(user.id, f"burst {i}")
            with pytest.raises(RetryAfter) as caught:
                await bot.send_message(user.id, "one too many")
            assert retry_seconds(caught.value) == 1
            clock.now += 1.0
            await bot.send_message(user.id, "after waiting")

            member = api.add_user(first_name="Group member")
            await api.send_group_text(member.id, 55, "hi")
            for i in range(20):
                await bot.send_message(-55, f"group {i}")
            with pytest.raises(RetryAfter) as caught:
                await bot.send_message(-55, "21st this minute")
            assert retry_seconds(caught.value) == 3
            assert api.rate_limited_count == 2
            assert len([m for m in api.transcript(-55) if m.from_bot]) == 20
    finally:
        await api.stop()


async def test_global_limit_is_30_per_second() -> None:
    api = LoopbackBotApi(token=TOKEN, enforce_rate_limits=True, clock=ManualClock())
    await api.start()
    try:
        users = [await started_user(api, name=f"U{i}") for i in range(31)]
        async with Bot(TOKEN, base_url=api.base_url) as bot:
            for user in users[:30]:
                await bot.send_message(user.id, "alert")
            with pytest.raises(RetryAfter):
                await bot.send_message(users[30].id, "alert")
        assert api.rate_limited_count == 1
    finally:
        await api.stop()


# --- observing the bot ------------------------------------------------------------------------


async def test_wait_for_bot_keeps_a_cursor_per_chat(api: LoopbackBotApi, bot: Bot) -> None:
    amina, omar = await started_user(api), await started_user(api, name="Omar")
    waiter = asyncio.create_task(api.wait_for_bot(omar.id, timeout=3))
    for text in ("a", "b", "c"):
        await bot.send_message(amina.id, text)
    await bot.send_message(omar.id, "for omar")
    assert [e.message.text for e in await waiter if e.message] == ["for omar"]
    first_two = await api.wait_for_bot(amina.id, count=2)
    assert [e.message.text for e in first_two if e.message] == ["a", "b"]
    assert [e.message.text for e in await api.wait_for_bot(amina.id) if e.message] == ["c"]
    with pytest.raises(BotEventTimeout, match="got 0") as caught:
        await api.wait_for_bot(amina.id, timeout=0.2)
    assert isinstance(caught.value, asyncio.TimeoutError)
    assert isinstance(caught.value, AssertionError)
    await bot.send_message(amina.id, "d")
    assert [e.kind for e in api.pending_bot_events(amina.id)] == ["send"]
    assert api.pending_bot_events(amina.id) == []


async def test_real_application_conversation(api: LoopbackBotApi) -> None:
    """A PTB Application polling the fake server, as the bot's end-to-end tests will run it."""

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Water", callback_data="water")]])
        await update.effective_message.reply_text("What do you need?", reply_markup=keyboard)

    async def choose(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("Noted")
        await query.edit_message_text(f"You chose: {query.data}")

    app = (
        Application.builder()
        .token(TOKEN)
        .base_url(api.base_url)
        .base_file_url(api.base_file_url)
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(choose))
    user = api.add_user(first_name="Amina", language_code="ar")
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            await api.send_text(user.id, "/start")
            (question,) = await api.wait_for_bot(user.id)
            assert question.message is not None and question.message.text == "What do you need?"
            await api.press_button(
                user.id, question.message.message_id, api.button_data(question.message, "Water")
            )
            answer, edit = await api.wait_for_bot(user.id, count=2)
            assert (answer.kind, answer.callback_text) == ("answer_callback", "Noted")
            assert edit.kind == "edit" and edit.message is not None
            assert edit.message.text == "You chose: water" and edit.message.reply_markup is None
        finally:
            await app.updater.stop()
            await app.stop()
    assert api.pending_updates() == []  # PTB confirmed everything on shutdown


# --- formatting rules and lifecycle -------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "mode", "text", "entities"),
    [
        (
            '<pre><code class="language-python">x &lt; 1</code></pre>',
            "HTML",
            "x < 1",
            [{"type": "pre", "language": "python", "offset": 0, "length": 5}],
        ),
        ("&#128512; <u>ok</u>", "HTML", "😀 ok", [{"type": "underline", "offset": 3, "length": 2}]),
        (
            r"[IOM](https://iom.int/a\)b) `c\`d`",
            "MarkdownV2",
            "IOM c`d",
            [
                {"type": "text_link", "url": "https://iom.int/a)b", "offset": 0, "length": 3},
                {"type": "code", "offset": 4, "length": 3},
            ],
        ),
        ("*bold_x* 1.5!", "Markdown", "bold_x 1.5!", [{"type": "bold", "offset": 0, "length": 6}]),
        ("  plain <b>  ", None, "plain <b>", []),
    ],
)
def test_format_text_matches_telegram(
    source: str, mode: str | None, text: str, entities: list[dict[str, Any]]
) -> None:
    assert format_text(source, mode, None) == (text, entities)


@pytest.mark.parametrize(
    ("source", "mode", "error"),
    [
        (
            "<b><i>x</b></i>",
            "HTML",
            'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"',
        ),
        ("a < b", "HTML", 'Unsupported start tag "" at byte offset 2'),
        ("*open", "MarkdownV2", "Can't find end of Bold entity at byte offset 0"),
        ("_open", "Markdown", "Can't find end of the entity starting at byte offset 0"),
    ],
)
def test_format_errors_match_telegram(source: str, mode: str, error: str) -> None:
    with pytest.raises(ApiError) as caught:
        format_text(source, mode, None)
    assert caught.value.error_code == 400
    assert caught.value.description == f"Bad Request: can't parse entities: {error}"


async def test_restart_keeps_state_and_port(api: LoopbackBotApi) -> None:
    user = await started_user(api)
    port = api.port
    await api.stop()
    await api.start()
    assert api.port == port
    async with Bot(TOKEN, base_url=api.base_url) as bot:
        assert (await bot.send_message(user.id, "still here")).chat.id == user.id
        seeded = api.add_user(first_name="Seeded", started=True)
        assert (await bot.send_message(seeded.id, "broadcast")).text == "broadcast"
