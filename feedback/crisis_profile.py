"""The deployment's crisis profile: one MCOF scenario and one phase (MC/2355, Annex I).

The data file also says which sectors of assistance Annex I names as critical or important in
each scenario and phase (`priorities`), each with the paragraph and the words it rests on; the
gap flags (feedback/flags.py) watch those sectors first.
"""

from __future__ import annotations

import enum
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class CrisisProfile:
    scenario: str
    phase: str


@dataclass(frozen=True)
class ScenarioCatalog:
    scenarios: dict[str, str]  # key -> title
    phases: dict[str, str]  # key -> description


class PriorityLevel(enum.StrEnum):
    CRITICAL = "critical"
    IMPORTANT = "important"


@dataclass(frozen=True)
class Priority:
    sector: int  # MCOF sector of assistance, 1-15
    level: PriorityLevel
    paragraph: int  # of MC/2355 Annex I
    basis: str  # the words of that paragraph the entry rests on

    @property
    def source(self) -> str:
        return f"MC/2355 Annex I, paragraph {self.paragraph}"


SOURCE = re.compile(r"MC/2355 Annex I, paragraph (\d+)")


@cache
def _data() -> dict[str, Any]:
    text = resources.files("feedback").joinpath("data/crisis_scenarios.toml").read_text("utf-8")
    return tomllib.loads(text)


@cache
def scenario_catalog() -> ScenarioCatalog:
    """The scenarios and phases of Annex I, read from the reviewable data file."""
    data = _data()
    return ScenarioCatalog(
        scenarios={key: value["title"] for key, value in data["scenarios"].items()},
        phases=dict(data["phases"]),
    )


@cache
def priority_table() -> dict[tuple[str, str], dict[int, Priority]]:
    """(scenario, phase) -> sector -> priority, for every scenario and phase in the file."""
    table: dict[tuple[str, str], dict[int, Priority]] = {}
    for scenario, entry in _data()["scenarios"].items():
        for phase, rows in entry.get("priorities", {}).items():
            table[(scenario, phase)] = {row["sector"]: _priority(row) for row in rows}
    return table


def _priority(row: dict[str, Any]) -> Priority:
    match = SOURCE.fullmatch(row["source"])
    if match is None:
        raise ValueError(f"source {row['source']!r} is not 'MC/2355 Annex I, paragraph N'")
    return Priority(
        sector=int(row["sector"]),
        level=PriorityLevel(row["level"]),
        paragraph=int(match.group(1)),
        basis=row["basis"],
    )


def priorities(profile: CrisisProfile) -> dict[int, Priority]:
    """The sectors Annex I names as critical or important for the profile's scenario and
    phase (empty for an unknown one)."""
    return dict(priority_table().get((profile.scenario, profile.phase), {}))


def critical_sectors(profile: CrisisProfile) -> frozenset[int]:
    return frozenset(
        sector
        for sector, priority in priorities(profile).items()
        if priority.level is PriorityLevel.CRITICAL
    )
