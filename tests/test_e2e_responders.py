"""Closing the loop end to end: responders read, answer and move items; sensitive reports get
a survivor-centred reply and alert the protection focal point until acknowledged."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.flows.responders import send_due_alerts
from bot.sandbox.botapi import LoopbackBotApi
from feedback.codes import Correction, agreement_report
from feedback.items import FeedbackItem
from feedback.protection import ProtectionAlert
from feedback.replies import ERASED_NO_REPLY, MAX_REPLY, Reply
from feedback.review import ItemEvent
from messages.contacts import Contact
from messages.i18n import translations
from privacy.erasure import erase_contact
from staff.models import Role
from tests.phone import Phone, inline_data, inline_labels
from tests.sandbox_fixtures import RunningBot
from tests.test_e2e_onboarding import onboard
from tests.test_e2e_shelter_updates import link

FOCAL_GROUP = -500
SPOKEN = re.compile(r"[A-Z0-9]{3}-[A-Z0-9]{3}")
SENSITIVE_SETTINGS = pytest.mark.settings(
    PROTECTION_CHATS=str(FOCAL_GROUP),
    PROTECTION_HOTLINE="+41 800 123 456",
    PROTECTION_REFERRALS="Women's centre, Rue du Lac 3",
)


async def only_item(bot: RunningBot) -> FeedbackItem:
    async with bot.services.db.transaction() as session:
        [item] = list(await session.scalars(select(FeedbackItem)))
        return item


async def events(bot: RunningBot, kind: str) -> list[ItemEvent]:
    async with bot.services.db.transaction() as session:
        rows = await session.scalars(select(ItemEvent).where(ItemEvent.kind == kind))
        return list(rows)


def staff_phone(api: LoopbackBotApi, name: str) -> Phone:
    return Phone.of(api, first_name=name, language_code="en")


async def test_a_responder_reads_and_answers_in_the_persons_language(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    person = Phone.of(bot_api, first_name="Huda", language_code="en")
    await onboard(person, "العربية")
    await person.send("لا يوجد ماء في المخيم منذ يومين")
    item = await only_item(running_bot)
    question_id = max(m.message_id for m in bot_api.transcript(person.user_id) if not m.from_bot)

    responder = staff_phone(bot_api, "Rana")
    await responder.send("/start")
    await link(responder, running_bot, Role.RESPONDER)
    shown = await responder.send(f"/item {item.reference}")
    assert "لا يوجد ماء" in (shown.text or "") and "in_review" in (shown.text or "")
    assert "wash" in (shown.text or ""), "the coder's cluster is shown"

    sent = await responder.send(f"/reply {item.reference} A water truck comes at 3 pm.")
    assert sent.text == f"Sent: reply to {item.reference[:3]}-{item.reference[3:]}."
    answer = await person.next_message()
    heading = (
        translations("ar")
        .gettext("Reply from the response team about your message {reference}:")
        .split("{reference}")[0]
    )
    assert (answer.text or "").startswith(heading)
    assert (answer.text or "").endswith("A water truck comes at 3 pm.")
    assert answer.reply_to_message_id == question_id, "marked as a reply to their message"
    answered = await only_item(running_bot)
    assert answered.status == "answered" and answered.answered_at is not None
    assert answered.in_review_at is not None and len(await events(running_bot, "view")) == 1

    closed = await responder.send(f"/status {item.reference} closed")
    assert closed.text == f"{item.reference[:3]}-{item.reference[3:]} is now closed."
    again = await responder.send(f"/status {item.reference} in_review")
    assert (again.text or "").startswith("Not changed: closed cannot become in_review")


async def test_a_responder_corrects_codes_and_the_agreement_is_reported(
    bot_api: LoopbackBotApi, running_bot: RunningBot, phone: Phone
) -> None:
    await onboard(phone)
    await phone.send("When does the bus to the border leave?")
    item = await only_item(running_bot)
    responder = staff_phone(bot_api, "Rana")
    await responder.send("/start")
    await link(responder, running_bot, Role.RESPONDER)
    corrected = await responder.send(
        f"/codes {item.reference} type=question sectors=3,11 clusters=logistics urgent=no"
    )
    assert "Type: question" in (corrected.text or "")
    assert "Sectors: 3 " in (corrected.text or "") and "11 " in (corrected.text or "")
    bad = await responder.send(f"/codes {item.reference} type=gossip")
    assert (bad.text or "").startswith("Not understood: type=gossip")
    async with running_bot.services.db.transaction() as session:
        [correction] = list(await session.scalars(select(Correction)))
        report = await agreement_report(session)
    assert correction.staff_id is not None and correction.after["sectors"] == [3, 11]
    assert report.items == 1
    assert report.type_agreement == (1.0 if correction.before["type"] == "question" else 0.0)


async def test_staff_commands_are_unknown_to_people(phone: Phone, running_bot: RunningBot) -> None:
    await onboard(phone)
    await phone.send("Our tent is flooded")
    item = await only_item(running_bot)
    answer = await phone.send(f"/item {item.reference}")
    assert (answer.text or "").startswith("Sorry, I do not know that command.")
    viewer = await phone.send(f"/reply {item.reference} hello")
    assert (viewer.text or "").startswith("Sorry, I do not know that command.")


@SENSITIVE_SETTINGS
async def test_a_sensitive_report_gets_a_survivor_centred_reply_and_alerts_the_focal_point(
    bot_api: LoopbackBotApi, running_bot: RunningBot, phone: Phone
) -> None:
    focal = staff_phone(bot_api, "Sara")
    await focal.send("/start")
    await link(focal, running_bot, Role.PROTECTION_FOCAL_POINT, name="Sara Focal")
    await bot_api.send_group_text(focal.user_id, FOCAL_GROUP, "protection team group")

    await onboard(phone)
    text = "The man at the distribution said he gives food only if I sleep with him"
    reply = await phone.send(text)
    body = reply.text or ""
    assert "not your fault" in body and "+41 800 123 456" in body
    assert "Women's centre, Rue du Lac 3" in body and "?" not in body.split("\n\n")[0]
    assert inline_labels(reply) == ["Yes, contact me here", "No, do not contact me"]
    item = await only_item(running_bot)
    assert item.sensitive and item.urgent
    assert "sexual_exploitation_abuse" in (item.sensitive_categories or "")

    [alert] = await bot_api.wait_for_bot(FOCAL_GROUP, count=1, timeout=10)
    assert alert.message is not None
    alert_text = alert.message.text or ""
    assert item.reference in alert_text and "sexual exploitation or abuse" in alert_text
    assert "distribution" not in alert_text and "sleep" not in alert_text, "never the text"

    await phone.press_data(reply.message_id, inline_data(reply, "Yes, contact me here"))
    confirmed = await phone.next_message()
    assert "Someone from the protection team will write to you here" in (confirmed.text or "")
    assert (await only_item(running_bot)).contact_wanted is True

    # Not acknowledged: the alert repeats after the interval, and only then.
    services = running_bot.services
    later = replace(services, clock=lambda: services.clock() + timedelta(minutes=11))
    assert await send_due_alerts(running_bot.application.bot, services) == 0
    assert await send_due_alerts(running_bot.application.bot, later) == 1
    [repeat] = await bot_api.wait_for_bot(FOCAL_GROUP, count=1, timeout=10)
    assert repeat.message is not None and "reminder 1" in (repeat.message.text or "")

    # A responder (not the focal point) cannot see it nor acknowledge it.
    responder = staff_phone(bot_api, "Rana")
    await responder.send("/start")
    await link(responder, running_bot, Role.RESPONDER)
    hidden = await responder.send(f"/item {item.reference}")
    assert (hidden.text or "").startswith(f"No item {item.reference}")
    await bot_api.press_button(
        responder.user_id,
        repeat.message.message_id,
        f"ack:{item.reference}",
        chat_id=FOCAL_GROUP,
    )
    [refused] = await bot_api.wait_for_bot(FOCAL_GROUP, count=1, timeout=10)
    assert refused.callback_text == "Only a protection focal point can acknowledge."

    await bot_api.press_button(
        focal.user_id, repeat.message.message_id, f"ack:{item.reference}", chat_id=FOCAL_GROUP
    )
    acknowledged = [e for e in await bot_api.wait_for_bot(FOCAL_GROUP, count=2, timeout=10)]
    assert any(
        "acknowledged by Sara Focal" in (e.message.text or "") for e in acknowledged if e.message
    )
    much_later = replace(services, clock=lambda: services.clock() + timedelta(hours=2))
    assert await send_due_alerts(running_bot.application.bot, much_later) == 0

    shown = await focal.send(f"/item {item.reference}")
    assert text in (shown.text or "") and "Wants to be contacted: yes" in (shown.text or "")
    views = await events(running_bot, "view")
    assert len(views) == 1 and views[0].staff_id is not None, "every view is recorded"
    async with services.db.transaction() as session:
        [stored] = list(await session.scalars(select(ProtectionAlert)))
        assert stored.sends == 2 and stored.acknowledged_by is not None


@SENSITIVE_SETTINGS
async def test_the_survivor_may_decline_contact_in_their_language(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    person = Phone.of(bot_api, first_name="Lina", language_code="en")
    await onboard(person, "Français")
    reply = await person.send("Mon patron a pris mon passeport et je travaille sans salaire")
    french = translations("fr").gettext
    assert french("No, do not contact me") in inline_labels(reply)
    await person.press_data(reply.message_id, inline_data(reply, french("No, do not contact me")))
    declined = await person.next_message()
    assert french("We respect your choice. Nobody will contact you about this.") in (
        declined.text or ""
    )
    item = await only_item(running_bot)
    assert item.sensitive and item.contact_wanted is False


async def test_a_reply_too_long_or_to_an_erased_person_is_refused_and_not_recorded(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    person = Phone.of(bot_api, first_name="Huda", language_code="en")
    await onboard(person, "English")
    await person.send("No water in the camp for two days")
    item = await only_item(running_bot)
    responder = staff_phone(bot_api, "Rana")
    await responder.send("/start")
    await link(responder, running_bot, Role.RESPONDER)

    long = await responder.send(f"/reply {item.reference} {'a' * (MAX_REPLY + 1)}")
    assert long.text == (
        f"Not sent: a reply has at most {MAX_REPLY} characters; this one has {MAX_REPLY + 1}."
    )
    async with running_bot.services.db.transaction() as session:
        contact = await session.get(Contact, item.contact_id)
        assert contact is not None
        await erase_contact(session, contact, running_bot.services.clock())
    erased = await responder.send(f"/reply {item.reference} A water truck comes at 3 pm.")
    assert erased.text == ERASED_NO_REPLY
    async with running_bot.services.db.transaction() as session:
        assert list(await session.scalars(select(Reply))) == [], "nothing recorded either time"
