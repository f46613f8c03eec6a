"""Where each open conversation of a chat stands, so that any worker can take the next step.

A conversation here is a short question the bot asked and waits an answer to (which
country's embassy, which place's shelters). The registration keeps its step in its own row
(``Registration.step``, written with each answer) and is not stored here.

Lifecycle of a ``ConversationState`` row: written when a conversation enters or changes
state; deleted when it ends; ignored (and deleted at the next write) once older than the
conversation's timeout, which is how a question asked on one worker times out on another.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import JSON, BigInteger, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, UtcDateTime

State = str | int


class ConversationState(Base):
    __tablename__ = "conversation_states"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    state: Mapped[State] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


async def load(
    session: AsyncSession,
    chat_id: int,
    user_id: int,
    now: datetime,
    timeouts: Mapping[str, timedelta | None],
) -> dict[str, State]:
    """The live states of this chat and user, by conversation name (timed-out ones left out)."""
    rows = await session.execute(
        select(ConversationState.name, ConversationState.state, ConversationState.updated_at).where(
            ConversationState.chat_id == chat_id, ConversationState.user_id == user_id
        )
    )
    states: dict[str, State] = {}
    for name, state, updated_at in rows:
        timeout = timeouts.get(name)
        if timeout is None or updated_at > now - timeout:
            states[name] = state
    return states


async def save(
    session: AsyncSession,
    chat_id: int,
    user_id: int,
    changes: Mapping[str, State | None],
    now: datetime,
) -> None:
    """Write what changed: a state, or None for a conversation that ended."""
    for name, state in changes.items():
        row = await session.get(ConversationState, (name, chat_id, user_id))
        if state is None:
            if row is not None:
                await session.delete(row)
        elif row is None:
            session.add(
                ConversationState(
                    name=name, chat_id=chat_id, user_id=user_id, state=state, updated_at=now
                )
            )
        else:
            row.state, row.updated_at = state, now


async def forget_chat(session: AsyncSession, chat_id: int) -> None:
    """Every conversation of a chat (its person erased their data)."""
    await session.execute(delete(ConversationState).where(ConversationState.chat_id == chat_id))
