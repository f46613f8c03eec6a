"""Shelters on SQLite and PostgreSQL: nearest first, full ones marked, closed ones hidden,
stale ones detected, and every update timestamped and attributed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from messages.shelters import (
    Shelter,
    ShelterChange,
    ShelterService,
    ShelterStatus,
    ShelterUpdateError,
    find_shelter,
    is_stale,
    list_shelters,
    nearest_shelters,
    shelter_history,
    update_shelter,
)
from storage.database import Database

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
CENTRE = (46.2044, 6.1432)


def _shelter(
    external_id: str,
    latitude: float,
    longitude: float,
    status: ShelterStatus = ShelterStatus.OPEN,
    capacity: int | None = 100,
    occupancy: int | None = 10,
    adm1_code: str = "XY01",
) -> Shelter:
    return Shelter(
        external_id=external_id,
        names={"en": f"Shelter {external_id}", "ar": f"مأوى {external_id}"},
        notes={},
        latitude=latitude,
        longitude=longitude,
        adm1_code=adm1_code,
        adm1_name=f"Area {adm1_code}",
        status=status,
        capacity=capacity,
        occupancy=occupancy,
        services=["water", "step_free"],
        updated_at=NOW,
        updated_by="test",
    )


def test_services_have_keys_icons_and_english_labels() -> None:
    assert 8 <= len(ShelterService) <= 10
    assert ShelterService("water") is ShelterService.WATER
    assert ShelterService.WATER.label == "Drinking water" and ShelterService.WATER.icon
    assert ShelterService.STEP_FREE.value == "step_free", "stored and imported as its key"
    assert len({service.label for service in ShelterService}) == len(ShelterService)
    shelter = _shelter("S", 1.0, 1.0)
    shelter.services = ["step_free", "water", "retired_key"]
    assert shelter.service_list() == [ShelterService.WATER, ShelterService.STEP_FREE]


def test_places_free_is_never_negative_and_none_when_unknown() -> None:
    assert _shelter("A", 1, 1, capacity=100, occupancy=40).places_free == 60
    assert _shelter("B", 1, 1, capacity=100, occupancy=130).places_free == 0
    assert _shelter("C", 1, 1, capacity=None, occupancy=40).places_free is None
    assert _shelter("D", 1, 1, capacity=100, occupancy=None).places_free is None


def test_stale_after_max_age() -> None:
    shelter = _shelter("A", 1, 1)
    assert not is_stale(shelter, NOW + timedelta(hours=23), timedelta(hours=24))
    assert is_stale(shelter, NOW + timedelta(hours=24, seconds=1), timedelta(hours=24))


async def test_nearest_shelters_open_and_full_never_closed(database: Database) -> None:
    async with database.transaction() as session:
        session.add_all(
            [
                _shelter("near-full", 46.2080, 6.1432, ShelterStatus.FULL, 50, 50),
                _shelter("near-closed", 46.2050, 6.1432, ShelterStatus.CLOSED),
                _shelter("mid-open", 46.2500, 6.1432),
                _shelter("far-open", 46.6000, 6.1432),  # about 44 km north
            ]
        )
    async with database.transaction() as session:
        found = await nearest_shelters(session, *CENTRE, within_km=20)
    assert [item.shelter.external_id for item in found] == ["near-full", "mid-open"]
    assert found[0].shelter.status is ShelterStatus.FULL, "shown, marked as full"
    assert found[0].distance_m == pytest.approx(400, abs=5)
    assert found[1].distance_m == pytest.approx(5_070, abs=20)
    async with database.transaction() as session:
        wider = await nearest_shelters(session, *CENTRE, within_km=60, limit=2)
        assert [item.shelter.external_id for item in wider] == ["near-full", "mid-open"]
        everything = await nearest_shelters(session, *CENTRE, within_km=60)
        assert [item.shelter.external_id for item in everything][-1] == "far-open"


async def test_nowhere_near_a_shelter_finds_nothing(database: Database) -> None:
    async with database.transaction() as session:
        session.add(_shelter("only", *CENTRE))
    async with database.transaction() as session:
        assert await nearest_shelters(session, -30.0, -20.0, within_km=50) == []  # at sea
        assert await nearest_shelters(session, 46.9, 7.4, within_km=50) == []  # 90 km away
        with pytest.raises(ValueError, match="impossible coordinates"):
            await nearest_shelters(session, 46.2, 200.0, within_km=50)
        with pytest.raises(ValueError):
            await nearest_shelters(session, 0.0, 0.0, within_km=50)


async def test_nearest_shelters_across_the_antimeridian(database: Database) -> None:
    async with database.transaction() as session:
        session.add(_shelter("fiji-west", -16.5, 179.95))
    async with database.transaction() as session:
        found = await nearest_shelters(session, -16.5, -179.95, within_km=20)
    assert [item.shelter.external_id for item in found] == ["fiji-west"]
    assert found[0].distance_m == pytest.approx(10_660, rel=0.01)


async def test_occupancy_moves_the_status_and_history_is_attributed(database: Database) -> None:
    async with database.transaction() as session:
        session.add(_shelter("S1", *CENTRE, capacity=100, occupancy=90))
    later = NOW + timedelta(hours=1)
    async with database.transaction() as session:
        shelter = await find_shelter(session, "S1")
        assert shelter is not None
        change = await update_shelter(
            session, shelter, status=None, occupancy=100, by="officer:rana", now=later
        )
        assert shelter.status is ShelterStatus.FULL, "open at capacity becomes full"
        assert (change.status, change.occupancy, change.by, change.at) == (
            ShelterStatus.FULL,
            100,
            "officer:rana",
            later,
        )
    async with database.transaction() as session:
        shelter = await find_shelter(session, "S1")
        assert shelter is not None
        assert shelter.updated_at == later and shelter.updated_by == "officer:rana"
        await update_shelter(session, shelter, status=None, occupancy=80, by="omar", now=later)
        assert shelter.status.value == "open", "full with room again becomes open"
        await update_shelter(
            session, shelter, status=ShelterStatus.CLOSED, occupancy=None, by="omar", now=later
        )
        await update_shelter(session, shelter, status=None, occupancy=0, by="omar", now=later)
        assert shelter.status is ShelterStatus.CLOSED, "a closed shelter stays closed"
        history = await shelter_history(session, shelter)
    assert [(c.status, c.occupancy, c.by) for c in history] == [
        (ShelterStatus.FULL, 100, "officer:rana"),
        (ShelterStatus.OPEN, 80, "omar"),
        (ShelterStatus.CLOSED, 80, "omar"),
        (ShelterStatus.CLOSED, 0, "omar"),
    ]


async def test_explicit_status_wins_and_confirmation_refreshes(database: Database) -> None:
    async with database.transaction() as session:
        session.add(_shelter("S2", *CENTRE, capacity=50, occupancy=10))
    async with database.transaction() as session:
        shelter = await find_shelter(session, "S2")
        assert shelter is not None
        await update_shelter(
            session, shelter, status=ShelterStatus.OPEN, occupancy=60, by="site", now=NOW
        )
        assert shelter.status is ShelterStatus.OPEN and shelter.places_free == 0
        stale_time = NOW + timedelta(days=2)
        assert is_stale(shelter, stale_time, timedelta(days=1))
        await update_shelter(
            session, shelter, status=None, occupancy=None, by="site", now=stale_time
        )
        assert not is_stale(shelter, stale_time, timedelta(days=1))
        assert (shelter.status, shelter.occupancy) == (ShelterStatus.OPEN, 60)


async def test_bad_updates_are_refused_and_change_nothing(database: Database) -> None:
    async with database.transaction() as session:
        session.add(_shelter("S3", *CENTRE, capacity=50, occupancy=10))
    async with database.transaction() as session:
        shelter = await find_shelter(session, "S3")
        assert shelter is not None
        with pytest.raises(ShelterUpdateError, match="0 or more, not -5"):
            await update_shelter(session, shelter, status=None, occupancy=-5, by="x", now=NOW)
        with pytest.raises(ShelterUpdateError, match="who"):
            await update_shelter(session, shelter, status=None, occupancy=5, by="  ", now=NOW)
        assert shelter.occupancy == 10
        assert await session.scalar(select(func.count()).select_from(ShelterChange)) == 0


async def test_list_and_delete_shelters(database: Database) -> None:
    async with database.transaction() as session:
        session.add_all(
            [
                _shelter("B", *CENTRE, adm1_code="XY02"),
                _shelter("A", *CENTRE, adm1_code="XY01", status=ShelterStatus.CLOSED),
                _shelter("C", *CENTRE, adm1_code="XY01"),
            ]
        )
    async with database.transaction() as session:
        assert [s.external_id for s in await list_shelters(session)] == ["A", "C", "B"]
        assert [s.external_id for s in await list_shelters(session, adm1_code="XY02")] == ["B"]
        assert await list_shelters(session, adm1_code="none") == []
        shelter = await find_shelter(session, "C")
        assert shelter is not None and shelter.name("ar") == "مأوى C"
        await update_shelter(session, shelter, status=None, occupancy=3, by="x", now=NOW)
    async with database.transaction() as session:
        shelter = await find_shelter(session, "C")
        assert shelter is not None
        await session.delete(shelter)
    async with database.transaction() as session:
        assert await find_shelter(session, "C") is None
        assert await session.scalar(select(func.count()).select_from(ShelterChange)) == 0
