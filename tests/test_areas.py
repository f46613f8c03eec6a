"""Areas without Telegram: the adm1 area of a place, of a point, and kept on a contact."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from messages.areas import (
    Area,
    area_names,
    area_near,
    area_of_contact,
    area_of_place,
    remember_area,
)
from messages.contacts import Contact, record_consent
from messages.misses import Service, ServiceMiss, record_miss
from messages.places import Place, PlaceKind
from messages.shelters import Shelter, ShelterStatus
from storage.database import Database

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
KM = 0.009  # degrees of latitude in about a kilometre
HOME = (10.0, 20.0)


def place(external_id: str, kind: PlaceKind, km_north: float | None, **values: Any) -> Place:
    return Place(
        external_id=external_id,
        kind=kind,
        names=values.pop("names", {"en": external_id}),
        alt_names=[],
        latitude=None if km_north is None else HOME[0] + km_north * KM,
        longitude=None if km_north is None else HOME[1],
        updated_by="test",
        **values,
    )


def shelter(external_id: str, km_north: float, **values: Any) -> Shelter:
    return Shelter(
        external_id=external_id,
        names={"en": external_id},
        latitude=HOME[0] + km_north * KM,
        longitude=HOME[1],
        status=ShelterStatus.OPEN,
        updated_by="test",
        **values,
    )


def test_area_of_place() -> None:
    province = place(
        "XY01", PlaceKind.ADM1, None, adm1_code="XY01", adm1_name="North Valley Province"
    )
    assert area_of_place(province) == Area("XY01", "North Valley Province")
    # An adm1 area with no adm1 columns: its own id and name.
    bare = place("XY02", PlaceKind.ADM1, None, names={"en": "South Hills"})
    assert area_of_place(bare) == Area("XY02", "South Hills")
    town = place("T1", PlaceKind.LOCALITY, 1, adm1_code="XY01", adm1_name="North Valley")
    assert area_of_place(town) == Area("XY01", "North Valley")
    district = place("D1", PlaceKind.ADM2, None, adm1_code="XY02", adm2_code="XY0201")
    assert area_of_place(district) == Area("XY02", None)
    assert area_of_place(place("T2", PlaceKind.LOCALITY, 1)) is None


async def test_area_near_picks_the_nearest_within_the_radius(database: Database) -> None:
    async with database.transaction() as session:
        session.add_all(
            [
                place("T1", PlaceKind.LOCALITY, 3, adm1_code="XY01", adm1_name="North"),
                place("T2", PlaceKind.LOCALITY, -8, adm1_code="XY02", adm1_name="South"),
                place("T3", PlaceKind.LOCALITY, 0.5),  # nearest, but no area: skipped
                place("P1", PlaceKind.ADM1, None, adm1_code="XY03"),  # no point: skipped
                shelter("S1", -2, adm1_code="XY02", adm1_name="South"),
                shelter("S2", 40, adm1_code="XY09", adm1_name="Far"),
            ]
        )
    async with database.transaction() as session:
        # The shelter two km south is nearer than the town three km north.
        assert await area_near(session, *HOME, within_km=25) == Area("XY02", "South")
        north = (HOME[0] + 4 * KM, HOME[1])
        assert await area_near(session, *north, within_km=25) == Area("XY01", "North")
        assert await area_near(session, *HOME, within_km=1.5) is None, "all beyond the radius"
        far = (HOME[0] + 30 * KM, HOME[1])
        assert await area_near(session, *far, within_km=15) == Area("XY09", "Far")
        assert await area_near(session, *far, within_km=5) is None
        assert await area_near(session, 123.0, 20.0, within_km=25) is None, "impossible point"
        names = await area_names(session)
        assert names == {"XY01": "North", "XY02": "South", "XY09": "Far"}


async def test_remember_area_keeps_code_and_name_only(database: Database) -> None:
    async with database.transaction() as session:
        contact = await record_consent(session, "p1", 1, "en", NOW)
        assert area_of_contact(contact) is None
        remember_area(contact, Area("XY01", "North"))
        remember_area(contact, None)  # an unknown area keeps the last known one
    async with database.transaction() as session:
        stored = await session.scalar(select(Contact).where(Contact.pseudonym == "p1"))
        assert stored is not None
        assert area_of_contact(stored) == Area("XY01", "North")
        remember_area(stored, Area("XY02", None))
    async with database.transaction() as session:
        stored = await session.scalar(select(Contact).where(Contact.pseudonym == "p1"))
        assert stored is not None and (stored.area_code, stored.area_name) == ("XY02", None)


async def test_misses_count_per_day_service_key_and_area(database: Database) -> None:
    async with database.transaction() as session:
        await record_miss(session, Service.SHELTER, NOW, area_code="XY01")
        await record_miss(session, Service.SHELTER, NOW, area_code="XY01")
        await record_miss(session, Service.SHELTER, NOW)
        await record_miss(session, Service.CONSULATE, NOW, key="ER", area_code="XY01")
    async with database.transaction() as session:
        rows = await session.execute(
            select(ServiceMiss.service, ServiceMiss.key, ServiceMiss.area_code, ServiceMiss.misses)
        )
        assert sorted(tuple(row) for row in rows) == [
            ("consulate", "ER", "XY01", 1),
            ("shelter", "", "", 1),
            ("shelter", "", "XY01", 2),
        ]
