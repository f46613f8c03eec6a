"""Reviewing items: who may see what, status changes, and the event trail behind both.

Every view, status change, correction, reply, alert and acknowledgement is an event with
its time and the staff member, so that "who looked at this sensitive report" has an answer.
The status lifecycle is in feedback/items.py; ``TRANSITIONS`` here is its rule.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, ForeignKey, Integer, String, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from feedback.items import FeedbackItem, ItemStatus
from feedback.rollups import recount
from staff import audit
from staff.models import Role, StaffMember
from storage.base import Base, UtcDateTime

S = ItemStatus
TRANSITIONS: dict[ItemStatus, frozenset[ItemStatus]] = {
    S.NEW: frozenset({S.IN_REVIEW, S.REFERRED, S.ANSWERED, S.CLOSED}),
    S.IN_REVIEW: frozenset({S.REFERRED, S.ANSWERED, S.CLOSED}),
    S.REFERRED: frozenset({S.IN_REVIEW, S.ANSWERED, S.CLOSED}),
    S.ANSWERED: frozenset({S.IN_REVIEW, S.CLOSED}),
    S.CLOSED: frozenset(),
}
_STAMPS = {
    S.IN_REVIEW: "in_review_at",
    S.REFERRED: "referred_at",
    S.ANSWERED: "answered_at",
    S.CLOSED: "closed_at",
}
REVIEWERS = frozenset({Role.RESPONDER, Role.PROTECTION_FOCAL_POINT})
# Item events a staff member caused, mirrored in the audit log (alerts are the system's).
_AUDITED = {
    "view": audit.Action.VIEW,
    "status": audit.Action.STATUS,
    "correction": audit.Action.CORRECTION,
    "reply": audit.Action.REPLY,
    "ack": audit.Action.ACKNOWLEDGE,
}


class ItemEvent(Base):
    __tablename__ = "feedback_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("feedback_items.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # view, status, correction, reply, alert, ack
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_members.id", ondelete="SET NULL")
    )
    detail: Mapped[str | None] = mapped_column(String(64))  # e.g. "new>in_review"; never text


class TransitionError(ValueError):
    pass


def may_see(member: StaffMember, item: FeedbackItem) -> bool:
    """Sensitive items only for the protection focal point (not even admins); the rest for
    responders, focal points and admins. Viewers see aggregates only."""
    if not member.active:
        return False
    if item.sensitive:
        return member.role is Role.PROTECTION_FOCAL_POINT
    return member.role in REVIEWERS or member.role is Role.ADMIN


async def record_event(
    session: AsyncSession,
    item: FeedbackItem,
    kind: str,
    now: datetime,
    *,
    staff_id: int | None = None,
    detail: str | None = None,
) -> None:
    session.add(ItemEvent(item_id=item.id, kind=kind, at=now, staff_id=staff_id, detail=detail))
    action = _AUDITED.get(kind)
    if action is not None and staff_id is not None:
        # Admins read the audit log but may not see sensitive items: not even which one.
        target = "sensitive item" if item.sensitive else item.reference
        await audit.record(session, action, now, staff_id=staff_id, target=target, detail=detail)
    await session.flush()


async def open_item(
    session: AsyncSession, item: FeedbackItem, member: StaffMember, now: datetime
) -> None:
    """A staff member reads the item: the view is recorded; a new item is now in review."""
    await record_event(session, item, "view", now, staff_id=member.id)
    if item.status == S.NEW:
        await move(session, item, S.IN_REVIEW, now, staff_id=member.id)


async def move(
    session: AsyncSession,
    item: FeedbackItem,
    status: ItemStatus,
    now: datetime,
    *,
    staff_id: int | None = None,
) -> None:
    current = ItemStatus(item.status)
    if status == current:
        return
    if status not in TRANSITIONS[current]:
        raise TransitionError(f"{current.value} cannot become {status.value}")
    item.status = status.value
    stamp = _STAMPS.get(status)
    # The first time counts: a re-opened item keeps its first answer time.
    if stamp is not None and getattr(item, stamp) is None:
        setattr(item, stamp, now)
    await record_event(
        session, item, "status", now, staff_id=staff_id, detail=f"{current.value}>{status.value}"
    )
    await recount(session, item)


async def views_of(session: AsyncSession, item: FeedbackItem) -> list[ItemEvent]:
    rows = await session.scalars(
        select(ItemEvent)
        .where(ItemEvent.item_id == item.id, ItemEvent.kind == "view")
        .order_by(ItemEvent.at, ItemEvent.id)
    )
    return list(rows)


@dataclass(frozen=True)
class ResponseTimes:
    answered: int
    waiting: int  # open items (not answered, not closed)
    median: timedelta | None
    p90: timedelta | None


async def response_times(
    session: AsyncSession,
    *,
    sensitive: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
    area_code: str | None = None,
) -> ResponseTimes:
    """From an item's arrival to its first answer, for items that arrived in [since, until);
    sensitive items counted apart.

    Counted and ranked in the database, which returns at most three waits (the median's one
    or two and the 90th percentile's): a month of a large response has hundreds of thousands
    of items, too many to read row by row for a report that must take under a second.
    """
    conditions: list[ColumnElement[bool]] = [FeedbackItem.sensitive.is_(sensitive)]
    if since is not None:
        conditions.append(FeedbackItem.created_at >= since)
    if until is not None:
        conditions.append(FeedbackItem.created_at < until)
    if area_code is not None:
        conditions.append(FeedbackItem.area_code == area_code)
    open_unanswered = and_(FeedbackItem.answered_at.is_(None), FeedbackItem.status != S.CLOSED)
    counted = await session.execute(
        select(
            func.count(FeedbackItem.answered_at),
            func.coalesce(func.sum(case((open_unanswered, 1), else_=0)), 0),
        ).where(*conditions)
    )
    answered, waiting = (int(n) for n in counted.one())
    if not answered:
        return ResponseTimes(0, waiting, None, None)
    # Positions in the sorted waits (0-based), as statistics.median and the p90 rule count.
    middle = [answered // 2] if answered % 2 else [answered // 2 - 1, answered // 2]
    p90 = min(answered - 1, int(0.9 * answered))
    wait = _wait_seconds(session.get_bind().dialect.name).label("wait")
    ranked = (
        select(wait, func.row_number().over(order_by=wait).label("rank"))
        .where(*conditions, FeedbackItem.answered_at.is_not(None))
        .subquery()
    )
    positions = sorted({*middle, p90})
    rows = await session.execute(
        select(ranked.c.rank, ranked.c.wait).where(ranked.c.rank.in_([n + 1 for n in positions]))
    )
    at = {int(rank) - 1: float(seconds) for rank, seconds in rows}
    return ResponseTimes(
        answered,
        waiting,
        _seconds(statistics.fmean(at[n] for n in middle)),
        _seconds(at[p90]),
    )


def _wait_seconds(dialect: str) -> ColumnElement[Any]:
    """answered_at - created_at in seconds, in the database's own date arithmetic."""
    if dialect == "postgresql":
        return func.extract("epoch", FeedbackItem.answered_at - FeedbackItem.created_at)
    return (func.julianday(FeedbackItem.answered_at) - func.julianday(FeedbackItem.created_at)) * (
        86400.0
    )


def _seconds(value: float) -> timedelta:
    # julianday() differences carry about 0.1 ms of floating-point noise: whole milliseconds.
    return timedelta(seconds=round(value, 3))


def format_response_times(times: ResponseTimes) -> str:
    def span(value: timedelta | None) -> str:
        if value is None:
            return "–"
        minutes = round(value.total_seconds() / 60)
        return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"

    return (
        f"{times.answered} answered, median {span(times.median)}, 90th percentile "
        f"{span(times.p90)}; {times.waiting} waiting"
    )
