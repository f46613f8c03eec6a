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

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from evacuation.registrations import Registration
from feedback.items import Attachment, FeedbackItem
from feedback.replies import Reply
from inbox.conversations import ConversationState
from inbox.updates import InboxUpdate
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
    return await _anonymise(session, FeedbackItem.id.in_(item_ids), now)


async def _anonymise(session: AsyncSession, which: ColumnElement[bool], now: datetime) -> Erased:
    items = select(FeedbackItem.id).where(which).scalar_subquery()
    attachments = await _deleted(session, delete(Attachment).where(Attachment.item_id.in_(items)))
    replies = await _deleted(
        session,
        update(Reply).where(Reply.item_id.in_(items), Reply.text != "").values(text=""),
    )
    anonymised = await _deleted(
        session,
        update(FeedbackItem)
        .where(which, FeedbackItem.erased_at.is_(None))
        # The suggestion keeps its codes (the record holds no text) and stays reviewable.
        .values(text="", source_message_id=None, contact_wanted=None, erased_at=now)
        .execution_options(synchronize_session=False),
    )
    return Erased(items=anonymised, attachments=attachments, replies=replies)


async def erase_contact(session: AsyncSession, contact: Contact, now: datetime) -> Erased:
    """The person's /delete, or the retention period of an inactive contact."""
    erased = await erase_contacts(session, [contact.id], now)
    await session.refresh(contact)
    return erased


async def erase_contacts(session: AsyncSession, ids: list[int], now: datetime) -> Erased:
    """Erase these contacts in a few set-based statements (the retention job's batches):
    each becomes a tombstone with a random pseudonym and every other field emptied."""
    if not ids:
        return Erased()
    erased = await _anonymise(session, FeedbackItem.contact_id.in_(ids), now)
    registrations = await _deleted(
        session, delete(Registration).where(Registration.contact_id.in_(ids))
    )
    await _forget_updates(session, ids)
    stopped = await _stop(session, ids)
    await session.execute(
        update(Contact)
        .where(Contact.id.in_(ids))
        .values(
            language=None,
            language_chosen=False,
            recent_languages=None,
            consent_version=None,
            consent_at=None,
            consent_withdrawn_at=None,
            area_code=None,
            area_name=None,
            last_seen_at=None,
            unreachable_at=func.coalesce(Contact.unreachable_at, now),
            erased_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    # One random pseudonym each: not the keyed hash, so nothing leads back to the person.
    await session.execute(
        update(Contact),
        [{"id": i, "pseudonym": TOMBSTONE_PREFIX + secrets.token_hex(16)} for i in ids],
    )
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
    stopped = await _stop(session, [contact.id])
    # The relationships loaded on the contact must not resurrect what was just deleted.
    session.expire(contact, ["address", "subscriptions"])
    return stopped


async def _forget_updates(session: AsyncSession, ids: list[int]) -> None:
    """The webhook's copies of what they sent (kept a day after processing to recognise
    repeats) and their open questions. Updates not processed yet stay until they are."""
    chats = select(ContactAddress.chat_id).where(ContactAddress.contact_id.in_(ids))
    await session.execute(
        delete(InboxUpdate).where(
            InboxUpdate.chat_key.in_(chats), InboxUpdate.processed_at.is_not(None)
        )
    )
    await session.execute(delete(ConversationState).where(ConversationState.chat_id.in_(chats)))


async def _stop(session: AsyncSession, ids: list[int]) -> Erased:
    subscriptions = await _deleted(
        session, delete(Subscription).where(Subscription.contact_id.in_(ids))
    )
    await session.execute(delete(ContactAddress).where(ContactAddress.contact_id.in_(ids)))
    queued = await _deleted(
        session,
        update(OutboxMessage)
        .where(
            OutboxMessage.contact_id.in_(ids),
            OutboxMessage.state == OutboxState.QUEUED.value,
        )
        .values(state=OutboxState.CANCELLED.value),
    )
    return Erased(subscriptions=subscriptions, queued_messages=queued)


async def _deleted(session: AsyncSession, statement: object) -> int:
    result = await session.execute(statement)  # type: ignore[call-overload]
    return int(getattr(result, "rowcount", 0) or 0)
