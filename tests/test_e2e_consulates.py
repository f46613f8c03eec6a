"""Consulate contacts end to end: typed or picked countries, none on record, bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.sandbox.botapi import LoopbackBotApi
from messages.consulates import Mission, MissionKind
from messages.i18n import translations
from storage.base import utcnow
from storage.database import Database
from tests.phone import Phone, inline_labels, reply_labels
from tests.sandbox_fixtures import RunningBot
from tests.test_e2e_onboarding import MENU, onboard

CONSULATES = "🏛 Consulate contacts"


@pytest.fixture
async def missions(database: Database) -> None:
    async with database.transaction() as session:
        session.add_all(
            [
                Mission(
                    external_id="M-SY-1",
                    country_code="SY",
                    kind=MissionKind.EMBASSY,
                    names={"en": "Embassy of Syria", "ar": "سفارة سوريا"},
                    notes={"en": "Bring any identity document you have."},
                    city="Capital City",
                    address="1 Demo Street",
                    phone="+000 111 222",
                    emergency_phone="+000 999 888",
                    email="syria@example.org",
                    hours="Sun-Thu 9:00-14:00",
                    services=["emergency_travel_document", "laissez_passer"],
                    updated_at=utcnow() - timedelta(hours=3),
                    updated_by="test",
                ),
                Mission(
                    external_id="M-SY-2",
                    country_code="SY",
                    kind=MissionKind.HONORARY_CONSULATE,
                    names={"en": "Honorary Consulate of Syria"},
                    city="Port Town",
                    phone="+000 333 444",
                    services=[],
                    updated_by="test",
                ),
            ]
        )


async def test_typed_country_with_a_typo_gives_every_contact(
    phone: Phone, running_bot: RunningBot, missions: None
) -> None:
    await onboard(phone)
    asked = await phone.send(CONSULATES)
    assert "Type the country" in (asked.text or "")
    assert inline_labels(asked) == ["Syria"], "countries with a mission are one tap away"
    choices = await phone.send("Siria")
    assert choices.text == "Did you mean:"
    answer = await phone.tap(choices, "Syria")
    text = answer.text or ""
    assert text.startswith("Embassies and consulates of Syria:")
    assert text.index("Embassy of Syria") < text.index("Honorary Consulate of Syria")
    for expected in (
        "1 Demo Street",
        "+000 111 222",
        "Emergency: +000 999 888",
        "syria@example.org",
        "Sun-Thu 9:00-14:00",
        "Emergency travel documents",
        "Laissez-passer",
        "Bring any identity document",
        "Updated 3 hours ago",
        "Honorary consulate",
    ):
        assert expected in text, expected
    assert reply_labels(answer) == MENU
    # The question is over: words are free text again.
    free = await phone.send("Syria")
    assert "Thank you for your message" in (free.text or "")


async def test_in_arabic_a_country_without_missions_points_to_the_help_line(
    bot_api: LoopbackBotApi, running_bot: RunningBot, missions: None
) -> None:
    phone = Phone.of(bot_api, first_name="Huda", language_code="en")
    await onboard(phone, "العربية")
    arabic = translations("ar").gettext
    asked = await phone.send("🏛 " + arabic("Consulate contacts"))
    assert asked.text == arabic(
        "Which country's embassy or consulate? Type the country in any language, or pick it."
    )
    choices = await phone.send("اريتريا")  # without the hamza
    answer = await phone.tap(choices, "إريتريا")
    assert "إريتريا" in (answer.text or "") and "Eritrea" not in (answer.text or "")
    assert arabic("For help, go to the nearest humanitarian staff or help desk.") in (
        answer.text or ""
    )


@pytest.mark.settings(HELP_LINE="+000 123 4567")
async def test_nothing_on_record_gives_the_help_line(phone: Phone, running_bot: RunningBot) -> None:
    await onboard(phone)
    asked = await phone.send(CONSULATES)
    assert asked.reply_markup is None or not inline_labels(asked), "no empty keyboard"
    choices = await phone.send("Eritrea")
    answer = await phone.tap(choices, "Eritrea")
    assert "We have no embassy or consulate of Eritrea on record." in (answer.text or "")
    assert "+000 123 4567" in (answer.text or "")


async def test_unknown_country_sticker_and_menu_while_asked(
    phone: Phone, running_bot: RunningBot, bot_api: LoopbackBotApi, missions: None
) -> None:
    await onboard(phone)
    asked = await phone.send(CONSULATES)
    unknown = await phone.send("Narnia")
    assert "could not find a country called “Narnia”" in (unknown.text or "")
    assert inline_labels(unknown) == ["Syria"]
    await bot_api.send_sticker(phone.user_id)
    sticker = await phone.next_message()
    assert "only read text" in (sticker.text or "")
    help_text = await phone.send("❓ Help")
    assert "/menu" in (help_text.text or "")
    # A country button from the old question still works after the question ended.
    answer = await phone.tap(asked, "Syria")
    assert "Embassy of Syria" in (answer.text or "")
