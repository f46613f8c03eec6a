"""Benchmark the lookups a person waits for: nearest shelters and typed place names.

    python bench/lookups.py [--shelters 20000] [--places 3000] [--queries 200]
                            [--database-url postgresql+asyncpg://...]

Synthetic, reproducible data (random.Random(0)) in a fresh SQLite file (or the given
database, whose tables are dropped first: use a scratch database). Every figure is compared
with a baseline measured in the same run, because machines are noisy:

- nearest shelters (`messages.shelters.nearest_shelters`: bounding box in SQL, then
  haversine) against the naive way, reading every shelter and sorting by distance;
- place matching (`messages.places.match_places`: every name and spelling compared with
  rapidfuzz) against reading the gazetteer once without comparing anything, i.e. the share
  of the time spent matching.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import string
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from sqlalchemy import select, text

from messages.geo import haversine_m
from messages.places import Place, PlaceKind, match_places
from messages.shelters import Shelter, ShelterStatus, nearest_shelters
from storage.base import utcnow
from storage.database import Database, connect, upgrade

CENTRE = (46.2, 6.1)
SPREAD = 2.0  # degrees: a region about 300 km across


async def seed(database: Database, shelters: int, places: int, rng: random.Random) -> None:
    now = utcnow()
    async with database.transaction() as session:
        for number in range(shelters):
            session.add(
                Shelter(
                    external_id=f"S{number}",
                    names={"en": f"Shelter {number}"},
                    notes={},
                    latitude=CENTRE[0] + rng.uniform(-SPREAD, SPREAD),
                    longitude=CENTRE[1] + rng.uniform(-SPREAD, SPREAD),
                    capacity=100,
                    occupancy=rng.randint(0, 100),
                    status=rng.choice(list(ShelterStatus)),
                    services=[],
                    updated_at=now,
                    updated_by="bench",
                )
            )
        for number in range(places):
            name = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(5, 12))).title()
            session.add(
                Place(
                    external_id=f"P{number}",
                    kind=PlaceKind.LOCALITY,
                    names={"en": name, "fr": name + "-ville"},
                    alt_names=[name.lower()],
                    latitude=CENTRE[0] + rng.uniform(-SPREAD, SPREAD),
                    longitude=CENTRE[1] + rng.uniform(-SPREAD, SPREAD),
                    updated_by="bench",
                )
            )


async def naive_nearest(database: Database, latitude: float, longitude: float) -> list[str]:
    async with database.transaction() as session:
        rows = await session.scalars(select(Shelter).where(Shelter.status != "closed"))
        ranked = sorted(
            (haversine_m(latitude, longitude, s.latitude, s.longitude), s.external_id) for s in rows
        )
    return [external_id for meters, external_id in ranked[:5] if meters <= 25_000]


async def indexed_nearest(database: Database, latitude: float, longitude: float) -> list[str]:
    async with database.transaction() as session:
        found = await nearest_shelters(session, latitude, longitude, within_km=25)
    return [item.shelter.external_id for item in found]


async def timed(calls: list[Callable[[], Awaitable[object]]]) -> list[float]:
    times = []
    for call in calls:
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    return times


def line(label: str, times: list[float], baseline: list[float]) -> str:
    ours, base = statistics.median(times), statistics.median(baseline)
    return (
        f"{label:<34} median {ours * 1000:8.2f} ms   baseline {base * 1000:8.2f} ms   "
        f"ratio {ours / base:6.3f}"
    )


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        database = connect(url)
        await upgrade(database)
        if args.database_url:
            async with database.engine.begin() as connection:
                for table in ("registrations", "shelter_changes", "shelters", "places"):
                    await connection.execute(text(f"DELETE FROM {table}"))
        await seed(database, args.shelters, args.places, rng)
        points = [
            (CENTRE[0] + rng.uniform(-SPREAD, SPREAD), CENTRE[1] + rng.uniform(-SPREAD, SPREAD))
            for _ in range(args.queries)
        ]
        for lat, lon in points[:20]:  # both ways must agree before they are timed
            assert await naive_nearest(database, lat, lon) == await indexed_nearest(
                database, lat, lon
            )
        naive = await timed([partial(naive_nearest, database, *point) for point in points])
        indexed = await timed([partial(indexed_nearest, database, *point) for point in points])

        async with database.transaction() as session:
            names = [place.names["en"] for place in await session.scalars(select(Place))]
        typed = [typo(rng.choice(names), rng) for _ in range(args.queries // 4)]

        async def read_only() -> None:
            async with database.transaction() as session:
                list(await session.scalars(select(Place)))

        async def matched(query: str) -> int:
            async with database.transaction() as session:
                return len(await match_places(session, query, "en"))

        reads = await timed([read_only for _ in typed])
        matches = await timed([partial(matched, query) for query in typed])
        hits = [await matched(q) for q in typed[:50]]
        await database.dispose()

    backend = url.split(":", 1)[0]
    print(f"{args.shelters} shelters, {args.places} places, {args.queries} queries, {backend}")
    print(line("nearest 5 shelters within 25 km", indexed, naive) + "   (baseline: read all)")
    print(line("match a typed place (1 typo)", matches, reads) + "   (baseline: read only)")
    print(f"typed places with a match: {sum(1 for h in hits if h)}/{len(hits)}")


def typo(name: str, rng: random.Random) -> str:
    """Drop one letter, as people typing on a phone do."""
    index = rng.randrange(1, len(name))
    return name[:index] + name[index + 1 :]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shelters", type=int, default=20_000)
    parser.add_argument("--places", type=int, default=3_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--database-url")
    asyncio.run(main(parser.parse_args()))
