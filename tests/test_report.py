"""The report: flags first with their explanation and evidence, then the summary, as text,
Markdown and JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from feedback.crisis_profile import CrisisProfile
from feedback.flags import Evidence, Flag, FlagKind, FlagSettings
from feedback.queries import ItemFilter
from feedback.report import Report, build_report, render, to_json, to_markdown, to_text
from feedback.summary import Window, summarise
from storage.database import Database
from tests.test_exports import NOW, add_item, person

PROFILE = CrisisProfile("sudden_onset_natural_disaster", "during")


def surge() -> Flag:
    start = NOW - timedelta(days=7)
    return Flag(
        kind=FlagKind.SURGE,
        key="surge:sector=2:area=XY01",
        sector=2,
        area_code="XY01",
        area_name="Riverside",
        language=None,
        topic=None,
        severity=3,
        explanation="Shelter needs in Riverside are four times their usual level.",
        evidence=Evidence(
            count=24,
            window_start=start,
            window_end=NOW,
            baseline=6.25,
            baseline_start=start - timedelta(days=28),
            baseline_end=start,
            p_value=0.00012,
            items=ItemFilter(sector=2, area_code="XY01", since=start, until=NOW),
            details={"ratio": 3.84},
        ),
    )


def unanswered(references: tuple[str, ...]) -> Flag:
    return Flag(
        kind=FlagKind.UNANSWERED,
        key="unanswered:urgent",
        sector=None,
        area_code=None,
        area_name=None,
        language="ar",
        topic=None,
        severity=2,
        explanation="2 urgent items have waited more than 4 hours for an answer.",
        evidence=Evidence(
            count=len(references),
            window_start=NOW - timedelta(days=7),
            window_end=NOW,
            baseline=None,
            baseline_start=None,
            baseline_end=None,
            p_value=None,
            items=ItemFilter(references=references),
        ),
    )


@pytest.fixture
async def report(database: Database) -> Report:
    async with database.transaction() as session:
        amina = await person(session)
        await add_item(session, amina, "no water", NOW - timedelta(days=1), sectors=[2, 4])
        await add_item(session, amina, "tent flooded", NOW, sectors=[4], clusters=["shelter"])
        await add_item(
            session, amina, "secret", NOW, sectors=[10], sensitive=True, area=("XY02", "Hill")
        )
        summary = await summarise(session, Window.last_days(7, NOW))
    flags = [surge(), unanswered(("ABC123", "DEF456"))]
    return Report(summary=summary, flags=flags, crisis=PROFILE, generated_at=NOW)


def test_text_puts_flags_first_with_their_evidence(report: Report) -> None:
    text = to_text(report)
    assert text.index("Gap flags: 2") < text.index("Items: 2") < text.index("By sector:")
    assert "1. [surge, severity 3] sector 2 Shelter and Non-food Items; area Riverside (XY01)" in (
        text
    )
    assert "Shelter needs in Riverside are four times their usual level." in text
    assert "24 items from 2026-05-03 12:00 to 2026-05-10 12:00 UTC" in text
    assert "baseline 6.2 expected, from 2026-04-05 12:00 to 2026-05-03 12:00 UTC" in text
    assert "p = 0.00012" in text
    assert "items: sector=2&area_code=XY01&since=2026-05-03T12" in text
    assert "2. [unanswered, severity 2] language ar" in text
    assert "items ABC123, DEF456" in text and "baseline" not in text.split("2. [")[1]
    assert "  4 Health: 2" not in text  # names come from the taxonomy, not guessed
    assert "sensitive items excluded" in text
    assert "XY02" not in text and "10 " not in text.split("By sector:")[1].split("By")[0]
    assert "no water" not in text, "never item text"


def test_markdown_has_tables_and_the_flags(report: Report) -> None:
    markdown = to_markdown(report)
    assert markdown.startswith("# Feedback report\n")
    assert "## Gap flags (2)" in markdown and "### [surge, severity 3]" in markdown
    assert "| Sector | Items |" in markdown and "| --- | ---: |" in markdown
    assert markdown.index("## Gap flags") < markdown.index("## Summary")


def test_json_is_stable_and_json_safe(report: Report) -> None:
    data = json.loads(render(report, "json"))
    assert data == to_json(report) | {"flags": data["flags"]}
    assert list(data) == ["generated_at", "crisis", "flags", "summary"]
    assert [f["key"] for f in data["flags"]] == ["surge:sector=2:area=XY01", "unanswered:urgent"]
    assert data["flags"][0]["items_query"].startswith("sector=2&area_code=XY01")
    summary = data["summary"]
    assert summary["total"] == 2 and summary["include_sensitive"] is False
    assert summary["by_sector"] == [
        {"sector": 4, "name": summary["by_sector"][0]["name"], "items": 2},
        {"sector": 2, "name": "Shelter and Non-food Items", "items": 1},
    ]
    assert summary["by_area"] == [{"area_code": "XY01", "area_name": None, "items": 2}]
    assert summary["response"]["waiting"] == 2
    assert summary["window"] == {"since": "2026-05-04", "until": "2026-05-10"}


async def test_build_report_reads_summary_and_flags(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, object] = {}

    async def fake_flags(*args: object, **kwargs: object) -> list[Flag]:
        seen["now"] = args[3]
        seen.update(kwargs)
        return [surge()]

    monkeypatch.setattr("feedback.report.compute_flags", fake_flags)
    window = Window.last_days(7, NOW - timedelta(days=30))
    async with database.transaction() as session:
        built = await build_report(
            session, PROFILE, FlagSettings(), window, NOW, area_code="XY01", include_sensitive=True
        )
    assert seen == {"now": window.end, "area_code": "XY01", "include_sensitive": True}
    assert built.flags == [surge()] and built.summary.total == 0
    assert built.summary.area_code == "XY01" and built.generated_at == NOW
    assert datetime.fromisoformat(to_json(built)["generated_at"]).tzinfo is UTC
