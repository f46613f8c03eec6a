"""The inbox queue: kept once per update_id, claimed a chat at a time, in order, and given
back when a worker stops beating. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from inbox import updates as inbox
from inbox import workers
from inbox.updates import InboxUpdate
from storage.database import Database, connect

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def message(update_id: int, chat: int, text: str = "hello") -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "chat": {"id": chat, "type": "private"},
            "from": {"id": chat, "is_bot": False, "first_name": "A"},
            "text": text,
        },
    }


def tap(update_id: int, user: int) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "callback_query": {
            "id": str(update_id),
            "from": {"id": user, "is_bot": False, "first_name": "A"},
            "chat_instance": "x",
            "data": "menu",
            "message": {"message_id": 1, "date": 0, "chat": {"id": user, "type": "private"}},
        },
    }


async def keep(database: Database, *updates: dict[str, Any]) -> int:
    async with database.transaction() as session:
        return await inbox.receive(session, list(updates), NOW)


async def claim(database: Database, worker: str, chats: int = 16) -> list[inbox.Claimed]:
    async with database.transaction() as session:
        await workers.beat(session, worker, NOW)
    async with database.transaction() as session:
        return await inbox.claim(session, worker, NOW, chats=chats)


async def finish(database: Database, worker: str, rows: list[inbox.Claimed]) -> None:
    async with database.transaction() as session:
        for row in rows:
            assert await inbox.finish(session, worker, row.update_id, "ok", NOW)


def test_the_chat_of_an_update_is_read_from_any_kind() -> None:
    assert inbox.chat_key_of(message(1, 42)) == 42
    assert inbox.chat_key_of(tap(2, 77)) == 77
    assert inbox.chat_key_of({"update_id": 3, "poll": {"id": "p"}}) == 0
    member = {"update_id": 4, "my_chat_member": {"chat": {"id": -100}, "from": {"id": 5}}}
    assert inbox.chat_key_of(member) == -100
    inline = {"update_id": 5, "inline_query": {"id": "q", "from": {"id": 9}, "query": ""}}
    assert inbox.chat_key_of(inline) == 9


async def test_a_repeated_delivery_is_kept_once(database: Database) -> None:
    assert await keep(database, message(1, 42)) == 1
    assert await keep(database, message(1, 42, "same id, other body")) == 0
    assert await keep(database, message(1, 42), message(2, 42)) == 1
    async with database.transaction() as session:
        rows = (await session.execute(select(InboxUpdate.update_id))).scalars().all()
    assert sorted(rows) == [1, 2]


async def test_a_chat_is_claimed_whole_in_order_and_by_one_worker(database: Database) -> None:
    await keep(database, message(3, 1), message(1, 1), message(2, 2), message(4, 1))
    first = await claim(database, "a", chats=1)
    assert [row.update_id for row in first] == [1, 3, 4], "the oldest chat, all its updates"
    # Chat 1 is held by a: b gets chat 2, and nothing of chat 1 even when more arrives.
    await keep(database, message(5, 1))
    second = await claim(database, "b")
    assert [(row.chat_key, row.update_id) for row in second] == [(2, 2)]
    assert await claim(database, "b") == []
    await finish(database, "a", first)
    assert [row.update_id for row in await claim(database, "b")] == [5]


async def test_a_dead_workers_claims_go_back_and_attempts_count(database: Database) -> None:
    await keep(database, message(1, 1), message(2, 2))
    held = await claim(database, "a")
    assert {row.attempts for row in held} == {1}
    async with database.transaction() as session:
        await workers.beat(session, "b", NOW + workers.DEAD_AFTER)
        assert await workers.recover(session, NOW + workers.DEAD_AFTER) == 0, "a may be slow"
    later = NOW + workers.DEAD_AFTER + timedelta(seconds=1)
    async with database.transaction() as session:
        await workers.beat(session, "b", later)
        assert await workers.recover(session, later) == 2
        assert await workers.living(session) == ["b"]
    again = await claim(database, "b")
    assert [(row.update_id, row.attempts) for row in again] == [(1, 2), (2, 2)]
    async with database.transaction() as session:
        # The dead worker wakes up: its finish does not count, the update is b's.
        assert not await inbox.finish(session, "a", 1, "ok", NOW)


async def test_a_clean_stop_gives_the_claims_back(database: Database) -> None:
    await keep(database, message(1, 1))
    await claim(database, "a")
    async with database.transaction() as session:
        assert await workers.leave(session, "a") == 1
        assert await workers.living(session) == []
    assert [row.update_id for row in await claim(database, "b")] == [1]


async def test_claims_of_a_worker_without_a_heartbeat_row_go_back(database: Database) -> None:
    await keep(database, message(1, 1))
    async with database.transaction() as session:
        assert [r.update_id for r in await inbox.claim(session, "ghost", NOW)] == [1]
    async with database.transaction() as session:
        assert await workers.recover(session, NOW) == 1


async def test_depth_and_purge(database: Database) -> None:
    await keep(database, message(1, 1), message(2, 2), message(3, 3))
    rows = await claim(database, "a", chats=2)
    async with database.transaction() as session:
        assert await inbox.depth(session) == inbox.Depth(pending=1, claimed=2)
    await finish(database, "a", rows)
    async with database.transaction() as session:
        assert await inbox.depth(session) == inbox.Depth(pending=1, claimed=0)
        assert await inbox.purge_done(session, NOW + timedelta(hours=23)) == 0
        assert await inbox.purge_done(session, NOW + timedelta(days=1, seconds=1)) == 2
    # A purged update_id is a new update again (Telegram never resends after a day).
    assert await keep(database, message(1, 1)) == 1


async def test_workers_racing_never_share_a_chat_and_keep_its_order(
    database: Database, database_url: str
) -> None:
    """Four workers with their own connection pools (as four processes) claim and finish
    concurrently: every update is processed once, each chat's in order, never by two at
    once. On SQLite the one writer serialises them; on PostgreSQL the claim locks do."""
    chats, per_chat = 6, 30
    rounds = [
        [message(n * chats + chat + 1, chat) for chat in range(chats)] for n in range(per_chat)
    ]

    async def produce() -> None:
        # Updates keep arriving while the workers claim: the race the claim locks close.
        for updates in rounds:
            await keep(database, *updates)
            await asyncio.sleep(0)

    processed: list[tuple[int, int]] = []
    holding: dict[int, str] = {}
    overlaps: list[int] = []

    async def work(name: str) -> None:
        own = connect(database_url)
        try:
            idle = 0
            while idle < 20:
                rows = await claim(own, name, chats=3)
                if not rows:
                    idle += 1
                    await asyncio.sleep(0.01)
                    continue
                idle = 0
                for row in rows:
                    if holding.setdefault(row.chat_key, name) != name:
                        overlaps.append(row.chat_key)
                for row in rows:
                    await asyncio.sleep(0)  # let the others try to claim meanwhile
                    processed.append((row.chat_key, row.update_id))
                for chat in {row.chat_key for row in rows}:
                    del holding[chat]
                await finish(own, name, rows)
        finally:
            await own.dispose()

    await asyncio.gather(produce(), *(work(f"w{n}") for n in range(4)))
    assert not overlaps
    assert sorted(update_id for _, update_id in processed) == list(range(1, chats * per_chat + 1))
    for chat in range(chats):
        order = [update_id for key, update_id in processed if key == chat]
        assert order == sorted(order), chat
