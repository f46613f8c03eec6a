"""Intake, review, corrections, replies and alerts without Telegram (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from feedback.codes import CodeSet, agreement, agreement_report, correct, current_codes
from feedback.coding import default_coder
from feedback.intake import Limits, Outcome, Pace, Received, split_text, take_message
from feedback.items import MAX_TEXT, FeedbackItem, ItemStatus
from feedback.protection import acknowledge, due_alerts, mark_sent, open_alerts
from feedback.replies import delivered, record_reply
from feedback.review import (
    TransitionError,
    format_response_times,
    may_see,
    move,
    open_item,
    response_times,
    views_of,
)
from messages.contacts import record_consent
from staff.access import add_staff
from staff.models import Role, StaffMember
from storage.database import Database

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def received(contact_id: int, text: str, at: datetime, language: str | None = "en") -> Received:
    return Received(contact_id, text, language, at, "telegram")


async def staff(database: Database, role: Role) -> StaffMember:
    async with database.transaction() as session:
        await add_staff(session, f"Member {role.value}", role, NOW)
        member = await session.scalar(
            select(StaffMember).where(StaffMember.role == role).order_by(StaffMember.id.desc())
        )
        assert member is not None
        return member


def test_long_texts_split_whole_at_spaces() -> None:
    text = ("word " * 8000).strip()  # 39,999 characters
    parts = split_text(text)
    assert len(parts) == 3 and all(len(p) <= MAX_TEXT for p in parts)
    assert "".join(parts) == text, "nothing lost or added"
    assert split_text("x" * (MAX_TEXT + 1)) == ["x" * MAX_TEXT, "x"]


async def test_the_same_message_taken_again_changes_nothing(database: Database) -> None:
    """An update retried after a crash brings the same message id and words: no new item,
    no repeat counted. An edit (same id, other words) is new information and is kept."""
    coder = default_coder()
    long_text = ("water " * 3000).strip()  # 17,999 characters: two items
    async with database.transaction() as session:
        contact = await record_consent(session, "p-retry", 1, "en", NOW)

        def message(text: str, message_id: int) -> Received:
            return Received(contact.id, text, "en", NOW, "telegram", source_message_id=message_id)

        first = await take_message(session, message("The bridge is down", 10), coder)
        again = await take_message(session, message("The bridge is down", 10), coder)
        assert again.outcome is Outcome.ALREADY and again.item.id == first.item.id
        assert first.item.repeats == 0
        split = await take_message(session, message(long_text, 11), coder)
        assert len(split.items) == 2
        retried = await take_message(session, message(long_text, 11), coder)
        assert retried.outcome is Outcome.ALREADY
        edited = await take_message(session, message("The bridge is down near school", 11), coder)
        assert edited.outcome is Outcome.NEW
        texts = list(await session.scalars(select(FeedbackItem.text).order_by(FeedbackItem.id)))
    assert texts[0] == "The bridge is down" and len(texts) == 4


async def test_repeats_words_after_a_need_pick_and_the_pace(database: Database) -> None:
    coder = default_coder()
    limits = Limits(flood_messages=3, flood_window=timedelta(minutes=1))
    async with database.transaction() as session:
        contact = await record_consent(session, "p1", 1, "en", NOW)
        first = await take_message(
            session, received(contact.id, "No water here", NOW), coder, limits
        )
        again = await take_message(
            session,
            received(contact.id, "no water HERE!", NOW + timedelta(seconds=5)),
            coder,
            limits,
        )
        assert again.outcome is Outcome.REPEAT and again.item.id == first.item.id
        third = await take_message(
            session,
            received(contact.id, "The clinic is closed", NOW + timedelta(seconds=9)),
            coder,
            limits,
        )
        assert (first.pace, again.pace, third.pace) == (Pace.NORMAL, Pace.NORMAL, Pace.NORMAL)
        fourth = await take_message(
            session,
            received(contact.id, "Anyone there?", NOW + timedelta(seconds=10)),
            coder,
            limits,
        )
        fifth = await take_message(
            session, received(contact.id, "Hello?", NOW + timedelta(seconds=11)), coder, limits
        )
        assert (fourth.pace, fifth.pace) == (Pace.SLOW_DOWN, Pace.QUIET)
        calm = await take_message(
            session, received(contact.id, "Thank you", NOW + timedelta(minutes=5)), coder, limits
        )
        assert calm.pace is Pace.NORMAL and calm.outcome is Outcome.NEW
        # Same words long after: a new item, not a repeat.
        late = await take_message(
            session, received(contact.id, "No water here", NOW + timedelta(hours=1)), coder, limits
        )
        assert late.outcome is Outcome.NEW
        items = list(await session.scalars(select(FeedbackItem).order_by(FeedbackItem.id)))
    assert [i.text for i in items] == [
        "No water here",
        "The clinic is closed",
        "Anyone there?",
        "Hello?",
        "Thank you",
        "No water here",
    ]
    assert items[0].repeats == 1


async def test_status_lifecycle_is_timestamped_and_guarded(database: Database) -> None:
    responder = await staff(database, Role.RESPONDER)
    async with database.transaction() as session:
        contact = await record_consent(session, "p2", 2, "en", NOW)
        item = (
            await take_message(session, received(contact.id, "Need a tent", NOW), default_coder())
        ).item
        await open_item(session, item, responder, NOW + timedelta(minutes=5))
        assert item.status == ItemStatus.IN_REVIEW and item.in_review_at == NOW + timedelta(
            minutes=5
        )
        await move(
            session, item, ItemStatus.REFERRED, NOW + timedelta(minutes=6), staff_id=responder.id
        )
        reply = await record_reply(session, item, responder.id, "Tents at the school", NOW)
        await delivered(session, item, reply, NOW + timedelta(minutes=30))
        assert item.status == ItemStatus.ANSWERED and item.answered_at == NOW + timedelta(
            minutes=30
        )
        await move(session, item, ItemStatus.CLOSED, NOW + timedelta(hours=1))
        with pytest.raises(TransitionError):
            await move(session, item, ItemStatus.IN_REVIEW, NOW + timedelta(hours=2))
        assert [v.staff_id for v in await views_of(session, item)] == [responder.id]
        times = await response_times(session)
    assert times.answered == 1 and times.median == timedelta(minutes=30)
    assert format_response_times(times) == (
        "1 answered, median 30 min, 90th percentile 30 min; 0 waiting"
    )


async def test_only_the_focal_point_sees_sensitive_items(database: Database) -> None:
    members = {role: await staff(database, role) for role in Role}
    async with database.transaction() as session:
        contact = await record_consent(session, "p3", 3, "en", NOW)
        ordinary = (
            await take_message(session, received(contact.id, "Need food", NOW), default_coder())
        ).item
        sensitive = (
            await take_message(
                session,
                received(contact.id, "My employer took my passport and I work without pay", NOW),
                default_coder(),
            )
        ).item
    assert sensitive.sensitive and sensitive.urgent
    assert {r for r, m in members.items() if may_see(m, sensitive)} == {Role.PROTECTION_FOCAL_POINT}
    assert {r for r, m in members.items() if may_see(m, ordinary)} == {
        Role.ADMIN,
        Role.RESPONDER,
        Role.PROTECTION_FOCAL_POINT,
    }


async def test_alerts_repeat_until_acknowledged(database: Database) -> None:
    focal = await staff(database, Role.PROTECTION_FOCAL_POINT)
    every = timedelta(minutes=10)
    async with database.transaction() as session:
        contact = await record_consent(session, "p4", 4, "en", NOW)
        item = (
            await take_message(
                session, received(contact.id, "I want to kill myself", NOW), default_coder()
            )
        ).item
        await open_alerts(session, item, [-100, 42])
        due = await due_alerts(session, NOW, every)
        assert [d.chat_id for d in due] == [-100, 42]
        assert due[0].categories == ("self_harm",) and due[0].language == "en"
        for alert in due:
            await mark_sent(session, alert.alert_id, NOW)
        assert await due_alerts(session, NOW + timedelta(minutes=9), every) == []
        assert len(await due_alerts(session, NOW + every, every)) == 2
        assert await acknowledge(session, item, focal, NOW + every)
        assert await due_alerts(session, NOW + timedelta(days=1), every) == []
        assert not await acknowledge(session, item, focal, NOW + every), "already acknowledged"


async def test_corrections_replace_codes_and_feed_the_agreement(database: Database) -> None:
    responder = await staff(database, Role.RESPONDER)
    async with database.transaction() as session:
        contact = await record_consent(session, "p5", 5, "en", NOW)
        item = (
            await take_message(
                session, received(contact.id, "We need water and food", NOW), default_coder()
            )
        ).item
        suggested = await current_codes(session, item)
        assert "wash" in suggested.clusters
        fixed = CodeSet(type="request", sectors=frozenset({2}), clusters=frozenset({"wash"}))
        await correct(session, item, fixed, responder.id, NOW)
        assert await current_codes(session, item) == fixed
        report = await agreement_report(session)
    assert report.items == 1 and report.type_agreement == 1.0
    wash = next(label for label in report.labels if label.label == "wash")
    assert (wash.suggested, wash.corrected, wash.both) == (1, 1, 1)


def test_agreement_counts_and_kappa() -> None:
    q = CodeSet(type="question", sectors=frozenset({3}))
    r = CodeSet(type="request", sectors=frozenset({2}))
    pairs = [(q, q), (r, r), (q, r), (r, r)]
    report = agreement(pairs)
    assert report.items == 4 and report.type_agreement == 0.75
    # observed 0.75; expected (2*1 + 2*3)/16 = 0.5 → kappa 0.5
    assert report.type_kappa == pytest.approx(0.5)
    sector_2 = next(label for label in report.labels if label.label == "sector 2")
    assert (sector_2.suggested, sector_2.corrected, sector_2.both) == (2, 3, 2)
    assert sector_2.precision == 1.0 and sector_2.recall == pytest.approx(2 / 3)
    assert agreement([]).type_agreement is None
