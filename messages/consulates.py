"""Consular missions: who a stranded migrant can call for papers and help to return home.

A person gives their nationality (see messages/countries.py); the bot shows the missions on
record for it: embassy or consulate, city, phone, emergency phone, email, address, hours, and
services such as emergency travel documents or a laissez-passer. In a crisis, lost papers
are what most often keeps migrants from moving to safety (IOM MICIC Guidelines).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

from sqlalchemy import JSON, Enum, Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from messages.i18n import N_
from messages.places import display_name
from storage.base import Base, UtcDateTime, utcnow


class MissionKind(enum.StrEnum):
    EMBASSY = "embassy"
    CONSULATE = "consulate"
    HONORARY_CONSULATE = "honorary_consulate"


# Embassies first: they can do everything; honorary consuls often only refer.
KIND_ORDER = (MissionKind.EMBASSY, MissionKind.CONSULATE, MissionKind.HONORARY_CONSULATE)


class MissionService(enum.StrEnum):
    """Consular services a person in a crisis most often needs. The value is the key stored
    and imported; `label` is English, translated with gettext at display time."""

    EMERGENCY_TRAVEL_DOCUMENT = "emergency_travel_document"
    LAISSEZ_PASSER = "laissez_passer"
    CIVIL_REGISTRATION = "civil_registration"
    LEGAL_ASSISTANCE = "legal_assistance"
    RETURN_ASSISTANCE = "return_assistance"
    DETENTION_VISITS = "detention_visits"
    FAMILY_TRACING = "family_tracing"

    @property
    def icon(self) -> str:
        return _SERVICE_TEXTS[self][0]

    @property
    def label(self) -> str:
        return _SERVICE_TEXTS[self][1]


# Icon and English label of each service; N_ marks the labels for gettext extraction.
_SERVICE_TEXTS: Mapping[MissionService, tuple[str, str]] = MappingProxyType(
    {
        MissionService.EMERGENCY_TRAVEL_DOCUMENT: ("🛂", N_("Emergency travel documents")),
        MissionService.LAISSEZ_PASSER: ("📄", N_("Laissez-passer")),
        MissionService.CIVIL_REGISTRATION: (
            "👶",
            N_("Civil registration (births, marriages, deaths)"),
        ),
        MissionService.LEGAL_ASSISTANCE: ("⚖️", N_("Legal assistance")),
        MissionService.RETURN_ASSISTANCE: ("🏠", N_("Help to return home")),
        MissionService.DETENTION_VISITS: ("🔒", N_("Visits to nationals in detention")),
        MissionService.FAMILY_TRACING: ("👪", N_("Help to find missing family members")),
    }
)


class Mission(Base):
    __tablename__ = "missions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    # ISO 3166-1 alpha-2 code of the nationality served (the sending state), upper case.
    country_code: Mapped[str] = mapped_column(String(2), index=True)
    kind: Mapped[MissionKind] = mapped_column(
        Enum(
            MissionKind,
            native_enum=False,
            length=32,
            values_callable=lambda e: [k.value for k in e],
        )
    )
    names: Mapped[dict[str, str]] = mapped_column(JSON)  # language code -> name
    notes: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # language code -> text
    city: Mapped[str | None] = mapped_column(String(120))
    address: Mapped[str | None] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(40))
    emergency_phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(200))
    hours: Mapped[str | None] = mapped_column(String(200))
    services: Mapped[list[str]] = mapped_column(JSON, default=list)  # MissionService values
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(120))

    def service_list(self) -> list[MissionService]:
        """The services as enum members, in the enum's order; unknown keys are skipped."""
        keys = set(self.services or ())
        return [service for service in MissionService if service.value in keys]

    def name(self, language: str, fallbacks: tuple[str, ...] = ("en",)) -> str:
        return display_name(self.names, language, fallbacks)


async def missions_for(session: AsyncSession, country_code: str) -> list[Mission]:
    """The missions on record for a nationality: embassies, then consulates, then honorary
    consulates, each by city. [] when none is on record, which the bot must say plainly."""
    rows = await session.scalars(
        select(Mission).where(Mission.country_code == country_code.strip().upper())
    )
    return sorted(
        rows, key=lambda m: (KIND_ORDER.index(m.kind), (m.city or "").casefold(), m.external_id)
    )


async def countries_with_missions(session: AsyncSession) -> list[str]:
    """The country codes with at least one mission on record, sorted."""
    rows = await session.scalars(select(Mission.country_code).distinct())
    return sorted(rows)


async def find_mission(session: AsyncSession, external_id: str) -> Mission | None:
    return await session.scalar(select(Mission).where(Mission.external_id == external_id))
