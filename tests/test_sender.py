"""The broadcast sender against the loopback Bot API server: languages, stop buttons, Telegram's
answers (429, 403, 400, 5xx), crash recovery, priority, quiet hours, cancel, per-chat pacing,
attachments. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from telegram import Bot
from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut

from bot.config import SANDBOX_TOKEN
from bot.sandbox.botapi import LoopbackBotApi, RateLimits
from bot.sender import Sender, SenderSettings, _not_sent
from messages.broadcasts import Broadcast, BroadcastStatus, Priority, QuietHours, cancel
from messages.contacts import Contact
from messages.outbox import UNCERTAIN, OutboxMessage, OutboxState, claim, mark_attempt
from storage.base import utcnow
from storage.database import Database, connect, upgrade
from tests.broadcast_fixtures import FIRST_CHAT, add_subscriber, queued_broadcast

FAST = SenderSettings(name="test", rate=200.0, idle_seconds=0.05, private_gap=0.0)


@pytest.fixture
async def api() -> AsyncIterator[LoopbackBotApi]:
    server = LoopbackBotApi(token=SANDBOX_TOKEN)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: LoopbackBotApi) -> AsyncIterator[Bot]:
    async with Bot(SANDBOX_TOKEN, base_url=api.base_url) as client:
        yield client


async def people(
    db: Database, api: LoopbackBotApi, languages: tuple[str | None, ...], **options: object
) -> list[int]:
    """Subscribers 0..n-1 whose chats exist on the server; returns their chat ids."""
    async with db.transaction() as session:
        for n, language in enumerate(languages):
            api.add_user(f"P{n}", user_id=FIRST_CHAT + n, started=True)
            await add_subscriber(session, n, language=language, **options)  # type: ignore[arg-type]
    return [FIRST_CHAT + n for n in range(len(languages))]


async def broadcast(db: Database, **options: object) -> Broadcast:
    async with db.transaction() as session:
        return await queued_broadcast(session, now=utcnow(), **options)  # type: ignore[arg-type]


async def drain(sender: Sender, rounds: int = 50) -> None:
    """Run the sender until nothing is due (waiting out short retry pauses)."""
    for _ in range(rounds):
        if await sender.run_once() == 0:
            async with sender.db.transaction() as session:
                pending = await session.scalar(
                    select(OutboxMessage.id).where(OutboxMessage.state == "queued").limit(1)
                )
            if pending is None:
                return
            await asyncio.sleep(0.2)
    raise AssertionError("the outbox did not drain")


async def outbox(db: Database, broadcast_id: int) -> list[OutboxMessage]:
    async with db.transaction() as session:
        query = select(OutboxMessage).where(OutboxMessage.broadcast_id == broadcast_id)
        return list(await session.scalars(query.order_by(OutboxMessage.contact_id)))


def received(api: LoopbackBotApi, chat_id: int) -> list[str]:
    return [m.text or m.caption or m.content_kind for m in api.transcript(chat_id) if m.from_bot]


async def test_each_person_gets_their_language_once_with_a_stop_button(
    database: Database, api: LoopbackBotApi, bot: Bot
) -> None:
    english, arabic, french = await people(database, api, ("en", "ar", "fr"))
    sent = await broadcast(database, texts={"en": "Shelter A is closed.", "ar": "الملجأ أ مغلق."})
    await drain(Sender(bot, database, FAST))
    assert received(api, english) == ["Shelter A is closed."]
    assert received(api, arabic) == ["الملجأ أ مغلق."]
    [note] = received(api, french)
    assert note.startswith("ℹ️ ") and note.endswith("\n\nShelter A is closed.")
    assert "pas encore disponible" in note  # the fallback note, in French
    for chat in (english, arabic, french):
        [message] = api.transcript(chat)
        [[button]] = message.inline_keyboard
        assert button["callback_data"] == "unsub:alerts"
    rows = await outbox(database, sent.id)
    assert all(row.state == OutboxState.SENT and row.telegram_message_id for row in rows)
    async with database.transaction() as session:
        stored = await session.get(Broadcast, sent.id)
        assert stored is not None and stored.status == BroadcastStatus.FINISHED
        assert stored.started_at is not None and stored.finished_at is not None


async def test_a_429_waits_retry_after_and_sends_once(
    database: Database, api: LoopbackBotApi, bot: Bot
) -> None:
    chats = await people(database, api, ("en", "en"))
    sent = await broadcast(database)
    api.fail_next("sendMessage", retry_after=1)
    started = time.monotonic()
    await drain(Sender(bot, database, FAST))
    assert time.monotonic() - started >= 1.0
    assert api.rate_limited_count == 1
    assert [len(received(api, chat)) for chat in chats] == [1, 1]
    rows = await outbox(database, sent.id)
    assert [row.state for row in rows] == [OutboxState.SENT] * 2
    assert sorted(row.attempts for row in rows) == [1, 1]  # the 429 was not held against it


async def test_403_blocks_the_person_and_their_other_queued_messages(
    database: Database, api: LoopbackBotApi, bot: Bot
) -> None:
    blocker, other = await people(database, api, ("en", "en"))
    first = await broadcast(database)
    api.block(blocker)
    sender = Sender(bot, database, FAST)
    await drain(sender)
    second = await broadcast(database)  # enqueued after: the person is unreachable now
    await drain(sender)
    assert received(api, blocker) == []
    assert len(received(api, other)) == 2
    states = [row.state for row in await outbox(database, first.id)]
    assert states == [OutboxState.BLOCKED, OutboxState.SENT]
    assert second.recipients == 1
    async with database.transaction() as session:
        contact = await session.scalar(select(Contact).where(Contact.pseudonym == "p0"))
        assert contact is not None and contact.unreachable_at is not None


async def test_blocking_stops_queued_messages_of_other_broadcasts(
    database: Database, api: LoopbackBotApi, bot: Bot
) -> None:
    [chat] = await people(database, api, ("en",))
    first = await broadcast(database)
    second = await broadcast(database)
    api.block(chat)
    await drain(Sender(bot, database, FAST))
    assert [row.state for row in await outbox(database, first.id)] == [OutboxState.BLOCKED]
    assert [row.state for row in await outbox(database, second.id)] == [OutboxState.BLOCKED]


async def test_400_fails_without_retrying(
    database: Database, api: LoopbackBotApi, bot: Bot
) -> None:
    async with database.transaction() as session:
        await add_subscriber(session, 7)  # no such chat on the server: "chat not found"
    sent = await broadcast(database)
    await drain(Sender(bot, database, FAST))
    [row] = await outbox(database, sent.id)
    assert (row.state, row.error, row.attempts) == (OutboxState.FAILED, "bad_request", 1)


async def test_a_5xx_is_retried_with_backoff_then_given_up(
    database: Database, api: LoopbackBotApi, bot: Bot
) -> None:
    [chat] = await people(database, api, ("en",))
    sent = await broadcast(database)
    settings = SenderSettings(name="t", rate=200, backoff=timedelta(0), max_attempts=3)
    api.fail_next("sendMessage", error_code=502, description="Bad Gateway")
    await drain(Sender(bot, database, settings))
    [row] = await outbox(database, sent.id)
    assert (row.state, row.attempts, received(api, chat)) == (
        OutboxState.SENT,
        2,
        ["Shelter A is closed."],
    )
    again = await broadcast(database)
    api.fail_next("sendMessage", error_code=502, description="Bad Gateway", times=3)
    await drain(Sender(bot, database, settings))
    [row] = await outbox(database, again.id)
    assert (row.state, row.error, row.attempts) == (OutboxState.FAILED, "gave_up", 3)
    assert len(received(api, chat)) == 1


def test_only_errors_that_cannot_have_sent_are_retried() -> None:
    def caused(error: Exception, cause: Exception) -> Exception:
        error.__cause__ = cause
        return error

    request = httpx.Request("POST", "http://x")
    assert _not_sent(NetworkError("Bad Gateway (502)"))  # Telegram answered
    assert _not_sent(caused(NetworkError("x"), httpx.ConnectError("refused", request=request)))  # type: ignore[arg-type]
    assert _not_sent(caused(TimedOut(), httpx.ConnectTimeout("t", request=request)))  # type: ignore[arg-type]
    assert _not_sent(caused(TimedOut(), httpx.PoolTimeout("t", request=request)))  # type: ignore[arg-type]
    # The request left: it may have been delivered; sending again could make two copies.
    assert not _not_sent(caused(TimedOut(), httpx.ReadTimeout("t", request=request)))  # type: ignore[arg-type]
    assert not _not_sent(caused(NetworkError("x"), httpx.ReadError("r", request=request)))  # type: ignore[arg-type]
    assert not _not_sent(BadRequest("chat not found"))
    assert not _not_sent(RetryAfter(3))
    assert not _not_sent(TimedOut())  # no cause: nothing says the request did not leave


async def test_after_a_crash_unattempted_rows_are_sent_once_and_in_flight_ones_never_again(
    database: Database, api: LoopbackBotApi, bot: Bot
) -> None:
    chats = await people(database, api, ("en", "en", "en"))
    sent = await broadcast(database)
    now = utcnow()
    async with database.transaction() as session:  # a sender that died mid-batch
        dead = await claim(session, worker="dead", limit=3, now=now, lease=timedelta(seconds=-1))
    async with database.transaction() as session:
        assert await mark_attempt(session, dead[0], now)
    sender = Sender(bot, database, FAST)
    await sender.recover()  # what `run` does when it starts, and every half lease
    await drain(sender)
    rows = await outbox(database, sent.id)
    in_flight = FIRST_CHAT + [row.contact_id for row in rows].index(dead[0].contact_id)
    assert received(api, in_flight) == []  # not resent: it may have reached Telegram
    assert sorted(len(received(api, chat)) for chat in chats) == [0, 1, 1]
    states = {row.id: (row.state, row.error) for row in await outbox(database, sent.id)}
    assert states[dead[0].id] == (OutboxState.FAILED, UNCERTAIN)


async def test_emergencies_go_before_everything_else(
    database: Database, api: LoopbackBotApi, bot: Bot
) -> None:
    chats = await people(database, api, ("en", "en", "en"))
    await broadcast(database, texts={"en": "routine"})
    await broadcast(database, texts={"en": "EVACUATE NOW"}, priority=Priority.EMERGENCY)
    sender = Sender(bot, database, SenderSettings(name="t", rate=200, batch=3))
    assert await sender.run_once() == 3
    assert [received(api, chat) for chat in chats] == [["EVACUATE NOW"]] * 3
    await drain(sender)
    assert [received(api, chat) for chat in chats] == [["EVACUATE NOW", "routine"]] * 3


async def test_quiet_hours_hold_normal_broadcasts_but_not_emergencies(
    database: Database, api: LoopbackBotApi, bot: Bot
) -> None:
    [chat] = await people(database, api, ("en",))
    now = utcnow()
    around_now = QuietHours(
        (now - timedelta(hours=1)).time(), (now + timedelta(hours=1)).time(), "UTC"
    )
    normal = await broadcast(database, texts={"en": "routine"})
    await broadcast(database, texts={"en": "flood warning"}, priority=Priority.EMERGENCY)
    quiet = SenderSettings(name="t", rate=200, quiet_hours=around_now, private_gap=0)
    assert await Sender(bot, database, quiet).run_once() == 1
    assert await Sender(bot, database, quiet).run_once() == 0
    assert received(api, chat) == ["flood warning"]
    assert [row.state for row in await outbox(database, normal.id)] == [OutboxState.QUEUED]
    later = Sender(bot, database, quiet, clock=lambda: now + timedelta(hours=2))
    await drain(later)
    assert received(api, chat) == ["flood warning", "routine"]


async def test_cancel_in_progress_stops_the_rest(
    database: Database, api: LoopbackBotApi, bot: Bot
) -> None:
    chats = await people(database, api, ("en",) * 6)
    sent = await broadcast(database)
    sender = Sender(bot, database, SenderSettings(name="t", rate=200, batch=2))
    assert await sender.run_once() == 2
    async with database.transaction() as session:
        stored = await session.get(Broadcast, sent.id)
        assert stored is not None
        assert await cancel(session, stored, utcnow(), None) == 4
    assert await sender.run_once() == 0
    assert sum(len(received(api, chat)) for chat in chats) == 2


async def test_one_person_gets_at_most_one_message_a_second(database: Database) -> None:
    """With Telegram's per-chat limit enforced and no burst allowed, two broadcasts to one
    person arrive without a single 429: the sender spaces them itself."""
    server = LoopbackBotApi(
        token=SANDBOX_TOKEN, enforce_rate_limits=True, rate_limits=RateLimits(private_burst=1)
    )
    await server.start()
    try:
        async with Bot(SANDBOX_TOKEN, base_url=server.base_url) as client:
            [chat] = await people(database, server, ("en",))
            await broadcast(database, texts={"en": "first"})
            await broadcast(database, texts={"en": "second"})
            await drain(Sender(client, database, SenderSettings(name="t", rate=200)))
        assert received(server, chat) == ["first", "second"]
        assert server.rate_limited_count == 0
    finally:
        await server.stop()


async def test_scheduled_broadcast_waits_for_its_time(
    database: Database, api: LoopbackBotApi, bot: Bot
) -> None:
    [chat] = await people(database, api, ("en",))
    now = utcnow()
    await broadcast(database, send_at=now + timedelta(minutes=30))
    assert await Sender(bot, database, FAST).run_once() == 0
    later = Sender(bot, database, FAST, clock=lambda: now + timedelta(minutes=31))
    assert await later.run_once() == 1
    assert len(received(api, chat)) == 1


async def test_a_location_follows_the_text(
    database: Database, api: LoopbackBotApi, bot: Bot
) -> None:
    [chat] = await people(database, api, ("en",))
    await broadcast(database, texts={"en": "Meet the bus here"}, location=(9.03, 38.74))
    await drain(Sender(bot, database, FAST))
    messages = [m for m in api.transcript(chat) if m.from_bot]
    assert [m.content_kind for m in messages] == ["text", "location"]
    assert messages[1].location is not None
    assert messages[1].location["latitude"] == pytest.approx(9.03)


async def test_an_uploaded_document_is_uploaded_once_and_reused(
    database: Database, api: LoopbackBotApi, bot: Bot
) -> None:
    chats = await people(database, api, ("en", "ar", "en"))
    sent = await broadcast(
        database,
        texts={"en": "The new map"},
        document_name="map.pdf",
        document_content=b"%PDF-1.4 map",
    )
    await drain(Sender(bot, database, FAST))
    documents = [m.document for chat in chats for m in api.transcript(chat) if m.from_bot]
    assert all(document is not None for document in documents) and len(documents) == 3
    assert len({document["file_id"] for document in documents if document}) == 1
    async with database.transaction() as session:
        stored = await session.get(Broadcast, sent.id)
        assert stored is not None and stored.document_file_id == documents[0]["file_id"]  # type: ignore[index]


async def test_stopping_gives_back_claims_not_yet_attempted(
    database: Database, api: LoopbackBotApi, bot: Bot
) -> None:
    chats = await people(database, api, ("en",) * 3)
    sent = await broadcast(database)
    sender = Sender(bot, database, SenderSettings(name="t", rate=0.2))  # one per 5 seconds
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop.is_set))
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.wait_for(task, timeout=2)
    assert sum(len(received(api, chat)) for chat in chats) == 1
    states = sorted(row.state for row in await outbox(database, sent.id))
    assert states == [OutboxState.QUEUED, OutboxState.QUEUED, OutboxState.SENT]


async def test_two_senders_share_one_outbox_without_double_sends(
    database: Database, api: LoopbackBotApi, bot: Bot
) -> None:
    chats = await people(database, api, ("en",) * 40)
    sent = await broadcast(database)
    one = Sender(bot, database, SenderSettings(name="one", rate=400, batch=5))
    two = Sender(bot, database, SenderSettings(name="two", rate=400, batch=5))
    await asyncio.gather(drain(one), drain(two))
    assert [len(received(api, chat)) for chat in chats] == [1] * 40
    rows = await outbox(database, sent.id)
    assert {row.state for row in rows} == {OutboxState.SENT}


async def test_the_sender_command_sends_and_stops_on_sigterm(
    tmp_path: Path, api: LoopbackBotApi
) -> None:
    """`crisis-comms sender` as an operator runs it beside the bot: it sends what is queued
    and, on SIGTERM, stops cleanly (status 0)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}"
    database = connect(url)
    await upgrade(database)
    try:
        [chat] = await people(database, api, ("en",))
        await broadcast(database, texts={"en": "from another process"})
    finally:
        await database.dispose()
    env = {
        "PATH": os.environ["PATH"],
        "DATABASE_URL": url,
        "CRISIS_DATA_DIR": str(tmp_path),
        "TELEGRAM_API_BASE_URL": api.url,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "sender", "--name", "extra", env=env
    )
    try:
        await api.wait_for_bot(chat, timeout=30)
        assert received(api, chat) == ["from another process"]
    finally:
        process.send_signal(signal.SIGTERM)
        status = await asyncio.wait_for(process.wait(), timeout=15)
    assert status == 0


def test_the_sender_command_refuses_to_guess_the_sandbox_address(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "sender"],
        env={"PATH": os.environ["PATH"], "CRISIS_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "TELEGRAM_API_BASE_URL" in result.stderr
