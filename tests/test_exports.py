"""Exports: items as CSV and XLSX (pseudonymous, sensitive left out, formulas neutralised),
aggregates as HXL CSV from the rollups only."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from feedback.codes import CodeSet, correct
from feedback.exports import (
    AGGREGATE_COLUMNS,
    ITEM_HEADER,
    aggregate_rows,
    aggregates_csv,
    item_batches,
    items_xlsx,
    neutralise,
    write_items_csv,
)
from feedback.items import FeedbackItem, record_item
from feedback.queries import ItemFilter
from feedback.rollups import FeedbackCount
from messages.contacts import Contact, record_consent
from messages.shelters import Shelter, ShelterStatus
from storage.database import Database

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
CHAT_ID = 987654321


async def person(
    session: AsyncSession, pseudonym: str = "a1b2c3", chat_id: int = CHAT_ID
) -> Contact:
    return await record_consent(session, pseudonym, chat_id, "en", NOW - timedelta(days=30))


async def add_item(
    session: AsyncSession,
    contact: Contact,
    text: str,
    at: datetime,
    *,
    sectors: Iterable[int] = (),
    clusters: Iterable[str] = (),
    type: str = "request",
    sensitive: bool = False,
    urgent: bool = False,
    language: str | None = "en",
    area: tuple[str, str | None] | None = ("XY01", "Riverside"),
) -> FeedbackItem:
    """An item as the intake records it, with codes as a responder corrected them."""
    item = await record_item(session, contact.id, text, language, at, channel="telegram", area=area)
    codes = CodeSet(
        type=type,
        sectors=frozenset(sectors),
        clusters=frozenset(clusters),
        urgent=urgent,
        sensitive=sensitive,
    )
    await correct(session, item, codes, None, at)
    return item


@pytest.fixture
async def seeded(database: Database) -> dict[str, str]:
    """Four items: two ordinary, one with a formula-looking text, one sensitive."""
    async with database.transaction() as session:
        session.add(
            Shelter(
                external_id="SH-1",
                names={"en": "School"},
                latitude=1.0,
                longitude=1.0,
                status=ShelterStatus.OPEN,
                adm1_code="XY01",
                adm1_name="Riverside Province",
                updated_at=NOW,
                updated_by="test",
            )
        )
        amina = await person(session)
        other = await person(session, "ffee00", 111)
        day1, day2 = NOW - timedelta(days=2), NOW - timedelta(days=1)
        water = await add_item(session, amina, "No water since Monday", day1, sectors=[2, 4])
        shelter = await add_item(
            session, other, '=HYPERLINK("http://evil")', day2, sectors=[4], clusters=["shelter"]
        )
        rumour = await add_item(
            session,
            amina,
            "-they say the border closes",
            day2,
            type="rumour",
            area=None,
            language=None,
        )
        abuse = await add_item(
            session, other, "He asked me for sex for food", day2, sectors=[10], sensitive=True
        )
        return {
            "water": water.reference,
            "shelter": shelter.reference,
            "rumour": rumour.reference,
            "abuse": abuse.reference,
        }


def test_neutralise_quotes_every_formula_start() -> None:
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise(text) == "'" + text
    assert neutralise("water") == "water" and neutralise("") == ""
    assert neutralise("a=b") == "a=b"


async def csv_rows(database: Database, wanted: ItemFilter) -> list[dict[str, str]]:
    chunks: list[bytes] = []

    async def write(chunk: bytes) -> None:
        chunks.append(chunk)

    async with database.transaction() as session:
        count = await write_items_csv(session, wanted, write)
    body = b"".join(chunks)
    assert body.startswith(b"\xef\xbb\xbf"), "a byte-order mark for spreadsheets"
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert len(rows) == count
    return rows


async def test_items_csv_pseudonymous_without_sensitive_and_neutralised(
    database: Database, seeded: dict[str, str]
) -> None:
    rows = await csv_rows(database, ItemFilter())
    assert tuple(rows[0]) == ITEM_HEADER
    by_reference = {row["reference"]: row for row in rows}
    assert set(by_reference) == {seeded["water"], seeded["shelter"], seeded["rumour"]}
    water = by_reference[seeded["water"]]
    assert (water["sectors"], water["area_code"], water["area_name"]) == (
        "2;4",
        "XY01",
        "Riverside",
    )
    assert water["contact"] == "a1b2c3" and water["status"] == "new"
    assert water["created_at"] == (NOW - timedelta(days=2)).isoformat()
    assert by_reference[seeded["shelter"]]["text"] == '\'=HYPERLINK("http://evil")'
    assert by_reference[seeded["shelter"]]["clusters"] == "shelter"
    rumour = by_reference[seeded["rumour"]]
    assert rumour["text"] == "'-they say the border closes"
    assert rumour["area_code"] == "" and rumour["language"] == "" and rumour["type"] == "rumour"
    everything = "".join(",".join(row.values()) for row in rows)
    assert str(CHAT_ID) not in everything and "111" not in everything, "never chat ids"

    with_sensitive = await csv_rows(database, ItemFilter(include_sensitive=True))
    abuse = next(row for row in with_sensitive if row["reference"] == seeded["abuse"])
    assert abuse["sensitive"] == "yes" and abuse["sectors"] == "10"
    only_four = await csv_rows(database, ItemFilter(sector=4))
    assert [row["reference"] for row in only_four] == [seeded["water"], seeded["shelter"]]


async def test_items_stream_in_batches(database: Database, seeded: dict[str, str]) -> None:
    async with database.transaction() as session:
        batches = [rows async for rows in item_batches(session, ItemFilter(), batch=2)]
    assert [len(rows) for rows in batches] == [2, 1]
    assert [row[0] for rows in batches for row in rows] == [
        seeded["water"],
        seeded["shelter"],
        seeded["rumour"],
    ], "oldest first, each item once"


async def test_items_xlsx_cells_are_strings(database: Database, seeded: dict[str, str]) -> None:
    async with database.transaction() as session:
        body, count = await items_xlsx(session, ItemFilter())
    assert count == 3
    sheet = load_workbook(io.BytesIO(body)).active
    assert sheet is not None
    rows = list(sheet.iter_rows())
    assert tuple(c.value for c in rows[0]) == ITEM_HEADER
    assert all(c.data_type == "s" for row in rows[1:] for c in row if c.value is not None)
    texts = [row[ITEM_HEADER.index("text")].value for row in rows[1:]]
    assert '\'=HYPERLINK("http://evil")' in texts
    assert all(not str(t).startswith("=") for t in texts), "never a formula"
    assert seeded["abuse"] not in [row[0].value for row in rows]


async def test_aggregates_hxl_from_rollups_only(database: Database, seeded: dict[str, str]) -> None:
    async with database.transaction() as session:
        rows = await aggregate_rows(session)
        # The items go; the counts stay (aggregates are read from the rollups only).
        await session.execute(update(FeedbackItem).values(text="gone"))
        text = aggregates_csv(rows).decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == [name for name, _tag in AGGREGATE_COLUMNS]
    assert table[1] == [
        "#date",
        "#adm1+name",
        "#adm1+code",
        "#sector+code",
        "#sector+name",
        "#sector+cluster+code",
        "#sector+cluster+name",
        "#meta+type",
        "#language+code",
        "#status",
        "#indicator+num",
    ]
    day1 = (NOW - timedelta(days=2)).date().isoformat()
    day2 = (NOW - timedelta(days=1)).date().isoformat()
    data = [dict(zip(table[0], row, strict=True)) for row in table[2:]]
    assert [(r["date"], r["sector_code"], r["items"]) for r in data] == [
        (day1, "2", "1"),
        (day1, "4", "1"),
        (day2, "4", "1"),
    ], "sector 10 (the sensitive item) is never counted"
    assert data[0]["adm1_name"] == "Riverside Province", "area names from the gazetteer"
    assert data[0]["sector_name"] == "Shelter and Non-food Items"
    assert "No water" not in text and "sex" not in text

    async with database.transaction() as session:
        clusters = await aggregate_rows(session, by="cluster")
        totals = await aggregate_rows(session, by="item", since=(NOW - timedelta(days=1)).date())
        nowhere = await aggregate_rows(session, area_code="ZZ99")
    assert [(r.cluster, r.sector, r.items) for r in clusters] == [("shelter", None, 1)]
    assert sorted((r.adm1_code, r.type, r.items) for r in totals) == [
        ("", "rumour", 1),
        ("XY01", "request", 1),
    ]
    assert nowhere == []


async def test_aggregates_never_read_sensitive_rows(database: Database) -> None:
    async with database.transaction() as session:
        session.add(
            FeedbackCount(
                day=date(2026, 5, 1),
                kind="sector",
                code="10",
                area_code="XY01",
                language="en",
                type="request",
                status="new",
                sensitive=True,
                items=3,
            )
        )
        await session.flush()
        assert await aggregate_rows(session) == []
