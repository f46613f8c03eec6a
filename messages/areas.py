"""Areas: the first-level administrative area (adm1) a person's requests are about.

A person's last place or location lookup sets their contact's area; what they tell us next
is counted under it (feedback/rollups.py). Only the area code and name are kept, never the
coordinates or the typed place: enough to see where needs are, too coarse to find a person.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from messages.contacts import Contact
from messages.geo import bounding_box, haversine_m, valid_coordinates
from messages.places import Place, PlaceKind
from messages.shelters import Shelter


@dataclass(frozen=True)
class Area:
    code: str
    name: str | None


def area_of_place(place: Place) -> Area | None:
    if place.kind is PlaceKind.ADM1:
        code = place.adm1_code or place.external_id
        return Area(code, place.adm1_name or next(iter(place.names.values()), None))
    if place.adm1_code:
        return Area(place.adm1_code, place.adm1_name)
    return None


async def area_near(
    session: AsyncSession, latitude: float, longitude: float, *, within_km: float
) -> Area | None:
    """The area of the nearest place or shelter that has one, within `within_km`."""
    if not valid_coordinates(latitude, longitude):
        return None
    radius_m = within_km * 1000
    box = bounding_box(latitude, longitude, radius_m)
    candidates: list[tuple[float, str, Area]] = []
    for model in (Place, Shelter):
        rows = await session.execute(
            select(model.latitude, model.longitude, model.adm1_code, model.adm1_name).where(
                model.adm1_code.is_not(None),
                model.latitude.between(box.min_lat, box.max_lat),
                model.longitude.between(box.min_lon, box.max_lon),
            )
        )
        for lat, lon, code, name in rows:
            if lat is None or lon is None or code is None:
                continue
            meters = haversine_m(latitude, longitude, lat, lon)
            if meters <= radius_m:
                candidates.append((meters, code, Area(code, name)))
    return min(candidates, key=lambda c: c[:2])[2] if candidates else None


def remember_area(contact: Contact, area: Area | None) -> None:
    """Keep the person's latest area on their contact (nothing when the area is unknown)."""
    if area is not None:
        contact.area_code, contact.area_name = area.code, area.name


def area_of_contact(contact: Contact) -> Area | None:
    return Area(contact.area_code, contact.area_name) if contact.area_code else None


async def area_names(session: AsyncSession) -> dict[str, str]:
    """adm1 code -> name, from the gazetteer and the shelters (the gazetteer wins)."""
    names: dict[str, str] = {}
    for model in (Shelter, Place):
        rows = await session.execute(
            select(model.adm1_code, model.adm1_name).where(model.adm1_code.is_not(None)).distinct()
        )
        for code, name in rows:
            if code and name:
                names[code] = name
    return names
