"""Feedback items without Telegram: references, limits, attachments, deletion with the contact."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, func, select

from feedback.items import Attachment, FeedbackItem, items_of, record_item
from messages.contacts import Contact, record_consent
from storage.database import Database

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


async def test_items_keep_text_attachments_and_unique_references(database: Database) -> None:
    async with database.transaction() as session:
        contact = await record_consent(session, "p1", 1, "en", NOW)
        first = await record_item(session, contact.id, "No water", "en", NOW, channel="telegram")
        long = await record_item(session, contact.id, "y" * 5000, None, NOW, channel="telegram")
        voice = await record_item(
            session,
            contact.id,
            "",
            None,
            NOW,
            channel="telegram",
            attachments=[Attachment(kind="voice", file_id="F1", mime_type="audio/ogg", size=9)],
        )
    async with database.transaction() as session:
        items = await items_of(session, contact.id)
    assert [item.id for item in items] == [first.id, long.id, voice.id]
    assert len({item.reference for item in items}) == 3
    assert all(len(item.reference) == 6 for item in items)
    assert len(items[1].text) == 5000, "kept whole, not cut at 4,096"
    assert [(a.kind, a.file_id) for a in items[2].attachments] == [("voice", "F1")]
    assert {item.status for item in items} == {"new"}


async def test_deleting_a_contact_deletes_their_items(database: Database) -> None:
    async with database.transaction() as session:
        contact = await record_consent(session, "p2", 2, "en", NOW)
        await record_item(
            session,
            contact.id,
            "photo",
            None,
            NOW,
            channel="telegram",
            attachments=[Attachment(kind="photo", file_id="P1")],
        )
    async with database.transaction() as session:
        await session.execute(delete(Contact).where(Contact.id == contact.id))
    async with database.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(FeedbackItem)) == 0
        assert await session.scalar(select(func.count()).select_from(Attachment)) == 0
