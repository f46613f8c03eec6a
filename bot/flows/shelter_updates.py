"""Officers update shelters from Telegram in two taps: /shelters lists them as buttons; tap
one (1) for its card, then tap a new status or an occupancy change (2). The card is redrawn
with the result; every change is timestamped and attributed to the staff member, and kept
in the shelter's history (`messages.shelters.update_shelter`).

Only admins and communications officers may do this; to anyone else /shelters and its
buttons answer exactly as an unknown command does. Staff texts are in English, the working
language of the response, like the other staff commands (no gettext).

The occupancy buttons carry the resulting number, not the step ("set 45", shown as "+10"),
so a tap repeated on a bad connection sets the same value twice instead of adding twice.
"Still correct" records a confirmation: nothing changes, but the information is current
again, so people stop seeing it flagged as possibly out of date.

```mermaid
stateDiagram-v2
    [*] --> LIST: /shelters
    LIST --> LIST: ◀ ▶ page
    LIST --> CARD: tap a shelter (1)
    CARD --> CARD: tap Open / Full / Closed, −10 −1 +1 +10, or Still correct (2) → saved
    CARD --> LIST: ⬅ All shelters
```

Callback data: "shu:l:<page>" (list page), "shu:b:<id>" (back to the page with that shelter),
"shu:c:<id>" (card), "shu:s:<id>:<status>", "shu:o:<id>:<occupancy>", "shu:k:<id>" (still
correct). No state is kept: every button works from any old message, and reads the shelter
afresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bot.config import Settings
from bot.flows.staff import staff_only
from bot.replies import edit_quietly
from bot.services import Handler, services_of
from messages.formatting import time_ago
from messages.shelters import (
    Shelter,
    ShelterStatus,
    ShelterUpdateError,
    is_stale,
    list_shelters,
    update_shelter,
)
from staff.models import Role, StaffMember
from staff.tokens import attribution

PRIVATE = filters.ChatType.PRIVATE
OFFICERS = frozenset({Role.ADMIN, Role.COMMUNICATIONS_OFFICER})
PAGE_SIZE = 8
STEPS = (-10, -1, 1, 10)
STATUS_ICONS = {ShelterStatus.OPEN: "🟢", ShelterStatus.FULL: "🔴", ShelterStatus.CLOSED: "⚫"}
PATTERN = r"^shu:([lbck]:\d{1,10}|s:\d{1,10}:(open|full|closed)|o:\d{1,10}:-?\d{1,7})$"


def occupancy_text(shelter: Shelter) -> str:
    occupancy = "unknown" if shelter.occupancy is None else str(shelter.occupancy)
    capacity = "unknown" if shelter.capacity is None else str(shelter.capacity)
    free = shelter.places_free
    return f"{occupancy} / {capacity}" + ("" if free is None else f" ({free} free)")


def list_view(
    shelters: Sequence[Shelter], page: int, settings: Settings, now: datetime
) -> tuple[str, InlineKeyboardMarkup]:
    """One page of shelters as buttons: status, name, occupancy/capacity, ⚠ when stale."""
    pages = max(1, -(-len(shelters) // PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    shown = shelters[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    max_age = settings.services.shelter_max_age
    rows = [
        [
            InlineKeyboardButton(
                f"{STATUS_ICONS[s.status]} {s.name('en')[:40]} · "
                + ("?" if s.occupancy is None else str(s.occupancy))
                + ("" if s.capacity is None else f"/{s.capacity}")
                + (" ⚠" if is_stale(s, now, max_age) else ""),
                callback_data=f"shu:c:{s.id}",
            )
        ]
        for s in shown
    ]
    turns = []
    if page > 0:
        turns.append(InlineKeyboardButton("◀ Previous", callback_data=f"shu:l:{page - 1}"))
    if page < pages - 1:
        turns.append(InlineKeyboardButton("Next ▶", callback_data=f"shu:l:{page + 1}"))
    if turns:
        rows.append(turns)
    text = f"Shelters ({len(shelters)}), page {page + 1} of {pages}. Tap one to update it."
    return text, InlineKeyboardMarkup(rows)


def card_text(shelter: Shelter, settings: Settings, now: datetime, note: str | None) -> str:
    area = ", ".join(name for name in (shelter.adm2_name, shelter.adm1_name) if name)
    when = shelter.updated_at.astimezone(ZoneInfo(settings.timezone)).strftime("%Y-%m-%d %H:%M")
    ago = time_ago(min(shelter.updated_at, now), now, "en")
    lines = [
        f"🏠 {shelter.name('en')} ({shelter.external_id})" + (f"\n{area}" if area else ""),
        f"Status: {STATUS_ICONS[shelter.status]} {shelter.status.value}",
        f"Occupancy: {occupancy_text(shelter)}",
        f"Last update: {when} ({ago}) by {shelter.updated_by}",
    ]
    if is_stale(shelter, now, settings.services.shelter_max_age):
        lines.append("⚠️ Out of date: people are told this may no longer be right.")
    if note:
        lines.append(f"\n{note}")
    return "\n".join(lines)


def card_keyboard(shelter: Shelter) -> InlineKeyboardMarkup:
    statuses = [
        InlineKeyboardButton(
            ("✓ " if shelter.status is status else "") + f"{STATUS_ICONS[status]} {status.value}",
            callback_data=f"shu:s:{shelter.id}:{status.value}",
        )
        for status in ShelterStatus
    ]
    base = shelter.occupancy or 0
    steps = [
        InlineKeyboardButton(f"{step:+d}", callback_data=f"shu:o:{shelter.id}:{base + step}")
        for step in STEPS
        if base + step >= 0
    ]
    return InlineKeyboardMarkup(
        [
            statuses,
            steps,
            [InlineKeyboardButton("✅ Still correct", callback_data=f"shu:k:{shelter.id}")],
            [InlineKeyboardButton("⬅ All shelters", callback_data=f"shu:b:{shelter.id}")],
        ]
    )


async def shelter_list(
    update: Update, context: ContextTypes.DEFAULT_TYPE, member: StaffMember
) -> None:
    chat = update.effective_chat
    assert chat is not None
    async with services_of(context).db.transaction() as session:
        shelters = await list_shelters(session)
    if not shelters:
        await context.bot.send_message(
            chat.id,
            "No shelters on record yet. An admin imports them with: "
            "crisis-comms import shelters FILE",
        )
        return
    services = services_of(context)
    text, markup = list_view(shelters, 0, services.settings, services.clock())
    await context.bot.send_message(chat.id, text, reply_markup=markup)


async def on_button(
    update: Update, context: ContextTypes.DEFAULT_TYPE, member: StaffMember
) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    action, *values = query.data.removeprefix("shu:").split(":")
    services = services_of(context)
    now = services.clock()
    if action in ("l", "b"):
        async with services.db.transaction() as session:
            shelters = await list_shelters(session)
        if action == "l":
            page = int(values[0])
        else:  # back from a card: the page that shelter is on
            ids = [shelter.id for shelter in shelters]
            page = ids.index(int(values[0])) // PAGE_SIZE if int(values[0]) in ids else 0
        await query.answer()
        text, markup = list_view(shelters, page, services.settings, now)
        await edit_quietly(query, text, markup)
        return
    note: str | None = None
    async with services.db.transaction() as session:
        shelter = await session.get(Shelter, int(values[0]))
        if shelter is not None and action != "c":
            status = ShelterStatus(values[1]) if action == "s" else None
            occupancy = int(values[1]) if action == "o" else None
            try:
                await update_shelter(
                    session,
                    shelter,
                    status=status,
                    occupancy=occupancy,
                    by=attribution(member),
                    now=now,
                )
            except ShelterUpdateError as error:
                note = f"❌ Not saved: {error}."
            else:
                note = "✅ Saved."
    if shelter is None:
        await query.answer("This shelter is no longer on record.", show_alert=True)
        return
    await query.answer(note)
    text = card_text(shelter, services.settings, now, note)
    await edit_quietly(query, text, card_keyboard(shelter))


def handlers() -> list[Handler]:
    return [
        CommandHandler("shelters", staff_only(OFFICERS, shelter_list), filters=PRIVATE),
        CallbackQueryHandler(staff_only(OFFICERS, on_button), pattern=PATTERN),
    ]
