"""Worker heartbeats: who is processing the inbox, and who stopped.

Lifecycle of a ``WorkerBeat`` row: a worker inserts it when it starts (alive), refreshes
``beat_at`` every few seconds, and deletes it when it stops cleanly. A row not refreshed
within ``DEAD_AFTER`` is a worker that died (kill -9, lost machine): any other worker then
deletes it and gives its claimed updates back to the queue. So workers can be added and
removed while the others run, and no update stays held by a dead one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import String, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from inbox.updates import release, release_orphans
from storage.base import Base, UtcDateTime

BEAT_EVERY = timedelta(seconds=2)
# Well above BEAT_EVERY: a busy event loop must not be taken for a dead worker.
DEAD_AFTER = timedelta(seconds=15)


class WorkerBeat(Base):
    __tablename__ = "inbox_workers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    beat_at: Mapped[datetime] = mapped_column(UtcDateTime())


async def beat(session: AsyncSession, name: str, now: datetime) -> None:
    """Say this worker is alive (registering it on its first beat)."""
    result = await session.execute(
        update(WorkerBeat).where(WorkerBeat.name == name).values(beat_at=now)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        session.add(WorkerBeat(name=name, started_at=now, beat_at=now))


async def leave(session: AsyncSession, name: str) -> int:
    """A clean stop: this worker's unfinished claims go back to the queue."""
    await session.execute(delete(WorkerBeat).where(WorkerBeat.name == name))
    return await release(session, [name])


async def recover(session: AsyncSession, now: datetime, dead_after: timedelta = DEAD_AFTER) -> int:
    """Forget workers that stopped beating and give their claims back. Returns how many
    updates went back to the queue."""
    dead = list(
        (
            await session.execute(
                select(WorkerBeat.name).where(WorkerBeat.beat_at < now - dead_after)
            )
        ).scalars()
    )
    if dead:
        await session.execute(delete(WorkerBeat).where(WorkerBeat.name.in_(dead)))
    return await release(session, dead) + await release_orphans(session, WorkerBeat.__table__)


async def living(session: AsyncSession) -> list[str]:
    return list(
        (await session.execute(select(WorkerBeat.name).order_by(WorkerBeat.name))).scalars()
    )
