"""Storage on SQLite and PostgreSQL: migrations, contacts, consent, addresses kept apart."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection

from messages.contacts import (
    Contact,
    ContactAddress,
    Pseudonymizer,
    Subscription,
    choose_language,
    find_contact,
    mark_unreachable,
    record_consent,
)
from storage.database import HEAD, Database, alembic_config, current_revision, upgrade

NOW = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)


def test_pseudonyms_are_keyed_stable_and_reveal_nothing() -> None:
    first, second = Pseudonymizer(b"a" * 32), Pseudonymizer(b"b" * 32)
    assert first("telegram", 42) == first("telegram", 42)
    assert first("telegram", 42) != second("telegram", 42)
    assert first("telegram", 42) != first("telegram", 43)
    assert "42" not in first("telegram", 42)
    assert len(first("telegram", 42)) == 32


async def test_migrations_create_the_schema_and_rerun_harmlessly(database: Database) -> None:
    await upgrade(database)  # a second run on start-up must be a no-op
    assert await current_revision(database) == "0010"

    def tables(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    async with database.engine.connect() as connection:
        names = await connection.run_sync(tables)
    assert {"contacts", "contact_addresses", "subscriptions", "staff_members"} <= names


def test_head_is_alembics_newest_migration() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD


def test_a_process_on_a_current_schema_does_not_load_alembic(tmp_path: Path) -> None:
    """Start-up checks the revision itself; Alembic (~10 MB a process) only loads to migrate."""
    script = f"""
import asyncio, sys
from storage.database import connect, current_revision, upgrade
async def main(step):
    database = connect("sqlite+aiosqlite:///{tmp_path / "db.sqlite"}")
    await upgrade(database)
    print(step, await current_revision(database), "alembic" in sys.modules)
    await database.dispose()
asyncio.run(main(sys.argv[1]))
"""
    runs = [
        subprocess.run(
            [sys.executable, "-c", script, step], capture_output=True, text=True, check=True
        ).stdout.split()
        for step in ("fresh", "again")
    ]
    assert runs == [["fresh", HEAD, "True"], ["again", HEAD, "False"]]


async def test_consent_creates_contact_with_address_kept_apart(database: Database) -> None:
    async with database.transaction() as session:
        contact = await record_consent(session, "p1", chat_id=777001, language="ar", now=NOW)
        choose_language(contact, "fa-AF")
    async with database.transaction() as session:
        stored = await find_contact(session, "p1")
        assert stored is not None
        assert stored.consent_at == NOW and stored.consent_version
        assert stored.language == "fa-AF" and stored.language_chosen
        # The analytics row has no chat id; only the address row does.
        assert not any("chat" in column.name for column in Contact.__table__.columns)
        address = await session.scalar(select(ContactAddress))
        assert address is not None and address.chat_id == 777001


async def test_consent_twice_keeps_one_contact_and_updates_chat(database: Database) -> None:
    async with database.transaction() as session:
        await record_consent(session, "p2", chat_id=1, language="en", now=NOW)
    async with database.transaction() as session:
        await record_consent(session, "p2", chat_id=2, language="en", now=NOW)
    async with database.transaction() as session:
        contacts = list(await session.scalars(select(Contact)))
        addresses = list(await session.scalars(select(ContactAddress)))
    assert len(contacts) == 1
    assert [a.chat_id for a in addresses] == [2]


async def test_unreachable_is_recorded_and_cleared_on_consent(database: Database) -> None:
    async with database.transaction() as session:
        assert not await mark_unreachable(session, "nobody", NOW)
        await record_consent(session, "p3", chat_id=3, language="en", now=NOW)
    async with database.transaction() as session:
        assert await mark_unreachable(session, "p3", NOW)
    async with database.transaction() as session:
        contact = await find_contact(session, "p3")
        assert contact is not None and contact.unreachable_at == NOW
        await record_consent(session, "p3", chat_id=3, language="en", now=NOW)
        assert contact.unreachable_at is None


async def test_subscriptions_belong_to_a_contact_and_go_with_it(database: Database) -> None:
    async with database.transaction() as session:
        contact = await record_consent(session, "p4", chat_id=4, language="en", now=NOW)
        session.add(Subscription(contact_id=contact.id, topic="shelter", area="HT01"))
    async with database.transaction() as session:
        stored = await find_contact(session, "p4")
        assert stored is not None
        await session.delete(stored)
    async with database.transaction() as session:
        assert list(await session.scalars(select(Subscription))) == []
        assert list(await session.scalars(select(ContactAddress))) == []


async def test_migrations_match_the_models(database: Database) -> None:
    """Every model change comes with its Alembic migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from storage.models import metadata

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with database.engine.connect() as connection:
        assert await connection.run_sync(differences) == []
