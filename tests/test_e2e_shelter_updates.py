"""Officers update shelters from Telegram in two taps, end to end; everyone else is refused
exactly as an unknown command is."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from messages.shelters import Shelter, ShelterChange, ShelterStatus
from staff.models import Role
from storage.base import utcnow
from storage.database import Database
from tests.phone import Phone, inline_labels
from tests.sandbox_fixtures import RunningBot
from tests.test_e2e_bad_input import UNKNOWN
from tests.test_e2e_staff import issue


@pytest.fixture
async def shelters(database: Database) -> None:
    """Eleven shelters: more than one page of buttons."""
    async with database.transaction() as session:
        session.add(
            Shelter(
                external_id="SH-01",
                names={"en": "Alpha School", "ar": "مدرسة ألفا"},
                latitude=10.0,
                longitude=20.0,
                adm1_name="North Valley",
                status=ShelterStatus.OPEN,
                capacity=100,
                occupancy=95,
                updated_at=utcnow() - timedelta(days=2),
                updated_by="import:shelters.csv",
            )
        )
        for number in range(2, 12):
            session.add(
                Shelter(
                    external_id=f"SH-{number:02}",
                    names={"en": f"Shelter {number:02}"},
                    latitude=10.0 + number / 100,
                    longitude=20.0,
                    adm1_name="South Hills",
                    status=ShelterStatus.OPEN,
                    updated_by="import:shelters.csv",
                )
            )


async def link(phone: Phone, bot: RunningBot, role: Role, name: str = "Rana Haddad") -> None:
    code = await issue(bot, name, role)
    linked = await phone.send(code)
    assert (linked.text or "").startswith("Linked:")


async def stored(bot: RunningBot, external_id: str) -> Shelter:
    async with bot.services.db.transaction() as session:
        shelter = await session.scalar(select(Shelter).where(Shelter.external_id == external_id))
        assert shelter is not None
        return shelter


async def changes(bot: RunningBot) -> list[tuple[str, ShelterStatus, int | None]]:
    async with bot.services.db.transaction() as session:
        rows = await session.scalars(select(ShelterChange).order_by(ShelterChange.id))
        return [(c.by, c.status, c.occupancy) for c in rows]


async def test_two_taps_update_status_and_occupancy(
    phone: Phone, running_bot: RunningBot, shelters: None
) -> None:
    await link(phone, running_bot, Role.COMMUNICATIONS_OFFICER)
    listing = await phone.send("/shelters")
    assert listing.text == "Shelters (11), page 1 of 2. Tap one to update it."
    labels = inline_labels(listing)
    assert labels[0] == "🟢 Alpha School · 95/100 ⚠", "stale shelters are marked"
    assert len(labels) == 8 + 1 and labels[-1] == "Next ▶"

    # Tap 1: the shelter's card.
    await phone.press_data(listing.message_id, phone.api.button_data(listing, labels[0]))
    card = await phone.next_edit()
    text = card.text or ""
    assert text.startswith("🏠 Alpha School (SH-01)\nNorth Valley\nStatus: 🟢 open")
    assert "Occupancy: 95 / 100 (5 free)" in text
    assert "by import:shelters.csv" in text and "2 days ago" in text
    assert "⚠️ Out of date" in text
    assert inline_labels(card) == [
        "✓ 🟢 open",
        "🔴 full",
        "⚫ closed",
        "-10",
        "-1",
        "+1",
        "+10",
        "✅ Still correct",
        "⬅ All shelters",
    ]

    # Tap 2: a new status.
    await phone.press_data(card.message_id, phone.api.button_data(card, "🔴 full"))
    card = await phone.next_edit()
    assert "Status: 🔴 full" in (card.text or "")
    assert "by Rana Haddad (staff #1)" in (card.text or "")
    assert "✅ Saved." in (card.text or "")
    assert "Out of date" not in (card.text or "")
    assert "✅ Saved." in await phone.answered_callbacks()

    # Tap 2 again: occupancy down; a full shelter with room reopens.
    await phone.press_data(card.message_id, phone.api.button_data(card, "-10"))
    card = await phone.next_edit()
    assert "Occupancy: 85 / 100 (15 free)" in (card.text or "")
    assert "Status: 🟢 open" in (card.text or "")
    # A repeated tap (a bad connection) sets the same number, it does not add twice.
    await phone.press_data(card.message_id, "shu:o:1:85")
    await phone.next_event("answer_callback")  # the card may be unchanged: no edit then

    shelter = await stored(running_bot, "SH-01")
    assert (shelter.status, shelter.occupancy) == (ShelterStatus.OPEN, 85)
    assert shelter.updated_by == "Rana Haddad (staff #1)"
    assert await changes(running_bot) == [
        ("Rana Haddad (staff #1)", ShelterStatus.FULL, 95),
        ("Rana Haddad (staff #1)", ShelterStatus.OPEN, 85),
        ("Rana Haddad (staff #1)", ShelterStatus.OPEN, 85),
    ]

    # Still correct: a confirmation, recorded too.
    await phone.press_data(card.message_id, phone.api.button_data(card, "✅ Still correct"))
    await phone.next_event("answer_callback")
    assert len(await changes(running_bot)) == 4

    await phone.press_data(card.message_id, phone.api.button_data(card, "⬅ All shelters"))
    listing = await phone.next_edit()
    while not (listing.text or "").startswith("Shelters ("):  # a card redrawn a minute later
        listing = await phone.next_edit()
    assert inline_labels(listing)[0] == "🟢 Alpha School · 85/100"


async def test_pages_and_closing(phone: Phone, running_bot: RunningBot, shelters: None) -> None:
    await link(phone, running_bot, Role.ADMIN)
    listing = await phone.send("/shelters")
    await phone.press_data(listing.message_id, "shu:l:1")
    second = await phone.next_edit()
    assert second.text == "Shelters (11), page 2 of 2. Tap one to update it."
    assert inline_labels(second)[-1] == "◀ Previous"
    await phone.press_data(second.message_id, phone.api.button_data(second, "🟢 Shelter 11 · ?"))
    card = await phone.next_edit()
    assert "Occupancy: unknown / unknown" in (card.text or "")
    assert inline_labels(card)[3:5] == ["+1", "+10"], "no step below zero"
    await phone.press_data(card.message_id, phone.api.button_data(card, "⚫ closed"))
    card = await phone.next_edit()
    assert "Status: ⚫ closed" in (card.text or "")
    await phone.press_data(card.message_id, phone.api.button_data(card, "⬅ All shelters"))
    back = await phone.next_edit()
    assert back.text == "Shelters (11), page 2 of 2. Tap one to update it."
    assert "⚫ Shelter 11 · ?" in inline_labels(back)


async def test_bad_updates_are_answered_clearly(
    phone: Phone, running_bot: RunningBot, shelters: None
) -> None:
    await link(phone, running_bot, Role.COMMUNICATIONS_OFFICER)
    listing = await phone.send("/shelters")
    await phone.press_data(listing.message_id, "shu:o:1:-5")  # forged: below zero
    card = await phone.next_edit()
    assert "❌ Not saved: occupancy must be 0 or more, not -5." in (card.text or "")
    assert await changes(running_bot) == []
    await phone.press_data(listing.message_id, "shu:c:9999")
    await phone.next_event("answer_callback")
    assert "This shelter is no longer on record." in await phone.answered_callbacks()


async def test_no_shelters_yet(phone: Phone, running_bot: RunningBot) -> None:
    await link(phone, running_bot, Role.COMMUNICATIONS_OFFICER)
    answer = await phone.send("/shelters")
    assert "No shelters on record" in (answer.text or "")


@pytest.mark.parametrize("role", [None, Role.RESPONDER, Role.VIEWER])
async def test_everyone_else_is_refused(
    phone: Phone, running_bot: RunningBot, shelters: None, role: Role | None
) -> None:
    if role is not None:
        await link(phone, running_bot, role)
    assert (await phone.send("/shelters")).text == UNKNOWN
    menu = await phone.send("/start")
    await phone.press_data(menu.message_id, "shu:s:1:closed")  # a forged button
    assert (await phone.next_message()).text == UNKNOWN
    assert (await stored(running_bot, "SH-01")).status is ShelterStatus.OPEN
    assert await changes(running_bot) == []
