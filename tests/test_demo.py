"""The sandbox's demo data: loads through the importer into an empty database only, clearly
fictional, and shaped so that every service can be tried (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from messages.consulates import Mission, countries_with_missions, missions_for
from messages.demo import DEMO_CENTRE, demo_folder, load_demo_data
from messages.geo import haversine_m
from messages.places import Place, PlaceKind, match_places, nearest_departure_point
from messages.shelters import (
    Shelter,
    ShelterChange,
    ShelterStatus,
    is_stale,
    list_shelters,
    nearest_shelters,
)
from storage.database import Database

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def test_demo_files_say_they_are_fictional_and_cite_their_source() -> None:
    for name in ("places.csv", "shelters.csv", "consulates.csv"):
        text = (demo_folder() / name).read_text("utf-8")
        assert text.startswith("# Demo data – fictional."), name
        assert "Source:" in text and "drafts awaiting review" in text, name


async def test_demo_loads_once_into_an_empty_database(database: Database) -> None:
    async with database.transaction() as session:
        assert await load_demo_data(session, NOW)
    async with database.transaction() as session:
        assert not await load_demo_data(session, NOW + timedelta(days=1))
        shelters = list(await session.scalars(select(Shelter)))
        places = list(await session.scalars(select(Place)))
        missions = list(await session.scalars(select(Mission)))
        changes = list(await session.scalars(select(ShelterChange)))
    assert (len(shelters), len(places), len(missions)) == (12, 16, 11)
    assert len(changes) == 12, "each imported shelter has its history row"
    assert all(s.notes["en"].startswith("Demo data – fictional.") for s in shelters)
    assert all(s.contact_phone is None or s.contact_phone.startswith("+000") for s in shelters)
    assert all(m.phone is not None and m.phone.startswith("+000") for m in missions)


async def test_demo_is_shaped_for_trying_every_service(database: Database) -> None:
    async with database.transaction() as session:
        await load_demo_data(session, NOW)
    async with database.transaction() as session:
        shelters = await list_shelters(session)
        statuses = [s.status for s in shelters]
        assert statuses.count(ShelterStatus.FULL) == 2
        assert statuses.count(ShelterStatus.CLOSED) == 1
        assert any(s.capacity is None for s in shelters), "one with no capacity on record"
        stale = [s.external_id for s in shelters if is_stale(s, NOW, timedelta(hours=24))]
        assert stale == ["DEMO-SH-09"]
        assert {change.at for change in await session.scalars(select(ShelterChange))} == {
            s.updated_at for s in shelters
        }
        for item in [*shelters, *await session.scalars(select(Place))]:
            if item.latitude is not None and item.longitude is not None:
                assert haversine_m(*DEMO_CENTRE, item.latitude, item.longitude) < 60_000
        nearby = await nearest_shelters(session, *DEMO_CENTRE, within_km=10)
        assert nearby and all(n.shelter.status is not ShelterStatus.CLOSED for n in nearby)
        departure = await nearest_departure_point(session, *DEMO_CENTRE, within_km=20)
        assert departure is not None and departure[0].kind is PlaceKind.DEPARTURE_POINT
        for language, typed in (("en", "Riversde"), ("ar", "ريفرسايد"), ("uk", "Ріверсайд")):
            [first, *_] = await match_places(session, typed, language)
            assert first.place.external_id == "XY0101-L01", (language, typed)
        places = list(await session.scalars(select(Place)))
        assert all({"en", "ar", "fr", "fa", "uk", "es"} <= set(p.names) for p in places)
        assert sum(p.kind is PlaceKind.DEPARTURE_POINT for p in places) == 3
        codes = await countries_with_missions(session)
        assert {"AF", "SY", "ET", "SD", "SO", "UA", "VE", "BD"} == set(codes)
        assert await missions_for(session, "ER") == [] and await missions_for(session, "HT") == []
        afghan = await missions_for(session, "AF")
        assert [m.kind.value for m in afghan] == ["embassy", "consulate"]


async def test_demo_never_mixes_with_real_data(database: Database) -> None:
    async with database.transaction() as session:
        session.add(
            Place(
                external_id="REAL-1",
                kind=PlaceKind.LOCALITY,
                names={"en": "Real town"},
                alt_names=[],
                updated_at=NOW,
                updated_by="officer",
            )
        )
    async with database.transaction() as session:
        assert not await load_demo_data(session, NOW)
        assert list(await session.scalars(select(Shelter))) == []
