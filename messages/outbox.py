"""The durable outbox: one row per broadcast recipient, claimed and sent by `bot/sender.py`.

A row's lifecycle (`OutboxState`):

- ``queued``: waiting until ``not_before`` (the broadcast's time, or a retry's backoff).
- ``queued → sending``: a sender claimed it (``claimed_by``, a fresh ``claim_token``,
  ``lease_until``). Nothing has been sent yet.
- ``sending`` with ``attempted_at`` set: the sender committed "I am about to call Telegram"
  (`mark_attempt`, a compare-and-set on the claim token) and then made the request.
- ``sending → sent``: Telegram answered with the message (``sent_at``, message id).
- ``sending → queued``: Telegram answered that it did not send (429 with ``retry_after``, a
  5xx, or no connection was made): ``not_before`` moves on and the claim is dropped.
- ``sending → failed``: a permanent refusal (400), too many attempts, or an *uncertain*
  outcome (``error = "uncertain"``: the request may have reached Telegram, see below).
- ``sending → blocked``: 403, the person blocked the bot; their contact is marked unreachable
  and their other queued rows become ``blocked`` too.
- ``queued`` (or ``sending`` not yet attempted) ``→ cancelled``: the officer cancelled.

What is guaranteed when a sender dies (SIGKILL, power cut):

- A claimed row that was never attempted goes back to ``queued`` (`recover`): it is sent
  later, once. A stale claimant cannot send it afterwards, because `mark_attempt` checks the
  claim token, and recovery clears it.
- A row attempted but not recorded (the process died between committing ``attempted_at`` and
  committing Telegram's answer) is **never sent again**: recovery marks it ``failed`` with
  ``error = "uncertain"`` and the broadcast report counts it. The person received one copy or
  none, never two. That window is one HTTP round trip plus one commit per in-flight message.
  Against Telegram that is about 0.1–0.3 s times the number of requests in flight (at most
  the send rate times that). Against the loopback server it is a few milliseconds.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    and_,
    case,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from messages.contacts import Contact, ContactAddress
from storage.base import Base, UtcDateTime

UNCERTAIN = "uncertain"

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid; PostgreSQL gets a bigint.
_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")


class OutboxState(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"


PENDING_STATES = (OutboxState.QUEUED.value, OutboxState.SENDING.value)


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "contact_id"),
        # The claim: due rows by priority then age.
        Index("ix_outbox_claim", "state", "priority", "id"),
        Index("ix_outbox_contact_state", "contact_id", "state"),
    )

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(16))  # the person's, at enqueue time
    topic: Mapped[str] = mapped_column(String(32))  # for the one-tap stop button
    priority: Mapped[int] = mapped_column(SmallInteger, default=0)  # 1: emergency
    state: Mapped[str] = mapped_column(String(16), default=OutboxState.QUEUED.value)
    not_before: Mapped[datetime] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claim_token: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    attempted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(32))  # a kind, never Telegram's text


class SendPace(Base):
    """The next free send slot (epoch seconds), shared by every sender process, so that all
    of them together stay under Telegram's overall limit."""

    __tablename__ = "send_pace"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_at: Mapped[float] = mapped_column(Float, default=0.0)


@dataclass(frozen=True)
class Claimed:
    id: int
    broadcast_id: int
    contact_id: int
    chat_id: int | None
    language: str
    topic: str
    attempts: int
    token: str


async def claim(
    session: AsyncSession,
    *,
    worker: str,
    limit: int,
    now: datetime,
    lease: timedelta,
    emergency_only: bool = False,
) -> list[Claimed]:
    """Claim up to `limit` due rows, emergencies first. On PostgreSQL concurrent senders
    skip each other's locked rows; whatever the backend, a row is claimed by one token."""
    due = (
        select(OutboxMessage.id)
        .where(OutboxMessage.state == OutboxState.QUEUED.value, OutboxMessage.not_before <= now)
        .order_by(OutboxMessage.priority.desc(), OutboxMessage.id)
        .limit(limit)
    )
    if emergency_only:
        due = due.where(OutboxMessage.priority > 0)
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(await session.scalars(due))
    if not ids:
        return []
    token = secrets.token_hex(8)
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), OutboxMessage.state == OutboxState.QUEUED.value)
        .values(
            state=OutboxState.SENDING.value,
            claimed_by=worker,
            claim_token=token,
            lease_until=now + lease,
        )
        .execution_options(synchronize_session=False)
    )
    rows = await session.execute(
        select(OutboxMessage, ContactAddress.chat_id)
        .outerjoin(ContactAddress, ContactAddress.contact_id == OutboxMessage.contact_id)
        .where(OutboxMessage.claim_token == token)
        .order_by(OutboxMessage.priority.desc(), OutboxMessage.id)
    )
    return [
        Claimed(
            id=row.id,
            broadcast_id=row.broadcast_id,
            contact_id=row.contact_id,
            chat_id=chat_id,
            language=row.language,
            topic=row.topic,
            attempts=row.attempts,
            token=token,
        )
        for row, chat_id in rows
    ]


def _mine(claimed: Claimed) -> ColumnElement[bool]:
    return and_(
        OutboxMessage.id == claimed.id,
        OutboxMessage.claim_token == claimed.token,
        OutboxMessage.state == OutboxState.SENDING.value,
    )


async def _changed(session: AsyncSession, statement: object) -> int:
    result = await session.execute(statement)  # type: ignore[call-overload]
    assert isinstance(result, CursorResult)
    return result.rowcount


async def mark_attempt(session: AsyncSession, claimed: Claimed, now: datetime) -> bool:
    """Record, before calling Telegram, that this row is being sent. False: the claim was
    lost (recovered by another sender, or cancelled) and the row must not be sent."""
    statement = (
        update(OutboxMessage)
        .where(_mine(claimed), OutboxMessage.attempted_at.is_(None))
        .values(attempted_at=now, attempts=OutboxMessage.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    return await _changed(session, statement) == 1


async def record_sent(
    session: AsyncSession, claimed: Claimed, now: datetime, message_id: int | None
) -> None:
    await session.execute(
        update(OutboxMessage)
        .where(_mine(claimed))
        .values(
            state=OutboxState.SENT.value,
            sent_at=now,
            telegram_message_id=message_id,
            claim_token=None,
            lease_until=None,
            error=None,
        )
        .execution_options(synchronize_session=False)
    )


async def record_retry(
    session: AsyncSession,
    claimed: Claimed,
    not_before: datetime,
    error: str,
    *,
    refund: bool = False,
) -> None:
    """Telegram did not send it: back in the queue, due again at `not_before`. `refund`:
    the attempt does not count towards giving up (Telegram only asked us to wait)."""
    await session.execute(
        update(OutboxMessage)
        .where(_mine(claimed))
        .values(
            state=OutboxState.QUEUED.value,
            not_before=not_before,
            attempts=OutboxMessage.attempts - (1 if refund else 0),
            attempted_at=None,
            claim_token=None,
            lease_until=None,
            error=error,
        )
        .execution_options(synchronize_session=False)
    )


async def record_failed(session: AsyncSession, claimed: Claimed, error: str) -> None:
    await session.execute(
        update(OutboxMessage)
        .where(_mine(claimed))
        .values(state=OutboxState.FAILED.value, claim_token=None, lease_until=None, error=error)
        .execution_options(synchronize_session=False)
    )


async def record_blocked(session: AsyncSession, claimed: Claimed, now: datetime) -> None:
    """403: the person blocked the bot. Nothing more goes to them until they write again."""
    await session.execute(
        update(OutboxMessage)
        .where(_mine(claimed))
        .values(state=OutboxState.BLOCKED.value, claim_token=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.contact_id == claimed.contact_id,
            OutboxMessage.state == OutboxState.QUEUED.value,
        )
        .values(state=OutboxState.BLOCKED.value)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(Contact)
        .where(Contact.id == claimed.contact_id)
        .values(unreachable_at=now)
        .execution_options(synchronize_session=False)
    )


async def release(session: AsyncSession, claimed: list[Claimed]) -> int:
    """Give back claimed rows that were never attempted (a clean shutdown)."""
    if not claimed:
        return 0
    statement = (
        update(OutboxMessage)
        .where(
            OutboxMessage.id.in_([row.id for row in claimed]),
            OutboxMessage.claim_token.in_({row.token for row in claimed}),
            OutboxMessage.state == OutboxState.SENDING.value,
            OutboxMessage.attempted_at.is_(None),
        )
        .values(state=OutboxState.QUEUED.value, claim_token=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return await _changed(session, statement)


@dataclass(frozen=True)
class Recovered:
    requeued: int
    uncertain: int


async def recover(session: AsyncSession, now: datetime, worker: str | None = None) -> Recovered:
    """Rows left in ``sending`` by a sender that died: those whose lease ran out, and, when a
    sender starts, every row still claimed under its own name."""
    stale = OutboxMessage.lease_until < now
    if worker is not None:
        stale = stale | (OutboxMessage.claimed_by == worker)
    sending = OutboxMessage.state == OutboxState.SENDING.value
    requeued = await _changed(
        session,
        update(OutboxMessage)
        .where(sending, stale, OutboxMessage.attempted_at.is_(None))
        .values(state=OutboxState.QUEUED.value, claim_token=None, lease_until=None)
        .execution_options(synchronize_session=False),
    )
    uncertain = await _changed(
        session,
        update(OutboxMessage)
        .where(sending, stale, OutboxMessage.attempted_at.is_not(None))
        .values(state=OutboxState.FAILED.value, claim_token=None, lease_until=None, error=UNCERTAIN)
        .execution_options(synchronize_session=False),
    )
    return Recovered(requeued, uncertain)


async def reserve_slots(session: AsyncSession, count: int, rate: float, now: float) -> float:
    """Reserve `count` consecutive send slots at `rate` per second; returns the first slot's
    time. One atomic UPDATE … RETURNING, so concurrent senders never get the same slot."""
    span = count / rate
    start = case((SendPace.next_at < now, now), else_=SendPace.next_at)
    statement = (update(SendPace).where(SendPace.id == 1).values(next_at=start + span)).returning(
        SendPace.next_at
    )
    end = (await session.execute(statement)).scalar_one_or_none()
    if end is None:
        session.add(SendPace(id=1, next_at=now + span))
        await session.flush()
        return now
    return float(end) - span


async def pause_slots(session: AsyncSession, until: float) -> None:
    """Telegram asked us to wait (429): no sender takes a slot before `until`."""
    await session.execute(
        update(SendPace)
        .where(SendPace.id == 1, SendPace.next_at < until)
        .values(next_at=until)
        .execution_options(synchronize_session=False)
    )
