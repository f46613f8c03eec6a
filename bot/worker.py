"""The inbox worker: processes the updates the webhook kept, through the Application.

A worker claims every pending update of a few chats at a time (inbox/updates.py), then
processes each chat's updates in order while other chats go on beside it (up to
WORKER_CONCURRENCY chats on PostgreSQL). An update is finished (marked done) only after
the Application processed it. When the database is unreachable the update is tried again
once it answers, never dropped; a crash leaves it claimed, and another worker takes it
over when this one's heartbeat stops (inbox/workers.py).

```mermaid
stateDiagram-v2
    [*] --> claiming: start (heartbeat, dead workers' claims recovered)
    claiming --> processing: claimed chats
    claiming --> waiting: nothing pending
    waiting --> claiming: an update arrived here, or every POLL seconds
    processing --> claiming: each update done (ok, or error: apologised, not retried)
    processing --> retrying: database unreachable before or while handling
    retrying --> processing: database answers (the same update again)
    claiming --> [*]: stop (unprocessed claims go back to the queue)
```
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from telegram import Update

from bot.metrics import Metrics
from inbox import updates as inbox
from inbox import workers
from inbox.updates import Claimed, Outcome
from storage.database import Database

log = logging.getLogger("crisis_comms.worker")
POLL_SECONDS = 0.05  # idle wait when no update arrived in this process
MAX_BACKOFF_SECONDS = 5.0
STOP_GRACE_SECONDS = 10.0  # a clean stop lets the updates in hand finish


def default_name() -> str:
    return f"worker@{socket.gethostname()}:{os.getpid()}"[:64]


# PostgreSQL's codes for "not now": connection exceptions (class 08), an administrator's or a
# crash's shutdown, a server still starting (57P01-57P03), too many connections (53300).
TRANSIENT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def is_transient(error: BaseException) -> bool:
    """A database that cannot be reached now (restarting, network): worth trying again."""
    if isinstance(error, OperationalError | InterfaceError | PoolTimeout):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        # asyncpg's errors reach us wrapped as a plain DBAPIError: their SQLSTATE tells.
        code = sqlstate(error)
        if code is not None and code.startswith(TRANSIENT_SQLSTATES):
            return True
    return isinstance(error, ConnectionError | TimeoutError | OSError)


def sqlstate(error: DBAPIError) -> str | None:
    for source in (error.orig, getattr(error.orig, "__cause__", None)):
        code = getattr(source, "sqlstate", None) or getattr(source, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


@dataclass
class Attempt:
    """One update's processing: what happened to it, told by the error handler
    (bot/errors.py), and the arrival times of its chat's updates up to it within the flood
    window, read from the inbox, so that flood control (bot/flood.py) counts every worker's."""

    arrivals: tuple[datetime, ...] | None = None
    # Records that an answer reached Telegram (inbox answered_at), at the first one.
    mark_answered: Callable[[], Awaitable[None]] | None = None
    answered: bool = False
    failed: bool = False
    retry: bool = False
    # Over: tasks started while it ran (timers, jobs) inherit it and must not touch it.
    done: bool = False


# The attempt of the update being processed in this task: the error handler runs in it.
current_attempt: ContextVar[Attempt | None] = ContextVar("current_attempt", default=None)


def note_error(error: BaseException) -> bool:
    """Called by the error handler: True when the update will be tried again (so the
    person must not be told that something went wrong)."""
    attempt = current_attempt.get()
    if attempt is None or attempt.done:
        return False
    attempt.failed = True
    attempt.retry = attempt.retry or is_transient(error)
    return attempt.retry


async def note_answer() -> None:
    """Called when an answer reached Telegram (bot/app.py's limiter): the first one of an
    inbox update is recorded, so that a worker taking it over after a crash does not answer
    it a second time."""
    attempt = current_attempt.get()
    if attempt is None or attempt.done or attempt.answered or attempt.mark_answered is None:
        return
    attempt.answered = True
    try:
        await attempt.mark_answered()
    except Exception as error:  # the answer is out; only a crash now would repeat it
        log.warning("inbox: answer not recorded (%s)", type(error).__name__)


@dataclass
class WorkerStats:
    processed: int = 0
    retried: int = 0
    answered_before: int = 0  # taken over after a crash, answered already: not redone
    lost_claims: int = 0  # finished after another worker took the claim over


@dataclass
class InboxWorker:
    application: Any  # the python-telegram-bot Application
    db: Database
    name: str
    clock: Callable[[], datetime]
    metrics: Metrics
    concurrency: int = 1
    flood_window: timedelta = timedelta(seconds=30)
    stats: WorkerStats = field(default_factory=WorkerStats)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def wake(self) -> None:
        """An update was just kept by this process: claim it without waiting."""
        self._wake.set()

    async def start(self) -> None:
        # A restart under the same name: what it held before it stopped goes back first
        # (its old heartbeat row would otherwise keep those claims alive).
        async with self.db.transaction() as session:
            await inbox.release(session, [self.name])
        await self._beat()
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name=f"inbox:{self.name}"),
            asyncio.create_task(self._beat_loop(), name=f"beat:{self.name}"),
        ]

    async def stop(self) -> None:
        """Finish the updates in hand, then give unstarted claims back."""
        self._stopping = True
        self._wake.set()
        claiming = self._tasks[0]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(claiming), STOP_GRACE_SECONDS)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):  # a dead database: others recover our claims
            async with self.db.transaction() as session:
                await workers.leave(session, self.name)

    async def _beat(self) -> None:
        async with self.db.transaction() as session:
            await workers.beat(session, self.name, self.clock())
        async with self.db.transaction() as session:
            released = await workers.recover(session, self.clock())
        if released:
            log.warning("inbox: %d updates of stopped workers back in the queue", released)

    async def _beat_loop(self) -> None:
        while True:
            await asyncio.sleep(workers.BEAT_EVERY.total_seconds())
            try:
                await self._beat()
            except Exception as error:  # the database may be restarting
                self.metrics.errors.labels(kind="heartbeat").inc()
                log.warning("inbox: heartbeat failed (%s)", type(error).__name__)

    async def _claim_loop(self) -> None:
        backoff = 0.1
        while not self._stopping:
            try:
                async with self.db.transaction() as session:
                    claimed = await inbox.claim(
                        session, self.name, self.clock(), chats=self.concurrency * 2
                    )
                backoff = 0.1
            except Exception as error:  # never stop claiming while the heartbeat says alive
                kind = "database" if is_transient(error) else "inbox"
                self.metrics.errors.labels(kind=kind).inc()
                log.warning("inbox: cannot claim (%s), trying again", type(error).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            if not claimed:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
                continue
            await self._process_chats(claimed, await self._arrivals(claimed))

    async def _arrivals(self, claimed: Sequence[Claimed]) -> dict[int, tuple[datetime, ...]]:
        """Per claimed update: its chat's arrivals within the flood window up to it. Empty
        when the database cannot say (flood control then counts in this process)."""
        since = min(row.received_at for row in claimed) - self.flood_window
        try:
            async with self.db.transaction() as session:
                found = await inbox.arrivals(session, {row.chat_key for row in claimed}, since)
        except Exception as error:  # flood control then counts in this process
            log.warning("inbox: arrivals unreadable (%s)", type(error).__name__)
            return {}
        result: dict[int, tuple[datetime, ...]] = {}
        for row in claimed:
            start = row.received_at - self.flood_window
            result[row.update_id] = tuple(
                at
                for update_id, at in found.get(row.chat_key, [])
                if update_id <= row.update_id and at > start
            )
        return result

    async def _process_chats(
        self, claimed: Sequence[Claimed], arrivals: dict[int, tuple[datetime, ...]]
    ) -> None:
        chats = [list(rows) for _, rows in groupby(sorted(claimed, key=_chat_order), _chat_key)]
        limit = asyncio.Semaphore(self.concurrency)

        async def one_chat(rows: list[Claimed]) -> None:
            async with limit:
                for row in rows:
                    await self._process(row, arrivals.get(row.update_id))

        await asyncio.gather(*(one_chat(rows) for rows in chats))

    async def _process(self, row: Claimed, arrivals: tuple[datetime, ...] | None) -> None:
        if row.answered and row.attempts > 1:
            # Its worker died after answering: what it saved is saved (the intake takes a
            # message once), and a second answer would only confuse the person.
            self.stats.answered_before += 1
            await self._finish(row, Outcome.ANSWERED)
            return
        backoff = 0.1
        while True:
            attempt = Attempt(arrivals, mark_answered=lambda: self._mark_answered(row))
            token = current_attempt.set(attempt)
            try:
                update = Update.de_json(row.payload, self.application.bot)
                # Through the update processor, as the Application does for polled updates:
                # it recalls and keeps the chat's conversations (bot/conversations.py).
                await self.application.update_processor.process_update(
                    update, self.application.process_update(update)
                )
            except Exception as error:  # raised outside the handlers: safe to retry
                attempt.failed, attempt.retry = True, is_transient(error)
                if not attempt.retry:
                    log.error(
                        "inbox: update %s not processable (%s)", row.update_id, type(error).__name__
                    )
                    self.metrics.errors.labels(kind="inbox").inc()
            finally:
                attempt.done = True
                current_attempt.reset(token)
            # Once an answer went out, doing it again would answer twice: what failed after
            # the answer stays failed (the error is counted; the flows keep what they saved).
            if not attempt.retry or attempt.answered:
                break
            self.stats.retried += 1
            self.metrics.errors.labels(kind="database").inc()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        outcome = Outcome.ERROR if attempt.failed else Outcome.OK
        await self._finish(row, outcome)

    async def _mark_answered(self, row: Claimed) -> None:
        async with self.db.transaction() as session:
            await inbox.mark_answered(session, self.name, row.update_id, self.clock())

    async def _finish(self, row: Claimed, outcome: str) -> None:
        """Mark it done, however long the database takes to answer again: the handlers ran,
        so it must not be processed again by this worker."""
        backoff = 0.1
        while True:
            try:
                async with self.db.transaction() as session:
                    kept = await inbox.finish(
                        session, self.name, row.update_id, outcome, self.clock()
                    )
                break
            except Exception as error:
                kind = "database" if is_transient(error) else "inbox"
                self.metrics.errors.labels(kind=kind).inc()
                log.warning("inbox: cannot finish an update (%s)", type(error).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        self.stats.processed += 1
        self.metrics.processed.labels(outcome=outcome).inc()
        if not kept:
            self.stats.lost_claims += 1
            log.warning("inbox: update %s finished after its claim was taken over", row.update_id)


def _chat_order(row: Claimed) -> tuple[int, int]:
    return row.chat_key, row.update_id


def _chat_key(row: Claimed) -> int:
    return row.chat_key
