"""What the shelter answer looks like, without Telegram: Telegram's length limit, RTL, and
when a typed name is clear enough to answer without asking."""

from __future__ import annotations

from datetime import timedelta

from bot.config import load_settings
from bot.flows.shelters import MAX_TEXT, Found, Listed, clear_match, results_text, venue_address
from bot.people import Person
from messages.bidi import LRI, PDI
from messages.places import Place, PlaceKind, PlaceMatch
from messages.shelters import Shelter, ShelterStatus
from storage.base import utcnow

NOW = utcnow()


def shelter(number: int, **values: object) -> Shelter:
    return Shelter(
        external_id=f"SH-{number}",
        names={"en": f"Shelter {number}"},
        notes=values.pop("notes", {}),
        latitude=10.0,
        longitude=20.0,
        status=ShelterStatus.OPEN,
        services=values.pop("services", []),
        updated_at=NOW - timedelta(hours=1),
        updated_by="test",
        **values,
    )


def person(language: str = "en") -> Person:
    return Person(pseudonym="p", chat_id=1, contact=None, language=language)


def test_long_details_are_left_out_before_the_text_passes_telegrams_limit() -> None:
    settings = load_settings({})
    wordy = [
        Listed(
            shelter(
                number,
                address="A" * 300,
                opening_hours="H" * 200,
                notes={"en": "N" * 1000},
                contact_phone="+000 1",
                services=["water", "food", "medical", "sanitation", "step_free", "wifi"],
            ),
            1000.0 * number,
        )
        for number in range(1, 6)
    ]
    text = results_text(
        person(), Found(wordy, []), where=None, area=False, settings=settings, now=NOW
    )
    assert len(text) <= MAX_TEXT
    assert all(f"{n}. 🏠 Shelter {n}" in text for n in range(1, 6))
    assert "+000 1" in text and "AAAA" not in text, "addresses are on the pins"

    short = [Listed(shelter(1, address="1 Main St", notes={"en": "N" * 1000}), 10.0)]
    text = results_text(
        person(), Found(short, []), where=None, area=False, settings=settings, now=NOW
    )
    assert "📍 1 Main St" in text
    assert "N" * 279 + "…" in text and "N" * 280 not in text, "a long note is cut"


def test_values_are_isolated_for_right_to_left_readers() -> None:
    listed = Listed(shelter(1, capacity=10, occupancy=3, address="1 Main St"), 2500.0)
    address = venue_address(person("ar"), listed)
    assert address.endswith(" · 1 Main St"), "a pin's address is a field of its own"
    settings = load_settings({})
    text = results_text(
        person("ar"), Found([listed], []), where=None, area=False, settings=settings, now=NOW
    )
    assert f"{LRI}Shelter 1{PDI}" in text, "a Latin name in an Arabic sentence is isolated"


def match(name: str, score: float) -> PlaceMatch:
    place = Place(external_id=name, kind=PlaceKind.LOCALITY, names={"en": name}, updated_by="t")
    return PlaceMatch(place, name, score)


def test_a_clear_match() -> None:
    assert clear_match([match("Riverside", 0.94)]) is not None, "the only one"
    exact = clear_match([match("Hilltop", 1.0), match("Hilltop Camp", 0.9)])
    assert exact is not None and exact.name == "Hilltop"
    assert clear_match([match("Newtown North", 0.9), match("Newtown South", 0.9)]) is None
    assert clear_match([match("Al Nour", 0.86), match("Al Noor", 0.84)]) is None
