"""Registrations and manifests without Telegram: lifecycle, references, exports, counts."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook

from evacuation.manifests import (
    HEADER,
    UNASSIGNED,
    departure_points,
    manifest_rows,
    summary,
    to_csv,
    to_xlsx,
)
from evacuation.registrations import (
    Registration,
    cancel,
    find_by_reference,
    missing_answers,
    normalize_phone,
    purge_stale_drafts,
    set_location,
    start_registration,
    submit,
)
from messages.contacts import record_consent
from messages.places import Place, PlaceKind
from storage.database import Database, connect, upgrade
from storage.references import REFERENCE_ALPHABET, new_reference, spoken
from tests.test_cli import run_cli

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def complete(registration: Registration, **changes: object) -> Registration:
    values: dict[str, object] = {
        "for_household": True,
        "adults": 2,
        "children": 1,
        "nationality": "SY",
        "documents": "some",
        "needs": ["medical"],
        "destination": "Capital",
        "consent_share": True,
        "phone": "+254712345678",
    }
    values.update(changes)
    for name, value in values.items():
        setattr(registration, name, value)
    set_location(registration, "Riverside", 10.123456, 20.654321)
    return registration


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("+254 712-345-678", "+254712345678"),
        ("00254 (712) 345.678", "+254712345678"),
        ("0712345678", "0712345678"),
        ("12345", None),
        ("call me", None),
        ("+1234567890123456", None),
        ("", None),
    ],
)
def test_phone_numbers(typed: str, expected: str | None) -> None:
    assert normalize_phone(typed) == expected


def test_references_avoid_characters_misread_aloud() -> None:
    references = {new_reference() for _ in range(500)}
    assert len(references) == 500
    for reference in references:
        assert len(reference) == 6 and set(reference) <= set(REFERENCE_ALPHABET)
    assert not set("0O1IL2Z5S8B") & set(REFERENCE_ALPHABET)
    assert spoken("KM74PX") == "KM7-4PX"


def test_missing_answers_in_order_and_coordinates_rounded() -> None:
    registration = Registration(children=0, adults=0, older=0)
    assert missing_answers(registration) == [
        "scope",
        "people",
        "nationality",
        "documents",
        "needs",
        "location",
        "destination",
        "consent",
    ]
    complete(registration)
    assert missing_answers(registration) == []
    assert (registration.latitude, registration.longitude) == (10.123, 20.654)
    registration.consent_share = False
    assert missing_answers(registration) == ["consent"]


async def test_lifecycle_register_change_cancel_register_again(database: Database) -> None:
    async with database.transaction() as session:
        contact = await record_consent(session, "p1", 1001, "en", NOW)
        registration = complete(await start_registration(session, contact.id, NOW))
        with pytest.raises(ValueError, match="incomplete"):
            registration.consent_share = None
            await submit(session, registration, NOW)
        registration.consent_share = True
        await submit(session, registration, NOW)
        reference = registration.reference
        assert reference and registration.status == "submitted"

    async with database.transaction() as session:
        again = await start_registration(session, contact.id, NOW)
        assert again.id == registration.id, "one registration per person"
        again.destination = "Elsewhere"
        await submit(session, again, NOW + timedelta(hours=1))
        assert again.reference == reference, "a change keeps the reference"
        found = await find_by_reference(session, spoken(reference).lower())
        assert found is not None and found.id == again.id
        cancel(again, NOW)
        assert again.phone is None and again.latitude is None and again.location_text is None

    async with database.transaction() as session:
        fresh = await start_registration(session, contact.id, NOW)
        assert fresh.status == "draft" and fresh.reference is None
        assert fresh.for_household is None and fresh.people == 0


async def test_stale_drafts_are_purged_submitted_kept(database: Database) -> None:
    async with database.transaction() as session:
        old = await record_consent(session, "old", 1, "en", NOW)
        recent = await record_consent(session, "recent", 2, "en", NOW)
        done = await record_consent(session, "done", 3, "en", NOW)
        await start_registration(session, old.id, NOW - timedelta(days=20))
        await start_registration(session, recent.id, NOW - timedelta(days=2))
        submitted = complete(await start_registration(session, done.id, NOW - timedelta(days=30)))
        await submit(session, submitted, NOW - timedelta(days=30))
    async with database.transaction() as session:
        assert await purge_stale_drafts(session, timedelta(days=14), NOW) == 1


async def registrations_with_points(database: Database) -> None:
    async with database.transaction() as session:
        point = Place(
            external_id="DP-1",
            kind=PlaceKind.DEPARTURE_POINT,
            names={"en": "North Gate"},
            alt_names=[],
            latitude=10.0,
            longitude=20.0,
            updated_by="test",
        )
        session.add(point)
        await session.flush()
        people: list[tuple[str, dict[str, object], int | None]] = [
            ("a", {"nationality": "SY", "needs": ["medical", "pregnancy"]}, point.id),
            ("b", {"nationality": "AF", "adults": 1, "children": 0, "needs": []}, point.id),
            ("c", {"destination": '=HYPERLINK("http://x")', "needs": ["medical"]}, None),
            ("d", {"consent_share": False}, point.id),
        ]
        for pseudonym, changes, point_id in people:
            contact = await record_consent(session, pseudonym, ord(pseudonym), "en", NOW)
            registration = complete(await start_registration(session, contact.id, NOW), **changes)
            registration.departure_point_id = point_id
            if registration.consent_share:
                await submit(session, registration, NOW)


async def test_manifests_and_counts(database: Database) -> None:
    await registrations_with_points(database)
    async with database.transaction() as session:
        points = await departure_points(session)
        counts = await summary(session)
        north = await manifest_rows(session, "DP-1")
        unassigned = await manifest_rows(session, UNASSIGNED)
    assert [(point.name, count) for point, count in points] == [
        ("North Gate", 2),
        ("Not assigned yet", 1),
    ]
    assert counts.registrations == 3, "a registration not shared is not counted or exported"
    assert counts.people == 3 + 1 + 3
    assert counts.by_departure_point == {"North Gate": 4, "Not assigned yet": 3}
    assert counts.by_nationality == {"Syria": 6, "Afghanistan": 1}
    assert counts.by_need == {"medical": 2, "pregnancy": 1}
    assert len(north) == 2 and len(unassigned) == 1

    text = to_csv(north).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(HEADER)
    assert rows[0]["nationality"] == "Syria" and rows[0]["special_needs"] == "medical, pregnancy"
    assert rows[0]["phone"] == "+254712345678" and rows[0]["latitude"] == "10.123"
    assert to_csv(north).startswith("\ufeff".encode()), "a BOM so spreadsheets read UTF-8"
    escaped = to_csv(unassigned).decode("utf-8-sig")
    assert "'=HYPERLINK" in escaped, "people's text never runs as a spreadsheet formula"

    workbook = load_workbook(io.BytesIO(to_xlsx(unassigned, "unassigned")))
    sheet = workbook.active
    assert sheet is not None and sheet.title == "unassigned"
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0] == list(HEADER)
    destination = values[1][HEADER.index("destination")]
    assert isinstance(destination, str) and destination.startswith("'=")


async def test_cli_summary_and_manifests(tmp_path: Path) -> None:
    database = connect(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    await upgrade(database)
    await registrations_with_points(database)
    await database.dispose()
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "CRISIS_DATA_DIR": str(tmp_path)}

    counts = await asyncio.to_thread(run_cli, "registrations", "summary", env=env)
    assert counts.returncode == 0, counts.stderr
    assert "Registrations: 3 · people: 7" in counts.stdout
    assert "  Syria: 6" in counts.stdout and "  medical: 2" in counts.stdout

    points = await asyncio.to_thread(run_cli, "registrations", "manifest", env=env)
    assert points.stdout.splitlines() == ["DP-1\tNorth Gate\t2", "unassigned\tNot assigned yet\t1"]

    manifest = await asyncio.to_thread(run_cli, "registrations", "manifest", "DP-1", env=env)
    rows = list(csv.DictReader(io.StringIO(manifest.stdout.removeprefix("\ufeff"))))
    assert [row["nationality_code"] for row in rows] == ["SY", "AF"]

    target = tmp_path / "north.xlsx"
    written = await asyncio.to_thread(
        run_cli,
        "registrations",
        "manifest",
        "DP-1",
        "--format",
        "xlsx",
        "-o",
        str(target),
        env=env,
    )
    assert written.returncode == 0 and "2 registrations written" in written.stderr
    sheet = load_workbook(target).active
    assert sheet is not None and sheet.max_row == 3
