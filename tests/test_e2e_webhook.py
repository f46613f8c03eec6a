"""Webhook mode end to end: Telegram posts each update, the bot keeps it in the inbox before
answering 200, and workers (here, bot processes on one database) process it from there."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from telegram import Update
from telegram.ext import ApplicationHandlerStop, ContextTypes, MessageHandler, filters

from bot.config import Settings
from bot.sandbox.botapi import LoopbackBotApi
from bot.webhook import SECRET_HEADER
from feedback.items import FeedbackItem
from inbox import updates as inbox
from inbox import workers
from inbox.updates import InboxUpdate
from messages.contacts import Contact
from storage.base import utcnow
from storage.database import Database
from tests.phone import Phone
from tests.test_e2e_consulates import missions  # noqa: F401 - a fixture
from tests.test_e2e_onboarding import onboard
from tests.webhook_delivery import SECRET, delivering, webhook_bot

CONSULATES = "🏛 Consulate contacts"
REGISTER = "🚌 Register for evacuation or transport"


def start_update(user_id: int, update_id: int = 1) -> dict[str, object]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "Amina"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Amina", "language_code": "en"},
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def inbox_rows(database: Database) -> list[InboxUpdate]:
    async with database.transaction() as session:
        return list((await session.execute(select(InboxUpdate))).scalars())


async def settled(database: Database, count: int, timeout: float = 20.0) -> None:  # noqa: ASYNC109
    """Wait until `count` updates are processed and none is open."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await inbox_rows(database)
        done = [row for row in rows if row.processed_at is not None]
        if len(done) >= count and len(done) == len(rows):
            return
        assert time.monotonic() < deadline, f"{len(done)} of {count} processed"
        await asyncio.sleep(0.05)


async def test_the_webhook_checks_the_secret_and_keeps_before_answering(
    bot_api: LoopbackBotApi, database: Database, settings: Settings
) -> None:
    user = bot_api.add_user(first_name="Amina", language_code="en")
    # Telegram lets a bot write only to people who wrote first: open the chat (that message
    # waits in the loopback server's queue, which nobody reads here).
    await bot_api.send_text(user.id, "/start")
    async with webhook_bot(bot_api, database, settings) as bot, aiohttp.ClientSession() as http:
        async with http.post(bot.url, json=start_update(user.id)) as response:
            assert response.status == 403
        wrong = {SECRET_HEADER: "wrong"}
        async with http.post(bot.url, json=start_update(user.id), headers=wrong) as response:
            assert response.status == 403
        headers = {SECRET_HEADER: SECRET}
        async with http.post(bot.url, data=b"{not json", headers=headers) as response:
            assert response.status == 400
        big = b"x" * (2 * 1024 * 1024)
        async with http.post(bot.url, data=big, headers=headers) as response:
            assert response.status == 413
        assert await inbox_rows(database) == [], "nothing refused was kept"
        async with http.post(bot.url, json=start_update(user.id), headers=headers) as response:
            assert response.status == 200
        [event] = await bot_api.wait_for_bot(user.id, count=1, timeout=10)
        assert event.message is not None and "Humanitarian responders" in (event.message.text or "")
        await settled(database, 1)
        [row] = await inbox_rows(database)
        assert (row.update_id, row.outcome, row.attempts) == (1, "ok", 1)


async def test_a_crash_after_the_200_loses_nothing(
    bot_api: LoopbackBotApi, database: Database, settings: Settings
) -> None:
    """The updates were acknowledged by a process that then died before processing them:
    the next process to start answers every one, in order."""
    phone = Phone.of(bot_api, first_name="Amina", language_code="en")
    async with (
        webhook_bot(bot_api, database, settings, work=False) as crashed,
        delivering(bot_api, crashed.url) as delivery,
    ):
        await bot_api.send_text(phone.user_id, "/start")
        await bot_api.send_text(phone.user_id, "/help")
        deadline = time.monotonic() + 10
        while len(await inbox_rows(database)) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    assert delivery.refused == []
    assert bot_api.pending_bot_events(phone.user_id) == [], "acknowledged, not processed"
    assert bot_api.pending_updates() == [], "Telegram holds nothing more: it got its 200s"
    async with webhook_bot(bot_api, database, settings, name="worker-2"):
        notice = await phone.next_message()
        assert "Humanitarian responders" in (notice.text or "")
        await phone.next_message()  # /help before consent: the notice's answer again
        await settled(database, 2)


async def test_a_repeated_delivery_is_processed_once(
    bot_api: LoopbackBotApi, database: Database, settings: Settings
) -> None:
    user = bot_api.add_user(first_name="Amina", language_code="en")
    await bot_api.send_text(user.id, "/start")
    async with webhook_bot(bot_api, database, settings) as bot, aiohttp.ClientSession() as http:
        for _ in range(3):  # Telegram resends when our 200 was lost on the way
            async with http.post(
                bot.url, json=start_update(user.id, 7), headers={SECRET_HEADER: SECRET}
            ) as response:
                assert response.status == 200
        await settled(database, 1)
        received = bot.services.metrics.received
        assert received.labels(outcome="new")._value.get() == 1
        assert received.labels(outcome="repeat")._value.get() == 2
    events = bot_api.pending_bot_events(user.id)
    assert [event.kind for event in events] == ["send"], "one answer"


@pytest.mark.usefixtures("missions")
async def test_conversations_go_on_in_another_worker(
    bot_api: LoopbackBotApi, database: Database, settings: Settings
) -> None:
    """A question asked by one process is answered through another: the conversation's
    state lives in the database, not in the process that asked."""
    asker, register = (Phone.of(bot_api, first_name=n, language_code="en") for n in "AB")
    async with (
        webhook_bot(bot_api, database, settings, name="first") as first,
        delivering(bot_api, first.url),
    ):
        await onboard(asker)
        await onboard(register)
        asked = await asker.send(CONSULATES)
        assert "Type the country" in (asked.text or "")
        scope = await register.send(REGISTER)
        people = await register.tap(scope, "Just me")
    async with (
        webhook_bot(bot_api, database, settings, name="second") as second,
        delivering(bot_api, second.url),
    ):
        choices = await asker.send("Siria")  # without the state: a feedback receipt
        assert choices.text == "Did you mean:"
        nationality = await register.tap(people, "18 to 59")
        assert "nationality" in (nationality.text or "").lower()
    async with database.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(FeedbackItem)) == 0


async def test_two_workers_keep_each_persons_order(
    bot_api: LoopbackBotApi, database: Database, settings: Settings
) -> None:
    """Two processes share the inbox; five people each send four messages at once: every
    message becomes an item, each person's in the order they sent them."""
    phones = [Phone.of(bot_api, first_name=f"P{n}", language_code="en") for n in range(5)]
    async with (
        webhook_bot(bot_api, database, settings, name="one") as one,
        webhook_bot(bot_api, database, settings, name="two") as two,
        delivering(bot_api, one.url, two.url),
    ):
        for phone in phones:
            await onboard(phone)
        await settled(database, onboarded := len(await inbox_rows(database)))
        for round_ in range(4):
            for phone in phones:
                await bot_api.send_text(phone.user_id, f"water point {round_} is broken")
        await settled(database, onboarded + 20)
    async with database.transaction() as session:
        rows = (
            await session.execute(
                select(
                    FeedbackItem.contact_id, FeedbackItem.source_message_id, FeedbackItem.text
                ).order_by(FeedbackItem.id)
            )
        ).all()
        people = await session.scalar(select(func.count()).select_from(Contact))
    assert people == 5 and len(rows) == 20
    by_person: dict[int, list[Any]] = {}
    for contact_id, message_id, text in rows:
        by_person.setdefault(contact_id, []).append((message_id, text))
    for items in by_person.values():
        assert [text for _, text in items] == [f"water point {n} is broken" for n in range(4)]
        assert [m for m, _ in items] == sorted(m for m, _ in items)
    workers = {row.claimed_by for row in await inbox_rows(database)}
    assert workers == {"one", "two"}, "both worked"


@pytest.mark.settings(REGISTRATION_TIMEOUT_MINUTES="0.02")
async def test_a_registration_timer_of_another_worker_does_not_pause_it(
    bot_api: LoopbackBotApi, database: Database, settings: Settings
) -> None:
    """Answers alternate between two processes: each sets a timer, and only the timer of the
    last answer pauses the registration (once), not the earlier ones of the other process."""
    phone = Phone.of(bot_api, first_name="Amina", language_code="en")
    async with (
        webhook_bot(bot_api, database, settings, name="one") as one,
        webhook_bot(bot_api, database, settings, name="two") as two,
        delivering(bot_api, one.url, two.url),
    ):
        await onboard(phone)
        scope = await phone.send(REGISTER)
        age = await phone.tap(scope, "Just me")
        await asyncio.sleep(0.4)
        nationality = await phone.tap(age, "18 to 59")
        assert "nationality" in (nationality.text or "").lower()
        paused = await phone.next_message()
        assert "Your registration is paused" in (paused.text or "")
        await asyncio.sleep(1.5)  # every timer has fired by now
        later = [e.message.text for e in bot_api.pending_bot_events(phone.user_id) if e.message]
        assert later == [], "paused once"


async def test_a_burst_is_kept_whole_with_repeats_counted_once(
    bot_api: LoopbackBotApi, database: Database, settings: Settings
) -> None:
    """Forty posts at once (ten of them deliveries again of the same updates), while no
    worker runs: thirty updates kept, each once, and every post answered 200."""
    users = [bot_api.add_user(first_name=f"P{n}", language_code="en") for n in range(30)]
    async with (
        webhook_bot(bot_api, database, settings, work=False) as bot,
        aiohttp.ClientSession() as http,
    ):

        async def post(update: dict[str, object]) -> int:
            headers = {SECRET_HEADER: SECRET}
            async with http.post(bot.url, json=update, headers=headers) as response:
                return response.status

        updates = [start_update(user.id, 100 + n) for n, user in enumerate(users)]
        statuses = await asyncio.gather(*(post(u) for u in updates + updates[:10]))
        assert set(statuses) == {200}
        received = bot.services.metrics.received
        assert received.labels(outcome="new")._value.get() == 30
        assert received.labels(outcome="repeat")._value.get() == 10
    rows = await inbox_rows(database)
    assert sorted(row.update_id for row in rows) == list(range(100, 130))
    assert {row.chat_key for row in rows} == {user.id for user in users}


async def test_a_worker_restarted_under_its_name_takes_back_what_it_held(
    bot_api: LoopbackBotApi, database: Database, settings: Settings
) -> None:
    """It was killed while holding an update and comes back at once under the same name
    (a systemd restart): the update is processed now, not held by a ghost."""
    user = bot_api.add_user(first_name="Amina", language_code="en")
    await bot_api.send_text(user.id, "/start")
    async with database.transaction() as session:
        await inbox.receive(session, [start_update(user.id, 5)], utcnow())
        await workers.beat(session, "worker-1", utcnow())
    async with database.transaction() as session:
        assert [row.update_id for row in await inbox.claim(session, "worker-1", utcnow())] == [5]
    async with webhook_bot(bot_api, database, settings, name="worker-1"):
        [event] = await bot_api.wait_for_bot(user.id, count=1, timeout=10)
        assert event.message is not None and "Humanitarian responders" in (event.message.text or "")
        await settled(database, 1)
    [row] = await inbox_rows(database)
    assert row.attempts == 2


@pytest.mark.settings(FLOOD_UPDATES="10")
async def test_flood_control_counts_every_workers_updates(
    bot_api: LoopbackBotApi, database: Database, settings: Settings
) -> None:
    """Sixteen commands alternate between two workers, eight each: under the limit of ten
    for either alone, over it for the person, so the notice comes."""
    phone = Phone.of(bot_api, first_name="Amina", language_code="en")
    async with (
        webhook_bot(bot_api, database, settings, name="one") as one,
        webhook_bot(bot_api, database, settings, name="two") as two,
        delivering(bot_api, one.url, two.url),
    ):
        for sent in range(1, 17):
            await bot_api.send_text(phone.user_id, "/help")
            await settled(database, sent)  # one at a time: the receiving worker takes it
        events = bot_api.pending_bot_events(phone.user_id)
    texts = [event.message.text or "" for event in events if event.message]
    assert any("You are sending very quickly" in text for text in texts)
    by_worker = Counter(row.claimed_by for row in await inbox_rows(database))
    assert set(by_worker) == {"one", "two"} and max(by_worker.values()) <= 10, by_worker


async def test_an_update_answered_before_its_worker_died_is_not_answered_again(
    bot_api: LoopbackBotApi, database: Database, settings: Settings
) -> None:
    """A worker answered a person, then was killed before marking the update done: the worker
    that takes it over finishes it without a second answer. One it had not answered yet is
    processed again, so nothing is lost."""
    answered, unanswered = (bot_api.add_user(first_name=n, language_code="en") for n in "AB")
    for user in (answered, unanswered):
        await bot_api.send_text(user.id, "/start")
    long_ago = utcnow() - timedelta(minutes=5)
    async with database.transaction() as session:
        await inbox.receive(
            session, [start_update(answered.id, 1), start_update(unanswered.id, 2)], long_ago
        )
        await workers.beat(session, "killed", long_ago)
    async with database.transaction() as session:
        assert len(await inbox.claim(session, "killed", long_ago)) == 2
        await inbox.mark_answered(session, "killed", 1, long_ago)
    async with webhook_bot(bot_api, database, settings, name="survivor"):
        [event] = await bot_api.wait_for_bot(unanswered.id, count=1, timeout=10)
        assert event.message is not None and "Humanitarian" in (event.message.text or "")
        await settled(database, 2)
    assert bot_api.pending_bot_events(answered.id) == [], "no second answer"
    rows = {row.update_id: row for row in await inbox_rows(database)}
    assert (rows[1].outcome, rows[1].attempts) == ("answered", 2)
    assert (rows[2].outcome, rows[2].attempts) == ("ok", 2)
    assert rows[2].answered_at is not None, "its answer is recorded as it goes out"


async def test_an_unreachable_database_is_waited_out_but_an_answer_never_repeated(
    bot_api: LoopbackBotApi, database: Database, settings: Settings
) -> None:
    """A handler meets a database that does not answer (once): before any answer went out
    the update is tried again and succeeds; after an answer it is not, so nobody hears the
    same thing twice."""
    calls: Counter[str] = Counter()

    async def flaky(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None and message.text is not None
        calls[message.text] += 1
        if message.text == "answer then fail":
            await message.reply_text("first answer")
        if calls[message.text] == 1:
            raise OperationalError("SELECT 1", None, ConnectionError("server restarting"))
        await message.reply_text("done at last")
        raise ApplicationHandlerStop

    user = bot_api.add_user(first_name="Amina", language_code="en")
    async with (
        webhook_bot(bot_api, database, settings) as bot,
        delivering(bot_api, bot.url),
    ):
        bot.application.add_handler(
            MessageHandler(filters.Regex("^(fail then answer|answer then fail)$"), flaky),
            group=-20,
        )
        await bot_api.send_text(user.id, "fail then answer")
        await settled(database, 1)
        await bot_api.send_text(user.id, "answer then fail")
        await settled(database, 2)
        assert bot.worker is not None and bot.worker.stats.retried == 1
    texts = [e.message.text for e in bot_api.pending_bot_events(user.id) if e.message]
    assert texts == ["done at last", "first answer"]
    assert calls == {"fail then answer": 2, "answer then fail": 1}
    outcomes = [row.outcome for row in sorted(await inbox_rows(database), key=_by_id)]
    assert outcomes == ["ok", "error"]


def _by_id(row: InboxUpdate) -> int:
    return row.update_id
