"""The gazetteer and geography: name normalisation, coordinates and distances (pure), place
matching and the nearest departure point (on SQLite and PostgreSQL)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from messages.geo import (
    EARTH_RADIUS_M,
    bounding_box,
    haversine_m,
    name_similarity,
    normalize_name,
    valid_coordinates,
)
from messages.places import (
    Place,
    PlaceKind,
    display_name,
    find_place,
    match_places,
    nearest_departure_point,
)
from storage.database import Database

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("typed", "normalised"),
    [
        ("  Érythrée ", "erythree"),
        ("SAINT-Étienne", "saint etienne"),
        ("Łódź", "lodz"),
        ("Straße", "strasse"),
        ("تَلُّ الزَّهْرَة", "تل الزهره"),  # tashkeel removed, teh marbuta = heh
        ("إيران", "ايران"),  # hamza seats of alef unified
        ("سوریه", "سوريه"),  # Persian yeh = Arabic yeh
        ("مـــصر", "مصر"),  # tatweel dropped
        ("لیک\u200cشور", "\u0644\u064a\u0643\u0634\u0648\u0631"),  # ZWNJ dropped, ی=ي, ک=ك
        ("Україна, Київ", "україна київ"),  # Cyrillic keeps its letters, й and ї included
        ("বাংলাদেশ", "বাংলাদেশ"),  # Bengali vowel signs are letters, not accents
    ],
)
def test_names_are_normalised_for_matching(typed: str, normalised: str) -> None:
    assert normalize_name(typed) == normalised


def test_similarity_tolerates_typos_and_extra_words_but_not_other_names() -> None:
    assert name_similarity("riversde", "riverside") > 0.9
    assert name_similarity("riverside town", "riverside") >= 0.9
    assert name_similarity("afghan", "afghanistan") >= 0.8
    assert name_similarity("atlantis", "lakeshore") < 0.6
    assert name_similarity("uk", "ukraine") < 0.8, "two letters only match near-exactly"
    assert name_similarity("a", "a") == 0.0


@pytest.mark.parametrize(
    ("latitude", "longitude", "valid"),
    [
        (46.2044, 6.1432, True),
        (-90.0, -180.0, True),
        (90.0, 180.0, True),
        (90.5, 6.0, False),
        (46.0, 180.1, False),
        (-91.0, 0.0, False),
        (0.0, 0.0, False),  # two empty cells exported as zeros
        (math.nan, 6.0, False),
        (46.0, math.inf, False),
    ],
)
def test_valid_coordinates(latitude: float, longitude: float, valid: bool) -> None:
    assert valid_coordinates(latitude, longitude) is valid


def test_haversine_distances() -> None:
    one_degree = 2 * math.pi * EARTH_RADIUS_M / 360
    assert haversine_m(0.0, 10.0, 1.0, 10.0) == pytest.approx(one_degree)
    assert haversine_m(46.2, 6.1, 46.2, 6.1) == 0.0
    assert haversine_m(0.0, 0.0, 0.0, 180.0) == pytest.approx(math.pi * EARTH_RADIUS_M)
    # Geneva to Lausanne is about 51 km as the crow flies.
    assert haversine_m(46.2044, 6.1432, 46.5197, 6.6323) == pytest.approx(51_000, rel=0.02)


def test_bounding_box_contains_the_circle_and_wraps_safely() -> None:
    box = bounding_box(46.2, 6.1, 10_000)
    for bearing in range(0, 360, 15):
        # A point 9.99 km away in every direction lies inside the box.
        d = 9_990 / EARTH_RADIUS_M
        lat1, lon1, theta = math.radians(46.2), math.radians(6.1), math.radians(bearing)
        lat2 = math.asin(
            math.sin(lat1) * math.cos(d) + math.cos(lat1) * math.sin(d) * math.cos(theta)
        )
        lon2 = lon1 + math.atan2(
            math.sin(theta) * math.sin(d) * math.cos(lat1),
            math.cos(d) - math.sin(lat1) * math.sin(lat2),
        )
        assert box.min_lat <= math.degrees(lat2) <= box.max_lat
        assert box.min_lon <= math.degrees(lon2) <= box.max_lon
    assert box.max_lat - box.min_lat < 0.2
    across = bounding_box(10.0, 179.95, 20_000)  # crosses the antimeridian
    assert (across.min_lon, across.max_lon) == (-180.0, 180.0)
    polar = bounding_box(89.99, 0.0, 5_000)
    assert (polar.min_lon, polar.max_lon) == (-180.0, 180.0)
    assert polar.max_lat == 90.0


def test_display_name_follows_the_persons_language_then_fallbacks() -> None:
    names = {"en": "Riverside", "ar": "ريفرسايد", "fa": "ریورساید"}
    assert display_name(names, "ar") == "ريفرسايد"
    assert display_name(names, "fa-AF") == "ریورساید", "Dari readers read Persian"
    assert display_name(names, "uk") == "Riverside", "English ends every chain"
    assert display_name({"fr": "Gare", "ar": "محطة"}, "uk", fallbacks=("fr",)) == "Gare"
    assert display_name({"so": "Magaalada", "ar": "المدينة"}, "uk") == "المدينة", "any, stably"
    assert display_name({"en": "  ", "ar": "محطة"}, "en") == "محطة", "blank names are absent"
    assert display_name({}, "en") == ""


def _place(
    external_id: str,
    names: dict[str, str],
    kind: PlaceKind = PlaceKind.LOCALITY,
    latitude: float | None = None,
    longitude: float | None = None,
    alt_names: list[str] | None = None,
) -> Place:
    return Place(
        external_id=external_id,
        kind=kind,
        names=names,
        alt_names=alt_names or [],
        latitude=latitude,
        longitude=longitude,
        updated_at=NOW,
        updated_by="test",
    )


async def _gazetteer(database: Database) -> None:
    async with database.transaction() as session:
        session.add_all(
            [
                _place(
                    "L1",
                    {"en": "Riverside", "ar": "ريفرسايد", "uk": "Ріверсайд", "fa": "ریورساید"},
                    latitude=46.2044,
                    longitude=6.1432,
                    alt_names=["Rivertown"],
                ),
                _place(
                    "L2", {"en": "Tal Zahra", "ar": "تل الزهرة"}, latitude=46.144, longitude=6.081
                ),
                _place("L3", {"en": "Sainte-Émilie", "fr": "Sainte-Émilie"}),
                _place("L4", {"en": "Nour"}),
                _place("L5", {"fr": "Nour"}),
                _place("A1", {"en": "North Valley Province"}, kind=PlaceKind.ADM1),
                _place(
                    "DP1",
                    {"en": "Riverside Bus Station"},
                    PlaceKind.DEPARTURE_POINT,
                    46.2102,
                    6.1424,
                ),
                _place(
                    "DP2",
                    {"en": "Stonebridge Station"},
                    PlaceKind.DEPARTURE_POINT,
                    46.1994,
                    6.2369,
                ),
            ]
        )


async def test_places_match_typos_scripts_and_alternative_names(database: Database) -> None:
    await _gazetteer(database)
    async with database.transaction() as session:
        [first, *_] = await match_places(session, "Riversde", "en")
        assert first.place.external_id == "L1" and first.name == "Riverside"
        assert 0.8 <= first.score < 1.0
        # Typed in Latin, shown in the person's script.
        ukrainian = await match_places(session, "riverside", "uk")
        assert ukrainian[0].name == "Ріверсайд" and ukrainian[0].score == 1.0
        arabic = await match_places(session, "تَل الزهره", "ar")
        assert [m.place.external_id for m in arabic][:1] == ["L2"]
        assert arabic[0].name == "تل الزهرة"
        accents = await match_places(session, "sainte emilie", "fr")
        assert accents[0].place.external_id == "L3"
        alternative = await match_places(session, "Rivertown", "en")
        assert alternative[0].place.external_id == "L1" and alternative[0].name == "Riverside"
        dari = await match_places(session, "ریورساید", "fa-AF")
        assert dari[0].name == "ریورساید", "a Dari reader sees the Persian name"


async def test_equal_scores_prefer_the_persons_language(database: Database) -> None:
    await _gazetteer(database)
    async with database.transaction() as session:
        french = await match_places(session, "Nour", "fr")
        english = await match_places(session, "Nour", "en")
    assert [m.place.external_id for m in french] == ["L5", "L4"]
    assert [m.place.external_id for m in english] == ["L4", "L5"]
    assert french[0].score == french[1].score == 1.0


async def test_unknown_or_empty_place_names_match_nothing(database: Database) -> None:
    await _gazetteer(database)
    async with database.transaction() as session:
        for text in ("Atlantis", "asdfgh", "", "  ", "a", "?!", "123456"):
            assert await match_places(session, text, "en") == [], text


async def test_matches_are_ranked_and_limited(database: Database) -> None:
    await _gazetteer(database)
    async with database.transaction() as session:
        matches = await match_places(session, "Riverside", "en", limit=5)
        assert [m.place.external_id for m in matches] == ["L1", "DP1"]
        assert matches[0].score > matches[1].score
        assert len(await match_places(session, "Station", "en", limit=1)) == 1
        assert await find_place(session, "DP2") is not None
        assert await find_place(session, "nope") is None


async def test_nearest_departure_point(database: Database) -> None:
    await _gazetteer(database)
    async with database.transaction() as session:
        nearest = await nearest_departure_point(session, 46.2044, 6.1432, within_km=20)
        assert nearest is not None
        place, meters = nearest
        assert place.external_id == "DP1", "localities are not departure points"
        assert meters == pytest.approx(650, abs=30)
        east = await nearest_departure_point(session, 46.20, 6.25, within_km=20)
        assert east is not None and east[0].external_id == "DP2"
        assert await nearest_departure_point(session, 46.2044, 6.1432, within_km=0.1) is None
        assert await nearest_departure_point(session, -30.0, -20.0, within_km=100) is None
        with pytest.raises(ValueError, match="impossible coordinates"):
            await nearest_departure_point(session, 123.0, 6.0, within_km=20)
