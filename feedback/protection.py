"""Sensitive reports: alerts to the protection focal point chats, repeated until acknowledged.

An alert carries the minimum (reference, category, language, time), never the text: focal
point chats may be groups. Lifecycle of a ``ProtectionAlert`` (one per item and chat):

- ``pending``: created with the item (``sends`` = 0); due at once.
- ``pending`` → ``sent``: the chat got it (``sends`` += 1, ``last_sent_at``); due again
  every repeat interval while nobody has acknowledged.
- any → ``acknowledged``: a protection focal point tapped Acknowledge (in any chat); every
  alert of the item stops (``acknowledged_at``, ``acknowledged_by``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, ForeignKey, Integer, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from feedback.items import FeedbackItem
from feedback.review import record_event
from staff.models import Role, StaffMember
from storage.base import Base, UtcDateTime

# Labels of the sensitive categories for staff alerts, in English like every staff text
# (keys as in feedback/data/taxonomy.toml).
CATEGORY_LABELS: dict[str, str] = {
    "sexual_exploitation_abuse": "sexual exploitation or abuse",
    "gbv": "gender-based violence",
    "child_alone": "unaccompanied or separated child",
    "trafficking": "trafficking or forced labour",
    "self_harm": "self-harm or suicide",
    "threat_to_life": "threat to life",
}


class ProtectionAlert(Base):
    __tablename__ = "protection_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("feedback_items.id", ondelete="CASCADE"), index=True
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)  # a configured focal point chat
    sends: Mapped[int] = mapped_column(Integer, default=0)
    last_sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    acknowledged_by: Mapped[int | None] = mapped_column(
        ForeignKey("staff_members.id", ondelete="SET NULL")
    )


@dataclass(frozen=True)
class DueAlert:
    alert_id: int
    chat_id: int
    reference: str
    categories: tuple[str, ...]
    language: str | None
    created_at: datetime
    sends: int


async def open_alerts(
    session: AsyncSession, item: FeedbackItem, chats: Sequence[int]
) -> list[ProtectionAlert]:
    alerts = [ProtectionAlert(item_id=item.id, chat_id=chat, sends=0) for chat in chats]
    session.add_all(alerts)
    await session.flush()
    return alerts


async def due_alerts(session: AsyncSession, now: datetime, every: timedelta) -> list[DueAlert]:
    rows = await session.execute(
        select(ProtectionAlert, FeedbackItem)
        .join(FeedbackItem, FeedbackItem.id == ProtectionAlert.item_id)
        .where(
            ProtectionAlert.acknowledged_at.is_(None),
            or_(
                ProtectionAlert.last_sent_at.is_(None), ProtectionAlert.last_sent_at <= now - every
            ),
        )
        .order_by(FeedbackItem.created_at, ProtectionAlert.id)
    )
    return [
        DueAlert(
            alert_id=alert.id,
            chat_id=alert.chat_id,
            reference=item.reference,
            categories=tuple(filter(None, (item.sensitive_categories or "").split(","))),
            language=item.language,
            created_at=item.created_at,
            sends=alert.sends,
        )
        for alert, item in rows
    ]


async def mark_sent(session: AsyncSession, alert_id: int, now: datetime) -> None:
    alert = await session.get(ProtectionAlert, alert_id)
    if alert is not None:
        alert.sends += 1
        alert.last_sent_at = now
        item = await session.get(FeedbackItem, alert.item_id)
        if item is not None:
            await record_event(session, item, "alert", now, detail=f"send {alert.sends}")


def may_acknowledge(member: StaffMember | None) -> bool:
    return member is not None and member.active and member.role is Role.PROTECTION_FOCAL_POINT


async def acknowledge(
    session: AsyncSession, item: FeedbackItem, member: StaffMember, now: datetime
) -> bool:
    """Stop every alert of the item; False if it was already acknowledged."""
    alerts = list(
        await session.scalars(
            select(ProtectionAlert).where(
                ProtectionAlert.item_id == item.id, ProtectionAlert.acknowledged_at.is_(None)
            )
        )
    )
    for alert in alerts:
        alert.acknowledged_at = now
        alert.acknowledged_by = member.id
    if alerts:
        await record_event(session, item, "ack", now, staff_id=member.id)
    return bool(alerts)
