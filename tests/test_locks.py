"""Cross-process sections (storage/locks.py) and the jobs that run in them.

Two `Database` objects on one URL stand for two processes: each has its own engine, so its
own pool and PostgreSQL sessions. On SQLite (one process by design) a section is always
held; on PostgreSQL only one of them is in a section at a time, and a process that dies
gives it up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import select, text
from telegram import Bot

from bot.app import inbox_purge_job
from bot.config import SANDBOX_TOKEN, Settings
from bot.flows.responders import (
    REPLIES_SECTION,
    delivery_lock,
    send_due_alerts,
    send_pending_replies,
)
from bot.sandbox.botapi import LoopbackBotApi
from bot.services import Services, install
from feedback.items import FeedbackItem
from feedback.protection import ProtectionAlert
from feedback.replies import Reply, record_reply
from inbox.updates import InboxUpdate, Outcome
from messages.contacts import Pseudonymizer
from staff.models import Role
from storage.base import utcnow
from storage.database import Database, alembic_config, connect, current_revision, upgrade
from storage.locks import NAMESPACE, exclusive, lock_key
from tests.phone import Phone
from tests.sandbox_fixtures import TEST_KEY, StartBot
from tests.test_e2e_onboarding import onboard
from tests.test_e2e_responders import FOCAL_GROUP, SENSITIVE_SETTINGS, only_item, staff_phone
from tests.test_e2e_shelter_updates import link

POSTGRES_ONLY = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
ANSWER = "A water truck comes at 3 pm."
WAIT = 10.0  # seconds a test waits for PostgreSQL to end a closed session


@asynccontextmanager
async def other_process(database_url: str) -> AsyncIterator[Database]:
    """The database as another process sees it: an engine and pool of its own."""
    database = connect(database_url)
    try:
        yield database
    finally:
        await database.dispose()


def test_keys_are_stable_signed_32_bit_numbers() -> None:
    # Fixed values: a key that changed between versions would let an old and a new process
    # run the same job side by side during a rolling upgrade.
    assert lock_key("replies") == -1610586326
    assert lock_key("migrations") == 1856466978
    names = ["replies", "alerts", "responders_notices", "retention", "purge_drafts"]
    keys = [lock_key(name) for name in [*names, "inbox_purge", "migrations"]]
    assert len(set(keys)) == len(keys)
    assert all(-(2**31) <= key < 2**31 for key in keys)


@SQLITE_ONLY
async def test_on_sqlite_a_section_is_always_held(database: Database, database_url: str) -> None:
    async with (
        other_process(database_url) as other,
        exclusive(database, "replies") as first,
        exclusive(other, "replies") as second,
    ):
        assert first and second, "one process by design: nothing to wait for"


# --- PostgreSQL: two processes ----------------------------------------------------------


async def holder_pid(database: Database, name: str) -> int | None:
    """The PostgreSQL backend holding the section `name`, if any."""
    async with database.engine.connect() as connection:
        pid = await connection.scalar(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = :namespace AND objid = :key AND objsubid = 2"
            ),
            {"namespace": NAMESPACE, "key": lock_key(name) & 0xFFFFFFFF},
        )
    return None if pid is None else int(pid)


@POSTGRES_ONLY
async def test_a_second_process_gets_the_section_only_after_the_first(
    database: Database, database_url: str
) -> None:
    async with other_process(database_url) as other:
        async with exclusive(database, "t-turns") as first:
            assert first
            async with exclusive(other, "t-turns") as second:
                assert not second, "held by the first process"
            async with exclusive(database, "t-other-name") as unrelated:
                assert unrelated, "another name is another section"
        assert await holder_pid(other, "t-turns") is None, "released at the end of the block"
        async with exclusive(other, "t-turns") as second:
            assert second


@POSTGRES_ONLY
async def test_a_waiting_process_enters_when_the_holder_leaves(
    database: Database, database_url: str
) -> None:
    async with other_process(database_url) as other:
        entered, leave = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            async with exclusive(database, "t-wait") as held:
                assert held
                entered.set()
                await leave.wait()

        async def wait_for_it() -> bool:
            async with exclusive(other, "t-wait", wait=30) as held:
                return held

        holder = asyncio.create_task(hold())
        await asyncio.wait_for(entered.wait(), WAIT)
        waiter = asyncio.create_task(wait_for_it())
        await asyncio.sleep(0.3)
        assert not waiter.done(), "still held by the first process"
        leave.set()
        await holder
        assert await waiter


@POSTGRES_ONLY
async def test_a_lock_left_on_a_closed_connection_is_released(
    database: Database, database_url: str
) -> None:
    """A process that never unlocks (it died): closing its connections frees the section."""
    async with other_process(database_url) as dying:
        connection = await dying.engine.connect()
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        took = await connection.scalar(
            text("SELECT pg_try_advisory_lock(:namespace, :key)"),
            {"namespace": NAMESPACE, "key": lock_key("t-dies")},
        )
        assert took
        async with exclusive(database, "t-dies") as held:
            assert not held
        await connection.close()
        await dying.dispose()
    async with exclusive(database, "t-dies", wait=WAIT) as held:
        assert held, "the closed session's lock went with it"


@POSTGRES_ONLY
async def test_a_killed_session_frees_the_section_and_its_holder_carries_on(
    database: Database, database_url: str
) -> None:
    async with other_process(database_url) as other:
        async with exclusive(database, "t-killed") as held:
            assert held
            pid = await holder_pid(other, "t-killed")
            assert pid is not None
            async with other.engine.connect() as admin:
                await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            async with exclusive(other, "t-killed", wait=WAIT) as taken:
                assert taken, "the killed session's lock is gone"
        # Leaving after its session was killed raises nothing, and the pool is still usable.
        async with exclusive(database, "t-killed") as again:
            assert again


@POSTGRES_ONLY
async def test_processes_starting_at_once_migrate_in_turn(database_url: str) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    async with other_process(database_url) as first, other_process(database_url) as second:
        # Bounded: without the lock the runs interleave and may never finish.
        await asyncio.wait_for(asyncio.gather(upgrade(first), upgrade(second), upgrade(first)), 120)
        assert await current_revision(second) == head


# --- the jobs on one database -----------------------------------------------------------


@dataclass
class Process:
    """What one bot process brings to a job: its services (and engine) and its own lock."""

    services: Services
    lock: asyncio.Lock

    async def send_replies(self, bot: Bot) -> int | None:
        return await send_pending_replies(bot, self.services, self.lock)


def process(
    database: Database, settings: Settings, clock: Callable[[], datetime] = utcnow
) -> Process:
    services = Services(settings, database, Pseudonymizer(TEST_KEY), clock=clock)
    return Process(services, delivery_lock({}))


@asynccontextmanager
async def loopback_bot(api: LoopbackBotApi, settings: Settings) -> AsyncIterator[Bot]:
    """A Bot API client on the loopback server, as every process has its own."""
    async with Bot(SANDBOX_TOKEN, base_url=replace(settings, api_root=api.url).api_base_url) as bot:
        yield bot


async def a_pending_reply(api: LoopbackBotApi, start_bot: StartBot) -> Phone:
    """A person whose message has a reply waiting (recorded on the dashboard, say) while no
    bot runs; their phone."""
    person = Phone.of(api, first_name="Huda", language_code="en")
    async with start_bot() as bot:
        await onboard(person)
        await person.send("No water in the camp for two days")
        item = await only_item(bot)
    async with bot.services.db.transaction() as session:
        fresh = await session.get(FeedbackItem, item.id)
        assert fresh is not None
        await record_reply(session, fresh, None, ANSWER, utcnow())
    return person


def replies_received(api: LoopbackBotApi, person: Phone) -> int:
    return sum(1 for m in api.transcript(person.user_id) if m.from_bot and ANSWER in (m.text or ""))


async def test_two_processes_one_after_the_other_deliver_a_reply_once(
    bot_api: LoopbackBotApi,
    start_bot: StartBot,
    database: Database,
    database_url: str,
    settings: Settings,
) -> None:
    person = await a_pending_reply(bot_api, start_bot)
    async with other_process(database_url) as other, loopback_bot(bot_api, settings) as bot:
        first = await process(database, settings).send_replies(bot)
        second = await process(other, settings).send_replies(bot)
    assert (first, second) == (1, 0), "the delivery is recorded: the next process finds none"
    assert replies_received(bot_api, person) == 1


@POSTGRES_ONLY
async def test_two_processes_at_once_deliver_a_reply_once(
    bot_api: LoopbackBotApi,
    start_bot: StartBot,
    database: Database,
    database_url: str,
    settings: Settings,
) -> None:
    person = await a_pending_reply(bot_api, start_bot)
    async with other_process(database_url) as other, loopback_bot(bot_api, settings) as bot:
        results = await asyncio.gather(
            process(database, settings).send_replies(bot),
            process(other, settings).send_replies(bot),
        )
    # One delivered it; the other found the section taken (None) or the reply delivered (0).
    assert results.count(1) == 1 and set(results) <= {None, 0, 1}
    assert replies_received(bot_api, person) == 1
    async with database.transaction() as session:
        [reply] = list(await session.scalars(select(Reply)))
        assert reply.delivered_at is not None


@POSTGRES_ONLY
async def test_reply_says_queued_when_another_process_is_sending(
    bot_api: LoopbackBotApi, start_bot: StartBot, database_url: str
) -> None:
    person = Phone.of(bot_api, first_name="Huda", language_code="en")
    responder = staff_phone(bot_api, "Rana")
    async with start_bot() as bot, other_process(database_url) as other:
        await onboard(person)
        await person.send("No water in the camp for two days")
        item = await only_item(bot)
        await responder.send("/start")
        await link(responder, bot, Role.RESPONDER)
        async with exclusive(other, REPLIES_SECTION) as held:
            assert held
            answer = await responder.send(f"/reply {item.reference} {ANSWER}")
            assert answer.text == (
                f"Queued (goes out within seconds): reply to "
                f"{item.reference[:3]}-{item.reference[3:]}."
            )
            assert replies_received(bot_api, person) == 0, "the other process has it in hand"
        delivered = await person.next_message()  # the replies job, once the section is free
        assert ANSWER in (delivered.text or "")
        assert replies_received(bot_api, person) == 1


@POSTGRES_ONLY
@SENSITIVE_SETTINGS
async def test_two_processes_at_once_send_a_reminder_once(
    bot_api: LoopbackBotApi,
    start_bot: StartBot,
    database: Database,
    database_url: str,
    settings: Settings,
) -> None:
    focal = staff_phone(bot_api, "Sara")
    await bot_api.send_group_text(focal.user_id, FOCAL_GROUP, "protection team group")
    person = Phone.of(bot_api, first_name="Amina", language_code="en")
    async with start_bot():
        await onboard(person)
        await person.send("The man at the distribution said he gives food only if I sleep with him")
        await bot_api.wait_for_bot(FOCAL_GROUP, count=1, timeout=WAIT)

    def later() -> datetime:
        return utcnow() + timedelta(minutes=11)

    async with other_process(database_url) as other, loopback_bot(bot_api, settings) as bot:
        sent = await asyncio.gather(
            send_due_alerts(bot, process(database, settings, later).services, wait=0),
            send_due_alerts(bot, process(other, settings, later).services, wait=0),
        )
    assert sorted(sent) == [0, 1]
    reminders = [m for m in bot_api.transcript(FOCAL_GROUP) if "reminder" in (m.text or "")]
    assert len(reminders) == 1
    async with database.transaction() as session:
        [alert] = list(await session.scalars(select(ProtectionAlert)))
        assert alert.sends == 2


# --- the hourly inbox purge ---------------------------------------------------------------

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def job_context(database: Database, settings: Settings) -> Any:
    """What the job queue hands a job: the services in bot_data."""
    bot_data: dict[Any, Any] = {}
    install(bot_data, Services(settings, database, Pseudonymizer(TEST_KEY), clock=lambda: NOW))
    return cast(Any, SimpleNamespace(bot_data=bot_data))


async def inbox_with_old_and_new(database: Database) -> None:
    def row(update_id: int, processed_hours_ago: float | None) -> InboxUpdate:
        processed = (
            None if processed_hours_ago is None else NOW - timedelta(hours=processed_hours_ago)
        )
        return InboxUpdate(
            update_id=update_id,
            chat_key=update_id,
            payload="{}",
            received_at=NOW - timedelta(days=3),
            processed_at=processed,
            outcome=None if processed is None else Outcome.OK,
        )

    async with database.transaction() as session:
        session.add_all([row(1, 25), row(2, 23), row(3, None)])


async def inbox_ids(database: Database) -> list[int]:
    async with database.transaction() as session:
        return sorted(await session.scalars(select(InboxUpdate.update_id)))


async def test_the_inbox_job_deletes_processed_updates_older_than_a_day(
    database: Database, settings: Settings
) -> None:
    await inbox_with_old_and_new(database)
    await inbox_purge_job(job_context(database, settings))
    assert await inbox_ids(database) == [2, 3], "processed a day ago goes; recent and open stay"


@POSTGRES_ONLY
async def test_the_inbox_job_skips_while_another_process_runs_it(
    database: Database, database_url: str, settings: Settings
) -> None:
    await inbox_with_old_and_new(database)
    async with other_process(database_url) as other:
        async with exclusive(other, "inbox_purge") as held:
            assert held
            await inbox_purge_job(job_context(database, settings))
            assert await inbox_ids(database) == [1, 2, 3], "left to the other process"
        await inbox_purge_job(job_context(database, settings))
    assert await inbox_ids(database) == [2, 3]
