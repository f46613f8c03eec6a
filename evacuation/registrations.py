"""Registrations for evacuation or transport (MCOF sector 3, transport assistance).

One registration per contact: registering again changes the existing one.

Lifecycle of `Registration.status`:

- (none) → ``draft``: the person starts registering; every answer is saved at once, so a
  restart or a phone that dies halfway loses nothing.
- ``draft`` → ``submitted``: they confirm the review; a reference code is issued and they
  are subscribed to evacuation news (messages/subscriptions.py) unless they hear it already.
- ``draft`` → (deleted): they cancel, decline to share with the transport partner, or leave
  it untouched for longer than the draft retention (`purge_stale_drafts`).
- ``submitted`` → ``submitted``: they change an answer (`/myregistration`); the reference
  stays the same.
- ``submitted`` → ``cancelled``: they cancel; the phone number and location are erased.
- ``cancelled`` → ``draft``: they register again; answers start afresh, a new reference
  is issued on confirmation.

`step` is the conversation state while the person is inside the registration conversation,
and None when they are not (never started it, paused it, or finished).
"""

from __future__ import annotations

import enum
import re
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from messages.i18n import N_
from messages.subscriptions import subscribe
from storage.base import Base, UtcDateTime, utcnow
from storage.references import new_reference, normalize_reference

MAX_PER_AGE_GROUP = 30
MAX_TEXT = 120
COORDINATE_DECIMALS = 3  # about 100 m: enough to plan a pick-up, no more


class RegistrationStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    CANCELLED = "cancelled"


class AgeGroup(enum.Enum):
    CHILDREN = ("children", N_("Children (under 18)"))
    ADULTS = ("adults", N_("Adults (18 to 59)"))
    OLDER = ("older", N_("Older people (60 and over)"))

    def __init__(self, key: str, label: str) -> None:
        self.key = key
        self.label = label


class Documents(enum.Enum):
    ALL = ("all", N_("Yes, everyone"))
    SOME = ("some", N_("Some of us"))
    NONE = ("none", N_("No"))

    def __init__(self, key: str, label: str) -> None:
        self.key = key
        self.label = label


class Need(enum.Enum):
    MEDICAL = ("medical", "🩺", N_("Medical care"))
    DISABILITY = ("disability", "♿", N_("Disability"))
    PREGNANCY = ("pregnancy", "🤰", N_("Pregnancy"))
    UNACCOMPANIED_CHILD = ("unaccompanied_child", "🧒", N_("Child without parents"))
    OLDER_PERSON = ("older_person", "🧓", N_("Older person needing help"))

    def __init__(self, key: str, icon: str, label: str) -> None:
        self.key = key
        self.icon = icon
        self.label = label


Keyed = TypeVar("Keyed", AgeGroup, Documents, Need)


def by_key(kind: type[Keyed], key: str) -> Keyed | None:
    return next((member for member in kind if member.key == key), None)


class Registration(Base):
    __tablename__ = "registrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), unique=True
    )
    reference: Mapped[str | None] = mapped_column(String(16), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=RegistrationStatus.DRAFT.value)
    step: Mapped[str | None] = mapped_column(String(24))
    # Once the review was shown, each answer returns to it instead of the next question.
    reviewing: Mapped[bool] = mapped_column(default=False)
    for_household: Mapped[bool | None] = mapped_column()
    children: Mapped[int] = mapped_column(Integer, default=0)
    adults: Mapped[int] = mapped_column(Integer, default=0)
    older: Mapped[int] = mapped_column(Integer, default=0)
    nationality: Mapped[str | None] = mapped_column(String(8))  # ISO 3166 alpha-2, or "none"
    documents: Mapped[str | None] = mapped_column(String(8))
    needs: Mapped[list[str] | None] = mapped_column(JSON)
    location_text: Mapped[str | None] = mapped_column(String(MAX_TEXT))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    departure_point_id: Mapped[int | None] = mapped_column(
        ForeignKey("places.id", ondelete="SET NULL")
    )
    destination: Mapped[str | None] = mapped_column(String(MAX_TEXT))
    phone: Mapped[str | None] = mapped_column(String(24))
    consent_share: Mapped[bool | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    @property
    def people(self) -> int:
        return self.children + self.adults + self.older

    @property
    def submitted(self) -> bool:
        return self.status == RegistrationStatus.SUBMITTED

    @property
    def need_list(self) -> list[Need]:
        found = (by_key(Need, key) for key in self.needs or [])
        return [need for need in found if need is not None]

    def count(self, group: AgeGroup) -> int:
        value: int = getattr(self, group.key)
        return value

    def set_count(self, group: AgeGroup, value: int) -> None:
        setattr(self, group.key, max(0, min(MAX_PER_AGE_GROUP, value)))


async def find_registration(session: AsyncSession, contact_id: int) -> Registration | None:
    return await session.scalar(select(Registration).where(Registration.contact_id == contact_id))


async def find_by_reference(session: AsyncSession, reference: str) -> Registration | None:
    return await session.scalar(
        select(Registration).where(Registration.reference == normalize_reference(reference))
    )


async def start_registration(session: AsyncSession, contact_id: int, now: datetime) -> Registration:
    """A fresh draft, or the existing registration (a draft to resume, a submitted one to
    change). A cancelled registration starts over."""
    registration = await find_registration(session, contact_id)
    if registration is None:
        registration = Registration(contact_id=contact_id, created_at=now, updated_at=now)
        session.add(registration)
        await session.flush()
    elif registration.status == RegistrationStatus.CANCELLED:
        reset(registration, now)
    return registration


def reset(registration: Registration, now: datetime) -> None:
    """Back to an empty draft (start again, or register after cancelling)."""
    registration.status = RegistrationStatus.DRAFT.value
    registration.reference = None
    registration.reviewing = False
    registration.for_household = None
    registration.children = registration.adults = registration.older = 0
    registration.nationality = registration.documents = None
    registration.needs = None
    registration.location_text = None
    registration.latitude = registration.longitude = None
    registration.departure_point_id = None
    registration.destination = registration.phone = None
    registration.consent_share = None
    registration.created_at = registration.updated_at = now
    registration.submitted_at = registration.cancelled_at = None


def set_location(
    registration: Registration, text: str | None, latitude: float | None, longitude: float | None
) -> None:
    registration.location_text = clean_text(text) if text else None
    if latitude is None or longitude is None:
        registration.latitude = registration.longitude = None
    else:
        registration.latitude = round(latitude, COORDINATE_DECIMALS)
        registration.longitude = round(longitude, COORDINATE_DECIMALS)


def clean_text(text: str) -> str:
    """One line, no control characters, at most MAX_TEXT characters."""
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(printable.split())[:MAX_TEXT]


PHONE = re.compile(r"^\+?[0-9]{6,15}$")


def normalize_phone(text: str) -> str | None:
    """A phone number as digits with an optional leading +; None if it cannot be one."""
    compact = re.sub(r"[\s().\-]", "", text.strip())
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    return compact if PHONE.match(compact) else None


def missing_answers(registration: Registration) -> list[str]:
    """The steps still unanswered, in order; empty when the registration can be confirmed."""
    missing = []
    if registration.for_household is None:
        missing.append("scope")
    if registration.people == 0:
        missing.append("people")
    if registration.nationality is None:
        missing.append("nationality")
    if registration.documents is None:
        missing.append("documents")
    if registration.needs is None:
        missing.append("needs")
    if registration.location_text is None and registration.latitude is None:
        missing.append("location")
    if registration.destination is None:
        missing.append("destination")
    if registration.consent_share is not True:
        missing.append("consent")
    return missing


async def submit(session: AsyncSession, registration: Registration, now: datetime) -> None:
    """Confirm: issue a reference the first time; a later confirmation keeps it.

    The first confirmation also subscribes the person to evacuation news everywhere, unless
    they already hear it (in any area); a later change never undoes a "Stop" they tapped."""
    if missing_answers(registration):
        raise ValueError(f"registration is incomplete: {missing_answers(registration)}")
    if registration.reference is None:
        registration.reference = await _unused_reference(session)
        registration.submitted_at = now
        await subscribe(session, registration.contact_id, "evacuation")
    registration.status = RegistrationStatus.SUBMITTED.value
    registration.step = None
    registration.reviewing = False
    registration.updated_at = now


async def _unused_reference(session: AsyncSession) -> str:
    while True:
        reference = new_reference()
        if await session.scalar(select(Registration.id).where(Registration.reference == reference)):
            continue
        return reference


async def discard_draft(session: AsyncSession, registration: Registration) -> None:
    """A draft the person gave up: keep nothing of it."""
    await session.delete(registration)


def cancel(registration: Registration, now: datetime) -> None:
    """Withdraw a submitted registration, erasing what identifies or locates the person."""
    registration.status = RegistrationStatus.CANCELLED.value
    registration.cancelled_at = now
    registration.updated_at = now
    registration.step = None
    registration.phone = None
    registration.location_text = None
    registration.latitude = registration.longitude = None


async def purge_stale_drafts(session: AsyncSession, idle_for: timedelta, now: datetime) -> int:
    """Delete drafts nobody touched for `idle_for` (collect less); how many went."""
    result = await session.execute(
        delete(Registration).where(
            Registration.status == RegistrationStatus.DRAFT.value,
            Registration.updated_at < now - idle_for,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def open_steps(session: AsyncSession) -> list[tuple[int, str]]:
    """(contact id, step) of everyone inside the conversation: what a restart restores."""
    rows = await session.execute(
        select(Registration.contact_id, Registration.step).where(Registration.step.is_not(None))
    )
    return [(contact_id, step) for contact_id, step in rows if step is not None]
