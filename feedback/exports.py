"""Exports for partners and analysts: feedback items as CSV or XLSX, aggregates as HXL CSV.

Items carry the contact's pseudonym (the keyed hash on Contact), never a chat id or a name.
Sensitive items are left out unless the caller's role allows them (the caller decides and
sets ``ItemFilter.include_sensitive``). Every text cell a spreadsheet would run as a formula
is quoted (see `neutralise`). Items are read in batches by id (a keyset), so an export of
millions of items never holds them all; the CSV is written batch by batch.

Aggregates are read from the rollup counts only (feedback/rollups.py), never from the items,
and never count sensitive items: small counts of sensitive reports by area and day could
point at a person.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from feedback.items import FeedbackItem, ItemCode
from feedback.queries import ItemFilter, filtered
from feedback.rollups import CLUSTER, ITEM, SECTOR, CountFilter, grouped
from feedback.taxonomy import taxonomy
from messages.areas import area_names
from messages.contacts import Contact

if TYPE_CHECKING:
    from openpyxl.cell.cell import Cell as SheetCell
    from openpyxl.styles import Font

BATCH = 1000

# OWASP "CSV Injection": a cell starting with = + - @ (or a tab or carriage return, which
# some spreadsheets skip before reading a formula) is run as a formula; a leading
# apostrophe makes it text. People typed these texts, so every text cell is quoted.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Also quoted, as cheap insurance: these signs behind leading blanks (some importers trim
# them) and their full-width forms (East Asian input methods type them; some spreadsheets
# read them as the ASCII signs).
_FORMULA_SIGNS = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")

Cell = str | int

ITEM_HEADER = (
    "reference",
    "created_at",
    "area_code",
    "area_name",
    "language",
    "type",
    "sectors",
    "clusters",
    "urgent",
    "sensitive",
    "status",
    "answered_at",
    "channel",
    "text",
    "contact",
)

_ITEM_COLUMNS = (
    FeedbackItem.id,
    FeedbackItem.reference,
    FeedbackItem.created_at,
    FeedbackItem.area_code,
    FeedbackItem.area_name,
    FeedbackItem.language,
    FeedbackItem.type,
    FeedbackItem.urgent,
    FeedbackItem.sensitive,
    FeedbackItem.status,
    FeedbackItem.answered_at,
    FeedbackItem.channel,
    FeedbackItem.text,
    Contact.pseudonym,
)


def neutralise(text: str) -> str:
    """The text as a spreadsheet shows it, never as a formula it would run."""
    if text.startswith(FORMULA_START) or text.lstrip()[:1] in _FORMULA_SIGNS:
        return "'" + text
    return text


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat(timespec="seconds")


def _yes(value: bool | None) -> str:
    return "yes" if value else "no"


# --- items ----------------------------------------------------------------------------------


async def item_batches(
    session: AsyncSession, wanted: ItemFilter, *, batch: int = BATCH
) -> AsyncIterator[list[list[str]]]:
    """The export rows of the wanted items, oldest first, `batch` rows at a time; every cell
    is text, already neutralised."""
    last_id = 0
    while True:
        columns = cast(Select[Any], select(*_ITEM_COLUMNS))
        query = filtered(columns.join(Contact, Contact.id == FeedbackItem.contact_id), wanted)
        rows = (
            await session.execute(
                query.where(FeedbackItem.id > last_id).order_by(FeedbackItem.id).limit(batch)
            )
        ).all()
        if not rows:
            return
        codes = await _codes(session, [row[0] for row in rows])
        yield [_item_row(row, codes.get(row[0], ([], []))) for row in rows]
        last_id = rows[-1][0]
        if len(rows) < batch:
            return


async def _codes(
    session: AsyncSession, item_ids: Sequence[int]
) -> dict[int, tuple[list[str], list[str]]]:
    codes: dict[int, tuple[list[str], list[str]]] = {}
    rows = await session.execute(
        select(ItemCode.item_id, ItemCode.scheme, ItemCode.value)
        .where(ItemCode.item_id.in_(item_ids))
        .order_by(ItemCode.item_id, ItemCode.scheme, ItemCode.value)
    )
    for item_id, scheme, value in rows:
        sectors, clusters = codes.setdefault(item_id, ([], []))
        (sectors if scheme == "sector" else clusters).append(value)
    return codes


def _item_row(row: Any, codes: tuple[list[str], list[str]]) -> list[str]:
    (
        _id,
        reference,
        created_at,
        area_code,
        area_name,
        language,
        kind,
        urgent,
        sensitive,
        status,
        answered_at,
        channel,
        text,
        pseudonym,
    ) = row
    sectors, clusters = codes
    cells = [
        reference,
        _iso(created_at),
        area_code or "",
        area_name or "",
        language or "",
        kind or "",
        ";".join(sorted(sectors, key=int)),
        ";".join(clusters),
        _yes(urgent),
        _yes(sensitive),
        status,
        _iso(answered_at),
        channel,
        text or "",
        pseudonym,
    ]
    return [neutralise(str(cell)) for cell in cells]


def _csv_bytes(rows: Sequence[Sequence[Cell]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("utf-8")


async def write_items_csv(
    session: AsyncSession, wanted: ItemFilter, write: Callable[[bytes], Awaitable[None]]
) -> int:
    """Write the items as UTF-8 CSV with a byte-order mark (spreadsheets then read non-Latin
    scripts), batch by batch; returns the number of items."""
    await write(b"\xef\xbb\xbf" + _csv_bytes([ITEM_HEADER]))
    count = 0
    async for rows in item_batches(session, wanted):
        await write(_csv_bytes(rows))
        count += len(rows)
    return count


async def items_xlsx(session: AsyncSession, wanted: ItemFilter) -> tuple[bytes, int]:
    """The items as an XLSX workbook (written in openpyxl's write-only mode, row by row);
    every cell is a string cell, so no cell is ever a formula."""
    # openpyxl (and the numpy it loads) costs every process ~15 MB: imported when used.
    from openpyxl import Workbook
    from openpyxl.cell.cell import WriteOnlyCell
    from openpyxl.styles import Font

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("feedback items")
    bold = Font(bold=True)

    def cell(value: str, font: Font | None = None) -> SheetCell:
        written = WriteOnlyCell(sheet, value=value)
        written.data_type = "s"
        if font is not None:
            written.font = font
        return written

    sheet.freeze_panes = "A2"
    sheet.append([cell(name, bold) for name in ITEM_HEADER])
    count = 0
    async for rows in item_batches(session, wanted):
        for row in rows:
            sheet.append([cell(value) for value in row])
        count += len(rows)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue(), count


# --- aggregates -----------------------------------------------------------------------------

# HXL hashtags, from the HXL hashtag dictionary 1.1 (https://hxlstandard.org/standard/1-1final/
# dictionary/): #date, #adm1 +name/+code, #sector (+code/+name; the MCOF sector, and with
# +cluster the IASC cluster), #meta (+type: the feedback type), #status, #indicator +num (the
# count). #language is not a core hashtag of 1.1; HXL accepts others with the same syntax.
AGGREGATE_COLUMNS = (
    ("date", "#date"),
    ("adm1_name", "#adm1+name"),
    ("adm1_code", "#adm1+code"),
    ("sector_code", "#sector+code"),
    ("sector_name", "#sector+name"),
    ("cluster_code", "#sector+cluster+code"),
    ("cluster_name", "#sector+cluster+name"),
    ("feedback_type", "#meta+type"),
    ("language", "#language+code"),
    ("status", "#status"),
    ("items", "#indicator+num"),
)
AGGREGATE_KINDS = {"sector": SECTOR, "cluster": CLUSTER, "item": ITEM}


@dataclass(frozen=True)
class AggregateRow:
    day: date
    adm1_code: str  # "" unknown
    adm1_name: str
    sector: int | None
    cluster: str | None
    type: str
    language: str  # "" unknown
    status: str
    items: int

    def to_json(self) -> dict[str, Cell | None]:
        sectors, clusters = taxonomy().sectors, taxonomy().clusters
        return {
            "date": self.day.isoformat(),
            "adm1_name": self.adm1_name or None,
            "adm1_code": self.adm1_code or None,
            "sector_code": self.sector,
            "sector_name": None if self.sector is None else sectors.get(self.sector),
            "cluster_code": self.cluster,
            "cluster_name": None if self.cluster is None else clusters.get(self.cluster),
            "feedback_type": self.type,
            "language": self.language or None,
            "status": self.status,
            "items": self.items,
        }


async def aggregate_rows(
    session: AsyncSession,
    *,
    by: str = "sector",
    since: date | None = None,
    until: date | None = None,
    area_code: str | None = None,
) -> list[AggregateRow]:
    """Item counts per day, area, sector (or cluster; or neither with by="item"), feedback
    type, language and status, from the rollups. Sensitive items are never counted here."""
    kind = AGGREGATE_KINDS[by]
    where = CountFilter(since=since, until=until, area_code=area_code, include_sensitive=False)
    columns = ["day", "area_code", "code", "type", "language", "status"]
    names = await area_names(session)
    rows = [
        AggregateRow(
            day=day,
            adm1_code=area,
            adm1_name=names.get(area, ""),
            sector=int(code) if kind == SECTOR else None,
            cluster=code if kind == CLUSTER else None,
            type=kind_of_feedback,
            language=language,
            status=status,
            items=count,
        )
        for (day, area, code, kind_of_feedback, language, status), count in await grouped(
            session, kind, columns, where
        )
    ]
    return sorted(
        rows,
        key=lambda r: (r.day, r.adm1_code, r.sector or 0, r.cluster or "", r.type, r.language),
    )


def aggregates_csv(rows: Sequence[AggregateRow]) -> bytes:
    """CSV with the HXL hashtag row under the header row (UTF-8 with a byte-order mark)."""
    table: list[list[Cell]] = [
        [name for name, _tag in AGGREGATE_COLUMNS],
        [tag for _name, tag in AGGREGATE_COLUMNS],
    ]
    for row in rows:
        record = row.to_json()
        table.append(
            [
                value if isinstance(value, int) else neutralise(value or "")
                for value in (record[name] for name, _tag in AGGREGATE_COLUMNS)
            ]
        )
    return b"\xef\xbb\xbf" + _csv_bytes(table)
