"""The audit log: who looked at, exported, changed, answered or erased what, and when.

Admins read it (dashboard /audit, `crisis-comms audit`). An event names its actor (a staff
member, the command line, a person using their data rights, or the system's own jobs), the
action, and a target such as an item reference or a staff id; never what anybody wrote,
and never a person's pseudonym (an erasure must not leave a trail back to who asked).
Per-item trails stay in feedback/review.py (``ItemEvent``); every such event is also written
here, so this log alone answers "what did this staff member do this week?".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from staff.models import StaffMember
from storage.base import Base, UtcDateTime

MAX_DETAIL = 120


class Actor(enum.StrEnum):
    STAFF = "staff"
    CLI = "cli"  # the deployment's command line (adding staff, setting passwords)
    PERSON = "person"  # someone using their data rights: never identified here
    SYSTEM = "system"  # scheduled jobs (retention)


class Action(enum.StrEnum):
    VIEW = "view"  # an item opened
    STATUS = "status"
    CORRECTION = "correction"
    REPLY = "reply"
    ACKNOWLEDGE = "ack"  # a protection alert acknowledged
    EXPORT = "export"  # items, manifests, aggregates downloaded
    ROLE_CHANGE = "role_change"
    STAFF_ADDED = "staff_added"
    STAFF_DEACTIVATED = "staff_deactivated"
    PASSWORD_SET = "password_set"
    LINK_CODE = "link_code"  # a one-time code issued
    STAFF_LINKED = "staff_linked"
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    BROADCAST = "broadcast"  # sent or cancelled
    CONSENT_WITHDRAWN = "consent_withdrawn"
    ERASURE = "erasure"  # a person's /delete
    RETENTION = "retention"  # the scheduled job's deletions, as counts
    AUDIT_VIEW = "audit_view"


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(16))
    staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_members.id", ondelete="SET NULL"), index=True
    )
    action: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str | None] = mapped_column(String(64))  # "F-7K2Q", "staff:3", "items.csv"
    detail: Mapped[str | None] = mapped_column(String(MAX_DETAIL))  # e.g. "viewer>responder"


async def record(
    session: AsyncSession,
    action: Action,
    now: datetime,
    *,
    staff_id: int | None = None,
    actor: Actor | None = None,
    target: str | None = None,
    detail: str | None = None,
) -> None:
    """Add one event to the session (committed with the change it records)."""
    who = actor or (Actor.STAFF if staff_id is not None else Actor.SYSTEM)
    session.add(
        AuditEvent(
            at=now,
            actor=who.value,
            staff_id=staff_id,
            action=action.value,
            target=target[:64] if target else None,
            detail=detail[:MAX_DETAIL] if detail else None,
        )
    )
    await session.flush()


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    staff_name: str | None
    staff_id: int | None
    action: str
    target: str | None
    detail: str | None


async def recent(
    session: AsyncSession,
    *,
    limit: int = 100,
    before_id: int | None = None,
    action: str | None = None,
    staff_id: int | None = None,
) -> list[tuple[int, AuditEntry]]:
    """Newest first, ``limit`` at a time; ``before_id`` pages further back."""
    query = (
        select(AuditEvent, StaffMember.name)
        .outerjoin(StaffMember, StaffMember.id == AuditEvent.staff_id)
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if staff_id is not None:
        query = query.where(AuditEvent.staff_id == staff_id)
    rows = await session.execute(query)
    return [
        (
            event.id,
            AuditEntry(
                at=event.at,
                actor=event.actor,
                staff_name=name,
                staff_id=event.staff_id,
                action=event.action,
                target=event.target,
                detail=event.detail,
            ),
        )
        for event, name in rows
    ]
