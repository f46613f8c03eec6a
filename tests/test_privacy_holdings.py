"""privacy/holdings.py: what /mydata reports is everything stored about the person, and
nothing about anybody else (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import select

from evacuation.registrations import Registration
from feedback.items import FeedbackItem
from feedback.replies import record_reply
from messages.contacts import CONSENT_VERSION, Contact, choose_language, record_consent
from messages.places import Place, PlaceKind
from privacy.erasure import anonymise_items, withdraw_consent
from privacy.holdings import what_we_hold
from storage.database import Database
from tests.test_privacy_erasure import LATER, NOW, setup


async def test_everything_held_about_the_person_and_only_them(database: Database) -> None:
    amina, other = await setup(database)
    async with database.transaction() as session:
        contact = await session.get_one(Contact, amina.contact_id)
        choose_language(contact, "fr")
        held = await what_we_hold(session, contact)

    assert (held.language, held.language_chosen) == ("fr", True)
    assert (held.consent_version, held.consent_at) == (CONSENT_VERSION, NOW)
    assert held.consent_withdrawn_at is None
    assert (held.area_code, held.area_name) == ("HT01", "Ouest")
    assert held.created_at == NOW and held.last_seen_at == NOW
    assert held.subscriptions == {"alerts": None}

    texts = [item.text for item in held.items]
    assert texts == ["We have no water in the camp", "The clinic near the bridge is closed"]
    first, second = held.items
    assert (first.attachments, second.attachments) == (1, 0)
    assert first.status == "answered" and second.status != "answered"
    assert first.created_at == NOW and first.erased_at is None
    assert len(first.reference) == 6 and first.reference != second.reference
    assert [reply.text for reply in first.replies] == ["Water arrives tomorrow at 9"]
    assert [reply.item_reference for reply in held.replies_received] == [first.reference]

    assert held.registration is not None
    fields = held.registration.fields
    assert fields["phone"] == "+254712345678" and fields["location_text"] == "Riverside school"
    assert (fields["latitude"], fields["longitude"]) == (18.539, -72.336)
    assert fields["status"] == "draft" and fields["created_at"] == NOW
    assert "contact_id" not in fields and "id" not in fields, "row keys are not data"
    assert held.registration.departure_point is None

    # The other person's holdings are theirs alone: the same texts, other references.
    async with database.transaction() as session:
        theirs = await what_we_hold(session, await session.get_one(Contact, other.contact_id))
    assert {item.reference for item in theirs.items}.isdisjoint(
        {item.reference for item in held.items}
    )


async def test_a_new_contact_holds_little(database: Database) -> None:
    async with database.transaction() as session:
        contact = await record_consent(session, "p-new", 5, None, NOW)
        held = await what_we_hold(session, contact)
    assert held.items == () and held.registration is None and held.subscriptions == {}
    assert held.language is None and not held.language_chosen and held.area_code is None


async def test_withdrawn_erased_texts_and_undelivered_replies(database: Database) -> None:
    amina, _other = await setup(database)
    async with database.transaction() as session:
        contact = await session.get_one(Contact, amina.contact_id)
        first_id, second_id = sorted(
            await session.scalars(
                select(FeedbackItem.id).where(FeedbackItem.contact_id == contact.id)
            )
        )
        pending = await session.get_one(FeedbackItem, second_id)
        await record_reply(session, pending, None, "Not sent yet", NOW)  # not received yet
        await withdraw_consent(session, contact, LATER)
        await anonymise_items(session, [first_id], LATER)  # as the retention job would
        point = Place(
            external_id="DP-1",
            kind=PlaceKind.DEPARTURE_POINT,
            names={"en": "North Gate", "fr": "Porte Nord"},
            updated_by="test",
        )
        session.add(point)
        await session.flush()
        registration = await session.scalar(
            select(Registration).where(Registration.contact_id == contact.id)
        )
        assert registration is not None
        registration.departure_point_id = point.id
    async with database.transaction() as session:
        contact = await session.get_one(Contact, amina.contact_id)
        held = await what_we_hold(session, contact)

    assert held.consent_at is None and held.consent_withdrawn_at == LATER
    assert held.subscriptions == {}, "withdrawal ended the subscriptions"
    first, second = held.items
    assert first.text == "" and first.erased_at == LATER and first.attachments == 0
    assert first.replies == (), "an emptied reply is nothing to show"
    assert second.text == "The clinic near the bridge is closed" and second.replies == ()
    assert held.replies_received == ()
    assert held.registration is not None
    assert held.registration.departure_point == {"en": "North Gate", "fr": "Porte Nord"}
