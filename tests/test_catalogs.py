"""The translation catalogs: complete, placeholders intact, plural forms right, status stated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from messages.i18n import LOCALES_DIR
from messages.languages import all_languages

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"\{[a-z_]+\}")
COMMAND = re.compile(r"(?<![\w/])/[a-z]+\b")
TRANSLATED = [language for language in all_languages() if language.code != "en"]


def template() -> Catalog:
    with (LOCALES_DIR / "messages.pot").open("rb") as handle:
        return read_po(handle)


def catalog(locale: str) -> Catalog:
    path = LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po"
    assert path.exists(), f"no catalog for {locale}: pybabel init -l {locale} (see README)"
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def test_template_matches_the_code() -> None:
    """Every translatable string in the code is in messages.pot, and nothing stale is."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, _options = parse_mapping_cfg(config)  # type: ignore[no-untyped-call]
    assert ("evacuation/**.py", "python") in method_map, "every domain package is extracted"
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    in_code = {
        message if isinstance(message, str) else message[0]
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT, method_map, keywords=keywords
        )
    }
    in_template = {
        message.id if isinstance(message.id, str) else message.id[0]
        for message in template()
        if message.id
    }
    assert in_code == in_template, "run the pybabel extract command in the README"


@pytest.mark.parametrize("language", TRANSLATED, ids=lambda language: language.code)
def test_catalog_is_complete_and_intact(language: object) -> None:
    from messages.languages import Language

    assert isinstance(language, Language)
    translated = catalog(language.locale)
    problems: list[str] = []
    for source in template():
        if not source.id:
            continue
        message = translated.get(source.id)
        if message is None or not message.string or message.fuzzy:
            problems.append(f"missing: {source.id!r}")
            continue
        ids = [source.id] if isinstance(source.id, str) else list(source.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        if len(ids) > 1 and len(strings) != translated.num_plurals:
            problems.append(f"plural forms: {source.id!r} has {len(strings)}")
        for text in strings:
            for pattern in (PLACEHOLDER, COMMAND):
                if sorted(set(pattern.findall(text))) != sorted(set(pattern.findall(ids[0]))):
                    problems.append(f"placeholders or commands differ: {source.id!r} -> {text!r}")
    assert problems == []


@pytest.mark.parametrize("language", TRANSLATED, ids=lambda language: language.code)
def test_plural_forms_and_status_header(language: object) -> None:
    from messages.languages import Language

    assert isinstance(language, Language)
    translated = catalog(language.locale)
    assert translated.plural_forms == Catalog(locale=language.locale).plural_forms
    assert "Status:" in (translated.header_comment or ""), "state the catalog's review status"


def test_readme_lists_every_language_with_its_status() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    for language in all_languages():
        row = next(
            (line for line in readme.splitlines() if line.startswith(f"| `{language.code}` |")), ""
        )
        assert row, f"README has no row for {language.code}"
        assert "draft" in row or "source" in row
