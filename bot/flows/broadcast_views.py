"""Texts and keyboards of the broadcast wizard and the broadcast reports (bot/flows/broadcasts.py).

Staff texts, in English. Pure functions: everything they show is read by the caller.

Callback data: ``bc:<draft id>:<step>:<action>[:<value>]``. The step in the data lets a tap
on a button of an earlier step be recognised as stale instead of acting on the current one.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from messages.broadcasts import (
    Broadcast,
    BroadcastReport,
    Preview,
    Priority,
    QuietHours,
)
from messages.languages import get_language
from messages.topics import TOPICS, get_topic
from storage.references import spoken

CALLBACK = re.compile(r"^bc:(\d{1,10}):([a-z]{2,10}):([a-z]{2,8})(?::([A-Za-z0-9_.\-]{1,32}))?$")
EXCERPT = 300  # characters of each text shown in the preview
Button = InlineKeyboardButton


class StepName(enum.StrEnum):
    TOPICS = "topics"
    AREAS = "areas"
    FILTERS = "filters"
    TEXTS = "texts"
    TEXT = "text"  # waiting for the text in one language
    ATTACHMENT = "attach"
    PRIORITY = "priority"
    WHEN = "when"
    PREVIEW = "preview"


ORDER = (
    StepName.TOPICS,
    StepName.AREAS,
    StepName.FILTERS,
    StepName.TEXTS,
    StepName.ATTACHMENT,
    StepName.PRIORITY,
    StepName.WHEN,
    StepName.PREVIEW,
)


@dataclass(frozen=True)
class Step:
    """Where a draft is in the wizard, as kept in `Broadcast.compose_step`.

    Encoded as ``name[:language][+]``: the language whose text is awaited, and ``+`` when
    the officer came from the preview to edit texts and goes back there after."""

    name: StepName
    language: str | None = None
    to_preview: bool = False

    def encode(self) -> str:
        language = f":{self.language}" if self.language else ""
        return f"{self.name.value}{language}{'+' if self.to_preview else ''}"

    @classmethod
    def decode(cls, raw: str | None) -> Step | None:
        if not raw:
            return None
        to_preview = raw.endswith("+")
        name, _, language = raw.removesuffix("+").partition(":")
        try:
            return cls(StepName(name), language or None, to_preview)
        except ValueError:
            return None

    def following(self) -> Step:
        if self.name is StepName.TEXT:
            return Step(StepName.TEXTS, to_preview=self.to_preview)
        if self.name is StepName.TEXTS and self.to_preview:
            return Step(StepName.PREVIEW)
        return Step(ORDER[min(ORDER.index(self.name) + 1, len(ORDER) - 1)])

    def previous(self) -> Step:
        if self.name is StepName.TEXT:
            return Step(StepName.TEXTS, to_preview=self.to_preview)
        return Step(ORDER[max(ORDER.index(self.name) - 1, 0)])


@dataclass(frozen=True)
class Screen:
    text: str
    markup: InlineKeyboardMarkup | None = None


@dataclass(frozen=True)
class Point:
    """A departure point offered as a filter."""

    id: int
    name: str


def button(draft: Broadcast, step: StepName, action: str, label: str, value: str = "") -> Button:
    data = f"bc:{draft.id}:{step.value}:{action}" + (f":{value}" if value else "")
    return InlineKeyboardButton(label, callback_data=data)


def rows_of(buttons: Sequence[Button], width: int) -> list[list[Button]]:
    return [list(buttons[i : i + width]) for i in range(0, len(buttons), width)]


def navigation(draft: Broadcast, step: StepName, *, back: bool = True) -> list[list[Button]]:
    first = [button(draft, step, "back", "◀ Back")] if back else []
    return [
        [*first, button(draft, step, "next", "Next ▶")],
        [button(draft, step, "cancel", "✖ Cancel")],
    ]


def cancel_row(draft: Broadcast, step: StepName, *, back: bool = True) -> list[list[Button]]:
    first = [button(draft, step, "back", "◀ Back")] if back else []
    return [[*first, button(draft, step, "cancel", "✖ Cancel")]]


def tick(on: bool) -> str:
    return "✅ " if on else "▫️ "


def language_label(code: str) -> str:
    language = get_language(code)
    return f"{language.native_name} ({code})" if language else code


def header(draft: Broadcast, number: int, title: str) -> str:
    return f"📣 Broadcast {spoken(draft.reference)} · step {number} of 8 · {title}"


# --- the steps ------------------------------------------------------------------------


def topics_screen(draft: Broadcast, hint: str = "") -> Screen:
    chosen = set(draft.topics or ())
    buttons = [
        button(draft, StepName.TOPICS, "topic", f"{tick(t.key in chosen)}{t.icon} {t.label}", t.key)
        for t in TOPICS
    ]
    text = (
        f"{header(draft, 1, 'topics')}\n"
        "Who hears it: people subscribed to any of the topics you tick. Choose at least one."
    )
    return Screen(
        _hinted(text, hint),
        InlineKeyboardMarkup(
            [*rows_of(buttons, 1), *navigation(draft, StepName.TOPICS, back=False)]
        ),
    )


def areas_screen(draft: Broadcast, names: Mapping[str, str], hint: str = "") -> Screen:
    chosen = set(draft.areas or ())
    everywhere = button(draft, StepName.AREAS, "all", f"{tick(not chosen)}🌍 Everywhere")
    areas = [
        button(draft, StepName.AREAS, "area", f"{tick(code in chosen)}{name}", code)
        for code, name in sorted(names.items(), key=lambda item: item[1])
    ]
    text = (
        f"{header(draft, 2, 'areas')}\n"
        "Everywhere, or only people subscribed in the areas you tick (people subscribed "
        "everywhere always hear it)."
    )
    if not names:
        text += "\nNo areas on record yet (import the gazetteer): everywhere only."
    return Screen(
        _hinted(text, hint),
        InlineKeyboardMarkup(
            [[everywhere], *rows_of(areas, 2), *navigation(draft, StepName.AREAS)]
        ),
    )


def filters_screen(
    draft: Broadcast, languages: Sequence[str], points: Sequence[Point], hint: str = ""
) -> Screen:
    chosen_languages = set(draft.languages or ())
    chosen_points = set(draft.departure_point_ids or ())
    language_buttons = [
        button(draft, StepName.FILTERS, "lang", f"{tick(code in chosen_languages)}{code}", code)
        for code in languages
    ]
    point_buttons = [
        button(
            draft,
            StepName.FILTERS,
            "point",
            f"{tick(point.id in chosen_points)}🚏 {point.name}",
            str(point.id),
        )
        for point in points
    ]
    lines = [
        f"{header(draft, 3, 'optional filters')}",
        "Languages: tick to send only to people who use those languages "
        f"(now: {', '.join(sorted(chosen_languages)) or 'all'}).",
    ]
    if points:
        lines.append(
            "Departure points: tick to send only to people registered there "
            f"(now: {len(chosen_points) or 'any'})."
        )
    lines.append("Tap Next to keep everyone.")
    return Screen(
        _hinted("\n".join(lines), hint),
        InlineKeyboardMarkup(
            [
                *rows_of(language_buttons, 5),
                *rows_of(point_buttons, 1),
                *navigation(draft, StepName.FILTERS),
            ]
        ),
    )


def texts_screen(
    draft: Broadcast, languages: Sequence[str], to_preview: bool, hint: str = ""
) -> Screen:
    texts = draft.texts or {}
    written = ", ".join(f"{code} ({len(text)} characters)" for code, text in sorted(texts.items()))
    buttons = [
        button(draft, StepName.TEXTS, "write", f"{tick(code in texts)}{language_label(code)}", code)
        for code in languages
    ]
    text = (
        f"{header(draft, 4, 'texts')}\n"
        "Tap a language, then send the text in it. Add languages one by one; people whose "
        "language has no text get a fallback language with a short note.\n"
        f"Written: {written or 'none yet'}."
    )
    back = [button(draft, StepName.TEXTS, "back", "◀ Back")] if not to_preview else []
    onward = "Preview ▶" if to_preview else "Next ▶"
    return Screen(
        _hinted(text, hint),
        InlineKeyboardMarkup(
            [
                *rows_of(buttons, 2),
                [*back, button(draft, StepName.TEXTS, "next", onward)],
                [button(draft, StepName.TEXTS, "cancel", "✖ Cancel")],
            ]
        ),
    )


def text_prompt(draft: Broadcast, language: str, hint: str = "") -> Screen:
    current = (draft.texts or {}).get(language)
    text = f"{header(draft, 4, 'texts')}\nSend the text in {language_label(language)} now."
    if current:
        text += " It replaces the one written before."
    return Screen(_hinted(text, hint), InlineKeyboardMarkup(cancel_row(draft, StepName.TEXT)))


def attachment_text(draft: Broadcast) -> str:
    if draft.location is not None:
        latitude, longitude = draft.location
        return f"location {latitude:.5f}, {longitude:.5f}"
    if draft.document_file_id is not None or draft.document_name is not None:
        return f"document {draft.document_name or '(no name)'}"
    return "none"


def attachment_screen(draft: Broadcast, hint: str = "") -> Screen:
    current = attachment_text(draft)
    text = (
        f"{header(draft, 5, 'attachment')}\n"
        "Optional: send a location (📎 → Location) or a document (📎 → File). It goes with "
        "the text: a location right after it, a document with the text as its caption.\n"
        f"Attached: {current}."
    )
    onward = [button(draft, StepName.ATTACHMENT, "skip", "No attachment ▶")]
    if current != "none":
        onward.insert(0, button(draft, StepName.ATTACHMENT, "keep", "Keep it ▶"))
    return Screen(
        _hinted(text, hint),
        InlineKeyboardMarkup([onward, *cancel_row(draft, StepName.ATTACHMENT)]),
    )


def priority_screen(draft: Broadcast, quiet: QuietHours | None, hint: str = "") -> Screen:
    held = (
        f" Normal broadcasts wait for the end of quiet hours ({quiet_span(quiet)})."
        if quiet
        else ""
    )
    text = (
        f"{header(draft, 6, 'priority')}\n"
        "Emergency goes before everything else, also during quiet hours. Keep it for "
        f"life-saving alerts.{held}"
    )
    buttons = [
        button(
            draft,
            StepName.PRIORITY,
            "prio",
            ("✓ " if draft.priority == Priority.NORMAL.value else "") + "Normal",
            Priority.NORMAL.value,
        ),
        button(
            draft,
            StepName.PRIORITY,
            "prio",
            ("✓ " if draft.priority == Priority.EMERGENCY.value else "") + "🚨 Emergency",
            Priority.EMERGENCY.value,
        ),
    ]
    return Screen(
        _hinted(text, hint),
        InlineKeyboardMarkup([buttons, *cancel_row(draft, StepName.PRIORITY)]),
    )


def when_screen(draft: Broadcast, timezone: str, hint: str = "") -> Screen:
    text = (
        f"{header(draft, 7, 'when')}\n"
        "Send now, or type a time: HH:MM (the next time it is that hour) or YYYY-MM-DD HH:MM, "
        f"in {timezone}."
    )
    if draft.send_at is not None:
        text += f"\nNow set for {local_time(draft.send_at, timezone)}."
    return Screen(
        _hinted(text, hint),
        InlineKeyboardMarkup(
            [
                [button(draft, StepName.WHEN, "now", "⚡ Send now")],
                *cancel_row(draft, StepName.WHEN),
            ]
        ),
    )


@dataclass(frozen=True)
class PreviewFacts:
    """What the preview shows, read by the caller."""

    area_names: Mapping[str, str]
    point_names: Mapping[int, str]
    preview: Preview
    problems: Sequence[str]
    quiet: QuietHours | None
    now: datetime
    timezone: str


def preview_screen(draft: Broadcast, facts: PreviewFacts, hint: str = "") -> Screen:
    timezone = facts.timezone
    topics = [get_topic(key) for key in draft.topics or ()]
    areas = [facts.area_names.get(code, code) for code in draft.areas or ()]
    points = [facts.point_names.get(i, f"#{i}") for i in draft.departure_point_ids or ()]
    emergency = draft.priority == Priority.EMERGENCY.value
    when = "now" if draft.send_at is None else local_time(draft.send_at, timezone)
    lines = [
        f"{header(draft, 8, 'preview')}",
        "Topics: " + ", ".join(f"{t.icon} {t.label}" for t in topics if t is not None),
        "Areas: " + (", ".join(areas) or "everywhere"),
        "Languages: " + (", ".join(draft.languages or ()) or "all"),
        "Registered at: " + (", ".join(points) or "any departure point, or none"),
        f"Attachment: {attachment_text(draft)}",
        "Priority: " + ("🚨 EMERGENCY" if emergency else "normal"),
        f"When: {when}",
    ]
    warning = quiet_warning(draft, facts)
    if warning:
        lines.append(warning)
    counts = facts.preview
    lines += ["", f"Recipients: {counts.total}"]
    if counts.total == 0:
        lines.append("Nobody subscribed matches this audience.")
    for group in counts.by_language:
        gets = f"{group.variant} text" if group.variant else "no text yet"
        note = " (fallback with a note)" if group.fallback and group.variant else ""
        lines.append(f"• {group.language}: {group.recipients} → {gets}{note}")
    lines += ["", "Texts:"]
    for code, body in sorted((draft.texts or {}).items()):
        excerpt = body if len(body) <= EXCERPT else body[:EXCERPT] + "…"
        lines.append(f"[{code}] {excerpt}")
    if facts.problems:
        lines += ["", "❌ Fix before sending:", *(f"• {problem}" for problem in facts.problems)]
    send = [] if facts.problems else [button(draft, StepName.PREVIEW, "send", "✅ Send")]
    markup = InlineKeyboardMarkup(
        [
            [*send, button(draft, StepName.PREVIEW, "edit", "✏️ Edit text")],
            [
                button(draft, StepName.PREVIEW, "back", "◀ Back"),
                button(draft, StepName.PREVIEW, "cancel", "✖ Cancel"),
            ],
        ]
    )
    return Screen(_hinted("\n".join(lines), hint)[:4096], markup)


def quiet_warning(draft: Broadcast, facts: PreviewFacts) -> str | None:
    """Quiet hours hold a normal broadcast due inside them; an emergency is not held."""
    quiet = facts.quiet
    if quiet is None or draft.priority == Priority.EMERGENCY.value:
        return None
    moment = max(draft.send_at or facts.now, facts.now)
    if not quiet.contains(moment):
        return None
    until = local_time(quiet.next_end(moment), facts.timezone)
    return (
        f"⚠️ Quiet hours ({quiet_span(quiet)}): this normal broadcast is held until {until}. "
        "Choose emergency only for a life-saving alert."
    )


def quiet_span(quiet: QuietHours) -> str:
    return f"{quiet.start:%H:%M}–{quiet.end:%H:%M} {quiet.timezone}"


def local_time(moment: datetime, timezone: str) -> str:
    return f"{moment.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M} {timezone}"


def _hinted(text: str, hint: str) -> str:
    return f"⚠️ {hint}\n\n{text}" if hint else text


# --- typed times ----------------------------------------------------------------------

CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
DATE_AND_CLOCK = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[ T]+([01]?\d|2[0-3]):([0-5]\d)$")
TIME_HINT = "Type a time as HH:MM (e.g. 07:30) or YYYY-MM-DD HH:MM (e.g. 2030-05-01 07:30)."


def parse_send_time(text: str, now: datetime, timezone: str) -> datetime:
    """A typed time → an aware UTC datetime in the future. ``HH:MM`` is its next occurrence
    (today, else tomorrow) in `timezone`. ValueError with a hint for the officer otherwise."""
    zone = ZoneInfo(timezone)
    local_now = now.astimezone(zone)
    typed = text.strip()
    if match := CLOCK.match(typed):
        at = time(int(match.group(1)), int(match.group(2)))
        moment = datetime.combine(local_now.date(), at, tzinfo=zone)
        if moment <= local_now:
            moment = datetime.combine(local_now.date() + timedelta(days=1), at, tzinfo=zone)
        return moment.astimezone(UTC)
    if match := DATE_AND_CLOCK.match(typed):
        year, month, day, hour, minute = (int(part) for part in match.groups())
        try:
            moment = datetime(year, month, day, hour, minute, tzinfo=zone)
        except ValueError:
            raise ValueError(f"There is no such date. {TIME_HINT}") from None
        if moment <= local_now:
            raise ValueError(
                f"That time has passed ({local_time(moment, timezone)}). "
                "Type a time in the future, or tap Send now."
            )
        return moment.astimezone(UTC)
    raise ValueError(f"Not a time I understand. {TIME_HINT}")


# --- lists and reports ----------------------------------------------------------------


def sent_line(draft: Broadcast, report: BroadcastReport, timezone: str) -> str:
    return (
        f"{spoken(draft.reference)} · {report.status} · {report.priority} · "
        f"{report.recipients} recipients · {report.sent} sent, {report.failed} failed · "
        f"{local_time(draft.created_at, timezone)}"
    )


def list_text(lines: Sequence[str]) -> str:
    if not lines:
        return "No broadcasts yet. Compose one with /broadcast."
    return "Latest broadcasts:\n" + "\n".join(lines) + "\n\nDetails: /broadcast_report REF"


def report_text(report: BroadcastReport, timezone: str) -> str:
    def at(moment: datetime | None) -> str:
        return "–" if moment is None else local_time(moment, timezone)

    rate = report.per_second
    lines = [
        f"📊 Broadcast {spoken(report.reference)} · {report.status} · {report.priority}",
        f"Recipients: {report.recipients}",
        f"Queued: {report.queued} · being sent: {report.sending}",
        f"Sent: {report.sent}",
        f"Failed: {report.failed} (uncertain: {report.uncertain})",
        f"Blocked: {report.blocked}",
        f"Cancelled: {report.cancelled}",
        f"Created: {at(report.created_at)}"
        + ("" if report.send_at is None else f" · due: {at(report.send_at)}"),
        f"Started: {at(report.started_at)}",
        f"Finished: {at(report.finished_at)}",
        "Throughput: " + ("–" if rate is None else f"{rate:.1f} per second"),
    ]
    if report.uncertain:
        lines.append(
            "Uncertain: a sender stopped while Telegram had the message; each of these "
            "people got one copy or none, never two."
        )
    return "\n".join(lines)


def queued_text(draft: Broadcast, recipients: int, timezone: str) -> str:
    when = (
        "sending now"
        if draft.send_at is None
        else f"scheduled for {local_time(draft.send_at, timezone)}"
    )
    return (
        f"✅ Broadcast {spoken(draft.reference)} queued for {recipients} people, {when}.\n"
        f"Report: /broadcast_report {draft.reference}\n"
        f"Stop it: /broadcast_cancel {draft.reference}"
    )
