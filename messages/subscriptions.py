"""Subscriptions: which topics a contact hears about, and in which areas.

Stored as rows topic × area (`messages.contacts.Subscription`): an adm1 area code, or NULL
for everywhere. A person chooses one set of areas for all their topics (the screen has a
single area picker); a topic subscribed for them (defaults on consent, evacuation on
registration) is subscribed everywhere, so the sets can differ until they pick areas again.

- (none) → everywhere: consent subscribes the default topics (`subscribe_defaults`); a
  submitted evacuation registration subscribes `evacuation` unless already subscribed.
- off → on: the person turns a topic on; it gets their area choice (`area_choice`).
- on → off: the person turns it off, or taps "Stop" under a broadcast (`unsubscribe_topic`);
  every area row of the topic goes.
- areas: the person picks areas; every subscribed topic gets exactly those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from messages.areas import area_names
from messages.contacts import Subscription
from messages.topics import TOPIC_KEYS, TOPICS

# The areas of a subscription: adm1 codes, or None for everywhere.
Areas = frozenset[str] | None
# topic key -> areas, in the order of `messages.topics.TOPICS`.
Subscriptions = dict[str, Areas]


def check_topic(topic: str) -> None:
    if topic not in TOPIC_KEYS:
        raise ValueError(f"unknown topic {topic!r}")


async def check_areas(session: AsyncSession, areas: Areas) -> None:
    if areas is None:
        return
    if not areas:
        raise ValueError("an empty set of areas: use None for everywhere")
    unknown = areas - (await area_names(session)).keys()
    if unknown:
        raise ValueError(f"unknown area codes {sorted(unknown)}")


async def subscriptions_of(session: AsyncSession, contact_id: int) -> Subscriptions:
    """Topic -> areas; a topic with an everywhere row is everywhere. Topics no longer in
    the code are left out (and left alone)."""
    rows = await session.execute(
        select(Subscription.topic, Subscription.area).where(Subscription.contact_id == contact_id)
    )
    found: dict[str, set[str] | None] = {}
    for topic, area in rows:
        if topic not in TOPIC_KEYS:
            continue
        if area is None:
            found[topic] = None
        else:
            areas = found.setdefault(topic, set())
            if areas is not None:
                areas.add(area)
    return {
        key: None if found[key] is None else frozenset(found[key] or ())
        for key in TOPIC_KEYS
        if key in found
    }


def area_choice(subscriptions: Mapping[str, Areas]) -> Areas:
    """The areas the person chose: those of their topics limited to areas (a topic
    subscribed for them everywhere does not undo a choice they made), else everywhere."""
    limited = [areas for areas in subscriptions.values() if areas is not None]
    return frozenset().union(*limited) if limited else None


def toggled_area(current: Areas, code: str | None) -> Areas:
    """The area choice after a tap on an area (`code`) or on "Everywhere" (None). Taking
    the last area away means everywhere: a subscription is never for nowhere."""
    if code is None:
        return None
    if current is None:
        return frozenset({code})
    remaining = current ^ {code}
    return remaining or None


def _rows(contact_id: int, topic: str, areas: Areas) -> list[Subscription]:
    codes: Iterable[str | None] = [None] if areas is None else sorted(areas)
    return [Subscription(contact_id=contact_id, topic=topic, area=code) for code in codes]


async def subscribe(
    session: AsyncSession, contact_id: int, topic: str, areas: Areas = None
) -> bool:
    """Subscribe a topic in `areas`, unless it is subscribed already (in any area): False then."""
    check_topic(topic)
    await check_areas(session, areas)
    existing = await session.scalar(
        select(Subscription.id).where(
            Subscription.contact_id == contact_id, Subscription.topic == topic
        )
    )
    if existing is not None:
        return False
    session.add_all(_rows(contact_id, topic, areas))
    await session.flush()
    return True


async def unsubscribe_topic(session: AsyncSession, contact_id: int, topic: str) -> bool:
    """Stop a topic in every area; False when it was not subscribed."""
    check_topic(topic)
    result = await session.execute(
        delete(Subscription)
        .where(Subscription.contact_id == contact_id, Subscription.topic == topic)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def toggle_topic(session: AsyncSession, contact_id: int, topic: str) -> bool:
    """Turn a topic off if on, else on in the person's area choice; True when now on."""
    check_topic(topic)
    if await unsubscribe_topic(session, contact_id, topic):
        return False
    current = await subscriptions_of(session, contact_id)
    return await subscribe(session, contact_id, topic, area_choice(current))


async def set_areas(session: AsyncSession, contact_id: int, areas: Areas) -> Subscriptions:
    """Give every subscribed topic exactly `areas`; the subscriptions after the change."""
    await check_areas(session, areas)
    current = await subscriptions_of(session, contact_id)
    for topic in current:
        await session.execute(
            delete(Subscription)
            .where(Subscription.contact_id == contact_id, Subscription.topic == topic)
            .execution_options(synchronize_session=False)
        )
        session.add_all(_rows(contact_id, topic, areas))
    await session.flush()
    return {topic: areas for topic in current}


async def subscribe_defaults(session: AsyncSession, contact_id: int) -> list[str]:
    """The default topics, everywhere, for a new contact; the topics newly subscribed."""
    return [
        topic.key
        for topic in TOPICS
        if topic.default and await subscribe(session, contact_id, topic.key)
    ]
