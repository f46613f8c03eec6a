"""Rollup counts of feedback items, kept up to date as items arrive and change.

Reports read these counts, never the items, so that they stay fast with millions of items.
One row counts the items of one day with the same area, language, type, status and
sensitivity, for one of three kinds of code:

- ``item`` (code ``""``): every item once, for totals;
- ``sector``: one row per MCOF sector of the item (code ``"1"``..``"15"``);
- ``cluster``: one row per IASC cluster or protection area of the item.

An item with two sectors counts once in the totals and once under each sector, so sector
counts add up to more than the total. Weeks are summed from days when a report asks.
Days are UTC days.

Every domain function that changes what an item counts under (intake, coding, correction,
status) ends with `recount`: the item keeps in ``counted`` what it added, so a change is an
exact -1 on the old rows and +1 on the new ones, in the same transaction as the change.
Deleting a contact deletes their items but leaves the counts: anonymous numbers stay.
`rebuild` recomputes every count from the items that remain.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from sqlalchemy import Boolean, Date, Integer, String, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from feedback.items import FeedbackItem, ItemCode
from storage.base import Base
from storage.counters import add_to_counters

ITEM, SECTOR, CLUSTER = "item", "sector", "cluster"


class FeedbackCount(Base):
    __tablename__ = "feedback_counts"
    # Every report reads one kind over a range of days: the key leads with them. On SQLite the
    # table is the key's B-tree itself (no rowid), so those reads are one range scan.
    __table_args__ = ({"sqlite_with_rowid": False},)

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # item, sector, cluster
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), primary_key=True)  # "" for kind "item"
    area_code: Mapped[str] = mapped_column(String(32), primary_key=True)  # "": unknown
    language: Mapped[str] = mapped_column(String(16), primary_key=True)  # "": unknown
    type: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    sensitive: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    items: Mapped[int] = mapped_column(Integer, default=0)


class Key(NamedTuple):
    kind: str
    day: date
    code: str
    area_code: str
    language: str
    type: str
    status: str
    sensitive: bool


KEY_COLUMNS = Key._fields


def snapshot(item: FeedbackItem, sectors: Iterable[int], clusters: Iterable[str]) -> dict[str, Any]:
    """What an item counts under, JSON-safe (kept on the item as ``counted``)."""
    return {
        "day": item.created_at.date().isoformat(),
        "area": item.area_code or "",
        "language": item.language or "",
        "type": item.type or "other",
        "status": item.status,
        "sensitive": bool(item.sensitive),
        "sectors": sorted(int(s) for s in sectors),
        "clusters": sorted(clusters),
    }


def keys_of(counted: dict[str, Any] | None) -> list[Key]:
    if not counted:
        return []
    common = (
        counted["area"],
        counted["language"],
        counted["type"],
        counted["status"],
        counted["sensitive"],
    )
    day = date.fromisoformat(counted["day"])
    keys = [Key(ITEM, day, "", *common)]
    keys += [Key(SECTOR, day, str(s), *common) for s in counted["sectors"]]
    keys += [Key(CLUSTER, day, str(c), *common) for c in counted["clusters"]]
    return keys


async def codes_of(session: AsyncSession, item_id: int) -> tuple[list[int], list[str]]:
    rows = (
        await session.execute(
            select(ItemCode.scheme, ItemCode.value).where(ItemCode.item_id == item_id)
        )
    ).all()
    sectors = [int(value) for scheme, value in rows if scheme == "sector"]
    clusters = [value for scheme, value in rows if scheme == "cluster"]
    return sectors, clusters


async def recount(session: AsyncSession, item: FeedbackItem) -> None:
    """Bring the counts in line with the item as it is now (a no-op when nothing changed)."""
    await session.flush()
    sectors, clusters = await codes_of(session, item.id)
    now_counted = snapshot(item, sectors, clusters)
    if now_counted == item.counted:
        return
    deltas: Counter[Key] = Counter(keys_of(now_counted))
    deltas.subtract(keys_of(item.counted))
    await add_counts(session, {key: n for key, n in deltas.items() if n})
    item.counted = now_counted
    item.sector_mask = sector_mask(sectors)


def sector_mask(sectors: Iterable[int]) -> int:
    mask = 0
    for sector in sectors:
        mask |= 1 << int(sector)
    return mask


async def add_counts(session: AsyncSession, deltas: dict[Key, int]) -> None:
    rows = [dict(zip(KEY_COLUMNS, key, strict=True), items=n) for key, n in deltas.items()]
    await add_to_counters(session, FeedbackCount, KEY_COLUMNS, FeedbackCount.items, rows)


@dataclass(frozen=True)
class Rebuilt:
    items: int
    rows: int


async def rebuild(session: AsyncSession, *, batch: int = 5000) -> Rebuilt:
    """Recompute every count from the items (for a repair, or after changing the rules)."""
    await session.execute(delete(FeedbackCount))
    totals: Counter[Key] = Counter()
    seen, last_id = 0, 0
    while True:
        items = list(
            await session.scalars(
                select(FeedbackItem)
                .where(FeedbackItem.id > last_id)
                .order_by(FeedbackItem.id)
                .limit(batch)
            )
        )
        if not items:
            break
        codes = await _codes_for(session, [item.id for item in items])
        for item in items:
            sectors, clusters = codes.get(item.id, ([], []))
            item.counted = snapshot(item, sectors, clusters)
            item.sector_mask = sector_mask(sectors)
            totals.update(keys_of(item.counted))
        seen += len(items)
        last_id = items[-1].id
        await session.flush()
        session.expunge_all()  # bounded memory with millions of items
    await add_counts(session, dict(totals))
    return Rebuilt(items=seen, rows=len(totals))


async def _codes_for(
    session: AsyncSession, item_ids: Sequence[int]
) -> dict[int, tuple[list[int], list[str]]]:
    codes: dict[int, tuple[list[int], list[str]]] = {}
    rows = await session.execute(
        select(ItemCode.item_id, ItemCode.scheme, ItemCode.value).where(
            ItemCode.item_id.in_(item_ids)
        )
    )
    for item_id, scheme, value in rows:
        sectors, clusters = codes.setdefault(item_id, ([], []))
        if scheme == "sector":
            sectors.append(int(value))
        else:
            clusters.append(value)
    return codes


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CountFilter:
    """Which counted items a report reads. Sensitive items are left out unless asked for:
    small counts of sensitive reports by area and day could point at a person."""

    since: date | None = None  # first day included
    until: date | None = None  # last day included
    area_code: str | None = None
    language: str | None = None
    include_sensitive: bool = False


async def grouped(
    session: AsyncSession, kind: str, by: Sequence[str], where: CountFilter = CountFilter()
) -> list[tuple[tuple[Any, ...], int]]:
    """Sum of items per combination of the `by` columns (names of Key fields but kind)."""
    columns = [getattr(FeedbackCount, name) for name in by]
    query = select(*columns, func.sum(FeedbackCount.items)).where(FeedbackCount.kind == kind)
    if where.since is not None:
        query = query.where(FeedbackCount.day >= where.since)
    if where.until is not None:
        query = query.where(FeedbackCount.day <= where.until)
    if where.area_code is not None:
        query = query.where(FeedbackCount.area_code == where.area_code)
    if where.language is not None:
        query = query.where(FeedbackCount.language == where.language)
    if not where.include_sensitive:
        query = query.where(FeedbackCount.sensitive.is_(False))
    if columns:
        query = query.group_by(*columns)
    rows = await session.execute(query)
    return [(tuple(row[:-1]), int(row[-1] or 0)) for row in rows if row[-1]]
