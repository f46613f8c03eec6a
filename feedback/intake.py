"""Intake: what a person wrote becomes coded feedback items, without losing or doubling any.

- A text longer than MAX_TEXT is kept whole, as several items.
- The same words again within ``Limits.repeat_window`` count on the first item (``repeats``)
  and get the same reference back, instead of filling the queue with copies.
- Words that follow a need pick (within ``Limits.words_window``) complete that item.
- The same Telegram message again (an update retried after a crash) changes nothing.
- Past ``Limits.flood_messages`` messages in ``Limits.flood_window``, everything is still kept;
  the channel sends one slow-down notice, then stays quiet until the pace drops.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from feedback.codes import CodeSet, apply_suggestion
from feedback.coding import Coder
from feedback.items import MAX_TEXT, Attachment, FeedbackItem, latest_item, record_item
from feedback.needs import Need, needs_of_keys
from messages.geo import normalize_name


@dataclass(frozen=True)
class Limits:
    repeat_window: timedelta = timedelta(minutes=10)
    words_window: timedelta = timedelta(minutes=30)
    flood_messages: int = 8
    flood_window: timedelta = timedelta(minutes=1)


class Outcome(enum.Enum):
    NEW = "new"
    REPEAT = "repeat"  # the same words again: counted on the earlier item
    ADDED = "added"  # words completing a need pick
    # The very same message taken again (an update retried after a crash): nothing changes.
    ALREADY = "already"


class Pace(enum.Enum):
    NORMAL = "normal"
    SLOW_DOWN = "slow_down"  # first message over the limit: tell them once
    QUIET = "quiet"  # still over it: keep, say nothing


@dataclass(frozen=True)
class Intake:
    items: tuple[FeedbackItem, ...]  # the first carries the reference to quote
    outcome: Outcome
    pace: Pace

    @property
    def item(self) -> FeedbackItem:
        return self.items[0]

    @property
    def sensitive(self) -> bool:
        return any(item.sensitive for item in self.items)

    @property
    def urgent(self) -> bool:
        return any(item.urgent for item in self.items)


@dataclass(frozen=True)
class Received:
    """One message as the channel got it."""

    contact_id: int
    text: str
    language: str | None
    now: datetime
    channel: str
    source_message_id: int | None = None
    attachment: Attachment | None = None
    area: tuple[str, str | None] | None = None  # (adm1 code, name) the person last looked up


async def take_message(
    session: AsyncSession, message: Received, coder: Coder, limits: Limits = Limits()
) -> Intake:
    latest = await latest_item(session, message.contact_id)
    if latest is not None and _taken_already(latest, message):
        return Intake((latest,), Outcome.ALREADY, Pace.NORMAL)
    pace = await _pace(session, message, limits)
    if latest is not None and _same_words(latest, message, limits):
        latest.repeats += 1
        latest.last_received_at = message.now
        return Intake((latest,), Outcome.REPEAT, pace)
    if latest is not None and _awaits_words(latest, message, limits):
        latest.text = message.text[:MAX_TEXT]
        latest.language = message.language
        latest.source_message_id = message.source_message_id
        if message.attachment is not None:
            latest.attachments.append(message.attachment)
        await code_item(session, latest, coder)
        return Intake((latest,), Outcome.ADDED, pace)
    items: list[FeedbackItem] = []
    for part in split_text(message.text):
        item = await record_item(
            session,
            message.contact_id,
            part,
            message.language,
            message.now,
            channel=message.channel,
            source_message_id=message.source_message_id,
            area=message.area,
            attachments=[message.attachment] if message.attachment and not items else None,
        )
        await code_item(session, item, coder)
        items.append(item)
    return Intake(tuple(items), Outcome.NEW, pace)


def _taken_already(latest: FeedbackItem, message: Received) -> bool:
    """The same Telegram message with the same words (an edit is new information). A chat's
    updates are processed in order, so a retried one finds its item the latest."""
    if message.source_message_id is None or latest.source_message_id != message.source_message_id:
        return False
    parts = split_text(message.text)
    return (parts[-1] if parts else "") == latest.text


async def take_needs(
    session: AsyncSession,
    contact_id: int,
    needs: Sequence[Need],
    now: datetime,
    coder: Coder,
    *,
    channel: str,
    area: tuple[str, str | None] | None = None,
) -> FeedbackItem:
    """A need pick is an item at once (nothing waits in memory); words may follow."""
    item = await record_item(
        session,
        contact_id,
        "",
        None,
        now,
        channel=channel,
        needs=",".join(need.key for need in needs),
        area=area,
    )
    await code_item(session, item, coder)
    return item


async def code_item(session: AsyncSession, item: FeedbackItem, coder: Coder) -> None:
    suggestion = coder.suggest(item.text, item.language)
    await apply_suggestion(session, item, suggestion, picked_codes(needs_of_keys(item.needs)))


def picked_codes(needs: Sequence[Need]) -> CodeSet | None:
    if not needs:
        return None
    return CodeSet(
        type="request",
        sectors=frozenset(s for need in needs for s in need.sectors),
        clusters=frozenset(c for need in needs for c in need.clusters),
    )


def split_text(text: str) -> list[str]:
    """Whole text in MAX_TEXT parts, cut at a space where one is near."""
    parts: list[str] = []
    while len(text) > MAX_TEXT:
        cut = text.rfind(" ", MAX_TEXT - 200, MAX_TEXT)
        cut = cut if cut > 0 else MAX_TEXT
        parts.append(text[:cut])
        text = text[cut:]
    parts.append(text)
    return parts


def _same_words(latest: FeedbackItem, message: Received, limits: Limits) -> bool:
    if message.attachment is not None or not latest.text:
        return False
    last_seen = latest.last_received_at or latest.created_at
    if message.now - last_seen > limits.repeat_window:
        return False
    return normalize_name(latest.text) == normalize_name(message.text) != ""


def _awaits_words(latest: FeedbackItem, message: Received, limits: Limits) -> bool:
    return (
        bool(latest.needs)
        and latest.text == ""
        and not latest.attachments
        and message.now - latest.created_at <= limits.words_window
        and len(message.text) <= MAX_TEXT
    )


async def _pace(session: AsyncSession, message: Received, limits: Limits) -> Pace:
    """How many messages this person sent within the window, this one included: new items,
    and repeats of items repeated within it (all their repeats: an over-count that errs
    towards asking a flooding sender to slow down, never towards losing anything)."""
    since = message.now - limits.flood_window
    mine = FeedbackItem.contact_id == message.contact_id
    recent = await session.scalar(
        select(func.count(FeedbackItem.id)).where(mine, FeedbackItem.created_at > since)
    )
    repeated = await session.scalar(
        select(func.coalesce(func.sum(FeedbackItem.repeats), 0)).where(
            mine, FeedbackItem.last_received_at > since
        )
    )
    count = (recent or 0) + (repeated or 0) + 1
    if count <= limits.flood_messages:
        return Pace.NORMAL
    return Pace.SLOW_DOWN if count == limits.flood_messages + 1 else Pace.QUIET
