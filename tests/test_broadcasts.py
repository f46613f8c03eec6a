"""Broadcast audiences, preview, enqueue, cancel and report; the outbox's claims and recovery.
On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from evacuation.registrations import Registration, RegistrationStatus
from messages.broadcasts import (
    Audience,
    Broadcast,
    BroadcastStatus,
    Draft,
    Priority,
    QuietHours,
    cancel,
    create,
    enqueue,
    find_broadcast,
    mark_finished,
    mark_started,
    preview,
    problems,
    report,
)
from messages.contacts import Contact, Subscription
from messages.outbox import (
    UNCERTAIN,
    OutboxMessage,
    OutboxState,
    claim,
    mark_attempt,
    pause_slots,
    record_blocked,
    record_retry,
    record_sent,
    recover,
    reserve_slots,
)
from messages.places import Place, PlaceKind
from storage.database import Database
from tests.broadcast_fixtures import NOW, add_subscriber, queued_broadcast

ENABLED = ("en", "ar", "fr")
LEASE = timedelta(seconds=60)


async def rows_of(db: Database, broadcast_id: int) -> list[OutboxMessage]:
    async with db.transaction() as session:
        query = select(OutboxMessage).where(OutboxMessage.broadcast_id == broadcast_id)
        return list(await session.scalars(query.order_by(OutboxMessage.id)))


async def test_audience_takes_consenting_reachable_subscribers_once(database: Database) -> None:
    async with database.transaction() as session:
        both = await add_subscriber(session, 1, topics=("alerts", "shelter"))
        await add_subscriber(session, 2, topics=("health",))
        await add_subscriber(session, 3, consented=False)
        await add_subscriber(session, 4, reachable=False)
        await add_subscriber(session, 5, address=False)
        only_shelter = await add_subscriber(session, 6, topics=("shelter",))
        broadcast = await queued_broadcast(session, topics=("shelter", "alerts"))
    rows = await rows_of(database, broadcast.id)
    assert {row.contact_id: row.topic for row in rows} == {
        both.id: "shelter",  # the broadcast's first topic they follow: its stop button
        only_shelter.id: "shelter",
    }
    assert broadcast.recipients == 2
    assert all(row.state == OutboxState.QUEUED for row in rows)


async def test_areas_match_everywhere_and_listed_areas(database: Database) -> None:
    async with database.transaction() as session:
        everywhere = await add_subscriber(session, 1)
        north = await add_subscriber(session, 2, area="NORTH")
        await add_subscriber(session, 3, area="SOUTH")
        draft = Draft({"en": "x"}, Audience(("alerts",), areas=("NORTH",)))
        broadcast = await create(session, draft, None, NOW)
        assert await enqueue(session, broadcast, NOW, "en") == 2
    assert {row.contact_id for row in await rows_of(database, broadcast.id)} == {
        everywhere.id,
        north.id,
    }


async def test_languages_filter_uses_the_default_for_people_without_one(
    database: Database,
) -> None:
    async with database.transaction() as session:
        unknown = await add_subscriber(session, 1, language=None)
        await add_subscriber(session, 2, language="ar")
        draft = Draft({"en": "x"}, Audience(("alerts",), languages=("en",)))
        broadcast = await create(session, draft, None, NOW)
        await enqueue(session, broadcast, NOW, "en")
    [row] = await rows_of(database, broadcast.id)
    assert (row.contact_id, row.language) == (unknown.id, "en")


async def test_departure_point_filter_takes_submitted_registrations_there(
    database: Database,
) -> None:
    async with database.transaction() as session:
        point = Place(
            external_id="DP1", kind=PlaceKind.DEPARTURE_POINT, names={"en": "Port"}, updated_by="t"
        )
        other = Place(
            external_id="DP2", kind=PlaceKind.DEPARTURE_POINT, names={"en": "Bus"}, updated_by="t"
        )
        session.add_all([point, other])
        await session.flush()
        registered, drafting, elsewhere = [
            await add_subscriber(session, n, topics=("evacuation",)) for n in (1, 2, 3)
        ]
        for contact, status, place in (
            (registered, RegistrationStatus.SUBMITTED, point),
            (drafting, RegistrationStatus.DRAFT, point),
            (elsewhere, RegistrationStatus.SUBMITTED, other),
        ):
            session.add(
                Registration(
                    contact_id=contact.id, status=status.value, departure_point_id=place.id
                )
            )
        audience = Audience(("evacuation",), departure_point_ids=(point.id,))
        broadcast = await create(session, Draft({"en": "Bus at 6"}, audience), None, NOW)
        await enqueue(session, broadcast, NOW, "en")
    assert [row.contact_id for row in await rows_of(database, broadcast.id)] == [registered.id]


async def test_preview_counts_each_language_and_the_text_it_gets(database: Database) -> None:
    async with database.transaction() as session:
        for n, language in enumerate(("en", "en", "ar", "fr", None)):
            await add_subscriber(session, n, language=language)
        draft = Draft({"en": "Closed", "ar": "مغلق"}, Audience(("alerts",)))
        shown = await preview(session, draft, "en", ())
    assert shown.total == 5
    by_language = {count.language: count for count in shown.by_language}
    assert by_language["en"].recipients == 3  # two English, one without a language
    assert (by_language["ar"].variant, by_language["ar"].fallback) == ("ar", False)
    assert (by_language["fr"].variant, by_language["fr"].fallback) == ("en", True)


async def test_enqueue_twice_is_refused_and_adds_nothing(database: Database) -> None:
    async with database.transaction() as session:
        await add_subscriber(session, 1)
        broadcast = await queued_broadcast(session)
        assert broadcast.status == BroadcastStatus.SCHEDULED
        with pytest.raises(ValueError, match="not a draft"):
            await enqueue(session, broadcast, NOW, "en")
    assert len(await rows_of(database, broadcast.id)) == 1


async def test_a_broadcast_nobody_receives_is_finished_at_once(database: Database) -> None:
    async with database.transaction() as session:
        broadcast = await queued_broadcast(session, topics=("consular",))
    assert (broadcast.recipients, broadcast.status) == (0, BroadcastStatus.FINISHED)


def test_problems_explain_what_is_missing_or_too_long() -> None:
    fine = Draft({"en": "ok"}, Audience(("alerts",)))
    assert problems(fine, ENABLED) == []
    found = problems(
        Draft(
            {"en": "x" * 5000, "de": "Hallo"},
            Audience((), languages=("xx",)),
            location=(95.0, 0.0),
        ),
        ENABLED,
    )
    joined = " ".join(found)
    assert "5000 characters" in joined and "3800" in joined
    assert "de" in joined and "xx" in joined
    assert "at least one topic" in joined
    assert "latitude" in joined
    caption = Draft({"en": "y" * 1000}, Audience(("alerts",)), document_file_id="F")
    assert "caption" in " ".join(problems(caption, ENABLED))
    assert problems(Draft({"en": "  "}, Audience(("nope",))), ENABLED) == [
        "Write the text in at least one language.",
        "Unknown topic: nope.",
    ]


async def test_cancel_stops_rows_not_yet_attempted(database: Database) -> None:
    async with database.transaction() as session:
        for n in range(4):
            await add_subscriber(session, n)
        broadcast = await queued_broadcast(session)
    async with database.transaction() as session:
        claimed = await claim(session, worker="w", limit=2, now=NOW, lease=LEASE)
    async with database.transaction() as session:
        assert await mark_attempt(session, claimed[0], NOW)
    async with database.transaction() as session:
        fresh = await session.get(Broadcast, broadcast.id)
        assert fresh is not None
        assert await cancel(session, fresh, NOW, None) == 3
        assert await cancel(session, fresh, NOW, None) == 0  # already cancelled
    async with database.transaction() as session:
        assert not await mark_attempt(session, claimed[1], NOW)  # cancelled under the claim
        await record_sent(session, claimed[0], NOW, 99)  # the one in flight finishes
        fresh = await session.get(Broadcast, broadcast.id)
        assert fresh is not None
        shown = await report(session, fresh)
    assert (shown.status, shown.sent, shown.cancelled) == ("cancelled", 1, 3)


async def test_report_counts_states_and_throughput(database: Database) -> None:
    async with database.transaction() as session:
        for n in range(5):
            await add_subscriber(session, n)
        broadcast = await queued_broadcast(session)
    async with database.transaction() as session:
        rows = await claim(session, worker="w", limit=5, now=NOW, lease=LEASE)
        await mark_started(session, {broadcast.id}, NOW)
    async with database.transaction() as session:
        for i, row in enumerate(rows[:3]):
            assert await mark_attempt(session, row, NOW)
            await record_sent(session, row, NOW + timedelta(seconds=i), 100 + i)
        assert await mark_attempt(session, rows[3], NOW)
        await record_blocked(session, rows[3], NOW)
    async with database.transaction() as session:
        assert await mark_attempt(session, rows[4], NOW)
    async with database.transaction() as session:  # the sender died mid-request
        found = await recover(session, NOW + 2 * LEASE)
        assert (found.requeued, found.uncertain) == (0, 1)
        await mark_finished(session, {broadcast.id}, NOW + timedelta(seconds=3))
        fresh = await session.get(Broadcast, broadcast.id)
        assert fresh is not None
        shown = await report(session, fresh)
    assert (shown.sent, shown.blocked, shown.failed, shown.uncertain) == (3, 1, 1, 1)
    assert (shown.queued, shown.sending) == (0, 0)
    assert shown.status == BroadcastStatus.FINISHED
    assert shown.started_at == NOW and shown.finished_at == NOW + timedelta(seconds=3)
    assert shown.first_sent_at == NOW and shown.last_sent_at == NOW + timedelta(seconds=2)
    assert shown.per_second == pytest.approx(1.0)  # 3 sent over 2 seconds
    async with database.transaction() as session:
        assert (await find_broadcast(session, broadcast.reference.lower())) is not None


async def test_claim_takes_due_rows_emergencies_first(database: Database) -> None:
    async with database.transaction() as session:
        for n in range(3):
            await add_subscriber(session, n)
        normal = await queued_broadcast(session)
        later = await queued_broadcast(session, send_at=NOW + timedelta(hours=1))
        urgent = await queued_broadcast(session, priority=Priority.EMERGENCY)
    async with database.transaction() as session:
        first = await claim(session, worker="w", limit=4, now=NOW, lease=LEASE)
    assert [row.broadcast_id for row in first] == [urgent.id] * 3 + [normal.id]
    async with database.transaction() as session:
        rest = await claim(session, worker="w", limit=10, now=NOW, lease=LEASE)
    assert [row.broadcast_id for row in rest] == [normal.id] * 2  # `later` is not due
    async with database.transaction() as session:
        due = await claim(session, worker="w", limit=10, now=NOW + timedelta(hours=1), lease=LEASE)
    assert {row.broadcast_id for row in due} == {later.id}


async def test_emergency_only_claims_leave_normal_rows_queued(database: Database) -> None:
    async with database.transaction() as session:
        await add_subscriber(session, 1)
        normal = await queued_broadcast(session)
        urgent = await queued_broadcast(session, priority=Priority.EMERGENCY)
    async with database.transaction() as session:
        rows = await claim(session, worker="w", limit=10, now=NOW, lease=LEASE, emergency_only=True)
    assert [row.broadcast_id for row in rows] == [urgent.id]
    assert [row.state for row in await rows_of(database, normal.id)] == [OutboxState.QUEUED]


async def test_recovery_requeues_unattempted_rows_and_never_resends_attempted_ones(
    database: Database,
) -> None:
    async with database.transaction() as session:
        for n in range(3):
            await add_subscriber(session, n)
        broadcast = await queued_broadcast(session)
    async with database.transaction() as session:
        dead = await claim(session, worker="dead", limit=3, now=NOW, lease=LEASE)
    async with database.transaction() as session:
        assert await mark_attempt(session, dead[0], NOW)
    async with database.transaction() as session:
        early = await recover(session, NOW + LEASE / 2)
        assert (early.requeued, early.uncertain) == (0, 0)  # the lease still holds
        found = await recover(session, NOW + LEASE * 2)
        assert (found.requeued, found.uncertain) == (2, 1)
    async with database.transaction() as session:
        again = await claim(session, worker="new", limit=10, now=NOW + LEASE * 2, lease=LEASE)
    assert sorted(row.id for row in again) == sorted(row.id for row in dead[1:])
    async with database.transaction() as session:
        # The dead sender's claims are void: it could not send them if it came back.
        assert not await mark_attempt(session, dead[1], NOW)
    states = {row.id: (row.state, row.error) for row in await rows_of(database, broadcast.id)}
    assert states[dead[0].id] == (OutboxState.FAILED, UNCERTAIN)


async def test_a_restarting_sender_recovers_its_own_claims_at_once(database: Database) -> None:
    async with database.transaction() as session:
        await add_subscriber(session, 1)
        await queued_broadcast(session)
    async with database.transaction() as session:
        await claim(session, worker="me", limit=1, now=NOW, lease=LEASE)
    async with database.transaction() as session:
        assert (await recover(session, NOW, worker="other")).requeued == 0
        assert (await recover(session, NOW, worker="me")).requeued == 1


async def test_blocked_person_gets_nothing_more(database: Database) -> None:
    async with database.transaction() as session:
        person = await add_subscriber(session, 1)
        first = await queued_broadcast(session)
        second = await queued_broadcast(session)
    async with database.transaction() as session:
        [row] = await claim(session, worker="w", limit=1, now=NOW, lease=LEASE)
        assert row.broadcast_id == first.id
        assert await mark_attempt(session, row, NOW)
        await record_blocked(session, row, NOW)
    assert [r.state for r in await rows_of(database, second.id)] == [OutboxState.BLOCKED]
    async with database.transaction() as session:
        contact = await session.get(Contact, person.id)
        assert contact is not None and contact.unreachable_at == NOW
        later = await queued_broadcast(session)
    assert later.recipients == 0


async def test_a_retry_goes_back_to_the_queue_after_its_wait(database: Database) -> None:
    async with database.transaction() as session:
        await add_subscriber(session, 1)
        await queued_broadcast(session)
    async with database.transaction() as session:
        [row] = await claim(session, worker="w", limit=1, now=NOW, lease=LEASE)
        assert await mark_attempt(session, row, NOW)
        await record_retry(session, row, NOW + timedelta(seconds=5), "retry_after", refund=True)
    async with database.transaction() as session:
        assert await claim(session, worker="w", limit=1, now=NOW, lease=LEASE) == []
        [again] = await claim(
            session, worker="w", limit=1, now=NOW + timedelta(seconds=5), lease=LEASE
        )
    assert again.id == row.id and again.attempts == 0  # a 429 does not count as a failure


async def test_send_slots_are_consecutive_and_a_pause_moves_them(database: Database) -> None:
    async with database.transaction() as session:
        first = await reserve_slots(session, 30, 30.0, 1000.0)
        second = await reserve_slots(session, 3, 30.0, 1000.5)
        assert first == 1000.0
        assert second == pytest.approx(1001.0)
        later = await reserve_slots(session, 1, 30.0, 2000.0)
        assert later == 2000.0  # an idle sender does not owe old slots
        await pause_slots(session, 2010.0)
        assert await reserve_slots(session, 1, 30.0, 2000.0) == 2010.0


async def test_concurrent_claims_never_share_a_row(database: Database) -> None:
    async with database.transaction() as session:
        for n in range(40):
            await add_subscriber(session, n)
        await queued_broadcast(session)

    async def claim_some(worker: str) -> list[int]:
        taken: list[int] = []
        while True:
            try:
                async with database.transaction() as session:
                    rows = await claim(session, worker=worker, limit=3, now=NOW, lease=LEASE)
            except Exception as error:  # SQLite: one writer at a time; try again
                if "locked" not in str(error):
                    raise
                await asyncio.sleep(0.01)
                continue
            if not rows:
                return taken
            taken += [row.id for row in rows]

    results = await asyncio.gather(*(claim_some(f"w{i}") for i in range(4)))
    everything = [row for rows in results for row in rows]
    assert len(everything) == len(set(everything)) == 40


def test_quiet_hours_across_midnight_in_local_time() -> None:
    quiet = QuietHours.parse("22:00-07:00", "Africa/Nairobi")  # UTC+3
    assert quiet.contains(datetime(2026, 11, 21, 19, 30, tzinfo=UTC))  # 22:30 local
    assert quiet.contains(datetime(2026, 11, 21, 3, 59, tzinfo=UTC))  # 06:59 local
    assert not quiet.contains(datetime(2026, 11, 21, 4, 0, tzinfo=UTC))  # 07:00 local
    assert not quiet.contains(datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
    assert quiet.next_end(datetime(2026, 11, 21, 19, 30, tzinfo=UTC)) == datetime(
        2026, 11, 22, 4, 0, tzinfo=UTC
    )
    daytime = QuietHours(time(12), time(14))
    assert daytime.contains(datetime(2026, 11, 21, 13, tzinfo=UTC))
    assert not daytime.contains(datetime(2026, 11, 21, 14, tzinfo=UTC))
    for wrong in ("22:00", "25:00-07:00", "07:00-07:00"):
        with pytest.raises(ValueError):
            QuietHours.parse(wrong)


async def test_enqueue_counts_match_the_outbox(database: Database) -> None:
    async with database.transaction() as session:
        for n in range(25):
            await add_subscriber(session, n, language=("en", "ar")[n % 2])
        session.add(Subscription(contact_id=1, topic="shelter", area="X", created_at=NOW))
        broadcast = await queued_broadcast(session, topics=("alerts", "shelter"))
        stored = await session.scalar(
            select(func.count()).where(OutboxMessage.broadcast_id == broadcast.id)
        )
    assert broadcast.recipients == stored == 25
    assert broadcast.enqueued_at == NOW
    assert isinstance(broadcast.created_at, datetime) and broadcast.created_at.tzinfo is not None
