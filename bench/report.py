"""Benchmark the responders' report and dashboard overview over many feedback items.

    python bench/report.py [--postgres postgresql+asyncpg://...] [--items 1000000] [--days 90]

Generates `--items` feedback items (random.Random(--seed), relative to the current hour)
across 15 MCOF sectors, their clusters, 12 areas, 10 languages, 6 feedback types, 5 statuses
and the last `--days` days, bulk-inserted with SQLAlchemy Core (executemany in batches of
10,000: contacts, feedback_items, feedback_item_codes). The rollup counts are written by a
bulk path equivalent to `feedback.rollups.rebuild` (rebuild loads and updates every item
through the ORM, minutes at a million): each item's `counted` snapshot and its count keys
come from the same `snapshot`/`keys_of` functions, summed in memory and inserted once. Runs of
up to --verify-up-to items also run `rebuild` and check it gives the same counts.

Then, in the same run, each timed as the best of 5 after one warm-up, in its own transaction:

- `SELECT count(*) FROM feedback_items`, the baseline;
- the full report: `feedback.summary.summarise` over 7 days + `feedback.flags.compute_flags`
  (what `crisis-comms report` computes), and its two parts apart;
- the dashboard overview: `summarise` over 30 days.

SQLite in a temporary folder by default. With --postgres, the schema is created by
`storage.database.upgrade` in a fresh PostgreSQL schema, dropped at the end: the database's
other schemas are left alone.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from feedback.crisis_profile import CrisisProfile
from feedback.flags import FAMILIES, Context, Flag, FlagSettings, compute_flags, make_context
from feedback.items import FeedbackItem, ItemCode
from feedback.rollups import (
    KEY_COLUMNS,
    FeedbackCount,
    Key,
    keys_of,
    rebuild,
    sector_mask,
    snapshot,
)
from feedback.summary import Window, summarise
from feedback.taxonomy import taxonomy
from messages.consulates import Mission, MissionKind
from messages.contacts import Contact
from messages.misses import KEYS, Service, ServiceMiss
from messages.places import Place, PlaceKind
from messages.shelters import Shelter, ShelterStatus
from storage.counters import add_to_counters
from storage.database import Database, connect, upgrade

BATCH = 10_000
REPEAT = 5
PROFILE = CrisisProfile("sudden_onset_natural_disaster", "during")

# Skewed like a real response: a few sectors, languages and areas carry most of the feedback.
SECTORS = {2: 20, 4: 14, 3: 10, 1: 9, 15: 8, 12: 6, 10: 5, 5: 5, 6: 4, 11: 4, 9: 3, 7: 3, 8: 2}
SECTORS |= {13: 1, 14: 1}
LANGUAGES = {"ar": 30, "en": 15, "fr": 12, "uk": 10, "fa": 8, "fa-AF": 6, "ps": 6, "so": 5}
LANGUAGES |= {"ti": 4, "am": 4}
TYPES = {"request": 45, "question": 25, "complaint": 12, "other": 7, "rumour": 6}
TYPES |= {"appreciation": 5}
AREAS = {f"XY{n:02d}": 13 - n for n in range(1, 13)}  # XY01 busiest, XY12 quietest
STATUS_RECENT = {"new": 55, "in_review": 20, "referred": 10, "answered": 10, "closed": 5}
STATUS_OLDER = {"new": 6, "in_review": 6, "referred": 8, "answered": 30, "closed": 50}
WORDS = {  # a few words per sector, so that rumour topics and everyday words exist
    1: "camp registration tent site",
    2: "shelter blanket tent roof cold",
    3: "bus evacuation transport road",
    4: "clinic medicine doctor fever",
    5: "stress fear children sleep",
    10: "danger abuse missing child",
    12: "passport embassy document",
}
RUMOURS = ("vaccine poison water well", "border closed tomorrow night", "cash cards fake scam")
LANG_TEXT = "help please need family"


@dataclass(frozen=True)
class Sizes:
    items: int
    days: int
    seed: int

    @property
    def contacts(self) -> int:
        return max(1, self.items // 10)  # ten messages per person on average


def weighted(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(list(weights), list(weights.values()))[0]


@cache
def clusters_of(sector: int) -> list[str]:
    details = taxonomy().cluster_details.values()
    return sorted(c.key for c in details if sector in c.sectors and c.area_of is None)[:1]


# --- the database ---------------------------------------------------------------------------


@asynccontextmanager
async def open_database(
    postgres: str | None, folder: str, *, keep: bool = False
) -> AsyncIterator[Database]:
    """A SQLite file in `folder`, or a fresh schema on PostgreSQL dropped afterwards (kept
    with `keep`, to profile queries on it)."""
    if postgres is None:
        database = connect(f"sqlite+aiosqlite:///{Path(folder) / 'report.db'}")
        await upgrade(database)
        try:
            yield database
        finally:
            await database.dispose()
        return
    url = postgres.replace("postgresql://", "postgresql+asyncpg://", 1)
    if not url.startswith("postgresql+asyncpg://"):
        raise SystemExit("--postgres needs a postgresql:// or postgresql+asyncpg:// URL")
    schema = f"bench_report_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(url)
    async with admin.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_async_engine(url, connect_args={"server_settings": {"search_path": schema}})
    database = Database(engine, async_sessionmaker(engine, expire_on_commit=False))
    try:
        await upgrade(database)
        yield database
    finally:
        await database.dispose()
        if keep:
            print(f"schema {schema} kept")
        else:
            async with admin.begin() as connection:
                await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


# --- generating -----------------------------------------------------------------------------


@dataclass
class Generated:
    items: list[dict[str, Any]]
    codes: list[dict[str, Any]]
    keys: list[Key]


def one_item(
    item_id: int, age: timedelta, rng: random.Random, sizes: Sizes, now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]], list[Key]]:
    created = now - age
    area: str | None = weighted(rng, AREAS) if rng.random() > 0.08 else None
    language: str | None = weighted(rng, LANGUAGES) if rng.random() > 0.03 else None
    type_ = weighted(rng, TYPES)
    sectors = {weighted(rng, SECTORS)}
    if rng.random() < 0.15:
        sectors.add(weighted(rng, SECTORS))
    if age < timedelta(days=5) and rng.random() < 0.08:  # a health surge in one area
        sectors, area = {4}, "XY03"
    sensitive = rng.random() < 0.02
    if sensitive:
        sectors = {10}
    clusters = sorted({c for s in sectors for c in clusters_of(s)})
    status = weighted(rng, STATUS_RECENT if age < timedelta(days=2) else STATUS_OLDER)
    answered = None
    if status == "answered" or (status == "closed" and rng.random() < 0.7):
        answered = min(now, created + timedelta(hours=rng.expovariate(1 / 20)))
    words = RUMOURS[item_id % 3] if type_ == "rumour" else WORDS.get(min(sectors), LANG_TEXT)
    row: dict[str, Any] = {
        "id": item_id,
        "reference": f"BENCH{item_id:09d}",
        "contact_id": rng.randint(1, sizes.contacts),
        "channel": "telegram",
        "area_code": area,
        "area_name": f"Province {area[2:]}" if area else None,
        "text": f"{words} {item_id % 97}",
        "language": language,
        "status": status,
        "created_at": created,
        "repeats": 0,
        "type": type_,
        "urgent": sensitive or rng.random() < 0.05,
        "sensitive": sensitive,
        "in_review_at": None if status == "new" else created + timedelta(hours=1),
        "answered_at": answered,
        "closed_at": now if status == "closed" else None,
    }
    transient = FeedbackItem(
        created_at=created,
        area_code=area,
        language=language,
        type=type_,
        status=status,
        sensitive=sensitive,
    )
    row["counted"] = snapshot(transient, sectors, clusters)
    row["sector_mask"] = sector_mask(sectors)
    codes = [
        {"item_id": item_id, "scheme": scheme, "value": value, "confidence": 0.9, "source": "bench"}
        for scheme, values in (("sector", [str(s) for s in sorted(sectors)]), ("cluster", clusters))
        for value in values
    ]
    return row, codes, keys_of(row["counted"])


async def insert_rows(database: Database, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    async with database.transaction() as session:
        for start in range(0, len(rows), BATCH):
            await session.execute(insert(table), list(rows[start : start + BATCH]))


async def seed_services(database: Database, now: datetime, rng: random.Random) -> None:
    """Areas with names, shelters (XY05 has none with room), missions, departure points and
    some service misses: what the "priority sector unmet" flag reads."""
    async with database.transaction() as session:
        for n, code in enumerate(AREAS, start=1):
            point = (46.0 + n * 0.1, 6.0)
            session.add(
                Place(
                    external_id=code,
                    kind=PlaceKind.ADM1,
                    names={"en": f"Province {n:02d}"},
                    alt_names=[],
                    adm1_code=code,
                    adm1_name=f"Province {n:02d}",
                    updated_by="bench",
                )
            )
            if n % 3:
                session.add(
                    Place(
                        external_id=f"{code}-DP",
                        kind=PlaceKind.DEPARTURE_POINT,
                        names={"en": f"Bus station {n}"},
                        alt_names=[],
                        latitude=point[0],
                        longitude=point[1],
                        adm1_code=code,
                        adm1_name=f"Province {n:02d}",
                        updated_by="bench",
                    )
                )
            for s in range(3):
                full = code == "XY05" or s == 2
                session.add(
                    Shelter(
                        external_id=f"{code}-S{s}",
                        names={"en": f"Shelter {n}.{s}"},
                        latitude=point[0] + s * 0.01,
                        longitude=point[1],
                        adm1_code=code,
                        adm1_name=f"Province {n:02d}",
                        capacity=100,
                        occupancy=100 if full else 40,
                        status=ShelterStatus.FULL if full else ShelterStatus.OPEN,
                        updated_at=now,
                        updated_by="bench",
                    )
                )
        for code in ("SY", "AF", "UA", "SD"):
            session.add(
                Mission(
                    external_id=f"M-{code}",
                    country_code=code,
                    kind=MissionKind.EMBASSY,
                    names={"en": f"Embassy {code}"},
                    services=[],
                    updated_by="bench",
                )
            )
        misses = []
        for day in range(28):
            for service, key in ((Service.SHELTER, ""), (Service.CONSULATE, "ER")):
                area = weighted(rng, AREAS)
                misses.append(
                    {
                        "day": (now - timedelta(days=day)).date(),
                        "service": service.value,
                        "key": key,
                        "area_code": area,
                        "misses": rng.randint(1, 5),
                    }
                )
        await add_to_counters(session, ServiceMiss, KEYS, ServiceMiss.misses, misses)


async def generate(database: Database, sizes: Sizes, now: datetime) -> dict[str, float]:
    """Fill the database; seconds spent per step."""
    rng = random.Random(sizes.seed)
    spent: dict[str, float] = {}
    start = time.perf_counter()
    await seed_services(database, now, rng)
    contacts = [
        {
            "id": n,
            "pseudonym": f"bench{n:09d}",
            "channel": "telegram",
            "language": weighted(rng, LANGUAGES),
            "language_chosen": True,
            "consent_version": "bench",
            "consent_at": now - timedelta(days=sizes.days),
            "created_at": now - timedelta(days=sizes.days),
        }
        for n in range(1, sizes.contacts + 1)
    ]
    await insert_rows(database, Contact.__table__, contacts)
    # Oldest first, as items arrive: ids follow time, so a window of days is a run of rows.
    ages = sorted((rng.random() * sizes.days for _ in range(sizes.items)), reverse=True)
    totals: Counter[Key] = Counter()
    for start_id in range(1, sizes.items + 1, 100_000):  # bounded memory
        chunk = Generated([], [], [])
        for item_id in range(start_id, min(sizes.items, start_id + 99_999) + 1):
            age = timedelta(days=ages[item_id - 1])
            row, codes, keys = one_item(item_id, age, rng, sizes, now)
            chunk.items.append(row)
            chunk.codes.extend(codes)
            totals.update(keys)
        await insert_rows(database, FeedbackItem.__table__, chunk.items)
        await insert_rows(database, ItemCode.__table__, chunk.codes)
    spent["insert"] = time.perf_counter() - start
    start = time.perf_counter()
    # The table is empty: the sums go in as plain inserts, with no conflict to resolve.
    rows = [dict(zip(KEY_COLUMNS, key, strict=True), items=n) for key, n in totals.items()]
    await insert_rows(database, FeedbackCount.__table__, rows)
    spent["counts"] = time.perf_counter() - start
    start = time.perf_counter()
    async with database.engine.begin() as connection:
        await connection.execute(text("ANALYZE"))
    spent["analyze"] = time.perf_counter() - start
    return spent


async def all_counts(database: Database) -> dict[Key, int]:
    async with database.transaction() as session:
        rows = await session.execute(select(FeedbackCount))
        return {
            Key(r.kind, r.day, r.code, r.area_code, r.language, r.type, r.status, r.sensitive): (
                r.items
            )
            for (r,) in rows
            if r.items
        }


async def verify_rebuild(database: Database) -> float:
    """`rebuild` must give exactly the counts the bulk path wrote; seconds it took."""
    bulk = await all_counts(database)
    start = time.perf_counter()
    async with database.transaction() as session:
        await rebuild(session)
    took = time.perf_counter() - start
    rebuilt = await all_counts(database)
    if rebuilt != bulk:
        raise SystemExit(f"rebuild differs from the bulk counts: {len(rebuilt)} / {len(bulk)}")
    return took


# --- timing ---------------------------------------------------------------------------------


async def best_of(call: Callable[[], Awaitable[object]]) -> float:
    await call()  # warm-up: caches, prepared statements, the interpreter
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    return min(times)


async def measure(database: Database, now: datetime) -> dict[str, float]:
    settings = FlagSettings()

    async def count_all() -> object:
        async with database.transaction() as session:
            return await session.scalar(text("SELECT count(*) FROM feedback_items"))

    async def week() -> object:
        async with database.transaction() as session:
            return await summarise(session, Window.last_days(7, now))

    async def flags() -> object:
        async with database.transaction() as session:
            return await compute_flags(session, PROFILE, settings, now)

    async def report() -> object:
        async with database.transaction() as session:
            summary = await summarise(session, Window.last_days(7, now))
            return summary, await compute_flags(session, PROFILE, settings, now)

    async def overview() -> object:
        async with database.transaction() as session:
            return await summarise(session, Window.last_days(30, now))

    def family(part: Callable[[Context], Awaitable[list[Flag]]]) -> Callable[[], Awaitable[object]]:
        async def run() -> object:
            async with database.transaction() as session:
                return await part(await make_context(session, PROFILE, settings, now))

        return run

    times = {
        "SELECT count(*) FROM feedback_items": await best_of(count_all),
        "full report (summary 7 days + flags)": await best_of(report),
        "  of which summary, 7 days": await best_of(week),
        "  of which compute_flags": await best_of(flags),
    }
    for part in FAMILIES:
        times[f"    {part.__name__}"] = await best_of(family(part))
    times["dashboard overview (summary 30 days)"] = await best_of(overview)
    return times


async def main(args: argparse.Namespace) -> None:
    sizes = Sizes(args.items, args.days, args.seed)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with tempfile.TemporaryDirectory() as folder:
        async with open_database(args.postgres, folder, keep=args.keep) as database:
            backend = database.engine.dialect.name
            print(
                f"{sizes.items:,} items, {sizes.contacts:,} contacts, {sizes.days} days, {backend}"
            )
            spent = await generate(database, sizes, now)
            async with database.transaction() as session:
                rows = await session.scalar(text("SELECT count(*) FROM feedback_counts"))
                codes = await session.scalar(text("SELECT count(*) FROM feedback_item_codes"))
                week = await summarise(session, Window.last_days(7, now))
                flags = await compute_flags(session, PROFILE, FlagSettings(), now)
            print(
                f"loaded in {spent['insert']:.1f} s ({codes:,} codes), counts by the bulk path "
                f"in {spent['counts']:.1f} s ({rows:,} count rows), "
                f"ANALYZE {spent['analyze']:.1f} s"
            )
            if sizes.items <= args.verify_up_to:
                took = await verify_rebuild(database)
                print(f"rebuild gives the same counts ({took:.1f} s by rebuild)")
            print(f"7-day summary: {week.total:,} items (sensitive left out); {len(flags)} flags")
            times = await measure(database, now)
    base = times["SELECT count(*) FROM feedback_items"]
    print(f"best of {REPEAT} after one warm-up:")
    for label, seconds in times.items():
        print(f"  {label:<40} {seconds * 1000:9.1f} ms   × count(*) {seconds / base:6.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL; a fresh schema is used, dropped")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL schema")
    parser.add_argument(
        "--verify-up-to",
        type=int,
        default=100_000,
        help="also run feedback.rollups.rebuild and compare, up to this many items",
    )
    asyncio.run(main(parser.parse_args()))
