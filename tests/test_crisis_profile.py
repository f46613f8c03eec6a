"""The crisis profile's priorities: every scenario and phase has sectors from its own Annex I
paragraph, each a real MCOF sector with a valid level and the words it rests on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from feedback.crisis_profile import (
    CrisisProfile,
    PriorityLevel,
    critical_sectors,
    priorities,
    priority_table,
    scenario_catalog,
)
from feedback.taxonomy import taxonomy

# Annex I: each scenario's "Sectors of assistance" paragraphs, before / during / after.
PARAGRAPHS = {
    "man_made_disaster": (8, 9, 10),
    "sudden_onset_natural_disaster": (14, 15, 16),
    "slow_onset_natural_disaster": (20, 21, 22),
    "protracted_crisis": (26, 27, 28),
    "health_crisis": (32, 33, 34),
}
PHASES = ("before", "during", "after")
SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"


def test_every_scenario_and_phase_has_priorities_from_its_own_paragraph() -> None:
    catalog = scenario_catalog()
    assert set(catalog.scenarios) == set(PARAGRAPHS)
    assert tuple(catalog.phases) == PHASES
    table = priority_table()
    assert set(table) == {(s, p) for s in PARAGRAPHS for p in PHASES}
    sectors = set(taxonomy().sectors)
    for (scenario, phase), entries in table.items():
        assert entries, (scenario, phase)
        expected = PARAGRAPHS[scenario][PHASES.index(phase)]
        for number, priority in entries.items():
            assert number == priority.sector
            assert number in sectors, (scenario, phase, number)
            assert priority.paragraph == expected, (scenario, phase, number)
            assert priority.source == f"MC/2355 Annex I, paragraph {expected}"
            assert priority.level in (PriorityLevel.CRITICAL, PriorityLevel.IMPORTANT)
            assert len(priority.basis) > 10


def test_priorities_for_a_profile() -> None:
    during = priorities(CrisisProfile("sudden_onset_natural_disaster", "during"))
    # Paragraph 15: shelter is crucial, humanitarian communications critical.
    assert during[2].level is PriorityLevel.CRITICAL
    assert during[15].level is PriorityLevel.CRITICAL
    assert 12 not in during
    before = priorities(CrisisProfile("sudden_onset_natural_disaster", "before"))
    assert before[12].level is PriorityLevel.IMPORTANT  # paragraph 14: consular "important"
    assert critical_sectors(CrisisProfile("sudden_onset_natural_disaster", "before")) == {8}
    assert priorities(CrisisProfile("unknown", "during")) == {}


def test_the_priorities_are_a_copy() -> None:
    profile = CrisisProfile("health_crisis", "during")
    priorities(profile).clear()
    assert priorities(profile)


def _annex_paragraphs(text: str) -> dict[int, str]:
    annex = text[text.index("## Annex I") :]
    found: dict[int, str] = {}
    for match in re.finditer(r"^(\d+)\. (.+)$", annex, flags=re.MULTILINE):
        found.setdefault(int(match.group(1)), match.group(2))
    return found


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("“", '"').replace("”", '"')).strip()


def test_each_basis_is_quoted_from_its_paragraph() -> None:
    """Checked against the MC/2355 text when the shared data folder is beside the repo."""
    sources = sorted(SEEDS.glob("002_*.txt"))
    if not sources:
        pytest.skip("../shared/seeds/002_*.txt (MC/2355) is not available")
    paragraphs = _annex_paragraphs(sources[0].read_text("utf-8"))
    for (scenario, phase), entries in priority_table().items():
        for priority in entries.values():
            paragraph = _plain(paragraphs[priority.paragraph])
            for part in priority.basis.split(" ... "):
                assert _plain(part) in paragraph, (scenario, phase, priority.sector, part)
