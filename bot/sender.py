"""The broadcast sender: takes due rows from the outbox and sends them through Telegram.

Limits (Telegram's, as documented for bots): about 30 messages per second overall, shared
by every sender process through the send-slot row (`reserve_slots`); about one per second to
any one private chat and 20 per minute to a group, kept in process (`ChatGaps`); a 429's
``retry_after`` pauses every sender. Outcomes, per outbox row (messages/outbox.py documents
the states and what a crash can and cannot do):

- the message → ``sent``;
- 429, a 5xx answer, or no connection made → back to ``queued`` (429: after ``retry_after``;
  others: exponential backoff, ``failed`` after `SenderSettings.max_attempts`);
- 403 → ``blocked``, and the contact is unreachable until they write again;
- 400 → ``failed`` (Telegram refused it; sending again would not help);
- a timeout or a broken connection after the request left → ``failed`` as *uncertain*: it
  may have been delivered, and sending again could make a second copy.

The sender runs inside the bot process (`start_in_application`) and, for more throughput
or isolation, as extra `crisis-comms sender` processes sharing a PostgreSQL outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Bot, InputFile, Message
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from bot.config import SANDBOX_TOKEN, TELEGRAM_API_ROOT, Settings
from bot.errors import describe
from bot.flows.subscriptions import stop_markup
from bot.services import Services
from messages.broadcasts import Broadcast, QuietHours, mark_finished, mark_started
from messages.content import render
from messages.i18n import translations
from messages.outbox import (
    Claimed,
    claim,
    mark_attempt,
    pause_slots,
    record_blocked,
    record_failed,
    record_retry,
    record_sent,
    recover,
    release,
    reserve_slots,
)
from storage.base import utcnow
from storage.database import Database

log = logging.getLogger("crisis_comms.sender")

# httpx errors raised before the request could reach Telegram: safe to send again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def default_name(role: str = "sender") -> str:
    return f"{role}@{socket.gethostname()}"[:64]


@dataclass(frozen=True)
class SenderSettings:
    name: str = field(default_factory=default_name)
    rate: float = 30.0  # messages per second, all senders together
    batch: int = 30
    lease: timedelta = timedelta(seconds=60)
    idle_seconds: float = 0.5  # between looks at an empty outbox
    max_attempts: int = 6
    backoff: timedelta = timedelta(seconds=5)
    # Seconds between two messages to one chat: about 1 per second to a person, 20 per
    # minute to a group, with a margin for the network's jitter.
    private_gap: float = 1.1
    group_gap: float = 3.1
    quiet_hours: QuietHours | None = None
    default_language: str = "en"
    fallback_languages: tuple[str, ...] = ()


class ChatGaps:
    """When each chat may next receive a message from this process. A turn is taken when a
    send is decided, not when it completes, so two sends to one chat never race."""

    def __init__(self, settings: SenderSettings) -> None:
        self._settings = settings
        self._next: dict[int, float] = {}

    def take(self, chat_id: int, now: float) -> float:
        """Seconds to wait before sending to `chat_id`; the turn after it is booked."""
        start = max(self._next.get(chat_id, 0.0), now)
        gap = self._settings.private_gap if chat_id > 0 else self._settings.group_gap
        self._next[chat_id] = start + gap
        if len(self._next) > 50_000:  # forget chats whose turn has long passed
            self._next = {chat: t for chat, t in self._next.items() if t > now}
        return start - now


@dataclass(frozen=True)
class Content:
    """What a broadcast sends, read once per batch."""

    id: int
    texts: dict[str, str]
    location: tuple[float, float] | None
    document: str | InputFile | None
    needs_upload: bool


class Sender:
    def __init__(
        self,
        bot: Bot,
        db: Database,
        settings: SenderSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        pace_clock: Callable[[], float] = time.time,
    ) -> None:
        self.bot = bot
        self.db = db
        self.settings = settings
        self.clock = clock
        self.pace_clock = pace_clock
        self.gaps = ChatGaps(settings)
        self.stopping: Callable[[], bool] = lambda: False

    async def recover(self, *, at_start: bool = False) -> None:
        """Rows left claimed by a dead sender (or by this one, at its start)."""
        async with self.db.transaction() as session:
            worker = self.settings.name if at_start else None
            found = await recover(session, self.clock(), worker)
        if found.requeued or found.uncertain:
            log.warning(
                "outbox recovered: %d requeued, %d uncertain (not resent)",
                found.requeued,
                found.uncertain,
            )

    async def run(self, stopping: Callable[[], bool]) -> None:
        """Send until `stopping()`; claims still unattempted then are given back."""
        self.stopping = stopping
        await self.recover(at_start=True)
        last_recovery = time.monotonic()
        while not stopping():
            try:
                handled = await self.run_once()
                if time.monotonic() - last_recovery > self.settings.lease.total_seconds() / 2:
                    await self.recover()
                    last_recovery = time.monotonic()
            except Exception as error:  # a database hiccup must not end broadcasting for good
                # Not log.exception: a database error's text can quote the row (chat id, text).
                log.error("sender iteration failed: %s", describe(error))
                handled = 0
            if handled == 0:
                await self._sleep(self.settings.idle_seconds)

    async def run_once(self) -> int:
        """Claim one batch of due rows and send it; returns how many rows were handled."""
        now = self.clock()
        quiet = self.settings.quiet_hours
        async with self.db.transaction() as session:
            rows = await claim(
                session,
                worker=self.settings.name,
                limit=self.settings.batch,
                now=now,
                lease=self.settings.lease,
                emergency_only=quiet is not None and quiet.contains(now),
            )
            if not rows:
                return 0
            broadcast_ids = {row.broadcast_id for row in rows}
            await mark_started(session, broadcast_ids, now)
            contents = await _contents(session, broadcast_ids)
        async with self.db.transaction() as session:
            first = await reserve_slots(session, len(rows), self.settings.rate, self.pace_clock())
        step = 1 / self.settings.rate
        uploads = [row for row in rows if contents[row.broadcast_id].needs_upload]
        if uploads:  # the first send of a web upload gives the file id the others reuse
            head = uploads[0]
            await self._send_row(head, contents[head.broadcast_id], first)
            contents = await self._reload(broadcast_ids)
        tasks = [
            self._send_row(row, contents[row.broadcast_id], first + i * step)
            for i, row in enumerate(rows)
            if not (uploads and row is uploads[0])
        ]
        await asyncio.gather(*tasks)
        async with self.db.transaction() as session:
            await release(session, rows)  # skipped while stopping: due again at once
            await mark_finished(session, broadcast_ids, self.clock())
        return len(rows)

    async def _reload(self, broadcast_ids: set[int]) -> dict[int, Content]:
        async with self.db.transaction() as session:
            return await _contents(session, broadcast_ids)

    async def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        # `stopping` is a callable (Application.running), not an event: look at it often.
        while not self.stopping() and (left := end - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(left, 0.2))

    async def _wait_turn(self, slot: float, chat_id: int) -> None:
        await self._sleep(slot - self.pace_clock())
        await self._sleep(self.gaps.take(chat_id, time.monotonic()))

    async def _send_row(self, row: Claimed, content: Content, slot: float) -> None:
        if row.chat_id is None:
            async with self.db.transaction() as session:
                await record_failed(session, row, "no_address")
            return
        await self._wait_turn(slot, row.chat_id)
        if self.stopping():
            return  # still unattempted: recovered and sent by the next run, once
        async with self.db.transaction() as session:
            if not await mark_attempt(session, row, self.clock()):
                return  # cancelled, or recovered by another sender
        try:
            message = await self._deliver(row, content)
        except TelegramError as error:
            await self._record_error(row, error)
            return
        async with self.db.transaction() as session:
            await record_sent(session, row, self.clock(), message.message_id)
            if content.needs_upload and message.document is not None:
                broadcast = await session.get(Broadcast, content.id)
                if broadcast is not None and broadcast.document_file_id is None:
                    broadcast.document_file_id = message.document.file_id
        if content.location is not None:
            await self._send_location(row, content.location)

    async def _deliver(self, row: Claimed, content: Content) -> Message:
        assert row.chat_id is not None
        settings = self.settings
        text = render(content.texts, row.language, settings.fallback_languages)
        markup = stop_markup(translations(row.language).gettext, row.topic)
        if content.document is not None:
            return await self.bot.send_document(
                row.chat_id, content.document, caption=text, reply_markup=markup
            )
        return await self.bot.send_message(row.chat_id, text, reply_markup=markup)

    async def _send_location(self, row: Claimed, location: tuple[float, float]) -> None:
        """After the text, at most once: the row is already sent, so a failure is logged."""
        assert row.chat_id is not None
        async with self.db.transaction() as session:
            slot = await reserve_slots(session, 1, self.settings.rate, self.pace_clock())
        await self._wait_turn(slot, row.chat_id)
        try:
            await self.bot.send_location(row.chat_id, latitude=location[0], longitude=location[1])
        except TelegramError as error:
            log.warning("broadcast location not sent: %s", type(error).__name__)

    async def _record_error(self, row: Claimed, error: TelegramError) -> None:
        now = self.clock()
        async with self.db.transaction() as session:
            if isinstance(error, RetryAfter):
                wait = _seconds(error.retry_after)
                await record_retry(
                    session, row, now + timedelta(seconds=wait), "retry_after", refund=True
                )
                await pause_slots(session, self.pace_clock() + wait)
                log.warning("Telegram asked to wait %.0f s (429); all senders pause", wait)
            elif isinstance(error, Forbidden):
                await record_blocked(session, row, now)
            elif isinstance(error, BadRequest):
                await record_failed(session, row, "bad_request")
                log.warning("broadcast message refused (400)")
            elif _not_sent(error):
                await self._retry_later(session, row, now)
            else:
                await record_failed(session, row, "uncertain")
                log.warning("broadcast message outcome unknown: %s", type(error).__name__)

    async def _retry_later(self, session: AsyncSession, row: Claimed, now: datetime) -> None:
        attempts = row.attempts + 1
        if attempts >= self.settings.max_attempts:
            await record_failed(session, row, "gave_up")
            return
        delay = min(self.settings.backoff * 2 ** (attempts - 1), timedelta(minutes=10))
        await record_retry(session, row, now + delay, "transient")


def _seconds(value: int | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _not_sent(error: TelegramError) -> bool:
    """True when Telegram cannot have sent it: it answered with an error (5xx), or the
    connection was never made."""
    if not isinstance(error, NetworkError) or isinstance(error, BadRequest):
        return False  # (python-telegram-bot's BadRequest is a NetworkError)
    cause = error.__cause__
    if cause is None:  # an HTTP answer from the server (502, 500 …), unless a bare timeout
        return not isinstance(error, TimedOut)
    return isinstance(cause, _NOT_SENT)


async def _contents(session: AsyncSession, broadcast_ids: set[int]) -> dict[int, Content]:
    contents: dict[int, Content] = {}
    for broadcast_id in broadcast_ids:
        broadcast = await session.get(Broadcast, broadcast_id)
        assert broadcast is not None
        document: str | InputFile | None = broadcast.document_file_id
        needs_upload = False
        if document is None and broadcast.document_name is not None:
            data = await session.scalar(
                select(Broadcast.document_content).where(Broadcast.id == broadcast_id)
            )
            if data:
                document = InputFile(data, filename=broadcast.document_name)
                needs_upload = True
        contents[broadcast_id] = Content(
            id=broadcast.id,
            texts=dict(broadcast.texts),
            location=broadcast.location,
            document=document,
            needs_upload=needs_upload,
        )
    return contents


def sender_settings(
    settings: Settings, name: str | None = None, role: str = "sender"
) -> SenderSettings:
    service = settings.services
    if role == "bot" and settings.mode == "webhook" and not service.sender_name:
        # Several bot processes may run on one host: each needs a name of its own.
        name = (
            name
            or f"bot@{service.worker_name or socket.gethostname() + ':' + str(settings.web_port)}"
        )
    return SenderSettings(
        name=(name or service.sender_name or default_name(role))[:64],
        rate=service.broadcast_rate,
        batch=max(1, min(100, round(service.broadcast_rate))),  # about a second of sends
        quiet_hours=service.quiet_hours,
        default_language=settings.default_language,
        fallback_languages=settings.fallback_languages,
    )


def sender_bot(settings: Settings) -> Bot:
    """A Bot of its own: no AIORateLimiter (the sender paces itself and must see each 429),
    and a connection pool for the requests in flight at 30 per second."""
    return Bot(
        settings.token or SANDBOX_TOKEN,
        base_url=settings.api_base_url,
        base_file_url=settings.api_base_file_url,
        request=HTTPXRequest(connection_pool_size=16),
    )


def start_in_application(application: Any, services: Services) -> None:
    """Run a sender for as long as the Application runs; `Application.stop()` waits for it,
    and it stops at once (sends in flight finish, claims not yet attempted go back)."""
    settings = services.settings
    bot = sender_bot(settings)
    sender = Sender(bot, services.db, sender_settings(settings, role="bot"), clock=services.clock)

    async def run() -> None:
        async with bot:
            await sender.run(lambda: not application.running)

    application.create_task(run())


async def run_forever(sender: Sender) -> None:
    """`crisis-comms sender`: until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    await sender.run(stop.is_set)


async def command(settings: Settings, name: str | None) -> int:
    """`crisis-comms sender`: one more sender process on the configured database."""
    from bot.runner import open_database

    if settings.sandbox and settings.api_root == TELEGRAM_API_ROOT:
        print(
            "crisis-comms: the sandbox bot sends its own broadcasts; to add a sender, set "
            "TELEGRAM_API_BASE_URL to the sandbox's address (http://host:port)",
            file=sys.stderr,
        )
        return 2
    database = await open_database(settings)
    bot = sender_bot(settings)
    try:
        async with bot:
            sender = Sender(bot, database, sender_settings(settings, name))
            log.info(
                "sender %s running at %.1f messages/s", sender.settings.name, sender.settings.rate
            )
            await run_forever(sender)
    finally:
        await database.dispose()
    return 0
