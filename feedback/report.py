"""The report a responder reads: the gap flags first, then the summary of what people said.

`build_report` reads the summary (feedback/summary.py, from the rollup counts) and the gap
flags (feedback/flags.py); `to_text`, `to_markdown` and `to_json` render it. Each flag comes
with its explanation and its evidence: the count, the window, the baseline, the p-value when
the flag is statistical, and the items behind it (their references, or the item filter as
URL query parameters for the dashboard and the exports). Reports are staff-facing: English.
No item text and no contact appears in a report.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from feedback.crisis_profile import CrisisProfile, scenario_catalog
from feedback.flags import Flag, FlagSettings, compute_flags
from feedback.queries import ItemFilter
from feedback.review import ResponseTimes, format_response_times
from feedback.summary import UNKNOWN, Summary, Window, summarise
from feedback.taxonomy import taxonomy

FORMATS = ("text", "json", "markdown")
MAX_REFERENCES = 20  # shown per flag; the filter still names them all


@dataclass(frozen=True)
class Report:
    summary: Summary
    flags: list[Flag]
    crisis: CrisisProfile
    generated_at: datetime


async def build_report(
    session: AsyncSession,
    profile: CrisisProfile,
    flag_settings: FlagSettings,
    window: Window,
    now: datetime,
    *,
    area_code: str | None = None,
    include_sensitive: bool = False,
) -> Report:
    """The summary of `window` and the flags as they stood at its end (or now, if earlier)."""
    summary = await summarise(
        session, window, area_code=area_code, include_sensitive=include_sensitive
    )
    flags = await compute_flags(
        session,
        profile,
        flag_settings,
        min(now, window.end),
        area_code=area_code,
        include_sensitive=include_sensitive,
    )
    return Report(summary=summary, flags=flags, crisis=profile, generated_at=now)


def render(report: Report, output: str) -> str:
    if output == "json":
        return json.dumps(to_json(report), ensure_ascii=False, indent=2) + "\n"
    if output == "markdown":
        return to_markdown(report)
    return to_text(report)


# --- labels ---------------------------------------------------------------------------------


def sector_label(number: int) -> str:
    return f"{number} {taxonomy().sectors.get(number, '?')}"


def cluster_label(key: str) -> str:
    return taxonomy().clusters.get(key, key)


def type_label(key: str) -> str:
    return taxonomy().types.get(key, key)


def language_label(code: str) -> str:
    return code or "unknown language"


def crisis_label(profile: CrisisProfile) -> str:
    catalog = scenario_catalog()
    return f"{catalog.scenarios.get(profile.scenario, profile.scenario)}, phase {profile.phase}"


def _when(moment: datetime | None) -> str:
    return "?" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def items_query(items: ItemFilter) -> str:
    """The flag's items as URL query parameters (the dashboard's and the exports' filter)."""
    return urlencode(items.to_query())


def evidence_lines(flag: Flag) -> list[str]:
    """The evidence of one flag, one fact per line."""
    evidence = flag.evidence
    lines = [
        f"{evidence.count} items from {_when(evidence.window_start)} to "
        f"{_when(evidence.window_end)} UTC"
    ]
    if evidence.baseline is not None:
        lines.append(
            f"baseline {evidence.baseline:.1f} expected, from "
            f"{_when(evidence.baseline_start)} to {_when(evidence.baseline_end)} UTC"
        )
    if evidence.p_value is not None:
        lines.append(f"p = {evidence.p_value:.2g}")
    references = evidence.items.references
    if references:
        shown = ", ".join(references[:MAX_REFERENCES])
        more = len(references) - MAX_REFERENCES
        lines.append(f"items {shown}" + (f" and {more} more" if more > 0 else ""))
    else:
        lines.append(f"items: {items_query(evidence.items) or 'all'}")
    return lines


def flag_heading(flag: Flag) -> str:
    where = [f"sector {sector_label(flag.sector)}"] if flag.sector is not None else []
    if flag.area_code is not None:
        where.append(f"area {flag.area_name or flag.area_code} ({flag.area_code})")
    if flag.language is not None:
        where.append(f"language {language_label(flag.language)}")
    if flag.topic:
        where.append(f"topic {flag.topic}")
    return f"[{flag.kind.value}, severity {flag.severity}] " + "; ".join(where)


def _span(value: timedelta | None) -> int | None:
    return None if value is None else round(value.total_seconds())


def _top(counts: dict[Any, int]) -> list[tuple[Any, int]]:
    return sorted(counts.items(), key=lambda pair: (-pair[1], str(pair[0])))


# --- text -----------------------------------------------------------------------------------


def _scope(summary: Summary) -> str:
    area = summary.area_label(summary.area_code) if summary.area_code is not None else "all areas"
    sensitive = "included" if summary.include_sensitive else "excluded"
    return (
        f"{summary.window.since} to {summary.window.until} (UTC days), {area}; "
        f"sensitive items {sensitive}"
    )


def _responses(summary: Summary) -> list[tuple[str, ResponseTimes]]:
    times = [("ordinary", summary.response)]
    if summary.sensitive_response is not None:
        times.append(("sensitive", summary.sensitive_response))
    return times


def _sections(summary: Summary) -> list[tuple[str, list[tuple[str, int]]]]:
    return [
        ("By sector", [(sector_label(s), n) for s, n in _top(summary.by_sector)]),
        ("By cluster", [(cluster_label(c), n) for c, n in _top(summary.by_cluster)]),
        ("By area", [(summary.area_label(a), n) for a, n in _top(summary.by_area)]),
        ("By language", [(language_label(lang), n) for lang, n in _top(summary.by_language)]),
        ("By feedback type", [(type_label(t), n) for t, n in _top(summary.by_type)]),
        ("By status", [(s, n) for s, n in _top(summary.by_status)]),
        ("By week", sorted(summary.total_by_week().items())),
        ("By day", [(day.isoformat(), n) for day, n in sorted(summary.total_by_day.items())]),
    ]


def to_text(report: Report) -> str:
    summary = report.summary
    lines = [
        f"Feedback report: {_scope(summary)}",
        f"Crisis: {crisis_label(report.crisis)}",
        f"Generated {_when(report.generated_at)} UTC",
        "",
        f"Gap flags: {len(report.flags)}",
    ]
    for number, flag in enumerate(report.flags, 1):
        lines.append(f"{number}. {flag_heading(flag)}")
        lines.append(f"   {flag.explanation}")
        lines += [f"   - {line}" for line in evidence_lines(flag)]
    lines += ["", f"Items: {summary.total}"]
    for label, times in _responses(summary):
        lines.append(f"Response times ({label}): {format_response_times(times)}")
    for title, rows in _sections(summary):
        lines += ["", f"{title}:"]
        lines += [f"  {name}: {count}" for name, count in rows] or ["  none"]
    return "\n".join(lines) + "\n"


# --- markdown -------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, str], rows: Iterable[tuple[str, int]]) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "| --- | ---: |"]
    lines += [f"| {_cell(name)} | {count} |" for name, count in rows]
    return lines


def to_markdown(report: Report) -> str:
    summary = report.summary
    lines = [
        "# Feedback report",
        "",
        f"{_scope(summary)}. Crisis: {crisis_label(report.crisis)}. "
        f"Generated {_when(report.generated_at)} UTC.",
        "",
        f"## Gap flags ({len(report.flags)})",
        "",
    ]
    if not report.flags:
        lines += ["No gap flags.", ""]
    for flag in report.flags:
        lines += [f"### {_cell(flag_heading(flag))}", "", flag.explanation, ""]
        lines += [f"- {_cell(line)}" for line in evidence_lines(flag)]
        lines.append("")
    lines += ["## Summary", "", f"Items: **{summary.total}**", ""]
    for label, times in _responses(summary):
        lines.append(f"- Response times ({label}): {format_response_times(times)}")
    for title, rows in _sections(summary):
        lines += ["", f"### {title}", ""]
        lines += _table((title.removeprefix("By ").capitalize(), "Items"), rows)
    return "\n".join(lines) + "\n"


# --- JSON -----------------------------------------------------------------------------------


def response_json(times: ResponseTimes) -> dict[str, Any]:
    return {
        "answered": times.answered,
        "waiting": times.waiting,
        "median_seconds": _span(times.median),
        "p90_seconds": _span(times.p90),
    }


def summary_json(summary: Summary) -> dict[str, Any]:
    """The summary as a JSON-safe dict with stable keys (aggregates only, no item)."""

    def area(code: str) -> str | None:
        return None if code == UNKNOWN else summary.area_names.get(code)

    sectors = taxonomy().sectors
    return {
        "window": {
            "since": summary.window.since.isoformat(),
            "until": summary.window.until.isoformat(),
        },
        "area_code": summary.area_code,
        "include_sensitive": summary.include_sensitive,
        "total": summary.total,
        "by_sector": [
            {"sector": s, "name": sectors.get(s), "items": n} for s, n in _top(summary.by_sector)
        ],
        "by_cluster": [
            {"cluster": c, "name": cluster_label(c), "items": n}
            for c, n in _top(summary.by_cluster)
        ],
        "by_area": [
            {"area_code": a or None, "area_name": area(a), "items": n}
            for a, n in _top(summary.by_area)
        ],
        "by_language": [
            {"language": lang or None, "items": n} for lang, n in _top(summary.by_language)
        ],
        "by_type": [{"type": t, "items": n} for t, n in _top(summary.by_type)],
        "by_status": [{"status": s, "items": n} for s, n in _top(summary.by_status)],
        "sector_by_area": [
            {"sector": s, "area_code": a or None, "items": n}
            for (s, a), n in sorted(summary.sector_by_area.items())
        ],
        "by_day": [
            {"date": day.isoformat(), "items": n} for day, n in sorted(summary.total_by_day.items())
        ],
        "by_week": [{"week": w, "items": n} for w, n in sorted(summary.total_by_week().items())],
        "response": response_json(summary.response),
        "sensitive_response": (
            None
            if summary.sensitive_response is None
            else response_json(summary.sensitive_response)
        ),
    }


def to_json(report: Report) -> dict[str, Any]:
    return {
        "generated_at": report.generated_at.isoformat(timespec="seconds"),
        "crisis": {"scenario": report.crisis.scenario, "phase": report.crisis.phase},
        "flags": [
            {**flag.to_json(), "items_query": items_query(flag.evidence.items)}
            for flag in report.flags
        ],
        "summary": summary_json(report.summary),
    }
