"""Gap flags on a real database (SQLite; PostgreSQL when configured), at explicit times."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from feedback.codes import apply_suggestion
from feedback.coding import Suggestion
from feedback.crisis_profile import CrisisProfile
from feedback.flags import (
    KIND_ORDER,
    Flag,
    FlagKind,
    FlagSettings,
    compute_flags,
    poisson_lower,
    poisson_upper,
)
from feedback.items import FeedbackItem, ItemStatus, record_item
from feedback.queries import count_items, find_items
from feedback.review import move
from messages.consulates import Mission, MissionKind
from messages.contacts import Contact, record_consent
from messages.i18n import translations
from messages.misses import Service, record_miss
from messages.places import Place, PlaceKind
from messages.shelters import Shelter, ShelterStatus
from storage.database import Database

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)  # recent window: 15-21 November
RECENT_START = datetime(2026, 11, 15, tzinfo=UTC)
BASELINE_START = RECENT_START - timedelta(days=28)  # 18 October
SUDDEN_DURING = CrisisProfile("sudden_onset_natural_disaster", "during")  # 4 is critical
MAN_MADE_DURING = CrisisProfile("man_made_disaster", "during")  # 2, 3 critical; 12 important
SETTINGS = FlagSettings()
HOUR = timedelta(hours=1)


def suggestion(type_: str, sectors: Iterable[int], *, urgent: bool, sensitive: bool) -> Suggestion:
    return Suggestion(
        language="en",
        type=type_,
        type_confidence=0.9,
        mcof_sectors={s: 0.9 for s in sectors},
        clusters={},
        urgent=urgent or sensitive,
        urgent_confidence=0.9 if urgent or sensitive else 0.1,
        sensitive=sensitive,
        sensitive_categories=("gbv",) if sensitive else (),
        confidence=0.9,
    )


async def person(session: AsyncSession, name: str) -> Contact:
    return await record_consent(session, name, 1, "en", BASELINE_START - timedelta(days=30))


async def item(
    session: AsyncSession,
    contact: Contact,
    at: datetime,
    *,
    sectors: Iterable[int] = (),
    type_: str = "request",
    area: str | None = "XY01",
    language: str | None = "en",
    text: str = "words",
    urgent: bool = False,
    sensitive: bool = False,
) -> FeedbackItem:
    """An item as the intake leaves it: recorded, then coded (which counts it)."""
    recorded = await record_item(
        session,
        contact.id,
        text,
        language,
        at,
        channel="telegram",
        area=(area, f"Area {area}") if area else None,
    )
    coded = suggestion(type_, sectors, urgent=urgent, sensitive=sensitive)
    await apply_suggestion(session, recorded, coded)
    return recorded


async def every(
    session: AsyncSession,
    contact: Contact,
    start: datetime,
    days: int,
    per_day: int,
    *,
    sectors: Iterable[int] = (),
    area: str = "XY01",
    language: str = "en",
) -> None:
    """`per_day` items a day for `days` days from `start`, spread over the morning."""
    for day in range(days):
        for n in range(per_day):
            at = start + timedelta(days=day, hours=1 + n)
            await item(session, contact, at, sectors=sectors, area=area, language=language)


def by_key(flags: list[Flag]) -> dict[str, Flag]:
    return {flag.key: flag for flag in flags}


def of(kind: FlagKind, flags: list[Flag]) -> list[Flag]:
    """The flags of one kind (items older than the response targets are unanswered too)."""
    return [flag for flag in flags if flag.kind is kind]


def assert_sorted(flags: list[Flag]) -> None:
    order = [(-f.severity, KIND_ORDER[f.kind], f.key) for f in flags]
    assert order == sorted(order)


# --- the Poisson tails ----------------------------------------------------------------------


def direct_upper(k: int, mean: float) -> float:
    return 1 - sum(math.exp(-mean) * mean**i / math.factorial(i) for i in range(k))


def test_poisson_tails_match_the_direct_sums() -> None:
    for k, mean in ((10, 3.2), (3, 0.125), (15, 12.8), (5, 9.0), (0, 4.0), (1, 0.5)):
        assert math.isclose(poisson_upper(k, mean), direct_upper(k, mean), rel_tol=1e-9)
        lower = 1 - direct_upper(k + 1, mean)
        assert math.isclose(poisson_lower(k, mean), lower, rel_tol=1e-9, abs_tol=1e-15)
    # Large counts stay finite and sensible (no overflow, no scipy).
    assert poisson_upper(20_600, 20_000) < 1e-4 < poisson_upper(20_100, 20_000) < 0.5
    assert poisson_lower(19_400, 20_000) < 1e-4
    assert poisson_upper(0, 0.0) == 1.0 and poisson_upper(1, 0.0) == 0.0


# --- surge ----------------------------------------------------------------------------------


async def test_a_surge_is_flagged_for_the_sector_and_its_area(database: Database) -> None:
    async with database.transaction() as session:
        someone = await person(session, "p1")
        # Baseline: one health item every other day; recent: fifteen.
        for day in range(0, 28, 2):
            await item(session, someone, BASELINE_START + timedelta(days=day, hours=9), sectors=[4])
        await every(session, someone, RECENT_START, 5, 3, sectors=[4])
        flags = await compute_flags(session, SUDDEN_DURING, SETTINGS, NOW)
        assert_sorted(flags)
        found = by_key(of(FlagKind.SURGE, flags))
        assert set(found) == {"surge:sector=4", "surge:sector=4:area=XY01"}
        flag = found["surge:sector=4:area=XY01"]
        assert flag.kind is FlagKind.SURGE and flag.sector == 4 and flag.area_code == "XY01"
        assert flag.severity == 3  # health is critical during a sudden-onset disaster
        evidence = flag.evidence
        assert evidence.count == 15
        # 14 items in 28 days, over the 6 days and 10 hours of the window so far.
        assert math.isclose(evidence.baseline or 0, 14 / 28 * (6 + 10 / 24), rel_tol=1e-3)
        assert evidence.p_value is not None and evidence.p_value < 1e-4
        assert evidence.window_start == RECENT_START and evidence.baseline_start == BASELINE_START
        assert await count_items(session, evidence.items) == 15
        assert flag.explanation == (
            "Health Support in Area XY01: 15 items in the last 7 days, against 3.2 expected "
            "from the 28 days before (p < 0.001)."
        )
        # One area only: its own flag, not the all-area one.
        in_area = await compute_flags(session, SUDDEN_DURING, SETTINGS, NOW, area_code="XY01")
        assert [f.key for f in of(FlagKind.SURGE, in_area)] == ["surge:sector=4:area=XY01"]
        assert await compute_flags(session, SUDDEN_DURING, SETTINGS, NOW, area_code="XY09") == []


async def test_three_messages_never_make_a_surge(database: Database) -> None:
    async with database.transaction() as session:
        someone = await person(session, "p1")
        await every(session, someone, BASELINE_START, 28, 1, sectors=[15])  # history
        for hour in (1, 2, 3):  # land and property: nothing in the baseline, three now
            await item(session, someone, NOW - timedelta(hours=hour), sectors=[9])
        flags = await compute_flags(session, SUDDEN_DURING, SETTINGS, NOW)
        assert of(FlagKind.SURGE, flags) == []
        # It is the minimum count that holds it back: the test itself would flag them.
        looser = FlagSettings(min_count=3)
        surges = await compute_flags(session, SUDDEN_DURING, looser, NOW)
        assert "surge:sector=9" in by_key(surges)


async def test_no_surge_and_no_silence_when_steady(database: Database) -> None:
    async with database.transaction() as session:
        someone = await person(session, "p1")
        await every(session, someone, BASELINE_START, 35, 2, sectors=[4], language="ar")
        flags = await compute_flags(session, SUDDEN_DURING, SETTINGS, NOW)
        assert of(FlagKind.SURGE, flags) == of(FlagKind.SILENCE, flags) == []
        assert {f.kind for f in flags} == {FlagKind.UNANSWERED}  # the old items wait


async def test_no_baseline_no_statistics(database: Database) -> None:
    """A deployment that started yesterday has nothing to compare with."""
    async with database.transaction() as session:
        someone = await person(session, "p1")
        await every(session, someone, NOW - timedelta(days=1), 1, 20, sectors=[4])
        flags = await compute_flags(session, SUDDEN_DURING, SETTINGS, NOW)
        assert not [f for f in flags if f.kind in (FlagKind.SURGE, FlagKind.SILENCE)]


# --- priority sector unmet ------------------------------------------------------------------


def shelter(code: str, status: ShelterStatus, capacity: int, occupancy: int) -> Shelter:
    return Shelter(
        external_id=f"S-{code}-{status.value}-{occupancy}",
        names={"en": "Shelter"},
        latitude=10.0,
        longitude=20.0,
        adm1_code=code,
        adm1_name=f"Area {code}",
        capacity=capacity,
        occupancy=occupancy,
        status=status,
        updated_at=NOW,
        updated_by="test",
    )


async def test_shelter_requests_where_every_shelter_is_full(database: Database) -> None:
    async with database.transaction() as session:
        session.add_all(
            [
                shelter("XY01", ShelterStatus.FULL, 100, 100),
                shelter("XY01", ShelterStatus.OPEN, 50, 50),  # open, but no place left
                shelter("XY02", ShelterStatus.OPEN, 50, 10),
            ]
        )
        someone = await person(session, "p1")
        for hour in (1, 2, 3):
            await item(session, someone, NOW - timedelta(hours=hour), sectors=[2])
            await item(session, someone, NOW - timedelta(hours=hour), sectors=[2], area="XY02")
        await record_miss(session, Service.SHELTER, NOW - HOUR, area_code="XY01")
        flags = await compute_flags(session, MAN_MADE_DURING, SETTINGS, NOW)
        unmet = [f for f in flags if f.kind is FlagKind.PRIORITY_UNMET]
        assert [f.key for f in unmet] == ["priority_unmet:shelter:sector=2:area=XY01"]
        flag = unmet[0]
        assert flag.severity == 3 and flag.sector == 2 and flag.area_name == "Area XY01"
        assert flag.evidence.count == 3 and flag.evidence.details["misses"] == 1
        assert flag.evidence.details["source"] == "MC/2355 Annex I, paragraph 9"
        assert {i.area_code for i in await find_items(session, flag.evidence.items)} == {"XY01"}
        assert await count_items(session, flag.evidence.items) == 3
        assert "Area XY01 has no open shelter with free places" in flag.explanation
        # Shelter is no priority before a sudden-onset disaster (paragraph 14): no such flag.
        before = CrisisProfile("sudden_onset_natural_disaster", "before")
        assert (
            of(FlagKind.PRIORITY_UNMET, await compute_flags(session, before, SETTINGS, NOW)) == []
        )
        # An open shelter with places in XY01: the need has a service on record.
        session.add(shelter("XY01", ShelterStatus.OPEN, 80, 20))
        await session.flush()
        flags = await compute_flags(session, MAN_MADE_DURING, SETTINGS, NOW)
        assert not [f for f in flags if f.kind is FlagKind.PRIORITY_UNMET]


async def test_transport_requests_with_no_departure_point(database: Database) -> None:
    async with database.transaction() as session:
        someone = await person(session, "p1")
        for hour in (1, 2):
            await item(session, someone, NOW - timedelta(hours=hour), sectors=[3], area="XY03")
        await record_miss(session, Service.DEPARTURE, NOW - HOUR, area_code="XY03")
        found = by_key(await compute_flags(session, MAN_MADE_DURING, SETTINGS, NOW))
        flag = found["priority_unmet:transport:sector=3:area=XY03"]
        assert flag.evidence.count == 2 and flag.evidence.details["misses"] == 1
        session.add(
            Place(
                external_id="DP1",
                kind=PlaceKind.DEPARTURE_POINT,
                names={"en": "Bus station"},
                alt_names=[],
                adm1_code="XY03",
                latitude=10.0,
                longitude=20.0,
                updated_by="test",
            )
        )
        await session.flush()
        assert not await compute_flags(session, MAN_MADE_DURING, SETTINGS, NOW)


async def test_consulate_misses_with_no_mission_on_record(database: Database) -> None:
    async with database.transaction() as session:
        for country, times in (("SY", 3), ("ER", 3), ("SD", 1)):
            for n in range(times):
                at = NOW - timedelta(hours=n + 1)
                await record_miss(session, Service.CONSULATE, at, key=country, area_code="XY01")
        session.add(
            Mission(
                external_id="M-ER",
                country_code="ER",
                kind=MissionKind.EMBASSY,
                names={"en": "Embassy"},
                notes={},
                updated_at=NOW,
                updated_by="test",
            )
        )
        await session.flush()
        flags = await compute_flags(session, MAN_MADE_DURING, SETTINGS, NOW)
        assert [f.key for f in flags] == ["priority_unmet:consulate:sector=12:country=SY"]
        flag = flags[0]
        assert flag.severity == 2  # consular coordination is "required": important
        assert flag.evidence.details["nationality"] == "SY" and flag.evidence.count == 3
        assert "no mission of Syria is on record: 3 people asked" in flag.explanation
        assert flag.evidence.items.sector == 12
        # Not a priority of the profile: no flag.
        assert not await compute_flags(session, SUDDEN_DURING, SETTINGS, NOW)


# --- unanswered -----------------------------------------------------------------------------


async def test_unanswered_per_criticality_oldest_first(database: Database) -> None:
    async with database.transaction() as session:
        someone = await person(session, "p1")
        urgent = await item(session, someone, NOW - 5 * HOUR, urgent=True)
        await item(session, someone, NOW - 3 * HOUR, urgent=True)  # within its 4 h
        critical = await item(session, someone, NOW - 30 * HOUR, sectors=[4])
        await item(session, someone, NOW - 10 * HOUR, sectors=[4])  # within its 24 h
        newer = await item(session, someone, NOW - 80 * HOUR, sectors=[9])
        oldest = await item(session, someone, NOW - 100 * HOUR, sectors=[9], area="XY02")
        referred = await item(session, someone, NOW - 90 * HOUR)
        await move(session, referred, ItemStatus.REFERRED, NOW - 89 * HOUR)
        answered = await item(session, someone, NOW - 200 * HOUR)
        await move(session, answered, ItemStatus.ANSWERED, NOW - 199 * HOUR)
        await item(session, someone, NOW - 3 * HOUR, sensitive=True)

        flags = await compute_flags(session, SUDDEN_DURING, SETTINGS, NOW)
        assert [f.key for f in flags] == [
            "unanswered:critical_sector",
            "unanswered:urgent",
            "unanswered:other",
        ]
        assert_sorted(flags)
        found = by_key(flags)
        assert found["unanswered:urgent"].evidence.items.references == (urgent.reference,)
        assert found["unanswered:critical_sector"].evidence.items.references == (
            critical.reference,
        )
        other = found["unanswered:other"]
        assert other.severity == 2 and other.evidence.count == 3
        assert other.evidence.items.references == (
            oldest.reference,
            referred.reference,
            newer.reference,
        )
        assert other.evidence.details["oldest_hours"] == 100.0
        assert other.explanation == (
            "3 open other items have waited longer than the 3 days response target; "
            "the oldest has waited 4 days."
        )
        # In French: the sentence, the class and both durations (Babel) are French.
        french = other.explain(translations("fr").gettext, "fr").replace("\xa0", " ")
        assert "3 jours" in french and "4 jours" in french and "days" not in french
        listed = await find_items(session, other.evidence.items, oldest_first=True)
        assert [i.reference for i in listed] == list(other.evidence.items.references)

        # A longer target for the other items spares them all.
        patient = FlagSettings(response_target_other=timedelta(hours=120))
        assert "unanswered:other" not in by_key(
            await compute_flags(session, SUDDEN_DURING, patient, NOW)
        )

        # One area: only its items.
        in_area = await compute_flags(session, SUDDEN_DURING, SETTINGS, NOW, area_code="XY02")
        assert [f.key for f in in_area] == ["unanswered:other:area=XY02"]
        assert in_area[0].evidence.items.references == (oldest.reference,)


async def test_sensitive_items_only_when_allowed(database: Database) -> None:
    async with database.transaction() as session:
        someone = await person(session, "p1")
        sensitive = await item(session, someone, NOW - 3 * HOUR, sensitive=True)
        flags = await compute_flags(session, SUDDEN_DURING, SETTINGS, NOW)
        assert flags == []
        allowed = await compute_flags(session, SUDDEN_DURING, SETTINGS, NOW, include_sensitive=True)
        assert [f.key for f in allowed] == ["unanswered:sensitive"]
        evidence = allowed[0].evidence
        assert evidence.items.references == (sensitive.reference,)
        assert evidence.items.include_sensitive
        assert await count_items(session, evidence.items) == 1
        # The link without the permission shows nothing.
        assert await count_items(session, evidence.items.allowing_sensitive(False)) == 0


# --- silence --------------------------------------------------------------------------------


async def test_silence_of_an_area_and_a_language(database: Database) -> None:
    async with database.transaction() as session:
        someone = await person(session, "p1")
        # XY02 in Pashto: two a day until the recent window, then one.
        await every(session, someone, BASELINE_START, 28, 2, area="XY02", language="ps")
        await item(session, someone, NOW - 2 * HOUR, area="XY02", language="ps")
        # XY01 in English goes on as before.
        await every(session, someone, BASELINE_START, 35, 2, area="XY01", language="en")
        flags = of(FlagKind.SILENCE, await compute_flags(session, SUDDEN_DURING, SETTINGS, NOW))
        assert [f.key for f in flags] == ["silence:area=XY02", "silence:language=ps"]
        area, language = flags
        assert area.area_code == "XY02" and area.evidence.count == 1
        assert area.evidence.p_value is not None and area.evidence.p_value < SETTINGS.alpha
        assert area.evidence.baseline is not None and area.evidence.baseline > 10
        assert language.language == "ps" and "Pashto" in language.explanation
        assert "пушту" in language.explain(translations("ru").gettext, "ru")
        assert "Area XY02" in area.explanation and "28 days" in area.explanation
        assert await count_items(session, area.evidence.items) == 1
        # Too few expected to call it silence: a tenth of the traffic never flags.
        quiet = FlagSettings(min_count=20)
        assert of(FlagKind.SILENCE, await compute_flags(session, SUDDEN_DURING, quiet, NOW)) == []


# --- rumours --------------------------------------------------------------------------------

RUMOURS = (
    "the vaccine is poison",
    "they say the vaccine poison kills children",
    "do not take the vaccine, it is poison",
    "the vaccine = poison, tell everyone",
    "my neighbour said the vaccine is poison",
)


async def background(session: AsyncSession, contact: Contact) -> None:
    """Everyday feedback: the words it shares with the rumours are no topic."""
    for n in range(20):
        at = BASELINE_START + timedelta(days=n, hours=3)
        await item(session, contact, at, type_="question", text=f"where is the clinic {n}")


async def test_a_rumour_trending_among_several_people(database: Database) -> None:
    async with database.transaction() as session:
        people = [await person(session, f"p{n}") for n in range(3)]
        await background(session, people[0])
        for n, text in enumerate(RUMOURS):
            at = NOW - timedelta(hours=n + 1)
            await item(session, people[n % 3], at, type_="rumour", text=text, sectors=[4])
        flags = of(FlagKind.RUMOUR, await compute_flags(session, SUDDEN_DURING, SETTINGS, NOW))
        assert [f.key for f in flags] == ["rumour:topic=poison+vaccine"]
        flag = flags[0]
        assert flag.topic == "poison vaccine" and flag.sector == 4 and flag.severity == 3
        assert flag.evidence.count == 5 and flag.evidence.details["contacts"] == 3
        assert await count_items(session, flag.evidence.items) == 5
        assert flag.explanation.startswith(
            "5 rumours from 3 people in the last 7 days share the words “poison vaccine”"
        )


async def test_one_person_repeating_a_rumour_is_no_trend(database: Database) -> None:
    async with database.transaction() as session:
        someone = await person(session, "p1")
        await background(session, someone)
        for n, text in enumerate(RUMOURS):
            await item(session, someone, NOW - timedelta(hours=n + 1), type_="rumour", text=text)
        flags = await compute_flags(session, SUDDEN_DURING, SETTINGS, NOW)
        assert of(FlagKind.RUMOUR, flags) == []


# --- the flag as data -----------------------------------------------------------------------


async def test_json_and_translation(database: Database) -> None:
    async with database.transaction() as session:
        someone = await person(session, "p1")
        await item(session, someone, NOW - 100 * HOUR, sectors=[9])
        await item(session, someone, NOW - 5 * HOUR, urgent=True)
        for hour in (1, 2, 3):
            await item(session, someone, NOW - hour * HOUR, sectors=[2])
        flags = await compute_flags(session, MAN_MADE_DURING, SETTINGS, NOW)
        assert {f.kind for f in flags} == {FlagKind.UNANSWERED, FlagKind.PRIORITY_UNMET}
        assert_sorted(flags)
        for flag in flags:
            data = json.loads(json.dumps(flag.to_json()))
            assert data["key"] == flag.key and data["explanation"] == flag.explanation
            assert data["evidence"]["items"] == flag.evidence.items.to_query()
            assert flag.explain(translations("en").gettext) == flag.explanation
        unmet = by_key(flags)["priority_unmet:shelter:sector=2:area=XY01"]
        assert unmet.to_json()["sector_name"] == "Shelter and Non-food Items"
        # Another language translates the sentence and the names that are msgids.
        catalog = {
            unmet.template: "{sector} ({level}) manque à {area} : {count} / {misses}.",
            "Shelter and Non-food Items": "Abris et articles non alimentaires",
            "critical": "critique",
        }
        assert unmet.explain(lambda text: catalog.get(text, text)) == (
            "Abris et articles non alimentaires (critique) manque à Area XY01 : 3 / 0."
        )
