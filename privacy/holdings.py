"""What we hold about a person: everything stored under their contact, for their /mydata.

Read in one transaction and returned as plain frozen data, so that the bot can render it
after the session is closed and nothing here knows about Telegram. It is the person's own
data shown back to them, so it includes what they wrote and the replies they received;
the things we keep only as counts (rollups) or only about staff (audit, item events) are
not about them and are not listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from evacuation.registrations import Registration
from feedback.items import Attachment, FeedbackItem
from feedback.replies import Reply
from messages.contacts import Contact
from messages.places import Place
from messages.subscriptions import Subscriptions, subscriptions_of

# Registration columns that say nothing about the person (row keys, the conversation's place).
_REGISTRATION_INTERNAL = frozenset({"id", "contact_id", "step", "reviewing"})


@dataclass(frozen=True)
class HeldReply:
    """A responder's reply that reached the person."""

    item_reference: str
    delivered_at: datetime
    text: str


@dataclass(frozen=True)
class HeldItem:
    """One thing the person told us (a message, a need pick, a voice note or file)."""

    reference: str
    created_at: datetime
    status: str
    text: str
    attachments: int
    needs: tuple[str, ...]  # need keys they picked (feedback/needs.py)
    erased_at: datetime | None  # the text was already erased (retention)
    replies: tuple[HeldReply, ...]


@dataclass(frozen=True)
class HeldRegistration:
    """The evacuation registration, every column as stored (internal keys left out)."""

    fields: Mapping[str, object]
    departure_point: Mapping[str, str] | None  # the assigned point's names by language

    def get(self, name: str) -> object:
        return self.fields.get(name)


@dataclass(frozen=True)
class Holdings:
    language: str | None
    language_chosen: bool
    consent_version: str | None
    consent_at: datetime | None
    consent_withdrawn_at: datetime | None
    area_code: str | None
    area_name: str | None
    created_at: datetime
    last_seen_at: datetime | None
    subscriptions: Subscriptions
    items: tuple[HeldItem, ...]
    registration: HeldRegistration | None

    @property
    def replies_received(self) -> tuple[HeldReply, ...]:
        return tuple(reply for item in self.items for reply in item.replies)


async def what_we_hold(session: AsyncSession, contact: Contact) -> Holdings:
    return Holdings(
        language=contact.language,
        language_chosen=contact.language_chosen,
        consent_version=contact.consent_version,
        consent_at=contact.consent_at,
        consent_withdrawn_at=contact.consent_withdrawn_at,
        area_code=contact.area_code,
        area_name=contact.area_name,
        created_at=contact.created_at,
        last_seen_at=contact.last_seen_at,
        subscriptions=await subscriptions_of(session, contact.id),
        items=await _items(session, contact.id),
        registration=await _registration(session, contact.id),
    )


async def _items(session: AsyncSession, contact_id: int) -> tuple[HeldItem, ...]:
    rows = list(
        await session.execute(
            select(
                FeedbackItem.id,
                FeedbackItem.reference,
                FeedbackItem.created_at,
                FeedbackItem.status,
                FeedbackItem.text,
                FeedbackItem.needs,
                FeedbackItem.erased_at,
            )
            .where(FeedbackItem.contact_id == contact_id)
            .order_by(FeedbackItem.created_at, FeedbackItem.id)
        )
    )
    ids = [row.id for row in rows]
    attachments = await _attachment_counts(session, ids)
    replies = await _replies(session, ids)
    return tuple(
        HeldItem(
            reference=row.reference,
            created_at=row.created_at,
            status=row.status,
            text=row.text,
            attachments=attachments.get(row.id, 0),
            needs=tuple(key for key in (row.needs or "").split(",") if key),
            erased_at=row.erased_at,
            replies=tuple(
                HeldReply(row.reference, at, text) for at, text in replies.get(row.id, [])
            ),
        )
        for row in rows
    )


async def _attachment_counts(session: AsyncSession, item_ids: list[int]) -> dict[int, int]:
    if not item_ids:
        return {}
    rows = await session.execute(
        select(Attachment.item_id, func.count())
        .where(Attachment.item_id.in_(item_ids))
        .group_by(Attachment.item_id)
    )
    return {item_id: int(count) for item_id, count in rows}


async def _replies(
    session: AsyncSession, item_ids: list[int]
) -> dict[int, list[tuple[datetime, str]]]:
    """Delivered replies with their text (an erased reply's text is "": nothing to show)."""
    if not item_ids:
        return {}
    rows = await session.execute(
        select(Reply.item_id, Reply.delivered_at, Reply.text)
        .where(
            Reply.item_id.in_(item_ids),
            Reply.delivered_at.is_not(None),
            Reply.text != "",
        )
        .order_by(Reply.delivered_at, Reply.id)
    )
    found: dict[int, list[tuple[datetime, str]]] = {}
    for item_id, delivered_at, text in rows:
        if delivered_at is not None:  # always, by the query; for the type checker
            found.setdefault(item_id, []).append((delivered_at, text))
    return found


async def _registration(session: AsyncSession, contact_id: int) -> HeldRegistration | None:
    registration = await session.scalar(
        select(Registration).where(Registration.contact_id == contact_id)
    )
    if registration is None:
        return None
    fields = {
        column.key: getattr(registration, column.key)
        for column in Registration.__mapper__.column_attrs
        if column.key not in _REGISTRATION_INTERNAL
    }
    point = None
    if registration.departure_point_id is not None:
        place = await session.get(Place, registration.departure_point_id)
        point = dict(place.names) if place is not None else None
    return HeldRegistration(MappingProxyType(fields), point)
