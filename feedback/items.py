"""Feedback items: what a person tells us, kept as it arrived, with a reference they can quote.

Lifecycle of `FeedbackItem.status` (each step is timestamped where it happens):

- ``new``: recorded by the intake; the person has a receipt with the reference.
- ``new`` → ``in_review``: a responder opens it.
- ``in_review`` → ``referred``: passed to a service or the protection focal point.
- ``in_review`` or ``referred`` → ``answered``: a reply reached the person.
- any → ``closed``: nothing more to do.

Only the intake (``new``) exists so far; review, referral and replies build on it.
The contact is a pseudonymous id; no Telegram id or name is stored here.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, UtcDateTime, utcnow
from storage.references import new_reference

MAX_TEXT = 4096  # Telegram's limit for one message; a longer text arrives as several items


class ItemStatus(enum.StrEnum):
    NEW = "new"
    IN_REVIEW = "in_review"
    REFERRED = "referred"
    ANSWERED = "answered"
    CLOSED = "closed"


class FeedbackItem(Base):
    __tablename__ = "feedback_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str | None] = mapped_column(String(16))  # detected; None if unsure
    status: Mapped[str] = mapped_column(String(16), default=ItemStatus.NEW.value, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)

    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="item", cascade="all, delete-orphan", lazy="selectin"
    )


class Attachment(Base):
    """A voice note, photo or file, kept as the channel's file id: the file stays with the
    channel until a responder opens it."""

    __tablename__ = "feedback_attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("feedback_items.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # voice, audio, photo, video, document
    file_id: Mapped[str] = mapped_column(String(256))
    mime_type: Mapped[str | None] = mapped_column(String(128))
    size: Mapped[int | None] = mapped_column(Integer)

    item: Mapped[FeedbackItem] = relationship(back_populates="attachments")


async def record_item(
    session: AsyncSession,
    contact_id: int,
    text: str,
    language: str | None,
    now: datetime,
    *,
    channel: str,
    attachments: list[Attachment] | None = None,
) -> FeedbackItem:
    """Keep what the person sent, in the caller's transaction, with a fresh reference."""
    item = FeedbackItem(
        reference=await _unused_reference(session),
        contact_id=contact_id,
        channel=channel,
        text=text[:MAX_TEXT],
        language=language,
        status=ItemStatus.NEW.value,
        created_at=now,
        attachments=list(attachments or []),
    )
    session.add(item)
    await session.flush()
    return item


async def _unused_reference(session: AsyncSession) -> str:
    while True:
        reference = new_reference()
        taken = await session.scalar(
            select(FeedbackItem.id).where(FeedbackItem.reference == reference)
        )
        if taken is None:
            return reference


async def items_of(session: AsyncSession, contact_id: int) -> list[FeedbackItem]:
    rows = await session.scalars(
        select(FeedbackItem)
        .where(FeedbackItem.contact_id == contact_id)
        .order_by(FeedbackItem.created_at, FeedbackItem.id)
    )
    return list(rows)
