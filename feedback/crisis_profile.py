"""The deployment's crisis profile: one MCOF scenario and one phase (MC/2355, Annex I)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class CrisisProfile:
    scenario: str
    phase: str


@dataclass(frozen=True)
class ScenarioCatalog:
    scenarios: dict[str, str]  # key -> title
    phases: dict[str, str]  # key -> description


@cache
def scenario_catalog() -> ScenarioCatalog:
    """The scenarios and phases of Annex I, read from the reviewable data file."""
    text = resources.files("feedback").joinpath("data/crisis_scenarios.toml").read_text("utf-8")
    data = tomllib.loads(text)
    return ScenarioCatalog(
        scenarios={key: value["title"] for key, value in data["scenarios"].items()},
        phases=dict(data["phases"]),
    )
