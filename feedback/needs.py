"""The need categories a person can pick behind "Tell us what you need".

Each maps to the codes it stands for (clusters, and MCOF sectors of MC/2355 para 10), which
the item keeps with confidence 1: the person said so. Labels are msgids, shown translated.
"""

from __future__ import annotations

from dataclasses import dataclass

from messages.i18n import N_


@dataclass(frozen=True)
class Need:
    key: str
    label: str
    clusters: tuple[str, ...]
    sectors: tuple[int, ...]


NEEDS: tuple[Need, ...] = (
    Need("shelter", N_("🏠 Shelter"), ("shelter",), (2,)),
    Need("food", N_("🍞 Food"), ("food_security",), ()),
    Need("water", N_("💧 Water and hygiene"), ("wash",), ()),
    Need("health", N_("🩺 Health care"), ("health",), (4,)),
    Need("transport", N_("🚌 Transport or evacuation"), ("logistics",), (3,)),
    Need("documents", N_("🛂 Documents or embassy"), (), (12,)),
    Need("safety", N_("🛡 Safety"), ("protection",), (10,)),
    Need("family", N_("👪 Finding family"), ("protection",), (10,)),
    Need("talk", N_("💬 Someone to talk to"), (), (5,)),
    Need("money", N_("💵 Money or work"), ("early_recovery",), (6,)),
    Need("information", N_("📢 Information"), ("emergency_telecommunications",), (15,)),
)
NEED_KEYS = tuple(need.key for need in NEEDS)


def needs_of_mask(mask: int) -> tuple[Need, ...]:
    """The picked needs, from the bitmask the picker keeps in its buttons (no server state)."""
    return tuple(need for i, need in enumerate(NEEDS) if mask >> i & 1)


def needs_of_keys(keys: str | None) -> tuple[Need, ...]:
    wanted = set((keys or "").split(","))
    return tuple(need for need in NEEDS if need.key in wanted)
