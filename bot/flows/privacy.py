"""Data rights in the chat: the full notice, /privacy, /mydata, /delete, withdrawing consent.

Nothing is kept in memory: every button carries what it needs, and a confirmation names the
contact it was asked for ("priv:del:yes:<contact id>"), so a second tap, a button from
before an erasure or a forged one finds nothing to act on and is answered as stale.

```mermaid
stateDiagram-v2
    [*] --> Statement: /privacy (a contact: consented or withdrawn)
    [*] --> Notice: /privacy, /mydata, /delete with nothing held (the onboarding notice)
    Statement --> FullNotice: "Full notice"
    Statement --> Data: "See my data" or /mydata
    Statement --> ConfirmDelete: "Delete my data" or /delete
    Statement --> ConfirmWithdraw: "Withdraw consent" (consented only)
    Data --> [*]: what we hold, in as many messages as needed
    ConfirmWithdraw --> Withdrawn: "Yes, withdraw" (address, subscriptions, queue gone; audited)
    ConfirmWithdraw --> Unchanged: "No, keep my consent"
    Withdrawn --> Notice: their next message
    ConfirmDelete --> Erased: "Yes, delete everything" (a tombstone, items anonymised; audited)
    ConfirmDelete --> Unchanged: "No, keep my data"
    Erased --> Notice: their next message (agreeing makes a new contact)
    note right of ConfirmDelete
        A stale, repeated or forged confirmation: "no longer active" and the current step.
    end note
```
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.ext import CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bot.flows.registration_views import summary as registration_summary
from bot.flows.subscriptions import summary as subscriptions_summary
from bot.keyboards import consent_keyboard, main_menu
from bot.people import Person, current_person, load_person
from bot.replies import answer_stale_button, consent_statement, edit_quietly, send_current_step
from bot.services import Handler, services_of
from evacuation.registrations import Registration
from feedback.needs import needs_of_keys
from messages.areas import area_names
from messages.bidi import isolate
from messages.contacts import CONSENT_VERSION, Contact
from messages.formatting import date_time
from messages.i18n import N_
from messages.languages import get_language, is_rtl
from messages.places import display_name
from privacy.erasure import Erased, erase_contact, withdraw_consent
from privacy.holdings import HeldItem, HeldRegistration, Holdings, what_we_hold
from staff.audit import Action, Actor, record
from storage.references import spoken

PRIVATE = filters.ChatType.PRIVATE
# Telegram's limit, counted in UTF-16 code units as Telegram counts it.
MESSAGE_LIMIT = 4096

DATA = re.compile(
    r"^priv:(?:(?P<open>data|delete|withdraw|full)"
    r"|(?P<confirm>wd|del):(?:yes:(?P<contact>\d{1,18})|(?P<no>no)))$"
)

NOTHING_HELD = N_("We hold nothing about you.")
SEE = N_("See my data")
DELETE = N_("Delete my data")
WITHDRAW = N_("Withdraw consent")
FULL = N_("Full notice")
WITHDRAWN_ON = N_("You withdrew your consent on {date}.")
START_AGAIN = N_("To use the service again, send /start.")
UNCHANGED = N_("Nothing has changed.")

# Feedback item statuses as the person reads them (feedback/items.py has the lifecycle).
STATUSES = {
    "new": N_("received"),
    "in_review": N_("being read"),
    "referred": N_("passed on to a service"),
    "answered": N_("answered"),
    "closed": N_("closed"),
}


# --- the full notice (the third level; bot/replies.py has the first two) -----------------


def full_notice(person: Person, version: str, retention_days: int) -> str:
    _ = person.gettext
    kept = person.ngettext(
        "How long: we keep your information for at most {days} day after you last write to "
        "us; then it is deleted or made anonymous. Counts without names are kept to plan the "
        "response.",
        "How long: we keep your information for at most {days} days after you last write to "
        "us; then it is deleted or made anonymous. Counts without names are kept to plan the "
        "response.",
        retention_days,
    )
    return "\n\n".join(
        (
            person.format(_("Privacy notice (version {version})"), version=version),
            _(
                "Who is responsible: the humanitarian organisations that run this service for "
                "the response to this crisis, coordinated under the Migration Crisis "
                "Operational Framework of the International Organization for Migration (IOM). "
                "They decide why and how your information is used, and answer for it."
            ),
            _(
                "Why we use your information: to send you the information and updates you ask "
                "for, to answer your messages, to organise help such as evacuation and "
                "transport, and to see, in counts without names, which needs are not being met."
            ),
            _(
                "Legal basis: your consent, which you can withdraw at any time. When a message "
                "shows that someone's life or safety is in danger, we alert the protection staff "
                "without asking first, to protect that person's vital interests."
            ),
            _(
                "What we collect: a code made from your Telegram account (not your name or "
                "number), the language you use, the area of your last place search, the topics "
                "you follow, what you write or send us, the replies we send you, and the answers "
                "you give if you register for evacuation or transport (a phone number and your "
                "location only if you give them)."
            ),
            _(
                "What we do not collect: your name, your Telegram contacts or profile, your "
                "exact location when you only search for a shelter, or anything else from your "
                "phone."
            ),
            _(
                "Who receives it: trained staff of the response, each only what their work "
                "needs; reports of abuse or danger only the protection staff. The transport "
                "partner receives your registration only if you agree. Reports and exports use "
                "numbers and codes, never names. Nobody else receives it from us."
            ),
            person.format(kept, days=retention_days),
            _(
                "Security: your information is kept on the response's own servers; staff need "
                "a personal login and see only what their role allows; every view, export and "
                "deletion is recorded. Your Telegram name and number are never stored. Messages "
                "travel through Telegram, which has its own privacy policy."
            ),
            _(
                "Your rights: send /mydata to see everything we hold about you, /delete to erase "
                "it (only counts without names remain), and /privacy to withdraw your consent, "
                "after which we stop writing to you. You can also ask any humanitarian staff "
                "member. Saying no does not affect any help you receive elsewhere."
            ),
        )
    )


def notice_for(context: ContextTypes.DEFAULT_TYPE, person: Person) -> str:
    """The full notice with this deployment's version and retention period."""
    days = services_of(context).settings.services.retention.days
    return full_notice(person, CONSENT_VERSION, days)


# --- /privacy -------------------------------------------------------------------------


def privacy_keyboard(
    person: Person, contact: Contact, *, full_shown: bool = False
) -> InlineKeyboardMarkup:
    _ = person.gettext
    rows = [
        [InlineKeyboardButton("📄 " + _(SEE), callback_data="priv:data")],
        [InlineKeyboardButton("🗑 " + _(DELETE), callback_data="priv:delete")],
    ]
    if contact.has_consented:
        rows.append([InlineKeyboardButton("✋ " + _(WITHDRAW), callback_data="priv:withdraw")])
    if not full_shown:
        rows.append([InlineKeyboardButton("📜 " + _(FULL), callback_data="priv:full")])
    return InlineKeyboardMarkup(rows)


def withdrawn_note(person: Person, contact: Contact, timezone: str) -> str | None:
    if contact.has_consented or contact.consent_withdrawn_at is None:
        return None
    when = date_time(contact.consent_withdrawn_at, person.language, timezone)
    return (
        person.format(person.gettext(WITHDRAWN_ON), date=when) + " " + person.gettext(START_AGAIN)
    )


async def privacy_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    person = await current_person(update, context)
    contact = person.contact
    if contact is None:
        # Nothing held: the notice's statement, with its consent buttons.
        await context.bot.send_message(
            person.chat_id,
            consent_statement(person),
            reply_markup=consent_keyboard(person.gettext, "statement"),
        )
        return
    text = consent_statement(person, ask=False)
    note = withdrawn_note(person, contact, services_of(context).settings.timezone)
    await context.bot.send_message(
        person.chat_id,
        f"{note}\n\n{text}" if note else text,
        reply_markup=privacy_keyboard(person, contact),
    )


# --- /mydata --------------------------------------------------------------------------


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def pack(blocks: Sequence[str], limit: int = MESSAGE_LIMIT) -> list[str]:
    """Blocks joined into as few messages as fit, splitting between blocks; a block longer
    than a message is split between its lines, and a line longer than that anywhere."""
    messages: list[str] = []
    current = ""
    for block in blocks:
        for piece in _pieces(block, limit):
            joined = f"{current}\n\n{piece}" if current else piece
            if utf16_length(joined) <= limit:
                current = joined
            else:
                messages.append(current)
                current = piece
    if current:
        messages.append(current)
    return messages


def _pieces(block: str, limit: int) -> Iterator[str]:
    if utf16_length(block) <= limit:
        yield block
        return
    current = ""
    for line in block.split("\n"):
        for part in _cut(line, limit):
            joined = f"{current}\n{part}" if current else part
            if utf16_length(joined) <= limit:
                current = joined
            else:
                yield current
                current = part
    if current:
        yield current


def _cut(line: str, limit: int) -> Iterator[str]:
    """A line in parts of at most `limit` UTF-16 units, never inside a character."""
    part, size = "", 0
    for char in line:
        width = utf16_length(char)
        if size + width > limit:
            yield part
            part, size = "", 0
        part += char
        size += width
    yield part


@dataclass(frozen=True)
class View:
    """What the renderer needs besides the holdings."""

    person: Person
    timezone: str
    area_names: Mapping[str, str]

    def when(self, moment: datetime) -> str:
        return date_time(moment, self.person.language, self.timezone)

    def own_text(self, text: str) -> str:
        """What the person wrote, each line isolated in a right-to-left chat."""
        if not is_rtl(self.person.language):
            return text
        return "\n".join(isolate(line) for line in text.split("\n"))


def holdings_blocks(view: View, held: Holdings) -> list[str]:
    """What we hold, as blocks of text in the person's language (one per item)."""
    blocks = [
        contact_block(view, held),
        subscriptions_summary(view.person, held.subscriptions, view.area_names),
    ]
    if held.registration is not None:
        blocks.append(registration_block(view, held.registration))
    _ = view.person.gettext
    if held.items:
        blocks.append(view.person.format(_("Your messages to us: {count}"), count=len(held.items)))
        blocks.extend(item_block(view, item) for item in held.items)
    else:
        blocks.append(_("You have not sent us any messages."))
    return blocks


def contact_block(view: View, held: Holdings) -> str:
    person = view.person
    _ = person.gettext
    lines = [_("This is everything we hold about you.")]
    language = get_language(held.language) if held.language else None
    if language is not None:
        template = (
            _("Language: {language} (you chose it)")
            if held.language_chosen
            else _("Language: {language} (guessed from your messages)")
        )
        lines.append(person.format(template, language=language.native_name))
    if held.consent_at is not None:
        lines.append(
            person.format(
                _("You agreed to our notice (version {version}) on {date}."),
                version=held.consent_version or "—",
                date=view.when(held.consent_at),
            )
        )
    if held.consent_withdrawn_at is not None:
        lines.append(person.format(_(WITHDRAWN_ON), date=view.when(held.consent_withdrawn_at)))
    if held.area_code is not None:
        area = held.area_name or view.area_names.get(held.area_code, held.area_code)
        lines.append(person.format(_("Your area, from your last search: {area}"), area=area))
    lines.append(person.format(_("With us since: {date}"), date=view.when(held.created_at)))
    if held.last_seen_at is not None:
        lines.append(person.format(_("Last seen: {date}"), date=view.when(held.last_seen_at)))
    return "\n".join(lines)


def registration_block(view: View, held: HeldRegistration) -> str:
    person = view.person
    _ = person.gettext
    status = held.get("status")
    reference = held.get("reference")
    if status == "submitted" and isinstance(reference, str):
        heading = person.format(
            _("You are registered for evacuation or transport. Your reference: {reference}"),
            reference=spoken(reference),
        )
    elif status == "cancelled":
        heading = _("Your cancelled registration for evacuation or transport:")
    else:
        heading = _("Your unfinished registration for evacuation or transport:")
    # The registration's own summary, from a detached copy of the stored row.
    lines = [heading, "", registration_summary(person, Registration(**held.fields))]
    latitude, longitude = held.get("latitude"), held.get("longitude")
    if latitude is not None and longitude is not None:
        lines.append(
            person.format(
                _("Shared location: {latitude}, {longitude}"),
                latitude=latitude,
                longitude=longitude,
            )
        )
    if held.departure_point:
        name = display_name(held.departure_point, person.language)
        lines.append(person.format(_("Departure point: {name}"), name=name))
    return "\n".join(lines)


def item_block(view: View, item: HeldItem) -> str:
    person = view.person
    _ = person.gettext
    status = _(STATUSES[item.status]) if item.status in STATUSES else item.status
    lines = [
        person.format(
            "🧾 {reference} · {date} · {status}",
            reference=spoken(item.reference),
            date=view.when(item.created_at),
            status=status,
        )
    ]
    needs = needs_of_keys(",".join(item.needs))
    if needs:
        lines.append(", ".join(_(need.label) for need in needs))
    if item.erased_at is not None:
        lines.append(
            person.format(
                _("(what you wrote here was deleted on {date})"), date=view.when(item.erased_at)
            )
        )
    elif item.text:
        lines.append(view.own_text(item.text))
    if item.attachments:
        lines.append(person.format(_("Files: {count}"), count=item.attachments))
    for reply in item.replies:
        heading = person.format(
            _("Reply from the response team about your message {reference}:"),
            reference=spoken(item.reference),
        )
        lines.append(f"↪ {heading}\n{view.own_text(reply.text)}")
    return "\n".join(lines)


async def send_holdings(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/mydata and "See my data": everything held, or the notice when nothing is."""
    services = services_of(context)
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        held = await what_we_hold(session, person.contact) if person.contact else None
        names = await area_names(session) if held is not None else {}
    if held is None:
        await nothing_held(context, person)
        return
    view = View(person, services.settings.timezone, names)
    messages = pack(holdings_blocks(view, held))
    markup = main_menu(person.gettext) if person.onboarded else None
    for number, text in enumerate(messages, start=1):
        await context.bot.send_message(
            person.chat_id, text, reply_markup=markup if number == len(messages) else None
        )


async def nothing_held(context: ContextTypes.DEFAULT_TYPE, person: Person) -> None:
    await context.bot.send_message(person.chat_id, person.gettext(NOTHING_HELD))
    await send_current_step(context, person)


async def mydata_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await send_holdings(update, context)


# --- withdrawing consent and deleting ---------------------------------------------------


def confirmation(person: Person, kind: str, contact_id: int) -> InlineKeyboardMarkup:
    _ = person.gettext
    if kind == "wd":
        yes, keep = "✋ " + _("Yes, withdraw my consent"), _("No, keep my consent")
    else:
        yes, keep = "🗑 " + _("Yes, delete everything"), _("No, keep my data")
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(yes, callback_data=f"priv:{kind}:yes:{contact_id}")],
            [InlineKeyboardButton(keep, callback_data=f"priv:{kind}:no")],
        ]
    )


async def ask_delete(context: ContextTypes.DEFAULT_TYPE, person: Person) -> None:
    if person.contact is None:
        await nothing_held(context, person)
        return
    text = person.gettext(
        "Delete everything we hold about you? Your messages, files, registration and "
        "subscriptions, and the replies you received, will be erased, and we will forget your "
        "chat. Only anonymous counts remain. This cannot be undone."
    )
    await context.bot.send_message(
        person.chat_id, text, reply_markup=confirmation(person, "del", person.contact.id)
    )


async def ask_withdraw(context: ContextTypes.DEFAULT_TYPE, person: Person) -> bool:
    """False when there is no consent to withdraw (the caller treats the button as stale)."""
    contact = person.contact
    if contact is None or not contact.has_consented:
        return False
    text = person.gettext(
        "Withdraw your consent? We will stop sending you messages and updates and forget how "
        "to reach you. What you already sent us stays until you delete it with /delete or it "
        "expires."
    )
    await context.bot.send_message(
        person.chat_id, text, reply_markup=confirmation(person, "wd", contact.id)
    )
    return True


async def delete_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await ask_delete(context, await current_person(update, context))


async def withdraw(session: AsyncSession, contact: Contact, now: datetime) -> None:
    await withdraw_consent(session, contact, now)
    # A registration in progress stops where it is: without consent it must not go on.
    await session.execute(
        update(Registration).where(Registration.contact_id == contact.id).values(step=None)
    )
    await record(session, Action.CONSENT_WITHDRAWN, now, actor=Actor.PERSON)


async def erase(session: AsyncSession, contact: Contact, now: datetime) -> Erased:
    erased = await erase_contact(session, contact, now)
    await record(session, Action.ERASURE, now, actor=Actor.PERSON, detail=erased.describe())
    return erased


def withdrawn_text(person: Person) -> str:
    _ = person.gettext
    return (
        _(
            "Your consent is withdrawn. We have stopped sending you messages and updates, and we "
            "no longer keep your chat address or subscriptions. What you already sent us, and "
            "your registration if you made one, are kept until they expire or until you send "
            "/delete, which erases them."
        )
        + "\n\n"
        + _(START_AGAIN)
    )


ERASED_LINES = (
    ("items", N_("Messages: {count}")),
    ("attachments", N_("Files: {count}")),
    ("replies", N_("Replies to you: {count}")),
    ("registrations", N_("Registrations: {count}")),
    ("subscriptions", N_("Subscriptions: {count}")),
    ("queued_messages", N_("Updates waiting to be sent: {count}")),
)


def erased_text(person: Person, erased: Erased) -> str:
    _ = person.gettext
    lines = [_("Your data is deleted:")]
    for field, label in ERASED_LINES:
        count = getattr(erased, field)
        if count:
            lines.append("• " + person.format(_(label), count=count))
    remains = _(
        "What remains are anonymous counts, such as how many people asked for water in an "
        "area, with nothing that leads back to you. If you write again, you start as a new "
        "person."
    )
    return "\n".join(lines) + "\n\n" + remains


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    match = DATA.match(query.data)
    if match is None:
        await answer_stale_button(update, context)
        return
    if match.group("open") is not None:
        await open_button(update, context, match.group("open"))
    elif match.group("no") is not None:
        person = await current_person(update, context)
        await query.answer()
        await edit_quietly(query, person.gettext(UNCHANGED), None)
    else:
        await confirm(update, context, match.group("confirm"), int(match.group("contact")))


async def open_button(update: Update, context: ContextTypes.DEFAULT_TYPE, what: str) -> None:
    query = update.callback_query
    assert query is not None
    person = await current_person(update, context)
    contact = person.contact
    if contact is None:
        await answer_stale_button(update, context)
        return
    if what == "withdraw":
        if not await ask_withdraw(context, person):
            await answer_stale_button(update, context)
            return
        await query.answer()
        return
    await query.answer()
    if what == "full":
        await edit_quietly(
            query, notice_for(context, person), privacy_keyboard(person, contact, full_shown=True)
        )
    elif what == "data":
        await send_holdings(update, context)
    else:
        await ask_delete(context, person)


async def confirm(
    update: Update, context: ContextTypes.DEFAULT_TYPE, kind: str, contact_id: int
) -> None:
    """ "Yes" to a withdrawal or an erasure, acted on only for the contact it was asked for."""
    query = update.callback_query
    assert query is not None
    services = services_of(context)
    now = services.clock()
    text: str | None = None
    async with services.db.transaction() as session:
        person = await load_person(session, update, services)
        contact = person.contact
        if contact is not None and contact.id == contact_id:
            if kind == "del":
                text = erased_text(person, await erase(session, contact, now))
            elif contact.has_consented:
                await withdraw(session, contact, now)
                text = withdrawn_text(person)
    if text is None:
        await answer_stale_button(update, context)
        return
    await query.answer()
    await edit_quietly(query, None, None)
    # The menu keyboard goes too: its buttons would only lead back to the notice.
    await context.bot.send_message(person.chat_id, text, reply_markup=ReplyKeyboardRemove())


def handlers() -> list[Handler]:
    """Before the flows: a conversation in progress must not swallow a data-rights request."""
    return [
        CommandHandler("privacy", privacy_command, filters=PRIVATE),
        CommandHandler("mydata", mydata_command, filters=PRIVATE),
        CommandHandler("delete", delete_command, filters=PRIVATE),
        CallbackQueryHandler(on_button, pattern=r"^priv:"),
    ]
