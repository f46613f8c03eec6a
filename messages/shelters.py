"""Shelters: where a person can sleep tonight, and whether there is room.

A shelter has names and notes per language, an address and a point, its administrative
area, capacity and current occupancy, a status (open, full, closed), the services it offers,
a contact, opening hours, and when it was last updated and by whom. Every change of status
or occupancy is kept in `shelter_changes`, timestamped and attributed, so that a responder
can see who said what when, and a person can be told how fresh the information is.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

from sqlalchemy import JSON, Enum, Float, ForeignKey, Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, relationship

from messages.geo import bounding_box, haversine_m, valid_coordinates
from messages.i18n import N_
from messages.places import display_name
from storage.base import Base, UtcDateTime, utcnow


class ShelterStatus(enum.StrEnum):
    OPEN = "open"
    FULL = "full"  # shown to people, marked as full: they may still find help or a referral
    CLOSED = "closed"  # never shown to people


class ShelterService(enum.StrEnum):
    """What a shelter offers, after the usual CCCM site and Sphere shelter checklists.

    The value is the key stored and imported; `label` is English, translated with gettext
    at display time.
    """

    WATER = "water"
    FOOD = "food"
    MEDICAL = "medical"
    SANITATION = "sanitation"
    STEP_FREE = "step_free"
    WOMEN_CHILDREN = "women_children"
    PETS = "pets"
    CHARGING = "charging"
    WIFI = "wifi"
    PSYCHOSOCIAL = "psychosocial"

    @property
    def icon(self) -> str:
        return _SERVICE_TEXTS[self][0]

    @property
    def label(self) -> str:
        return _SERVICE_TEXTS[self][1]


# Icon and English label of each service; N_ marks the labels for gettext extraction.
_SERVICE_TEXTS: Mapping[ShelterService, tuple[str, str]] = MappingProxyType(
    {
        ShelterService.WATER: ("💧", N_("Drinking water")),
        ShelterService.FOOD: ("🍲", N_("Food")),
        ShelterService.MEDICAL: ("🩺", N_("Medical care")),
        ShelterService.SANITATION: ("🚻", N_("Toilets and showers")),
        ShelterService.STEP_FREE: ("♿", N_("Step-free access")),
        ShelterService.WOMEN_CHILDREN: ("👩‍👧", N_("Safe space for women and children")),
        ShelterService.PETS: ("🐾", N_("Pets allowed")),
        ShelterService.CHARGING: ("🔌", N_("Phone charging")),
        ShelterService.WIFI: ("📶", N_("Wi-Fi")),
        ShelterService.PSYCHOSOCIAL: ("🤝", N_("Psychosocial support")),
    }
)


def _status_column() -> Enum:
    return Enum(
        ShelterStatus,
        native_enum=False,
        length=16,
        values_callable=lambda e: [s.value for s in e],
    )


class Shelter(Base):
    __tablename__ = "shelters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The identifier in the source data (the site code of the CCCM list), used to upsert.
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    names: Mapped[dict[str, str]] = mapped_column(JSON)  # language code -> name
    notes: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # language code -> text
    address: Mapped[str | None] = mapped_column(String(300))
    latitude: Mapped[float] = mapped_column(Float, index=True)
    longitude: Mapped[float] = mapped_column(Float)
    adm1_code: Mapped[str | None] = mapped_column(String(32), index=True)
    adm1_name: Mapped[str | None] = mapped_column(String(120))
    adm2_code: Mapped[str | None] = mapped_column(String(32))
    adm2_name: Mapped[str | None] = mapped_column(String(120))
    capacity: Mapped[int | None] = mapped_column(Integer)  # people; None when unknown
    occupancy: Mapped[int | None] = mapped_column(Integer)  # people there now; None: unknown
    status: Mapped[ShelterStatus] = mapped_column(_status_column())
    services: Mapped[list[str]] = mapped_column(JSON, default=list)  # ShelterService values
    contact_name: Mapped[str | None] = mapped_column(String(120))
    contact_phone: Mapped[str | None] = mapped_column(String(40))
    opening_hours: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(120))

    changes: Mapped[list[ShelterChange]] = relationship(
        back_populates="shelter",
        cascade="all, delete-orphan",
        passive_deletes=True,  # the database's ON DELETE CASCADE removes the history
        order_by="ShelterChange.at",
        lazy="raise",  # history can be long: read it with shelter_history(), never by accident
    )

    @property
    def places_free(self) -> int | None:
        """Beds or places left: never negative (an overcrowded shelter has 0), None when the
        capacity or the occupancy is unknown."""
        if self.capacity is None or self.occupancy is None:
            return None
        return max(0, self.capacity - self.occupancy)

    def service_list(self) -> list[ShelterService]:
        """The services as enum members, in the enum's order; unknown keys are skipped."""
        keys = set(self.services or ())
        return [service for service in ShelterService if service.value in keys]

    def name(self, language: str, fallbacks: tuple[str, ...] = ("en",)) -> str:
        return display_name(self.names, language, fallbacks)


class ShelterChange(Base):
    """One update of a shelter's status or occupancy: who, when, and the resulting values."""

    __tablename__ = "shelter_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shelter_id: Mapped[int] = mapped_column(
        ForeignKey("shelters.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    by: Mapped[str] = mapped_column(String(120))
    status: Mapped[ShelterStatus] = mapped_column(_status_column())
    occupancy: Mapped[int | None] = mapped_column(Integer)

    shelter: Mapped[Shelter] = relationship(back_populates="changes")


class ShelterUpdateError(ValueError):
    """An update a communications officer must correct; the message says what to fix."""


@dataclass(frozen=True)
class NearbyShelter:
    shelter: Shelter
    distance_m: float


async def nearest_shelters(
    session: AsyncSession,
    latitude: float,
    longitude: float,
    *,
    limit: int = 5,
    within_km: float,
) -> list[NearbyShelter]:
    """Open and full shelters within `within_km`, nearest first; [] when there are none.

    Full shelters are included so that a person sees them marked as full rather than
    wondering why the shelter down the road is missing; closed ones never are. Raises
    ValueError for impossible coordinates.
    """
    if not valid_coordinates(latitude, longitude):
        raise ValueError(f"impossible coordinates: {latitude}, {longitude}")
    radius_m = within_km * 1000
    box = bounding_box(latitude, longitude, radius_m)
    rows = await session.scalars(
        select(Shelter).where(
            Shelter.status != ShelterStatus.CLOSED,
            Shelter.latitude.between(box.min_lat, box.max_lat),
            Shelter.longitude.between(box.min_lon, box.max_lon),
        )
    )
    nearby: list[NearbyShelter] = []
    for shelter in rows:
        meters = haversine_m(latitude, longitude, shelter.latitude, shelter.longitude)
        if meters <= radius_m:
            nearby.append(NearbyShelter(shelter, meters))
    nearby.sort(key=lambda item: (item.distance_m, item.shelter.external_id))
    return nearby[:limit]


def is_stale(shelter: Shelter, now: datetime, max_age: timedelta) -> bool:
    """True when the shelter's information is older than `max_age`: the bot then says when it
    was last confirmed instead of presenting it as current."""
    return now - shelter.updated_at > max_age


async def update_shelter(
    session: AsyncSession,
    shelter: Shelter,
    *,
    status: ShelterStatus | None,
    occupancy: int | None,
    by: str,
    now: datetime,
) -> ShelterChange:
    """Record a new status and/or occupancy, and who reported it when.

    - A status given explicitly is kept as given: the officer on site knows better than the
      numbers (a full shelter may take a family in; capacity figures go out of date).
    - An occupancy given alone moves the status with it: an open shelter at or over its
      capacity becomes full, a full one with room again becomes open. A closed shelter stays
      closed, whatever the count.
    - Occupancy over capacity is accepted (overcrowding is real and must be visible);
      `places_free` is then 0.
    - Neither given records a confirmation: the information is unchanged but current, so the
      shelter is no longer stale.

    Raises ShelterUpdateError for a negative occupancy or a missing author.
    """
    if not by or not by.strip():
        raise ShelterUpdateError("say who reports the update")
    if occupancy is not None and occupancy < 0:
        raise ShelterUpdateError(f"occupancy must be 0 or more, not {occupancy}")
    if occupancy is not None:
        shelter.occupancy = occupancy
    if status is not None:
        shelter.status = status
    elif occupancy is not None and shelter.capacity is not None:
        if shelter.status is ShelterStatus.OPEN and occupancy >= shelter.capacity:
            shelter.status = ShelterStatus.FULL
        elif shelter.status is ShelterStatus.FULL and occupancy < shelter.capacity:
            shelter.status = ShelterStatus.OPEN
    shelter.updated_at = now
    shelter.updated_by = by.strip()
    return await record_change(session, shelter, by=by.strip(), now=now)


async def record_change(
    session: AsyncSession, shelter: Shelter, *, by: str, now: datetime
) -> ShelterChange:
    """A history row with the shelter's current status and occupancy (also used by import)."""
    await session.flush()  # a new shelter needs its id
    change = ShelterChange(
        shelter_id=shelter.id, at=now, by=by, status=shelter.status, occupancy=shelter.occupancy
    )
    session.add(change)
    return change


async def shelter_history(session: AsyncSession, shelter: Shelter) -> list[ShelterChange]:
    """The shelter's changes, oldest first."""
    result = await session.scalars(
        select(ShelterChange)
        .where(ShelterChange.shelter_id == shelter.id)
        .order_by(ShelterChange.at, ShelterChange.id)
    )
    return list(result)


async def find_shelter(session: AsyncSession, external_id: str) -> Shelter | None:
    return await session.scalar(select(Shelter).where(Shelter.external_id == external_id))


async def list_shelters(session: AsyncSession, *, adm1_code: str | None = None) -> list[Shelter]:
    """Every shelter (or those of one top-level area), closed ones included, for staff:
    ordered by area, then English name, so a list reads like the source spreadsheet."""
    query = select(Shelter)
    if adm1_code is not None:
        query = query.where(Shelter.adm1_code == adm1_code)
    shelters = list(await session.scalars(query))
    shelters.sort(key=lambda s: (s.adm1_name or "", s.name("en").casefold(), s.external_id))
    return shelters


async def shelters_in_area(session: AsyncSession, level: str, code: str) -> list[Shelter]:
    """Open and full shelters recorded in an administrative area ("adm1" or "adm2" code),
    for a place with no point: most places free first (unknown last), then by name."""
    column = Shelter.adm1_code if level == "adm1" else Shelter.adm2_code
    rows = await session.scalars(
        select(Shelter).where(Shelter.status != ShelterStatus.CLOSED, column == code)
    )

    def order(shelter: Shelter) -> tuple[int, str, str]:
        free = shelter.places_free
        return (-(free if free is not None else -1), shelter.name("en"), shelter.external_id)

    return sorted(rows, key=order)
