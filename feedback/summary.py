"""The summary a responder reads first: what people told us, by sector, area and language.

Read from the rollup counts (feedback/rollups.py), so its cost depends on the number of
days, areas and codes, not on the number of items. Response times are the one part read
from the items, and only those that arrived in the window.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from feedback.review import ResponseTimes, response_times
from feedback.rollups import CLUSTER, ITEM, SECTOR, CountFilter, grouped
from messages.areas import area_names

UNKNOWN = ""  # the rollups' "unknown" area or language


@dataclass(frozen=True)
class Window:
    """Whole UTC days, first and last included."""

    since: date
    until: date

    @classmethod
    def last_days(cls, days: int, now: datetime) -> Window:
        today = now.astimezone(UTC).date()
        return cls(today - timedelta(days=days - 1), today)

    @property
    def days(self) -> list[date]:
        return [self.since + timedelta(days=n) for n in range((self.until - self.since).days + 1)]

    @property
    def start(self) -> datetime:
        return datetime.combine(self.since, time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.until + timedelta(days=1), time(), tzinfo=UTC)


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class Summary:
    window: Window
    area_code: str | None
    include_sensitive: bool
    total: int
    by_sector: dict[int, int]
    by_cluster: dict[str, int]
    by_area: dict[str, int]  # "" is unknown
    by_language: dict[str, int]  # "" is unknown
    by_type: dict[str, int]
    by_status: dict[str, int]
    sector_by_area: dict[tuple[int, str], int]
    sector_by_day: dict[int, dict[date, int]]
    total_by_day: dict[date, int]
    area_names: dict[str, str]
    response: ResponseTimes
    sensitive_response: ResponseTimes | None = None  # only when sensitive items are included
    weeks: list[str] = field(default_factory=list)

    def sector_by_week(self, sector: int) -> dict[str, int]:
        weekly: dict[str, int] = defaultdict(int)
        for day, count in self.sector_by_day.get(sector, {}).items():
            weekly[iso_week(day)] += count
        return dict(weekly)

    def total_by_week(self) -> dict[str, int]:
        weekly: dict[str, int] = defaultdict(int)
        for day, count in self.total_by_day.items():
            weekly[iso_week(day)] += count
        return dict(weekly)

    def area_label(self, code: str) -> str:
        if code == UNKNOWN:
            return "unknown area"
        name = self.area_names.get(code)
        return f"{name} ({code})" if name else code


async def summarise(
    session: AsyncSession,
    window: Window,
    *,
    area_code: str | None = None,
    include_sensitive: bool = False,
) -> Summary:
    where = CountFilter(
        since=window.since,
        until=window.until,
        area_code=area_code,
        include_sensitive=include_sensitive,
    )

    async def one(kind: str, column: str) -> dict[str, int]:
        return {str(key[0]): n for key, n in await grouped(session, kind, [column], where)}

    by_status = await one(ITEM, "status")
    sector_area_day = await grouped(session, SECTOR, ["code", "area_code", "day"], where)
    sector_by_area: dict[tuple[int, str], int] = defaultdict(int)
    sector_by_day: dict[int, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for (code, area, day), n in sector_area_day:
        sector_by_area[(int(code), area)] += n
        sector_by_day[int(code)][day] += n
    by_sector: dict[int, int] = defaultdict(int)
    for (sector, _area), n in sector_by_area.items():
        by_sector[sector] += n
    total_by_day = {day: n for (day,), n in await grouped(session, ITEM, ["day"], where)}

    async def times(sensitive: bool) -> ResponseTimes:
        return await response_times(
            session, sensitive=sensitive, since=window.start, until=window.end, area_code=area_code
        )

    return Summary(
        window=window,
        area_code=area_code,
        include_sensitive=include_sensitive,
        total=sum(by_status.values()),
        by_sector=dict(sorted(by_sector.items())),
        by_cluster=await one(CLUSTER, "code"),
        by_area=await one(ITEM, "area_code"),
        by_language=await one(ITEM, "language"),
        by_type=await one(ITEM, "type"),
        by_status=by_status,
        sector_by_area=dict(sector_by_area),
        sector_by_day={s: dict(days) for s, days in sector_by_day.items()},
        total_by_day=total_by_day,
        area_names=await area_names(session),
        response=await times(sensitive=False),
        sensitive_response=await times(sensitive=True) if include_sensitive else None,
        weeks=sorted({iso_week(day) for day in window.days}),
    )
