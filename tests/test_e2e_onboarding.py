"""End to end through the loopback Bot API: /start → consent → language → menu, restarts."""

from __future__ import annotations

from sqlalchemy import select

from bot.sandbox.botapi import LoopbackBotApi
from messages.contacts import Contact
from messages.i18n import translations
from tests.phone import Phone, inline_labels, reply_labels
from tests.sandbox_fixtures import RunningBot, StartBot

MENU = [
    "🏠 Find a shelter",
    "🚌 Register for evacuation or transport",
    "🏛 Consulate contacts",
    "💬 Tell us what you need",
    "🔔 Updates",
    "🌐 Language",
    "❓ Help",
]


async def stored_contacts(bot: RunningBot) -> list[Contact]:
    async with bot.services.db.transaction() as session:
        return list(await session.scalars(select(Contact)))


async def onboard(phone: Phone, language_label: str = "English") -> list[str]:
    """Consent and choose a language; the menu's labels."""
    notice = await phone.send("/start")
    choose = await phone.tap(notice, "I agree")
    menu = await phone.tap(choose, language_label)
    return reply_labels(menu)


async def test_start_consent_language_menu(phone: Phone, running_bot: RunningBot) -> None:
    notice = await phone.send("/start")
    assert "Humanitarian responders" in (notice.text or "")
    assert inline_labels(notice) == ["✅ I agree", "📄 Read more", "No, thanks"]
    assert await stored_contacts(running_bot) == [], "nothing is stored before consent"

    await phone.press_data(notice.message_id, "consent:more")
    statement = await phone.next_edit()
    assert statement.message_id == notice.message_id
    assert "Your rights" in (statement.text or "")
    assert inline_labels(statement) == ["✅ I agree", "📜 Full notice", "No, thanks"]

    await phone.press_data(notice.message_id, "consent:full")
    full = await phone.next_edit()
    assert full.message_id == notice.message_id
    assert "Legal basis" in (full.text or "") and "/mydata" in (full.text or "")
    assert inline_labels(full) == ["✅ I agree", "No, thanks"]

    choose = await phone.tap(full, "I agree")
    assert choose.text == "Choose your language:"
    labels = inline_labels(choose)
    assert len(labels) == 19
    assert {"English", "Français", "العربية", "دری", "Kreyòl Ayisyen"} <= set(labels)
    [contact] = await stored_contacts(running_bot)
    assert contact.consent_at is not None and contact.consent_version
    assert not contact.language_chosen

    menu = await phone.tap(choose, "Français")
    assert reply_labels(menu)[0] == "🏠 Trouver un abri"
    [contact] = await stored_contacts(running_bot)
    assert (contact.language, contact.language_chosen) == ("fr", True)


async def test_declining_stores_nothing(phone: Phone, running_bot: RunningBot) -> None:
    notice = await phone.send("/start")
    answer = await phone.tap(notice, "No, thanks")
    assert "not kept anything" in (answer.text or "")
    assert await stored_contacts(running_bot) == []
    # Whatever they send next, they see the notice again.
    again = await phone.send("where is the shelter?")
    assert inline_labels(again)[0] == "✅ I agree"


async def test_client_language_is_a_hint_until_chosen(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    phone = Phone.of(bot_api, first_name="Karim", language_code="ar-EG")
    notice = await phone.send("/start")
    await phone.tap(notice, "أوافق")
    [contact] = await stored_contacts(running_bot)
    assert (contact.language, contact.language_chosen) == ("ar", False)


async def test_consent_and_language_survive_a_restart(
    bot_api: LoopbackBotApi, start_bot: StartBot
) -> None:
    phone = Phone.of(bot_api, first_name="Amina", language_code="en")
    async with start_bot():
        spanish_menu = await onboard(phone, "Español")
    assert spanish_menu[0] == "🏠 Buscar un albergue"
    async with start_bot() as bot:
        menu = await phone.send("hello again")
        assert reply_labels(menu) == spanish_menu, "after a restart: onboarded, in Spanish"
        [contact] = await stored_contacts(bot)
        assert contact.language == "es"
        again = await phone.send("/start")
        assert again.text == translations("es").gettext("Main menu. Choose what you need:")


async def test_restart_between_consent_and_language(
    bot_api: LoopbackBotApi, start_bot: StartBot
) -> None:
    phone = Phone.of(bot_api, first_name="Amina", language_code="en")
    async with start_bot():
        notice = await phone.send("/start")
        await phone.tap(notice, "I agree")
    async with start_bot():
        choose = await phone.send("/start")
        assert choose.text == "Choose your language:"


async def test_menu_items_answer(phone: Phone) -> None:
    assert await onboard(phone) == MENU
    updates = await phone.send("🔔 Updates")
    assert "📢 General alerts: Everywhere" in (updates.text or ""), "subscribed on consent"
    assert inline_labels(updates)[0] == "✅ 📢 General alerts"
    help_text = await phone.send("❓ Help")
    assert "/language" in (help_text.text or "")
    choose = await phone.send("🌐 Language")
    assert choose.text == "Choose your language:"
    assert "✓ English" in inline_labels(choose)
    free = await phone.send("We have no water since yesterday")
    assert "Thank you for your message" in (free.text or "")


async def test_commands_are_registered(bot_api: LoopbackBotApi, running_bot: RunningBot) -> None:
    names = [c["command"] for c in bot_api.commands()]
    assert names == [
        "start",
        "menu",
        "myregistration",
        "subscriptions",
        "language",
        "privacy",
        "mydata",
        "delete",
        "help",
    ]
