"""Broadcasts: a message written by a communications officer, in several languages, to an
audience of subscribers. Each recipient becomes one outbox row (messages/outbox.py).

A broadcast's lifecycle (`BroadcastStatus`):

- ``draft``: created, audience previewed; nothing queued.
- ``draft → scheduled``: `enqueue` wrote one outbox row per recipient, due at ``send_at``.
- ``scheduled → sending``: a sender claimed its first row (``started_at``).
- ``sending → finished``: no row is queued or being sent any more (``finished_at``); each row
  ends sent, failed or blocked.
- ``draft | scheduled | sending → cancelled``: an officer cancelled; rows not yet attempted
  are cancelled, rows already with Telegram finish as they will.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    Select,
    String,
    Text,
    case,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from evacuation.registrations import Registration, RegistrationStatus
from messages.contacts import Contact, ContactAddress, Subscription
from messages.content import pick
from messages.outbox import PENDING_STATES, UNCERTAIN, OutboxMessage, OutboxState
from messages.topics import TOPIC_KEYS
from storage.base import Base, UtcDateTime, utcnow
from storage.references import new_reference, normalize_reference

# Room for the "not in your language" note a fallback adds, under Telegram's 4096 / 1024.
MAX_TEXT = 3800
MAX_CAPTION = 900
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024


class Priority(enum.StrEnum):
    EMERGENCY = "emergency"
    NORMAL = "normal"

    @property
    def rank(self) -> int:
        return 1 if self is Priority.EMERGENCY else 0


class BroadcastStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    FINISHED = "finished"
    CANCELLED = "cancelled"


OPEN_STATUSES = (BroadcastStatus.DRAFT, BroadcastStatus.SCHEDULED, BroadcastStatus.SENDING)


@dataclass(frozen=True)
class Audience:
    topics: tuple[str, ...]
    areas: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    departure_point_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Draft:
    texts: dict[str, str]
    audience: Audience
    priority: Priority = Priority.NORMAL
    send_at: datetime | None = None
    location: tuple[float, float] | None = None
    document_file_id: str | None = None
    document_name: str | None = None
    document_content: bytes | None = None

    @property
    def has_document(self) -> bool:
        return self.document_file_id is not None or self.document_content is not None


class Broadcast(Base):
    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    texts: Mapped[dict[str, str]] = mapped_column(JSON)
    topics: Mapped[list[str]] = mapped_column(JSON)
    areas: Mapped[list[str]] = mapped_column(JSON, default=list)
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    departure_point_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    priority: Mapped[str] = mapped_column(String(16), default=Priority.NORMAL.value)
    send_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    document_file_id: Mapped[str | None] = mapped_column(String(255))
    document_name: Mapped[str | None] = mapped_column(String(255))
    # An upload from the web; the first send turns it into a Telegram file id for the rest.
    document_content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    status: Mapped[str] = mapped_column(String(16), default=BroadcastStatus.DRAFT.value)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("staff_members.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cancelled_by: Mapped[int | None] = mapped_column(
        ForeignKey("staff_members.id", ondelete="SET NULL")
    )
    note: Mapped[str | None] = mapped_column(Text)  # why it was cancelled, for the report
    # The Telegram wizard's step while a draft is being composed (bot/flows/broadcasts.py):
    # kept here, so that a restart in the middle of composing resumes where it was.
    compose_step: Mapped[str | None] = mapped_column(String(24))

    @property
    def location(self) -> tuple[float, float] | None:
        if self.latitude is None or self.longitude is None:
            return None
        return (self.latitude, self.longitude)

    @property
    def is_emergency(self) -> bool:
        return self.priority == Priority.EMERGENCY.value


def problems(draft: Draft, enabled_languages: tuple[str, ...]) -> list[str]:
    """What stops this draft from being sent, in plain English for the officer; [] if ok."""
    found: list[str] = []
    texts = {code: text for code, text in draft.texts.items() if text.strip()}
    if not texts:
        found.append("Write the text in at least one language.")
    unknown = sorted(set(texts) - set(enabled_languages))
    if unknown:
        found.append(f"Not an enabled language: {', '.join(unknown)}.")
    limit = MAX_CAPTION if draft.has_document else MAX_TEXT
    for code, text in sorted(texts.items()):
        if len(text) > limit:
            what = "a document's caption" if draft.has_document else "a message"
            found.append(f"The {code} text has {len(text)} characters; {what} allows {limit}.")
    if not draft.audience.topics:
        found.append("Choose at least one topic.")
    bad_topics = sorted(set(draft.audience.topics) - set(TOPIC_KEYS))
    if bad_topics:
        found.append(f"Unknown topic: {', '.join(bad_topics)}.")
    bad_languages = sorted(set(draft.audience.languages) - set(enabled_languages))
    if bad_languages:
        found.append(f"Not an enabled language: {', '.join(bad_languages)}.")
    if draft.location is not None:
        latitude, longitude = draft.location
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            found.append("The location is not a valid latitude and longitude.")
    if draft.location is not None and draft.has_document:
        found.append("Attach a location or a document, not both.")
    if draft.document_content is not None and len(draft.document_content) > MAX_DOCUMENT_BYTES:
        found.append("The document is larger than 20 MB.")
    return found


def _audience_query(audience: Audience, default_language: str) -> Select[tuple[int, str, str]]:
    """One row per recipient: contact id, language, and the first of the broadcast's topics
    they subscribe to (its stop button). Reachable, consenting people only."""
    ranks = {topic: rank for rank, topic in enumerate(audience.topics)}
    first = func.min(case(ranks, value=Subscription.topic))
    topic = case({rank: topic for topic, rank in ranks.items()}, value=first)
    language = func.coalesce(Contact.language, default_language)
    query = (
        select(Contact.id, language.label("language"), topic.label("topic"))
        .join(ContactAddress, ContactAddress.contact_id == Contact.id)
        .join(Subscription, Subscription.contact_id == Contact.id)
        .where(
            Contact.consent_at.is_not(None),
            Contact.unreachable_at.is_(None),
            Subscription.topic.in_(audience.topics),
        )
        .group_by(Contact.id, Contact.language)
    )
    if audience.areas:
        query = query.where(Subscription.area.is_(None) | Subscription.area.in_(audience.areas))
    if audience.languages:
        query = query.where(language.in_(audience.languages))
    if audience.departure_point_ids:
        registered = exists().where(
            Registration.contact_id == Contact.id,
            Registration.status == RegistrationStatus.SUBMITTED.value,
            Registration.departure_point_id.in_(audience.departure_point_ids),
        )
        query = query.where(registered)
    return query


def audience_of(broadcast: Broadcast) -> Audience:
    return Audience(
        topics=tuple(broadcast.topics),
        areas=tuple(broadcast.areas or ()),
        languages=tuple(broadcast.languages or ()),
        departure_point_ids=tuple(broadcast.departure_point_ids or ()),
    )


@dataclass(frozen=True)
class LanguageCount:
    language: str  # the recipients' language
    recipients: int
    variant: str  # the text they get
    fallback: bool  # True: not in their language, with a note


@dataclass(frozen=True)
class Preview:
    total: int
    by_language: tuple[LanguageCount, ...]


async def preview(
    session: AsyncSession, draft: Draft, default_language: str, chain: tuple[str, ...]
) -> Preview:
    """How many people would receive it, per language, and which text each group gets."""
    if not draft.audience.topics:
        return Preview(0, ())
    recipients = _audience_query(draft.audience, default_language).subquery()
    rows = await session.execute(
        select(recipients.c.language, func.count())
        .group_by(recipients.c.language)
        .order_by(func.count().desc(), recipients.c.language)
    )
    counts: list[LanguageCount] = []
    for language, count in rows:
        chosen = pick(draft.texts, language, chain) if any(draft.texts.values()) else None
        counts.append(
            LanguageCount(
                language=language,
                recipients=count,
                variant=chosen.language if chosen else "",
                fallback=chosen.is_fallback if chosen else True,
            )
        )
    return Preview(sum(c.recipients for c in counts), tuple(counts))


async def create(
    session: AsyncSession, draft: Draft, staff_id: int | None, now: datetime
) -> Broadcast:
    location = draft.location
    broadcast = Broadcast(
        reference=new_reference(),
        texts={code: text.strip() for code, text in draft.texts.items() if text.strip()},
        topics=list(draft.audience.topics),
        areas=list(draft.audience.areas),
        languages=list(draft.audience.languages),
        departure_point_ids=list(draft.audience.departure_point_ids),
        priority=draft.priority.value,
        send_at=draft.send_at,
        latitude=location[0] if location else None,
        longitude=location[1] if location else None,
        document_file_id=draft.document_file_id,
        document_name=draft.document_name,
        document_content=draft.document_content,
        status=BroadcastStatus.DRAFT.value,
        created_by=staff_id,
        created_at=now,
    )
    session.add(broadcast)
    await session.flush()
    return broadcast


async def enqueue(
    session: AsyncSession, broadcast: Broadcast, now: datetime, default_language: str
) -> int:
    """Write one outbox row per recipient in one INSERT … SELECT; returns how many."""
    if broadcast.status != BroadcastStatus.DRAFT.value:
        raise ValueError(f"broadcast {broadcast.reference} is {broadcast.status}, not a draft")
    due = max(broadcast.send_at or now, now)
    recipients = _audience_query(audience_of(broadcast), default_language).subquery()
    rank = Priority(broadcast.priority).rank
    source = select(
        literal(broadcast.id),
        recipients.c.id,
        recipients.c.language,
        recipients.c.topic,
        literal(rank),
        literal(OutboxState.QUEUED.value),
        literal(due, UtcDateTime()),
        literal(0),
    )
    columns = [
        "broadcast_id",
        "contact_id",
        "language",
        "topic",
        "priority",
        "state",
        "not_before",
        "attempts",
    ]
    result = await session.execute(insert(OutboxMessage).from_select(columns, source))
    count = int(getattr(result, "rowcount", -1))
    if count < 0:  # a driver that does not report it: count the rows instead
        count = (
            await session.scalar(
                select(func.count()).where(OutboxMessage.broadcast_id == broadcast.id)
            )
            or 0
        )
    broadcast.recipients = count
    broadcast.status = BroadcastStatus.SCHEDULED.value
    broadcast.enqueued_at = now
    if broadcast.recipients == 0:
        broadcast.status = BroadcastStatus.FINISHED.value
        broadcast.finished_at = now
    return broadcast.recipients


async def cancel(
    session: AsyncSession, broadcast: Broadcast, now: datetime, staff_id: int | None
) -> int:
    """Stop a broadcast: rows not yet handed to Telegram are cancelled. Returns how many."""
    if broadcast.status not in OPEN_STATUSES:
        return 0
    not_attempted = (OutboxMessage.state == OutboxState.QUEUED.value) | (
        (OutboxMessage.state == OutboxState.SENDING.value) & OutboxMessage.attempted_at.is_(None)
    )
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.broadcast_id == broadcast.id, not_attempted)
        .values(state=OutboxState.CANCELLED.value, claim_token=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    broadcast.status = BroadcastStatus.CANCELLED.value
    broadcast.cancelled_at = now
    broadcast.cancelled_by = staff_id
    return int(getattr(result, "rowcount", 0) or 0)


async def mark_started(session: AsyncSession, broadcast_ids: set[int], now: datetime) -> None:
    if broadcast_ids:
        await session.execute(
            update(Broadcast)
            .where(
                Broadcast.id.in_(broadcast_ids),
                Broadcast.status == BroadcastStatus.SCHEDULED.value,
            )
            .values(status=BroadcastStatus.SENDING.value, started_at=now)
            .execution_options(synchronize_session=False)
        )


async def mark_finished(session: AsyncSession, broadcast_ids: set[int], now: datetime) -> None:
    """Broadcasts with nothing left to send are finished."""
    if not broadcast_ids:
        return
    pending = exists().where(
        OutboxMessage.broadcast_id == Broadcast.id, OutboxMessage.state.in_(PENDING_STATES)
    )
    await session.execute(
        update(Broadcast)
        .where(
            Broadcast.id.in_(broadcast_ids),
            Broadcast.status.in_((BroadcastStatus.SCHEDULED.value, BroadcastStatus.SENDING.value)),
            ~pending,
        )
        .values(status=BroadcastStatus.FINISHED.value, finished_at=now)
        .execution_options(synchronize_session=False)
    )


async def find_broadcast(session: AsyncSession, reference: str) -> Broadcast | None:
    return await session.scalar(
        select(Broadcast).where(Broadcast.reference == normalize_reference(reference))
    )


async def recent_broadcasts(session: AsyncSession, limit: int = 20) -> list[Broadcast]:
    query = select(Broadcast).order_by(Broadcast.created_at.desc(), Broadcast.id.desc())
    return list(await session.scalars(query.limit(limit)))


@dataclass(frozen=True)
class BroadcastReport:
    reference: str
    status: str
    priority: str
    recipients: int
    queued: int
    sending: int
    sent: int
    failed: int
    blocked: int
    cancelled: int
    uncertain: int  # failed because a sender died mid-request: one copy or none
    created_at: datetime
    send_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    first_sent_at: datetime | None
    last_sent_at: datetime | None

    @property
    def per_second(self) -> float | None:
        """Sent messages per second, between the first and the last one sent."""
        if self.first_sent_at is None or self.last_sent_at is None or self.sent < 2:
            return None
        seconds = (self.last_sent_at - self.first_sent_at).total_seconds()
        return (self.sent - 1) / seconds if seconds > 0 else None


async def report(session: AsyncSession, broadcast: Broadcast) -> BroadcastReport:
    rows = await session.execute(
        select(OutboxMessage.state, OutboxMessage.error, func.count())
        .where(OutboxMessage.broadcast_id == broadcast.id)
        .group_by(OutboxMessage.state, OutboxMessage.error)
    )
    counts: dict[str, int] = {}
    uncertain = 0
    for state, error, count in rows:
        counts[state] = counts.get(state, 0) + count
        if state == OutboxState.FAILED.value and error == UNCERTAIN:
            uncertain += count
    first, last = (
        await session.execute(
            select(func.min(OutboxMessage.sent_at), func.max(OutboxMessage.sent_at)).where(
                OutboxMessage.broadcast_id == broadcast.id,
                OutboxMessage.state == OutboxState.SENT.value,
            )
        )
    ).one()
    return BroadcastReport(
        reference=broadcast.reference,
        status=broadcast.status,
        priority=broadcast.priority,
        recipients=broadcast.recipients,
        queued=counts.get(OutboxState.QUEUED.value, 0),
        sending=counts.get(OutboxState.SENDING.value, 0),
        sent=counts.get(OutboxState.SENT.value, 0),
        failed=counts.get(OutboxState.FAILED.value, 0),
        blocked=counts.get(OutboxState.BLOCKED.value, 0),
        cancelled=counts.get(OutboxState.CANCELLED.value, 0),
        uncertain=uncertain,
        created_at=broadcast.created_at,
        send_at=broadcast.send_at,
        started_at=broadcast.started_at,
        finished_at=broadcast.finished_at,
        first_sent_at=first,
        last_sent_at=last,
    )


@dataclass(frozen=True)
class QuietHours:
    """Local hours (the deployment's TIMEZONE) when only emergency broadcasts go out."""

    start: time
    end: time
    timezone: str = "UTC"

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(ZoneInfo(self.timezone)).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # across midnight

    def next_end(self, moment: datetime) -> datetime:
        """When the quiet period containing `moment` ends (moment itself if not quiet)."""
        if not self.contains(moment):
            return moment
        local = moment.astimezone(ZoneInfo(self.timezone))
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        return end.astimezone(moment.tzinfo)

    @classmethod
    def parse(cls, text: str, timezone: str = "UTC") -> QuietHours:
        """ "22:00-07:00" → QuietHours; ValueError otherwise."""
        start_text, _, end_text = text.partition("-")
        start, end = time.fromisoformat(start_text.strip()), time.fromisoformat(end_text.strip())
        if start == end:
            raise ValueError("quiet hours start and end at the same time")
        return cls(start, end, timezone)
