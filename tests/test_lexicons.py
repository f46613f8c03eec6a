"""The coding lexicons (feedback/data/lexicons/<code>.toml): one per shipped language, complete.

A lexicon with a missing or empty code silently never suggests that code in its language, and
a term that normalises to nothing or repeats another is a reviewer's slip: these checks catch
both before a deployment does.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from importlib.abc import Traversable
from typing import Any

import pytest

from feedback.taxonomy import taxonomy
from messages.geo import normalize_name
from messages.languages import language_codes

STATUSES = ("draft", "reviewed")


def _folder() -> Traversable:
    return resources.files("feedback").joinpath("data/lexicons")


def _load(code: str) -> tuple[str, dict[str, Any]]:
    text = _folder().joinpath(f"{code}.toml").read_text("utf-8")
    return text, tomllib.loads(text)


def _expected_sections() -> dict[str, set[str]]:
    """Section -> the keys every lexicon must have, from the taxonomy."""
    codes = taxonomy()
    return {
        "type": set(codes.types) - {"other"},  # "other" is what no term suggests
        "cluster": set(codes.clusters),
        "sector": {str(number) for number in codes.sectors},
        "urgent": {"terms"},
        "sensitive": set(codes.sensitive_categories),
    }


def _terms(data: dict[str, Any]) -> list[tuple[str, str, object]]:
    """(section, key, term) for every term in the lexicon."""
    return [
        (section, key, term)
        for section in _expected_sections()
        for key, terms in data.get(section, {}).items()
        for term in terms
    ]


def test_taxonomy_has_the_codes_lexicons_are_checked_against() -> None:
    sections = _expected_sections()
    assert len(sections["sector"]) == 15
    assert len(sections["cluster"]) == 14
    assert len(sections["sensitive"]) == 6
    assert len(sections["type"]) == 5


@pytest.mark.parametrize("code", language_codes())
def test_every_shipped_language_has_a_lexicon(code: str) -> None:
    assert _folder().joinpath(f"{code}.toml").is_file(), f"no lexicon for {code}"


def _shipped() -> list[str]:
    return [code for code in language_codes() if _folder().joinpath(f"{code}.toml").is_file()]


@pytest.mark.parametrize("code", _shipped())
def test_lexicon_names_its_language_and_status(code: str) -> None:
    text, data = _load(code)
    assert data.get("language") == code
    assert data.get("status") in STATUSES
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "Status:" in header, "the header comment must state the review status"
    assert "feedback/data/taxonomy.toml" in header, "the header must point at the taxonomy"


@pytest.mark.parametrize("code", _shipped())
def test_lexicon_has_every_code_and_no_other(code: str) -> None:
    _, data = _load(code)
    for section, keys in _expected_sections().items():
        table = data.get(section)
        assert isinstance(table, dict), f"{code}: no [{section}] table"
        assert set(table) == keys, f"{code} [{section}]: keys differ from the taxonomy"
        empty = sorted(key for key, terms in table.items() if not terms)
        assert not empty, f"{code} [{section}]: empty {empty}"


@pytest.mark.parametrize("code", _shipped())
def test_terms_are_strings_that_normalise_to_words(code: str) -> None:
    _, data = _load(code)
    for section, key, term in _terms(data):
        assert isinstance(term, str), f"{code} [{section}] {key}: {term!r} is not a string"
        assert normalize_name(term.replace("*", " ")), f"{code} {key}: {term!r} is empty"
        # `*` marks a word as a prefix; anywhere else it would be read as a word break.
        misplaced = [w for w in term.split() if "*" in w.rstrip("*") or w.endswith("**")]
        assert not misplaced, f"{code} {key}: misplaced * in {term!r}"


@pytest.mark.parametrize("code", _shipped())
def test_no_duplicate_terms_within_a_code(code: str) -> None:
    _, data = _load(code)
    for section in _expected_sections():
        for key, terms in data[section].items():
            # Duplicates after normalisation: "shelter" and "Shelter" are one term to the coder.
            seen: dict[tuple[str, ...], str] = {}
            for term in terms:
                words = _as_matched(term)
                assert words not in seen, f"{code} [{section}] {key}: {term!r} = {seen[words]!r}"
                seen[words] = term


def _as_matched(term: str) -> tuple[str, ...]:
    """The words the coder matches, a prefix word marked with a trailing `*`."""
    words: list[str] = []
    for chunk in term.split():
        parts = normalize_name(chunk.rstrip("*")).split()
        if parts and chunk.endswith("*"):
            parts[-1] += "*"
        words.extend(parts)
    return tuple(words)
