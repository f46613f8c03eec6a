"""Rollup counts and the summary read from them (SQLite and PostgreSQL).

The counts must equal what a recount from the items gives, after every change an item can
go through: recorded and coded, corrected, moved along its status, repeated. Rows at zero
may stay behind after a change (an upsert adds -1, it does not delete), so comparisons below
are over the rows with items.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from feedback.codes import CodeSet, apply_suggestion, correct
from feedback.coding import Suggestion, default_coder
from feedback.intake import Outcome, Received, take_message
from feedback.items import FeedbackItem, ItemStatus, record_item
from feedback.review import move
from feedback.rollups import (
    CLUSTER,
    ITEM,
    KEY_COLUMNS,
    SECTOR,
    CountFilter,
    FeedbackCount,
    Key,
    add_counts,
    grouped,
    rebuild,
    recount,
)
from feedback.summary import Window, iso_week, summarise
from messages.contacts import Contact, record_consent
from messages.places import Place, PlaceKind
from storage.database import Database

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)  # a Saturday
TODAY = NOW.date()
S = ItemStatus


def suggestion(
    type_: str = "request",
    sectors: Iterable[int] = (),
    clusters: Iterable[str] = (),
    *,
    sensitive: bool = False,
) -> Suggestion:
    return Suggestion(
        language="en",
        type=type_,
        type_confidence=0.9,
        mcof_sectors={s: 0.9 for s in sectors},
        clusters={c: 0.9 for c in clusters},
        urgent=sensitive,
        urgent_confidence=0.9 if sensitive else 0.1,
        sensitive=sensitive,
        sensitive_categories=("gbv",) if sensitive else (),
        confidence=0.9,
    )


async def new_item(
    session: AsyncSession,
    contact: Contact,
    at: datetime = NOW,
    *,
    sectors: Iterable[int] = (),
    clusters: Iterable[str] = (),
    type_: str = "request",
    area: str | None = None,
    language: str | None = "en",
    sensitive: bool = False,
) -> FeedbackItem:
    """An item as the intake leaves it: recorded, then coded (which counts it)."""
    item = await record_item(
        session,
        contact.id,
        "words",
        language,
        at,
        channel="telegram",
        area=(area, f"Area {area}") if area else None,
    )
    coded = suggestion(type_, sectors, clusters, sensitive=sensitive)
    await apply_suggestion(session, item, coded)
    return item


async def counts(session: AsyncSession) -> dict[Key, int]:
    rows = await session.scalars(select(FeedbackCount))
    return {Key(*(getattr(r, name) for name in KEY_COLUMNS)): r.items for r in rows if r.items}


def key(kind: str, code: str = "", **values: Any) -> Key:
    """A count's key: today, English, a new non-sensitive request of unknown area, unless
    `values` say otherwise."""
    return Key(kind, TODAY, code, "", "en", "request", "new", False)._replace(**values)


async def contact(session: AsyncSession, pseudonym: str = "p1") -> Contact:
    return await record_consent(session, pseudonym, 1, "en", NOW)


async def test_a_coded_item_counts_once_in_total_and_once_per_code(database: Database) -> None:
    async with database.transaction() as session:
        person = await contact(session)
        await new_item(
            session, person, sectors=[2, 3], clusters=["wash"], area="XY01", language="ar"
        )
        await new_item(session, person, type_="question", language=None)
    async with database.transaction() as session:
        where: dict[str, Any] = {"area_code": "XY01", "language": "ar"}
        assert await counts(session) == {
            key(ITEM, **where): 1,
            key(SECTOR, "2", **where): 1,
            key(SECTOR, "3", **where): 1,
            key(CLUSTER, "wash", **where): 1,
            key(ITEM, language="", type="question"): 1,  # unknown area and language: ""
        }


async def test_a_correction_moves_the_counts(database: Database) -> None:
    async with database.transaction() as session:
        person = await contact(session)
        item = await new_item(session, person, sectors=[2, 3], area="XY01")
        await correct(
            session,
            item,
            CodeSet(type="complaint", sectors=frozenset({3, 5}), clusters=frozenset({"health"})),
            None,
            NOW,
        )
    async with database.transaction() as session:
        where: dict[str, Any] = {"area_code": "XY01", "type": "complaint"}
        assert await counts(session) == {
            key(ITEM, **where): 1,
            key(SECTOR, "3", **where): 1,  # kept: moved to the new type, not counted twice
            key(SECTOR, "5", **where): 1,
            key(CLUSTER, "health", **where): 1,
        }
        # Sector 2 went to zero: -1 on the old row, +1 on the new.
        old = await session.get(
            FeedbackCount, tuple(key(SECTOR, "2", area_code="XY01", type="request"))
        )
        assert old is not None and old.items == 0
        item = await session.get_one(FeedbackItem, item.id)
        # Marked sensitive by a responder: out of the default counts.
        await correct(
            session,
            item,
            CodeSet(type="complaint", sectors=frozenset({5}), sensitive=True),
            None,
            NOW,
        )
    async with database.transaction() as session:
        hidden: dict[str, Any] = {"area_code": "XY01", "type": "complaint", "sensitive": True}
        assert await counts(session) == {key(ITEM, **hidden): 1, key(SECTOR, "5", **hidden): 1}
        assert await grouped(session, ITEM, ["status"]) == []


async def test_status_moves_and_repeats(database: Database) -> None:
    coder = default_coder()
    async with database.transaction() as session:
        person = await contact(session)
        item = await new_item(session, person, sectors=[4])
        await move(session, item, ItemStatus.IN_REVIEW, NOW + timedelta(hours=1))
        await move(session, item, ItemStatus.ANSWERED, NOW + timedelta(days=2))
    async with database.transaction() as session:
        # Counted on the day it arrived, under its status now.
        assert await counts(session) == {
            key(ITEM, status="answered"): 1,
            key(SECTOR, "4", status="answered"): 1,
        }
        await recount(session, await session.get_one(FeedbackItem, item.id))  # nothing new
        assert sum((await counts(session)).values()) == 2

    async with database.transaction() as session:
        other = await contact(session, "p2")
        first = await take_message(
            session, Received(other.id, "No water here", "en", NOW, "telegram"), coder
        )
        before = await counts(session)
        again = await take_message(
            session,
            Received(other.id, "no water HERE!", "en", NOW + timedelta(seconds=5), "telegram"),
            coder,
        )
        assert again.outcome is Outcome.REPEAT and again.item.id == first.item.id
        assert again.item.repeats == 1
        assert await counts(session) == before, "a repeat is the same item, counted once"
    async with database.transaction() as session:
        totals = await grouped(session, ITEM, ["status"])
        assert sorted(totals) == [(("answered",), 1), (("new",), 1)]


async def build_mixed(session: AsyncSession) -> list[FeedbackItem]:
    """Items with different codes, areas, languages, types, days, statuses, sensitivity."""
    first, second = await contact(session, "p1"), await contact(session, "p2")
    specs: list[tuple[Contact, int, list[int], list[str], str, str | None, str | None, bool]] = [
        (first, 0, [2], ["wash"], "request", "XY01", "en", False),
        (first, 0, [2, 3], [], "request", "XY01", "ar", False),
        (first, 1, [5], ["health"], "complaint", "XY02", "ar", False),
        (first, 2, [], [], "question", None, None, False),
        (first, 3, [11], ["protection"], "request", "XY02", "fa", True),
        (second, 0, [2], ["shelter"], "request", "XY01", "en", False),
        (second, 5, [3, 4], ["food_security"], "rumour", "XY03", "uk", False),
        (second, 6, [13], [], "appreciation", "XY01", "en", False),
        (second, 9, [2], ["wash", "health"], "request", "XY02", "ar", False),
        (second, 20, [1], [], "other", None, "fr", False),
    ]
    items = []
    for person, days_ago, sectors, clusters, type_, area, language, sensitive in specs:
        items.append(
            await new_item(
                session,
                person,
                NOW - timedelta(days=days_ago, hours=days_ago),
                sectors=sectors,
                clusters=clusters,
                type_=type_,
                area=area,
                language=language,
                sensitive=sensitive,
            )
        )
    for item, status in zip(
        items,
        [S.IN_REVIEW, S.ANSWERED, S.REFERRED, S.CLOSED, S.ANSWERED, S.NEW, S.ANSWERED],
        strict=False,
    ):
        await move(session, item, status, item.created_at + timedelta(hours=3))
    await correct(session, items[5], CodeSet(type="complaint", sectors=frozenset({6})), None, NOW)
    return items


async def test_rebuild_equals_the_incremental_counts(database: Database) -> None:
    async with database.transaction() as session:
        await build_mixed(session)
    async with database.transaction() as session:
        incremental = await counts(session)
        assert len({k.status for k in incremental}) == 5, "every status is represented"
        assert {k.kind for k in incremental} == {ITEM, SECTOR, CLUSTER}
    async with database.transaction() as session:
        # A wrong count is repaired too.
        await add_counts(session, {key(SECTOR, "9"): 7})
        rebuilt = await rebuild(session, batch=3)  # several batches
        assert rebuilt.items == 10
    async with database.transaction() as session:
        assert await counts(session) == incremental
        assert rebuilt.rows == len(incremental)
        # The items keep what they count under: a later change is still exact.
        item = await session.scalar(select(FeedbackItem).where(FeedbackItem.status == "new"))
        assert item is not None
        await move(session, item, S.CLOSED, NOW)
    async with database.transaction() as session:
        after = await counts(session)
        assert sum(n for k, n in after.items() if k.kind == ITEM) == 10
        assert sum(n for k, n in after.items() if k.status == "closed" and k.kind == ITEM) == 2


async def test_counts_outlive_a_deleted_contact_until_a_rebuild(database: Database) -> None:
    """Deleting a person deletes their items (ON DELETE CASCADE) but not the anonymous
    counts; `rebuild` recomputes from the items that remain, so it drops them."""
    async with database.transaction() as session:
        await build_mixed(session)
    async with database.transaction() as session:
        before = await counts(session)
        await session.execute(delete(Contact).where(Contact.pseudonym == "p1"))
    async with database.transaction() as session:
        assert len(list(await session.scalars(select(FeedbackItem)))) == 5
        assert await counts(session) == before, "the counts are kept"
        await rebuild(session)
    async with database.transaction() as session:
        after = await counts(session)
        assert sum(n for k, n in after.items() if k.kind == ITEM) == 5
        assert sum(n for k, n in before.items() if k.kind == ITEM) == 10


async def test_sensitive_items_are_left_out_unless_asked_for(database: Database) -> None:
    async with database.transaction() as session:
        person = await contact(session)
        await new_item(session, person, sectors=[11], area="XY01", sensitive=True)
        await new_item(session, person, sectors=[11], area="XY01")
    async with database.transaction() as session:
        assert await grouped(session, SECTOR, ["code", "area_code"]) == [(("11", "XY01"), 1)]
        everything = CountFilter(include_sensitive=True)
        assert await grouped(session, SECTOR, ["code", "area_code"], everything) == [
            (("11", "XY01"), 2)
        ]
        assert await grouped(session, ITEM, []) == [((), 1)]
        assert await grouped(session, ITEM, [], everything) == [((), 2)]


async def test_grouped_filters_by_day_area_and_language(database: Database) -> None:
    async with database.transaction() as session:
        await build_mixed(session)
    async with database.transaction() as session:
        week = CountFilter(since=TODAY - timedelta(days=6), until=TODAY)
        by_day = dict(await grouped(session, ITEM, ["day"], week))
        # Days 0, 0, 0, 1, 2, 5, 6 ago (3 days ago is sensitive; 9 and 20 are outside).
        assert sum(by_day.values()) == 7
        assert max(by_day) == (TODAY,) and min(by_day) == (TODAY - timedelta(days=6),)
        area = CountFilter(area_code="XY02", include_sensitive=True)
        assert dict(await grouped(session, SECTOR, ["code"], area)) == {
            ("2",): 1,
            ("5",): 1,
            ("11",): 1,
        }
        arabic = CountFilter(language="ar")
        assert dict(await grouped(session, ITEM, ["area_code"], arabic)) == {
            ("XY01",): 1,
            ("XY02",): 2,
        }


async def test_summary_numbers(database: Database) -> None:
    async with database.transaction() as session:
        session.add(
            Place(
                external_id="XY01",
                kind=PlaceKind.ADM1,
                names={"en": "North Valley"},
                alt_names=[],
                adm1_code="XY01",
                adm1_name="North Valley",
                updated_by="test",
            )
        )
        person = await contact(session)
        answered = [
            await new_item(session, person, NOW - timedelta(days=1), sectors=[2], area="XY01"),
            await new_item(session, person, NOW - timedelta(days=2), sectors=[2, 3], area="XY01"),
            await new_item(session, person, NOW - timedelta(days=8), sectors=[3], area="XY02"),
        ]
        for item, hours in zip(answered, (2, 4, 6), strict=True):
            await move(session, item, S.ANSWERED, item.created_at + timedelta(hours=hours))
        waiting = await new_item(session, person, NOW, sectors=[5], language="ar")
        closed = await new_item(session, person, NOW, type_="appreciation")
        await move(session, closed, S.CLOSED, NOW)
        await new_item(session, person, NOW, sectors=[11], area="XY01", sensitive=True)
        await new_item(session, person, NOW - timedelta(days=40), sectors=[2])  # outside
        assert waiting.status == "new"

    window = Window.last_days(14, NOW)
    assert window.since == date(2026, 11, 8) and window.until == TODAY
    assert window.end - window.start == timedelta(days=14)
    async with database.transaction() as session:
        summary = await summarise(session, window)
        assert summary.total == 5
        assert summary.by_sector == {2: 2, 3: 2, 5: 1}
        assert summary.by_area == {"XY01": 2, "XY02": 1, "": 2}
        assert summary.by_language == {"en": 4, "ar": 1}
        assert summary.by_type == {"request": 4, "appreciation": 1}
        assert summary.by_status == {"answered": 3, "new": 1, "closed": 1}
        assert summary.sector_by_area == {
            (2, "XY01"): 2,
            (3, "XY01"): 1,
            (3, "XY02"): 1,
            (5, ""): 1,
        }
        assert summary.sector_by_day[2] == {
            TODAY - timedelta(days=1): 1,
            TODAY - timedelta(days=2): 1,
        }
        assert summary.total_by_day[TODAY] == 2
        assert summary.weeks == ["2026-W45", "2026-W46", "2026-W47"]
        assert summary.weeks == sorted({iso_week(day) for day in window.days})
        assert summary.total_by_week() == {"2026-W46": 1, "2026-W47": 4}
        assert summary.sector_by_week(3) == {"2026-W46": 1, "2026-W47": 1}
        assert summary.area_label("XY01") == "North Valley (XY01)"
        assert summary.area_label("XY02") == "XY02" and summary.area_label("") == "unknown area"
        response = summary.response
        assert (response.answered, response.waiting) == (3, 1)
        assert response.median == timedelta(hours=4) and response.p90 == timedelta(hours=6)
        assert summary.sensitive_response is None

        week = await summarise(session, Window.last_days(7, NOW))
        assert week.total == 4 and week.by_sector == {2: 2, 3: 1, 5: 1}
        assert week.response.answered == 2 and week.response.median == timedelta(hours=3)

        north = await summarise(session, window, area_code="XY01", include_sensitive=True)
        assert north.total == 3 and north.by_sector == {2: 2, 3: 1, 11: 1}
        assert north.sensitive_response is not None
        assert north.sensitive_response.waiting == 1 and north.response.answered == 2


async def test_concurrent_sessions_adding_to_one_counter_both_count(database: Database) -> None:
    """Two (and more) transactions incrementing the same row at once: none is lost. On
    SQLite the writers take turns; on PostgreSQL the upsert waits on the row."""
    row = key(SECTOR, "2")
    started = asyncio.Event()

    async def add(n: int, hold: float) -> None:
        async with database.transaction() as session:
            await add_counts(session, {row: n})
            started.set()
            await asyncio.sleep(hold)  # keep the transaction open while the others write

    async def later(n: int) -> None:
        await started.wait()
        await add(n, 0)

    await asyncio.gather(add(1, 0.2), later(10), later(100))
    async with database.transaction() as session:
        assert (await counts(session))[row] == 111
