"""Importing shelters, places and missions from CSV (with or without HXL) and JSON: all or
nothing, with a report naming each problem by the row a person sees in their spreadsheet.
Storage tests run on SQLite and PostgreSQL; the command runs in a subprocess."""

from __future__ import annotations

import json
import sqlite3
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from messages.consulates import Mission, MissionKind, missions_for
from messages.importing import (
    FIELDS,
    ImportKind,
    ImportResult,
    column_names,
    import_bytes,
    import_file,
)
from messages.places import PlaceKind, find_place
from messages.shelters import (
    Shelter,
    ShelterChange,
    ShelterStatus,
    find_shelter,
    shelter_history,
)
from storage.base import Base
from storage.database import Database
from tests.test_cli import run_cli

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)

SHELTERS_HXL = (
    "# Test shelters, fictional.\n"
    "id,Name,Name (ar),notes,latitude,longitude,capacity,occupancy,status,services,phone,colour\n"
    "#loc+code,#loc+name+i_en,#loc+name+i_ar,#description+i_en,#geo+lat,#geo+lon,#capacity,"
    "#population,#status,#service,#contact+phone,\n"
    "S1,Riverside Hall,قاعة ريفرسايد,Bring blankets,46.1840,6.1390,300,180,open,water; food,"
    "+000 555 0101,blue\n"
    'S2,"School, Riverside",مدرسة,,46.1975,6.1418,120,120,Full,Step-free access|women_children,,'
    "red\n"
)


async def _import(
    database: Database, kind: ImportKind, text: str, filename: str = "file.csv"
) -> ImportResult:
    """Import as the command does: commit only a clean result."""
    async with database.sessions() as session:
        result = await import_bytes(
            session, kind, text.encode(), filename=filename, by=f"import:{filename}", now=NOW
        )
        if result.ok:
            await session.commit()
    return result


async def _count(database: Database, model: type[Base]) -> int:
    async with database.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def _messages(result: ImportResult) -> list[str]:
    return [str(problem) for problem in result.problems]


async def test_csv_with_hxl_row_imports_and_updates(database: Database) -> None:
    result = await _import(database, ImportKind.SHELTERS, SHELTERS_HXL, "shelters.csv")
    assert result.ok, result.report()
    assert (result.added, result.updated) == (2, 0)
    assert result.summary() == "shelters: 2 added, 0 updated"
    assert [str(w) for w in result.warnings] == ["column 'colour': not a known column; ignored"]
    async with database.transaction() as session:
        hall = await find_shelter(session, "S1")
        assert hall is not None
        assert hall.names == {"en": "Riverside Hall", "ar": "قاعة ريفرسايد"}
        assert hall.notes == {"en": "Bring blankets"}
        assert (hall.latitude, hall.longitude) == (46.184, 6.139)
        assert (hall.capacity, hall.occupancy, hall.status) == (300, 180, ShelterStatus.OPEN)
        assert hall.services == ["water", "food"]
        assert hall.contact_phone == "+000 555 0101"
        assert (hall.updated_at, hall.updated_by) == (NOW, "import:shelters.csv")
        [change] = await shelter_history(session, hall)
        assert (change.by, change.at, change.status, change.occupancy) == (
            "import:shelters.csv",
            NOW,
            ShelterStatus.OPEN,
            180,
        )
        school = await find_shelter(session, "S2")
        assert school is not None and school.names["en"] == "School, Riverside"
        assert school.status is ShelterStatus.FULL
        assert school.services == ["step_free", "women_children"], "labels work as keys"
        assert school.notes == {} and school.contact_phone is None
    # The same ids again: updated, not duplicated; each import adds a history row.
    again = await _import(database, ImportKind.SHELTERS, SHELTERS_HXL.replace(",180,", ",200,"))
    assert (again.added, again.updated) == (0, 2)
    assert await _count(database, Shelter) == 2
    async with database.transaction() as session:
        hall = await find_shelter(session, "S1")
        assert hall is not None and hall.occupancy == 200
        assert len(await shelter_history(session, hall)) == 2


async def test_tags_win_over_headers(database: Database) -> None:
    text = (
        "code,what,where north,where east,capacity,state\n"
        "#loc+code,#loc+name,#geo+lat,#geo+lon,#population,#status\n"
        "T1,Tagged,46.2,6.1,40,open\n"
    )
    result = await _import(database, ImportKind.SHELTERS, text)
    assert result.ok, result.report()
    async with database.transaction() as session:
        shelter = await find_shelter(session, "T1")
        assert shelter is not None
        assert shelter.occupancy == 40 and shelter.capacity is None, "#population is occupancy"
        assert shelter.names == {"en": "Tagged"}


async def test_headers_alone_semicolons_and_decimal_commas(database: Database) -> None:
    text = (
        "ID;Name;Name_fa-AF;Latitude;Longitude;Status;Capacity\n"
        'H1;Hall;تالار;46,2044;6,1432;OPEN;"1 200"\n'
    )
    result = await _import(database, ImportKind.SHELTERS, text)
    assert result.ok, result.report()
    async with database.transaction() as session:
        shelter = await find_shelter(session, "H1")
        assert shelter is not None
        assert shelter.names == {"en": "Hall", "fa-AF": "تالار"}
        assert (shelter.latitude, shelter.longitude, shelter.capacity) == (46.2044, 6.1432, 1200)


async def test_json_list_or_object(database: Database) -> None:
    rows = [
        {"id": "J1", "name": {"en": "Gym", "uk": "Спортзал"}, "lat": 46.2, "lon": 6.1,
         "status": "open", "services": ["water", "wifi"], "capacity": 50.0},
        {"id": "J3", "name": "Tent", "lat": 46.21, "lon": 6.11, "status": "full"},
    ]  # fmt: skip
    result = await _import(database, ImportKind.SHELTERS, json.dumps(rows), "list.json")
    assert result.ok, result.report()
    assert result.added == 2
    tagged = [
        {"#loc+code": "J2", "#loc+name+i_ar": "قاعة", "#geo+lat": "46.3", "#geo+lon": "6.2",
         "#status": "closed"},
    ]  # fmt: skip
    wrapped = json.dumps({"shelters": tagged})
    assert (await _import(database, ImportKind.SHELTERS, wrapped, "wrapped.json")).added == 1
    again = await _import(database, ImportKind.SHELTERS, json.dumps(rows[:1]), "again.json")
    assert (again.added, again.updated) == (0, 1)
    async with database.transaction() as session:
        gym = await find_shelter(session, "J1")
        assert gym is not None and gym.names == {"en": "Gym", "uk": "Спортзал"}
        assert gym.services == ["water", "wifi"] and gym.capacity == 50
        hall = await find_shelter(session, "J2")
        assert hall is not None and hall.names == {"ar": "قاعة"}
        assert hall.status is ShelterStatus.CLOSED


async def test_one_bad_row_means_nothing_is_written(database: Database) -> None:
    text = SHELTERS_HXL + "S3,Third,,,195.5,6.1,10,2,open,,,\n"
    result = await _import(database, ImportKind.SHELTERS, text)
    assert not result.ok
    assert _messages(result) == [
        "row 6: impossible coordinates 195.5, 6.1 (latitude is -90 to 90, longitude -180 to 180)"
    ]
    assert await _count(database, Shelter) == 0
    assert await _count(database, ShelterChange) == 0
    assert "nothing imported (1 problems)" in result.report()


async def test_row_problems_are_named_by_spreadsheet_row(database: Database) -> None:
    text = (
        "# a comment line, counted as a spreadsheet row\n"
        "\n"
        "id,name,name_xx,latitude,longitude,status,capacity,occupancy,services,phone\n"
        "#loc+code,#loc+name,,#geo+lat,#geo+lon,#status,#capacity,#population,#service,\n"
        "A,Alpha,,46.2,6.1,opened,10,2,water,+000 1\n"
        "B,Beta,,6.1,46.2x,open,lots,-3,spa,call us\n"
        "C,,,46.2,6.1,open,,,,\n"
        "A,Alpha again,,46.2,6.1,open,,,,\n"
        "D,Delta,,120.5,30.2,open,,,,\n"
        "E,Echo,,0,0,open,0,,,\n"
        "F,Foxtrot,,46.2,,open,,,,\n"
        'G,"Golf",x,46.2,6.1,open,,,,,extra\n'
    )
    result = await _import(database, ImportKind.SHELTERS, text)
    assert _messages(result) == [
        "column 'name_xx': 'xx' is not a language the bot knows (known: "
        "en, fr, es, ar, fa, fa-AF, ps, ur, bn, uk, ru, tr, sw, so, am, ti, ha, ht, my)",
        "row 5, column 'status': 'opened' is not one of: open, full, closed",
        "row 6, column 'longitude': must be a number of degrees such as 46.2044, not '46.2x'",
        "row 6, column 'capacity': must be a whole number, not 'lots'",
        "row 6, column 'occupancy': must be 0 or more, not -3",
        "row 6, column 'services': unknown service 'spa' (known: water, food, medical, "
        "sanitation, step_free, women_children, pets, charging, wifi, psychosocial)",
        "row 6, column 'phone': 'call us' is not a phone number (digits, spaces, + - ( ) only)",
        "row 7, column 'name': needs a name",
        "row 8: external id 'A' is also on row 5",
        "row 9, column 'latitude': impossible latitude 120.5: are latitude and longitude swapped?",
        "row 10, column 'capacity': is 0: leave the cell empty when the capacity is not known",
        "row 10: coordinates 0, 0 are almost always missing values: fill them in",
        "row 11, column 'longitude': is required",
        "row 12: has 11 cells but the header has 10: is a value with a comma missing its quotes?",
    ]
    assert await _count(database, Shelter) == 0


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (b"", "empty.csv", "the file is empty"),
        (b"  \n\n", "blank.csv", "the file is empty"),
        (b"# only a comment\n", "comment.csv", "the file has no header row"),
        (b"id,name,latitude,longitude,status\n", "header.csv", "no shelters in the file"),
        (
            "id,name,latitude,longitude,status\nS,Caf\xe9,1,1,open\n".encode("latin-1"),
            "latin1.csv",
            "not UTF-8 text (line 2): save the file as 'CSV UTF-8' or UTF-8 JSON",
        ),
        (
            b"PK\x03\x04\x14\x00\x06\x00",
            "shelters.xlsx",
            "a zip file, probably an Excel (.xlsx) or OpenDocument (.ods) workbook: "
            "save it as 'CSV UTF-8' first",
        ),
        (b"%PDF-1.7\n", "list.pdf", "not a CSV or JSON file (an old Excel file or a PDF?)"),
        (b"\x00\x01\x02id", "binary.csv", "not a text file: it contains NUL bytes"),
        (
            b'id,name,latitude,longitude,status\nS1,"Unclosed,1,1,open\n',
            "broken.csv",
            "line 2: not valid CSV: unexpected end of data (a quote is never closed)",
        ),
        (
            b'id,name\nS1,"Quoted" then not,1\n',
            "stray.csv",
            "line 2: not valid CSV: ',' expected after '\"'",
        ),
        (b'[{"id": "S1",}]', "broken.json", "line 1: not valid JSON: Expecting property name"),
        (b'{"places": []}', "wrong.json", 'expected a list of shelters, or {"shelters": [...]}'),
        (b"[1, 2]", "numbers.json", "item 1: is not an object"),
    ],
)
async def test_files_that_are_not_importable(data: bytes, filename: str, message: str) -> None:
    async with _no_session() as session:
        result = await import_bytes(
            session, ImportKind.SHELTERS, data, filename=filename, by="t", now=NOW
        )
    assert not result.ok
    assert any(str(problem).startswith(message) for problem in result.problems), _messages(result)


class _NoSession:
    """Stands in for a session where the importer must not touch one."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the session was used ({name}) for a file with problems")


class _no_session:  # lower case: it reads like the context manager it is
    async def __aenter__(self) -> AsyncSession:
        return cast(AsyncSession, _NoSession())

    async def __aexit__(self, *args: object) -> None:
        return None


async def test_missing_required_columns_are_reported_once() -> None:
    async with _no_session() as session:
        result = await import_bytes(
            session, "shelters", b"id,name\nS1,Hall\nS2,Gym\n", filename="f.csv", by="t", now=NOW
        )
    assert _messages(result) == [
        "no column for latitude (header latitude or lat, or HXL #geo+lat)",
        "no column for longitude (header longitude or lon or lng or long, or HXL #geo+lon)",
        "no column for status (header status, or HXL #status)",
    ]


async def test_open_at_capacity_is_imported_with_a_warning(database: Database) -> None:
    text = "id,name,lat,lon,status,capacity,occupancy\nW,Hall,46.2,6.1,open,50,55\n"
    result = await _import(database, ImportKind.SHELTERS, text)
    assert result.ok
    assert [str(w) for w in result.warnings] == [
        "row 2, column 'status': status is open but occupancy 55 reaches capacity 50"
    ]


async def test_places_import_with_departure_points(database: Database) -> None:
    text = (
        "id,type,name,name_ar,alt_names,adm1_code,latitude,longitude\n"
        "L1,locality,Riverside,ريفرسايد,Rivertown; ريفر سايد,XY01,46.2,6.1\n"
        "A1,adm1,North Valley,,,XY01,,\n"
        "D1,Departure point,Bus Station,,,XY01,46.21,6.14\n"
    )
    result = await _import(database, ImportKind.PLACES, text)
    assert result.ok, result.report()
    async with database.transaction() as session:
        place = await find_place(session, "L1")
        assert place is not None and place.kind is PlaceKind.LOCALITY
        assert place.alt_names == ["Rivertown", "ريفر سايد"]
        assert place.names == {"en": "Riverside", "ar": "ريفرسايد"}
        area = await find_place(session, "A1")
        assert area is not None and area.latitude is None and area.alt_names == []
        stop = await find_place(session, "D1")
        assert stop is not None and stop.kind is PlaceKind.DEPARTURE_POINT
    bad = "id,type,name,latitude,longitude\nD2,departure_point,Port,,\nX,village,Somewhere,,\n"
    result = await _import(database, ImportKind.PLACES, bad)
    assert _messages(result) == [
        "row 2: a departure point needs its latitude and longitude",
        "row 3, column 'type': 'village' is not one of: adm1, adm2, locality, departure_point",
    ]


async def test_consulates_import_validates_countries_and_contacts(database: Database) -> None:
    text = (
        "id,country_code,kind,name,name_fr,city,phone,emergency_phone,email,services\n"
        "#org+code,#country+code,#org+type,#org+name,#org+name+i_fr,#loc+name,#contact+phone,"
        "#contact+phone+emergency,#contact+email,#service\n"
        "M1,sy,embassy,Embassy of Syria,Ambassade de Syrie,Riverside,+000 555 0203,"
        "+000 555 0298,consular@example.org,laissez_passer; Emergency travel documents\n"
        "M2,ET,Honorary Consulate,Honorary Consulate of Ethiopia,,Lakeshore,,,,\n"
    )
    result = await _import(database, ImportKind.CONSULATES, text)
    assert result.ok, result.report()
    async with database.transaction() as session:
        [syria] = await missions_for(session, "SY")
        assert syria.country_code == "SY" and syria.kind is MissionKind.EMBASSY
        assert syria.names == {"en": "Embassy of Syria", "fr": "Ambassade de Syrie"}
        assert (syria.phone, syria.emergency_phone) == ("+000 555 0203", "+000 555 0298")
        assert syria.services == ["emergency_travel_document", "laissez_passer"]
        [ethiopia] = await missions_for(session, "ET")
        assert ethiopia.kind is MissionKind.HONORARY_CONSULATE and ethiopia.email is None
    bad = (
        "id,country,kind,name,email,phone\n"
        "B1,Syria,embassy,E,e@example.org,\n"
        "B2,XX,consulate,C,not-an-email,\n"
        "B3,EU,palace,P,,12\n"
    )
    result = await _import(database, ImportKind.CONSULATES, bad)
    assert _messages(result) == [
        "row 2, column 'country': 'Syria' is not an ISO 3166 two-letter country code "
        "(did you mean SY, Syria?)",
        "row 3, column 'country': 'XX' is not an ISO 3166 two-letter country code",
        "row 3, column 'email': 'not-an-email' is not an email address",
        "row 4, column 'country': 'EU' is not an ISO 3166 two-letter country code",
        "row 4, column 'kind': 'palace' is not one of: embassy, consulate, honorary_consulate",
        "row 4, column 'phone': '12' is not a phone number (digits, spaces, + - ( ) only)",
    ]
    assert await _count(database, Mission) == 2


async def test_import_file_reads_a_path_and_names_the_author(
    database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "north-list.csv"
    path.write_text(SHELTERS_HXL, "utf-8")
    async with database.transaction() as session:
        result = await import_file(session, "shelters", path, now=NOW)
        assert result.ok
        shelter = await find_shelter(session, "S1")
        assert shelter is not None and shelter.updated_by == "import:north-list.csv"
        named = await import_file(session, ImportKind.SHELTERS, path, by="Rana", now=NOW)
        assert named.updated == 2 and shelter.updated_by == "Rana"
        missing = await import_file(session, "shelters", tmp_path / "nope.csv", now=NOW)
        assert not missing.ok and "cannot read" in _messages(missing)[0]


def test_column_mapping_file_matches_the_fields() -> None:
    path = ROOT / "messages" / "data" / "import_columns.toml"
    text = path.read_text("utf-8")
    assert "hxlstandard.org" in text, "cite the HXL standard"
    table = tomllib.loads(text)
    for kind in ImportKind:
        assert set(table[kind.value]) == set(FIELDS[kind]), kind
        headers = [h for names in column_names()[kind].values() for h in names.headers]
        assert len(headers) == len(set(headers)), f"a header names two {kind} fields"
        tags = [t for names in column_names()[kind].values() for t in names.hxl]
        assert len(tags) == len(set(tags)), f"a hashtag names two {kind} fields"


def test_the_command_imports_or_reports_and_exits_1(tmp_path: Path) -> None:
    database = tmp_path / "cli.db"
    env = {"DATABASE_URL": f"sqlite:///{database}", "CRISIS_DATA_DIR": str(tmp_path)}
    good = tmp_path / "shelters.csv"
    good.write_text(SHELTERS_HXL, "utf-8")
    first = run_cli("import", "shelters", str(good), env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "shelters: 2 added, 0 updated"
    assert "warning: column 'colour': not a known column; ignored" in first.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text(SHELTERS_HXL.replace(",180,", ",-1,").replace("46.1975", "461.975"), "utf-8")
    failed = run_cli("import", "shelters", str(bad), "--by", "Omar", env=env)
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert "error: row 4, column 'occupancy': must be 0 or more, not -1" in failed.stderr
    assert "error: row 5: impossible coordinates 461.975, 6.1418" in failed.stderr
    assert "shelters: nothing imported (2 problems)" in failed.stderr
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT occupancy, updated_by FROM shelters ORDER BY id")
        assert list(rows) == [(180, "import:shelters.csv"), (120, "import:shelters.csv")]
    again = run_cli("import", "shelters", str(good), "--by", "Omar", env=env)
    assert again.stdout.strip() == "shelters: 0 added, 2 updated"
    wrong_kind = run_cli("import", "missions", str(good), env=env)
    assert wrong_kind.returncode == 2


async def test_timestamps_are_the_import_time(database: Database) -> None:
    later = NOW + timedelta(days=1)
    async with database.transaction() as session:
        await import_bytes(
            session, "places", b"id,kind,name\nP,locality,Town\n", filename="p.csv", by="x",
            now=later,
        )  # fmt: skip
    async with database.transaction() as session:
        place = await find_place(session, "P")
        assert place is not None and place.updated_at == later and place.updated_by == "x"


async def test_hashtag_row_without_a_text_header(database: Database) -> None:
    text = (
        "#loc+code,#loc +name +i_fr,#geo+lat,#geo+lon,#status,,#x_unknown\n"
        "\n"
        "H1,Gymnase,46.2,6.1,open,,\n"
        "H2,Salle,46.3,6.2,fermé,,\n"
    )
    result = await _import(database, ImportKind.SHELTERS, text)
    assert _messages(result) == [
        "row 4, column '#status': 'fermé' is not one of: open, full, closed"
    ]
    assert [str(w) for w in result.warnings] == ["column '#x_unknown': not a known column; ignored"]
    fixed = await _import(database, ImportKind.SHELTERS, text.replace("fermé", "closed"))
    assert fixed.ok and fixed.added == 2
    async with database.transaction() as session:
        gym = await find_shelter(session, "H1")
        assert gym is not None and gym.names == {"fr": "Gymnase"}


async def test_json_problems_are_numbered_by_item(database: Database) -> None:
    rows = [
        {"id": "J1", "name": "Gym", "lat": 46.2, "lon": 6.1, "status": "open"},
        {"id": "J2", "name": "", "lat": True, "lon": 6.1, "status": "open", "capacity": 2.5},
        {"id": "J1", "name": {"xx": "?"}, "lat": 46.2, "lon": 6.1, "status": "open"},
    ]
    result = await _import(database, ImportKind.SHELTERS, json.dumps(rows), "list.json")
    assert _messages(result) == [
        "item 2, column 'lat': must be a number of degrees",
        "item 2, column 'capacity': must be a whole number, not 2.5",
        "item 2, column 'name': needs a name",
        "item 3, column 'name': 'xx' is not a language the bot knows (known: "
        "en, fr, es, ar, fa, fa-AF, ps, ur, bn, uk, ru, tr, sw, so, am, ti, ha, ht, my)",
        "item 3: external id 'J1' is also on item 1",
    ]
    assert await _count(database, Shelter) == 0


async def test_unknown_headers_only_warn(database: Database) -> None:
    text = "id,name,name_alt,lat,lon,status,Last updated\nU,Hall,Old hall,46.2,6.1,open,today\n"
    result = await _import(database, ImportKind.SHELTERS, text)
    assert result.ok and result.added == 1
    assert [str(w) for w in result.warnings] == [
        "column 'name_alt': not a known column; ignored",
        "column 'Last updated': not a known column; ignored",
    ]
