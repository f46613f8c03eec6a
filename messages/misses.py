"""Service misses: a person asked for a service we have nothing on record for.

Counted per day, service, key and area, never who asked: the evidence for the "priority
sector unmet" gap flag (feedback/flags.py).

| service | key | recorded when |
| --- | --- | --- |
| ``shelter`` | ``""`` | a shelter search found no open shelter with free places |
| ``consulate`` | the nationality (ISO alpha-2) | no mission is on record for it |
| ``departure`` | ``""`` | a registration found no departure point within reach |
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Date, Integer, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base
from storage.counters import add_to_counters


class Service(enum.StrEnum):
    SHELTER = "shelter"
    CONSULATE = "consulate"
    DEPARTURE = "departure"


class ServiceMiss(Base):
    __tablename__ = "service_misses"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    service: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    area_code: Mapped[str] = mapped_column(String(32), primary_key=True)  # "": unknown
    misses: Mapped[int] = mapped_column(Integer, default=0)


KEYS = ("day", "service", "key", "area_code")


async def record_miss(
    session: AsyncSession,
    service: Service,
    now: datetime,
    *,
    key: str = "",
    area_code: str | None = None,
) -> None:
    row = {
        "day": now.date(),
        "service": service.value,
        "key": key,
        "area_code": area_code or "",
        "misses": 1,
    }
    await add_to_counters(session, ServiceMiss, KEYS, ServiceMiss.misses, [row])
