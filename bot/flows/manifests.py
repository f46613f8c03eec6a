"""Staff on Telegram: registration counts (/registrations) and manifests per departure point
(/manifest → a button per point → the manifest as CSV and XLSX documents).

Manifests carry phone numbers, so only admins and communications officers get them; counts
carry no personal data, so every staff role sees them. Staff texts are in English, the
working language of the response (as are the exports).
"""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bot.flows.staff import ANY_STAFF, staff_only
from bot.services import Handler, services_of
from evacuation.manifests import (
    departure_points,
    format_summary,
    manifest_rows,
    summary,
    to_csv,
    to_xlsx,
)
from staff import audit
from staff.models import Role, StaffMember

PRIVATE = filters.ChatType.PRIVATE
OFFICERS = frozenset({Role.ADMIN, Role.COMMUNICATIONS_OFFICER})


async def registrations(
    update: Update, context: ContextTypes.DEFAULT_TYPE, member: StaffMember
) -> None:
    chat = update.effective_chat
    assert chat is not None
    async with services_of(context).db.transaction() as session:
        counts = await summary(session)
    await context.bot.send_message(chat.id, format_summary(counts))


async def manifest_menu(
    update: Update, context: ContextTypes.DEFAULT_TYPE, member: StaffMember
) -> None:
    chat = update.effective_chat
    assert chat is not None
    async with services_of(context).db.transaction() as session:
        points = await departure_points(session)
    if not points:
        await context.bot.send_message(chat.id, "No registrations to export yet.")
        return
    rows = [
        [InlineKeyboardButton(f"{point.name} ({count})", callback_data=f"mf:{point.key}")]
        for point, count in points
    ]
    await context.bot.send_message(
        chat.id, "Manifest for which departure point?", reply_markup=InlineKeyboardMarkup(rows)
    )


async def send_manifest(
    update: Update, context: ContextTypes.DEFAULT_TYPE, member: StaffMember
) -> None:
    query = update.callback_query
    chat = update.effective_chat
    assert query is not None and query.data is not None and chat is not None
    key = query.data.removeprefix("mf:")
    services = services_of(context)
    async with services.db.transaction() as session:
        rows = await manifest_rows(session, key)
        await audit.record(
            session,
            audit.Action.EXPORT,
            services.clock(),
            staff_id=member.id,
            target=f"manifest:{key}",
            detail=f"telegram csv+xlsx rows={len(rows)}",
        )
    await query.answer()
    stamp = services.clock().strftime("%Y%m%d-%H%M")
    name = f"manifest-{key}-{stamp}"
    await context.bot.send_document(
        chat.id, InputFile(to_csv(rows), filename=f"{name}.csv"), caption=f"{len(rows)} rows"
    )
    await context.bot.send_document(chat.id, InputFile(to_xlsx(rows, key), filename=f"{name}.xlsx"))


def handlers() -> list[Handler]:
    return [
        CommandHandler("registrations", staff_only(ANY_STAFF, registrations), filters=PRIVATE),
        CommandHandler("manifest", staff_only(OFFICERS, manifest_menu), filters=PRIVATE),
        CallbackQueryHandler(staff_only(OFFICERS, send_manifest), pattern=r"^mf:[\w.:-]{1,64}$"),
    ]
