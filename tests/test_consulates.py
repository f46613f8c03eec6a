"""Consular missions on SQLite and PostgreSQL: embassies first, nationalities without a
mission answered with an empty list."""

from __future__ import annotations

from datetime import UTC, datetime

from messages.consulates import (
    Mission,
    MissionKind,
    MissionService,
    countries_with_missions,
    find_mission,
    missions_for,
)
from storage.database import Database

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def _mission(external_id: str, country: str, kind: MissionKind, city: str) -> Mission:
    return Mission(
        external_id=external_id,
        country_code=country,
        kind=kind,
        names={"en": f"{kind.value} {country} {city}", "fr": f"{country} à {city}"},
        notes={},
        city=city,
        phone="+000 555 0100",
        services=["laissez_passer", "emergency_travel_document"],
        updated_at=NOW,
        updated_by="test",
    )


def test_services_have_keys_and_labels() -> None:
    assert MissionService("laissez_passer").label == "Laissez-passer"
    assert MissionService.EMERGENCY_TRAVEL_DOCUMENT.value == "emergency_travel_document"
    assert all(service.icon and service.label for service in MissionService)
    mission = _mission("M", "SY", MissionKind.EMBASSY, "Riverside")
    assert mission.service_list() == [
        MissionService.EMERGENCY_TRAVEL_DOCUMENT,
        MissionService.LAISSEZ_PASSER,
    ]
    assert mission.name("fr") == "SY à Riverside"
    assert mission.name("uk") == "embassy SY Riverside"


async def test_missions_for_a_country_embassies_first(database: Database) -> None:
    async with database.transaction() as session:
        session.add_all(
            [
                _mission("AF-HON", "AF", MissionKind.HONORARY_CONSULATE, "Lakeshore"),
                _mission("AF-CON-2", "AF", MissionKind.CONSULATE, "Stonebridge"),
                _mission("AF-CON-1", "AF", MissionKind.CONSULATE, "Oakford"),
                _mission("AF-EMB", "AF", MissionKind.EMBASSY, "Riverside"),
                _mission("SY-EMB", "SY", MissionKind.EMBASSY, "Riverside"),
            ]
        )
    async with database.transaction() as session:
        afghan = await missions_for(session, "AF")
        assert [m.external_id for m in afghan] == ["AF-EMB", "AF-CON-1", "AF-CON-2", "AF-HON"]
        assert [m.external_id for m in await missions_for(session, " sy ")] == ["SY-EMB"]
        assert await missions_for(session, "ER") == [], "no mission on record"
        assert await countries_with_missions(session) == ["AF", "SY"]
        stored = await find_mission(session, "SY-EMB")
        assert stored is not None and stored.kind is MissionKind.EMBASSY
        assert stored.services == ["laissez_passer", "emergency_travel_document"]
        assert await find_mission(session, "nope") is None


async def test_no_missions_at_all(database: Database) -> None:
    async with database.transaction() as session:
        assert await countries_with_missions(session) == []
        assert await missions_for(session, "SY") == []
