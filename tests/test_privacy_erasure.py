"""privacy/erasure.py: /delete, withdrawal of consent (SQLite and PostgreSQL).

Each test sets up two people with the same kinds of data, acts on one, and checks both: the
one erased keeps nothing personal, the other keeps everything, and the counts stay whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from evacuation.registrations import Registration, start_registration
from feedback.coding import default_coder
from feedback.intake import Received, take_message
from feedback.items import Attachment, FeedbackItem
from feedback.replies import Reply, delivered, record_reply
from feedback.rollups import FeedbackCount, rebuild
from inbox import conversations
from inbox import updates as inbox
from inbox.conversations import ConversationState
from inbox.updates import InboxUpdate
from messages.contacts import (
    Contact,
    ContactAddress,
    Pseudonymizer,
    Subscription,
    find_contact,
    record_consent,
)
from messages.outbox import OutboxMessage, OutboxState
from messages.subscriptions import subscribe_defaults
from privacy.erasure import TOMBSTONE_PREFIX, Erased, erase_contact, withdraw_consent
from storage.database import Database
from tests.broadcast_fixtures import queued_broadcast

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=2)
PSEUDONYMS = Pseudonymizer(b"erasure-test-key-0123456789abcdef")


@dataclass(frozen=True)
class Person:
    contact_id: int
    pseudonym: str
    chat_id: int


async def person_with_everything(session: AsyncSession, user_id: int) -> Person:
    """A consented person with two items (one with a voice note and a delivered reply), a
    registration, default subscriptions and an area."""
    pseudonym = PSEUDONYMS("telegram", user_id)
    contact = await record_consent(session, pseudonym, user_id, "en", NOW)
    contact.area_code, contact.area_name = "HT01", "Ouest"
    await subscribe_defaults(session, contact.id)
    coder = default_coder()
    voice = Attachment(kind="voice", file_id=f"VOICE-{user_id}", mime_type="audio/ogg", size=9)
    first = await take_message(
        session,
        Received(contact.id, "We have no water in the camp", "en", NOW, "telegram", 11, voice),
        coder,
    )
    await take_message(
        session,
        Received(contact.id, "The clinic near the bridge is closed", "en", NOW, "telegram", 12),
        coder,
    )
    item = first.item
    reply = await record_reply(session, item, None, "Water arrives tomorrow at 9", NOW)
    await delivered(session, item, reply, NOW)
    registration = await start_registration(session, contact.id, NOW)
    registration.phone = "+254712345678"
    registration.location_text = "Riverside school"
    registration.latitude, registration.longitude = 18.539, -72.336
    await session.flush()
    return Person(contact.id, pseudonym, user_id)


async def setup(database: Database) -> tuple[Person, Person]:
    async with database.transaction() as session:
        return (
            await person_with_everything(session, 1001),
            await person_with_everything(session, 1002),
        )


async def counts(session: AsyncSession) -> dict[tuple[object, ...], int]:
    rows = await session.scalars(select(FeedbackCount))
    return {
        (r.kind, r.day, r.code, r.area_code, r.language, r.type, r.status, r.sensitive): r.items
        for r in rows
        if r.items
    }


async def erase(database: Database, person: Person, now: datetime = LATER) -> Erased:
    async with database.transaction() as session:
        contact = await session.get_one(Contact, person.contact_id)
        return await erase_contact(session, contact, now)


async def rows_of(session: AsyncSession, model: type[object], contact_id: int) -> int:
    column = model.contact_id  # type: ignore[attr-defined]
    return int(await session.scalar(select(func.count()).where(column == contact_id)) or 0)


async def item_ids(session: AsyncSession, contact_id: int) -> list[int]:
    return list(
        await session.scalars(select(FeedbackItem.id).where(FeedbackItem.contact_id == contact_id))
    )


async def test_erasure_anonymises_items_and_keeps_the_counts(database: Database) -> None:
    amina, other = await setup(database)
    async with database.transaction() as session:
        before = await counts(session)
        assert before, "the items were counted"

    erased = await erase(database, amina)
    assert erased == Erased(items=2, attachments=1, replies=1, registrations=1, subscriptions=1)
    assert erased.describe() == (
        "items=2 attachments=1 replies=1 registrations=1 subscriptions=1 queued=0"
    )

    async with database.transaction() as session:
        items = list(
            await session.scalars(
                select(FeedbackItem).where(FeedbackItem.contact_id == amina.contact_id)
            )
        )
        assert len(items) == 2, "items stay, for the counts"
        for item in items:
            assert item.text == "" and item.erased_at == LATER
            assert item.source_message_id is None and item.attachments == []
            assert item.type is not None and item.created_at == NOW, "codes and dates kept"
        assert await counts(session) == before, "the rollups are untouched"
    async with database.transaction() as session:
        await rebuild(session)
    async with database.transaction() as session:
        assert await counts(session) == before, "a rebuild from the anonymised items agrees"

        others = list(
            await session.scalars(
                select(FeedbackItem).where(FeedbackItem.contact_id == other.contact_id)
            )
        )
        assert {item.text for item in others} == {
            "We have no water in the camp",
            "The clinic near the bridge is closed",
        }, "nobody else's words are touched"


async def test_erasure_removes_files_replies_registration_address_and_subscriptions(
    database: Database,
) -> None:
    amina, other = await setup(database)
    await erase(database, amina)
    async with database.transaction() as session:
        ids = await item_ids(session, amina.contact_id)
        attachments = await session.scalar(select(func.count()).where(Attachment.item_id.in_(ids)))
        assert attachments == 0
        replies = list(await session.scalars(select(Reply).where(Reply.item_id.in_(ids))))
        assert [reply.text for reply in replies] == [""], "the reply row stays, emptied"
        assert replies[0].delivered_at == NOW, "when it was delivered still counts"
        for model in (Registration, ContactAddress, Subscription):
            assert await rows_of(session, model, amina.contact_id) == 0, model.__name__
            assert await rows_of(session, model, other.contact_id) > 0, model.__name__
        other_ids = await item_ids(session, other.contact_id)
        assert (
            await session.scalar(select(func.count()).where(Attachment.item_id.in_(other_ids))) == 1
        )
        assert list(
            await session.scalars(select(Reply.text).where(Reply.item_id.in_(other_ids)))
        ) == ["Water arrives tomorrow at 9"]


async def test_the_tombstone_cannot_be_traced_and_writing_again_is_a_new_contact(
    database: Database,
) -> None:
    amina, _other = await setup(database)
    await erase(database, amina)
    async with database.transaction() as session:
        tombstone = await session.get_one(Contact, amina.contact_id)
        assert tombstone.pseudonym.startswith(TOMBSTONE_PREFIX)
        assert tombstone.pseudonym != amina.pseudonym
        assert amina.pseudonym[:16] not in tombstone.pseudonym
        assert tombstone.erased_at == LATER and tombstone.consent_at is None
        assert tombstone.language is None and tombstone.area_code is None
        assert tombstone.area_name is None and tombstone.last_seen_at is None
        assert tombstone.consent_version is None and not tombstone.language_chosen
        assert await find_contact(session, amina.pseudonym) is None

    # The same Telegram account agrees again: a fresh contact, nothing of before.
    async with database.transaction() as session:
        again = await record_consent(session, amina.pseudonym, amina.chat_id, "fr", LATER)
        assert again.id != amina.contact_id
        assert again.erased_at is None and again.area_code is None
        assert await rows_of(session, FeedbackItem, again.id) == 0
        assert await rows_of(session, Registration, again.id) == 0


async def test_two_erasures_of_one_tombstone_remove_nothing_more(database: Database) -> None:
    amina, _other = await setup(database)
    await erase(database, amina)
    again = await erase(database, amina, LATER + timedelta(hours=1))
    assert again == Erased(), "a second erasure (a double tap) finds nothing left"
    async with database.transaction() as session:
        items = list(
            await session.scalars(
                select(FeedbackItem).where(FeedbackItem.contact_id == amina.contact_id)
            )
        )
        assert {item.erased_at for item in items} == {LATER}, "the first erasure's time stays"


async def queue_for_both(database: Database, amina: Person) -> tuple[int, int]:
    """Two broadcasts queued for everyone; Amina's first one already sent."""
    async with database.transaction() as session:
        first = await queued_broadcast(session, now=NOW)
        second = await queued_broadcast(session, now=NOW)
        await session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.broadcast_id == first.id,
                OutboxMessage.contact_id == amina.contact_id,
            )
            .values(state=OutboxState.SENT.value, sent_at=NOW)
        )
        return first.id, second.id


async def outbox_states(session: AsyncSession, contact_id: int) -> list[str]:
    rows = await session.scalars(
        select(OutboxMessage.state)
        .where(OutboxMessage.contact_id == contact_id)
        .order_by(OutboxMessage.broadcast_id)
    )
    return list(rows)


async def test_erasure_cancels_queued_messages_and_keeps_sent_ones(database: Database) -> None:
    amina, other = await setup(database)
    await queue_for_both(database, amina)
    erased = await erase(database, amina)
    assert erased.queued_messages == 1
    async with database.transaction() as session:
        assert await outbox_states(session, amina.contact_id) == ["sent", "cancelled"]
        assert await outbox_states(session, other.contact_id) == ["queued", "queued"]


async def test_withdrawal_stops_contact_and_keeps_what_was_sent(database: Database) -> None:
    amina, other = await setup(database)
    await queue_for_both(database, amina)
    async with database.transaction() as session:
        contact = await session.get_one(Contact, amina.contact_id)
        stopped = await withdraw_consent(session, contact, LATER)
    assert stopped == Erased(subscriptions=1, queued_messages=1)

    async with database.transaction() as session:
        contact = await session.get_one(Contact, amina.contact_id)
        assert contact.consent_at is None and contact.consent_withdrawn_at == LATER
        assert contact.pseudonym == amina.pseudonym and contact.erased_at is None
        assert not contact.has_consented
        for model in (ContactAddress, Subscription):
            assert await rows_of(session, model, amina.contact_id) == 0, model.__name__
        assert await outbox_states(session, amina.contact_id) == ["sent", "cancelled"]
        assert await outbox_states(session, other.contact_id) == ["queued", "queued"]
        texts = set(
            await session.scalars(
                select(FeedbackItem.text).where(FeedbackItem.contact_id == amina.contact_id)
            )
        )
        assert texts == {"We have no water in the camp", "The clinic near the bridge is closed"}
        assert await rows_of(session, Registration, amina.contact_id) == 1, "kept until /delete"
        ids = await item_ids(session, amina.contact_id)
        assert await session.scalar(select(func.count()).where(Attachment.item_id.in_(ids))) == 1

    # Agreeing again: the same contact, consent renewed, a chat address again.
    async with database.transaction() as session:
        again = await record_consent(session, amina.pseudonym, amina.chat_id, "en", LATER)
        assert again.id == amina.contact_id
        assert again.has_consented and again.consent_withdrawn_at is None
        assert await rows_of(session, ContactAddress, again.id) == 1


async def test_a_withdrawn_contact_can_still_be_erased(database: Database) -> None:
    amina, _other = await setup(database)
    async with database.transaction() as session:
        contact = await session.get_one(Contact, amina.contact_id)
        await withdraw_consent(session, contact, NOW)
    erased = await erase(database, amina)
    assert (erased.items, erased.registrations, erased.subscriptions) == (2, 1, 0)
    async with database.transaction() as session:
        tombstone = await session.get_one(Contact, amina.contact_id)
        assert tombstone.erased_at == LATER and tombstone.consent_withdrawn_at is None


async def test_erasure_forgets_the_webhooks_copies_and_open_questions(database: Database) -> None:
    """The inbox keeps processed updates a day to recognise repeats: an erasure deletes the
    person's at once, and their open questions; an update still waiting stays until it is
    processed. Another person's stay."""
    amina, other = await setup(database)

    def update_of(update_id: int, chat_id: int) -> dict[str, object]:
        chat = {"id": chat_id, "type": "private", "first_name": "Amina"}
        return {"update_id": update_id, "message": {"message_id": 1, "date": 0, "chat": chat}}

    async with database.transaction() as session:
        kept = [update_of(1, amina.chat_id), update_of(2, other.chat_id)]
        await inbox.receive(session, [*kept, update_of(3, amina.chat_id)], NOW)
        await session.execute(
            update(InboxUpdate)
            .where(InboxUpdate.update_id < 3)
            .values(processed_at=NOW, outcome="ok")
        )
        await conversations.save(session, amina.chat_id, amina.chat_id, {"q": "asked"}, NOW)
        await conversations.save(session, other.chat_id, other.chat_id, {"q": "asked"}, NOW)
    await erase(database, amina)
    async with database.transaction() as session:
        left = sorted(await session.scalars(select(InboxUpdate.update_id)))
        questions = list(await session.scalars(select(ConversationState.chat_id)))
    assert left == [2, 3], "the other person's, and the one not processed yet"
    assert questions == [other.chat_id]
