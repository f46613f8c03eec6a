"""The retention period: personal data older than it is erased or anonymised, counts stay.

Run by a scheduled job in the bot (bot/app.py, hourly) and by `crisis-comms retention`. With a
period P (RETENTION_DAYS) and the time now, everything last touched before now - P goes:

- a **contact** whose last activity is older — ``last_seen_at`` (stamped daily when they
  write), or ``consent_at`` if never stamped, or ``created_at``; and no item of theirs received
  nor their registration changed since — is erased with ``privacy.erasure.erase_contact``
  (a tombstone, their items anonymised, registration, address and subscriptions gone);
- a contact who **withdrew consent** longer ago than P is erased the same way, with the same
  exception (a withdrawal keeps what they gave only until the retention period ends);
- a **feedback item** last received before the cutoff is anonymised
  (``privacy.erasure.anonymise_items``: text, attachments and reply texts go, codes stay),
  even if its author is still active: each message has its own retention clock;
- an **evacuation registration** not updated since the cutoff is deleted.

Tombstones (``erased_at`` set) are never touched again. The rollup counts
(feedback/rollups.py) are left alone, and ``rebuild`` gives the same numbers afterwards,
because anonymised items keep their codes, area, language, status and dates.

Each batch (``BATCH`` items or registrations, ``CONTACT_BATCH`` contacts) is its own
transaction, so a large backlog (the first run on an old database) never holds one huge
transaction or lock. One audit event records
the run's counts, only when something went.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from evacuation.registrations import Registration
from feedback.items import Attachment, FeedbackItem
from feedback.replies import Reply
from messages.contacts import Contact
from privacy.erasure import Erased, anonymise_items, erase_contacts
from staff import audit
from storage.database import Database

BATCH = 500
# A batch of contacts is erased in a few set-based statements, but touches their items,
# registrations and addresses too: fewer per transaction keeps SQLite's write lock short.
CONTACT_BATCH = 200


@dataclass(frozen=True)
class RetentionReport:
    """What one run erased, as counts (printed by the CLI, kept in the audit log)."""

    contacts: int = 0
    items: int = 0
    registrations: int = 0
    attachments: int = 0
    replies: int = 0

    def __add__(self, other: RetentionReport) -> RetentionReport:
        return RetentionReport(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def describe(self) -> str:
        """Counts only: ``contacts=1 items=4 registrations=0 attachments=1 replies=2``."""
        return " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))

    @classmethod
    def of(cls, erased: Erased, *, contacts: int = 0) -> RetentionReport:
        return cls(
            contacts=contacts,
            items=erased.items,
            registrations=erased.registrations,
            attachments=erased.attachments,
            replies=erased.replies,
        )


# What one batch does to the due ids it was given, in its transaction; what went.
_Step = Callable[[AsyncSession, list[int]], Awaitable[RetentionReport]]


# --- which rows are due -------------------------------------------------------------------


def _item_received_before(cutoff: datetime) -> ColumnElement[bool]:
    # A repeated message was received again at last_received_at: its clock starts there.
    # Written without coalesce so that the created_at index narrows the scan.
    return and_(
        FeedbackItem.created_at < cutoff,
        or_(FeedbackItem.last_received_at.is_(None), FeedbackItem.last_received_at < cutoff),
    )


def due_contacts(cutoff: datetime) -> Select[int]:
    """Ids of the contacts to erase, oldest id first."""
    last_activity = func.coalesce(Contact.last_seen_at, Contact.consent_at, Contact.created_at)
    # Also recent items or registration changes keep a contact: last_seen_at is stamped only
    # since it exists (migration 0009), so an older deployment's active people have none yet.
    # (Items by creation time: the created_at index keeps this one range read per batch.)
    wrote_since = select(FeedbackItem.contact_id).where(
        FeedbackItem.contact_id.is_not(None), FeedbackItem.created_at >= cutoff
    )
    registered_since = select(Registration.contact_id).where(
        Registration.contact_id.is_not(None), Registration.updated_at >= cutoff
    )
    return (
        select(Contact.id)
        .where(
            Contact.erased_at.is_(None),
            or_(last_activity < cutoff, Contact.consent_withdrawn_at < cutoff),
            Contact.id.not_in(wrote_since),
            Contact.id.not_in(registered_since),
        )
        .order_by(Contact.id)
    )


def due_items(cutoff: datetime) -> Select[int]:
    """Ids of the items whose text is still held and older than the period."""
    return (
        select(FeedbackItem.id)
        .where(FeedbackItem.erased_at.is_(None), _item_received_before(cutoff))
        .order_by(FeedbackItem.id)
    )


def due_registrations(cutoff: datetime) -> Select[int]:
    return select(Registration.id).where(Registration.updated_at < cutoff).order_by(Registration.id)


# --- applying it --------------------------------------------------------------------------


async def apply_retention(
    database: Database,
    now: datetime,
    period: timedelta,
    *,
    actor: audit.Actor = audit.Actor.SYSTEM,
    batch: int = BATCH,
) -> RetentionReport:
    """Erase and anonymise what the period has run out for; the counts of what went.

    Takes the database, not a session: each batch commits on its own (see the docstring)."""
    cutoff = now - period
    report = RetentionReport()
    contacts = min(batch, CONTACT_BATCH)
    report += await _in_batches(database, due_contacts(cutoff), contacts, _erase_contacts(now))
    report += await _in_batches(database, due_items(cutoff), batch, _anonymise_items(now))
    report += await _in_batches(database, due_registrations(cutoff), batch, _delete_registrations)
    if report:
        async with database.transaction() as session:
            await audit.record(
                session, audit.Action.RETENTION, now, actor=actor, detail=report.describe()
            )
    return report


async def _in_batches(
    database: Database, due: Select[int], batch: int, step: _Step
) -> RetentionReport:
    """`step` on the due ids, `batch` at a time, each batch in a transaction of its own. The
    next batch starts after the last id handled, so no batch reads past rows again."""
    total, after = RetentionReport(), 0
    column = due.selected_columns[0]
    while True:
        async with database.transaction() as session:
            ids = list(await session.scalars(due.where(column > after).limit(batch)))
            if ids:
                total += await step(session, ids)
        if len(ids) < batch:
            return total
        after = ids[-1]


def _erase_contacts(now: datetime) -> _Step:
    async def step(session: AsyncSession, ids: list[int]) -> RetentionReport:
        return RetentionReport.of(await erase_contacts(session, ids, now), contacts=len(ids))

    return step


def _anonymise_items(now: datetime) -> _Step:
    async def step(session: AsyncSession, ids: list[int]) -> RetentionReport:
        return RetentionReport.of(await anonymise_items(session, ids, now))

    return step


async def _delete_registrations(session: AsyncSession, ids: list[int]) -> RetentionReport:
    await session.execute(delete(Registration).where(Registration.id.in_(ids)))
    return RetentionReport(registrations=len(ids))


# --- counting without changing (crisis-comms retention --dry-run) -------------------------


async def count_due(session: AsyncSession, now: datetime, period: timedelta) -> RetentionReport:
    """What `apply_retention` would erase now, counted, changing nothing."""
    cutoff = now - period
    contacts = due_contacts(cutoff).order_by(None).subquery()
    # Items: old ones still holding text, and every item of a contact to erase.
    items = select(FeedbackItem.id).where(
        or_(
            FeedbackItem.id.in_(due_items(cutoff).order_by(None)),
            FeedbackItem.contact_id.in_(select(contacts.c.id)),
        )
    )
    held = items.where(FeedbackItem.erased_at.is_(None))
    registrations = select(func.count()).where(
        or_(
            Registration.updated_at < cutoff,
            Registration.contact_id.in_(select(contacts.c.id)),
        )
    )
    return RetentionReport(
        contacts=await _count(session, select(func.count()).select_from(contacts)),
        items=await _count(session, select(func.count()).select_from(held.subquery())),
        registrations=await _count(session, registrations.select_from(Registration)),
        attachments=await _count(
            session,
            select(func.count()).select_from(Attachment).where(Attachment.item_id.in_(items)),
        ),
        replies=await _count(
            session,
            select(func.count())
            .select_from(Reply)
            .where(Reply.item_id.in_(items), Reply.text != ""),
        ),
    )


async def _count(session: AsyncSession, query: Select[int]) -> int:
    return int(await session.scalar(query) or 0)
