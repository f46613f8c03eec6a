"""Benchmark the retention job: erasing inactive contacts and anonymising old items.

    python bench/retention.py [--contacts 5000] [--items-per-contact 10] [--postgres URL]

A fresh database holds N consenting contacts (address, two subscriptions, K feedback items
each with one attachment and one reply, a registration for every fourth), half of them last
seen 400 days ago and half 10 days ago, every item 300 days old. One run of
`privacy.retention.apply_retention` with a 180-day period then erases the inactive half and
anonymises every item. The baseline, timed on an identical database in the same run, is the
same end state's bare minimum done by hand in one transaction: `UPDATE feedback_items SET
text=''` for all items and `DELETE` of the inactive contacts' addresses. The ratio shows what
the batching, tombstones, audit event and per-contact erasure cost over that.

SQLite files in a temporary folder by default; with --postgres (a URL of any database on the
server, used only to CREATE and DROP DATABASE) each part gets its own database
`crisis_bench_retention_<part>`, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from evacuation.registrations import Registration
from feedback.items import Attachment, FeedbackItem
from feedback.replies import Reply
from messages.contacts import Contact, ContactAddress, Subscription
from privacy.retention import apply_retention
from storage.database import Database, connect, upgrade

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PERIOD = timedelta(days=180)
ROWS_PER_INSERT = 2000


@asynccontextmanager
async def fresh(folder: Path, admin_url: str | None, part: str) -> AsyncIterator[Database]:
    if admin_url is None:
        database = connect(f"sqlite+aiosqlite:///{folder / part}.db")
        await upgrade(database)
        yield database
        await database.dispose()
        return
    name = f"crisis_bench_retention_{part}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    database = connect(make_url(admin_url).set(database=name).render_as_string(False))
    try:
        await upgrade(database)
        yield database
    finally:
        await database.dispose()
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()


async def insert_rows(database: Database, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    async with database.engine.begin() as connection:
        for start in range(0, len(rows), ROWS_PER_INSERT):
            await connection.execute(insert(table), list(rows[start : start + ROWS_PER_INSERT]))


async def seed(database: Database, contacts: int, per_contact: int) -> None:
    old_item = NOW - timedelta(days=300)
    seen = [NOW - timedelta(days=400 if i % 2 == 0 else 10) for i in range(contacts)]
    await insert_rows(
        database,
        Contact.__table__,
        [
            {
                "id": i + 1,
                "pseudonym": f"bench{i:08d}",
                "channel": "telegram",
                "language": "en",
                "language_chosen": True,
                "consent_version": "bench",
                "consent_at": seen[i],
                "created_at": seen[i],
                "last_seen_at": seen[i],
            }
            for i in range(contacts)
        ],
    )
    await insert_rows(
        database,
        ContactAddress.__table__,
        [{"contact_id": i + 1, "chat_id": 10_000_000 + i} for i in range(contacts)],
    )
    await insert_rows(
        database,
        Subscription.__table__,
        [
            {"contact_id": i + 1, "topic": topic, "area": None, "created_at": seen[i]}
            for i in range(contacts)
            for topic in ("alerts", "shelter")
        ],
    )
    items = [
        {
            "id": n + 1,
            "reference": f"B{n:09d}",
            "contact_id": n // per_contact + 1,
            "channel": "telegram",
            "text": "We need water and blankets for the children in the school shelter",
            "language": "en",
            "status": "new",
            "created_at": old_item,
            "repeats": 0,
            "urgent": False,
            "sensitive": False,
            "sector_mask": 0,
        }
        for n in range(contacts * per_contact)
    ]
    await insert_rows(database, FeedbackItem.__table__, items)
    await insert_rows(
        database,
        Attachment.__table__,
        [{"item_id": item["id"], "kind": "photo", "file_id": "F" * 60} for item in items],
    )
    await insert_rows(
        database,
        Reply.__table__,
        [{"item_id": item["id"], "text": "A truck comes at 3 pm", "created_at": old_item}
         for item in items],
    )  # fmt: skip
    await insert_rows(
        database,
        Registration.__table__,
        [
            {
                "contact_id": i + 1,
                "status": "submitted",
                "children": 1,
                "adults": 2,
                "older": 0,
                "phone": "+250700000000",
                "created_at": seen[i],
                "updated_at": seen[i],
            }
            for i in range(0, contacts, 4)
        ],
    )


async def baseline(database: Database, contacts: int) -> float:
    inactive = [i + 1 for i in range(0, contacts, 2)]
    started = time.perf_counter()
    async with database.engine.begin() as connection:
        await connection.execute(update(FeedbackItem).values(text=""))
        for start in range(0, len(inactive), ROWS_PER_INSERT):
            chunk = inactive[start : start + ROWS_PER_INSERT]
            await connection.execute(
                delete(ContactAddress).where(ContactAddress.contact_id.in_(chunk))
            )
    return time.perf_counter() - started


async def run(args: argparse.Namespace, folder: Path, admin_url: str | None) -> None:
    items = args.contacts * args.items_per_contact
    backend = "PostgreSQL" if admin_url else "SQLite"
    print(f"{backend}: {args.contacts:,} contacts, {items:,} items (all past the period)")
    async with fresh(folder, admin_url, "job") as database:
        await seed(database, args.contacts, args.items_per_contact)
        started = time.perf_counter()
        report = await apply_retention(database, NOW, PERIOD)
        job = time.perf_counter() - started
        async with database.transaction() as session:
            left = await session.scalar(
                select(func.count()).select_from(FeedbackItem).where(FeedbackItem.text != "")
            )
    async with fresh(folder, admin_url, "baseline") as database:
        await seed(database, args.contacts, args.items_per_contact)
        bare = await baseline(database, args.contacts)
    print(
        f"  retention job: {job:.2f} s — {report.contacts:,} contacts erased, "
        f"{report.items:,} items anonymised, {report.registrations:,} registrations deleted, "
        f"{report.attachments:,} attachments, {report.replies:,} replies; items with text "
        f"left: {left}"
    )
    print(f"  baseline (one UPDATE of all items + DELETE of the addresses): {bare:.2f} s")
    print(f"  ratio job / baseline: × {job / bare:.1f}; {items / job:,.0f} items per second")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--items-per-contact", type=int, default=10)
    parser.add_argument("--postgres", help="postgresql://… of any database on the server")
    args = parser.parse_args()
    admin_url = None
    if args.postgres:
        admin_url = args.postgres.replace("postgresql://", "postgresql+asyncpg://", 1)
    with tempfile.TemporaryDirectory(prefix="bench-retention-") as folder:
        asyncio.run(run(args, Path(folder), admin_url))


if __name__ == "__main__":
    main()
