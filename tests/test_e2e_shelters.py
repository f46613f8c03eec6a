"""Finding a shelter, end to end through the loopback Bot API: by shared location, by a
typed name in any script (typos too), by picking among several places, by area; and every
bad input: unknown places, impossible locations, the open sea, stickers and voice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bot.keyboards import MenuItem
from bot.sandbox.botapi import ChatMessage, LoopbackBotApi
from messages.consulates import Mission, MissionKind
from messages.demo import DEMO_CENTRE, load_demo_data
from messages.i18n import translations
from messages.places import Place, PlaceKind
from messages.shelters import Shelter, ShelterStatus
from storage.base import utcnow
from storage.database import Database
from tests.phone import Phone, inline_labels, reply_labels
from tests.test_e2e_onboarding import MENU, onboard

FIND = "🏠 Find a shelter"
KM = 0.009  # degrees of latitude in about a kilometre
HOME = (10.0, 20.0)


def shelter(
    external_id: str,
    name: str,
    km_north: float,
    status: ShelterStatus = ShelterStatus.OPEN,
    *,
    age: timedelta = timedelta(hours=3),
    **values: Any,
) -> Shelter:
    return Shelter(
        external_id=external_id,
        names={"en": name, **values.pop("names", {})},
        notes=values.pop("notes", {}),
        latitude=HOME[0] + km_north * KM,
        longitude=HOME[1],
        status=status,
        services=values.pop("services", []),
        updated_at=utcnow() - age,
        updated_by="test",
        **values,
    )


def place(
    external_id: str, names: dict[str, str], point: tuple[float, float] | None, **values: Any
) -> Place:
    return Place(
        external_id=external_id,
        kind=values.pop("kind", PlaceKind.LOCALITY),
        names=names,
        alt_names=[],
        latitude=point[0] if point else None,
        longitude=point[1] if point else None,
        updated_by="test",
        **values,
    )


@pytest.fixture
async def shelters(database: Database) -> None:
    """Eight shelters north of HOME: six open (one stale), one full, one closed; a gazetteer."""
    async with database.transaction() as session:
        session.add_all(
            [
                shelter(
                    "SH-1",
                    "Riverside School",
                    0.5,
                    names={"ar": "مدرسة ريفرسايد"},
                    notes={"en": "Bring your ID card if you have one."},
                    capacity=100,
                    occupancy=40,
                    services=["water", "food"],
                    address="12 Market Street",
                    contact_phone="+000 555 01",
                    adm1_code="NV",
                ),
                shelter("SH-2", "Church Hall", 1, capacity=50, occupancy=49, adm1_code="NV"),
                shelter("SH-3", "Stadium", 1.5, ShelterStatus.FULL, capacity=500, occupancy=520),
                shelter("SH-4", "Old Depot", 0.2, ShelterStatus.CLOSED),
                shelter("SH-5", "Mountain Lodge", 2, age=timedelta(days=3)),
                shelter("SH-6", "Library", 3),
                shelter("SH-7", "Mosque Annex", 4),
                shelter("SH-8", "Far Barn", 5),
                place(
                    "LOC-1",
                    {"en": "Riverside", "ar": "ريفرسايد", "fa": "ریورساید"},
                    HOME,
                    adm1_code="NV",
                    adm1_name="North Valley",
                ),
                place("LOC-2", {"en": "Newtown North"}, (HOME[0] + 6 * KM, HOME[1])),
                place("LOC-3", {"en": "Newtown South"}, (HOME[0] - 60 * KM, HOME[1])),
                place("LOC-4", {"en": "Lonely Island"}, (-40.0, -120.0)),
                place(
                    "NV",
                    {"en": "North Valley"},
                    None,
                    kind=PlaceKind.ADM1,
                    adm1_code="NV",
                    adm1_name="North Valley",
                ),
                place("LOC-5", {"en": "Nowhere Hamlet"}, None),
            ]
        )


async def ask(phone: Phone, label: str = FIND) -> ChatMessage:
    question = await phone.send(label)
    assert "Where are you?" in (question.text or "")
    return question


async def results(phone: Phone, venues: int) -> tuple[ChatMessage, list[ChatMessage]]:
    """The summary and the venue pins after it."""
    summary = await phone.next_message()
    pins = [await phone.next_message() for _ in range(venues)]
    assert all(pin.venue is not None for pin in pins), [p.content_kind for p in pins]
    return summary, pins


def request_location_buttons(message: ChatMessage) -> list[str]:
    rows = (message.reply_markup or {}).get("keyboard", [])
    return [
        b["text"] for row in rows for b in row if isinstance(b, dict) and b.get("request_location")
    ]


async def test_a_shared_location_gets_the_five_nearest_open_shelters(
    phone: Phone, shelters: None, bot_api: LoopbackBotApi
) -> None:
    await onboard(phone)
    question = await ask(phone)
    assert request_location_buttons(question) == ["📍 Share my location"]
    assert "⬅ Main menu" in reply_labels(question)
    assert "type the name of your town or area" in (question.text or "")

    await bot_api.share_location(phone.user_id, *HOME)
    summary, pins = await results(phone, 5)
    text = summary.text or ""
    assert text.startswith("Shelters near you, nearest first:")
    order = ["Riverside School", "Church Hall", "Mountain Lodge", "Library", "Mosque Annex"]
    positions = [text.index(f"{n}. 🏠 {name}") for n, name in enumerate(order, start=1)]
    assert positions == sorted(positions)
    assert "Old Depot" not in text, "closed shelters are never shown"
    assert "Far Barn" not in text, "only five open ones"
    assert "⛔ Stadium · 1.5 km · Full" in text, "a nearer full shelter is named, marked full"
    assert "500 m" in text and "✅ Open · 60 places free" in text
    assert "✅ Open · 1 place free" in text, "plural forms"
    assert "💧 Drinking water, 🍲 Food" in text
    assert "Bring your ID card" in text and "+000 555 01" in text
    assert "Updated 3 hours ago" in text
    assert "Updated 3 days ago: this may be out of date." in text

    assert [pin.venue["title"] for pin in pins if pin.venue] == [
        f"{n}. {name}" for n, name in enumerate(order, start=1)
    ]
    first = pins[0].venue or {}
    assert first["address"] == "Open · 60 places free · 500 m · 12 Market Street"
    assert first["location"]["latitude"] == pytest.approx(HOME[0] + 0.5 * KM)
    assert pins[-1].reply_markup is not None and reply_labels(pins[-1]) == MENU
    assert all(pin.reply_markup is None for pin in pins[:-1])
    assert bot_api.pending_bot_events(phone.user_id) == []

    # Outside the question, a shared location gets the same answer.
    await bot_api.share_location(phone.user_id, *HOME)
    again, _pins = await results(phone, 5)
    assert again.text == summary.text


async def test_only_full_shelters_nearby(
    phone: Phone, database: Database, bot_api: LoopbackBotApi
) -> None:
    async with database.transaction() as session:
        session.add(shelter("SH-F", "Sports Hall", 1, ShelterStatus.FULL))
    await onboard(phone)
    await bot_api.share_location(phone.user_id, *HOME)
    answer = await phone.next_message()
    assert "⛔ Sports Hall · 1 km · Full" in (answer.text or "")
    assert "None of these shelters has free places right now." in (answer.text or "")
    assert "For help, go to the nearest humanitarian staff" in (answer.text or "")
    assert reply_labels(answer) == MENU


async def test_typed_place_names_in_any_script_and_with_typos(
    phone: Phone, shelters: None, bot_api: LoopbackBotApi
) -> None:
    await onboard(phone)
    await ask(phone)
    await bot_api.send_text(phone.user_id, "Riversde")  # a typo
    summary, pins = await results(phone, 5)
    assert (summary.text or "").startswith("Shelters near Riverside, nearest first:")
    assert len(pins) == 5

    await ask(phone)
    await bot_api.send_text(phone.user_id, "ریورساید")  # Persian script
    persian, _pins = await results(phone, 5)
    assert (persian.text or "").startswith("Shelters near Riverside")


async def test_a_person_reading_arabic_gets_names_in_arabic(
    phone: Phone, shelters: None, bot_api: LoopbackBotApi
) -> None:
    await onboard(phone, "العربية")
    arabic = translations("ar").gettext
    question = await phone.send(MenuItem.SHELTER.text(arabic))
    assert request_location_buttons(question) == ["📍 " + arabic("Share my location")]
    await bot_api.send_text(phone.user_id, "ريفرسايد")
    summary, pins = await results(phone, 5)
    text = summary.text or ""
    assert "مدرسة ريفرسايد" in text, "the shelter's name in the person's language"
    assert "Church Hall" in text, "English when a shelter has no Arabic name"
    assert arabic("This text is not yet available in your language.") in text
    assert "Bring your ID card" in text, "the note in a fallback language, marked as such"
    assert (pins[0].venue or {})["title"] == "1. مدرسة ريفرسايد"


async def test_several_matches_are_offered_as_buttons(
    phone: Phone, shelters: None, bot_api: LoopbackBotApi
) -> None:
    await onboard(phone)
    await ask(phone)
    which = await phone.send("Newtown")
    assert which.text == "Which place do you mean?"
    assert inline_labels(which) == ["📍 Newtown North", "📍 Newtown South"]
    await phone.press_data(which.message_id, phone.api.button_data(which, "📍 Newtown North"))
    summary, _pins = await results(phone, 5)
    assert (summary.text or "").startswith("Shelters near Newtown North")

    # The buttons need no state: an old one still works, and finds nothing far away.
    await phone.press_data(which.message_id, phone.api.button_data(which, "📍 Newtown South"))
    far = await phone.next_message()
    assert far.text is not None
    assert far.text.startswith("There is no open shelter within 25 km of Newtown South.")
    assert reply_labels(far) == MENU


async def test_a_button_for_a_place_no_longer_on_record(
    phone: Phone, shelters: None, bot_api: LoopbackBotApi
) -> None:
    await onboard(phone)
    await ask(phone)
    which = await phone.send("Newtown")
    await phone.press_data(which.message_id, "shp:99999")
    again = await phone.next_message()
    assert "Which place do you mean?" in (again.text or "")
    assert "This button is no longer active." in await phone.answered_callbacks()


async def test_unknown_place_then_location(
    phone: Phone, shelters: None, bot_api: LoopbackBotApi
) -> None:
    await onboard(phone)
    await ask(phone)
    unknown = await phone.send("Atlantis")
    assert "I could not find “Atlantis” on our map." in (unknown.text or "")
    assert request_location_buttons(unknown) == ["📍 Share my location"]
    await bot_api.share_location(phone.user_id, *HOME)
    summary, _pins = await results(phone, 5)
    assert (summary.text or "").startswith("Shelters near you")


@pytest.mark.settings(HELP_LINE="+000 123")
async def test_nothing_nearby_points_to_the_help_line(
    phone: Phone, shelters: None, bot_api: LoopbackBotApi
) -> None:
    await onboard(phone)
    await ask(phone)
    await bot_api.share_location(phone.user_id, -40.0, -120.0)  # the middle of the Pacific
    answer = await phone.next_message()
    assert answer.text == (
        "There is no open shelter within 25 km of your location.\n\n"
        "For help, call the help line: +000 123"
    )
    assert reply_labels(answer) == MENU

    await ask(phone)
    island = await phone.send("Lonely Island")
    assert (island.text or "").startswith("There is no open shelter within 25 km of Lonely Island.")
    assert "+000 123" in (island.text or "")


@pytest.mark.settings(SHELTER_RADIUS_KM="2.5", SHELTER_MAX_AGE_HOURS="1")
async def test_radius_and_age_are_configurable(
    phone: Phone, shelters: None, bot_api: LoopbackBotApi
) -> None:
    await onboard(phone)
    await bot_api.share_location(phone.user_id, *HOME)
    summary, _pins = await results(phone, 3)
    text = summary.text or ""
    assert "Library" not in text, "3 km is beyond 2.5 km"
    assert text.count("this may be out of date") == 3, "three hours is older than one"


async def test_impossible_coordinates(
    phone: Phone, shelters: None, bot_api: LoopbackBotApi
) -> None:
    await onboard(phone)
    await ask(phone)
    await bot_api.share_location(phone.user_id, 0.0, 0.0)
    answer = await phone.next_message()
    assert "That location cannot be right. Please share it again." in (answer.text or "")
    assert request_location_buttons(answer) == ["📍 Share my location"]


async def test_an_area_without_a_point_lists_its_shelters(
    phone: Phone, shelters: None, bot_api: LoopbackBotApi
) -> None:
    await onboard(phone)
    await ask(phone)
    await bot_api.send_text(phone.user_id, "North Valley")
    summary, pins = await results(phone, 2)
    text = summary.text or ""
    assert text.startswith("Shelters in North Valley:")
    assert "1. 🏠 Riverside School\n" in text, "most places free first, no distance"
    assert "2. 🏠 Church Hall\n" in text
    assert (pins[1].venue or {})["address"] == "Open · 1 place free"


async def test_a_place_with_neither_point_nor_area(
    phone: Phone, shelters: None, bot_api: LoopbackBotApi
) -> None:
    await onboard(phone)
    await ask(phone)
    answer = await phone.send("Nowhere Hamlet")
    assert "I know Nowhere Hamlet, but not where exactly it is." in (answer.text or "")
    assert request_location_buttons(answer) == ["📍 Share my location"]


@pytest.mark.parametrize("kind", ["sticker", "voice"])
async def test_a_sticker_or_voice_while_asked(
    phone: Phone, shelters: None, bot_api: LoopbackBotApi, kind: str
) -> None:
    await onboard(phone)
    await ask(phone)
    await getattr(bot_api, f"send_{kind}")(phone.user_id)
    answer = await phone.next_message()
    assert "I can only read a typed place name or a shared location." in (answer.text or "")
    assert request_location_buttons(answer) == ["📍 Share my location"]
    # Still asked: a typed name is still a place.
    await bot_api.send_text(phone.user_id, "Riverside")
    summary, _pins = await results(phone, 5)
    assert (summary.text or "").startswith("Shelters near Riverside")


async def test_back_to_the_menu(phone: Phone, shelters: None) -> None:
    await onboard(phone)
    await ask(phone)
    menu = await phone.send("⬅ Main menu")
    assert menu.text == "Main menu. Choose what you need:"
    assert reply_labels(menu) == MENU
    # No longer asked: a word is just a message again.
    words = await phone.send("Riverside")
    assert "Thank you for your message" in (words.text or "")
    # The button from the old keyboard still works.
    assert (await phone.send("⬅ Main menu")).text == "Main menu. Choose what you need:"
    await ask(phone)
    cancelled = await phone.send("/cancel")
    assert cancelled.text == "Main menu. Choose what you need:"


async def test_another_menu_item_ends_the_question(
    phone: Phone, shelters: None, bot_api: LoopbackBotApi, database: Database
) -> None:
    async with database.transaction() as session:
        session.add(
            Mission(
                external_id="M-AF",
                country_code="AF",
                kind=MissionKind.EMBASSY,
                names={"en": "Embassy of Afghanistan"},
                updated_by="test",
            )
        )
    await onboard(phone)
    await ask(phone)
    consulates = await phone.send("🏛 Consulate contacts")
    assert "Which country's embassy" in (consulates.text or "")
    # And the other way round: the consulates' question ends, "Riverside" is a place.
    await ask(phone)
    await bot_api.send_text(phone.user_id, "Riverside")
    summary, _pins = await results(phone, 5)
    assert (summary.text or "").startswith("Shelters near Riverside")
    words = await phone.send("Afghanistan")
    assert "Thank you for your message" in (words.text or "")


async def test_before_onboarding_the_tap_shows_the_consent_notice(phone: Phone) -> None:
    answer = await phone.send(FIND)
    assert inline_labels(answer)[0] == "✅ I agree"


async def test_the_sandbox_demo_data_answers_at_its_centre(
    phone: Phone, database: Database, bot_api: LoopbackBotApi
) -> None:
    async with database.transaction() as session:
        assert await load_demo_data(session, utcnow())
    await onboard(phone)
    await bot_api.share_location(phone.user_id, *DEMO_CENTRE)
    summary, pins = await results(phone, 5)
    assert (summary.text or "").startswith("Shelters near you, nearest first:")
    assert "Demo data – fictional." in (summary.text or "")
    assert reply_labels(pins[-1]) == MENU
