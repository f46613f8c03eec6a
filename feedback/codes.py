"""An item's codes: the coder's suggestion, what the person picked, and responders' corrections.

The suggestion is kept as it was made (``FeedbackItem.suggested``); the current codes are
rows here, one per sector or cluster, so that aggregation can count them with an index.
A correction replaces the current codes and is kept with who made it and when, so that the
agreement between suggestion and correction can be reported (``agreement``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from feedback.coding import Suggestion
from feedback.items import CodeSource, FeedbackItem, ItemCode
from feedback.review import record_event
from feedback.rollups import recount
from storage.base import Base, UtcDateTime


class Correction(Base):
    __tablename__ = "feedback_corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("feedback_items.id", ondelete="CASCADE"), index=True
    )
    staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_members.id", ondelete="SET NULL")
    )
    corrected_at: Mapped[datetime] = mapped_column(UtcDateTime())
    before: Mapped[dict[str, object]] = mapped_column(JSON)  # CodeSet.as_record()
    after: Mapped[dict[str, object]] = mapped_column(JSON)


@dataclass(frozen=True)
class CodeSet:
    """The codes of one item, as a responder sees and corrects them."""

    type: str
    sectors: frozenset[int] = frozenset()
    clusters: frozenset[str] = frozenset()
    urgent: bool = False
    sensitive: bool = False
    sensitive_categories: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of_suggestion(cls, suggestion: Suggestion) -> CodeSet:
        return cls(
            type=suggestion.type,
            sectors=frozenset(suggestion.mcof_sectors),
            clusters=frozenset(suggestion.clusters),
            urgent=suggestion.urgent,
            sensitive=suggestion.sensitive,
            sensitive_categories=frozenset(suggestion.sensitive_categories),
        )

    def as_record(self) -> dict[str, object]:
        return {
            "type": self.type,
            "sectors": sorted(self.sectors),
            "clusters": sorted(self.clusters),
            "urgent": self.urgent,
            "sensitive": self.sensitive,
            "sensitive_categories": sorted(self.sensitive_categories),
        }

    @classmethod
    def from_record(cls, record: dict[str, object]) -> CodeSet:
        sectors = record.get("sectors", [])
        clusters = record.get("clusters", [])
        categories = record.get("sensitive_categories", [])
        assert isinstance(sectors, list) and isinstance(clusters, list)
        assert isinstance(categories, list)
        return cls(
            type=str(record["type"]),
            sectors=frozenset(int(s) for s in sectors),
            clusters=frozenset(str(c) for c in clusters),
            urgent=bool(record.get("urgent")),
            sensitive=bool(record.get("sensitive")),
            sensitive_categories=frozenset(str(c) for c in categories),
        )


async def apply_suggestion(
    session: AsyncSession,
    item: FeedbackItem,
    suggestion: Suggestion,
    picked: CodeSet | None = None,
) -> None:
    """Set an item's codes from the coder, plus what the person picked (always kept)."""
    item.suggested = suggestion.to_record()
    # Words with no clear type after a need pick are the request the person picked.
    item.type = (
        picked.type if picked is not None and suggestion.type == "other" else suggestion.type
    )
    item.urgent = suggestion.urgent
    item.sensitive = suggestion.sensitive
    item.sensitive_categories = ",".join(suggestion.sensitive_categories) or None
    rows = [("sector", str(s), c, CodeSource.SUGGESTED) for s, c in suggestion.mcof_sectors.items()]
    rows += [("cluster", k, c, CodeSource.SUGGESTED) for k, c in suggestion.clusters.items()]
    if picked is not None:
        rows += [("sector", str(s), 1.0, CodeSource.PERSON) for s in picked.sectors]
        rows += [("cluster", k, 1.0, CodeSource.PERSON) for k in picked.clusters]
    await _replace_codes(session, item, rows)


async def current_codes(session: AsyncSession, item: FeedbackItem) -> CodeSet:
    rows = list(await session.scalars(select(ItemCode).where(ItemCode.item_id == item.id)))
    return CodeSet(
        type=item.type or "other",
        sectors=frozenset(int(r.value) for r in rows if r.scheme == "sector"),
        clusters=frozenset(r.value for r in rows if r.scheme == "cluster"),
        urgent=item.urgent,
        sensitive=item.sensitive,
        sensitive_categories=frozenset(filter(None, (item.sensitive_categories or "").split(","))),
    )


async def correct(
    session: AsyncSession,
    item: FeedbackItem,
    corrected: CodeSet,
    staff_id: int | None,
    now: datetime,
) -> Correction:
    """A responder's codes replace the current ones; the change is kept for the agreement."""
    before = await current_codes(session, item)
    item.type = corrected.type
    item.urgent = corrected.urgent or corrected.sensitive
    item.sensitive = corrected.sensitive
    item.sensitive_categories = ",".join(sorted(corrected.sensitive_categories)) or None
    rows = [("sector", str(s), 1.0, CodeSource.STAFF) for s in corrected.sectors]
    rows += [("cluster", k, 1.0, CodeSource.STAFF) for k in corrected.clusters]
    await _replace_codes(session, item, rows)
    correction = Correction(
        item_id=item.id,
        staff_id=staff_id,
        corrected_at=now,
        before=before.as_record(),
        after=corrected.as_record(),
    )
    session.add(correction)
    await record_event(session, item, "correction", now, staff_id=staff_id)
    await session.flush()
    return correction


async def _replace_codes(
    session: AsyncSession, item: FeedbackItem, rows: Iterable[tuple[str, str, float, str]]
) -> None:
    await session.execute(delete(ItemCode).where(ItemCode.item_id == item.id))
    best: dict[tuple[str, str], tuple[float, str]] = {}
    for scheme, value, confidence, source in rows:
        key = (scheme, value)
        if key not in best or confidence > best[key][0]:
            best[key] = (confidence, source)
    session.add_all(
        ItemCode(item_id=item.id, scheme=s, value=v, confidence=round(c, 3), source=src)
        for (s, v), (c, src) in best.items()
    )
    await recount(session, item)


@dataclass(frozen=True)
class LabelAgreement:
    """One sector or cluster: how often the suggestion had it, the correction had it, both."""

    label: str
    suggested: int
    corrected: int
    both: int

    @property
    def precision(self) -> float | None:
        return self.both / self.suggested if self.suggested else None

    @property
    def recall(self) -> float | None:
        return self.both / self.corrected if self.corrected else None


@dataclass(frozen=True)
class AgreementReport:
    items: int
    type_agreement: float | None  # share of items whose type the responder kept
    type_kappa: float | None  # Cohen's kappa, chance-corrected
    sectors_exact: float | None  # share of items whose sector set was kept as suggested
    clusters_exact: float | None
    urgent_agreement: float | None
    sensitive_agreement: float | None
    labels: tuple[LabelAgreement, ...]


async def agreement_report(session: AsyncSession) -> AgreementReport:
    """Suggestion against the latest correction of every corrected item."""
    rows = await session.execute(
        select(FeedbackItem.suggested, Correction.after, Correction.item_id)
        .join(Correction, Correction.item_id == FeedbackItem.id)
        # latest last, so the dict below keeps it
        .order_by(Correction.corrected_at, Correction.id)
    )
    latest: dict[int, tuple[CodeSet, CodeSet]] = {}
    for suggested, after, item_id in rows:
        if suggested is None:
            continue
        before = CodeSet.of_suggestion(Suggestion.from_record(suggested))
        latest[item_id] = (before, CodeSet.from_record(after))
    return agreement(list(latest.values()))


def agreement(pairs: Sequence[tuple[CodeSet, CodeSet]]) -> AgreementReport:
    """Pure: (suggested, corrected) pairs → the report."""
    n = len(pairs)

    def share(same: Iterable[bool]) -> float | None:
        values = list(same)
        return sum(values) / len(values) if values else None

    labels: dict[str, list[int]] = {}
    for before, after in pairs:
        for prefix, was, now in (
            ("sector ", before.sectors, after.sectors),
            ("", before.clusters, after.clusters),
        ):
            for value in set(map(str, was)) | set(map(str, now)):
                counts = labels.setdefault(f"{prefix}{value}", [0, 0, 0])
                in_before = value in set(map(str, was))
                in_after = value in set(map(str, now))
                counts[0] += in_before
                counts[1] += in_after
                counts[2] += in_before and in_after
    return AgreementReport(
        items=n,
        type_agreement=share(b.type == a.type for b, a in pairs),
        type_kappa=_kappa([(b.type, a.type) for b, a in pairs]),
        sectors_exact=share(b.sectors == a.sectors for b, a in pairs),
        clusters_exact=share(b.clusters == a.clusters for b, a in pairs),
        urgent_agreement=share(b.urgent == a.urgent for b, a in pairs),
        sensitive_agreement=share(b.sensitive == a.sensitive for b, a in pairs),
        labels=tuple(LabelAgreement(label, *counts) for label, counts in sorted(labels.items())),
    )


def _kappa(pairs: Sequence[tuple[str, str]]) -> float | None:
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    left, right = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(left[k] * right[k] for k in left) / (n * n)
    if math.isclose(expected, 1.0):
        return 1.0 if math.isclose(observed, 1.0) else 0.0
    return (observed - expected) / (1 - expected)


def format_agreement(report: AgreementReport) -> str:
    def pct(value: float | None) -> str:
        return "–" if value is None else f"{value:.0%}"

    lines = [
        f"Corrected items: {report.items}",
        f"Type kept: {pct(report.type_agreement)} (Cohen's kappa "
        f"{'–' if report.type_kappa is None else f'{report.type_kappa:.2f}'})",
        f"Sectors kept exactly: {pct(report.sectors_exact)}",
        f"Clusters kept exactly: {pct(report.clusters_exact)}",
        f"Urgent kept: {pct(report.urgent_agreement)}",
        f"Sensitive kept: {pct(report.sensitive_agreement)}",
    ]
    if report.labels:
        lines.append("Code: suggested / corrected / both — precision, recall")
    for label in report.labels:
        lines.append(
            f"  {label.label}: {label.suggested} / {label.corrected} / {label.both} — "
            f"{pct(label.precision)}, {pct(label.recall)}"
        )
    return "\n".join(lines)
