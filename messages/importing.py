"""Importing shelters, places and consular missions from the files responders already keep.

`crisis-comms import {shelters,consulates,places} FILE` reads CSV (as saved by any
spreadsheet, optionally with an HXL hashtag row under the header) or JSON, validates every
row, and upserts by external id. It is all or nothing: with any problem nothing is written,
and the report names each problem by the row number a person sees in their spreadsheet, so
that the file can be fixed and imported again. Columns are recognised as described in
data/import_columns.toml; which fields are required and how values are checked is here.

Two phases keep the all-or-nothing promise without relying on a rollback: every row is
parsed and checked first; only a file without problems touches the session.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from messages.consulates import Mission, MissionKind, MissionService
from messages.countries import country_codes, match_countries
from messages.geo import valid_coordinates
from messages.languages import language_codes
from messages.places import Place, PlaceKind
from messages.shelters import Shelter, ShelterService, ShelterStatus, record_change

MAX_BYTES = 20 * 1024 * 1024  # a national shelter list is well under 1 MB
MAX_COLUMNS = 500  # a shelter list has a few dozen, with every language's name
MAX_REPORTED = 200  # problems and warnings listed in a report; the rest are counted
# A cell a spreadsheet would run as a formula (=, @, or + - before a call, a reference or a
# comparison; also their full-width forms). A CSV holds values, so such a text is a mistake
# or an attack on whoever opens an export of it later: refused. Phone numbers have a stricter
# check of their own.
_FORMULA = re.compile(r"^[=@\uff1d\uff20]|^[+\-\uff0b\uff0d].*[(!|=\"]", re.DOTALL)
_HXL_TAG = re.compile(r"^#[a-z][a-z0-9_]*(\+[a-z][a-z0-9_]*)*$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().\-/]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LIST_SEPARATORS = re.compile(r"[;|\n]")
_SERVICE_SEPARATORS = re.compile(r"[;,|\n]")


class ImportKind(enum.StrEnum):
    SHELTERS = "shelters"
    CONSULATES = "consulates"
    PLACES = "places"


@dataclass(frozen=True)
class Problem:
    """One thing to fix (or, as a warning, to know), located as a person sees the file."""

    row: int | None  # spreadsheet row (CSV) or item number (JSON); None: the whole file
    column: str | None
    message: str
    unit: str = "row"

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"{self.unit} {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


@dataclass
class ImportResult:
    kind: ImportKind
    added: int = 0
    updated: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return f"{self.kind.value}: {self.added} added, {self.updated} updated"

    def report(self) -> str:
        """Every problem and warning, one per line, problems first (at most MAX_REPORTED
        lines of them: a broken file of a million rows must not print a million lines)."""
        lines = [f"error: {problem}" for problem in self.problems]
        lines += [f"warning: {warning}" for warning in self.warnings]
        if len(lines) > MAX_REPORTED:
            lines[MAX_REPORTED:] = [f"… and {len(lines) - MAX_REPORTED} more"]
        if self.problems:
            lines.append(f"{self.kind.value}: nothing imported ({len(self.problems)} problems)")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Fields: how each value is read and checked. A parser takes the raw cell (a string from
# CSV; a string, number, list or None from JSON) and returns the value to store, None for
# an empty cell, or raises ValueError with a message a person can act on.

Parser = Callable[[object], Any]


@dataclass(frozen=True)
class FieldSpec:
    parse: Parser
    required: bool = False
    per_language: bool = False  # a {language: text} mapping built from several columns


def _raw_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool | list | dict):
        raise ValueError("must be text")
    text = str(value).strip()
    return text or None


def _limited_text(value: object, max_length: int) -> str | None:
    text = _raw_text(value)
    if text is not None and len(text) > max_length:
        raise ValueError(f"is {len(text)} characters long; at most {max_length}")
    return text


def _no_formula(text: str | None) -> str | None:
    if text is not None and _FORMULA.match(text):
        raise ValueError(
            f"{text[:40]!r} starts like a spreadsheet formula: "
            "keep the values, not the formulas, or reword the start"
        )
    return text


def _text(max_length: int) -> Parser:
    return lambda value: _no_formula(_limited_text(value, max_length))


def _whole_number(value: object) -> int | None:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"must be a whole number, not {value}")
        number = int(value)
    else:
        text = _raw_text(value)
        if text is None:
            return None
        digits = re.sub(r"(?<=\d)[ ,_](?=\d{3}\b)", "", text)  # "1,200", "1 200"
        digits = re.sub(r"\.0+$", "", digits)  # "12.0", as some spreadsheets save numbers
        if not re.fullmatch(r"[-+]?\d+", digits):
            raise ValueError(f"must be a whole number, not {text!r}")
        number = int(digits)
    if number < 0:
        raise ValueError(f"must be 0 or more, not {number}")
    return number


def _capacity(value: object) -> int | None:
    number = _whole_number(value)
    if number == 0:
        raise ValueError("is 0: leave the cell empty when the capacity is not known")
    return number


def _degrees(value: object) -> float | None:
    if isinstance(value, bool):
        raise ValueError("must be a number of degrees")
    if isinstance(value, int | float):
        return float(value)
    text = _raw_text(value)
    if text is None:
        return None
    if "," in text and "." not in text:
        text = text.replace(",", ".")  # a decimal comma, as French or Spanish sheets save it
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"must be a number of degrees such as 46.2044, not {text!r}") from None


def _key(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.strip().casefold())


def _choice(enum_type: type[enum.StrEnum]) -> Parser:
    def parse(value: object) -> enum.StrEnum | None:
        text = _raw_text(value)
        if text is None:
            return None
        try:
            return enum_type(_key(text))
        except ValueError:
            allowed = ", ".join(member.value for member in enum_type)
            raise ValueError(f"{text!r} is not one of: {allowed}") from None

    return parse


def _items(value: object, separators: re.Pattern[str]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    text = _raw_text(value) or ""
    return [item.strip() for item in separators.split(text) if item.strip()]


def _services(enum_type: type[ShelterService] | type[MissionService]) -> Parser:
    """Service keys ("water; medical") or their English labels, separated by ; , or |."""

    def parse(value: object) -> list[str]:
        by_name: dict[str, str] = {}
        for member in enum_type:
            by_name[member.value] = member.value
            by_name[_key(member.label)] = member.value
        found: set[str] = set()
        unknown: list[str] = []
        for item in _items(value, _SERVICE_SEPARATORS):
            key = by_name.get(_key(item))
            if key is None:
                unknown.append(item)
            else:
                found.add(key)
        if unknown:
            known = ", ".join(member.value for member in enum_type)
            raise ValueError(f"unknown service {', '.join(map(repr, unknown))} (known: {known})")
        return [member.value for member in enum_type if member.value in found]

    return parse


def _alt_names(value: object) -> list[str]:
    names = _items(value, _LIST_SEPARATORS)
    if any(len(name) > 200 for name in names):
        raise ValueError("a name is longer than 200 characters")
    for name in names:
        _no_formula(name)
    return list(dict.fromkeys(names))


def _phone(value: object) -> str | None:
    text = _limited_text(value, 40)
    if text is not None and (not _PHONE.match(text) or sum(c.isdigit() for c in text) < 3):
        raise ValueError(f"{text!r} is not a phone number (digits, spaces, + - ( ) only)")
    return text


def _email(value: object) -> str | None:
    text = _no_formula(_limited_text(value, 200))
    if text is not None and not _EMAIL.match(text):
        raise ValueError(f"{text!r} is not an email address")
    return text


def _country_code(value: object) -> str | None:
    text = _raw_text(value)
    if text is None:
        return None
    code = text.upper()
    if code in country_codes():
        return code
    hint = ""
    matches = match_countries(text, "en", languages=())
    if matches and matches[0].score >= 0.9:
        hint = f" (did you mean {matches[0].code}, {matches[0].name}?)"
    raise ValueError(f"{text!r} is not an ISO 3166 two-letter country code{hint}")


SHELTER_FIELDS: Mapping[str, FieldSpec] = {
    "external_id": FieldSpec(_text(64), required=True),
    "names": FieldSpec(_text(200), required=True, per_language=True),
    "notes": FieldSpec(_text(1000), per_language=True),
    "address": FieldSpec(_text(300)),
    "latitude": FieldSpec(_degrees, required=True),
    "longitude": FieldSpec(_degrees, required=True),
    "adm1_code": FieldSpec(_text(32)),
    "adm1_name": FieldSpec(_text(120)),
    "adm2_code": FieldSpec(_text(32)),
    "adm2_name": FieldSpec(_text(120)),
    "capacity": FieldSpec(_capacity),
    "occupancy": FieldSpec(_whole_number),
    "status": FieldSpec(_choice(ShelterStatus), required=True),
    "services": FieldSpec(_services(ShelterService)),
    "contact_name": FieldSpec(_text(120)),
    "contact_phone": FieldSpec(_phone),
    "opening_hours": FieldSpec(_text(200)),
}

PLACE_FIELDS: Mapping[str, FieldSpec] = {
    "external_id": FieldSpec(_text(64), required=True),
    "kind": FieldSpec(_choice(PlaceKind), required=True),
    "names": FieldSpec(_text(200), required=True, per_language=True),
    "alt_names": FieldSpec(_alt_names),
    "adm1_code": FieldSpec(_text(32)),
    "adm1_name": FieldSpec(_text(120)),
    "adm2_code": FieldSpec(_text(32)),
    "adm2_name": FieldSpec(_text(120)),
    "latitude": FieldSpec(_degrees),
    "longitude": FieldSpec(_degrees),
}

MISSION_FIELDS: Mapping[str, FieldSpec] = {
    "external_id": FieldSpec(_text(64), required=True),
    "country_code": FieldSpec(_country_code, required=True),
    "kind": FieldSpec(_choice(MissionKind), required=True),
    "names": FieldSpec(_text(200), required=True, per_language=True),
    "notes": FieldSpec(_text(1000), per_language=True),
    "city": FieldSpec(_text(120)),
    "address": FieldSpec(_text(300)),
    "phone": FieldSpec(_phone),
    "emergency_phone": FieldSpec(_phone),
    "email": FieldSpec(_email),
    "hours": FieldSpec(_text(200)),
    "services": FieldSpec(_services(MissionService)),
}

FIELDS: Mapping[ImportKind, Mapping[str, FieldSpec]] = {
    ImportKind.SHELTERS: SHELTER_FIELDS,
    ImportKind.PLACES: PLACE_FIELDS,
    ImportKind.CONSULATES: MISSION_FIELDS,
}


# ---------------------------------------------------------------------------------------
# Columns: which field (and language) each column of the file fills.


@dataclass(frozen=True)
class ColumnNames:
    headers: tuple[str, ...]
    hxl: tuple[tuple[str, frozenset[str]], ...]  # (hashtag, attributes) patterns


@cache
def column_names() -> Mapping[ImportKind, Mapping[str, ColumnNames]]:
    """The headers and hashtags of every field, from data/import_columns.toml."""
    text = resources.files("messages").joinpath("data/import_columns.toml").read_text("utf-8")
    table = tomllib.loads(text)
    result: dict[ImportKind, dict[str, ColumnNames]] = {}
    for kind in ImportKind:
        result[kind] = {}
        for name, entry in table[kind.value].items():
            patterns = tuple(_parse_tag(tag) for tag in entry["hxl"])
            if any(pattern is None for pattern in patterns):
                raise ValueError(f"import_columns.toml: bad hashtag in {kind}.{name}")
            result[kind][name] = ColumnNames(
                headers=tuple(_header_key(header) for header in entry["headers"]),
                hxl=tuple(pattern for pattern in patterns if pattern is not None),
            )
    return result


def _parse_tag(text: str) -> tuple[str, frozenset[str]] | None:
    """("#loc", {"name", "i_ar"}) for "#loc +name +i_ar"; None when it is no HXL hashtag
    (nor is "# a comment": a hashtag has no space after its "#")."""
    if text.strip()[1:2].isspace():
        return None
    compact = re.sub(r"\s+", "", text).casefold()
    if not _HXL_TAG.match(compact):
        return None
    hashtag, *attributes = compact.split("+")
    return hashtag, frozenset(attributes)


def _header_key(text: str) -> str:
    """ "Adm1 Name" -> "adm1_name"; "Name (fa-AF)" -> "name_fa_af"."""
    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9]+", "_", text.strip().casefold())).strip("_")


@cache
def _languages_by_key() -> Mapping[str, str]:
    """ "fa_af" -> "fa-AF": language codes as they appear in headers and HXL attributes."""
    return {code.casefold().replace("-", "_"): code for code in language_codes()}


@dataclass(frozen=True)
class Column:
    index: int
    label: str  # how the report names it: the header, else the hashtag, else its number
    field: str | None  # None: not imported
    language: str | None = None  # for per-language fields


def _resolve_column(
    kind: ImportKind, index: int, header: str, tag: str
) -> tuple[Column, str | None, bool]:
    """The column's field, with an error message (unknown language) or a "not imported" flag."""
    label = header.strip() or tag.strip() or f"{index + 1} (no header)"
    fields = FIELDS[kind]
    names = column_names()[kind]
    parsed = _parse_tag(tag) if tag.strip() else None
    if parsed is not None:
        hashtag, attributes = parsed
        best: tuple[int, str] | None = None
        for name, spec in names.items():
            for pattern_tag, pattern_attributes in spec.hxl:
                matches = pattern_tag == hashtag and pattern_attributes <= attributes
                if matches and (best is None or len(pattern_attributes) > best[0]):
                    best = (len(pattern_attributes), name)
        if best is not None:
            name = best[1]
            if not fields[name].per_language:
                return Column(index, label, name), None, False
            languages = sorted(a[2:] for a in attributes if a.startswith("i_"))
            if not languages:
                return Column(index, label, name, "en"), None, False
            code = _languages_by_key().get(languages[0])
            if code is None:
                return Column(index, label, None), _unknown_language(languages[0]), False
            return Column(index, label, name, code), None, False
    key = _header_key(header)
    for name, spec in names.items():
        if key in spec.headers:
            language = "en" if fields[name].per_language else None
            return Column(index, label, name, language), None, False
        if not fields[name].per_language:
            continue
        for base in spec.headers:
            if key.startswith(base + "_"):
                suffix = key[len(base) + 1 :]
                code = _languages_by_key().get(suffix)
                if code is not None:
                    return Column(index, label, name, code), None, False
                # "name_de" is a language we do not speak; "name_alt" is just unknown.
                if re.fullmatch(r"[a-z]{2}(_[a-z0-9]{2,4})?|[a-z]{3}_[a-z0-9]{2,4}", suffix):
                    return Column(index, label, None), _unknown_language(suffix), False
    return Column(index, label, None), None, bool(key or parsed)


def _unknown_language(code: str) -> str:
    known = ", ".join(language_codes())
    return f"{code!r} is not a language the bot knows (known: {known})"


def _resolve_columns(
    kind: ImportKind, headers: Sequence[str], tags: Sequence[str], result: ImportResult
) -> list[Column]:
    columns: list[Column] = []
    seen: dict[tuple[str, str | None], str] = {}
    for index in range(max(len(headers), len(tags))):
        header = headers[index] if index < len(headers) else ""
        tag = tags[index] if index < len(tags) else ""
        column, error, unknown = _resolve_column(kind, index, header, tag)
        if error is not None:
            result.problems.append(Problem(None, column.label, error))
        elif unknown:
            result.warnings.append(Problem(None, column.label, "not a known column; ignored"))
        elif column.field is not None:
            target = (column.field, column.language)
            if target in seen:
                field_name = column.field + (f" ({column.language})" if column.language else "")
                message = f"{field_name} comes from column {seen[target]!r} already; ignored"
                result.warnings.append(Problem(None, column.label, message))
                column = Column(index, column.label, None)
            else:
                seen[target] = column.label
        columns.append(column)
    present = {column.field for column in columns if column.field is not None}
    for name, spec in FIELDS[kind].items():
        if spec.required and name not in present:
            names = column_names()[kind][name]
            tags_text = " or ".join(
                "+".join([hashtag, *sorted(attributes)]) for hashtag, attributes in names.hxl
            )
            result.problems.append(
                Problem(
                    None,
                    None,
                    f"no column for {name} (header {' or '.join(names.headers)}, "
                    f"or HXL {tags_text})",
                )
            )
    return columns


# ---------------------------------------------------------------------------------------
# Reading files into rows of raw cells.


@dataclass(frozen=True)
class RawRow:
    number: int  # spreadsheet row or JSON item number
    cells: Mapping[int, object]  # column index -> raw value


@dataclass(frozen=True)
class Table:
    columns: list[Column]
    rows: list[RawRow]
    unit: str  # "row" or "item"


def _decode(data: bytes, result: ImportResult) -> str | None:
    if not data.strip():
        result.problems.append(Problem(None, None, "the file is empty"))
        return None
    if data.startswith(b"PK\x03\x04"):
        kind = "a zip file, probably an Excel (.xlsx) or OpenDocument (.ods) workbook"
        result.problems.append(Problem(None, None, f"{kind}: save it as 'CSV UTF-8' first"))
        return None
    if data.startswith(b"\xd0\xcf\x11\xe0") or data.startswith(b"%PDF"):
        result.problems.append(
            Problem(None, None, "not a CSV or JSON file (an old Excel file or a PDF?)")
        )
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        result.problems.append(
            Problem(
                None,
                None,
                f"not UTF-8 text (line {line}): save the file as 'CSV UTF-8' or UTF-8 JSON",
            )
        )
        return None
    if "\x00" in text:
        result.problems.append(Problem(None, None, "not a text file: it contains NUL bytes"))
        return None
    return text


def _too_wide(columns: int, result: ImportResult) -> bool:
    if columns <= MAX_COLUMNS:
        return False
    message = f"the file has {columns} columns; at most {MAX_COLUMNS}: is it the right file?"
    result.problems.append(Problem(None, None, message))
    return True


def _is_hxl_row(cells: Sequence[str]) -> bool:
    filled = [cell for cell in cells if cell.strip()]
    return bool(filled) and all(_parse_tag(cell) is not None for cell in filled)


def _delimiter(text: str) -> str:
    """The delimiter of the first line that is no comment: spreadsheets in many locales save
    "CSV" with semicolons, and some export tabs."""
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            counts = {delimiter: line.count(delimiter) for delimiter in (",", ";", "\t")}
            best = max(counts, key=lambda d: counts[d])
            return best if counts[best] else ","
    return ","


def _read_csv(kind: ImportKind, text: str, result: ImportResult) -> Table | None:
    """Rows numbered as a spreadsheet shows them: every record counts, including comment
    lines (a first cell starting with "# ") and blank lines; a quoted cell spanning lines is
    one row."""
    records: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text), strict=True)
    try:
        start = 1  # the line the record being read starts on
        for number, record in enumerate(reader, start=1):
            records.append((number, record))
            start = reader.line_num + 1
    except csv.Error as error:
        hint = " (a quote is never closed)" if "end of data" in str(error) else ""
        if "field limit" in str(error):
            hint = " (one cell is longer than any real value: is a quote never closed?)"
        result.problems.append(Problem(start, None, f"not valid CSV: {error}{hint}", unit="line"))
        return None
    position = 0
    while position < len(records):
        cells = records[position][1]
        blank = not any(cell.strip() for cell in cells)
        comment = bool(cells) and cells[0].strip().startswith("#") and not _is_hxl_row(cells)
        if not blank and not comment:
            break
        position += 1  # a blank line or a comment before the header
    if position == len(records):
        result.problems.append(Problem(None, None, "the file has no header row"))
        return None
    headers = records[position][1]
    tags: list[str] = []
    if _is_hxl_row(headers):  # a hashtag row with no text header above it
        headers, tags = [""] * len(headers), headers
        position += 1
    elif position + 1 < len(records) and _is_hxl_row(records[position + 1][1]):
        tags = records[position + 1][1]
        position += 2
    else:
        position += 1
    if _too_wide(max(len(headers), len(tags)), result):
        return None
    columns = _resolve_columns(kind, headers, tags, result)
    width = len(columns)
    rows: list[RawRow] = []
    for number, cells in records[position:]:
        if not any(cell.strip() for cell in cells):
            continue
        if any(cell.strip() for cell in cells[width:]):
            result.problems.append(
                Problem(
                    number,
                    None,
                    f"has {len(cells)} cells but the header has {width}: "
                    "is a value with a comma missing its quotes?",
                )
            )
            continue
        rows.append(RawRow(number, dict(enumerate(cells[:width]))))
    return Table(columns, rows, unit="row")


def _read_json(kind: ImportKind, text: str, result: ImportResult) -> Table | None:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        result.problems.append(
            Problem(error.lineno, None, f"not valid JSON: {error.msg}", unit="line")
        )
        return None
    except RecursionError:
        result.problems.append(Problem(None, None, "not valid JSON: nested too deeply"))
        return None
    except ValueError:  # an integer of thousands of digits
        result.problems.append(Problem(None, None, "not valid JSON: a number is too long"))
        return None
    items: object = document
    if isinstance(document, dict):
        keys = [kind.value, "missions"] if kind is ImportKind.CONSULATES else [kind.value]
        items = next((document[key] for key in keys if key in document), None)
    if not isinstance(items, list):
        result.problems.append(
            Problem(None, None, f'expected a list of {kind.value}, or {{"{kind.value}": [...]}}')
        )
        return None
    keys_in_order: dict[str, None] = {}
    for item in items:
        if isinstance(item, dict):
            keys_in_order.update(dict.fromkeys(str(key) for key in item))
    keys = list(keys_in_order)
    if _too_wide(len(keys), result):
        return None
    # Keys are headers or, when they start with "#", HXL hashtags.
    headers = [key if not key.startswith("#") else "" for key in keys]
    tags = [key if key.startswith("#") else "" for key in keys]
    columns = _resolve_columns(kind, headers, tags, result)
    rows: list[RawRow] = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            result.problems.append(Problem(number, None, "is not an object", unit="item"))
            continue
        rows.append(RawRow(number, {i: item[key] for i, key in enumerate(keys) if key in item}))
    return Table(columns, rows, unit="item")


def _per_language_values(raw: object, language: str | None) -> dict[str, object]:
    """A JSON object {"en": ..., "ar": ...} under a plain "name" key is accepted too."""
    if isinstance(raw, dict) and language == "en":
        return {str(code): value for code, value in raw.items()}
    return {language or "en": raw}


# ---------------------------------------------------------------------------------------
# Validating rows.


@dataclass(frozen=True)
class ParsedRow:
    number: int
    values: Mapping[str, Any]  # field -> value, only for fields with a column
    ok: bool  # False: its problems are in the result


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, dict | list) and not value)


def _parse_row(kind: ImportKind, table: Table, row: RawRow, result: ImportResult) -> ParsedRow:
    """The row's values; its problems and warnings go to the result."""
    fields = FIELDS[kind]
    values: dict[str, Any] = {}
    labels: dict[str, str] = {}  # field -> the column that gave it, for the report
    failed: set[str] = set()  # fields whose value was reported as wrong already
    problems: list[Problem] = []

    def problem(column: str | None, message: str) -> None:
        problems.append(Problem(row.number, column, message, unit=table.unit))

    for column in table.columns:
        if column.field is None:
            continue
        spec = fields[column.field]
        labels.setdefault(column.field, column.label)
        raw = row.cells.get(column.index)
        if not spec.per_language:
            try:
                values[column.field] = spec.parse(raw)
            except ValueError as error:
                problem(column.label, str(error))
                values[column.field] = None
                failed.add(column.field)
            continue
        texts: dict[str, str] = values.setdefault(column.field, {})
        for language, value in _per_language_values(raw, column.language).items():
            code = _languages_by_key().get(language.casefold().replace("-", "_"))
            if code is None:
                problem(column.label, _unknown_language(language))
                failed.add(column.field)
                continue
            try:
                text = spec.parse(value)
            except ValueError as error:
                problem(column.label, str(error))
                failed.add(column.field)
                continue
            if text is not None:
                texts[code] = text
    for name, spec in fields.items():
        if spec.required and name in values and _is_empty(values[name]) and name not in failed:
            problem(labels[name], "needs a name" if spec.per_language else "is required")
    if not failed & {"latitude", "longitude"}:
        _check_coordinates(kind, values, labels, problem)
    if kind is ImportKind.SHELTERS:
        capacity, occupancy = values.get("capacity"), values.get("occupancy")
        is_open = values.get("status") is ShelterStatus.OPEN
        if is_open and capacity and occupancy is not None and occupancy >= capacity:
            message = f"status is open but occupancy {occupancy} reaches capacity {capacity}"
            result.warnings.append(Problem(row.number, labels["status"], message, table.unit))
    result.problems.extend(problems)
    return ParsedRow(row.number, values, ok=not problems)


def _check_coordinates(
    kind: ImportKind,
    values: Mapping[str, Any],
    labels: Mapping[str, str],
    problem: Callable[[str | None, str], None],
) -> None:
    if "latitude" not in values and "longitude" not in values:
        if kind is ImportKind.PLACES and values.get("kind") is PlaceKind.DEPARTURE_POINT:
            problem(None, "a departure point needs its latitude and longitude")
        return
    latitude, longitude = values.get("latitude"), values.get("longitude")
    if latitude is None and longitude is None:
        if kind is ImportKind.PLACES and values.get("kind") is PlaceKind.DEPARTURE_POINT:
            problem(None, "a departure point needs its latitude and longitude")
        return
    if latitude is None or longitude is None:
        if not FIELDS[kind]["latitude"].required:  # else "is required" said it already
            problem(None, "latitude and longitude go together: give both or neither")
        return
    if valid_coordinates(latitude, longitude):
        return
    if latitude == 0 and longitude == 0:
        problem(None, "coordinates 0, 0 are almost always missing values: fill them in")
    elif valid_coordinates(longitude, latitude):
        problem(
            labels.get("latitude"),
            f"impossible latitude {latitude}: are latitude and longitude swapped?",
        )
    else:
        problem(
            None,
            f"impossible coordinates {latitude}, {longitude} "
            "(latitude is -90 to 90, longitude -180 to 180)",
        )


# ---------------------------------------------------------------------------------------
# Importing.


async def import_file(
    session: AsyncSession,
    kind: ImportKind | str,
    path: Path | str,
    *,
    by: str | None = None,
    now: datetime,
) -> ImportResult:
    """Validate and upsert every row of a CSV or JSON file; see import_bytes."""
    path = Path(path)
    kind = ImportKind(kind)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            result = ImportResult(kind)
            result.problems.append(
                Problem(None, None, f"the file is {size // 1_000_000} MB; at most 20 MB")
            )
            return result
        data = path.read_bytes()
    except OSError as error:
        result = ImportResult(kind)
        result.problems.append(Problem(None, None, f"cannot read {path}: {error.strerror}"))
        return result
    return await import_bytes(
        session, kind, data, filename=path.name, by=by or f"import:{path.name}", now=now
    )


async def import_bytes(
    session: AsyncSession,
    kind: ImportKind | str,
    data: bytes,
    *,
    filename: str,
    by: str,
    now: datetime,
) -> ImportResult:
    """Validate every row, then, only when no row has a problem, upsert them all.

    The format is JSON for a ".json" name, CSV for ".csv", ".tsv" or ".txt", and otherwise
    guessed from the first character. Each row replaces the stored record with the same
    external id (its fields whose column the file has; others are kept) or adds one;
    updated_at is `now` and updated_by `by`; a shelter also gets a history row. The caller
    commits only when `result.ok`: on problems the session is left untouched.
    """
    kind = ImportKind(kind)
    result = ImportResult(kind)
    text = _decode(data, result)
    if text is None:
        return result
    suffix = Path(filename).suffix.casefold()
    is_json = suffix == ".json" or (
        suffix not in (".csv", ".tsv", ".txt") and text.lstrip()[:1] in ("[", "{")
    )
    table = _read_json(kind, text, result) if is_json else _read_csv(kind, text, result)
    if table is None:
        return result
    if not table.rows and not result.problems:
        result.problems.append(Problem(None, None, f"no {kind.value} in the file"))
    parsed: list[ParsedRow] = []
    first_row: dict[str, int] = {}
    for row in table.rows:
        parsed_row = _parse_row(kind, table, row, result)
        external_id = parsed_row.values.get("external_id")
        if external_id is None:
            continue
        if external_id in first_row:
            result.problems.append(
                Problem(
                    row.number,
                    None,
                    f"external id {external_id!r} is also on {table.unit} {first_row[external_id]}",
                    unit=table.unit,
                )
            )
            continue
        first_row[external_id] = row.number
        if parsed_row.ok:
            parsed.append(parsed_row)
    result.problems.sort(key=lambda p: (p.row is not None, p.row or 0))
    if result.problems:
        return result
    await _upsert(session, kind, parsed, by=by[:120], now=now, result=result)
    return result


_MODELS: Mapping[ImportKind, type[Shelter] | type[Place] | type[Mission]] = {
    ImportKind.SHELTERS: Shelter,
    ImportKind.PLACES: Place,
    ImportKind.CONSULATES: Mission,
}


async def _upsert(
    session: AsyncSession,
    kind: ImportKind,
    rows: Iterable[ParsedRow],
    *,
    by: str,
    now: datetime,
    result: ImportResult,
) -> None:
    model: Any = _MODELS[kind]  # the three models share external_id and updated_at/by
    rows = list(rows)
    ids = [row.values["external_id"] for row in rows]
    existing: dict[str, Any] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for stored in await session.scalars(select(model).where(model.external_id.in_(chunk))):
            existing[stored.external_id] = stored
    shelters: list[Shelter] = []
    for row in rows:
        record: Any = existing.get(row.values["external_id"])
        if record is None:
            record = model()
            for name in FIELDS[kind]:
                if FIELDS[kind][name].per_language:
                    setattr(record, name, {})
                elif name in ("services", "alt_names"):
                    setattr(record, name, [])
            session.add(record)
            result.added += 1
        else:
            result.updated += 1
        for name, value in row.values.items():
            if name in ("services", "alt_names") and value is None:
                value = []
            setattr(record, name, value)
        record.updated_at = now
        record.updated_by = by
        if isinstance(record, Shelter):
            shelters.append(record)
    await session.flush()
    for shelter in shelters:
        await record_change(session, shelter, by=by, now=now)
    await session.flush()
