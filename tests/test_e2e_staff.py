"""End to end: staff link their account with a one-time code; staff commands check the role."""

from __future__ import annotations

from staff.access import add_staff
from staff.models import Role
from storage.base import utcnow
from tests.phone import Phone
from tests.sandbox_fixtures import RunningBot
from tests.test_e2e_bad_input import UNKNOWN


async def issue(bot: RunningBot, name: str, role: Role) -> str:
    async with bot.services.db.transaction() as session:
        return (await add_staff(session, name, role, utcnow())).code


async def test_staff_commands_look_unknown_to_everyone_else(phone: Phone) -> None:
    for command in ("/whoami", "/stafflist"):
        answer = await phone.send(command)
        assert answer.text == UNKNOWN


async def test_linking_and_role_checks(phone: Phone, running_bot: RunningBot) -> None:
    code = await issue(running_bot, "Rana Haddad", Role.RESPONDER)
    linked = await phone.send(f"my code is {code}")
    assert linked.text == "Linked: Rana Haddad, role responder. Send /whoami to check."
    assert (await phone.send("/whoami")).text == "Rana Haddad · responder"
    assert (await phone.send("/stafflist")).text == UNKNOWN, "admin only"
    reused = await phone.send(code)
    assert "not valid" in (reused.text or "")


async def test_admin_lists_staff(phone: Phone, running_bot: RunningBot) -> None:
    await issue(running_bot, "Viewer One", Role.VIEWER)
    code = await issue(running_bot, "Admin One", Role.ADMIN)
    await phone.send(code)
    listing = await phone.send("/stafflist")
    assert listing.text == "1. Viewer One · viewer · not linked\n2. Admin One · admin · linked"


async def test_a_made_up_code_is_refused(phone: Phone) -> None:
    answer = await phone.send("STAFF-ABCD-EFGH")
    assert "not valid" in (answer.text or "")
