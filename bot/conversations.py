"""Conversation state read from the database before each update and written after it.

python-telegram-bot keeps a ConversationHandler's state in process memory. With several
worker processes the next message of a chat may reach another worker, so every
conversation is a ``StoredConversation`` and the update processor (``StateProcessor``)
puts the chat's stored state into the handler before the update and stores what changed
after it, then forgets it: the database is the only memory between two updates.

The registration's state is its row's ``Registration.step``, which the flow writes in the
same transaction as each answer, so nothing is lost between the answer and the state. The
short questions (embassy country, shelter place) live in ``conversation_states``
(inbox/conversations.py) and time out by their age there.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Update
from telegram.ext import BaseUpdateProcessor, ContextTypes, ConversationHandler

from bot.metrics import Metrics
from evacuation.registrations import Registration
from inbox import conversations as stored
from messages.contacts import ContactAddress
from storage.database import Database

# Reads a conversation's state from a row of its own (the registration's step).
OwnState = Callable[[AsyncSession, int], Awaitable[stored.State | None]]
Key = tuple[int, int]


class StoredConversation(ConversationHandler[ContextTypes.DEFAULT_TYPE]):
    """A ConversationHandler whose state between updates lives in the database.

    `own_state`, when given, reads the state from the flow's own row (never written here).
    """

    def __init__(self, *args: Any, own_state: OwnState | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.name:
            raise ValueError("a stored conversation needs a name")
        self.own_state = own_state

    @property
    def key_name(self) -> str:
        assert self.name is not None
        return self.name

    def timeout(self) -> timedelta | None:
        seconds = self.conversation_timeout
        if seconds is None:
            return None
        return seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)

    def state_of(self, key: Key) -> object | None:
        return self._conversations.get(key)

    def put(self, key: Key, state: object | None) -> None:
        if state is None:
            self._conversations.pop(key, None)
        else:
            self._conversations[key] = state


async def registration_step(session: AsyncSession, chat_id: int) -> stored.State | None:
    """The step of the registration this (private) chat is inside, if any."""
    step = await session.scalar(
        select(Registration.step)
        .join(ContactAddress, ContactAddress.contact_id == Registration.contact_id)
        .where(ContactAddress.chat_id == chat_id, Registration.step.is_not(None))
    )
    return step


def key_of(update: Update) -> Key | None:
    """Conversations run in private chats only (their filters say so): the chat's key."""
    chat, user = update.effective_chat, update.effective_user
    if chat is None or user is None or chat.type != "private":
        return None
    return chat.id, user.id


class ConversationMemory:
    """Moves the stored conversations' states between the database and the handlers."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        handlers: Sequence[StoredConversation] = (),
    ) -> None:
        self.db, self.clock = db, clock
        self.track(handlers)

    def track(self, handlers: Sequence[StoredConversation]) -> None:
        """The conversations to keep (known once the Application's handlers are added)."""
        self.handlers = tuple(handlers)
        self.timeouts = {handler.key_name: handler.timeout() for handler in self.handlers}

    async def recall(self, key: Key) -> dict[str, object | None]:
        """Put the chat's states into the handlers; returns them, to compare after."""
        chat_id, user_id = key
        async with self.db.transaction() as session:
            states: dict[str, object | None] = dict(
                await stored.load(session, chat_id, user_id, self.clock(), self.timeouts)
            )
            for handler in self.handlers:
                if handler.own_state is not None:
                    states[handler.key_name] = await handler.own_state(session, chat_id)
        for handler in self.handlers:
            handler.put(key, states.get(handler.key_name))
        return states

    async def keep(self, key: Key, before: dict[str, object | None]) -> None:
        """Store the states that changed, and forget them in memory."""
        changes: dict[str, stored.State | None] = {}
        for handler in self.handlers:
            now = handler.state_of(key)
            handler.put(key, None)
            if handler.own_state is None and now != before.get(handler.key_name):
                changes[handler.key_name] = _storable(now)
        if changes:
            chat_id, user_id = key
            async with self.db.transaction() as session:
                await stored.save(session, chat_id, user_id, changes, self.clock())


def _storable(state: object | None) -> stored.State | None:
    if state is None or isinstance(state, str | int):
        return state
    raise TypeError(f"conversation state {type(state).__name__} cannot be stored")


class StateProcessor(BaseUpdateProcessor):
    """Processes updates with their conversations recalled from and kept in the database,
    timing each one for /metrics. `concurrency` updates at a time: 1 unless the inbox
    guarantees that no two updates of one chat are given at once (webhook workers)."""

    def __init__(self, concurrency: int, memory: ConversationMemory, metrics: Metrics) -> None:
        super().__init__(concurrency)
        self.memory, self.metrics = memory, metrics

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = key_of(update) if isinstance(update, Update) else None
        try:
            before = await self.memory.recall(key) if key is not None else {}
        except BaseException:
            if inspect.iscoroutine(coroutine):
                coroutine.close()  # never started: the update is tried again as a whole
            raise
        started = time.perf_counter()
        try:
            await coroutine
        finally:
            self.metrics.latency.observe(time.perf_counter() - started)
            if key is not None:
                await self.memory.keep(key, before)

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass
