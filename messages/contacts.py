"""Contacts: the people who write to the bot, known only by a pseudonymous id.

A contact exists only once the person has consented; before that nothing is stored.
The chat id needed to send is kept in `contact_addresses`, apart from the contact row that
analytics and reports read, so that a report can never carry it by accident.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, UtcDateTime, utcnow

CONSENT_VERSION = "2026-11-v2"


@dataclass(frozen=True)
class Pseudonymizer:
    """Keyed hash of a channel's user id: stable for a deployment, useless without the key."""

    key: bytes

    def __call__(self, channel: str, user_id: int | str) -> str:
        message = f"{channel}:{user_id}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()[:32]


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    channel: Mapped[str] = mapped_column(String(16), default="telegram")
    language: Mapped[str | None] = mapped_column(String(16))
    # True once the person picked a language themselves; detection never overrides it.
    language_chosen: Mapped[bool] = mapped_column(default=False)
    # Languages detected in the last few messages ("ar,ar,?"), never the messages themselves.
    recent_languages: Mapped[str | None] = mapped_column(String(64))
    consent_version: Mapped[str | None] = mapped_column(String(32))
    consent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # Set when Telegram answers 403 (the person blocked the bot); cleared when they write again.
    unreachable_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The first-level area (adm1) of the person's last place or location lookup, so that what
    # they tell us next can be counted by area; never coordinates (messages/areas.py).
    area_code: Mapped[str | None] = mapped_column(String(32))
    area_name: Mapped[str | None] = mapped_column(String(120))
    # When the person withdrew consent (privacy/erasure.py); cleared if they agree again.
    consent_withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Last time they wrote, to the day (bot/people.py): the retention clock for the contact.
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Set when the contact was erased (/delete or retention): the row is then an anonymous
    # tombstone with a random pseudonym, kept only so that counts stay whole.
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    address: Mapped[ContactAddress | None] = relationship(
        back_populates="contact", cascade="all, delete-orphan", uselist=False
    )
    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="contact", cascade="all, delete-orphan"
    )

    @property
    def has_consented(self) -> bool:
        return self.consent_at is not None


class ContactAddress(Base):
    """Where to send to a contact. Read only by the code that sends."""

    __tablename__ = "contact_addresses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), unique=True
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)

    contact: Mapped[Contact] = relationship(back_populates="address")


class Subscription(Base):
    """A contact's wish to hear about a topic, optionally limited to an area."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("contact_id", "topic", "area"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(32))
    area: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    contact: Mapped[Contact] = relationship(back_populates="subscriptions")


async def find_contact(session: AsyncSession, pseudonym: str) -> Contact | None:
    return await session.scalar(select(Contact).where(Contact.pseudonym == pseudonym))


async def record_consent(
    session: AsyncSession,
    pseudonym: str,
    chat_id: int,
    language: str | None,
    now: datetime,
    version: str = CONSENT_VERSION,
) -> Contact:
    """Create the contact on consent (or renew an existing one's consent)."""
    contact = await find_contact(session, pseudonym)
    if contact is None:
        contact = Contact(pseudonym=pseudonym, language=language, created_at=now)
        session.add(contact)
    contact.consent_version = version
    contact.consent_at = now
    contact.consent_withdrawn_at = None
    contact.last_seen_at = now
    contact.unreachable_at = None
    await _set_address(session, contact, chat_id)
    return contact


async def _set_address(session: AsyncSession, contact: Contact, chat_id: int) -> None:
    await session.flush()
    address = await session.scalar(
        select(ContactAddress).where(ContactAddress.contact_id == contact.id)
    )
    if address is None:
        session.add(ContactAddress(contact_id=contact.id, chat_id=chat_id))
    else:
        address.chat_id = chat_id


SEEN_RESOLUTION = timedelta(days=1)


def touch(contact: Contact, now: datetime) -> None:
    """Note that the person wrote, to the day: the retention clock restarts, and a busy
    person's messages do not each cost a write."""
    if contact.last_seen_at is None or now - contact.last_seen_at >= SEEN_RESOLUTION:
        contact.last_seen_at = now


def choose_language(contact: Contact, code: str) -> None:
    contact.language = code
    contact.language_chosen = True
    contact.recent_languages = None


async def mark_unreachable(session: AsyncSession, pseudonym: str, now: datetime) -> bool:
    """Record that a contact blocked the bot; False when no such contact is stored."""
    contact = await find_contact(session, pseudonym)
    if contact is None:
        return False
    contact.unreachable_at = now
    return True
