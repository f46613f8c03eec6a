"""What people tell us outside a flow: every free text, voice note, photo or file becomes a
feedback item (feedback/items.py), and the person gets a receipt with its reference at once.

Nothing is kept before consent: until then the person is shown the consent notice.
"""

from __future__ import annotations

from telegram import Message, Update
from telegram.ext import ContextTypes, MessageHandler, filters

from bot.keyboards import main_menu
from bot.people import CHANNEL, Person, load_person
from bot.replies import send_current_step
from bot.services import Handler, services_of
from feedback.items import Attachment, record_item
from storage.references import spoken

PRIVATE = filters.ChatType.PRIVATE
KEPT_MEDIA = (
    filters.VOICE | filters.AUDIO | filters.PHOTO | filters.VIDEO | filters.VIDEO_NOTE
) | filters.Document.ALL


def text_receipt(person: Person, reference: str) -> str:
    return person.format(
        person.gettext(
            "Thank you for your message. Your reference is {reference}. The response team "
            "reads every message and will answer here when they can."
        ),
        reference=spoken(reference),
    )


def media_receipt(person: Person, reference: str) -> str:
    return person.format(
        person.gettext(
            "Thank you. We have kept what you sent (reference {reference}). A person will "
            "listen to it or look at it. You can also write your message in words."
        ),
        reference=spoken(reference),
    )


def attachment_of(message: Message) -> Attachment | None:
    """The file a message carries, as the channel's file id (the largest photo size)."""
    if message.photo:
        photo = message.photo[-1]
        return Attachment(kind="photo", file_id=photo.file_id, size=photo.file_size)
    for kind in ("voice", "audio", "video", "video_note", "document"):
        media = getattr(message, kind)
        if media is not None:
            return Attachment(
                kind=kind,
                file_id=media.file_id,
                mime_type=getattr(media, "mime_type", None),
                size=media.file_size,
            )
    return None


async def on_media(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    assert message is not None
    attachment = attachment_of(message)
    assert attachment is not None, "the handler's filter only lets files through"
    services = services_of(context)
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        reference = None
        if person.onboarded and person.contact is not None:
            item = await record_item(
                session,
                person.contact.id,
                message.caption or "",
                None,
                services.clock(),
                channel=CHANNEL,
                attachments=[attachment],
            )
            reference = item.reference
    if reference is None:
        await send_current_step(context, person)
        return
    _ = person.gettext
    await context.bot.send_message(
        person.chat_id, media_receipt(person, reference), reply_markup=main_menu(_)
    )


def handlers() -> list[Handler]:
    """After the flows: files no flow asked for."""
    return [MessageHandler(PRIVATE & KEPT_MEDIA, on_media)]
