"""The gazetteer: named areas and places a person can type instead of sharing a location.

Place names are matched in the person's language and script against a gazetteer loaded with
the shelters (`crisis-comms import places FILE`); no online geocoding, so nothing a person
types leaves the deployment. Departure points (bus stations, ports, assembly points) are
places too, so that evacuation and transport can point people to the nearest one.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import JSON, Enum, Float, Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from messages.geo import (
    MATCH_CUTOFF,
    bounding_box,
    haversine_m,
    name_similarity,
    normalize_name,
    valid_coordinates,
)
from messages.languages import fallback_chain
from storage.base import Base, UtcDateTime, utcnow


class PlaceKind(enum.StrEnum):
    ADM1 = "adm1"  # top-level administrative area (province, governorate, region)
    ADM2 = "adm2"  # second-level administrative area (district, municipality)
    LOCALITY = "locality"  # a town, village, neighbourhood or camp
    DEPARTURE_POINT = "departure_point"  # where evacuation or transport leaves from


class Place(Base):
    __tablename__ = "places"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The identifier in the source data (a P-code where there is one), used to upsert.
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[PlaceKind] = mapped_column(
        Enum(
            PlaceKind,
            native_enum=False,
            length=32,
            values_callable=lambda e: [k.value for k in e],
        )
    )
    # Language code -> name ({"en": "Riverside", "ar": "ريفرسايد"}); at least one.
    names: Mapped[dict[str, str]] = mapped_column(JSON)
    # Other spellings and transliterations people use, in any script.
    alt_names: Mapped[list[str]] = mapped_column(JSON, default=list)
    adm1_code: Mapped[str | None] = mapped_column(String(32))
    adm1_name: Mapped[str | None] = mapped_column(String(120))
    adm2_code: Mapped[str | None] = mapped_column(String(32))
    adm2_name: Mapped[str | None] = mapped_column(String(120))
    # A point for localities and departure points, a centroid (or nothing) for areas.
    latitude: Mapped[float | None] = mapped_column(Float, index=True)
    longitude: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(120))


def display_name(
    names: Mapping[str, str], language: str, fallbacks: Sequence[str] = ("en",)
) -> str:
    """The name to show a person: in their language, else the first of its fallback chain
    (the languages its readers also read, then `fallbacks`, then English), else any.

    Shared by everything that keeps names per language (places, shelters, missions). Names
    are proper nouns, so unlike notes no "not in your language" note is added. "" only for
    an empty mapping, which the importer never stores.
    """
    present = {code: name for code, name in names.items() if name and name.strip()}
    for code in fallback_chain(language, tuple(fallbacks)):
        if code in present:
            return present[code]
    return present[sorted(present)[0]] if present else ""


@dataclass(frozen=True)
class PlaceMatch:
    place: Place
    name: str  # the place's name in the person's language (or its fallback)
    score: float  # 0..1; 1 is an exact match after normalisation


async def match_places(
    session: AsyncSession, text: str, language: str, *, limit: int = 3
) -> list[PlaceMatch]:
    """The places a person most likely meant by `text`, best first; [] when none is close.

    Every name in every language and every alternative spelling is compared, so a person
    may type in their script or a Latin transliteration; typos are tolerated ("Riversde").
    On equal scores a name in the person's own language wins, then one in a language they
    also read. The gazetteer of a response is small (hundreds to a few thousand places), so
    it is read whole: simpler and faster than a fuzzy index in the database.
    """
    query = normalize_name(text)
    if len(query) < 2:
        return []
    chain = fallback_chain(language, ())
    ranked: list[tuple[float, int, str, Place]] = []
    for place in await session.scalars(select(Place)):
        best: tuple[float, int] = (0.0, -1)
        candidates = list(place.names.items())
        candidates += [("", alt) for alt in place.alt_names or ()]
        for code, name in candidates:
            score = name_similarity(query, normalize_name(name))
            if score < MATCH_CUTOFF:
                continue
            preference = 2 if code == language else 1 if code in chain else 0
            best = max(best, (score, preference))
        if best[0] >= MATCH_CUTOFF:
            ranked.append((best[0], best[1], str(place.external_id), place))
    ranked.sort(key=lambda item: (-item[0], -item[1], item[2]))
    return [
        PlaceMatch(place, display_name(place.names, language), round(score, 3))
        for score, _preference, _id, place in ranked[:limit]
    ]


async def find_place(session: AsyncSession, external_id: str) -> Place | None:
    return await session.scalar(select(Place).where(Place.external_id == external_id))


async def nearest_departure_point(
    session: AsyncSession, latitude: float, longitude: float, *, within_km: float
) -> tuple[Place, float] | None:
    """The closest departure point and its distance in metres, or None when none is within
    `within_km` (a person must not be sent across the country to a bus).

    Raises ValueError for impossible coordinates.
    """
    if not valid_coordinates(latitude, longitude):
        raise ValueError(f"impossible coordinates: {latitude}, {longitude}")
    radius_m = within_km * 1000
    box = bounding_box(latitude, longitude, radius_m)
    rows = await session.scalars(
        select(Place).where(
            Place.kind == PlaceKind.DEPARTURE_POINT,
            Place.latitude.between(box.min_lat, box.max_lat),
            Place.longitude.between(box.min_lon, box.max_lon),
        )
    )
    best: tuple[float, str, Place] | None = None
    for place in rows:
        if place.latitude is None or place.longitude is None:
            continue
        meters = haversine_m(latitude, longitude, place.latitude, place.longitude)
        if meters <= radius_m and (best is None or (meters, place.external_id) < best[:2]):
            best = (meters, place.external_id, place)
    return None if best is None else (best[2], best[0])
