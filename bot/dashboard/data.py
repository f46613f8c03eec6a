"""What each dashboard page shows, read from the database into plain dataclasses.

The templates only format these; nothing here knows about HTTP. Items are shown by their
reference and a shortened contact pseudonym: never a chat id, a name or a phone number.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from math import ceil

from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.dashboard.charts import bar, columns, heat_level, sparkline
from evacuation.registrations import Registration
from feedback.flags import Flag, compute_flags
from feedback.items import FeedbackItem, ItemCode, ItemStatus
from feedback.queries import ItemFilter, count_items, find_items
from feedback.replies import Reply
from feedback.review import TRANSITIONS, ItemEvent, format_response_times
from feedback.summary import UNKNOWN, Summary, Window, iso_week, summarise
from feedback.taxonomy import taxonomy
from messages.areas import area_names
from messages.contacts import Contact
from messages.places import Place, display_name
from messages.shelters import is_stale, list_shelters
from staff.models import StaffMember

PAGE_SIZE = 50
PSEUDONYM_SHOWN = 8  # enough to tell people apart on one page, too little to look anyone up
HEAT_AREAS = 12  # columns of the heat map; the rest are summed under "other areas"
OTHER_AREAS = "*"


def short_pseudonym(pseudonym: str | None) -> str:
    return f"{pseudonym[:PSEUDONYM_SHOWN]}…" if pseudonym else "–"


# --- overview -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SectorRow:
    number: int
    name: str
    count: int
    trend: Markup
    bar: Markup


@dataclass(frozen=True)
class HeatCell:
    count: int
    level: int
    items: ItemFilter | None  # the items behind the cell; None: no link


@dataclass(frozen=True)
class HeatRow:
    sector: int
    name: str
    cells: list[HeatCell]


@dataclass(frozen=True)
class Share:
    label: str
    count: int
    bar: Markup


@dataclass(frozen=True)
class Overview:
    summary: Summary
    flags: list[Flag]
    sectors: list[SectorRow]
    total_chart: Markup
    heat_areas: list[str]  # column labels
    heat: list[HeatRow]
    languages: list[Share]
    types: list[Share]
    statuses: list[Share]
    response: str
    sensitive_response: str | None
    areas: list[tuple[str, str]]  # (code, label) for the area filter


def _shares(counts: dict[str, int], label: dict[str, str] | None = None) -> list[Share]:
    top = max(counts.values(), default=0)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [
        Share((label or {}).get(key, key) or "unknown", n, bar(n, top)) for key, n in ordered if n
    ]


def _series(summary: Summary, by_day: dict[date, int]) -> tuple[list[int], list[str]]:
    """Daily values for windows up to 31 days, weekly beyond (a 90-day line is unreadable)."""
    days = summary.window.days
    if len(days) <= 31:
        return [by_day.get(day, 0) for day in days], [day.isoformat() for day in days]
    weekly: dict[str, int] = defaultdict(int)
    for day, n in by_day.items():
        weekly[iso_week(day)] += n
    return [weekly.get(week, 0) for week in summary.weeks], list(summary.weeks)


def _heat(summary: Summary, link: bool) -> tuple[list[str], list[HeatRow]]:
    tax = taxonomy()
    ranked = sorted(summary.by_area, key=lambda code: (-summary.by_area[code], code))
    shown = ranked[:HEAT_AREAS]
    rest = set(ranked[HEAT_AREAS:])
    codes = shown + ([OTHER_AREAS] if rest else [])
    grid: dict[tuple[int, str], int] = defaultdict(int)
    for (sector, area), n in summary.sector_by_area.items():
        grid[(sector, OTHER_AREAS if area in rest else area)] += n
    top = max(grid.values(), default=0)
    rows = []
    for sector in sorted(summary.by_sector):
        cells = []
        for code in codes:
            n = grid.get((sector, code), 0)
            items = None
            if link and n and code != OTHER_AREAS:
                items = ItemFilter(
                    sector=sector,
                    area_code=code,
                    since=summary.window.start,
                    until=summary.window.end,
                )
            cells.append(HeatCell(n, heat_level(n, top), items))
        rows.append(HeatRow(sector, tax.sectors.get(sector, str(sector)), cells))
    labels = [summary.area_label(code) for code in shown] + (["other areas"] if rest else [])
    return labels, rows


async def overview(
    session: AsyncSession,
    settings: Settings,
    *,
    days: int,
    area_code: str | None,
    include_sensitive: bool,
    links: bool,
    now: datetime,
) -> Overview:
    window = Window.last_days(days, now)
    summary = await summarise(
        session, window, area_code=area_code, include_sensitive=include_sensitive
    )
    flags = await compute_flags(
        session,
        settings.crisis,
        settings.services.flags,
        now,
        area_code=area_code,
        include_sensitive=include_sensitive,
    )
    tax = taxonomy()
    top = max(summary.by_sector.values(), default=0)
    sectors = []
    for number, count in sorted(summary.by_sector.items(), key=lambda kv: (-kv[1], kv[0])):
        values, _ = _series(summary, summary.sector_by_day.get(number, {}))
        name = tax.sectors.get(number, str(number))
        sectors.append(
            SectorRow(number, name, count, sparkline(values, f"{name}: trend"), bar(count, top))
        )
    values, labels = _series(summary, summary.total_by_day)
    heat_areas, heat = _heat(summary, links)
    known = (set(summary.area_names) | set(summary.by_area)) - {UNKNOWN}
    return Overview(
        summary=summary,
        flags=flags,
        sectors=sectors,
        total_chart=columns(values, labels, "Items per day" if days <= 31 else "Items per week"),
        heat_areas=heat_areas,
        heat=heat,
        languages=_shares(summary.by_language),
        types=_shares(summary.by_type, tax.types),
        statuses=_shares(summary.by_status),
        response=format_response_times(summary.response),
        sensitive_response=(
            format_response_times(summary.sensitive_response)
            if summary.sensitive_response is not None
            else None
        ),
        areas=sorted(
            ((code, summary.area_label(code)) for code in known), key=lambda pair: pair[1]
        ),
    )


async def area_choices(session: AsyncSession) -> list[tuple[str, str]]:
    """(code, "Name (code)") of every known area, for the filters."""
    names = await area_names(session)
    return sorted(((code, f"{name} ({code})") for code, name in names.items()), key=lambda p: p[1])


# --- the item queue -------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueRow:
    reference: str
    created_at: datetime
    area: str
    language: str
    type: str
    status: str
    urgent: bool
    sensitive: bool
    sectors: list[int]
    contact: str
    excerpt: str


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    total: int
    page: int
    pages: int


async def _sectors_of(session: AsyncSession, ids: list[int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = defaultdict(list)
    if not ids:
        return found
    rows = await session.execute(
        select(ItemCode.item_id, ItemCode.value).where(
            ItemCode.item_id.in_(ids), ItemCode.scheme == "sector"
        )
    )
    for item_id, value in rows:
        found[item_id].append(int(value))
    return found


async def _pseudonyms_of(session: AsyncSession, contact_ids: set[int]) -> dict[int, str]:
    if not contact_ids:
        return {}
    rows = await session.execute(
        select(Contact.id, Contact.pseudonym).where(Contact.id.in_(contact_ids))
    )
    return {contact_id: pseudonym for contact_id, pseudonym in rows}


def excerpt(text: str, length: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= length else f"{flat[: length - 1]}…"


async def queue(
    session: AsyncSession, wanted: ItemFilter, *, page: int, oldest_first: bool
) -> QueuePage:
    total = await count_items(session, wanted)
    pages = max(1, ceil(total / PAGE_SIZE))
    page = min(max(page, 1), pages)
    items = await find_items(
        session,
        wanted,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
        oldest_first=oldest_first,
    )
    sectors = await _sectors_of(session, [item.id for item in items])
    pseudonyms = await _pseudonyms_of(session, {item.contact_id for item in items})
    rows = [
        QueueRow(
            reference=item.reference,
            created_at=item.created_at,
            area=item.area_name or item.area_code or "–",
            language=item.language or "?",
            type=item.type or "other",
            status=item.status,
            urgent=item.urgent,
            sensitive=item.sensitive,
            sectors=sorted(sectors.get(item.id, [])),
            contact=short_pseudonym(pseudonyms.get(item.contact_id)),
            excerpt=excerpt(item.text or ""),
        )
        for item in items
    ]
    return QueuePage(rows, total, page, pages)


# --- one item -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeRow:
    scheme: str
    value: str
    label: str
    confidence: float
    source: str


@dataclass(frozen=True)
class EventRow:
    at: datetime
    kind: str
    detail: str
    by: str


@dataclass(frozen=True)
class ReplyRow:
    created_at: datetime
    by: str
    text: str
    state: str  # pending, delivered, failed
    at: datetime | None


@dataclass(frozen=True)
class ItemView:
    item: FeedbackItem
    contact: str
    codes: list[CodeRow]
    sectors: frozenset[int]
    clusters: frozenset[str]
    categories: frozenset[str]
    attachments: list[str]
    events: list[EventRow]
    replies: list[ReplyRow]
    next_statuses: list[str]


async def _staff_names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(
        select(StaffMember.id, StaffMember.name).where(StaffMember.id.in_(ids))
    )
    return {staff_id: name for staff_id, name in rows}


def _by(names: dict[int, str], staff_id: int | None) -> str:
    if staff_id is None:
        return "the bot"
    return f"{names.get(staff_id, 'former staff')} (#{staff_id})"


async def item_view(session: AsyncSession, item: FeedbackItem) -> ItemView:
    tax = taxonomy()
    code_rows = list(
        await session.scalars(
            select(ItemCode)
            .where(ItemCode.item_id == item.id)
            .order_by(ItemCode.scheme.desc(), ItemCode.value)
        )
    )
    codes = [
        CodeRow(
            row.scheme,
            row.value,
            tax.sectors.get(int(row.value), row.value)
            if row.scheme == "sector"
            else tax.clusters.get(row.value, row.value),
            row.confidence,
            row.source,
        )
        for row in code_rows
    ]
    events = list(
        await session.scalars(
            select(ItemEvent)
            .where(ItemEvent.item_id == item.id)
            .order_by(ItemEvent.at, ItemEvent.id)
        )
    )
    replies = list(
        await session.scalars(
            select(Reply).where(Reply.item_id == item.id).order_by(Reply.created_at, Reply.id)
        )
    )
    names = await _staff_names(
        session,
        {e.staff_id for e in events if e.staff_id} | {r.staff_id for r in replies if r.staff_id},
    )
    contact = await session.get(Contact, item.contact_id)
    return ItemView(
        item=item,
        contact=short_pseudonym(contact.pseudonym if contact else None),
        codes=codes,
        sectors=frozenset(int(c.value) for c in code_rows if c.scheme == "sector"),
        clusters=frozenset(c.value for c in code_rows if c.scheme == "cluster"),
        categories=frozenset(filter(None, (item.sensitive_categories or "").split(","))),
        attachments=[attachment.kind for attachment in item.attachments],
        events=[EventRow(e.at, e.kind, e.detail or "", _by(names, e.staff_id)) for e in events],
        replies=[_reply_row(reply, names) for reply in replies],
        next_statuses=sorted(s.value for s in TRANSITIONS[ItemStatus(item.status)]),
    )


def _reply_row(reply: Reply, names: dict[int, str]) -> ReplyRow:
    if reply.delivered_at is not None:
        state, at = "delivered", reply.delivered_at
    elif reply.failed_at is not None:
        state, at = "failed", reply.failed_at
    else:
        state, at = "pending", None
    return ReplyRow(reply.created_at, _by(names, reply.staff_id), reply.text, state, at)


# --- shelters and registrations -------------------------------------------------------------


@dataclass(frozen=True)
class ShelterRow:
    external_id: str
    name: str
    area: str
    status: str
    occupancy: int | None
    capacity: int | None
    places_free: int | None
    fill: Markup | None
    updated_at: datetime
    stale: bool


@dataclass(frozen=True)
class PointRow:
    name: str
    area: str
    submitted: int
    people: int
    drafts: int
    cancelled: int


async def shelters(session: AsyncSession, settings: Settings, now: datetime) -> list[ShelterRow]:
    rows = []
    for shelter in await list_shelters(session):
        fill = None
        if shelter.capacity and shelter.occupancy is not None:
            fill = bar(min(shelter.occupancy, shelter.capacity), shelter.capacity, width=80)
        rows.append(
            ShelterRow(
                external_id=shelter.external_id,
                name=shelter.name("en", settings.fallback_languages),
                area=shelter.adm1_name or shelter.adm1_code or "–",
                status=shelter.status.value,
                occupancy=shelter.occupancy,
                capacity=shelter.capacity,
                places_free=shelter.places_free,
                fill=fill,
                updated_at=shelter.updated_at,
                stale=is_stale(shelter, now, settings.services.shelter_max_age),
            )
        )
    return rows


async def registrations_by_point(session: AsyncSession) -> list[PointRow]:
    """Registrations per departure point and status; people only for submitted ones."""
    people = Registration.children + Registration.adults + Registration.older
    rows = await session.execute(
        select(
            Registration.departure_point_id,
            Registration.status,
            func.count(Registration.id),
            func.coalesce(func.sum(people), 0),
        ).group_by(Registration.departure_point_id, Registration.status)
    )
    counts: dict[int | None, dict[str, tuple[int, int]]] = defaultdict(dict)
    for point_id, status, n, persons in rows:
        counts[point_id][status] = (int(n), int(persons))
    ids = {point_id for point_id in counts if point_id is not None}
    places = {
        place.id: place
        for place in (await session.scalars(select(Place).where(Place.id.in_(ids))) if ids else [])
    }
    result = []
    for point_id, by_status in counts.items():
        place = places.get(point_id) if point_id is not None else None
        name = display_name(place.names, "en") if place else "Not assigned yet"
        area = (place.adm1_name or place.adm1_code or "–") if place else "–"
        submitted = by_status.get("submitted", (0, 0))
        result.append(
            PointRow(
                name=name,
                area=area,
                submitted=submitted[0],
                people=submitted[1],
                drafts=by_status.get("draft", (0, 0))[0],
                cancelled=by_status.get("cancelled", (0, 0))[0],
            )
        )
    return sorted(result, key=lambda row: (row.name == "Not assigned yet", -row.people, row.name))
