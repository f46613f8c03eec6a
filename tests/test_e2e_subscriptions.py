"""Subscriptions end to end through the loopback Bot API: the screen from the menu and
/subscriptions, topics, areas, Done; the stop button under a broadcast and "Subscribe again";
old buttons; Arabic; people not onboarded."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.flows.subscriptions import stop_markup
from bot.people import CHANNEL
from bot.sandbox.botapi import ChatMessage, LoopbackBotApi
from messages.contacts import Contact
from messages.i18n import translations
from messages.places import Place, PlaceKind
from messages.subscriptions import Areas, subscriptions_of
from storage.database import Database
from tests.phone import Phone, inline_data, inline_labels, reply_labels
from tests.sandbox_fixtures import RunningBot
from tests.test_e2e_onboarding import MENU, onboard

UPDATES = "🔔 Updates"
TOPIC_LABELS = [
    "✅ 📢 General alerts",
    "◻️ 🏠 Shelter updates",
    "◻️ 🚌 Evacuation and transport",
    "◻️ 🩺 Health",
    "◻️ 🏛 Consular news",
]
AREAS = {
    f"XY{n:02}": name
    for n, name in enumerate(
        [
            "North",
            "South",
            "East",
            "West",
            "Coast",
            "Hills",
            "Lakes",
            "Plains",
            "Delta",
            "Forest",
            "Valley",
            "Desert",
        ],
        start=1,
    )
}


@pytest.fixture
async def areas(database: Database) -> None:
    """Twelve adm1 areas: more than one page of the picker."""
    async with database.transaction() as session:
        session.add_all(
            Place(
                external_id=code,
                kind=PlaceKind.ADM1,
                names={"en": name},
                alt_names=[],
                adm1_code=code,
                adm1_name=name,
                updated_by="test",
            )
            for code, name in AREAS.items()
        )


async def contact_of(bot: RunningBot, phone: Phone) -> Contact | None:
    pseudonym = bot.services.pseudonymize(CHANNEL, phone.user_id)
    async with bot.services.db.transaction() as session:
        return await session.scalar(select(Contact).where(Contact.pseudonym == pseudonym))


async def subscriptions(bot: RunningBot, phone: Phone) -> dict[str, Areas]:
    contact = await contact_of(bot, phone)
    assert contact is not None
    async with bot.services.db.transaction() as session:
        return await subscriptions_of(session, contact.id)


async def press(phone: Phone, message: ChatMessage, label: str) -> ChatMessage:
    """Tap an inline button that edits its own message; the message after the edit."""
    await phone.press_data(message.message_id, inline_data(message, label))
    edited = await phone.next_edit()
    assert edited.message_id == message.message_id, "edited in place"
    return edited


async def test_from_the_menu_topics_areas_and_done(
    phone: Phone, running_bot: RunningBot, areas: None
) -> None:
    assert await onboard(phone) == MENU
    assert await subscriptions(running_bot, phone) == {"alerts": None}, "default on consent"
    screen = await phone.send(UPDATES)
    assert screen.text == (
        "Your updates:\n📢 General alerts: Everywhere\n\nTap a topic to turn it on or off."
    )
    assert inline_labels(screen) == [*TOPIC_LABELS, "📍 Areas", "✔️ Done"]

    screen = await press(phone, screen, "Shelter updates")
    assert "✅ 🏠 Shelter updates" in inline_labels(screen)
    assert "🏠 Shelter updates: Everywhere" in (screen.text or "")
    screen = await press(phone, screen, "General alerts")
    assert "◻️ 📢 General alerts" in inline_labels(screen)
    assert await subscriptions(running_bot, phone) == {"shelter": None}

    picker = await press(phone, screen, "Areas")
    assert picker.text == "Choose the areas you want news about:"
    labels = inline_labels(picker)
    assert labels[0] == "✅ 🌍 Everywhere"
    # Eight areas by name on the first page, then the next page, then Back.
    assert labels[1:9] == [f"◻️ {name}" for name in sorted(AREAS.values())[:8]]
    assert labels[9:] == ["▶️", "⬅ Back"]

    picker = await press(phone, picker, "Coast")
    picker = await press(phone, picker, "▶️")
    assert inline_labels(picker)[0] == "◻️ 🌍 Everywhere"
    assert inline_labels(picker)[1:5] == [f"◻️ {n}" for n in sorted(AREAS.values())[8:]]
    assert inline_labels(picker)[5:] == ["◀️", "⬅ Back"]
    picker = await press(phone, picker, "West")
    assert "✅ West" in inline_labels(picker)
    assert await subscriptions(running_bot, phone) == {"shelter": frozenset({"XY04", "XY05"})}

    screen = await press(phone, picker, "Back")
    assert "🏠 Shelter updates: Coast, West" in (screen.text or "")
    screen = await press(phone, screen, "Health")
    assert await subscriptions(running_bot, phone) == {
        "shelter": frozenset({"XY04", "XY05"}),
        "health": frozenset({"XY04", "XY05"}),
    }, "a topic turned on follows the chosen areas"

    picker = await press(phone, screen, "Areas")
    picker = await press(phone, picker, "Everywhere")
    assert inline_labels(picker)[0] == "✅ 🌍 Everywhere"
    assert await subscriptions(running_bot, phone) == {"shelter": None, "health": None}

    screen = await press(phone, picker, "Back")
    done = await press(phone, screen, "Done")
    assert done.text == (
        "Your updates:\n🏠 Shelter updates: Everywhere\n🩺 Health: Everywhere\n\n"
        "To change this, send /subscriptions."
    )
    assert inline_labels(done) == []


async def test_command_own_area_first_and_nothing_subscribed(
    phone: Phone, running_bot: RunningBot, areas: None
) -> None:
    await onboard(phone)
    contact = await contact_of(running_bot, phone)
    assert contact is not None
    async with running_bot.services.db.transaction() as session:
        stored = await session.get(Contact, contact.id)
        assert stored is not None
        stored.area_code, stored.area_name = "XY12", "Desert"

    screen = await phone.send("/subscriptions")
    assert inline_labels(screen) == [*TOPIC_LABELS, "📍 Areas", "✔️ Done"]
    picker = await press(phone, screen, "Areas")
    assert inline_labels(picker)[1] == "◻️ 📍 Desert", "their own area first"
    assert "◻️ Coast" in inline_labels(picker)
    await press(phone, picker, "Desert")
    assert await subscriptions(running_bot, phone) == {"alerts": frozenset({"XY12"})}

    screen = await press(phone, picker, "Back")
    screen = await press(phone, screen, "General alerts")
    assert screen.text == "You receive no updates for now.\n\nTap a topic to turn it on or off."
    assert "📍 Areas" not in inline_labels(screen), "no areas without a topic"
    # A picker's button from an older screen: areas belong to topics.
    await phone.press_data(picker.message_id, "subs:x:0:XY01")
    answer = await phone.next_event("answer_callback")
    assert (answer.callback_text, answer.show_alert) == ("Turn on a topic first.", True)
    assert await subscriptions(running_bot, phone) == {}


async def test_stop_button_under_a_broadcast_and_subscribe_again(
    phone: Phone, running_bot: RunningBot, areas: None
) -> None:
    await onboard(phone)
    bot = running_bot.application.bot
    gettext = translations("en").gettext
    await bot.send_message(
        phone.user_id, "Storm tonight", reply_markup=stop_markup(gettext, "alerts")
    )
    broadcast = await phone.next_message()
    assert inline_labels(broadcast) == ["🔕 Stop: General alerts"]

    await phone.press_data(broadcast.message_id, "unsub:alerts")
    edited = await phone.next_edit()
    assert (await phone.answered_callbacks())[-1] == (
        "You will no longer get: General alerts. To subscribe again, send /subscriptions."
    )
    assert edited.text == "Storm tonight"
    assert inline_labels(edited) == ["🔔 Subscribe again"]
    assert await subscriptions(running_bot, phone) == {}

    await phone.press_data(broadcast.message_id, "resub:alerts")
    edited = await phone.next_edit()
    assert (await phone.answered_callbacks())[-1] == "You will get General alerts again."
    assert inline_labels(edited) == ["🔕 Stop: General alerts"]
    assert await subscriptions(running_bot, phone) == {"alerts": None}


async def test_stop_removes_every_area_and_again_restores_the_choice(
    phone: Phone, running_bot: RunningBot, areas: None
) -> None:
    await onboard(phone)
    screen = await phone.send("/subscriptions")
    screen = await press(phone, screen, "Shelter updates")
    picker = await press(phone, screen, "Areas")
    picker = await press(phone, picker, "North")
    await press(phone, picker, "Delta")
    assert await subscriptions(running_bot, phone) == {
        "alerts": frozenset({"XY01", "XY09"}),
        "shelter": frozenset({"XY01", "XY09"}),
    }
    gettext = translations("en").gettext
    await running_bot.application.bot.send_message(
        phone.user_id, "Shelter A is full", reply_markup=stop_markup(gettext, "shelter")
    )
    broadcast = await phone.next_message()
    await phone.press_data(broadcast.message_id, inline_data(broadcast, "Stop"))
    await phone.next_edit()
    assert await subscriptions(running_bot, phone) == {"alerts": frozenset({"XY01", "XY09"})}
    await phone.press_data(broadcast.message_id, "resub:shelter")
    await phone.next_edit()
    assert (await subscriptions(running_bot, phone))["shelter"] == frozenset({"XY01", "XY09"})


async def test_old_and_forged_buttons_get_a_polite_answer(
    phone: Phone, running_bot: RunningBot
) -> None:
    await onboard(phone)
    screen = await phone.send(UPDATES)
    for data in ("subs:t:weather", "subs:zzz", "subs:x:0:NOPE", "subs:t:" + "a" * 40):
        await phone.press_data(screen.message_id, data)
        answer = await phone.next_event("answer_callback")
        assert answer.callback_text == "This button is no longer active.", data
    assert await subscriptions(running_bot, phone) == {"alerts": None}
    # Huge page numbers land on the last page.
    await phone.press_data(screen.message_id, "subs:a:999")
    answer = await phone.next_event("answer_callback")
    assert answer.callback_text is None

    gettext = translations("en").gettext
    await running_bot.application.bot.send_message(
        phone.user_id, "x", reply_markup=stop_markup(gettext, "alerts")
    )
    broadcast = await phone.next_message()
    await phone.press_data(broadcast.message_id, "unsub:weather")
    edited = await phone.next_edit()
    assert (await phone.answered_callbacks())[-1] == "This button is no longer active."
    assert inline_labels(edited) == []
    assert await subscriptions(running_bot, phone) == {"alerts": None}
    # The menu still works afterwards.
    again = await phone.send("/subscriptions")
    assert inline_labels(again)[0] == "✅ 📢 General alerts"


async def test_arabic_labels(bot_api: LoopbackBotApi, running_bot: RunningBot) -> None:
    phone = Phone.of(bot_api, first_name="Huda", language_code="en")
    menu = await onboard(phone, "العربية")
    ar = translations("ar").gettext
    screen = await phone.send(menu[4])
    labels = inline_labels(screen)
    assert labels[0] == f"✅ 📢 {ar('General alerts')}"
    assert labels[1] == f"◻️ 🏠 {ar('Shelter updates')}"
    assert labels[-1] == f"✔️ {ar('Done')}"
    assert (screen.text or "").startswith(ar("Your updates:"))
    assert f"{ar('General alerts')}: {ar('Everywhere')}" in (screen.text or "")
    assert ar("General alerts") != "General alerts", "translated"
    [[stop]] = stop_markup(ar, "alerts").inline_keyboard
    assert stop.text == "🔕 " + ar("Stop: {topic}").format(topic=ar("General alerts"))


async def test_not_onboarded_people_see_the_consent_first(
    phone: Phone, running_bot: RunningBot
) -> None:
    notice = await phone.send("/subscriptions")
    assert "Do you agree?" in (notice.text or "")
    for data in ("subs:t:health", "unsub:alerts", "resub:alerts"):
        await phone.press_data(notice.message_id, data)
        again = await phone.next_message()
        assert "Do you agree?" in (again.text or "")
    assert await contact_of(running_bot, phone) is None, "nothing stored"
    # Consented, language not chosen yet: the screen waits for the language.
    choose = await phone.tap(notice, "I agree")
    answer = await phone.send("/subscriptions")
    assert answer.text == "Choose your language:"
    menu = await phone.tap(choose, "English")
    assert reply_labels(menu) == MENU


async def test_renewed_consent_does_not_resubscribe(phone: Phone, running_bot: RunningBot) -> None:
    """A contact whose consent was withdrawn keeps the choices it had (none here)."""
    async with running_bot.services.db.transaction() as session:
        pseudonym = running_bot.services.pseudonymize(CHANNEL, phone.user_id)
        session.add(Contact(pseudonym=pseudonym, language="en"))
    notice = await phone.send("/start")
    choose = await phone.tap(notice, "I agree")
    await phone.tap(choose, "English")
    assert await subscriptions(running_bot, phone) == {}


async def test_subscriptions_during_a_registration_pauses_it(
    phone: Phone, running_bot: RunningBot
) -> None:
    await onboard(phone)
    scope = await phone.send("🚌 Register for evacuation or transport")
    assert "Who are you registering?" in (scope.text or "")
    screen = await phone.send("/subscriptions")
    assert inline_labels(screen)[0] == "✅ 📢 General alerts"
