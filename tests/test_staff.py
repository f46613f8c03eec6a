"""Staff: one-time link codes and role checks, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from staff.access import (
    CODE_PATTERN,
    StaffError,
    add_staff,
    allowed,
    deactivate,
    find_staff,
    redeem_code,
    reissue_code,
)
from staff.models import Role, StaffMember
from storage.database import Database

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


async def test_code_links_once(database: Database) -> None:
    async with database.transaction() as session:
        issued = await add_staff(session, "Rana", Role.RESPONDER, NOW)
    assert CODE_PATTERN.fullmatch(issued.code)
    async with database.transaction() as session:
        member = await redeem_code(session, issued.code.lower(), "staff-pseudonym", NOW)
        assert member is not None and member.role is Role.RESPONDER
    async with database.transaction() as session:
        assert await redeem_code(session, issued.code, "someone-else", NOW) is None
        linked = await find_staff(session, "staff-pseudonym")
        assert linked is not None and linked.name == "Rana"
        assert await find_staff(session, "someone-else") is None


async def test_expired_and_unknown_codes_fail(database: Database) -> None:
    async with database.transaction() as session:
        issued = await add_staff(session, "Omar", Role.VIEWER, NOW)
    later = NOW + timedelta(hours=24, seconds=1)
    async with database.transaction() as session:
        assert await redeem_code(session, issued.code, "p", later) is None
        assert await redeem_code(session, "STAFF-AAAA-BBBB", "p", NOW) is None


async def test_a_reissued_code_links_and_the_earlier_one_stops(database: Database) -> None:
    async with database.transaction() as session:
        first = await add_staff(session, "Rana", Role.RESPONDER, NOW)
    later = NOW + timedelta(hours=30)  # the first code expired unused
    async with database.transaction() as session:
        second = await reissue_code(session, first.staff_id, later)
        third = await reissue_code(session, first.staff_id, later)
    assert second.code != third.code and third.expires_at == later + timedelta(hours=24)
    async with database.transaction() as session:
        assert await redeem_code(session, first.code, "p", later) is None, "expired"
        assert await redeem_code(session, second.code, "p", later) is None, "replaced"
        member = await redeem_code(session, third.code, "new-phone", later)
        assert member is not None and member.id == first.staff_id
    async with database.transaction() as session:
        await deactivate(session, first.staff_id)
    async with database.transaction() as session:
        with pytest.raises(StaffError, match="not active"):
            await reissue_code(session, first.staff_id, later)
        with pytest.raises(StaffError, match="no staff member 99"):
            await reissue_code(session, 99, later)


async def test_an_account_moves_to_the_newest_code(database: Database) -> None:
    async with database.transaction() as session:
        first = await add_staff(session, "First", Role.VIEWER, NOW)
        second = await add_staff(session, "Second", Role.ADMIN, NOW)
    async with database.transaction() as session:
        await redeem_code(session, first.code, "same-account", NOW)
    async with database.transaction() as session:
        await redeem_code(session, second.code, "same-account", NOW)
    async with database.transaction() as session:
        member = await find_staff(session, "same-account")
        assert member is not None and member.name == "Second"


async def test_roles(database: Database) -> None:
    async with database.transaction() as session:
        await add_staff(session, "V", Role.VIEWER, NOW)
        admin = await add_staff(session, "A", Role.ADMIN, NOW)
        await redeem_code(session, admin.code, "admin-p", NOW)
        admin_member = await find_staff(session, "admin-p")
    officers = frozenset({Role.COMMUNICATIONS_OFFICER})
    assert allowed(admin_member, officers)
    assert not allowed(None, officers)
    viewer = StaffMember(name="V", role=Role.VIEWER, active=True)
    officer = StaffMember(name="O", role=Role.COMMUNICATIONS_OFFICER, active=True)
    assert not allowed(viewer, officers)
    assert allowed(officer, officers)
    officer.active = False
    assert not allowed(officer, officers)
