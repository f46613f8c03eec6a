"""Hand-written messages the coder must code right, in every language that has a case file.

tests/data/coding_cases/<language>.toml holds messages as people write them, for what the
labelled training data does not cover: psychosocial support, documents and consular help,
trafficking and every sensitive category, plus ordinary needs and messages that must NOT be
flagged sensitive. Expectations are subsets: the coder may suggest more codes, never fewer.
A sensitive message is checked a second time with no language given, since detection can
fail on a short message and a disclosure must still reach a protection focal point.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from feedback.coding import Suggestion, default_coder
from feedback.taxonomy import taxonomy
from messages.languages import language_codes

CASES = Path(__file__).parent / "data" / "coding_cases"
MIN_CASES = 12  # per language file
KEYS = frozenset(
    {
        "text",
        "expect_sensitive",
        "expect_sensitive_absent",
        "expect_sectors",
        "expect_clusters",
        "expect_not_sensitive",
        "expect_type",
        "expect_urgent",
        "note",
        "known_gap_without_language",
    }
)


@dataclass(frozen=True)
class Case:
    language: str
    number: int
    raw: dict[str, Any]

    @property
    def text(self) -> str:
        return str(self.raw["text"])

    @property
    def sensitive(self) -> set[str]:
        return set(self.raw.get("expect_sensitive", ()))

    @property
    def absent(self) -> set[str]:
        """Sensitive categories that must not be suggested (a threat is not self-harm)."""
        return set(self.raw.get("expect_sensitive_absent", ()))

    @property
    def sectors(self) -> set[int]:
        return set(self.raw.get("expect_sectors", ()))

    @property
    def clusters(self) -> set[str]:
        return set(self.raw.get("expect_clusters", ()))

    @property
    def not_sensitive(self) -> bool:
        return bool(self.raw.get("expect_not_sensitive", False))

    @property
    def id(self) -> str:
        return f"{self.language}-{self.number:02d}"


def _files() -> list[Path]:
    return sorted(CASES.glob("*.toml"))


def _cases() -> list[Case]:
    return [
        Case(path.stem, number, raw)
        for path in _files()
        for number, raw in enumerate(tomllib.loads(path.read_text("utf-8")).get("case", []), 1)
    ]


ALL = _cases()
SENSITIVE = [case for case in ALL if case.sensitive]


def _params(cases: list[Case]) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in cases]


def _missing(case: Case, got: Suggestion) -> list[str]:
    """What the suggestion lacks of the case's expectations, readable in a failure."""
    problems = []
    if not case.sensitive <= set(got.sensitive_categories):
        problems.append(f"sensitive {sorted(case.sensitive - set(got.sensitive_categories))}")
    if case.absent & set(got.sensitive_categories):
        problems.append(f"wrongly flagged {sorted(case.absent & set(got.sensitive_categories))}")
    if case.sensitive and not (got.sensitive and got.urgent):
        problems.append("a sensitive category must make the item sensitive and urgent")
    if not case.sectors <= set(got.mcof_sectors):
        problems.append(f"sectors {sorted(case.sectors - set(got.mcof_sectors))}")
    if not case.clusters <= set(got.clusters):
        problems.append(f"clusters {sorted(case.clusters - set(got.clusters))}")
    if case.not_sensitive and got.sensitive:
        problems.append(f"flagged sensitive {list(got.sensitive_categories)}")
    if "expect_type" in case.raw and got.type != case.raw["expect_type"]:
        problems.append(f"type {got.type!r}, expected {case.raw['expect_type']!r}")
    if "expect_urgent" in case.raw and got.urgent != case.raw["expect_urgent"]:
        problems.append(f"urgent {got.urgent}, expected {case.raw['expect_urgent']}")
    return problems


@pytest.mark.parametrize("case", _params(ALL))
def test_case_is_coded_as_expected(case: Case) -> None:
    got = default_coder().suggest(case.text, language=case.language)
    problems = _missing(case, got)
    assert not problems, f"{case.text!r}: {'; '.join(problems)}\n{got.to_record()}"


def _without_language(case: Case) -> Any:
    """A case whose known gap with no language is marked, strictly: a fix must unmark it."""
    gap = case.raw.get("known_gap_without_language")
    marks = [pytest.mark.xfail(reason=str(gap), strict=True)] if gap else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_without_language(case) for case in SENSITIVE])
def test_sensitive_case_is_found_without_a_language(case: Case) -> None:
    got = default_coder().suggest(case.text, language=None)
    missing = case.sensitive - set(got.sensitive_categories)
    assert not missing, f"{case.text!r}: sensitive {sorted(missing)} not found\n{got.to_record()}"
    assert got.sensitive and got.urgent


# --- The case files themselves ----------------------------------------------------------------


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.stem)
def test_case_file_is_a_shipped_language_with_enough_cases(path: Path) -> None:
    text = path.read_text("utf-8")
    assert path.stem in language_codes(), f"{path.name}: not a shipped language code"
    header = text.split("[[case]]")[0].lower()
    assert "draft" in header or "reviewed" in header, f"{path.name}: header must state a status"
    assert len(tomllib.loads(text).get("case", [])) >= MIN_CASES


@pytest.mark.parametrize("case", _params(ALL))
def test_case_expectations_are_known_codes(case: Case) -> None:
    codes = taxonomy()
    assert set(case.raw) <= KEYS, f"unknown keys {sorted(set(case.raw) - KEYS)}"
    assert case.text.strip()
    assert case.sensitive | case.absent <= set(codes.sensitive_categories)
    assert case.sectors <= set(codes.sectors)
    assert case.clusters <= set(codes.clusters)
    assert case.raw.get("expect_type", "question") in codes.types
    assert not (case.sensitive and case.not_sensitive), "contradictory expectations"
    assert not case.sensitive & case.absent, "contradictory expectations"
    expects = ("expect_sensitive", "expect_sectors", "expect_clusters", "expect_type")
    assert case.not_sensitive or any(case.raw.get(key) for key in expects), "expects nothing"


def test_every_sensitive_category_has_cases() -> None:
    covered = {category for case in SENSITIVE for category in case.sensitive}
    assert covered == set(taxonomy().sensitive_categories)
    assert any(case.not_sensitive for case in ALL), "no case guards against over-flagging"
