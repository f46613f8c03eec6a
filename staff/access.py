"""Adding staff, linking their Telegram account with a one-time code, checking roles."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from staff.models import LinkCode, Role, StaffMember

CODE_LIFETIME = timedelta(hours=24)
# No 0/O, 1/I/L: codes are read aloud and typed on small keyboards.
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_PATTERN = re.compile(r"STAFF-[A-Z0-9]{4}-[A-Z0-9]{4}", re.IGNORECASE)


@dataclass(frozen=True)
class IssuedCode:
    staff_id: int
    code: str
    expires_at: datetime


def _hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


def new_code() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"STAFF-{body[:4]}-{body[4:]}"


async def add_staff(session: AsyncSession, name: str, role: Role, now: datetime) -> IssuedCode:
    member = StaffMember(name=name, role=role, created_at=now)
    session.add(member)
    await session.flush()
    return await issue_code(session, member, now)


async def issue_code(session: AsyncSession, member: StaffMember, now: datetime) -> IssuedCode:
    code = new_code()
    expires_at = now + CODE_LIFETIME
    session.add(LinkCode(code_hash=_hash(code), staff_id=member.id, expires_at=expires_at))
    return IssuedCode(staff_id=member.id, code=code, expires_at=expires_at)


async def redeem_code(
    session: AsyncSession, code: str, pseudonym: str, now: datetime
) -> StaffMember | None:
    """Link the account behind `pseudonym` to the code's staff member; None if the code is bad."""
    link = await session.scalar(select(LinkCode).where(LinkCode.code_hash == _hash(code)))
    if link is None or link.used_at is not None or link.expires_at <= now:
        return None
    member = await session.get(StaffMember, link.staff_id)
    if member is None or not member.active:
        return None
    # One account per staff member and one staff member per account.
    previous = await find_staff(session, pseudonym)
    if previous is not None and previous.id != member.id:
        previous.telegram_pseudonym = None
        await session.flush()
    link.used_at = now
    member.telegram_pseudonym = pseudonym
    member.linked_at = now
    return member


class StaffError(ValueError):
    """No such staff member, or not one this change applies to."""


async def change_role(session: AsyncSession, staff_id: int, role: Role) -> tuple[StaffMember, Role]:
    """Give an active staff member another role; (the member, their former role). Sessions
    and tokens read the member on every request, so the new role applies at once."""
    member = await _active(session, staff_id)
    former = member.role
    member.role = role
    await session.flush()
    return member, former


async def deactivate(session: AsyncSession, staff_id: int) -> StaffMember:
    """End a staff member's access: Telegram commands, dashboard sessions and API tokens stop
    at once (each checks `active`). The row stays, so the audit log keeps naming them."""
    member = await _active(session, staff_id)
    member.active = False
    await session.flush()
    return member


async def reissue_code(session: AsyncSession, staff_id: int, now: datetime) -> IssuedCode:
    """A new one-time code for an active staff member; their earlier unused codes stop
    working, so only the code just handed over can link an account."""
    member = await _active(session, staff_id)
    await session.execute(
        update(LinkCode)
        .where(
            LinkCode.staff_id == member.id, LinkCode.used_at.is_(None), LinkCode.expires_at > now
        )
        .values(expires_at=now)
    )
    return await issue_code(session, member, now)


async def _active(session: AsyncSession, staff_id: int) -> StaffMember:
    member = await session.get(StaffMember, staff_id)
    if member is None:
        raise StaffError(f"no staff member {staff_id}")
    if not member.active:
        raise StaffError(f"staff member {staff_id} is not active")
    return member


async def find_staff(session: AsyncSession, pseudonym: str) -> StaffMember | None:
    return await session.scalar(
        select(StaffMember).where(
            StaffMember.telegram_pseudonym == pseudonym, StaffMember.active.is_(True)
        )
    )


async def list_staff(session: AsyncSession) -> list[StaffMember]:
    return list(await session.scalars(select(StaffMember).order_by(StaffMember.id)))


def allowed(member: StaffMember | None, roles: frozenset[Role]) -> bool:
    """Admins may do everything; others only what their role is named for."""
    if member is None or not member.active:
        return False
    return member.role is Role.ADMIN or member.role in roles
