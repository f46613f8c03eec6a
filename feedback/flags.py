"""Gap flags: where needs emerge, go unmet or go unheard, each with the evidence behind it.

Computed from the rollup counts (feedback/rollups.py) and small, bounded queries; never by
loading every item. Windows are whole UTC days: the recent window is the last
``recent_days`` days up to and including today; the baseline is the ``baseline_days`` days
before it, but never earlier than the first day anything was counted (a new deployment has no
history to compare with). With fewer than ``recent_days`` baseline days there is no baseline
and no surge or silence flag. As today is not over, a baseline rate is scaled to the part of
the recent window that has passed (``exposure_days``), not to whole days.

1. **Surge** — per MCOF sector, and per sector × area: the recent count ``k`` of items coded
   in the sector (whatever their type) against the expected count
   ``λ = baseline rate per day × exposure days``. One-sided exact Poisson test:
   ``p = P(X ≥ k | λ)``; a flag when ``k ≥ min_count``, ``k > λ`` and ``p < alpha``. A sector
   with nothing in its baseline gets a floor of ``ZERO_BASELINE_ITEMS`` (half an item) over the
   baseline period, so that a first burst can flag, but never with fewer than ``min_count``
   items: three messages never make a flag.
2. **Priority sector unmet** — for the sectors the crisis profile marks critical or important
   now (feedback/crisis_profile.py): shelter (sector 2) needs and shelter-search misses in an
   area with no open shelter that may have room; consulate misses for a nationality with no
   mission on record; transport (sector 3) needs and departure misses in an area with no
   departure point. A flag from ``unmet_min_count`` needs or misses.
3. **Unanswered** — open items (new, in review, referred) older than the response-time target
   of their class, the first that applies: sensitive, urgent, in a sector the profile marks
   critical, other. One flag per class, its evidence the oldest ``EVIDENCE_LIMIT`` items.
4. **Silence** — an area or a language whose recent count fell below ``silence_drop`` × the
   expected count, with at least ``min_count`` expected and a lower-tail Poisson test
   ``P(X ≤ k | λ) < alpha``: possibly a communication barrier or lost access.
5. **Rumour trending** — recent items coded as rumour that share a term: a term (3 letters or
   more, normalised as the coder does) in ``rumour_min_items`` rumour items or more, from at
   least ``rumour_min_contacts`` people, and in at most one, or under ``COMMON_SHARE``, of the
   other feedback of the baseline and recent windows (the latest ``BACKGROUND_SAMPLE`` items),
   so that everyday words never make a topic. Terms whose items overlap by half or more
   (of the smaller set) are one topic.

Each flag's sentence is one ``N_``-marked template (translated by `Flag.explain`) with its
values; ``explanation`` is the English rendering. Staff decide who may see sensitive items:
``include_sensitive`` is False unless the caller's role allows them.
"""

from __future__ import annotations

import enum
import math
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from babel import Locale
from babel.dates import format_timedelta
from sqlalchemy import ColumnElement, and_, case, func, literal, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from feedback.coding import tokens
from feedback.crisis_profile import CrisisProfile, Priority, PriorityLevel, priorities
from feedback.items import FeedbackItem, ItemCode
from feedback.queries import OPEN, ItemFilter
from feedback.rollups import ITEM, SECTOR, CountFilter, FeedbackCount, grouped, sector_mask
from feedback.summary import Window
from feedback.taxonomy import taxonomy
from messages.areas import area_names
from messages.consulates import Mission
from messages.i18n import N_
from messages.languages import get_language
from messages.misses import Service, ServiceMiss
from messages.places import Place, PlaceKind
from messages.shelters import Shelter, ShelterStatus
from storage.base import UtcDateTime

SHELTER_SECTOR, TRANSPORT_SECTOR, CONSULAR_SECTOR = 2, 3, 12
ZERO_BASELINE_ITEMS = 0.5  # the floor for a baseline with nothing in it, in items
EVIDENCE_LIMIT = 200  # items listed as an unanswered flag's evidence, oldest first
RUMOUR_SAMPLE = 5000  # recent rumour items read at most, newest first
BACKGROUND_SAMPLE = 2000  # other items read for the everyday words, newest first
COMMON_SHARE = 0.05  # a term in this share of the other feedback is an everyday word
MIN_TERM_LENGTH = 3
TOPIC_TERMS = 3  # terms named in a rumour topic
DAY = timedelta(days=1)


class FlagKind(enum.StrEnum):
    SURGE = "surge"
    PRIORITY_UNMET = "priority_unmet"
    UNANSWERED = "unanswered"
    SILENCE = "silence"
    RUMOUR = "rumour"


KIND_ORDER = {kind: n for n, kind in enumerate(FlagKind)}


@dataclass(frozen=True)
class Evidence:
    count: int  # what the flag counted in the recent window
    window_start: datetime
    window_end: datetime
    baseline: float | None  # expected count for the window from the baseline period
    baseline_start: datetime | None
    baseline_end: datetime | None
    p_value: float | None  # for statistical flags
    items: ItemFilter  # exactly the items behind the flag (links use to_query())
    details: dict[str, object] = field(default_factory=dict)  # flag-specific, JSON-safe

    def to_json(self) -> dict[str, object]:
        def moment(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "count": self.count,
            "window_start": moment(self.window_start),
            "window_end": moment(self.window_end),
            "baseline": self.baseline,
            "baseline_start": moment(self.baseline_start),
            "baseline_end": moment(self.baseline_end),
            "p_value": self.p_value,
            "items": self.items.to_query(),
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class Flag:
    kind: FlagKind
    key: str  # stable across runs, e.g. "surge:sector=2:area=XY01"
    sector: int | None
    area_code: str | None
    area_name: str | None
    language: str | None
    topic: str | None  # rumour topic
    severity: int  # higher first; 3 critical-sector/urgent, 2, 1
    explanation: str  # one English sentence a responder can forward
    evidence: Evidence
    template: str = ""  # the explanation's msgid (marked with N_ here)
    values: dict[str, object] = field(default_factory=dict)  # what fills the template
    # How a value is rendered in a language: "msgid" (translated), "duration" (seconds),
    # "language" or "country" (a code, named in the reader's language); others as they are.
    kinds: dict[str, str] = field(default_factory=dict)

    def explain(self, gettext: Callable[[str], str], locale: str = "en") -> str:
        """The explanation in the language of `gettext`, names and durations in `locale`
        (a Babel locale such as "fa_AF"); English with the identity and "en"."""
        return render(self.template, self.values, self.kinds, gettext, locale)

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "key": self.key,
            "sector": self.sector,
            "sector_name": taxonomy().sectors.get(self.sector) if self.sector else None,
            "area_code": self.area_code,
            "area_name": self.area_name,
            "language": self.language,
            "topic": self.topic,
            "severity": self.severity,
            "explanation": self.explanation,
            "template": self.template,
            "values": dict(self.values),
            "evidence": self.evidence.to_json(),
        }


@dataclass(frozen=True)
class FlagSettings:
    recent_days: int = 7
    baseline_days: int = 28
    min_count: int = 10
    alpha: float = 0.01
    response_target_urgent: timedelta = timedelta(hours=4)
    response_target_sensitive: timedelta = timedelta(hours=2)
    response_target_critical_sector: timedelta = timedelta(hours=24)
    response_target_other: timedelta = timedelta(hours=72)
    silence_drop: float = 0.5
    unmet_min_count: int = 3  # needs or misses that make a "priority sector unmet" flag
    rumour_min_items: int = 5
    rumour_min_contacts: int = 3


def render(
    template: str,
    values: Mapping[str, object],
    kinds: Mapping[str, str],
    gettext: Callable[[str], str],
    locale: str = "en",
) -> str:
    reader = Locale.parse(locale)
    shown = dict(values)
    for name, kind in kinds.items():
        value = values[name]
        if kind == "msgid":
            shown[name] = gettext(str(value))
        elif kind == "duration" and isinstance(value, int | float):
            shown[name] = format_timedelta(timedelta(seconds=value), locale=reader)
        elif kind == "language":
            shown[name] = language_name(str(value), reader)
        elif kind == "country":
            shown[name] = str(reader.territories.get(str(value), value))
    return gettext(template).format(**shown)


def _identity(text: str) -> str:
    return text


# --- the Poisson tails ----------------------------------------------------------------------


def poisson_upper(k: int, mean: float) -> float:
    """P(X ≥ k) for X ~ Poisson(mean), exact, summed in log space from the k-th term."""
    if k <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    if k <= mean:
        return max(0.0, 1.0 - poisson_lower(k - 1, mean))
    total, term, i = 1.0, 1.0, k
    while term > 1e-17 * total:  # the terms fall from the k-th on, as k > mean
        i += 1
        term *= mean / i
        total += term
    return min(1.0, math.exp(_log_pmf(k, mean)) * total)


def poisson_lower(k: int, mean: float) -> float:
    """P(X ≤ k) for X ~ Poisson(mean), exact, summed in log space from the k-th term down."""
    if k < 0:
        return 0.0
    if mean <= 0:
        return 1.0
    if k >= mean:
        return max(0.0, 1.0 - poisson_upper(k + 1, mean))
    total, term, i = 1.0, 1.0, k
    while i > 0 and term > 1e-17 * total:  # the terms fall from the k-th down, as k < mean
        term *= i / mean
        total += term
        i -= 1
    return min(1.0, math.exp(_log_pmf(k, mean)) * total)


def _log_pmf(k: int, mean: float) -> float:
    return -mean + k * math.log(mean) - math.lgamma(k + 1)


# --- windows --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Periods:
    recent: Window
    baseline: Window | None  # None: not enough history
    exposure_days: float  # of the recent window, up to now

    @property
    def baseline_days(self) -> int:
        return len(self.baseline.days) if self.baseline else 0

    def expected(self, baseline_count: int) -> float:
        """The count the baseline predicts for the recent window (floored when zero)."""
        items = baseline_count if baseline_count > 0 else ZERO_BASELINE_ITEMS
        return items / self.baseline_days * self.exposure_days


async def periods(session: AsyncSession, settings: FlagSettings, now: datetime) -> Periods:
    recent = Window.last_days(settings.recent_days, now)
    elapsed = (min(now, recent.end) - recent.start) / DAY
    first = await session.scalar(
        select(func.min(FeedbackCount.day)).where(
            FeedbackCount.kind == ITEM, FeedbackCount.items > 0
        )
    )
    since = recent.since - timedelta(days=settings.baseline_days)
    if first is not None:
        since = max(since, first)
    until = recent.since - timedelta(days=1)
    enough = (until - since).days + 1 >= settings.recent_days
    return Periods(recent, Window(since, until) if enough else None, max(elapsed, 1 / 24))


# --- one computation ------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    session: AsyncSession
    profile: CrisisProfile
    priorities: dict[int, Priority]
    settings: FlagSettings
    now: datetime
    periods: Periods
    area_code: str | None
    include_sensitive: bool
    area_names: dict[str, str]

    async def area_name(self, code: str) -> str:
        """The area's name from the gazetteer, else as an item of the area has it."""
        if code not in self.area_names:
            named = await self.session.scalar(
                select(FeedbackItem.area_name)
                .where(FeedbackItem.area_code == code, FeedbackItem.area_name.is_not(None))
                .limit(1)
            )
            self.area_names[code] = named or code  # this call's own cache
        return self.area_names[code]

    def severity(self, sector: int) -> int:
        priority = self.priorities.get(sector)
        if priority is None:
            return 1
        return 3 if priority.level is PriorityLevel.CRITICAL else 2

    def count_filter(self, window: Window) -> CountFilter:
        return CountFilter(
            since=window.since,
            until=window.until,
            area_code=self.area_code,
            include_sensitive=self.include_sensitive,
        )

    def items(
        self, *, sector: int | None = None, area: str | None = None, language: str | None = None
    ) -> ItemFilter:
        """The recent window's items, within the area asked for."""
        return ItemFilter(
            sector=sector,
            area_code=area if area is not None else self.area_code,
            language=language,
            since=self.periods.recent.start,
            until=self.periods.recent.end,
            include_sensitive=self.include_sensitive,
        )

    def evidence(
        self,
        count: int,
        items: ItemFilter,
        *,
        expected: float | None = None,
        p_value: float | None = None,
        details: dict[str, object] | None = None,
    ) -> Evidence:
        baseline = self.periods.baseline
        return Evidence(
            count=count,
            window_start=self.periods.recent.start,
            window_end=self.periods.recent.end,
            baseline=round(expected, 3) if expected is not None else None,
            baseline_start=baseline.start if baseline and expected is not None else None,
            baseline_end=baseline.end if baseline and expected is not None else None,
            p_value=p_value,
            items=items,
            details={"exposure_days": round(self.periods.exposure_days, 3), **(details or {})},
        )


def sector_name(sector: int) -> str:
    return taxonomy().sectors.get(sector, f"sector {sector}")


def language_name(code: str, reader: Locale | None = None) -> str:
    language = get_language(code)
    if language is None:
        return code
    return str(Locale.parse(language.locale).get_display_name(reader or "en") or code)


def _p(value: float) -> str:
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def _number(value: float) -> str:
    return f"{value:.1f}"


def make_flag(
    kind: FlagKind,
    key: str,
    *,
    severity: int,
    evidence: Evidence,
    template: str,
    values: dict[str, object],
    kinds: dict[str, str] | None = None,
    sector: int | None = None,
    area_code: str | None = None,
    area_name: str | None = None,
    language: str | None = None,
    topic: str | None = None,
) -> Flag:
    return Flag(
        kind=kind,
        key=key,
        sector=sector,
        area_code=area_code,
        area_name=area_name,
        language=language,
        topic=topic,
        severity=severity,
        explanation=render(template, values, kinds or {}, _identity),
        evidence=evidence,
        template=template,
        values=values,
        kinds=kinds or {},
    )


# --- 1. surge -------------------------------------------------------------------------------

SURGE_ALL = N_(
    "{sector}: {count} items in the last {days} days across all areas, against {expected} "
    "expected from the {baseline_days} days before ({p})."
)
SURGE_AREA = N_(
    "{sector} in {area}: {count} items in the last {days} days, against {expected} "
    "expected from the {baseline_days} days before ({p})."
)


async def surges(context: Context) -> list[Flag]:
    baseline = context.periods.baseline
    if baseline is None:
        return []
    by = ["code", "area_code"]
    recent_rows = await grouped(
        context.session, SECTOR, by, context.count_filter(context.periods.recent)
    )
    base_rows = await grouped(context.session, SECTOR, by, context.count_filter(baseline))
    recent: Counter[tuple[int, str | None]] = Counter()
    base: Counter[tuple[int, str | None]] = Counter()
    for rows, into in ((recent_rows, recent), (base_rows, base)):
        for (code, area), n in rows:
            if context.area_code is None:
                into[(int(code), None)] += n  # the sector across all areas
            if area:
                into[(int(code), area)] += n
    flags = []
    for (sector, area), count in sorted(recent.items(), key=lambda e: (e[0][0], e[0][1] or "")):
        flag = await _surge(context, sector, area, count, base[(sector, area)])
        if flag is not None:
            flags.append(flag)
    return flags


async def _surge(
    context: Context, sector: int, area: str | None, count: int, base: int
) -> Flag | None:
    settings = context.settings
    expected = context.periods.expected(base)
    if count < settings.min_count or count <= expected:
        return None
    p_value = poisson_upper(count, expected)
    if p_value >= settings.alpha:
        return None
    values: dict[str, object] = {
        "sector": sector_name(sector),
        "count": count,
        "days": settings.recent_days,
        "expected": _number(expected),
        "baseline_days": context.periods.baseline_days,
        "p": _p(p_value),
    }
    if area is not None:
        values["area"] = await context.area_name(area)
    return make_flag(
        FlagKind.SURGE,
        f"surge:sector={sector}" + (f":area={area}" if area else ""),
        severity=context.severity(sector),
        evidence=context.evidence(
            count,
            context.items(sector=sector, area=area),
            expected=expected,
            p_value=p_value,
            details={"baseline_items": base},
        ),
        template=SURGE_AREA if area else SURGE_ALL,
        values=values,
        kinds={"sector": "msgid"},
        sector=sector,
        area_code=area,
        area_name=await context.area_name(area) if area else None,
    )


# --- 2. priority sector unmet ---------------------------------------------------------------

UNMET_SHELTER = N_(
    "{sector} is a {level} sector now, and {area} has no open shelter with free places: "
    "{count} messages about shelter and {misses} shelter searches that found no place in the "
    "last {days} days."
)
UNMET_TRANSPORT = N_(
    "{sector} is a {level} sector now, and {area} has no departure point on record: "
    "{count} messages about transport and {misses} registrations with no departure point in the "
    "last {days} days."
)
UNMET_CONSULATE = N_(
    "{sector} is a {level} sector now, and no mission of {country} is on record: {misses} "
    "people asked for one in the last {days} days."
)
LEVELS = {PriorityLevel.CRITICAL: N_("critical"), PriorityLevel.IMPORTANT: N_("important")}


async def unmet(context: Context) -> list[Flag]:
    flags: list[Flag] = []
    if SHELTER_SECTOR in context.priorities:
        served = await _areas_with_free_shelter(context.session)
        flags += await _unmet_in_areas(
            context, SHELTER_SECTOR, Service.SHELTER, served, UNMET_SHELTER, "shelter"
        )
    if TRANSPORT_SECTOR in context.priorities:
        served = await _areas_with_departure_point(context.session)
        flags += await _unmet_in_areas(
            context, TRANSPORT_SECTOR, Service.DEPARTURE, served, UNMET_TRANSPORT, "transport"
        )
    if CONSULAR_SECTOR in context.priorities:
        flags += await _unmet_consulates(context)
    return flags


async def _areas_with_free_shelter(session: AsyncSession) -> set[str]:
    """Areas with an open shelter that may have room: places left, or numbers unknown (as the
    shelter search counts them: bot/flows/shelters.py)."""
    rows = await session.scalars(
        select(Shelter.adm1_code)
        .where(
            Shelter.status == ShelterStatus.OPEN,
            Shelter.adm1_code.is_not(None),
            or_(
                Shelter.capacity.is_(None),
                Shelter.occupancy.is_(None),
                Shelter.occupancy < Shelter.capacity,
            ),
        )
        .distinct()
    )
    return {code for code in rows if code}


async def _areas_with_departure_point(session: AsyncSession) -> set[str]:
    rows = await session.scalars(
        select(Place.adm1_code)
        .where(Place.kind == PlaceKind.DEPARTURE_POINT, Place.adm1_code.is_not(None))
        .distinct()
    )
    return {code for code in rows if code}


async def _misses(context: Context, service: Service) -> list[tuple[str, str, int]]:
    """(key, area, misses) of one service in the recent window, within the area asked for."""
    recent = context.periods.recent
    query = (
        select(ServiceMiss.key, ServiceMiss.area_code, func.sum(ServiceMiss.misses))
        .where(
            ServiceMiss.service == service.value,
            ServiceMiss.day >= recent.since,
            ServiceMiss.day <= recent.until,
        )
        .group_by(ServiceMiss.key, ServiceMiss.area_code)
    )
    if context.area_code is not None:
        query = query.where(ServiceMiss.area_code == context.area_code)
    rows = await context.session.execute(query)
    return [(key, area, int(n or 0)) for key, area, n in rows]


async def _unmet_in_areas(
    context: Context,
    sector: int,
    service: Service,
    served: set[str],
    template: str,
    label: str,
) -> list[Flag]:
    recent = context.periods.recent
    needs: Counter[str] = Counter()
    for (code, area), n in await grouped(
        context.session, SECTOR, ["code", "area_code"], context.count_filter(recent)
    ):
        if int(code) == sector and area:
            needs[area] += n
    misses: Counter[str] = Counter()
    for _key, area, n in await _misses(context, service):
        if area:
            misses[area] += n
    priority = context.priorities[sector]
    flags = []
    for area in sorted(set(needs) | set(misses)):
        if area in served or needs[area] + misses[area] < context.settings.unmet_min_count:
            continue
        values: dict[str, object] = {
            "sector": sector_name(sector),
            "level": LEVELS[priority.level],
            "area": await context.area_name(area),
            "count": needs[area],
            "misses": misses[area],
            "days": context.settings.recent_days,
        }
        flags.append(
            make_flag(
                FlagKind.PRIORITY_UNMET,
                f"priority_unmet:{label}:sector={sector}:area={area}",
                severity=context.severity(sector),
                evidence=context.evidence(
                    needs[area],
                    context.items(sector=sector, area=area),
                    details={
                        "service": service.value,
                        "misses": misses[area],
                        "level": priority.level.value,
                        "source": priority.source,
                    },
                ),
                template=template,
                values=values,
                kinds={"sector": "msgid", "level": "msgid"},
                sector=sector,
                area_code=area,
                area_name=await context.area_name(area),
            )
        )
    return flags


async def _unmet_consulates(context: Context) -> list[Flag]:
    misses: Counter[str] = Counter()
    for key, _area, n in await _misses(context, Service.CONSULATE):
        if key:
            misses[key.upper()] += n
    if not misses:
        return []
    on_record = set(
        await context.session.scalars(
            select(Mission.country_code).where(Mission.country_code.in_(list(misses))).distinct()
        )
    )
    priority = context.priorities[CONSULAR_SECTOR]
    flags = []
    for country, n in sorted(misses.items()):
        if country in on_record or n < context.settings.unmet_min_count:
            continue
        values: dict[str, object] = {
            "sector": sector_name(CONSULAR_SECTOR),
            "level": LEVELS[priority.level],
            "country": country,
            "misses": n,
            "days": context.settings.recent_days,
        }
        flags.append(
            make_flag(
                FlagKind.PRIORITY_UNMET,
                f"priority_unmet:consulate:sector={CONSULAR_SECTOR}:country={country}",
                severity=context.severity(CONSULAR_SECTOR),
                evidence=context.evidence(
                    n,
                    context.items(sector=CONSULAR_SECTOR),
                    details={
                        "service": Service.CONSULATE.value,
                        "nationality": country,
                        "misses": n,
                        "level": priority.level.value,
                        "source": priority.source,
                    },
                ),
                template=UNMET_CONSULATE,
                values=values,
                kinds={"sector": "msgid", "level": "msgid", "country": "country"},
                sector=CONSULAR_SECTOR,
                area_code=context.area_code,
                area_name=await context.area_name(context.area_code) if context.area_code else None,
            )
        )
    return flags


# --- 3. unanswered --------------------------------------------------------------------------

UNANSWERED = N_(
    "{count} open {criticality} items have waited longer than the {target} response target; "
    "the oldest has waited {oldest}."
)


@dataclass(frozen=True)
class Criticality:
    name: str
    label: str  # msgid
    target: timedelta
    condition: ColumnElement[bool]
    severity: int


def criticalities(context: Context) -> list[Criticality]:
    settings = context.settings
    critical = [s for s, p in context.priorities.items() if p.level is PriorityLevel.CRITICAL]
    # A bit test on the item's own row (items.sector_mask): no join over the codes.
    in_critical = FeedbackItem.sector_mask.op("&")(sector_mask(critical)) != 0
    sensitive = FeedbackItem.sensitive.is_(True)
    urgent = and_(not_(sensitive), FeedbackItem.urgent.is_(True))
    plain = and_(not_(sensitive), FeedbackItem.urgent.is_(False))
    classes = [
        Criticality("urgent", N_("urgent"), settings.response_target_urgent, urgent, 3),
        Criticality(
            "critical_sector",
            N_("critical-sector"),
            settings.response_target_critical_sector,
            and_(plain, in_critical),
            3,
        ),
        Criticality(
            "other", N_("other"), settings.response_target_other, and_(plain, not_(in_critical)), 2
        ),
    ]
    if context.include_sensitive:
        classes.insert(
            0,
            Criticality(
                "sensitive", N_("sensitive"), settings.response_target_sensitive, sensitive, 3
            ),
        )
    return classes


async def unanswered(context: Context) -> list[Flag]:
    classes = criticalities(context)
    overdue = await _overdue(context, classes)
    flags = []
    for criticality in classes:
        found = overdue.get(criticality.name)
        if found is not None:
            count, oldest, references = found
            flags.append(await _unanswered(context, criticality, count, oldest, references))
    return flags


async def _overdue(
    context: Context, classes: list[Criticality]
) -> dict[str, tuple[int, datetime, tuple[str, ...]]]:
    """Per class: how many open items are past its target, the oldest's arrival, and the
    oldest EVIDENCE_LIMIT references. One counting pass over the open items past the
    shortest target (each item's class decided once), then the references of each class."""
    shortest = min(c.target for c in classes)
    label = case(*((c.condition, literal(c.name)) for c in classes), else_=None)
    cutoff = case(
        *((c.condition, literal(context.now - c.target, UtcDateTime())) for c in classes),
        else_=None,
    )
    open_and_late = [
        FeedbackItem.status.in_(OPEN),
        FeedbackItem.created_at < context.now - shortest,
        *_in_area(context),
    ]
    counted = await context.session.execute(
        select(label, func.count(), func.min(FeedbackItem.created_at))
        .where(*open_and_late, FeedbackItem.created_at < cutoff)
        .group_by(label)
    )
    found: dict[str, tuple[int, datetime, tuple[str, ...]]] = {}
    by_name = {c.name: c for c in classes}
    for name, count, oldest in counted:
        if name is None or not count:
            continue
        c = by_name[name]
        references = await context.session.scalars(
            select(FeedbackItem.reference)
            .where(*open_and_late, FeedbackItem.created_at < context.now - c.target, c.condition)
            .order_by(FeedbackItem.created_at, FeedbackItem.id)
            .limit(EVIDENCE_LIMIT)
        )
        found[name] = (int(count), _aware(oldest), tuple(references))
    return found


def _in_area(context: Context) -> list[ColumnElement[bool]]:
    if context.area_code is None:
        return []
    return [FeedbackItem.area_code == context.area_code]


async def _unanswered(
    context: Context,
    c: Criticality,
    count: int,
    oldest: datetime,
    references: tuple[str, ...],
) -> Flag:
    oldest_at = _aware(oldest)
    waited = context.now - oldest_at
    values: dict[str, object] = {
        "count": int(count),
        "criticality": c.label,
        "target": round(c.target.total_seconds()),
        "oldest": round(waited.total_seconds()),
    }
    evidence = Evidence(
        count=int(count),
        window_start=oldest_at,
        window_end=context.now - c.target,
        baseline=None,
        baseline_start=None,
        baseline_end=None,
        p_value=None,
        items=ItemFilter(
            statuses=OPEN,
            references=references,
            include_sensitive=c.name == "sensitive",
        ),
        details={
            "criticality": c.name,
            "target_hours": c.target / timedelta(hours=1),
            "oldest_hours": round(waited / timedelta(hours=1), 1),
            "listed": len(references),
        },
    )
    return make_flag(
        FlagKind.UNANSWERED,
        f"unanswered:{c.name}",
        severity=c.severity,
        evidence=evidence,
        template=UNANSWERED,
        values=values,
        kinds={"criticality": "msgid", "target": "duration", "oldest": "duration"},
        area_code=context.area_code,
        area_name=await context.area_name(context.area_code) if context.area_code else None,
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- 4. silence -----------------------------------------------------------------------------

SILENCE_AREA = N_(
    "Feedback from {area} fell to {count} items in the last {days} days, against {expected} "
    "expected from the {baseline_days} days before ({p}): people there may have lost access "
    "or face a barrier."
)
SILENCE_LANGUAGE = N_(
    "Feedback in {language} fell to {count} items in the last {days} days, against {expected} "
    "expected from the {baseline_days} days before ({p}): its speakers may face a barrier."
)


async def silences(context: Context) -> list[Flag]:
    baseline = context.periods.baseline
    if baseline is None:
        return []
    flags = []
    for column in ("area_code", "language"):
        recent = dict(
            await grouped(
                context.session, ITEM, [column], context.count_filter(context.periods.recent)
            )
        )
        base = await grouped(context.session, ITEM, [column], context.count_filter(baseline))
        for (value,), base_count in sorted(base):
            if not value:
                continue  # unknown area or language: nobody to reach
            flag = await _silence(context, column, value, recent.get((value,), 0), base_count)
            if flag is not None:
                flags.append(flag)
    return flags


async def _silence(context: Context, column: str, value: str, count: int, base: int) -> Flag | None:
    settings = context.settings
    expected = context.periods.expected(base)
    if expected < settings.min_count or count >= settings.silence_drop * expected:
        return None
    p_value = poisson_lower(count, expected)
    if p_value >= settings.alpha:
        return None
    by_area = column == "area_code"
    values: dict[str, object] = {
        "count": count,
        "days": settings.recent_days,
        "expected": _number(expected),
        "baseline_days": context.periods.baseline_days,
        "p": _p(p_value),
    }
    if by_area:
        values["area"] = await context.area_name(value)
    else:
        values["language"] = value
    items = context.items(area=value) if by_area else context.items(language=value)
    return make_flag(
        FlagKind.SILENCE,
        f"silence:{'area' if by_area else 'language'}={value}",
        severity=2,
        evidence=context.evidence(
            count, items, expected=expected, p_value=p_value, details={"baseline_items": base}
        ),
        template=SILENCE_AREA if by_area else SILENCE_LANGUAGE,
        values=values,
        kinds={} if by_area else {"language": "language"},
        area_code=value if by_area else context.area_code,
        area_name=await context.area_name(value) if by_area else None,
        language=None if by_area else value,
    )


# --- 5. rumour trending ---------------------------------------------------------------------

RUMOUR = N_(
    "{count} rumours from {contacts} people in the last {days} days share the words "
    "“{topic}”, which are rare in the rest of the feedback of the last {baseline_days} days."
)


@dataclass(frozen=True)
class Said:
    reference: str
    contact_id: int
    language: str | None
    area_code: str | None
    terms: frozenset[str]


def terms_of(text: str) -> frozenset[str]:
    return frozenset(t for t in tokens(text) if len(t) >= MIN_TERM_LENGTH and not t.isdigit())


async def _said(context: Context, where: list[ColumnElement[bool]], limit: int) -> list[Said]:
    """The newest `limit` items matching `where`, as their terms (never kept or logged)."""
    if not context.include_sensitive:
        where = [*where, FeedbackItem.sensitive.is_(False)]
    rows = await context.session.execute(
        select(
            FeedbackItem.reference,
            FeedbackItem.contact_id,
            FeedbackItem.language,
            FeedbackItem.area_code,
            FeedbackItem.text,
        )
        .where(*where, *_in_area(context))
        .order_by(FeedbackItem.created_at.desc(), FeedbackItem.id.desc())
        .limit(limit)
    )
    return [
        Said(reference, contact_id, language, area, terms_of(text))
        for reference, contact_id, language, area, text in rows
    ]


async def rumours(context: Context) -> list[Flag]:
    recent = context.periods.recent
    rumour = FeedbackItem.type == "rumour"
    said = await _said(
        context,
        [rumour, FeedbackItem.created_at >= recent.start, FeedbackItem.created_at < recent.end],
        RUMOUR_SAMPLE,
    )
    if len(said) < context.settings.rumour_min_items:
        return []
    background_since = (context.periods.baseline or recent).start
    background = await _said(
        context,
        [
            or_(FeedbackItem.type.is_(None), not_(rumour)),
            FeedbackItem.created_at >= background_since,
            FeedbackItem.created_at < recent.end,
        ],
        BACKGROUND_SAMPLE,
    )
    flags = []
    for group in topics(said, background, context.settings):
        flags.append(await _rumour_flag(context, group))
    return flags


def topics(
    said: list[Said], background: list[Said], settings: FlagSettings
) -> list[tuple[tuple[str, ...], list[Said]]]:
    """Groups of rumour items sharing significant terms: (terms, most shared first; items)."""
    common: Counter[str] = Counter()
    for other in background:
        common.update(other.terms)
    limit = COMMON_SHARE * len(background)
    by_term: dict[str, list[int]] = defaultdict(list)
    for n, item in enumerate(said):
        for term in item.terms:
            by_term[term].append(n)
    significant = {
        term: frozenset(rows)
        for term, rows in by_term.items()
        if len(rows) >= settings.rumour_min_items
        and len({said[n].contact_id for n in rows}) >= settings.rumour_min_contacts
        and common[term] < max(2.0, limit)
    }
    groups = _merge(significant)
    result = []
    for terms in groups:
        rows = sorted(set().union(*(significant[t] for t in terms)))
        ranked = sorted(terms, key=lambda t: (-len(significant[t]), t))
        result.append((tuple(ranked), [said[n] for n in rows]))
    return sorted(result, key=lambda g: (-len(g[1]), g[0]))


def _merge(significant: dict[str, frozenset[int]]) -> list[set[str]]:
    """Terms whose item sets overlap by half the smaller set or more, joined transitively."""
    parent = {term: term for term in significant}

    def root(term: str) -> str:
        while parent[term] != term:
            parent[term] = parent[parent[term]]
            term = parent[term]
        return term

    terms = sorted(significant)
    for n, a in enumerate(terms):
        for b in terms[n + 1 :]:
            shared = len(significant[a] & significant[b])
            if shared * 2 >= min(len(significant[a]), len(significant[b])):
                parent[root(b)] = root(a)
    groups: dict[str, set[str]] = defaultdict(set)
    for term in terms:
        groups[root(term)].add(term)
    return list(groups.values())


async def _rumour_flag(context: Context, group: tuple[tuple[str, ...], list[Said]]) -> Flag:
    terms, items = group
    topic = " ".join(terms[:TOPIC_TERMS])
    contacts = len({item.contact_id for item in items})
    languages = {item.language for item in items}
    language = next(iter(languages)) if len(languages) == 1 else None
    areas = {item.area_code for item in items}
    area = next(iter(areas)) if len(areas) == 1 else None
    sector = await _shared_sector(context.session, [item.reference for item in items])
    values: dict[str, object] = {
        "count": len(items),
        "contacts": contacts,
        "days": context.settings.recent_days,
        "topic": topic,
        "baseline_days": context.periods.baseline_days + context.settings.recent_days,
    }
    references = tuple(sorted(item.reference for item in items))
    return make_flag(
        FlagKind.RUMOUR,
        "rumour:topic=" + "+".join(sorted(terms)),
        severity=3 if sector is not None and context.severity(sector) == 3 else 2,
        evidence=context.evidence(
            len(items),
            ItemFilter(
                type="rumour", references=references, include_sensitive=context.include_sensitive
            ),
            details={"contacts": contacts, "terms": list(terms)},
        ),
        template=RUMOUR,
        values=values,
        sector=sector,
        area_code=area,
        area_name=await context.area_name(area) if area else None,
        language=language,
        topic=topic,
    )


async def _shared_sector(session: AsyncSession, references: list[str]) -> int | None:
    """The sector more than half of the items are coded in, if any."""
    rows = await session.execute(
        select(ItemCode.value, func.count())
        .join(FeedbackItem, FeedbackItem.id == ItemCode.item_id)
        .where(ItemCode.scheme == "sector", FeedbackItem.reference.in_(references))
        .group_by(ItemCode.value)
    )
    best = max(((int(n), int(value)) for value, n in rows), default=None)
    return best[1] if best is not None and best[0] * 2 > len(references) else None


# --- all of them ----------------------------------------------------------------------------


async def compute_flags(
    session: AsyncSession,
    profile: CrisisProfile,
    settings: FlagSettings,
    now: datetime,
    *,
    area_code: str | None = None,
    include_sensitive: bool = False,
) -> list[Flag]:
    """Every gap flag at `now`: severity first, then kind, then key."""
    context = await make_context(
        session, profile, settings, now, area_code=area_code, include_sensitive=include_sensitive
    )
    flags = [flag for family in FAMILIES for flag in await family(context)]
    if area_code is not None:  # the same gap seen from one area is a flag of its own
        flags = [
            flag if "area=" in flag.key else replace(flag, key=f"{flag.key}:area={area_code}")
            for flag in flags
        ]
    return sorted(flags, key=lambda f: (-f.severity, KIND_ORDER[f.kind], f.key))


async def make_context(
    session: AsyncSession,
    profile: CrisisProfile,
    settings: FlagSettings,
    now: datetime,
    *,
    area_code: str | None = None,
    include_sensitive: bool = False,
) -> Context:
    return Context(
        session=session,
        profile=profile,
        priorities=priorities(profile),
        settings=settings,
        now=now,
        periods=await periods(session, settings, now),
        area_code=area_code,
        include_sensitive=include_sensitive,
        area_names=await area_names(session),
    )


# The five kinds of flag, in the order of the module docstring (bench/report.py times each).
FAMILIES: tuple[Callable[[Context], Awaitable[list[Flag]]], ...] = (
    surges,
    unmet,
    unanswered,
    silences,
    rumours,
)
