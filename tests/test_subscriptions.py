"""Subscriptions without Telegram: topics × areas, defaults, the evacuation topic on
registration, and the texts of the stop button in every language."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.flows.subscriptions import AGAIN, RESUMED, STOP, STOPPED, stop_markup
from evacuation.registrations import start_registration, submit
from messages.contacts import Contact, Subscription, record_consent
from messages.i18n import translations
from messages.languages import all_languages
from messages.places import Place, PlaceKind
from messages.subscriptions import (
    area_choice,
    set_areas,
    subscribe,
    subscribe_defaults,
    subscriptions_of,
    toggle_topic,
    toggled_area,
    unsubscribe_topic,
)
from messages.topics import TOPICS
from storage.database import Database
from tests.test_registrations import complete

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


async def add_areas(session: AsyncSession) -> None:
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
        for code, name in (("XY01", "North"), ("XY02", "South"), ("XY03", "East"))
    )
    await session.flush()


async def new_contact(session: AsyncSession, pseudonym: str = "p1") -> Contact:
    return await record_consent(session, pseudonym, 1, "en", NOW)


async def rows(session: AsyncSession, contact_id: int) -> list[tuple[str, str | None]]:
    result = await session.execute(
        select(Subscription.topic, Subscription.area)
        .where(Subscription.contact_id == contact_id)
        .order_by(Subscription.topic, Subscription.area)
    )
    return [(topic, area) for topic, area in result]


def test_default_topics_are_general_alerts_only() -> None:
    assert [topic.key for topic in TOPICS if topic.default] == ["alerts"]


def test_area_choice_and_toggled_area() -> None:
    assert area_choice({}) is None
    assert area_choice({"alerts": None}) is None
    # A topic subscribed for the person everywhere does not undo their own choice.
    both = {"alerts": frozenset({"XY01"}), "evacuation": None, "health": frozenset({"XY02"})}
    assert area_choice(both) == frozenset({"XY01", "XY02"})
    assert toggled_area(None, "XY01") == frozenset({"XY01"})
    assert toggled_area(frozenset({"XY01"}), "XY02") == frozenset({"XY01", "XY02"})
    assert toggled_area(frozenset({"XY01", "XY02"}), "XY01") == frozenset({"XY02"})
    assert toggled_area(frozenset({"XY01"}), "XY01") is None, "never for nowhere"
    assert toggled_area(frozenset({"XY01"}), None) is None


async def test_defaults_once_and_toggle(database: Database) -> None:
    async with database.transaction() as session:
        contact = await new_contact(session)
        assert await subscribe_defaults(session, contact.id) == ["alerts"]
        assert await subscribe_defaults(session, contact.id) == [], "never twice"
        assert await subscriptions_of(session, contact.id) == {"alerts": None}

        assert await toggle_topic(session, contact.id, "health") is True
        assert await subscriptions_of(session, contact.id) == {"alerts": None, "health": None}
        assert await toggle_topic(session, contact.id, "alerts") is False
        assert await subscriptions_of(session, contact.id) == {"health": None}
        assert await rows(session, contact.id) == [("health", None)]
        with pytest.raises(ValueError, match="unknown topic"):
            await toggle_topic(session, contact.id, "weather")


async def test_areas_apply_to_every_topic_and_new_topics_follow(database: Database) -> None:
    async with database.transaction() as session:
        await add_areas(session)
        contact = await new_contact(session)
        await subscribe_defaults(session, contact.id)
        await subscribe(session, contact.id, "shelter")
        after = await set_areas(session, contact.id, frozenset({"XY01", "XY02"}))
        assert after == {
            "alerts": frozenset({"XY01", "XY02"}),
            "shelter": frozenset({"XY01", "XY02"}),
        }
        assert await rows(session, contact.id) == [
            ("alerts", "XY01"),
            ("alerts", "XY02"),
            ("shelter", "XY01"),
            ("shelter", "XY02"),
        ]
        # A topic turned on gets the areas the person chose.
        assert await toggle_topic(session, contact.id, "health") is True
        subscriptions = await subscriptions_of(session, contact.id)
        assert subscriptions["health"] == frozenset({"XY01", "XY02"})

        await set_areas(session, contact.id, frozenset({"XY03"}))
        assert set(await rows(session, contact.id)) == {
            ("alerts", "XY03"),
            ("health", "XY03"),
            ("shelter", "XY03"),
        }
        await set_areas(session, contact.id, None)
        assert await subscriptions_of(session, contact.id) == {
            "alerts": None,
            "shelter": None,
            "health": None,
        }
        assert len(await rows(session, contact.id)) == 3

        with pytest.raises(ValueError, match="unknown area"):
            await set_areas(session, contact.id, frozenset({"XY01", "ZZ99"}))
        with pytest.raises(ValueError, match="empty"):
            await set_areas(session, contact.id, frozenset())
        with pytest.raises(ValueError, match="unknown area"):
            await subscribe(session, contact.id, "consular", frozenset({"ZZ99"}))


async def test_unsubscribe_a_topic_in_every_area(database: Database) -> None:
    async with database.transaction() as session:
        await add_areas(session)
        contact = await new_contact(session)
        other = await new_contact(session, "p2")
        await subscribe(session, contact.id, "shelter", frozenset({"XY01", "XY02"}))
        await subscribe(session, contact.id, "alerts")
        await subscribe(session, other.id, "shelter")
        assert await unsubscribe_topic(session, contact.id, "shelter") is True
        assert await unsubscribe_topic(session, contact.id, "shelter") is False
        assert await rows(session, contact.id) == [("alerts", None)]
        assert await rows(session, other.id) == [("shelter", None)], "only their own"
        with pytest.raises(ValueError, match="unknown topic"):
            await unsubscribe_topic(session, contact.id, "nope")


async def test_subscribe_keeps_an_existing_subscription(database: Database) -> None:
    async with database.transaction() as session:
        await add_areas(session)
        contact = await new_contact(session)
        await subscribe(session, contact.id, "evacuation", frozenset({"XY02"}))
        assert await subscribe(session, contact.id, "evacuation") is False
        assert await rows(session, contact.id) == [("evacuation", "XY02")]


async def test_retired_topics_are_left_out(database: Database) -> None:
    async with database.transaction() as session:
        contact = await new_contact(session)
        session.add(Subscription(contact_id=contact.id, topic="old-topic", area=None))
        await session.flush()
        assert await subscriptions_of(session, contact.id) == {}


async def test_first_registration_subscribes_evacuation_once(database: Database) -> None:
    async with database.transaction() as session:
        contact = await new_contact(session)
        registration = complete(await start_registration(session, contact.id, NOW))
        await submit(session, registration, NOW)
        assert await subscriptions_of(session, contact.id) == {"evacuation": None}
        # They tap "Stop"; changing an answer later does not subscribe them again.
        await unsubscribe_topic(session, contact.id, "evacuation")
        registration.destination = "Elsewhere"
        await submit(session, registration, NOW)
        assert await subscriptions_of(session, contact.id) == {}


async def test_registration_keeps_areas_already_chosen(database: Database) -> None:
    async with database.transaction() as session:
        await add_areas(session)
        contact = await new_contact(session)
        await subscribe(session, contact.id, "evacuation", frozenset({"XY01"}))
        await submit(session, complete(await start_registration(session, contact.id, NOW)), NOW)
        assert await subscriptions_of(session, contact.id) == {"evacuation": frozenset({"XY01"})}


@pytest.mark.parametrize("language", all_languages(), ids=lambda language: language.code)
def test_stop_texts_fit_telegram_in_every_language(language: object) -> None:
    """A callback answer holds at most 200 characters; a button label should stay short."""
    from messages.languages import Language

    assert isinstance(language, Language)
    gettext = translations(language.code).gettext
    for topic in TOPICS:
        label = gettext(topic.label)
        for template in (STOPPED, RESUMED):
            assert len(gettext(template).format(topic=label)) <= 200
        [[button]] = stop_markup(gettext, topic.key).inline_keyboard
        assert button.callback_data == f"unsub:{topic.key}"
        assert button.text == "🔕 " + gettext(STOP).format(topic=label)
        assert len(button.text) <= 64
    assert gettext(AGAIN)
