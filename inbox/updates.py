"""Inbox rows and the queue operations on them: receive, claim, finish, recover, purge.

Lifecycle of an ``InboxUpdate``:

    pending   (claimed_by NULL, processed_at NULL)  -- received, waiting for a worker
    claimed   (claimed_by = a worker's name)        -- that worker is processing it
    done      (processed_at set, outcome ok|error)  -- processed; kept a day so that a
                                                       repeated delivery is recognised
    (answered_at: set while claimed, when the bot's first answer to it reached Telegram)
    pending   <- claimed, when the claiming worker stopped beating (inbox/workers.py);
                 ``attempts`` counts the claims, so a retried update can be told apart

Transitions: receive → pending; claim: pending → claimed (all pending updates of a chat
at once, and only when no update of that chat is claimed by anyone, so that a chat's
updates are processed in order by one worker at a time); finish: claimed → done;
release: claimed → pending (dead worker); a released update that was answered already is
finished without being processed again (outcome answered); purge: done rows older than a
day are deleted.

On PostgreSQL several workers claim at the same time. Each claim first takes a
transaction-scoped advisory lock per candidate chat (statement one) and only then, in a new
statement that sees every claim committed before it, claims that chat's updates if nobody
holds one: two workers can never hold updates of the same chat at once. SQLite has one
writer at a time, which gives the same guarantee.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Index,
    Integer,
    String,
    Text,
    and_,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, UtcDateTime

KEEP_DONE = timedelta(days=1)  # Telegram stops redelivering long before
CLAIM_LOCKS = 7_515  # advisory-lock namespace of chat claims (any fixed number of ours)


class Outcome:
    OK = "ok"
    ERROR = "error"  # a handler failed; the person got the apology, the update is not retried
    ANSWERED = "answered"  # taken over from a dead worker that had answered it: not redone


class InboxUpdate(Base):
    __tablename__ = "inbox_updates"
    __table_args__ = (
        # The open rows, by chat: what claims read. Done rows drop out of it.
        Index(
            "ix_inbox_updates_open",
            "chat_key",
            "update_id",
            postgresql_where=text("processed_at IS NULL"),
            sqlite_where=text("processed_at IS NULL"),
        ),
        Index("ix_inbox_updates_processed_at", "processed_at"),
        # A chat's recent arrivals, done or not: flood control shared by every worker.
        Index("ix_inbox_updates_chat_received", "chat_key", "received_at"),
    )

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # The chat whose order matters (else the user, else 0): never shown, never logged.
    chat_key: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    outcome: Mapped[str | None] = mapped_column(String(16))
    # When the bot's first answer to it reached Telegram: a retried update answered already
    # is not processed again (the person would get a second answer).
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


@dataclass(frozen=True)
class Claimed:
    update_id: int
    chat_key: int
    payload: dict[str, Any]
    attempts: int
    received_at: datetime
    answered: bool = False


def chat_key_of(data: dict[str, Any]) -> int:
    """The chat an update belongs to, read from its JSON: its order is kept per chat."""
    for field, body in data.items():
        if field == "update_id" or not isinstance(body, dict):
            continue
        for holder in (body, body.get("message")):
            if isinstance(holder, dict):
                chat = holder.get("chat")
                if isinstance(chat, dict) and isinstance(chat.get("id"), int):
                    return int(chat["id"])
        user = body.get("from") or body.get("user")
        if isinstance(user, dict) and isinstance(user.get("id"), int):
            return int(user["id"])
    return 0


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(InboxUpdate)


async def receive(session: AsyncSession, updates: Sequence[dict[str, Any]], now: datetime) -> int:
    """Keep updates (JSON objects with an integer update_id); a repeated delivery of one
    already kept changes nothing. Returns how many were new."""
    if not updates:
        return 0
    rows = [
        {
            "update_id": data["update_id"],
            "chat_key": chat_key_of(data),
            "payload": json.dumps(data, ensure_ascii=False, separators=(",", ":")),
            "received_at": now,
        }
        for data in updates
    ]
    statement = (
        _insert(session)
        .on_conflict_do_nothing(index_elements=["update_id"])
        .returning(InboxUpdate.update_id)
    )
    result = await session.execute(statement, rows)
    return len(result.all())


_OPEN = InboxUpdate.processed_at.is_(None)


async def claim(
    session: AsyncSession, worker: str, now: datetime, chats: int = 16
) -> list[Claimed]:
    """Claim every pending update of up to `chats` chats (oldest first), skipping chats of
    which someone holds an update. Call in a transaction of its own: the claim holds when
    that transaction commits. Returns the claimed updates in order."""
    first = func.min(InboxUpdate.update_id)
    candidates = list(
        (
            await session.execute(
                select(InboxUpdate.chat_key)
                .where(_OPEN, InboxUpdate.claimed_by.is_(None))
                .group_by(InboxUpdate.chat_key)
                .order_by(first)
                .limit(chats * 2)
            )
        ).scalars()
    )
    if not candidates:
        return []
    if session.get_bind().dialect.name == "postgresql":
        candidates = await _lock_chats(session, candidates)
        if not candidates:
            return []
    busy = select(InboxUpdate.chat_key).where(
        _OPEN, InboxUpdate.claimed_by.is_not(None), InboxUpdate.chat_key.in_(candidates)
    )
    free = [key for key in candidates if key not in set((await session.execute(busy)).scalars())]
    free = free[:chats]
    if not free:
        return []
    # The busy test again inside the claiming statement: SQLite's driver opens the write
    # transaction only here, so the reads above may predate another worker's claim.
    held = select(InboxUpdate.chat_key).where(
        _OPEN, InboxUpdate.claimed_by.is_not(None), InboxUpdate.chat_key.in_(free)
    )
    result = await session.execute(
        update(InboxUpdate)
        .where(
            _OPEN,
            InboxUpdate.claimed_by.is_(None),
            InboxUpdate.chat_key.in_(free),
            InboxUpdate.chat_key.not_in(held),
        )
        .values(claimed_by=worker, claimed_at=now, attempts=InboxUpdate.attempts + 1)
        .returning(
            InboxUpdate.update_id,
            InboxUpdate.chat_key,
            InboxUpdate.payload,
            InboxUpdate.attempts,
            InboxUpdate.received_at,
            InboxUpdate.answered_at,
        )
        .execution_options(synchronize_session=False)
    )
    claimed = [
        Claimed(update_id, chat_key, json.loads(payload), attempts, at, answered is not None)
        for update_id, chat_key, payload, attempts, at, answered in result.all()
    ]
    return sorted(claimed, key=lambda row: row.update_id)


async def _lock_chats(session: AsyncSession, chat_keys: list[int]) -> list[int]:
    """The chats whose claim lock this transaction got (held until it ends). A collision of
    two chats on one lock only makes one of them wait for the next claim."""
    rows = await session.execute(
        text(
            "SELECT key FROM unnest(CAST(:keys AS bigint[])) AS key "
            "WHERE pg_try_advisory_xact_lock(:locks, CAST(mod(key, 2147483647) AS integer))"
        ),
        {"keys": chat_keys, "locks": CLAIM_LOCKS},
    )
    return [int(value) for value in rows.scalars()]


async def finish(
    session: AsyncSession, worker: str, update_id: int, outcome: str, now: datetime
) -> bool:
    """Mark a claimed update done. False if the claim was lost meanwhile (this worker was
    taken for dead), which the caller reports: the update may then be processed twice."""
    result = await session.execute(
        update(InboxUpdate)
        .where(InboxUpdate.update_id == update_id, InboxUpdate.claimed_by == worker, _OPEN)
        .values(processed_at=now, outcome=outcome)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def mark_answered(session: AsyncSession, worker: str, update_id: int, now: datetime) -> None:
    """The first answer to a claimed update reached Telegram."""
    await session.execute(
        update(InboxUpdate)
        .where(InboxUpdate.update_id == update_id, InboxUpdate.claimed_by == worker, _OPEN)
        .values(answered_at=now)
        .execution_options(synchronize_session=False)
    )


async def release(session: AsyncSession, workers: Sequence[str]) -> int:
    """Give the open updates claimed by these (stopped) workers back to the queue."""
    if not workers:
        return 0
    result = await session.execute(
        update(InboxUpdate)
        .where(_OPEN, InboxUpdate.claimed_by.in_(list(workers)))
        .values(claimed_by=None, claimed_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def release_orphans(session: AsyncSession, beats: Any) -> int:
    """Claims held by a worker that has no heartbeat row (`beats`: that table). One
    statement, so that a worker registering and claiming meanwhile is seen as living."""
    result = await session.execute(
        update(InboxUpdate)
        .where(
            _OPEN,
            InboxUpdate.claimed_by.is_not(None),
            InboxUpdate.claimed_by.not_in(select(beats.c.name)),
        )
        .values(claimed_by=None, claimed_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def arrivals(
    session: AsyncSession, chat_keys: Collection[int], since: datetime
) -> dict[int, list[tuple[int, datetime]]]:
    """(update_id, received_at) of every update of these chats received after `since`,
    processed or not, in update order: how fast each chat is writing, whichever worker
    processes it."""
    rows = await session.execute(
        select(InboxUpdate.chat_key, InboxUpdate.update_id, InboxUpdate.received_at)
        .where(InboxUpdate.chat_key.in_(list(chat_keys)), InboxUpdate.received_at > since)
        .order_by(InboxUpdate.update_id)
    )
    found: dict[int, list[tuple[int, datetime]]] = {}
    for chat_key, update_id, received_at in rows:
        found.setdefault(chat_key, []).append((update_id, received_at))
    return found


@dataclass(frozen=True)
class Depth:
    pending: int
    claimed: int


async def depth(session: AsyncSession) -> Depth:
    """Open updates: waiting for a worker, and being processed."""
    rows = await session.execute(
        select(InboxUpdate.claimed_by.is_(None), func.count())
        .where(_OPEN)
        .group_by(InboxUpdate.claimed_by.is_(None))
    )
    counts = {bool(waiting): int(n) for waiting, n in rows}
    return Depth(pending=counts.get(True, 0), claimed=counts.get(False, 0))


async def purge_done(session: AsyncSession, now: datetime, keep: timedelta = KEEP_DONE) -> int:
    """Delete processed updates older than `keep`: by then Telegram no longer redelivers."""
    result = await session.execute(
        delete(InboxUpdate).where(
            and_(InboxUpdate.processed_at.is_not(None), InboxUpdate.processed_at < now - keep)
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
