"""The topics people subscribe to and broadcasts are sent under.

Each topic names the MCOF sectors of assistance (MC/2355 para 10) whose news it carries, so
that an officer choosing an audience and a person choosing what to hear see the same words.
Labels are msgids, shown translated. `default` topics are subscribed on consent (everywhere):
a person who never opens the subscriptions screen still hears general alerts, and every
broadcast carries a one-tap way to stop its topic.
"""

from __future__ import annotations

from dataclasses import dataclass

from messages.i18n import N_


@dataclass(frozen=True)
class Topic:
    key: str
    icon: str
    label: str
    sectors: tuple[int, ...]
    default: bool = False


TOPICS: tuple[Topic, ...] = (
    Topic("alerts", "📢", N_("General alerts"), (15,), default=True),
    Topic("shelter", "🏠", N_("Shelter updates"), (2,)),
    Topic("evacuation", "🚌", N_("Evacuation and transport"), (3,)),
    Topic("health", "🩺", N_("Health"), (4,)),
    Topic("consular", "🏛", N_("Consular news"), (12,)),
)
TOPIC_KEYS: tuple[str, ...] = tuple(topic.key for topic in TOPICS)


def get_topic(key: str) -> Topic | None:
    return next((topic for topic in TOPICS if topic.key == key), None)
