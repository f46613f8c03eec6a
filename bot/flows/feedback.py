"""What people tell us: free text, voice notes, photos and files outside a flow, and the
menu's "Tell us what you need". Each becomes a coded feedback item (feedback/intake.py) and
the person gets an answer at once: a receipt with the reference, or, for a sensitive report,
a survivor-centred reply while the protection focal point is alerted (bot/flows/responders.py).

Nothing is kept before consent: until then the person is shown the consent notice.

```mermaid
stateDiagram-v2
    [*] --> Picking: menu "Tell us what you need"
    Picking --> Picking: tap a need (toggles ✅; the choice lives in the buttons)
    Picking --> Words: Done (item recorded with the needs; receipt)
    Words --> [*]: next text or file within 30 min is added to that item
    [*] --> Received: free text, voice note, photo, file
    Received --> [*]: receipt, "already have it", slow-down notice or silence (flood)
    Received --> Choice: sensitive → survivor-centred reply
    Choice --> [*]: "contact me here" / "do not contact me"
```
"""

from __future__ import annotations

import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.ext import CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bot.config import Settings
from bot.flows.responders import send_due_alerts
from bot.keyboards import main_menu
from bot.people import CHANNEL, Person, load_person
from bot.replies import answer_stale_button, edit_quietly, help_line, send_current_step
from bot.services import Handler, services_of
from feedback.coding import default_coder
from feedback.intake import Intake, Outcome, Pace, Received, take_message, take_needs
from feedback.items import Attachment, find_item
from feedback.needs import NEEDS, needs_of_mask
from feedback.protection import open_alerts
from messages.areas import area_of_contact
from messages.contacts import Contact
from messages.detection import Detection, detect
from messages.language_choice import remember, switch_suggestion
from storage.references import spoken

PRIVATE = filters.ChatType.PRIVATE
KEPT_MEDIA = (
    filters.VOICE | filters.AUDIO | filters.PHOTO | filters.VIDEO | filters.VIDEO_NOTE
) | filters.Document.ALL
NEED_DATA = re.compile(r"^need:(ok:)?(\d{1,5})$")
CARE_DATA = re.compile(r"^care:([A-Z0-9]{6}):([yn])$")


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


def answer_for(person: Person, intake: Intake, settings: Settings, *, media: bool) -> str | None:
    """What the person is told about a non-sensitive intake; None when flooding (quiet)."""
    _ = person.gettext
    reference = intake.item.reference
    if intake.pace is Pace.QUIET:
        return None
    if intake.pace is Pace.SLOW_DOWN:
        return _(
            "You have sent many messages in a short time. We have kept every one of them, so "
            "there is no need to send them again. The team will answer here."
        )
    if intake.outcome is Outcome.REPEAT:
        return person.format(
            _(
                "We already have this message (reference {reference}). There is no need to "
                "send it again: the team will answer here."
            ),
            reference=spoken(reference),
        )
    if intake.outcome is Outcome.ADDED:
        text = person.format(
            _("Thank you. We added this to your reference {reference}."),
            reference=spoken(reference),
        )
    else:
        text = media_receipt(person, reference) if media else text_receipt(person, reference)
    if intake.urgent:
        text += "\n\n" + _("If a life is in danger right now:") + " " + help_line(person, settings)
    return text


def survivor_reply(person: Person, reference: str, settings: Settings) -> str:
    """Acknowledge, no blame, where to get help now, no questions; then the contact choice."""
    _ = person.gettext
    services = settings.services
    hotline = services.protection_hotline or services.help_line
    parts = [
        person.format(
            _(
                "Thank you for trusting us with this. What happened is not your fault. Your "
                "message is safe with us and only the protection team will read it "
                "(reference {reference})."
            ),
            reference=spoken(reference),
        ),
        person.format(
            _("You can call {hotline} at any time. The call is free and confidential."),
            hotline=hotline,
        )
        if hotline
        else _(
            "You can go to any humanitarian staff member and ask for the protection team, "
            "at any time."
        ),
    ]
    if services.protection_referrals:
        parts.append(
            person.format(
                _("Other people who can help: {contacts}"), contacts=services.protection_referrals
            )
        )
    parts.append(_("Would you like someone from the protection team to contact you here?"))
    return "\n\n".join(parts)


def care_keyboard(person: Person, reference: str) -> InlineKeyboardMarkup:
    _ = person.gettext
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(_("Yes, contact me here"), callback_data=f"care:{reference}:y")],
            [InlineKeyboardButton(_("No, do not contact me"), callback_data=f"care:{reference}:n")],
        ]
    )


def attachment_of(message: Message) -> Attachment | None:
    """The file a message carries, as the channel's file id (the largest photo size)."""
    if message.photo:
        photo = message.photo[-1]
        return _attachment("photo", photo.file_id, None, photo.file_size)
    for kind in ("voice", "audio", "video", "video_note", "document"):
        media = getattr(message, kind)
        if media is not None:
            return _attachment(
                kind, media.file_id, getattr(media, "mime_type", None), media.file_size
            )
    return None


def _attachment(kind: str, file_id: str, mime_type: str | None, size: int | None) -> Attachment:
    # Fitted to the columns: a forged update with oversized fields must not cost the item.
    return Attachment(
        kind=kind,
        file_id=file_id[:256],
        mime_type=mime_type[:128] if mime_type else None,
        size=size if size is not None and 0 <= size < 2**31 else None,
    )


def note_language(person: Person, detection: Detection, enabled: tuple[str, ...]) -> str | None:
    """Add this message's language to the trail; the language to offer, if it points elsewhere."""
    contact = person.contact
    assert contact is not None
    contact.recent_languages = remember(contact.recent_languages, detection)
    suggestion = switch_suggestion(contact.language, contact.recent_languages, enabled)
    if suggestion is not None:
        contact.recent_languages = None  # offer once, not after every message
    return suggestion


async def receive(
    update: Update, context: ContextTypes.DEFAULT_TYPE, *, text: str, detection: Detection | None
) -> tuple[Person, str | None]:
    """Keep a message from an onboarded person and answer it, in one transaction with the
    language trail; returns the person and a language to offer them, if any."""
    message = update.effective_message
    assert message is not None
    services = services_of(context)
    attachment = attachment_of(message)
    suggestion = None
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        if not person.onboarded or person.contact is None:
            intake = None
        else:
            if detection is not None:
                enabled = services.settings.enabled_languages
                suggestion = note_language(person, detection, enabled)
            received = Received(
                contact_id=person.contact.id,
                text=text,
                language=detection.language if detection is not None else None,
                now=services.clock(),
                channel=CHANNEL,
                source_message_id=message.message_id,
                attachment=attachment,
                area=area_pair(person.contact),
            )
            intake = await take_message(session, received, default_coder())
            if intake.sensitive and intake.outcome in (Outcome.NEW, Outcome.ADDED):
                for item in intake.items:
                    if item.sensitive:
                        await open_alerts(
                            session, item, services.settings.services.protection_chats
                        )
    if intake is None:
        await send_current_step(context, person)
        return person, None
    await answer_intake(context, person, intake, media=attachment is not None)
    return person, suggestion


async def answer_intake(
    context: ContextTypes.DEFAULT_TYPE, person: Person, intake: Intake, *, media: bool
) -> None:
    services = services_of(context)
    settings = services.settings
    if intake.sensitive and intake.outcome is not Outcome.REPEAT:
        reference = next(item.reference for item in intake.items if item.sensitive)
        await context.bot.send_message(
            person.chat_id,
            survivor_reply(person, reference, settings),
            reply_markup=care_keyboard(person, reference),
        )
        await send_due_alerts(context.bot, services)
        return
    text = answer_for(person, intake, settings, media=media)
    if text is not None:
        await context.bot.send_message(person.chat_id, text, reply_markup=main_menu(person.gettext))


async def on_media(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    assert message is not None
    caption = message.caption or ""
    enabled = services_of(context).settings.enabled_languages
    detection = detect(caption, enabled) if caption.strip() else None
    await receive(update, context, text=caption, detection=detection)


async def on_care_choice(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The survivor's choice whether to be contacted; only for their own item."""
    query = update.callback_query
    assert query is not None and query.data is not None
    match = CARE_DATA.match(query.data)
    assert match is not None
    wanted = match.group(2) == "y"
    services = services_of(context)
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        item = await find_item(session, match.group(1))
        own = (
            item is not None and person.contact is not None and item.contact_id == person.contact.id
        )
        if own and item is not None:
            item.contact_wanted = wanted
    if not own:
        await answer_stale_button(update, context)
        return
    await query.answer()
    _ = person.gettext
    if query.message is not None:
        await edit_quietly(query)
    hotline = services.settings.services.protection_hotline or services.settings.services.help_line
    if wanted:
        text = _("Thank you. Someone from the protection team will write to you here.")
    else:
        text = _("We respect your choice. Nobody will contact you about this.")
    if hotline:
        text += "\n\n" + person.format(
            _("If you are in danger, call {hotline} at any time."), hotline=hotline
        )
    await context.bot.send_message(person.chat_id, text, reply_markup=main_menu(_))


# The need picker keeps its state in the buttons: a bitmask of the picked needs.


def needs_keyboard(person: Person, mask: int) -> InlineKeyboardMarkup:
    _ = person.gettext
    rows = []
    for i, need in enumerate(NEEDS):
        picked = mask >> i & 1
        label = ("✅ " if picked else "") + _(need.label)
        rows.append([InlineKeyboardButton(label, callback_data=f"need:{mask ^ (1 << i)}")])
    rows.append([InlineKeyboardButton(_("Done"), callback_data=f"need:ok:{mask}")])
    return InlineKeyboardMarkup(rows)


async def ask_needs(context: ContextTypes.DEFAULT_TYPE, person: Person) -> None:
    _ = person.gettext
    await context.bot.send_message(
        person.chat_id,
        _("What do you need? Tap one or more, then Done."),
        reply_markup=needs_keyboard(person, 0),
    )


async def on_need_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    match = NEED_DATA.match(query.data)
    assert match is not None
    mask = int(match.group(2)) & ((1 << len(NEEDS)) - 1)
    services = services_of(context)
    if match.group(1) is None:
        async with services.db.transaction() as session:
            person = await load_person(session, update, services)
        await query.answer()
        await edit_quietly(query, markup=needs_keyboard(person, mask))
        return
    await need_done(update, context, mask)


async def need_done(update: Update, context: ContextTypes.DEFAULT_TYPE, mask: int) -> None:
    query = update.callback_query
    assert query is not None
    services = services_of(context)
    needs = needs_of_mask(mask)
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        reference = None
        if needs and person.onboarded and person.contact is not None:
            item = await take_needs(
                session,
                person.contact.id,
                needs,
                services.clock(),
                default_coder(),
                channel=CHANNEL,
                area=area_pair(person.contact),
            )
            reference = item.reference
    _ = person.gettext
    if not person.onboarded:
        await query.answer()
        await send_current_step(context, person)
        return
    if reference is None:
        await query.answer(
            _("Tap at least one need, or simply write your message."), show_alert=True
        )
        return
    await query.answer()
    picked = ", ".join(_(need.label) for need in needs)
    await edit_quietly(query, text=person.format(_("You need: {needs}"), needs=picked))
    await context.bot.send_message(
        person.chat_id,
        person.format(
            _(
                "Noted. Your reference is {reference}. Now tell us in your own words what you "
                "need and where you are, or send a voice note: your next message is added to "
                "this reference."
            ),
            reference=spoken(reference),
        ),
        reply_markup=main_menu(_),
    )


def handlers() -> list[Handler]:
    """After the flows: files no flow asked for, need picks and survivors' choices."""
    return [
        CallbackQueryHandler(on_need_button, pattern=NEED_DATA),
        CallbackQueryHandler(on_care_choice, pattern=CARE_DATA),
        MessageHandler(PRIVATE & KEPT_MEDIA, on_media),
    ]


def area_pair(contact: Contact) -> tuple[str, str | None] | None:
    """The area an item is counted under: the person's last place or location lookup."""
    area = area_of_contact(contact)
    return (area.code, area.name) if area is not None else None
