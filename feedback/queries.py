"""Which items: one filter shared by the item queue, the gap flags' links and the exports.

A filter round-trips through a URL query string (`to_query` / `from_query`), so that a gap
flag can link to exactly the items behind it. Sensitive items are left out unless the
caller's role allows them (``include_sensitive``; see feedback/review.py `may_see`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from feedback.items import FeedbackItem, ItemCode, ItemStatus

OPEN = (ItemStatus.NEW.value, ItemStatus.IN_REVIEW.value, ItemStatus.REFERRED.value)


@dataclass(frozen=True)
class ItemFilter:
    sector: int | None = None
    cluster: str | None = None
    area_code: str | None = None  # "" for items with no known area
    language: str | None = None  # "" for items with no detected language
    type: str | None = None
    statuses: tuple[str, ...] = ()  # any of these; empty for all
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    urgent: bool | None = None
    include_sensitive: bool = False
    references: tuple[str, ...] = ()  # exactly these items (a flag's evidence)

    def allowing_sensitive(self, allowed: bool) -> ItemFilter:
        return replace(self, include_sensitive=self.include_sensitive and allowed)

    def to_query(self) -> dict[str, str]:
        """The filter as URL query parameters (only what is set)."""
        query: dict[str, str] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is None or value == () or value is False:
                continue
            if isinstance(value, tuple):
                query[spec.name] = ",".join(value)
            elif isinstance(value, datetime):
                query[spec.name] = value.isoformat()
            elif isinstance(value, bool):
                query[spec.name] = "1"
            else:
                query[spec.name] = str(value)
        return query

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ItemFilter:
        """Parse URL parameters; raises ValueError on a malformed value."""
        values: dict[str, Any] = {}
        for spec in fields(cls):
            raw = query.get(spec.name)
            if raw is None or (raw == "" and spec.name not in ("area_code", "language")):
                continue
            if spec.name == "sector":
                values[spec.name] = int(raw)
            elif spec.name in ("statuses", "references"):
                values[spec.name] = tuple(part for part in raw.split(",") if part)
            elif spec.name in ("since", "until"):
                moment = datetime.fromisoformat(raw)
                if moment.tzinfo is None:
                    raise ValueError(f"{spec.name}: give a time zone")
                values[spec.name] = moment
            elif spec.name in ("urgent", "include_sensitive"):
                values[spec.name] = raw in ("1", "true", "yes")
            else:
                values[spec.name] = raw[:64]
        statuses = values.get("statuses", ())
        unknown = set(statuses) - {s.value for s in ItemStatus}
        if unknown:
            raise ValueError(f"unknown status {sorted(unknown)[0]!r}")
        return cls(**values)


def filtered(query: Select[Any], wanted: ItemFilter) -> Select[Any]:
    """`query` (over feedback_items) narrowed to the items `wanted` names."""
    if not wanted.include_sensitive:
        query = query.where(FeedbackItem.sensitive.is_(False))
    if wanted.references:
        query = query.where(FeedbackItem.reference.in_(wanted.references))
    if wanted.area_code is not None:
        query = query.where(
            FeedbackItem.area_code.is_(None)
            if wanted.area_code == ""
            else FeedbackItem.area_code == wanted.area_code
        )
    if wanted.language is not None:
        query = query.where(
            FeedbackItem.language.is_(None)
            if wanted.language == ""
            else FeedbackItem.language == wanted.language
        )
    if wanted.type is not None:
        query = query.where(FeedbackItem.type == wanted.type)
    if wanted.statuses:
        query = query.where(FeedbackItem.status.in_(wanted.statuses))
    if wanted.since is not None:
        query = query.where(FeedbackItem.created_at >= wanted.since)
    if wanted.until is not None:
        query = query.where(FeedbackItem.created_at < wanted.until)
    if wanted.urgent is not None:
        query = query.where(FeedbackItem.urgent.is_(wanted.urgent))
    for scheme, value in (("sector", wanted.sector), ("cluster", wanted.cluster)):
        if value is not None:
            coded = select(ItemCode.item_id).where(
                ItemCode.scheme == scheme, ItemCode.value == str(value)
            )
            query = query.where(FeedbackItem.id.in_(coded))
    return query


async def find_items(
    session: AsyncSession,
    wanted: ItemFilter,
    *,
    limit: int = 50,
    offset: int = 0,
    oldest_first: bool = False,
) -> list[FeedbackItem]:
    order = FeedbackItem.created_at if oldest_first else FeedbackItem.created_at.desc()
    query = filtered(select(FeedbackItem), wanted).order_by(order, FeedbackItem.id)
    return list(await session.scalars(query.limit(limit).offset(offset)))


async def count_items(session: AsyncSession, wanted: ItemFilter) -> int:
    query = filtered(select(func.count(FeedbackItem.id)), wanted)
    return int(await session.scalar(query) or 0)
