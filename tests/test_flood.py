"""Flood control (bot/flood.py): past the limit a person's commands and taps get one notice,
then only a stopped spinner, until the pace drops; what they write is never lost; staff are
not limited; the windows stay bounded. End to end through the loopback Bot API with a clock
the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.config import Settings, load_settings
from bot.flood import NOTICE, FloodGate, FloodLimits, gate_of
from bot.sandbox.botapi import LoopbackBotApi
from feedback.items import FeedbackItem
from messages.i18n import translations
from staff.models import Role
from storage.database import Database
from tests.clock import FakeClock
from tests.phone import Phone, inline_data
from tests.sandbox_fixtures import RunningBot, bot_with
from tests.test_e2e_onboarding import onboard
from tests.test_e2e_shelter_updates import link

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
LIMIT = {"FLOOD_UPDATES": "8", "FLOOD_WINDOW_SECONDS": "30"}
HELP_START = "This service shares checked information"


# --- the gate alone -------------------------------------------------------------------------


def test_over_the_limit_within_the_window_only() -> None:
    gate = FloodGate(FloodLimits(updates=3, window=timedelta(seconds=10)))
    assert [gate.arrive(1, T0 + timedelta(seconds=s)) for s in (0, 1, 2)] == [False] * 3
    assert gate.arrive(1, T0 + timedelta(seconds=3)), "the 4th within 10 s"
    assert not gate.arrive(2, T0 + timedelta(seconds=3)), "another person has their own window"
    # 11 s after the 2nd arrival, only 3 arrivals remain within the window.
    assert not gate.arrive(1, T0 + timedelta(seconds=12))


def test_one_notice_per_flood() -> None:
    gate = FloodGate(FloodLimits(updates=1, window=timedelta(seconds=10)))
    gate.arrive(7, T0)
    assert gate.arrive(7, T0)
    assert gate.first_notice(7) and not gate.first_notice(7)
    assert gate.arrive(7, T0 + timedelta(seconds=1)) and not gate.first_notice(7)
    assert not gate.arrive(7, T0 + timedelta(seconds=30)), "the pace dropped"
    assert gate.arrive(7, T0 + timedelta(seconds=30))
    assert gate.first_notice(7), "a new flood gets a new notice"


def test_quiet_windows_are_dropped_and_the_count_is_capped() -> None:
    gate = FloodGate(FloodLimits(updates=2, window=timedelta(seconds=10), max_people=100))
    for who in range(50):
        gate.arrive(who, T0)
    assert len(gate) == 50
    gate.arrive(999, T0 + timedelta(seconds=11))
    assert len(gate) == 1, "everyone silent for a whole window is forgotten"
    for who in range(1000):
        gate.arrive(who, T0 + timedelta(seconds=12))
    assert len(gate) == 100, "never more windows than max_people"


def test_the_staff_verdict_lives_as_long_as_the_window() -> None:
    gate = FloodGate(FloodLimits(updates=2, window=timedelta(seconds=10)))
    gate.arrive(1, T0)
    assert gate.staff(1) is None
    gate.remember_staff(1, True)
    assert gate.staff(1) is True
    gate.arrive(2, T0 + timedelta(seconds=11))
    assert gate.staff(1) is None, "forgotten with the window: a new role is seen again"


def test_configuration() -> None:
    services = load_settings({"FLOOD_UPDATES": "40", "FLOOD_WINDOW_SECONDS": "60"}).services
    assert (services.flood_updates, services.flood_window) == (40, timedelta(seconds=60))
    defaults = load_settings({}).services
    assert (defaults.flood_updates, defaults.flood_window) == (30, timedelta(seconds=30))


@pytest.mark.parametrize("value", ["0", "-3", "many", "2.5"])
def test_a_wrong_limit_stops_start_up(value: str) -> None:
    from bot.config import ConfigError

    with pytest.raises(ConfigError, match="FLOOD_UPDATES"):
        load_settings({"FLOOD_UPDATES": value})


# --- end to end -----------------------------------------------------------------------------


@pytest.fixture
async def clocked(
    bot_api: LoopbackBotApi, database: Database, settings: Settings
) -> AsyncIterator[tuple[RunningBot, FakeClock]]:
    clock = FakeClock(T0)
    async with bot_with(bot_api, database, settings, clock) as bot:
        yield bot, clock


async def item_texts(bot: RunningBot) -> list[str]:
    async with bot.services.db.transaction() as session:
        return list(await session.scalars(select(FeedbackItem.text).order_by(FeedbackItem.id)))


@pytest.mark.settings(**LIMIT)
async def test_one_notice_nothing_lost_and_normal_again_after_the_window(
    bot_api: LoopbackBotApi, clocked: tuple[RunningBot, FakeClock]
) -> None:
    bot, clock = clocked
    phone = Phone.of(bot_api, first_name="Amina", language_code="en")
    await onboard(phone)
    clock.advance(31)  # onboarding leaves the window: the count starts here
    texts = [f"road {n} to the camp is blocked" for n in range(6)]
    for text in texts:  # updates 1 to 6
        assert ((await phone.send(text)).text or "").startswith("Thank you for your message.")
    for _ in range(2):  # the 7th and the 8th: still the limit
        assert HELP_START in ((await phone.send("/help")).text or "")

    notice = await phone.send("/help")  # the 9th: over it
    assert notice.text == NOTICE
    await phone.api.send_text(phone.user_id, "/menu")  # held back: no answer at all
    await phone.api.send_text(phone.user_id, "💬 Tell us what you need")  # a menu tap: held back
    # Words still reach the intake and are kept (and answered: the intake has its own pace).
    receipt = await phone.send("the bridge near the school fell down")
    assert (receipt.text or "").startswith("Thank you for your message."), "nothing for /menu"
    # An inline button: the spinner stops, nothing else is sent.
    await phone.press_data(receipt.message_id, "need:1")
    answered = await phone.next_event("answer_callback")
    assert answered.callback_text is None
    await phone.api.share_location(phone.user_id, 46.2, 6.1)
    shelters = await phone.next_message()  # a location is content: the shelter search answers
    assert "shelter" in (shelters.text or "").lower()
    assert [e.kind for e in bot_api.pending_bot_events(phone.user_id)] == []

    clock.advance(31)
    assert HELP_START in ((await phone.send("/help")).text or ""), "answered again"
    assert await item_texts(bot) == [*texts, "the bridge near the school fell down"]
    notices = [e for e in phone.seen if e.message is not None and e.message.text == NOTICE]
    assert len(notices) == 1


@pytest.mark.settings(**LIMIT)
async def test_the_notice_is_in_the_persons_language(
    bot_api: LoopbackBotApi, clocked: tuple[RunningBot, FakeClock]
) -> None:
    _bot, clock = clocked
    phone = Phone.of(bot_api, first_name="Huda", language_code="en")
    await onboard(phone, "العربية")
    clock.advance(31)
    for _ in range(8):
        await phone.send("/help")
    notice = await phone.send("/help")
    assert notice.text == translations("ar").gettext(NOTICE) != NOTICE


@pytest.mark.settings(**LIMIT)
async def test_taps_before_consent_are_limited_too(
    bot_api: LoopbackBotApi, clocked: tuple[RunningBot, FakeClock]
) -> None:
    phone = Phone.of(bot_api, first_name="Amina", language_code="en")
    notice = await phone.send("/start")
    for _ in range(7):
        await phone.press_data(notice.message_id, "consent:full")
        await phone.next_event("answer_callback")
    await phone.press_data(notice.message_id, "consent:full")  # the 9th
    held = await phone.next_event("send")
    assert held.message is not None and held.message.text == NOTICE
    await phone.press_data(notice.message_id, inline_data(notice, "I agree"))
    await phone.next_event("answer_callback")
    assert bot_api.pending_bot_events(phone.user_id) == [], "no consent recorded while held"


@pytest.mark.settings(**LIMIT)
async def test_staff_are_not_limited(
    bot_api: LoopbackBotApi, clocked: tuple[RunningBot, FakeClock]
) -> None:
    bot, _clock = clocked
    phone = Phone.of(bot_api, first_name="Rana", language_code="en")
    await link(phone, bot, Role.RESPONDER)
    for _ in range(20):
        assert (await phone.send("/whoami")).text == "Rana Haddad · responder"
    gate = gate_of(bot.application.bot_data)
    assert len(gate) == 1 and gate.staff(phone.user_id) is True, "looked up once, kept"


@pytest.mark.settings(FLOOD_UPDATES="4", FLOOD_WINDOW_SECONDS="30")
async def test_a_conversation_goes_on_after_the_flood(
    bot_api: LoopbackBotApi, clocked: tuple[RunningBot, FakeClock]
) -> None:
    """A person held back mid-registration picks up where they were once the pace drops."""
    _bot, clock = clocked
    phone = Phone.of(bot_api, first_name="Amina", language_code="en")
    await onboard(phone)
    clock.advance(31)
    who = await phone.send("🚌 Register for evacuation or transport")  # the 1st
    for _ in range(3):  # the 2nd to 4th: words, answered with the question again
        assert "Who are you registering?" in ((await phone.send("hello")).text or "")
    await phone.press_data(who.message_id, inline_data(who, "Just me"))  # the 5th: held
    held = await phone.next_event("send")
    assert held.message is not None and held.message.text == NOTICE
    clock.advance(31)
    next_question = await phone.tap(who, "Just me")
    assert next_question.text == "How old are you?"
