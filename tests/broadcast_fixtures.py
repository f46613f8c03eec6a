"""Subscribers and broadcasts set up directly in the database, for broadcast and sender tests."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from messages.broadcasts import Audience, Broadcast, Draft, Priority, create, enqueue
from messages.contacts import Contact, ContactAddress, Subscription

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
FIRST_CHAT = 3_000_001


async def add_subscriber(
    session: AsyncSession,
    number: int,
    *,
    language: str | None = "en",
    topics: tuple[str, ...] = ("alerts",),
    area: str | None = None,
    consented: bool = True,
    reachable: bool = True,
    address: bool = True,
) -> Contact:
    """Contact `number` with chat id FIRST_CHAT + number."""
    contact = Contact(
        pseudonym=f"p{number}",
        language=language,
        consent_at=NOW if consented else None,
        consent_version="test" if consented else None,
        unreachable_at=None if reachable else NOW,
        created_at=NOW,
    )
    session.add(contact)
    await session.flush()
    if address:
        session.add(ContactAddress(contact_id=contact.id, chat_id=FIRST_CHAT + number))
    for topic in topics:
        session.add(Subscription(contact_id=contact.id, topic=topic, area=area, created_at=NOW))
    await session.flush()
    return contact


async def queued_broadcast(
    session: AsyncSession,
    texts: dict[str, str] | None = None,
    topics: tuple[str, ...] = ("alerts",),
    *,
    priority: Priority = Priority.NORMAL,
    send_at: datetime | None = None,
    now: datetime = NOW,
    **draft: object,
) -> Broadcast:
    broadcast = await create(
        session,
        Draft(
            texts or {"en": "Shelter A is closed.", "ar": "الملجأ أ مغلق."},
            Audience(topics),
            priority=priority,
            send_at=send_at,
            **draft,  # type: ignore[arg-type]
        ),
        None,
        now,
    )
    await enqueue(session, broadcast, now, "en")
    return broadcast
