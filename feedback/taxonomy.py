"""The coding taxonomy for feedback, read from the reviewable data/taxonomy.toml.

Feedback types (IFRC), MCOF sectors of assistance 1-15 (MC/2355 para 10), IASC clusters and
the sensitive categories that must reach a protection focal point. Labels are English msgids.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Sector:
    number: int
    name: str
    definition: str
    source: str


@dataclass(frozen=True)
class Cluster:
    key: str
    name: str
    sectors: tuple[int, ...]  # sectors of assistance a suggestion of this cluster implies
    area_of: str | None = None  # the parent cluster of an area of responsibility


@dataclass(frozen=True)
class SensitiveCategory:
    key: str
    name: str
    clusters: tuple[str, ...]  # implied clusters
    sectors: tuple[int, ...]  # implied sectors


@dataclass(frozen=True)
class Taxonomy:
    types: dict[str, str]  # key -> English label
    sectors: dict[int, str]  # number -> name
    sector_details: dict[int, Sector]
    clusters: dict[str, str]  # key -> name
    cluster_details: dict[str, Cluster]
    sensitive_categories: dict[str, SensitiveCategory]


@cache
def taxonomy() -> Taxonomy:
    text = resources.files("feedback").joinpath("data/taxonomy.toml").read_text("utf-8")
    return parse_taxonomy(tomllib.loads(text))


def parse_taxonomy(data: dict[str, Any]) -> Taxonomy:
    sectors = {
        int(number): Sector(int(number), entry["name"], entry["definition"], entry["source"])
        for number, entry in data["sectors"].items()
    }
    clusters = {
        key: Cluster(key, entry["name"], tuple(entry["sectors"]), entry.get("area_of"))
        for key, entry in data["clusters"].items()
    }
    sensitive = {
        key: SensitiveCategory(
            key, entry["name"], tuple(entry["clusters"]), tuple(entry["sectors"])
        )
        for key, entry in data["sensitive"].items()
    }
    return Taxonomy(
        types=dict(data["types"]),
        sectors={number: sector.name for number, sector in sorted(sectors.items())},
        sector_details=dict(sorted(sectors.items())),
        clusters={key: cluster.name for key, cluster in clusters.items()},
        cluster_details=clusters,
        sensitive_categories=sensitive,
    )
