"""Staff on Telegram: linking an account with a one-time code, and role-checked commands.

A staff command used by anyone without the role gets exactly the unknown-command answer,
so that the bot does not reveal which commands exist or who is staff.

```mermaid
stateDiagram-v2
    [*] --> Unlinked
    Unlinked --> Linked: sends a valid STAFF-XXXX-XXXX code (one time, 24 h)
    Unlinked --> Unlinked: invalid, used or expired code ("not valid")
    Linked --> Linked: staff commands allowed by the role
```
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.ext import CommandHandler, ContextTypes, MessageHandler, filters

from bot.flows.fallbacks import unknown_command
from bot.people import hinted_language, load_person, pseudonym_of
from bot.services import Handler, services_of
from messages.i18n import translations
from staff import audit
from staff.access import CODE_PATTERN, allowed, find_staff, list_staff, redeem_code
from staff.models import Role, StaffMember

PRIVATE = filters.ChatType.PRIVATE
StaffCallback = Callable[[Update, ContextTypes.DEFAULT_TYPE, StaffMember], Awaitable[None]]
ANY_STAFF = frozenset(Role)


def staff_only(
    roles: frozenset[Role], callback: StaffCallback
) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]:
    async def checked(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        services = services_of(context)
        pseudonym = pseudonym_of(update, services)
        async with services.db.transaction() as session:
            member = None if pseudonym is None else await find_staff(session, pseudonym)
        if not allowed(member, roles):
            await unknown_command(update, context)
            return
        assert member is not None
        await callback(update, context, member)

    return checked


async def link_account(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    assert message is not None and message.text is not None
    match = CODE_PATTERN.search(message.text)
    assert match is not None
    services = services_of(context)
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        member = await redeem_code(session, match.group(0), person.pseudonym, services.clock())
        name, role = (member.name, member.role) if member else ("", None)
        if member is not None:
            await audit.record(
                session,
                audit.Action.STAFF_LINKED,
                services.clock(),
                staff_id=member.id,
                target=f"staff:{member.id}",
            )
    _ = person.gettext
    if role is None:
        text = _(
            "This code is not valid. Codes work once, for 24 hours. Ask your admin for a new one."
        )
    else:
        text = person.format(
            _("Linked: {name}, role {role}. Send /whoami to check."), name=name, role=role.value
        )
    await context.bot.send_message(person.chat_id, text)


async def whoami(update: Update, context: ContextTypes.DEFAULT_TYPE, member: StaffMember) -> None:
    chat = update.effective_chat
    assert chat is not None
    await context.bot.send_message(chat.id, f"{member.name} · {member.role.value}")


async def staff_list(
    update: Update, context: ContextTypes.DEFAULT_TYPE, member: StaffMember
) -> None:
    chat = update.effective_chat
    assert chat is not None
    services = services_of(context)
    _ = translations(hinted_language(update, services)).gettext
    async with services.db.transaction() as session:
        members = await list_staff(session)
    lines = [
        f"{m.id}. {m.name} · {m.role.value} · "
        + (_("linked") if m.telegram_pseudonym else _("not linked"))
        for m in members
    ]
    await context.bot.send_message(chat.id, "\n".join(lines))


def handlers() -> list[Handler]:
    return [
        MessageHandler(PRIVATE & filters.Regex(CODE_PATTERN), link_account),
        CommandHandler("whoami", staff_only(ANY_STAFF, whoami), filters=PRIVATE),
        CommandHandler(
            "stafflist", staff_only(frozenset({Role.ADMIN}), staff_list), filters=PRIVATE
        ),
    ]
