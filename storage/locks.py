"""Exclusive sections across processes that share one database.

Why: on PostgreSQL several bot and worker processes share the database (issue 9), and each
runs the same periodic jobs (alerts, digest, reply delivery, purges). An ``asyncio.Lock``
only keeps the coroutines of one process apart; two processes sending the same pending reply
or alert at once would send it twice. Jobs therefore run their work inside

    async with exclusive(db, "replies") as held:
        if held:
            ...  # only one process at a time gets here

and a process that does not get the section skips that run: the holder is doing the work,
and the next run comes soon. What was done is recorded in the database (a reply's
``delivered_at``, an alert's ``last_sent_at``, a notice's key), so the process that enters
next finds nothing left to do.

PostgreSQL: a session-level advisory lock, ``pg_try_advisory_lock(NAMESPACE, key)``, taken
on a pooled connection kept for the block (in autocommit, so no transaction stays open
while the block runs) and released at its end. If the process dies its sessions end and
PostgreSQL drops the lock. A connection whose unlock fails is closed, never returned to the
pool still holding the lock. Keys are the CRC-32 of the name, in a namespace of our own
(the two-integer form; ``inbox/updates.py`` uses another namespace for chat claims).

SQLite: one process by design (a single writer, the embedded default), so the section is
always held; within the process the callers' own ``asyncio.Lock`` still applies.

The lock is advisory and tied to one connection: if that connection is lost while the
block runs (PostgreSQL restarted), another process may enter before the block ends. The
state in the database keeps that to at most one message sent twice around a restart.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

if TYPE_CHECKING:
    from storage.database import Database

log = logging.getLogger(__name__)

NAMESPACE = 7_516  # first key of our advisory locks (inbox chat claims use 7_515)
POLL_SECONDS = 0.1  # between tries while waiting for a section
_TRY = text("SELECT pg_try_advisory_lock(:namespace, :key)")
_UNLOCK = text("SELECT pg_advisory_unlock(:namespace, :key)")
_XACT_LOCK = text("SELECT pg_advisory_xact_lock(:namespace, :key)")


def lock_key(name: str) -> int:
    """A stable signed 32-bit key for `name` (PostgreSQL's advisory keys are int4)."""
    value = zlib.crc32(name.encode("utf-8"))
    return value - (1 << 32) if value >= (1 << 31) else value


def _params(name: str) -> dict[str, int]:
    return {"namespace": NAMESPACE, "key": lock_key(name)}


@asynccontextmanager
async def exclusive(db: Database, name: str, *, wait: float = 0.0) -> AsyncIterator[bool]:
    """Enter the section `name` if no other process is in it; yields whether it is held.

    `wait` > 0 keeps trying for that many seconds (for callers that would rather wait a
    moment than leave the work to the next run). Always held on SQLite."""
    if db.engine.dialect.name != "postgresql":
        yield True
        return
    async with db.engine.connect() as connection:
        try:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            held = await _acquire(connection, name, wait)
        except BaseException:
            # Cancelled while trying: the lock may be ours without our knowing; close it.
            await connection.invalidate()
            raise
        try:
            yield held
        finally:
            if held:
                await _release(connection, name)


async def _acquire(connection: AsyncConnection, name: str, wait: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        if await connection.scalar(_TRY, _params(name)):
            return True
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(POLL_SECONDS, remaining))


async def _release(connection: AsyncConnection, name: str) -> None:
    try:
        released = await connection.scalar(_UNLOCK, _params(name))
    except BaseException as error:
        # Lost connection or cancelled mid-unlock: closing the session drops the lock.
        log.warning(
            "section %s: unlock failed (%s); closing its connection", name, type(error).__name__
        )
        await connection.invalidate()
        if not isinstance(error, Exception):
            raise
        return
    if not released:
        log.warning("section %s was no longer held at its end", name)


async def lock_transaction(connection: AsyncConnection, name: str) -> None:
    """Wait for the section `name` and hold it until `connection`'s transaction ends
    (PostgreSQL; nothing to wait for on SQLite). For work done in one transaction, such as
    migrations, that several processes starting at once must not run side by side."""
    if connection.dialect.name == "postgresql":
        await connection.execute(_XACT_LOCK, _params(name))
