"""What officers hand to the transport partner: manifests per departure point, and counts.

Only submitted registrations whose people agreed to share appear. Columns are in English
(the working language of the export); country names follow `language`.
Nothing here names a Telegram account: the reference is the link back to the person.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from evacuation.registrations import Documents, Registration, RegistrationStatus, by_key
from feedback.exports import neutralise
from messages.formatting import country_name
from messages.places import Place, display_name

UNASSIGNED = "unassigned"
HEADER = (
    "reference",
    "departure_point",
    "registered_at",
    "updated_at",
    "household",
    "children",
    "adults",
    "older",
    "people",
    "nationality",
    "nationality_code",
    "travel_documents",
    "special_needs",
    "location",
    "latitude",
    "longitude",
    "destination",
    "phone",
)


@dataclass(frozen=True)
class DeparturePoint:
    key: str  # the place's external id, or UNASSIGNED
    name: str


@dataclass
class Summary:
    registrations: int = 0
    people: int = 0
    by_departure_point: Counter[str] = field(default_factory=Counter)
    by_nationality: Counter[str] = field(default_factory=Counter)
    by_need: Counter[str] = field(default_factory=Counter)


async def _submitted(session: AsyncSession) -> Sequence[tuple[Registration, Place | None]]:
    rows = await session.execute(
        select(Registration, Place)
        .outerjoin(Place, Registration.departure_point_id == Place.id)
        .where(
            Registration.status == RegistrationStatus.SUBMITTED.value,
            Registration.consent_share.is_(True),
        )
        .order_by(Registration.submitted_at, Registration.id)
    )
    return [(registration, place) for registration, place in rows]


def _point(place: Place | None) -> DeparturePoint:
    if place is None:
        return DeparturePoint(UNASSIGNED, "Not assigned yet")
    return DeparturePoint(place.external_id, neutralise(display_name(place.names, "en")))


async def departure_points(session: AsyncSession) -> list[tuple[DeparturePoint, int]]:
    """Departure points with registrations, and how many registrations each has."""
    counts: Counter[DeparturePoint] = Counter(
        _point(place) for _, place in await _submitted(session)
    )
    return sorted(counts.items(), key=lambda item: (item[0].key == UNASSIGNED, item[0].name))


async def summary(session: AsyncSession, language: str = "en") -> Summary:
    """Registrations and people by departure point, people by nationality, registrations by
    special need."""
    result = Summary()
    for registration, place in await _submitted(session):
        result.registrations += 1
        result.people += registration.people
        result.by_departure_point[_point(place).name] += registration.people
        result.by_nationality[_nationality(registration, language)] += registration.people
        for need in registration.need_list:
            result.by_need[need.key] += 1
    return result


def format_summary(counts: Summary, top: int = 10) -> str:
    """The counts as plain text, for the CLI and the staff command."""
    lines = [f"Registrations: {counts.registrations} · people: {counts.people}"]
    for title, counter in (
        ("People by departure point", counts.by_departure_point),
        ("People by nationality", counts.by_nationality),
        ("Registrations by special need", counts.by_need),
    ):
        lines.append(f"\n{title}:")
        lines += [f"  {name}: {count}" for name, count in counter.most_common(top)] or ["  —"]
    return "\n".join(lines)


async def manifest_rows(
    session: AsyncSession, point_key: str, language: str = "en"
) -> list[tuple[str | int | float, ...]]:
    rows = []
    for registration, place in await _submitted(session):
        point = _point(place)
        if point.key == point_key:
            rows.append(_row(registration, point, language))
    return rows


def _row(
    registration: Registration, point: DeparturePoint, language: str
) -> tuple[str | int | float, ...]:
    """Every text cell is quoted where a spreadsheet would run it as a formula (CWE-1236):
    people typed some, imports wrote others. The phone number is only digits behind an
    optional "+" (normalize_phone), which a spreadsheet reads as a number, so it stays as is."""
    documents = by_key(Documents, registration.documents or "")
    cells = (
        registration.reference or "",
        point.name,
        _iso(registration.submitted_at),
        _iso(registration.updated_at),
        "yes" if registration.for_household else "no",
        registration.children,
        registration.adults,
        registration.older,
        registration.people,
        _nationality(registration, language),
        registration.nationality or "",
        documents.key if documents else "",
        ", ".join(need.key for need in registration.need_list),
        registration.location_text or "",
        registration.latitude if registration.latitude is not None else "",
        registration.longitude if registration.longitude is not None else "",
        registration.destination or "",
    )
    quoted = tuple(neutralise(cell) if isinstance(cell, str) else cell for cell in cells)
    return (*quoted, registration.phone or "")


def _nationality(registration: Registration, language: str) -> str:
    code = registration.nationality
    if code is None or code == "none":
        return "Stateless or not known"
    return country_name(code, language)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="minutes") if moment else ""


def to_csv(rows: Sequence[Sequence[str | int | float]]) -> bytes:
    """UTF-8 with a byte-order mark, so that spreadsheet programs read non-Latin names."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(rows: Sequence[Sequence[str | int | float]], title: str) -> bytes:
    from openpyxl import Workbook  # ~15 MB per process: imported when used
    from openpyxl.styles import Font

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    # Excel's rules for sheet names: at most 31 characters, none of []:*?/\\
    sheet.title = "".join(ch for ch in title if ch not in "[]:*?/\\")[:31] or "manifest"
    sheet.append(HEADER)
    for row in rows:
        sheet.append(list(row))
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # text, whatever it starts with: never a formula
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
