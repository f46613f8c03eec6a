"""Notices already sent to the responders' chat, so that a restart never sends one twice.

A key is ``flag:<flag key>`` for the immediate notice of a new gap flag, or
``daily:<YYYY-MM-DD>`` for the daily digest of that day.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, UtcDateTime


class Notice(Base):
    __tablename__ = "feedback_notices"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime())


async def was_sent(session: AsyncSession, key: str) -> bool:
    return await session.scalar(select(Notice.key).where(Notice.key == key)) is not None


async def mark_sent(session: AsyncSession, key: str, now: datetime) -> None:
    if not await was_sent(session, key):
        session.add(Notice(key=key, sent_at=now))
        await session.flush()
