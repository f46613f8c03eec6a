"""The sandbox's demo data set: clearly fictional, realistic in shape, so that a newcomer can
try every service (find a shelter, type a place, look up a consulate) on an empty database.

The data are the CSV files in data/demo/, with HXL hashtag rows, loaded through the same
importer officers use, so the demo also proves the importer. An invented region (North
Valley and South Hills provinces) lies within about 50 km of DEMO_CENTRE, which is the
location the sandbox's chat page shares by default. Among the twelve shelters some are open,
two are full (one over capacity), one is closed, one has no capacity on record, and one was
last confirmed days ago, so that it shows as stale. Missions are on record for Afghanistan,
Syria, Ethiopia, Sudan, Somalia, Ukraine, Venezuela and Bangladesh; none for Eritrea or
Haiti, so that the "no mission on record" answer can be tried too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from messages.consulates import Mission
from messages.importing import ImportKind, import_file
from messages.places import Place
from messages.shelters import Shelter, ShelterChange

DEMO_CENTRE = (46.2044, 6.1432)  # latitude, longitude: "Riverside", the invented capital
DEMO_BY = "demo data"

# How long ago each shelter was last updated when the demo is loaded; others: DEFAULT_AGE.
# Pinecrest Mountain Lodge is days old, so that the bot's "not confirmed since" shows.
SHELTER_AGES: tuple[tuple[str, timedelta], ...] = (
    ("DEMO-SH-01", timedelta(minutes=25)),
    ("DEMO-SH-02", timedelta(hours=1, minutes=10)),
    ("DEMO-SH-03", timedelta(hours=3)),
    ("DEMO-SH-04", timedelta(hours=5)),
    ("DEMO-SH-05", timedelta(minutes=50)),
    ("DEMO-SH-06", timedelta(hours=2)),
    ("DEMO-SH-07", timedelta(hours=9)),
    ("DEMO-SH-08", timedelta(minutes=15)),
    ("DEMO-SH-09", timedelta(days=4, hours=2)),
    ("DEMO-SH-10", timedelta(hours=1)),
    ("DEMO-SH-11", timedelta(hours=6)),
    ("DEMO-SH-12", timedelta(hours=4)),
)
DEFAULT_AGE = timedelta(hours=2)
PLACES_AGE = timedelta(days=7)  # a gazetteer changes rarely
MISSIONS_AGE = timedelta(days=3)


def demo_folder() -> Path:
    return Path(str(resources.files("messages").joinpath("data/demo")))


async def has_content(session: AsyncSession) -> bool:
    """True when any shelter, place or mission is stored: the demo must never mix with or
    overwrite real data."""
    for model in (Shelter, Place, Mission):
        if await session.scalar(select(model.id).limit(1)) is not None:
            return True
    return False


async def load_demo_data(session: AsyncSession, now: datetime) -> bool:
    """Load the demo places, shelters and missions into an empty database; True if loaded.

    Does nothing (False) when any shelter, place or mission exists. Timestamps are relative
    to `now`, so the demo looks current whenever it is loaded. Raises RuntimeError if the
    shipped files do not import cleanly (a bug, caught by the tests).
    """
    if await has_content(session):
        return False
    folder = demo_folder()
    for kind, filename in (
        (ImportKind.PLACES, "places.csv"),
        (ImportKind.SHELTERS, "shelters.csv"),
        (ImportKind.CONSULATES, "consulates.csv"),
    ):
        result = await import_file(session, kind, folder / filename, by=DEMO_BY, now=now)
        if not result.ok:
            raise RuntimeError(f"demo data {filename} does not import:\n{result.report()}")
    await session.execute(update(Place).values(updated_at=now - PLACES_AGE))
    await session.execute(update(Mission).values(updated_at=now - MISSIONS_AGE))
    ages = dict(SHELTER_AGES)
    for shelter in await session.scalars(select(Shelter)):
        shelter.updated_at = now - ages.get(shelter.external_id, DEFAULT_AGE)
        await session.execute(
            update(ShelterChange)
            .where(ShelterChange.shelter_id == shelter.id)
            .values(at=shelter.updated_at)
        )
    await session.flush()
    return True
