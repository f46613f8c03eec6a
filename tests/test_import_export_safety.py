"""Spreadsheets in and out: no export path writes a cell a spreadsheet would run as a formula,
and no malformed import file raises or changes anything.

Exports: the items (CSV and XLSX), the aggregates (HXL CSV) and the manifests (CSV and XLSX),
with text that people typed or imports wrote starting with = + - @, a tab, a carriage return,
blanks before them, or their full-width forms. Imports (shelters, places, consulates): wrong
encodings, binary garbage, workbooks (real, zip-bomb-like, or not a zip at all), huge cells,
too many columns, deep or huge JSON, missing headers and formulas in cells each give a clear
problem and leave the session untouched; random CSV bodies (hypothesis) never raise.
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from evacuation.manifests import HEADER, UNASSIGNED, manifest_rows, to_csv, to_xlsx
from evacuation.registrations import start_registration, submit
from feedback.exports import (
    aggregate_rows,
    aggregates_csv,
    items_xlsx,
    neutralise,
    write_items_csv,
)
from feedback.queries import ItemFilter
from messages.contacts import record_consent
from messages.importing import (
    MAX_BYTES,
    MAX_COLUMNS,
    MAX_REPORTED,
    ImportKind,
    ImportResult,
    import_bytes,
    import_file,
)
from messages.places import Place, PlaceKind
from messages.shelters import Shelter, ShelterStatus
from storage.database import Database
from tests.test_exports import add_item
from tests.test_registrations import complete

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)

# What a spreadsheet may run as a formula, and what merely looks like it.
DANGEROUS = (
    '=HYPERLINK("http://evil","x")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
    "  =1+1",
    "\n@SUM(1)",
    '\uff1dHYPERLINK("http://evil")',  # full-width equals sign
    "\uff0b1",
    "\uff0d1",
    "\uff20SUM(1)",
)
SIGNS = set("=+-@\t\r\uff1d\uff0b\uff0d\uff20")


def runs(cell: object) -> bool:
    """Whether a spreadsheet could read this cell as a formula."""
    if not isinstance(cell, str) or not cell:
        return False
    return cell[0] in SIGNS or cell.lstrip()[:1] in SIGNS


# --- neutralise ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", DANGEROUS)
def test_every_formula_start_is_quoted(text: str) -> None:
    assert neutralise(text) == "'" + text


@pytest.mark.parametrize("text", ["water", "", "a=b", "12", "Ouest", "'=quoted", "e-mail"])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert neutralise(text) == text


@settings(max_examples=300, derandomize=True, database=None)
@given(st.text())
def test_neutralise_never_lets_a_formula_through(text: str) -> None:
    quoted = neutralise(text)
    assert quoted in (text, "'" + text), "only ever a leading apostrophe"
    assert not runs(quoted)
    assert neutralise(quoted) == quoted, "quoting twice changes nothing"


# --- exports ---------------------------------------------------------------------------------


async def seed_exports(database: Database) -> None:
    """Items, an area name and registrations whose texts all start like formulas."""
    async with database.transaction() as session:
        session.add(
            Shelter(
                external_id="SH-1",
                names={"en": "School"},
                latitude=1.0,
                longitude=1.0,
                status=ShelterStatus.OPEN,
                adm1_code="XY01",
                adm1_name='=HYPERLINK("http://evil")',  # written past the importer's checks
                updated_at=NOW,
                updated_by="test",
            )
        )
        point = Place(
            external_id="DP-1",
            kind=PlaceKind.DEPARTURE_POINT,
            names={"en": "@SUM(A1) gate"},
            alt_names=[],
            latitude=10.0,
            longitude=20.0,
            updated_by="test",
        )
        session.add(point)
        await session.flush()
        for n, text in enumerate(DANGEROUS):
            contact = await record_consent(session, f"p{n}", 1000 + n, "en", NOW)
            await add_item(
                session,
                contact,
                text,
                NOW - timedelta(hours=n + 1),
                sectors=[2],
                area=("XY01", text),
            )
            registration = complete(
                await start_registration(session, contact.id, NOW),
                destination=text,
            )
            registration.location_text = text
            registration.departure_point_id = point.id if n % 2 else None
            await submit(session, registration, NOW)


def csv_cells(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def xlsx_cells(data: bytes) -> list[tuple[object, str]]:
    """(value, data type) of every cell: "f" would be a formula."""
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    return [(cell.value, cell.data_type) for row in sheet.iter_rows() for cell in row]


async def test_items_csv_and_xlsx_quote_every_formula(database: Database) -> None:
    await seed_exports(database)
    chunks: list[bytes] = []

    async def write(chunk: bytes) -> None:
        chunks.append(chunk)

    async with database.transaction() as session:
        count = await write_items_csv(session, ItemFilter(), write)
        workbook, xlsx_count = await items_xlsx(session, ItemFilter())
    assert count == xlsx_count == len(DANGEROUS)
    rows = csv_cells(b"".join(chunks))
    texts = {row[13] for row in rows[1:]}
    assert texts == {"'" + text for text in DANGEROUS}
    assert {row[3] for row in rows[1:]} == {"'" + text for text in DANGEROUS}, "area names too"
    assert not [cell for row in rows for cell in row if runs(cell)]
    cells = xlsx_cells(workbook)
    assert all(kind == "s" for value, kind in cells if value is not None), "text cells only"
    assert not [value for value, _kind in cells if runs(value)]


async def test_the_hxl_aggregates_quote_every_formula(database: Database) -> None:
    await seed_exports(database)
    async with database.transaction() as session:
        rows = await aggregate_rows(session, by="item")
    table = csv_cells(aggregates_csv(rows))
    assert table[1][0] == "#date", "the hashtag row"
    names = {row[1] for row in table[2:]}
    assert names == {'\'=HYPERLINK("http://evil")'}
    assert not [cell for row in table for cell in row if runs(cell)]


@pytest.mark.parametrize("point", ["DP-1", UNASSIGNED])
async def test_manifests_quote_every_formula(database: Database, point: str) -> None:
    await seed_exports(database)
    async with database.transaction() as session:
        rows = await manifest_rows(session, point)
    assert rows
    table = csv_cells(to_csv(rows))
    assert table[0] == list(HEADER)
    column = {name: i for i, name in enumerate(HEADER)}
    for row in table[1:]:
        assert row[column["destination"]].startswith("'")
        assert row[column["location"]].startswith("'")
        assert row[column["phone"]] == "+254712345678", "a phone number stays a phone number"
    assert not [cell for row in table for cell in row if runs(cell) and not cell[1:].isdigit()]
    cells = xlsx_cells(to_xlsx(rows, point))
    assert not [value for value, kind in cells if kind == "f"], "no formula cell"
    texts = [value for value, kind in cells if isinstance(value, str)]
    assert not [text for text in texts if runs(text) and not text[1:].isdigit()]


# --- imports: malformed files -----------------------------------------------------------------


class _Touched(Exception):
    """The importer went on to write: allowed only for a file without problems."""


class _WatchedSession:
    def __getattr__(self, name: str) -> object:
        raise _Touched(name)


async def try_import(data: bytes, filename: str, kind: str = "shelters") -> ImportResult | None:
    """The result of a file with problems; None when it reached the writing step."""
    session = cast(AsyncSession, _WatchedSession())
    try:
        return await import_bytes(session, kind, data, filename=filename, by="t", now=NOW)
    except _Touched:
        return None


def problems(result: ImportResult | None) -> list[str]:
    assert result is not None, "a file with problems never reaches the session"
    assert not result.ok
    return [str(problem) for problem in result.problems]


def workbook_bytes() -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id", "name", "latitude", "longitude", "status"])
    sheet.append(["S1", '=HYPERLINK("http://evil")', 1, 1, "open"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def zip_bomb_bytes() -> bytes:
    """A small zip that would unpack to 200 MB of XML."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as member:
            for _ in range(200):
                member.write(b"<c>" + b"0" * (1024 * 1024) + b"</c>")
    return buffer.getvalue()


HEADER_ROW = "id,name,latitude,longitude,status\n"


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [
        (workbook_bytes(), "shelters.xlsx", "a zip file, probably an Excel (.xlsx)"),
        (zip_bomb_bytes(), "bomb.xlsx", "a zip file, probably an Excel (.xlsx)"),
        (b"\x13\x37" * 500 + b"\xff", "not-a-zip.xlsx", "not UTF-8 text"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "old.xls", "not a CSV or JSON"),
        (HEADER_ROW.encode("utf-16"), "utf16.csv", "not UTF-8 text"),
        (HEADER_ROW.encode("cp1256") + "S1,ملجأ,1,1,open\n".encode("cp1256"), "ar.csv", "UTF-8"),
        (bytes(range(256)) * 8, "garbage.csv", "not UTF-8 text"),
        (b"id,name\x00,latitude\n", "nul.csv", "not a text file: it contains NUL bytes"),
        (b"   \n\n\t", "blank.csv", "the file is empty"),
        (b"# only a comment\n", "comment.csv", "the file has no header row"),
        (b"S1,Hall,1,1,open\n", "noheader.csv", "no column for external_id"),
        (
            (HEADER_ROW + "S1," + "x" * 200_000 + ",1,1,open\n").encode(),
            "huge-cell.csv",
            "line 2: not valid CSV: field larger than field limit (131072) (one cell is longer",
        ),
        (
            (",".join(f"c{n}" for n in range(MAX_COLUMNS + 1)) + "\n").encode(),
            "wide.csv",
            f"the file has {MAX_COLUMNS + 1} columns; at most {MAX_COLUMNS}",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "deep.json", "not valid JSON: nested too deeply"),
        (b'[{"id": ' + b"9" * 5000 + b"}]", "number.json", "not valid JSON: a number is too long"),
        (b'{"shelters": "nope"}', "wrong.json", "expected a list of shelters"),
    ],
)
async def test_malformed_files_get_a_clear_problem_and_change_nothing(
    data: bytes, filename: str, expected: str
) -> None:
    found = problems(await try_import(data, filename))
    assert any(expected in problem for problem in found), found


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("name", '=HYPERLINK("http://evil","Shelter")'),
        ("name", "@SUM(A1:A2)"),
        ("name", "+cmd|' /C calc'!A0"),
        ("name", "-2+3+cmd|' /C calc'!A0"),
        ("name", "\t=1+1"),
        ("name", '\uff1dHYPERLINK("x")'),
        ("notes", "=1+1"),
        ("address", "@here"),
        ("id", "=A1"),
    ],
)
async def test_a_formula_in_any_text_cell_is_refused(column: str, value: str) -> None:
    values = {"id": "S1", "name": "Hall", "notes": "", "address": ""}
    values[column] = value
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "name", "notes", "address", "latitude", "longitude", "status"])
    writer.writerow(
        [values["id"], values["name"], values["notes"], values["address"], 1, 1, "open"]
    )
    found = problems(await try_import(buffer.getvalue().encode(), "f.csv"))
    assert any("starts like a spreadsheet formula" in problem for problem in found), found


async def test_formulas_are_refused_in_place_names_and_mission_emails() -> None:
    places = 'id,kind,name,alt_names\nP1,town,Riverside,=HYPERLINK("x");River\n'
    found = problems(await try_import(places.encode(), "places.csv", "places"))
    assert any("starts like a spreadsheet formula" in problem for problem in found), found
    missions = "id,country,kind,name,email\nM1,SY,embassy,Embassy,=cmd|x@evil.org\n"
    found = problems(await try_import(missions.encode(), "missions.csv", "consulates"))
    assert any("starts like a spreadsheet formula" in problem for problem in found), found


@pytest.mark.parametrize("text", ["- bring your ID", "+ water and food", "Hall -2", "Gate @ north"])
async def test_ordinary_dashes_and_plus_signs_are_kept(text: str, database: Database) -> None:
    data = f"{HEADER_ROW.strip()},notes\nS1,Hall,1,1,open,{text}\n".encode()
    async with database.sessions() as session:
        result = await import_bytes(session, "shelters", data, filename="f.csv", by="t", now=NOW)
        assert result.ok, result.report()
        await session.commit()


async def test_one_formula_among_good_rows_writes_nothing(database: Database) -> None:
    rows = "".join(f"S{n},Hall {n},1,1,open\n" for n in range(50)) + "S99,=1+1,1,1,open\n"
    async with database.sessions() as session:
        result = await import_bytes(
            session, "shelters", (HEADER_ROW + rows).encode(), filename="f.csv", by="t", now=NOW
        )
        assert not result.ok
        assert [str(p) for p in result.problems] == [
            "row 52, column 'name': '=1+1' starts like a spreadsheet formula: keep the values, "
            "not the formulas, or reword the start"
        ]
    async with database.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Shelter)) == 0


async def test_a_file_over_the_size_limit_is_not_read(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    with big.open("wb") as file:
        file.truncate(MAX_BYTES + 1)  # sparse: nothing is written to disk
    session = cast(AsyncSession, _WatchedSession())
    result = await import_file(session, "shelters", big, now=NOW)
    assert [str(p) for p in result.problems] == ["the file is 20 MB; at most 20 MB"]


async def test_the_report_of_a_broken_million_row_file_stays_short() -> None:
    rows = "".join(f"S{n},Hall,1,1,nonsense\n" for n in range(1000))
    result = await try_import((HEADER_ROW + rows).encode(), "f.csv")
    assert result is not None and len(result.problems) == 1000
    lines = result.report().splitlines()
    assert len(lines) == MAX_REPORTED + 2
    assert lines[MAX_REPORTED] == f"… and {1000 - MAX_REPORTED} more"
    assert lines[-1] == "shelters: nothing imported (1000 problems)"


# --- imports: random bodies ------------------------------------------------------------------

KNOWN_HEADERS = ("id", "name", "name (ar)", "latitude", "longitude", "status", "#geo+lat", "")
CELLS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["open", "full", "1", "-1", "46,2", "=1+1", '"', '""', "\n", "\x00", ";"]),
    st.floats(allow_nan=True).map(str),
)


@st.composite
def csv_bodies(draw: st.DrawFn) -> str:
    """A header of known and random names, then rows of random cells, any delimiter."""
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    width = draw(st.integers(1, 8))
    header = [
        draw(st.one_of(st.sampled_from(KNOWN_HEADERS), st.text(max_size=12))) for _ in range(width)
    ]
    rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=width + 2), max_size=6))
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


RANDOM = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@RANDOM
@given(
    body=st.one_of(csv_bodies(), st.text(max_size=300)),
    kind=st.sampled_from(list(ImportKind)),
    filename=st.sampled_from(["f.csv", "f.json", "f.txt", "f", "f.tsv"]),
)
async def test_random_csv_never_raises_and_writes_only_a_clean_file(
    body: str, kind: ImportKind, filename: str
) -> None:
    result = await try_import(body.encode(), filename, kind.value)
    if result is not None:  # None: no problem found, it went on to write
        assert not result.ok and result.problems
        assert result.report().endswith("nothing imported" + f" ({len(result.problems)} problems)")


@RANDOM
@given(data=st.binary(max_size=400), filename=st.sampled_from(["f.csv", "f.json", "f.xlsx"]))
async def test_random_bytes_never_raise(data: bytes, filename: str) -> None:
    result = await try_import(data, filename)
    assert result is None or result.problems
