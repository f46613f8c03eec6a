"""Registering for evacuation or transport, end to end through the loopback Bot API:
every branch of the conversation, restarts, timeouts, going back, and bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.sandbox.botapi import ChatMessage, LoopbackBotApi
from evacuation.registrations import Registration
from messages.consulates import Mission, MissionKind
from messages.places import Place, PlaceKind
from storage.base import utcnow
from storage.database import Database
from tests.phone import Phone, inline_labels, reply_labels
from tests.sandbox_fixtures import RunningBot, StartBot
from tests.test_e2e_onboarding import onboard

REGISTER = "🚌 Register for evacuation or transport"


@pytest.fixture
async def places(database: Database) -> None:
    """A town a person can type, a departure point near it, and one embassy."""
    async with database.transaction() as session:
        session.add_all(
            [
                Place(
                    external_id="LOC-1",
                    kind=PlaceKind.LOCALITY,
                    names={"en": "Riverside", "ar": "ريفرسايد"},
                    alt_names=[],
                    latitude=10.0,
                    longitude=20.0,
                    updated_by="test",
                ),
                Place(
                    external_id="DP-1",
                    kind=PlaceKind.DEPARTURE_POINT,
                    names={"en": "Riverside bus station"},
                    alt_names=[],
                    latitude=10.01,
                    longitude=20.01,
                    updated_by="test",
                ),
                Mission(
                    external_id="M-AF",
                    country_code="AF",
                    kind=MissionKind.EMBASSY,
                    names={"en": "Embassy of Afghanistan"},
                    city="Capital City",
                    phone="+000 100 200",
                    services=["emergency_travel_document"],
                    updated_by="test",
                ),
            ]
        )


async def registration_of(bot: RunningBot) -> Registration | None:
    async with bot.services.db.transaction() as session:
        return await session.scalar(select(Registration))


async def start_registering(phone: Phone) -> ChatMessage:
    await onboard(phone)
    return await phone.send(REGISTER)


async def answer_until_review(phone: Phone, api: LoopbackBotApi, scope: ChatMessage) -> ChatMessage:
    """The shortest valid path from the first question to the review."""
    people = await phone.tap(scope, "Just me")
    nationality = await phone.tap(people, "18 to 59")
    documents = await phone.tap(nationality, "Afghanistan")
    needs = await phone.tap(documents, "Yes, everyone")
    location = await phone.tap(needs, "Continue")
    assert "Where are you now?" in (location.text or "")
    await api.share_location(phone.user_id, 10.0, 20.0)
    destination = await phone.next_message()
    phone_question = await phone.tap(destination, "No preference")
    consent = await phone.tap(phone_question, "Skip")
    return await phone.tap(consent, "Yes, share it")


async def test_household_registration_every_question(
    phone: Phone, running_bot: RunningBot, places: None, bot_api: LoopbackBotApi
) -> None:
    scope = await start_registering(phone)
    assert "Who are you registering?" in (scope.text or "")
    assert inline_labels(scope) == ["🙋 Just me", "👨‍👩‍👧 Me and my family or group"]

    people = await phone.tap(scope, "family")
    assert "Total: 1" in (people.text or "")
    for data in ("reg:people:plus-children", "reg:people:plus-children", "reg:people:plus-older"):
        await phone.press_data(people.message_id, data)
        people = await phone.next_edit()
    assert "Total: 4" in (people.text or "")
    assert "Children (under 18): 2" in inline_labels(people)
    await phone.press_data(people.message_id, "reg:people:minus-older")
    people = await phone.next_edit()
    assert "Total: 3" in (people.text or "")

    nationality = await phone.tap(people, "Done")
    assert "nationality" in (nationality.text or "")
    assert "Afghanistan" in inline_labels(nationality), "countries with a mission are one tap"
    choices = await phone.send("Afganistan")  # a typo
    assert choices.text == "Did you mean:"
    documents = await phone.tap(choices, "Afghanistan")

    consulate = await phone.tap(documents, "No")
    assert "Embassy of Afghanistan" in (consulate.text or "")
    assert "+000 100 200" in (consulate.text or "")
    needs = await phone.next_message()
    assert "special help" in (needs.text or "")
    await phone.press_data(needs.message_id, "reg:needs:medical")
    needs = await phone.next_edit()
    assert "✅ 🩺 Medical care" in inline_labels(needs)
    await phone.press_data(needs.message_id, "reg:needs:pregnancy")
    needs = await phone.next_edit()

    location = await phone.tap(needs, "Continue")
    assert "📍 Share my location" in reply_labels(location)
    which = await phone.send("Riversde")  # a typo of a place in the gazetteer
    assert "Which place" in (which.text or "")
    destination = await phone.tap(which, "Riverside")
    assert "Where do you want to go?" in (destination.text or "")

    number = await phone.send("Nairobi, Kenya")
    wrong = await phone.send("call me maybe")
    assert "does not look like a phone number" in (wrong.text or "")
    consent = await phone.send("+254 712-345-678")
    declined = await phone.tap(consent, "No")
    assert "cannot put you on a transport list" in (declined.text or "")
    review = await phone.tap(declined, "Yes, share it")
    assert "Please check your answers" in (review.text or "")
    for expected in (
        "Children (under 18): 2",
        "Afghanistan",
        "Medical care, Pregnancy",
        "Riverside",
        "Nairobi, Kenya",
        "+254712345678",
    ):
        assert expected in (review.text or ""), expected
    assert number.text is not None

    done = await phone.tap(review, "Confirm")
    assert "You are registered. Your reference is" in (done.text or "")
    assert REGISTER in reply_labels(done), "the main menu is back"

    stored = await registration_of(running_bot)
    assert stored is not None and stored.status == "submitted" and stored.step is None
    assert (stored.children, stored.adults, stored.older) == (2, 1, 0)
    assert stored.nationality == "AF" and stored.documents == "none"
    assert stored.needs == ["medical", "pregnancy"]
    assert stored.departure_point_id is not None, "nearest departure point assigned"
    assert stored.phone == "+254712345678" and stored.consent_share is True
    assert stored.reference and stored.reference in (done.text or "").replace("-", "")


async def test_self_registration_with_shared_location_back_and_skip(
    phone: Phone, running_bot: RunningBot, places: None, bot_api: LoopbackBotApi
) -> None:
    scope = await start_registering(phone)
    people = await phone.tap(scope, "Just me")
    assert people.text == "How old are you?"
    back = await phone.tap(people, "Back")
    assert "Who are you registering?" in (back.text or ""), "Back goes to the question before"
    people = await phone.tap(back, "Just me")
    nationality = await phone.tap(people, "60 and over")
    stateless = await phone.tap(nationality, "Stateless or not sure")
    needs = await phone.tap(stateless, "Some of us")
    assert "special help" in (needs.text or ""), "no consulate to offer without a nationality"
    await phone.tap(needs, "Continue")
    back_to_needs = await phone.send("⬅ Back")
    assert "special help" in (back_to_needs.text or "")
    location = await phone.tap(back_to_needs, "Continue")
    assert "Where are you now?" in (location.text or "")
    await bot_api.share_location(phone.user_id, 10.001, 20.002)
    destination = await phone.next_message()
    phone_question = await phone.tap(destination, "No preference")
    consent = await phone.tap(phone_question, "Skip")
    review = await phone.tap(consent, "Yes, share it")
    assert "Older people (60 and over): 1" in (review.text or "")
    assert "Shared location" in (review.text or "")
    assert "Phone: Not given" in (review.text or "")

    # Change an answer from the review: the question returns to the review.
    changed = await phone.tap(review, "Destination")
    review = await phone.send("Mombasa")
    assert "Please check your answers" in (review.text or "")
    assert "Mombasa" in (review.text or "")
    assert changed.text is not None
    await phone.tap(review, "Confirm")
    stored = await registration_of(running_bot)
    assert stored is not None and stored.submitted
    assert (stored.latitude, stored.longitude) == (10.001, 20.002), "rounded to about 100 m"
    assert stored.nationality == "none" and stored.phone is None


async def test_unknown_place_and_country_get_clear_answers(
    phone: Phone, running_bot: RunningBot, places: None
) -> None:
    scope = await start_registering(phone)
    people = await phone.tap(scope, "Just me")
    await phone.tap(people, "18 to 59")
    unknown = await phone.send("qwxzv")
    assert "could not find a country called “qwxzv”" in (unknown.text or "")
    assert "Stateless or not sure" in inline_labels(unknown), "the question is asked again"
    choices = await phone.send("Afghanistan")
    none_of_these = await phone.tap(choices, "None of these")
    assert "nationality" in (none_of_these.text or "")
    documents = await phone.tap(none_of_these, "Afghanistan")
    needs = await phone.tap(documents, "Yes, everyone")
    location = await phone.tap(needs, "Continue")
    destination = await phone.send("Atlantis")
    assert "could not find “Atlantis” on our map" in (destination.text or "")
    assert "Where do you want to go?" in (destination.text or "")
    assert location.text is not None
    stored = await registration_of(running_bot)
    assert stored is not None and stored.location_text == "Atlantis"
    assert stored.departure_point_id is None


async def test_cancel_deletes_a_draft(phone: Phone, running_bot: RunningBot) -> None:
    scope = await start_registering(phone)
    await phone.tap(scope, "Just me")
    cancelled = await phone.send("/cancel")
    assert "We deleted your answers" in (cancelled.text or "")
    assert REGISTER in reply_labels(cancelled)
    assert await registration_of(running_bot) is None
    again = await phone.send(REGISTER)
    assert "Who are you registering?" in (again.text or "")


async def test_declining_to_share_can_cancel(
    phone: Phone, running_bot: RunningBot, places: None, bot_api: LoopbackBotApi
) -> None:
    scope = await start_registering(phone)
    people = await phone.tap(scope, "Just me")
    nationality = await phone.tap(people, "18 to 59")
    documents = await phone.tap(nationality, "Afghanistan")
    needs = await phone.tap(documents, "Yes, everyone")
    await phone.tap(needs, "Continue")
    await bot_api.share_location(phone.user_id, 10.0, 20.0)
    destination = await phone.next_message()
    phone_question = await phone.tap(destination, "No preference")
    consent = await phone.tap(phone_question, "Skip")
    declined = await phone.tap(consent, "No")
    gone = await phone.tap(declined, "Cancel my registration")
    assert "We deleted your answers" in (gone.text or "")
    assert await registration_of(running_bot) is None


async def test_a_restart_in_the_middle_loses_nothing(
    bot_api: LoopbackBotApi, start_bot: StartBot, places: None
) -> None:
    phone = Phone.of(bot_api, first_name="Amina", language_code="en")
    async with start_bot():
        scope = await start_registering(phone)
        people = await phone.tap(scope, "Just me")
        nationality = await phone.tap(people, "18 to 59")
    async with start_bot() as bot:
        # The conversation resumes where it was: typed text is still read as a nationality.
        choices = await phone.send("Afghanistan")
        assert choices.text == "Did you mean:"
        documents = await phone.tap(choices, "Afghanistan")
        assert "travel document" in (documents.text or "")
        stored = await registration_of(bot)
        assert stored is not None and stored.step == "documents"
        assert stored.adults == 1 and stored.nationality == "AF"
    assert nationality.message_id


@pytest.mark.settings(REGISTRATION_TIMEOUT_MINUTES="0.01")
async def test_timeout_pauses_and_the_draft_is_offered_again(
    bot_api: LoopbackBotApi, start_bot: StartBot
) -> None:
    phone = Phone.of(bot_api, first_name="Amina", language_code="en")
    async with start_bot() as bot:
        scope = await start_registering(phone)
        await phone.tap(scope, "Just me")
        paused = await phone.next_message()
        assert "Your registration is paused" in (paused.text or "")
        assert REGISTER in reply_labels(paused)
        stored = await registration_of(bot)
        assert stored is not None and stored.step is None and stored.for_household is False

        resume = await phone.send(REGISTER)
        assert "You started a registration" in (resume.text or "")
        people = await phone.tap(resume, "Continue")
        assert people.text == "How old are you?", "the first unanswered question"


async def test_a_day_later_the_answers_are_still_there(
    phone: Phone, running_bot: RunningBot, places: None
) -> None:
    scope = await start_registering(phone)
    people = await phone.tap(scope, "Just me")
    await phone.tap(people, "18 to 59")
    await phone.send("/menu")  # leaves the registration, answers kept
    async with running_bot.services.db.transaction() as session:
        stored = await session.scalar(select(Registration))
        assert stored is not None and stored.step is None
        stored.updated_at = utcnow() - timedelta(days=1)
    resume = await phone.send(REGISTER)
    assert "You started a registration 1 day ago" in (resume.text or "")
    nationality = await phone.tap(resume, "Continue")
    assert "nationality" in (nationality.text or "")
    restart = await phone.send("/myregistration")
    assert "You started a registration" in (restart.text or "")
    scope = await phone.tap(restart, "Start again")
    assert "Who are you registering?" in (scope.text or "")
    stored = await registration_of(running_bot)
    assert stored is not None and stored.adults == 0 and stored.for_household is None


async def test_myregistration_view_change_register_twice_and_cancel(
    phone: Phone, running_bot: RunningBot, places: None, bot_api: LoopbackBotApi
) -> None:
    await onboard(phone)
    none = await phone.send("/myregistration")
    assert "You have no registration" in (none.text or "")
    scope = await phone.send(REGISTER)
    review = await answer_until_review(phone, bot_api, scope)
    done = await phone.tap(review, "Confirm")
    first = await registration_of(running_bot)
    assert first is not None and first.reference is not None

    manage = await phone.send("/myregistration")
    assert "You are registered" in (manage.text or "")
    review = await phone.tap(manage, "Change my answers")
    question = await phone.tap(review, "People")
    assert question.text == "How old are you?"
    review = await phone.tap(question, "under 18")
    assert "Children (under 18): 1" in (review.text or "")
    updated = await phone.tap(review, "Done")
    assert "is updated" in (updated.text or "")

    again = await phone.send(REGISTER)  # registering twice opens the same registration
    assert "You are registered" in (again.text or "")
    async with running_bot.services.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Registration)) == 1
    confirm = await phone.tap(again, "Cancel my registration")
    kept = await phone.tap(confirm, "No, keep it")
    assert "kept" in (kept.text or "")
    manage = await phone.send("/myregistration")
    confirm = await phone.tap(manage, "Cancel my registration")
    cancelled = await phone.tap(confirm, "Yes, cancel it")
    assert "is cancelled" in (cancelled.text or "")
    stored = await registration_of(running_bot)
    assert stored is not None and stored.status == "cancelled"
    assert stored.reference == first.reference
    assert stored.latitude is None and stored.phone is None, "location and phone erased"
    assert done.text is not None


async def test_bad_input_inside_the_registration(
    phone: Phone, running_bot: RunningBot, bot_api: LoopbackBotApi
) -> None:
    scope = await start_registering(phone)
    await bot_api.send_sticker(phone.user_id)
    again = await phone.next_message()
    assert "Please answer the question below" in (again.text or "")
    assert "Who are you registering?" in (again.text or "")
    words = await phone.send("just me please")
    assert "Please answer the question below" in (words.text or "")
    unknown = await phone.send("/frobnicate")
    assert "Who are you registering?" in (unknown.text or "")
    long_text = await phone.send("x" * 4096)  # the longest Telegram delivers
    assert "Who are you registering?" in (long_text.text or "")

    people = await phone.tap(scope, "Just me")
    # The first question's button again, from the old message: stale, and the current
    # question is shown.
    await phone.press_data(scope.message_id, "reg:scope:household")
    current = await phone.next_message()
    assert current.text == people.text
    assert "This button is no longer active." in await phone.answered_callbacks()
    await phone.press_data(people.message_id, "reg:people:one-forged")
    current = await phone.next_message()
    assert current.text == people.text

    # A menu button pauses the registration and is answered.
    help_text = await phone.send("❓ Help")
    assert "/menu" in (help_text.text or "")
    stored = await registration_of(running_bot)
    assert stored is not None and stored.step is None and stored.for_household is False


async def test_not_onboarded_people_are_shown_the_consent_first(
    phone: Phone, running_bot: RunningBot
) -> None:
    notice = await phone.send("/myregistration")
    assert "Do you agree?" in (notice.text or "")
    assert await registration_of(running_bot) is None


async def test_other_services_in_the_middle_of_registering(
    phone: Phone, running_bot: RunningBot, places: None
) -> None:
    scope = await start_registering(phone)
    people = await phone.tap(scope, "Just me")
    asked = await phone.send("🏛 Consulate contacts")
    missions = await phone.tap(asked, "Afghanistan")
    assert "Embassy of Afghanistan" in (missions.text or "")
    nationality = await phone.tap(people, "18 to 59")
    assert "nationality" in (nationality.text or ""), "the registration went on where it was"
    stored = await registration_of(running_bot)
    assert stored is not None and stored.step == "nationality" and stored.adults == 1
