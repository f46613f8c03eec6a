"""Areas and service misses end to end through the loopback Bot API: a location or a place
sets the person's adm1 area (never coordinates), what they tell us next is counted there, and
a search that finds nothing counts a miss for the "priority sector unmet" flag."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from bot.sandbox.botapi import ChatMessage, LoopbackBotApi
from feedback.items import FeedbackItem
from messages.contacts import Contact
from messages.demo import load_demo_data
from messages.misses import ServiceMiss
from messages.places import Place, PlaceKind
from messages.shelters import Shelter, ShelterStatus
from storage.base import utcnow
from storage.database import Database
from tests.phone import Phone
from tests.sandbox_fixtures import RunningBot
from tests.test_e2e_onboarding import onboard

FIND = "🏠 Find a shelter"
CONSULATES = "🏛 Consulate contacts"
REGISTER = "🚌 Register for evacuation or transport"
RIVERSIDE_SPORTS_HALL = (46.1840, 6.1390)  # DEMO-SH-01, open with places free, XY01
KM = 0.009  # degrees of latitude in about a kilometre
HOME = (10.0, 20.0)


@pytest.fixture
async def demo(database: Database) -> None:
    async with database.transaction() as session:
        assert await load_demo_data(session, utcnow())


@pytest.fixture
async def no_room(database: Database) -> None:
    """Emptyville (area ZZ01): nearby shelters are full, closed, or open with no place left."""

    def shelter(external_id: str, km: float, status: ShelterStatus, **values: Any) -> Shelter:
        return Shelter(
            external_id=external_id,
            names={"en": external_id},
            latitude=HOME[0] + km * KM,
            longitude=HOME[1],
            status=status,
            adm1_code="ZZ01",
            adm1_name="Zed Province",
            updated_by="test",
            **values,
        )

    async with database.transaction() as session:
        session.add_all(
            [
                shelter("SH-FULL", 1, ShelterStatus.FULL, capacity=50, occupancy=60),
                shelter("SH-CLOSED", 0.5, ShelterStatus.CLOSED),
                shelter("SH-PACKED", 2, ShelterStatus.OPEN, capacity=40, occupancy=40),
                Place(
                    external_id="ZZ01-L1",
                    kind=PlaceKind.LOCALITY,
                    names={"en": "Emptyville"},
                    alt_names=[],
                    latitude=HOME[0],
                    longitude=HOME[1],
                    adm1_code="ZZ01",
                    adm1_name="Zed Province",
                    updated_by="test",
                ),
            ]
        )


async def last_answer(phone: Phone) -> ChatMessage:
    """The search's summary and pins, up to the one that restores the menu keyboard."""
    message = await phone.next_message()
    while message.reply_markup is None:
        message = await phone.next_message()
    return message


async def contact_of(bot: RunningBot) -> Contact:
    async with bot.services.db.transaction() as session:
        [contact] = list(await session.scalars(select(Contact)))
        return contact


async def misses(bot: RunningBot) -> list[tuple[str, str, str, int]]:
    async with bot.services.db.transaction() as session:
        rows = await session.execute(
            select(ServiceMiss.service, ServiceMiss.key, ServiceMiss.area_code, ServiceMiss.misses)
        )
        return sorted((str(s), str(k), str(a), int(n)) for s, k, a, n in rows)


def assert_no_coordinates(contact: Contact, *points: tuple[float, float]) -> None:
    """No column of the contact holds a coordinate of the places the person searched from."""
    # Timestamps are left out: their microseconds can spell "6.14" by chance.
    values = " ".join(
        str(value)
        for value in (getattr(contact, c.key) for c in Contact.__table__.columns)
        if not isinstance(value, datetime)
    )
    for latitude, longitude in points:
        for number in (latitude, longitude):
            assert f"{number:.2f}" not in values, f"{number} kept on the contact"


async def test_a_shared_location_sets_the_area_of_what_the_person_tells_us_next(
    phone: Phone, running_bot: RunningBot, bot_api: LoopbackBotApi, demo: None
) -> None:
    await onboard(phone)
    await bot_api.share_location(phone.user_id, *RIVERSIDE_SPORTS_HALL)
    answer = await last_answer(phone)
    assert answer.venue is not None, "open shelters with places free: pins"
    contact = await contact_of(running_bot)
    assert (contact.area_code, contact.area_name) == ("XY01", "North Valley Province")
    assert_no_coordinates(contact, RIVERSIDE_SPORTS_HALL)
    assert await misses(running_bot) == [], "a shelter with room is no miss"

    receipt = await phone.send("We need blankets, the nights are cold")
    assert "Your reference is" in (receipt.text or "")
    async with running_bot.services.db.transaction() as session:
        [item] = list(await session.scalars(select(FeedbackItem)))
    assert (item.area_code, item.area_name) == ("XY01", "North Valley Province")


async def test_a_typed_place_sets_its_area(
    phone: Phone, running_bot: RunningBot, bot_api: LoopbackBotApi, demo: None
) -> None:
    await onboard(phone)
    await phone.send(FIND)
    await bot_api.send_text(phone.user_id, "Stonebridge")
    await last_answer(phone)
    contact = await contact_of(running_bot)
    assert (contact.area_code, contact.area_name) == ("XY02", "South Hills Province")


async def test_no_shelter_with_room_is_a_miss_counted_by_area(
    phone: Phone, running_bot: RunningBot, bot_api: LoopbackBotApi, no_room: None
) -> None:
    await onboard(phone)
    await bot_api.share_location(phone.user_id, *HOME)
    answer = await last_answer(phone)
    # The open shelter with no place left still gets its pin; that is no room either.
    assert answer.venue is not None and "SH-PACKED" in answer.venue["title"]
    assert await misses(running_bot) == [("shelter", "", "ZZ01", 1)]

    await phone.send(FIND)
    await bot_api.send_text(phone.user_id, "Emptyville")
    await last_answer(phone)
    assert await misses(running_bot) == [("shelter", "", "ZZ01", 2)]
    contact = await contact_of(running_bot)
    assert contact.area_code == "ZZ01"
    assert_no_coordinates(contact, HOME)


async def test_a_country_with_no_mission_is_a_consulate_miss(
    phone: Phone, running_bot: RunningBot, bot_api: LoopbackBotApi, demo: None
) -> None:
    await onboard(phone)
    await bot_api.share_location(phone.user_id, *RIVERSIDE_SPORTS_HALL)
    await last_answer(phone)
    await phone.send(CONSULATES)
    choices = await phone.send("Syria")
    answer = await phone.tap(choices, "Syria")
    assert "Embassies and consulates of Syria" in (answer.text or "")
    assert await misses(running_bot) == [], "a mission on record is no miss"

    await phone.send(CONSULATES)
    choices = await phone.send("Eritrea")
    answer = await phone.tap(choices, "Eritrea")
    assert "no embassy or consulate of Eritrea on record" in (answer.text or "")
    assert await misses(running_bot) == [("consulate", "ER", "XY01", 1)]


async def test_no_departure_point_within_reach_is_a_departure_miss(
    phone: Phone, running_bot: RunningBot, bot_api: LoopbackBotApi, demo: None
) -> None:
    far_town = (47.5, 6.14)  # about 145 km north of every demo departure point
    async with running_bot.services.db.transaction() as session:
        session.add(
            Place(
                external_id="ZZ09-L1",
                kind=PlaceKind.LOCALITY,
                names={"en": "Farhaven"},
                alt_names=[],
                latitude=far_town[0],
                longitude=far_town[1],
                adm1_code="ZZ09",
                adm1_name="Far Province",
                updated_by="test",
            )
        )
    await onboard(phone)
    scope = await phone.send(REGISTER)
    people = await phone.tap(scope, "Just me")
    nationality = await phone.tap(people, "18 to 59")
    documents = await phone.tap(nationality, "Stateless or not sure")
    needs = await phone.tap(documents, "Yes, everyone")
    location = await phone.tap(needs, "Continue")
    assert "Where are you now?" in (location.text or "")
    await bot_api.share_location(phone.user_id, far_town[0] + 0.01, far_town[1])
    await phone.next_message()  # the destination question
    assert await misses(running_bot) == [("departure", "", "ZZ09", 1)]
    contact = await contact_of(running_bot)
    assert (contact.area_code, contact.area_name) == ("ZZ09", "Far Province")
    assert_no_coordinates(contact, far_town)
