"""End to end: people see every screen in their language; the bot follows what they write."""

from __future__ import annotations

import pytest

from bot.keyboards import MENU_ROWS
from bot.people import Person
from bot.replies import consent_summary
from bot.sandbox.botapi import LoopbackBotApi
from messages.bidi import LRI, PDI
from messages.i18n import translations
from messages.languages import get_language
from staff.access import add_staff
from staff.models import Role
from storage.base import utcnow
from tests.phone import Phone, inline_labels, reply_labels
from tests.sandbox_fixtures import RunningBot

SWITCH_OFFER = "You seem to write in {language}. Shall I answer in {language}?"


def t(code: str, message: str) -> str:
    translated = translations(code).gettext(message)
    assert translated != message, f"{code} has no translation for {message!r}"
    return translated


def menu_in(code: str) -> list[str]:
    gettext = translations(code).gettext
    return [item.text(gettext) for row in MENU_ROWS for item in row]


@pytest.mark.parametrize("code", ["ti", "ar", "ht"])  # non-Latin script, RTL, Latin script
async def test_every_screen_in_the_chosen_language(
    bot_api: LoopbackBotApi, running_bot: RunningBot, code: str
) -> None:
    phone = Phone.of(bot_api, first_name="Selam", language_code=code)
    language = get_language(code)
    assert language is not None
    notice = await phone.send("/start")
    assert (notice.text or "").startswith(
        t(
            code,
            "Welcome. Humanitarian responders run this "
            "service to tell you where to find help and to "
            "hear what you need.",
        )
    )
    assert inline_labels(notice)[0] == "✅ " + t(code, "I agree")
    choose = await phone.tap(notice, t(code, "I agree"))
    assert choose.text == t(code, "Choose your language:")
    menu = await phone.tap(choose, language.native_name)
    assert menu.text == t(code, "Thank you. Here is the main menu. Choose what you need:")
    assert reply_labels(menu) == menu_in(code)

    labels = menu_in(code)
    shelter = await phone.send(labels[0])
    assert "⬅ " + t(code, "Main menu") in reply_labels(shelter), "the shelter question"
    updates = await phone.send(labels[4])
    assert (updates.text or "").startswith(t(code, "Your updates:"))
    assert inline_labels(updates)[0] == "✅ 📢 " + t(code, "General alerts")
    help_text = await phone.send(labels[-1])
    assert t(code, "How we use your information") not in (help_text.text or "")
    assert "/language" in (help_text.text or "")
    unknown = await phone.send("/teleport")
    assert unknown.text == t(
        code, "Sorry, I do not know that command. Send /help to see what I can do."
    )
    await phone.api.send_sticker(phone.user_id)
    media = await phone.next_message()
    assert media.text == t(
        code, "For now I can only read text and button taps. Please type your message in words."
    )


async def test_rtl_staff_confirmation_isolates_latin_inserts(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    phone = Phone.of(bot_api, first_name="Rana", language_code="ar")
    notice = await phone.send("/start")
    choose = await phone.tap(notice, t("ar", "I agree"))
    await phone.tap(choose, "العربية")
    async with running_bot.services.db.transaction() as session:
        code = (await add_staff(session, "Rana Haddad", Role.RESPONDER, utcnow())).code
    linked = await phone.send(code)
    assert f"{LRI}Rana Haddad{PDI}" in (linked.text or "")
    assert f"{LRI}responder{PDI}" in (linked.text or "")
    assert f"{LRI}/whoami" not in (linked.text or ""), "commands are part of the sentence"


async def test_the_first_message_sets_the_language_before_any_choice(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    phone = Phone.of(bot_api, first_name="Amina", language_code="en")
    notice = await phone.send("أين أقرب مأوى مفتوح لعائلتي؟")
    assert notice.text == consent_summary_in("ar")


def consent_summary_in(code: str) -> str:
    return consent_summary(Person(pseudonym="", chat_id=0, contact=None, language=code))


async def test_an_unsupported_client_language_gets_the_default_and_the_keyboard(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    phone = Phone.of(bot_api, first_name="João", language_code="pt-BR")
    notice = await phone.send("/start")
    assert notice.text == consent_summary_in("en")
    choose = await phone.tap(notice, "I agree")
    assert len(inline_labels(choose)) == 19


async def test_switch_offered_after_several_messages_in_another_language(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    phone = Phone.of(bot_api, first_name="Amina", language_code="en")
    notice = await phone.send("/start")
    choose = await phone.tap(notice, "I agree")
    await phone.tap(choose, "English")
    arabic = [
        "نحن بحاجة إلى ماء نظيف للأطفال",
        "لا يوجد طعام في المخيم منذ يومين",
        "أين يمكنني التسجيل للنقل إلى المدينة",
    ]
    first = await phone.send(arabic[0])
    assert "Thank you for your message" in (first.text or ""), "one message never switches"
    await phone.send(arabic[1])
    await phone.send(arabic[2])
    offer = await phone.next_message()
    assert offer.text == t("ar", SWITCH_OFFER).format(language="العربية")
    assert inline_labels(offer) == ["🌐 العربية"]
    menu = await phone.tap(offer, "العربية")
    assert reply_labels(menu) == menu_in("ar")
