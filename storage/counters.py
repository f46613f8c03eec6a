"""Counter rows that many writers increment at once: one atomic upsert per batch.

`INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n` on SQLite and PostgreSQL alike, so
two transactions adding to the same row never lose an increment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute


async def add_to_counters(
    session: AsyncSession,
    model: type[Any],
    keys: Sequence[str],
    counter: InstrumentedAttribute[int],
    rows: Sequence[dict[str, Any]],
) -> None:
    """Add each row's `counter` value to the row with the same `keys`, creating it if new."""
    if not rows:
        return
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(model)
    excluded = statement.excluded[counter.key]  # not getattr: "items" is a method there
    # One compiled statement run over every row (executemany): far faster than many
    # multi-VALUES statements, each compiled anew.
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=list(keys), set_={counter.key: counter + excluded}
        ),
        list(rows),
    )
