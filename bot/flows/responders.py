"""Responders on Telegram: read an item, answer the person, move it along, correct its codes;
and the protection focal point's alerts for sensitive reports.

Commands (private chat, role-checked; anyone else gets the unknown-command answer):

- ``/item REF``: the item, its codes and text. The view is recorded; a new item goes to
  ``in_review``. Sensitive items only for the protection focal point.
- ``/reply REF text``: delivered to the person in the bot, as a reply to their message, with a
  heading in their language; the item becomes ``answered``.
- ``/status REF in_review|referred|answered|closed``.
- ``/codes REF type=request sectors=2,4 clusters=shelter,health urgent=no``: a correction.

Staff texts are in English, the working language of the response, like the other staff
commands. Alerts go to the configured protection chats with the minimum: reference,
category, language, time — never the text, since those chats may be groups — and repeat
(``PROTECTION_ALERT_REPEAT_MINUTES``) until a focal point taps Acknowledge.

```mermaid
stateDiagram-v2
    [*] --> Alerted: sensitive item recorded
    Alerted --> Alerted: no acknowledgement → sent again after the repeat interval
    Alerted --> Acknowledged: a protection focal point taps Acknowledge
    Acknowledged --> [*]
```
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters, Update
from telegram.error import Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bot.flows.staff import staff_only
from bot.people import pseudonym_of
from bot.replies import edit_quietly
from bot.services import Handler, Services, services_of
from feedback.codes import CodeSet, correct, current_codes
from feedback.items import FeedbackItem, ItemStatus, find_item
from feedback.needs import needs_of_keys
from feedback.protection import (
    CATEGORY_LABELS,
    DueAlert,
    acknowledge,
    due_alerts,
    mark_sent,
    may_acknowledge,
)
from feedback.replies import ERASED_NO_REPLY, MAX_REPLY, Reply, delivered, failed, record_reply
from feedback.review import REVIEWERS, TransitionError, may_see, move, open_item
from feedback.taxonomy import taxonomy
from messages.bidi import format_text
from messages.contacts import Contact, ContactAddress
from messages.i18n import translations
from messages.languages import is_rtl
from staff.access import find_staff
from staff.models import StaffMember
from storage.locks import exclusive
from storage.references import normalize_reference, spoken

log = logging.getLogger(__name__)
PRIVATE = filters.ChatType.PRIVATE
RESPONDERS = REVIEWERS  # admins pass staff_only too, but see no sensitive item (may_see)
ACK_DATA = re.compile(r"^ack:([A-Z0-9]{6})$")
_DELIVERY_LOCK = "reply_delivery_lock"
PENDING_BATCH = 20  # per run of the job (every 2 seconds)
# Cross-process sections (storage/locks.py): one bot process at a time sends these.
REPLIES_SECTION = "replies"
ALERTS_SECTION = "alerts"
# A sensitive report's alert goes out from the handler at once; should another process be
# sending alerts just then, the handler waits this long before leaving it to the job.
ALERT_WAIT_SECONDS = 5.0
NOT_FOUND = "No item {reference}. Check the reference (6 letters and digits, e.g. KM7-4PX)."


async def _allowed_item(
    session: AsyncSession, raw_reference: str, member: StaffMember
) -> FeedbackItem | None:
    """The item, if it exists and this member may see it; the same answer otherwise, so that
    a reference does not reveal that a sensitive item exists."""
    reference = normalize_reference(raw_reference)
    item = await find_item(session, reference) if reference else None
    return item if item is not None and may_see(member, item) else None


def _args(context: ContextTypes.DEFAULT_TYPE) -> list[str]:
    return list(context.args or [])


async def _say(update: Update, context: ContextTypes.DEFAULT_TYPE, text: str) -> None:
    chat = update.effective_chat
    assert chat is not None
    await context.bot.send_message(chat.id, text)


def describe(item: FeedbackItem, codes: CodeSet, timezone: str) -> str:
    tax = taxonomy()
    when = item.created_at.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z")
    flags = [f for f, on in (("URGENT", item.urgent), ("SENSITIVE", item.sensitive)) if on]
    lines = [
        f"Item {spoken(item.reference)} · {when} · language {item.language or '?'} · "
        f"{item.status}" + (f" · {' '.join(flags)}" if flags else ""),
        f"Type: {codes.type}",
        "Sectors: " + (", ".join(f"{s} {tax.sectors[s]}" for s in sorted(codes.sectors)) or "–"),
        "Clusters: " + (", ".join(sorted(codes.clusters)) or "–"),
    ]
    if codes.sensitive_categories:
        lines.append("Sensitive: " + ", ".join(sorted(codes.sensitive_categories)))
    if item.needs:
        lines.append("Picked needs: " + ", ".join(n.key for n in needs_of_keys(item.needs)))
    if item.attachments:
        lines.append("Files: " + ", ".join(a.kind for a in item.attachments))
    if item.repeats:
        lines.append(f"Sent again {item.repeats} time(s)")
    if item.contact_wanted is not None:
        lines.append("Wants to be contacted: " + ("yes" if item.contact_wanted else "no"))
    lines += ["", item.text or "(no words)"]
    return "\n".join(lines)


async def show_item(
    update: Update, context: ContextTypes.DEFAULT_TYPE, member: StaffMember
) -> None:
    args = _args(context)
    if len(args) != 1:
        await _say(update, context, "Usage: /item REF")
        return
    services = services_of(context)
    async with services.db.transaction() as session:
        item = await _allowed_item(session, args[0], member)
        if item is not None:
            await open_item(session, item, member, services.clock())
            text = describe(item, await current_codes(session, item), services.settings.timezone)
    if item is None:
        await _say(update, context, NOT_FOUND.format(reference=args[0]))
        return
    await _say(update, context, text[:4096])


@dataclass(frozen=True)
class Outgoing:
    """A recorded reply and where it goes; read in one transaction, sent after it."""

    reply_id: int
    item_id: int
    reference: str
    chat_id: int | None
    language: str
    source_message_id: int | None
    text: str


async def outgoing_for(
    session: AsyncSession, item: FeedbackItem, reply: Reply, default_language: str
) -> Outgoing:
    """Where a recorded reply goes: the person's chat, in their language."""
    contact = await session.get(Contact, item.contact_id)
    address = await session.scalar(
        select(ContactAddress).where(ContactAddress.contact_id == item.contact_id)
    )
    return Outgoing(
        reply_id=reply.id,
        item_id=item.id,
        reference=item.reference,
        chat_id=address.chat_id if address is not None else None,
        language=(contact.language if contact else None) or default_language,
        source_message_id=item.source_message_id,
        text=reply.text,
    )


def delivery_lock(bot_data: dict[Any, Any]) -> asyncio.Lock:
    """One delivery at a time per bot: `/reply` and the pending-replies job both send, and
    each re-reads a reply under this lock, so that none goes out twice. Between processes on
    one PostgreSQL database the section "replies" does the same (storage/locks.py)."""
    lock = bot_data.get(_DELIVERY_LOCK)
    if not isinstance(lock, asyncio.Lock):
        lock = bot_data[_DELIVERY_LOCK] = asyncio.Lock()
    return lock


async def send_pending_replies(
    bot: Bot, services: Services, lock: asyncio.Lock, *, only: int | None = None
) -> int | None:
    """Send pending replies (recorded by `/reply` or the dashboard), oldest first, and record
    each outcome: delivered (the item becomes answered) or failed. A network problem leaves
    the rest pending for the next run. Returns how many were delivered, or None when another
    process is delivering replies: they stay pending for it or for the next run.

    `lock` keeps this process's senders apart, the section "replies" other processes."""
    sent_count = 0
    async with lock, exclusive(services.db, REPLIES_SECTION) as held:
        if not held:
            return None
        async with services.db.transaction() as session:
            query = (
                select(Reply, FeedbackItem)
                .join(FeedbackItem, FeedbackItem.id == Reply.item_id)
                .where(Reply.delivered_at.is_(None), Reply.failed_at.is_(None))
                .order_by(Reply.created_at, Reply.id)
                .limit(PENDING_BATCH)
            )
            if only is not None:
                query = query.where(Reply.id == only)
            language = services.settings.default_language
            pending = [
                await outgoing_for(session, item, reply, language)
                for reply, item in (await session.execute(query)).all()
            ]
        for outgoing in pending:
            try:
                sent = await deliver(bot, outgoing)
            except NetworkError as error:  # TimedOut too: tried again at the next run
                log.warning("reply %s not sent yet: %s", outgoing.reply_id, type(error).__name__)
                break
            except RetryAfter:
                break
            except TelegramError as error:
                log.warning("reply %s not delivered: %s", outgoing.reply_id, type(error).__name__)
                sent = False
            async with services.db.transaction() as session:
                fresh = await session.get(FeedbackItem, outgoing.item_id)
                stored = await session.get(Reply, outgoing.reply_id)
                assert fresh is not None and stored is not None
                if sent:
                    await delivered(session, fresh, stored, services.clock())
                    sent_count += 1
                else:
                    failed(stored, services.clock())
    return sent_count


async def replies_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    await send_pending_replies(context.bot, services_of(context), delivery_lock(context.bot_data))


async def reply_command(
    update: Update, context: ContextTypes.DEFAULT_TYPE, member: StaffMember
) -> None:
    message = update.effective_message
    assert message is not None and message.text is not None
    parts = message.text.split(maxsplit=2)
    if len(parts) < 3 or not parts[2].strip():
        await _say(update, context, "Usage: /reply REF your answer to the person")
        return
    text = parts[2].strip()
    if len(text) > MAX_REPLY:
        await _say(
            update,
            context,
            f"Not sent: a reply has at most {MAX_REPLY} characters; this one has {len(text)}.",
        )
        return
    services = services_of(context)
    async with services.db.transaction() as session:
        item = await _allowed_item(session, parts[1], member)
        reply_id = reference = None
        erased = item is not None and item.erased_at is not None
        if item is not None and not erased:
            reply = await record_reply(session, item, member.id, text, services.clock())
            reply_id, reference = reply.id, item.reference
    if erased:
        await _say(update, context, ERASED_NO_REPLY)
        return
    if reply_id is None or reference is None:
        await _say(update, context, NOT_FOUND.format(reference=parts[1]))
        return
    lock = delivery_lock(context.bot_data)
    tried = await send_pending_replies(context.bot, services, lock, only=reply_id) is not None
    async with services.db.transaction() as session:
        stored = await session.get(Reply, reply_id)
        assert stored is not None
        if stored.delivered_at is not None:
            outcome = "Sent"
        elif stored.failed_at is not None:
            outcome = "Not delivered (the person blocked the bot or left); kept"
        elif not tried:  # another bot process is sending replies; it or our job sends this
            outcome = "Queued (goes out within seconds)"
        else:
            outcome = "Not sent yet (no connection); the bot keeps trying"
    await _say(update, context, f"{outcome}: reply to {spoken(reference)}.")


def reply_heading(language: str, reference: str) -> str:
    gettext = translations(language).gettext
    return format_text(
        gettext("Reply from the response team about your message {reference}:"),
        is_rtl(language),
        reference=spoken(reference),
    )


async def deliver(bot: Bot, outgoing: Outgoing) -> bool:
    """To the person, quoting their message when it still exists; False if unreachable."""
    if outgoing.chat_id is None:
        return False
    text = f"{reply_heading(outgoing.language, outgoing.reference)}\n\n{outgoing.text}"
    quote = (
        ReplyParameters(outgoing.source_message_id, allow_sending_without_reply=True)
        if outgoing.source_message_id is not None
        else None
    )
    try:
        await bot.send_message(outgoing.chat_id, text, reply_parameters=quote)
    except Forbidden:
        return False
    return True


async def status_command(
    update: Update, context: ContextTypes.DEFAULT_TYPE, member: StaffMember
) -> None:
    args = _args(context)
    statuses = [s.value for s in ItemStatus if s is not ItemStatus.NEW]
    if len(args) != 2 or args[1] not in statuses:
        await _say(update, context, f"Usage: /status REF {'|'.join(statuses)}")
        return
    services = services_of(context)
    async with services.db.transaction() as session:
        item = await _allowed_item(session, args[0], member)
        problem = None
        if item is not None:
            try:
                await move(session, item, ItemStatus(args[1]), services.clock(), staff_id=member.id)
            except TransitionError as error:
                problem = str(error)
    if item is None:
        await _say(update, context, NOT_FOUND.format(reference=args[0]))
    elif problem is not None:
        await _say(update, context, f"Not changed: {problem}.")
    else:
        await _say(update, context, f"{spoken(item.reference)} is now {args[1]}.")


def parse_codes(words: list[str], current: CodeSet) -> CodeSet:
    """``type=… sectors=1,2 clusters=a,b urgent=yes sensitive=gbv`` over the current codes."""
    tax = taxonomy()
    codes = current
    for word in words:
        key, _, value = word.partition("=")
        values = [v for v in value.split(",") if v]
        if key == "type" and value in tax.types:
            codes = replace(codes, type=value)
        elif key == "sectors" and all(v.isdigit() and int(v) in tax.sectors for v in values):
            codes = replace(codes, sectors=frozenset(int(v) for v in values))
        elif key == "clusters" and all(v in tax.clusters for v in values):
            codes = replace(codes, clusters=frozenset(values))
        elif key == "urgent" and value in ("yes", "no"):
            codes = replace(codes, urgent=value == "yes")
        elif key == "sensitive" and (value == "no" or all(v in CATEGORY_LABELS for v in values)):
            categories = frozenset() if value == "no" else frozenset(values)
            codes = replace(codes, sensitive=bool(categories), sensitive_categories=categories)
        else:
            raise ValueError(word)
    return codes


async def codes_command(
    update: Update, context: ContextTypes.DEFAULT_TYPE, member: StaffMember
) -> None:
    args = _args(context)
    if len(args) < 2:
        await _say(
            update,
            context,
            "Usage: /codes REF type=request sectors=2,4 clusters=shelter,health urgent=no "
            "sensitive=no|gbv,…",
        )
        return
    services = services_of(context)
    async with services.db.transaction() as session:
        item = await _allowed_item(session, args[0], member)
        text = None
        if item is not None:
            current = await current_codes(session, item)
            try:
                corrected = parse_codes(args[1:], current)
            except ValueError as error:
                text = f"Not understood: {error}. Types: {', '.join(taxonomy().types)}."
            else:
                await correct(session, item, corrected, member.id, services.clock())
                text = describe(item, corrected, services.settings.timezone)
    if item is None:
        await _say(update, context, NOT_FOUND.format(reference=args[0]))
        return
    assert text is not None
    await _say(update, context, text[:4096])


def alert_text(alert: DueAlert, timezone: str) -> str:
    when = alert.created_at.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z")
    categories = ", ".join(CATEGORY_LABELS.get(c, c) for c in alert.categories)
    again = f" (reminder {alert.sends})" if alert.sends else ""
    return (
        f"🔒 Sensitive report{again}: {spoken(alert.reference)} · {categories or 'sensitive'} · "
        f"language {alert.language or '?'} · {when}\n"
        f"A protection focal point: open it in a private chat with /item {alert.reference}, "
        "then tap Acknowledge."
    )


async def send_due_alerts(bot: Bot, services: Services, *, wait: float = ALERT_WAIT_SECONDS) -> int:
    """Send every alert that is due; each is marked sent only after Telegram took it. One
    process at a time (waiting up to `wait` seconds for another one to finish), so that two
    never send the same alert; 0 if the other one is still at it (the job sends the rest)."""
    async with exclusive(services.db, ALERTS_SECTION, wait=wait) as held:
        return await _send_due_alerts(bot, services) if held else 0


async def _send_due_alerts(bot: Bot, services: Services) -> int:
    settings = services.settings
    async with services.db.transaction() as session:
        due = await due_alerts(session, services.clock(), settings.services.protection_alert_repeat)
    sent = 0
    for alert in due:
        button = InlineKeyboardButton("✅ Acknowledge", callback_data=f"ack:{alert.reference}")
        try:
            await bot.send_message(
                alert.chat_id,
                alert_text(alert, settings.timezone),
                reply_markup=InlineKeyboardMarkup([[button]]),
            )
        except TelegramError as error:
            # Retried at the next run; the error names no person.
            log.warning("protection alert not delivered: %s", type(error).__name__)
            continue
        async with services.db.transaction() as session:
            await mark_sent(session, alert.alert_id, services.clock())
        sent += 1
    return sent


async def alerts_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    # No wait: a process that finds another sending alerts leaves this run to it.
    await send_due_alerts(context.bot, services_of(context), wait=0)


async def on_acknowledge(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    match = ACK_DATA.match(query.data)
    assert match is not None
    services = services_of(context)
    pseudonym = pseudonym_of(update, services)
    async with services.db.transaction() as session:
        member = None if pseudonym is None else await find_staff(session, pseudonym)
        allowed = may_acknowledge(member)
        item = await find_item(session, match.group(1)) if allowed else None
        if item is not None and member is not None:
            await acknowledge(session, item, member, services.clock())
    if not allowed or member is None:
        await query.answer("Only a protection focal point can acknowledge.", show_alert=True)
        return
    await query.answer("Acknowledged.")
    if query.message is not None:
        await edit_quietly(
            query, f"✅ {spoken(match.group(1))} acknowledged by {member.name}.", None
        )


def handlers() -> list[Handler]:
    responders = frozenset(RESPONDERS)
    return [
        CommandHandler("item", staff_only(responders, show_item), filters=PRIVATE),
        CommandHandler("reply", staff_only(responders, reply_command), filters=PRIVATE),
        CommandHandler("status", staff_only(responders, status_command), filters=PRIVATE),
        CommandHandler("codes", staff_only(responders, codes_command), filters=PRIVATE),
        CallbackQueryHandler(on_acknowledge, pattern=ACK_DATA),
    ]
