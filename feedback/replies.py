"""Replies from responders to the person who wrote an item.

Lifecycle of a reply: ``pending`` (recorded, ``delivered_at`` empty) → ``delivered`` (the
channel accepted it; the item becomes ``answered``) or ``failed`` (``failed_at`` set; the
responder is told, the item keeps its status). Recording before sending means a crash in
between leaves a pending reply a responder can see, never a silent loss.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, Text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from feedback.items import FeedbackItem, ItemStatus
from feedback.review import move, record_event
from storage.base import Base, UtcDateTime

MAX_REPLY = 3500  # leaves room in one Telegram message for the localized heading
ERASED_NO_REPLY = "The person deleted their data: a reply can no longer reach them."


class Reply(Base):
    __tablename__ = "feedback_replies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("feedback_items.id", ondelete="CASCADE"), index=True
    )
    staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_members.id", ondelete="SET NULL")
    )
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


async def record_reply(
    session: AsyncSession, item: FeedbackItem, staff_id: int | None, text: str, now: datetime
) -> Reply:
    reply = Reply(item_id=item.id, staff_id=staff_id, text=text[:MAX_REPLY], created_at=now)
    session.add(reply)
    await session.flush()
    return reply


async def delivered(session: AsyncSession, item: FeedbackItem, reply: Reply, now: datetime) -> None:
    reply.delivered_at = now
    await record_event(session, item, "reply", now, staff_id=reply.staff_id)
    if item.status != ItemStatus.ANSWERED and item.status != ItemStatus.CLOSED:
        await move(session, item, ItemStatus.ANSWERED, now, staff_id=reply.staff_id)


def failed(reply: Reply, now: datetime) -> None:
    reply.failed_at = now
