"""Feedback items: what a person tells us, kept as it arrived, with a reference they can quote.

Lifecycle of `FeedbackItem.status` (each step is timestamped where it happens):

- ``new``: recorded by the intake; the person has a receipt with the reference.
- ``new`` → ``in_review``: a responder opens it (``in_review_at``).
- ``new`` or ``in_review`` → ``referred``: passed to a service or the protection focal point
  (``referred_at``).
- ``new``, ``in_review`` or ``referred`` → ``answered``: a reply reached the person
  (``answered_at``; the response time is ``answered_at - created_at``).
- ``answered`` → ``in_review``: the person wrote again about it, or the reply was not enough.
- any but ``closed`` → ``closed``: nothing more to do (``closed_at``).

The rules live in feedback/review.py; every change is an event there.
The contact is a pseudonymous id; no Telegram id or name is stored here.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, UtcDateTime, utcnow
from storage.references import new_reference

# Far above Telegram's 4,096 so that nothing a person wrote is cut; a longer text (another
# channel, a pasted document) is kept whole up to this and split into further items beyond.
MAX_TEXT = 16_384


class ItemStatus(enum.StrEnum):
    NEW = "new"
    IN_REVIEW = "in_review"
    REFERRED = "referred"
    ANSWERED = "answered"
    CLOSED = "closed"


class FeedbackItem(Base):
    __tablename__ = "feedback_items"
    # The queue's and the "unanswered" flag's question: open items of a class, oldest first.
    __table_args__ = (
        Index("ix_feedback_items_open", "status", "sensitive", "urgent", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    # Indexed for a person's /mydata and /delete, and the retention job's erasures.
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(16))
    # The first-level administrative area (adm1) the item is about, from the person's last
    # place or location lookup; never coordinates (collect less).
    area_code: Mapped[str | None] = mapped_column(String(32), index=True)
    area_name: Mapped[str | None] = mapped_column(String(120))
    text: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str | None] = mapped_column(String(16))  # detected; None if unsure
    status: Mapped[str] = mapped_column(String(16), default=ItemStatus.NEW.value, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    # The person's own message in the channel, so that a reply can quote it.
    source_message_id: Mapped[int | None] = mapped_column(Integer)
    # Need categories the person picked from the menu (feedback/needs.py keys, comma-joined).
    needs: Mapped[str | None] = mapped_column(String(160))
    # The same words sent again within minutes count here instead of making new items.
    repeats: Mapped[int] = mapped_column(Integer, default=0)
    last_received_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # last repeat
    # Current codes (feedback/codes.py keeps them per code, and the corrections).
    type: Mapped[str | None] = mapped_column(String(16), index=True)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    sensitive_categories: Mapped[str | None] = mapped_column(String(160))
    suggested: Mapped[dict[str, object] | None] = mapped_column(JSON)  # Suggestion.to_record()
    # The survivor's choice after a sensitive report: None until they answer.
    contact_wanted: Mapped[bool | None] = mapped_column(Boolean)
    in_review_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    referred_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # What this item adds to the rollup counts (feedback/rollups.py), to undo it on a change.
    counted: Mapped[dict[str, object] | None] = mapped_column(JSON)
    # The item's MCOF sectors as bits (1 << sector), kept with the counts: "is it in a critical
    # sector?" is then a bit test on the row, not a join (feedback/flags.py, unanswered).
    sector_mask: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Set when what the person wrote was erased (their /delete, or the retention period):
    # text, attachments and replies are gone; codes, area and dates stay for the counts.
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

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


class CodeSource:
    SUGGESTED = "suggested"  # the coder
    PERSON = "person"  # need categories the person picked
    STAFF = "staff"  # a responder's correction


class ItemCode(Base):
    __tablename__ = "feedback_item_codes"

    item_id: Mapped[int] = mapped_column(
        ForeignKey("feedback_items.id", ondelete="CASCADE"), primary_key=True
    )
    scheme: Mapped[str] = mapped_column(String(8), primary_key=True)  # "sector" or "cluster"
    value: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    confidence: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))


async def record_item(
    session: AsyncSession,
    contact_id: int,
    text: str,
    language: str | None,
    now: datetime,
    *,
    channel: str,
    attachments: list[Attachment] | None = None,
    source_message_id: int | None = None,
    needs: str | None = None,
    area: tuple[str, str | None] | None = None,
) -> FeedbackItem:
    """Keep what the person sent, in the caller's transaction, with a fresh reference.

    The caller passes at most MAX_TEXT characters (feedback/intake.py splits longer texts)."""
    assert len(text) <= MAX_TEXT, "split long texts before recording them"
    item = FeedbackItem(
        reference=await _unused_reference(session),
        contact_id=contact_id,
        channel=channel,
        text=text,
        language=language,
        status=ItemStatus.NEW.value,
        created_at=now,
        attachments=list(attachments or []),
        source_message_id=source_message_id,
        needs=needs,
        area_code=area[0] if area else None,
        area_name=area[1] if area else None,
        repeats=0,
        sector_mask=0,
        urgent=False,
        sensitive=False,
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


async def find_item(session: AsyncSession, reference: str) -> FeedbackItem | None:
    return await session.scalar(select(FeedbackItem).where(FeedbackItem.reference == reference))


async def latest_item(session: AsyncSession, contact_id: int) -> FeedbackItem | None:
    return await session.scalar(
        select(FeedbackItem)
        .where(FeedbackItem.contact_id == contact_id)
        .order_by(FeedbackItem.created_at.desc(), FeedbackItem.id.desc())
        .limit(1)
    )
