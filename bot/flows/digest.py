"""The responders' chat (RESPONDERS_CHAT): a daily digest, and a notice for each new gap flag.

A job runs every minute. Once the deployment's local time (TIMEZONE) has passed DIGEST_HOUR,
the day's digest goes out: the counts of the last days by sector and area, the items waiting
for an answer, and the current gap flags. Between digests, a flag whose key was never sent
goes out at once. What was sent is kept (feedback/notices.py: ``daily:<local date>``,
``flag:<flag key>``) only once Telegram took it, so a restart never sends anything twice,
and a job missed while the bot was down is caught up at the next run. Several processes on
one database take turns (storage/locks.py): the next one finds the keys already kept.

The chat may be a group: only counts, sector and area names, flag explanations and
reference codes go there, never what a person wrote, and nothing about sensitive items (the
protection chats have their own alerts). Texts are in RESPONDERS_CHAT_LANGUAGE.
"""

from __future__ import annotations

import gettext
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Bot
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.services import Services, services_of
from feedback.flags import Flag, compute_flags
from feedback.notices import mark_sent, was_sent
from feedback.summary import UNKNOWN, Summary, Window, summarise
from feedback.taxonomy import taxonomy
from messages.i18n import translations
from messages.languages import get_language
from storage.locks import exclusive
from storage.references import spoken

log = logging.getLogger("crisis_comms.digest")

DIGEST_DAYS = 7
TOP = 5  # sectors and areas named in the digest
MAX_FLAGS = 10  # flags listed in one digest (a Telegram message holds 4,096 characters)
MAX_REFERENCES = 5  # reference codes named per flag
NOTICES_SECTION = "responders_notices"  # one process at a time sends them
Gettext = Callable[[str], str]


@dataclass(frozen=True)
class Due:
    digest_key: str | None  # the day's key when the digest is due
    summary: Summary | None
    flags: list[Flag]  # every current flag (for the digest)
    new_flags: list[Flag]  # flags never sent


async def what_is_due(session: AsyncSession, services: Services, now: datetime) -> Due:
    settings = services.settings
    local = now.astimezone(ZoneInfo(settings.timezone))
    flags = [
        flag
        for flag in await compute_flags(
            session, settings.crisis, settings.services.flags, now, include_sensitive=False
        )
        if not flag.evidence.items.include_sensitive
    ]
    new_flags = [flag for flag in flags if not await was_sent(session, f"flag:{flag.key}")]
    key = f"daily:{local.date().isoformat()}"
    if local.hour < settings.services.digest_hour or await was_sent(session, key):
        return Due(None, None, flags, new_flags)
    summary = await summarise(session, Window.last_days(DIGEST_DAYS, now))
    return Due(key, summary, flags, new_flags)


async def send_notices(bot: Bot, services: Services) -> int:
    """Send the digest when due, else the notices of new flags; the number of messages sent.
    One process at a time (storage/locks.py): another that is at it already is left to it."""
    if services.settings.services.responders_chat is None:
        return 0
    async with exclusive(services.db, NOTICES_SECTION) as held:
        return await _send_notices(bot, services) if held else 0


async def _send_notices(bot: Bot, services: Services) -> int:
    settings = services.settings.services
    chat = settings.responders_chat
    assert chat is not None
    now = services.clock()
    catalog = translations(settings.responders_chat_language)
    async with services.db.transaction() as session:
        due = await what_is_due(session, services, now)
    if due.digest_key is not None and due.summary is not None:
        # The digest lists every current flag: none of them needs a notice of its own.
        text = digest_text(
            due.summary,
            due.flags,
            now,
            services.settings.timezone,
            catalog,
            locale_of(settings.responders_chat_language),
        )
        keys = [due.digest_key, *(f"flag:{flag.key}" for flag in due.flags)]
        return 1 if await _send(bot, services, chat, text, keys) else 0
    sent = 0
    for flag in due.new_flags:
        notice = flag_notice(flag, catalog.gettext, locale_of(settings.responders_chat_language))
        if await _send(bot, services, chat, notice, [f"flag:{flag.key}"]):
            sent += 1
    return sent


async def _send(bot: Bot, services: Services, chat: int, text: str, keys: list[str]) -> bool:
    try:
        await bot.send_message(chat, text)
    except TelegramError as error:
        # Retried at the next run; the error names no person.
        log.warning("responders' notice not delivered: %s", type(error).__name__)
        return False
    async with services.db.transaction() as session:
        for key in keys:
            await mark_sent(session, key, services.clock())
    return True


async def digest_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    await send_notices(context.bot, services_of(context))


# --- texts (the chat's language) ------------------------------------------------------------


def explain(flag: Flag, gettext: Gettext, locale: str) -> str:
    """The flag's one sentence in the chat's language (its English one if it has no template)."""
    return flag.explain(gettext, locale) if flag.template else flag.explanation


def locale_of(language: str) -> str:
    """The Babel locale that names languages, countries and durations for the chat."""
    known = get_language(language)
    return known.locale if known is not None else "en"


def references(flag: Flag, gettext: Gettext) -> str:
    codes = flag.evidence.items.references
    if not codes:
        return ""
    shown = ", ".join(spoken(code) for code in codes[:MAX_REFERENCES])
    if len(codes) > MAX_REFERENCES:
        shown += " …"
    return gettext("Items: {references}").format(references=shown)


def flag_notice(flag: Flag, gettext: Gettext, locale: str = "en") -> str:
    explanation = explain(flag, gettext, locale)
    lines = [gettext("New gap flag: {explanation}").format(explanation=explanation)]
    codes = references(flag, gettext)
    return "\n".join([*lines, codes] if codes else lines)


def _named(counts: dict[str, int], label: Callable[[str], str]) -> str:
    top = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))[:TOP]
    return ", ".join(f"{label(key)}: {count}" for key, count in top)


def digest_text(
    summary: Summary,
    flags: list[Flag],
    now: datetime,
    timezone: str,
    catalog: gettext.NullTranslations,
    locale: str = "en",
) -> str:
    _ = catalog.gettext
    local_day = now.astimezone(ZoneInfo(timezone)).date().isoformat()
    sectors = taxonomy().sectors

    def area(code: str) -> str:
        if code == UNKNOWN:
            return _("unknown area")
        return summary.area_names.get(code, code)

    lines = [
        _("Feedback digest, {date}").format(date=local_day),
        catalog.ngettext(
            "Last {days} days ({since} to {until}): {count} message.",
            "Last {days} days ({since} to {until}): {count} messages.",
            summary.total,
        ).format(
            days=DIGEST_DAYS,
            since=summary.window.since.isoformat(),
            until=summary.window.until.isoformat(),
            count=summary.total,
        ),
    ]
    if summary.by_sector:
        by_sector = {str(s): n for s, n in summary.by_sector.items()}
        named = _named(by_sector, lambda s: _(sectors.get(int(s), s)))
        lines.append(_("Sectors: {sectors}").format(sectors=named))
    if summary.by_area:
        lines.append(_("Areas: {areas}").format(areas=_named(summary.by_area, area)))
    lines.append(_("Waiting for an answer: {count}").format(count=summary.response.waiting))
    lines.append("")
    if not flags:
        lines.append(_("No gap flags."))
    else:
        lines.append(_("Gap flags ({count}):").format(count=len(flags)))
    for flag in flags[:MAX_FLAGS]:
        codes = references(flag, _)
        lines.append(f"• {explain(flag, _, locale)}" + (f" {codes}" if codes else ""))
    if len(flags) > MAX_FLAGS:
        lines.append(_("… and {count} more.").format(count=len(flags) - MAX_FLAGS))
    return "\n".join(lines)
