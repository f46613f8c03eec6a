"""Staff members and their roles, and the one-time codes that link a Telegram account."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, UtcDateTime, utcnow


class Role(enum.StrEnum):
    ADMIN = "admin"
    COMMUNICATIONS_OFFICER = "communications_officer"
    RESPONDER = "responder"
    PROTECTION_FOCAL_POINT = "protection_focal_point"
    VIEWER = "viewer"


class StaffMember(Base):
    __tablename__ = "staff_members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=32, values_callable=lambda e: [r.value for r in e])
    )
    # The pseudonym of the linked Telegram account (same keyed hash as contacts); no raw id.
    telegram_pseudonym: Mapped[str | None] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    linked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Dashboard login: an argon2 hash (staff/passwords.py); None until an admin sets one.
    password_hash: Mapped[str | None] = mapped_column(String(255))


class LinkCode(Base):
    """A one-time code an admin hands to a staff member; stored only as a hash."""

    __tablename__ = "staff_link_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_members.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
