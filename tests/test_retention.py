"""The retention period (privacy/retention.py) with a fake clock, on SQLite and PostgreSQL:
exactly what is older than the period goes, the young stays, a person who wrote recently keeps
everything, tombstones are left alone, and the rollup counts (and a rebuild) do not change.
Once through the bot's job, once through `crisis-comms retention`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import retention_job
from bot.config import Settings
from bot.services import Services, install
from evacuation.registrations import Registration
from feedback.codes import apply_suggestion
from feedback.coding import Suggestion
from feedback.items import Attachment, FeedbackItem, record_item
from feedback.replies import Reply, record_reply
from feedback.rollups import FeedbackCount, Key, rebuild
from messages.contacts import Contact, ContactAddress, Pseudonymizer, Subscription, record_consent
from privacy.retention import RetentionReport, apply_retention, count_due
from staff.audit import AuditEvent
from storage.base import utcnow
from storage.database import Database, connect, upgrade
from tests.clock import FakeClock
from tests.test_cli import run_cli

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
PERIOD = timedelta(days=180)


def ago(days: int) -> datetime:
    return NOW - timedelta(days=days)


@dataclass
class Seeded:
    contacts: dict[str, int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    registrations: dict[str, int] = field(default_factory=dict)


def coded(sectors: tuple[int, ...]) -> Suggestion:
    return Suggestion(
        language="en",
        type="request",
        type_confidence=0.9,
        mcof_sectors={s: 0.9 for s in sectors},
        clusters={"wash": 0.8},
        urgent=False,
        urgent_confidence=0.1,
        sensitive=False,
        sensitive_categories=(),
        confidence=0.9,
    )


async def person(
    session: AsyncSession,
    seeded: Seeded,
    name: str,
    *,
    consented: int,
    seen: int | None,
    withdrawn: int | None = None,
) -> Contact:
    """A contact who agreed `consented` days ago and was last seen `seen` days ago."""
    contact = await record_consent(
        session, f"pseudo-{name}", 900_000 + len(seeded.contacts), "en", ago(consented)
    )
    contact.created_at = ago(consented)
    contact.last_seen_at = None if seen is None else ago(seen)
    session.add(Subscription(contact_id=contact.id, topic="alerts", area=None))
    if withdrawn is not None:
        contact.consent_at = None
        contact.consent_withdrawn_at = ago(withdrawn)
    await session.flush()
    seeded.contacts[name] = contact.id
    return contact


async def message(
    session: AsyncSession,
    seeded: Seeded,
    contact: Contact,
    name: str,
    days: int,
    *,
    repeated: int | None = None,
    extras: bool = False,
) -> FeedbackItem:
    """An item written `days` ago, coded (and so counted); with a photo and a reply."""
    attachments = [Attachment(kind="photo", file_id=f"file-{name}")] if extras else []
    item = await record_item(
        session,
        contact.id,
        f"text of {name}",
        "en",
        ago(days),
        channel="telegram",
        attachments=attachments,
        area=("XY01", "Riverside"),
    )
    await apply_suggestion(session, item, coded((2, 9) if days % 2 else (3,)))
    if repeated is not None:
        item.repeats, item.last_received_at = 1, ago(repeated)
    if extras:
        await record_reply(session, item, None, f"reply to {name}", ago(days - 1))
    seeded.items[name] = item.id
    return item


def registration(seeded: Seeded, session: AsyncSession, contact: Contact, days: int) -> None:
    row = Registration(
        contact_id=contact.id,
        status="submitted",
        phone="+15550100",
        created_at=ago(days + 3),
        updated_at=ago(days),
    )
    session.add(row)
    seeded.registrations[f"{days}d"] = contact.id


async def seed(database: Database) -> Seeded:
    """People and their data at several ages around the 180-day period."""
    seeded = Seeded()
    async with database.transaction() as session:
        # Silent for 300 days: everything goes.
        gone = await person(session, seeded, "gone", consented=400, seen=300)
        await message(session, seeded, gone, "gone-old", 310, extras=True)
        registration(seeded, session, gone, 305)
        # Active ten days ago: the contact stays; a 300-day-old message is anonymised, the
        # recent one kept; a registration untouched for 250 days goes.
        active = await person(session, seeded, "active", consented=400, seen=10)
        await message(session, seeded, active, "active-old", 300, extras=True)
        await message(session, seeded, active, "active-new", 12)
        registration(seeded, session, active, 250)
        # Wrote five days ago, before last_seen_at existed (an older database): keeps it all.
        writer = await person(session, seeded, "writer", consented=400, seen=None)
        await message(session, seeded, writer, "writer-new", 5, extras=True)
        registration(seeded, session, writer, 20)
        # A message first sent 300 days ago, repeated 10 days ago: received recently.
        await message(session, seeded, writer, "writer-repeated", 300, repeated=10)
        # Withdrew consent 200 days ago: erased, whatever last_seen says.
        quitter = await person(session, seeded, "quitter", consented=300, seen=100, withdrawn=200)
        await message(session, seeded, quitter, "quitter-old", 250)
        # Withdrew 30 days ago: kept for now; only the old message is anonymised.
        pausing = await person(session, seeded, "pausing", consented=300, seen=30, withdrawn=30)
        await message(session, seeded, pausing, "pausing-old", 200)
        # New: nothing goes.
        young = await person(session, seeded, "young", consented=20, seen=20)
        await message(session, seeded, young, "young-new", 20, extras=True)
        registration(seeded, session, young, 19)
        # An earlier erasure's tombstone: never touched again.
        tomb = Contact(pseudonym="erased:0123", created_at=ago(900), erased_at=ago(400))
        session.add(tomb)
        await session.flush()
        seeded.contacts["tomb"] = tomb.id
    return seeded


async def counts(session: AsyncSession) -> dict[Key, int]:
    rows = await session.scalars(select(FeedbackCount))
    return {
        Key(r.kind, r.day, r.code, r.area_code, r.language, r.type, r.status, r.sensitive): r.items
        for r in rows
        if r.items
    }


@dataclass(frozen=True)
class Holding:
    """What is held about one contact, as a test reads it."""

    erased: bool
    pseudonym: str
    address: bool
    subscriptions: int
    registration: bool


async def holding(session: AsyncSession, contact_id: int) -> Holding:
    contact = await session.get(Contact, contact_id)
    assert contact is not None
    address = await session.scalar(
        select(ContactAddress.id).where(ContactAddress.contact_id == contact_id)
    )
    subscriptions = await session.scalar(
        select(func.count()).select_from(Subscription).where(Subscription.contact_id == contact_id)
    )
    registration_id = await session.scalar(
        select(Registration.id).where(Registration.contact_id == contact_id)
    )
    return Holding(
        erased=contact.erased_at is not None,
        pseudonym=contact.pseudonym,
        address=address is not None,
        subscriptions=int(subscriptions or 0),
        registration=registration_id is not None,
    )


async def texts(session: AsyncSession, seeded: Seeded) -> dict[str, str]:
    """Each item's text ("" once anonymised), with its attachments and reply marked."""
    found: dict[str, str] = {}
    for name, item_id in seeded.items.items():
        item = await session.get(FeedbackItem, item_id, populate_existing=True)
        assert item is not None
        assert (item.erased_at is not None) == (item.text == ""), name
        files = await session.scalar(
            select(func.count()).select_from(Attachment).where(Attachment.item_id == item_id)
        )
        replies = list(await session.scalars(select(Reply.text).where(Reply.item_id == item_id)))
        found[name] = (
            item.text + (" +file" if files else "") + "".join(f" +{r}" for r in replies if r)
        )
    return found


async def retention_events(database: Database) -> list[AuditEvent]:
    async with database.transaction() as session:
        return list(
            await session.scalars(
                select(AuditEvent).where(AuditEvent.action == "retention").order_by(AuditEvent.id)
            )
        )


def job_context(database: Database, settings: Settings, clock: FakeClock) -> Any:
    """What the job queue hands `retention_job`: the services in bot_data."""
    bot_data: dict[Any, Any] = {}
    install(bot_data, Services(settings, database, Pseudonymizer(b"k" * 32), clock=clock))
    return cast(Any, SimpleNamespace(bot_data=bot_data))


# --- the job, step by step ------------------------------------------------------------------


async def test_the_job_erases_exactly_what_is_older_than_the_period(
    database: Database, settings: Settings
) -> None:
    assert settings.services.retention == PERIOD, "the default is 180 days"
    seeded = await seed(database)
    async with database.transaction() as session:
        before = await counts(session)
        assert before, "the items are counted"
        dry = await count_due(session, NOW, PERIOD)
    clock = FakeClock(NOW)
    context = job_context(database, settings, clock)

    await retention_job(context)

    expected = RetentionReport(contacts=2, items=4, registrations=2, attachments=2, replies=2)
    assert dry == expected, "the dry run counts what the run then does"
    async with database.transaction() as session:
        gone = await holding(session, seeded.contacts["gone"])
        assert gone.erased and gone.pseudonym.startswith("erased:")
        assert (gone.address, gone.subscriptions, gone.registration) == (False, 0, False)
        tombstone = await session.get(Contact, seeded.contacts["gone"])
        assert tombstone is not None and tombstone.erased_at == NOW
        assert tombstone.consent_at is None and tombstone.last_seen_at is None
        for name in ("active", "writer", "young"):
            kept = await holding(session, seeded.contacts[name])
            assert kept.pseudonym == f"pseudo-{name}" and not kept.erased, name
            assert kept.address and kept.subscriptions == 1, name
        assert not (await holding(session, seeded.contacts["active"])).registration, "250 days"
        assert (await holding(session, seeded.contacts["writer"])).registration
        assert (await holding(session, seeded.contacts["young"])).registration
        assert (await holding(session, seeded.contacts["quitter"])).erased
        pausing = await holding(session, seeded.contacts["pausing"])
        assert not pausing.erased and pausing.pseudonym == "pseudo-pausing"
        tomb = await session.get(Contact, seeded.contacts["tomb"])
        assert tomb is not None and tomb.erased_at == ago(400) and tomb.pseudonym == "erased:0123"

        assert await texts(session, seeded) == {
            "gone-old": "",
            "active-old": "",
            "active-new": "text of active-new",
            "writer-new": "text of writer-new +file +reply to writer-new",
            "writer-repeated": "text of writer-repeated",
            "quitter-old": "",
            "pausing-old": "",
            "young-new": "text of young-new +file +reply to young-new",
        }
        # Codes, area and dates stay with the anonymised items: the counts do not move.
        old = await session.get(FeedbackItem, seeded.items["active-old"])
        assert old is not None and old.area_code == "XY01" and old.created_at == ago(300)
        assert old.erased_at == NOW and old.type == "request"
        assert await counts(session) == before
        await rebuild(session)
    async with database.transaction() as session:
        assert await counts(session) == before, "a rebuild from what is left gives the same"

    [event] = await retention_events(database)
    assert (event.actor, event.staff_id, event.at) == ("system", None, NOW)
    assert event.detail == expected.describe()
    assert event.detail == "contacts=2 items=4 registrations=2 attachments=2 replies=2"

    # Nothing more is due at the same time: no run, no event.
    assert await apply_retention(database, NOW, PERIOD) == RetentionReport()
    assert len(await retention_events(database)) == 1

    # A year later everyone has been silent for longer than the period.
    clock.now = NOW + timedelta(days=365)
    await retention_job(context)
    async with database.transaction() as session:
        for name in ("active", "writer", "young", "pausing"):
            assert (await holding(session, seeded.contacts[name])).erased, name
        assert set((await texts(session, seeded)).values()) == {""}
        assert await session.scalar(select(func.count()).select_from(Registration)) == 0
        assert await counts(session) == before
    events = await retention_events(database)
    assert len(events) == 2 and events[1].at == clock.now
    assert events[1].detail == "contacts=4 items=4 registrations=2 attachments=2 replies=2"


async def test_a_person_who_wrote_recently_keeps_everything(database: Database) -> None:
    seeded = Seeded()
    async with database.transaction() as session:
        contact = await person(session, seeded, "recent", consented=170, seen=1)
        await message(session, seeded, contact, "recent-a", 170, extras=True)
        await message(session, seeded, contact, "recent-b", 1)
        registration(seeded, session, contact, 2)
    assert await apply_retention(database, NOW, PERIOD) == RetentionReport()
    async with database.transaction() as session:
        assert await holding(session, contact.id) == Holding(
            erased=False,
            pseudonym="pseudo-recent",
            address=True,
            subscriptions=1,
            registration=True,
        )
        assert await texts(session, seeded) == {
            "recent-a": "text of recent-a +file +reply to recent-a",
            "recent-b": "text of recent-b",
        }
    assert await retention_events(database) == [], "nothing erased, nothing recorded"


async def test_a_large_backlog_goes_in_batches(database: Database) -> None:
    seeded = Seeded()
    async with database.transaction() as session:
        for n in range(7):
            contact = await person(session, seeded, f"old{n}", consented=400, seen=365)
            await message(session, seeded, contact, f"old{n}-item", 365)
        keeper = await person(session, seeded, "keeper", consented=400, seen=3)
        for n in range(5):
            await message(session, seeded, keeper, f"keeper-old{n}", 200 + n)
        before = await counts(session)
    report = await apply_retention(database, NOW, PERIOD, batch=2)
    assert report == RetentionReport(contacts=7, items=12, registrations=0)
    async with database.transaction() as session:
        assert set((await texts(session, seeded)).values()) == {""}
        assert not (await holding(session, keeper.id)).erased
        assert await counts(session) == before
    [event] = await retention_events(database)
    assert event.detail == "contacts=7 items=12 registrations=0 attachments=0 replies=0"


# --- the command line -------------------------------------------------------------------------


async def test_the_command_counts_then_erases(tmp_path: Path) -> None:
    """`crisis-comms retention` runs at the real time: ages are relative to it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    database = connect(url)
    await upgrade(database)
    now = utcnow()
    async with database.transaction() as session:
        old = await record_consent(session, "pseudo-old", 1, "en", now - timedelta(days=40))
        old.last_seen_at = now - timedelta(days=40)
        await record_item(
            session, old.id, "an old message", "en", now - timedelta(days=40), channel="telegram"
        )
        young = await record_consent(session, "pseudo-young", 2, "en", now - timedelta(days=5))
        await record_item(
            session, young.id, "a recent message", "en", now - timedelta(days=5), channel="telegram"
        )
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "CRISIS_DATA_DIR": str(tmp_path),
        "RETENTION_DAYS": "30",
    }

    dry = await asyncio.to_thread(run_cli, "retention", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip() == (
        "Would erase (retention 30 days): "
        "contacts=1 items=1 registrations=0 attachments=0 replies=0"
    )
    async with database.transaction() as session:
        assert await session.scalar(select(func.count()).where(Contact.erased_at.is_not(None))) == 0
    assert await retention_events(database) == [], "a dry run changes nothing"

    done = await asyncio.to_thread(run_cli, "retention", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "Erased (retention 30 days): contacts=1 items=1 registrations=0 attachments=0 replies=0"
    )
    async with database.transaction() as session:
        erased = await session.get(Contact, old.id)
        kept = await session.get(Contact, young.id)
        assert erased is not None and erased.erased_at is not None
        assert kept is not None and kept.erased_at is None
        remaining = set(await session.scalars(select(FeedbackItem.text)))
        assert remaining == {"", "a recent message"}
    [event] = await retention_events(database)
    assert event.actor == "cli" and event.detail is not None and "contacts=1" in event.detail

    again = await asyncio.to_thread(run_cli, "retention", env=env)
    assert "contacts=0 items=0" in again.stdout and len(await retention_events(database)) == 1
    wrong = await asyncio.to_thread(run_cli, "retention", env={**env, "RETENTION_DAYS": "0"})
    assert wrong.returncode == 2 and "RETENTION_DAYS" in wrong.stderr
    await database.dispose()
