"""Erasing and anonymising personal data, for a person's /delete, a withdrawal of consent and
the retention job (privacy/retention.py).

What is personal data here: the contact's keyed pseudonym (it links every message of one
Telegram account), their chat address, language and area choices, subscriptions, the free
text and attachments they sent, the replies written to them, and their evacuation
registration (names of nobody, but phone number, household, location, documents).

What stays, so that counts stay whole: the contact row as a *tombstone* (a random pseudonym,
``erased_at`` set, every other field emptied), and each feedback item's codes, area, language,
status and dates with ``erased_at`` set and no text. Rollup counts (feedback/rollups.py) are
untouched, and ``rebuild`` gives the same numbers from the anonymised items. Nothing left can
be tied back to the person: the tombstone's pseudonym is not the keyed hash of their id, so
writing again makes a new contact.

Withdrawal is lighter: we stop (no messages, no chat address, no subscriptions) and keep
what they already gave us until they /delete or the retention period ends.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from evacuation.registrations import Registration
from feedback.items import Attachment, FeedbackItem
from feedback.replies import Reply
from messages.contacts import Contact, ContactAddress, Subscription
from messages.outbox import OutboxMessage, OutboxState

TOMBSTONE_PREFIX = "erased:"


@dataclass(frozen=True)
class Erased:
    """What an erasure removed, as counts (for the person's confirmation and the audit log)."""

    items: int = 0
    attachments: int = 0
    replies: int = 0
    registrations: int = 0
    subscriptions: int = 0
    queued_messages: int = 0

    def __add__(self, other: Erased) -> Erased:
        return Erased(
            items=self.items + other.items,
            attachments=self.attachments + other.attachments,
            replies=self.replies + other.replies,
            registrations=self.registrations + other.registrations,
            subscriptions=self.subscriptions + other.subscriptions,
            queued_messages=self.queued_messages + other.queued_messages,
        )

    def describe(self) -> str:
        """For the audit log: counts only."""
        return (
            f"items={self.items} attachments={self.attachments} replies={self.replies} "
            f"registrations={self.registrations} subscriptions={self.subscriptions} "
            f"queued={self.queued_messages}"
        )


async def anonymise_items(session: AsyncSession, item_ids: list[int], now: datetime) -> Erased:
    """Remove text, attachments, replies and the quoted message of these items; keep codes."""
    if not item_ids:
        return Erased()
    attachments = await _deleted(
        session, delete(Attachment).where(Attachment.item_id.in_(item_ids))
    )
    replies = await _deleted(
        session,
        update(Reply).where(Reply.item_id.in_(item_ids), Reply.text != "").values(text=""),
    )
    items = await _deleted(
        session,
        update(FeedbackItem)
        .where(FeedbackItem.id.in_(item_ids), FeedbackItem.erased_at.is_(None))
        .values(
            text="",
            source_message_id=None,
            contact_wanted=None,
            # The suggestion keeps its codes (the record holds no text) and stays reviewable.
            erased_at=now,
        )
        .execution_options(synchronize_session=False),
    )
    return Erased(items=items, attachments=attachments, replies=replies)


async def erase_contact(session: AsyncSession, contact: Contact, now: datetime) -> Erased:
    """The person's /delete, or the retention period of an inactive contact."""
    item_ids = list(
        await session.scalars(select(FeedbackItem.id).where(FeedbackItem.contact_id == contact.id))
    )
    erased = await anonymise_items(session, item_ids, now)
    registrations = await _deleted(
        session, delete(Registration).where(Registration.contact_id == contact.id)
    )
    stopped = await stop_contact(session, contact, now)
    contact.pseudonym = TOMBSTONE_PREFIX + secrets.token_hex(16)
    contact.language = None
    contact.language_chosen = False
    contact.recent_languages = None
    contact.consent_version = None
    contact.consent_at = None
    contact.consent_withdrawn_at = None
    contact.area_code = None
    contact.area_name = None
    contact.last_seen_at = None
    contact.unreachable_at = contact.unreachable_at or now
    contact.erased_at = now
    await session.flush()
    return erased + stopped + Erased(registrations=registrations)


async def withdraw_consent(session: AsyncSession, contact: Contact, now: datetime) -> Erased:
    """Stop: no more messages, no chat address, no subscriptions; what they sent stays until
    /delete or retention. Agreeing again later starts afresh with the same contact."""
    stopped = await stop_contact(session, contact, now)
    contact.consent_at = None
    contact.consent_withdrawn_at = now
    await session.flush()
    return stopped


async def stop_contact(session: AsyncSession, contact: Contact, now: datetime) -> Erased:
    """Forget how to reach the contact: address, subscriptions, broadcasts still queued."""
    subscriptions = await _deleted(
        session, delete(Subscription).where(Subscription.contact_id == contact.id)
    )
    await session.execute(delete(ContactAddress).where(ContactAddress.contact_id == contact.id))
    queued = await _deleted(
        session,
        update(OutboxMessage)
        .where(
            OutboxMessage.contact_id == contact.id,
            OutboxMessage.state == OutboxState.QUEUED.value,
        )
        .values(state=OutboxState.CANCELLED.value),
    )
    # The relationships loaded on the contact must not resurrect what was just deleted.
    session.expire(contact, ["address", "subscriptions"])
    return Erased(subscriptions=subscriptions, queued_messages=queued)


async def _deleted(session: AsyncSession, statement: object) -> int:
    result = await session.execute(statement)  # type: ignore[call-overload]
    return int(getattr(result, "rowcount", 0) or 0)
