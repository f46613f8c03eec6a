"""Broadcasts on the dashboard: compose, preview, send, follow and cancel, with plain forms.

| path | roles | what |
| --- | --- | --- |
| GET /dashboard/broadcasts | admin, communications officer, responder, viewer | recent ones |
| GET /dashboard/broadcasts/{ref} | same | the report: counts, times, texts |
| GET /dashboard/broadcasts/new | admin, communications officer | an empty form |
| POST /dashboard/broadcasts/new | same | add or remove a language, or preview |
| GET /dashboard/broadcasts/{ref}/edit | same | the form again, from the stored draft |
| GET /dashboard/broadcasts/{ref}/preview | same | recipients per language, quiet hours |
| POST /dashboard/broadcasts/{ref}/send | same | queue it, once |
| POST /dashboard/broadcasts/{ref}/cancel | same | stop it while it is open |

The page has no script, so every change of the form is a submit that the server answers
by rendering the form again with what was typed. "Add language" and "Remove" re-render;
"Preview" stores the draft as a `Broadcast` in status draft (later posts name it in a hidden
field and update it) and redirects to its preview page. A file chosen before "Add
language" is stored on the draft at once, because a browser cannot refill a file input.

Sending a draft, and why it happens once: "Send" first claims the draft with an UPDATE
that only matches while its status is still draft, then checks it and enqueues in the same
transaction. A second submit, a second tab or a stale page finds nothing to claim (on
PostgreSQL it waits for the first transaction's row lock and then sees the new status).
The preview page also carries a fingerprint of what it showed: a draft edited since, in
another tab, is shown again instead of being sent unseen.

The compose form is multipart (the document). It is read as a stream with bounds of its
own, since aiohttp's `client_max_size` only guards `request.post()`; the sender uploads the
stored file once and reuses Telegram's file id for everyone else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import BodyPartReader, web
from babel import Locale
from multidict import MultiDict, MultiDictProxy
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.dashboard.app import (
    _DASHBOARD,
    _MEMBER,
    PREFIX,
    ROLE_LABELS,
    SESSION_COOKIE,
    Dashboard,
    Refused,
    Route,
    _form,
    _page,
    read_form,
    render,
)
from messages.areas import area_names
from messages.broadcasts import (
    MAX_CAPTION,
    MAX_DOCUMENT_BYTES,
    MAX_TEXT,
    OPEN_STATUSES,
    Audience,
    Broadcast,
    BroadcastStatus,
    Draft,
    Priority,
    audience_of,
    cancel,
    create,
    enqueue,
    find_broadcast,
    preview,
    problems,
    recent_broadcasts,
    report,
)
from messages.languages import get_language, is_rtl
from messages.outbox import OutboxMessage, OutboxState
from messages.places import Place, PlaceKind, display_name
from messages.topics import TOPICS, get_topic
from staff import audit
from staff.models import Role, StaffMember
from storage.references import normalize_reference, spoken

log = logging.getLogger("crisis_comms.dashboard")

# Officers write and send; every staff role may read what was sent (counts and texts only).
COMPOSE_ROLES = frozenset({Role.ADMIN, Role.COMMUNICATIONS_OFFICER})
READ_ROLES = frozenset(Role)  # counts only, as `/broadcasts` in Telegram

MAX_FIELDS = 512 * 1024  # every text field together: a few texts of 3,800 characters
MAX_BODY = MAX_DOCUMENT_BYTES * 2 + MAX_FIELDS  # past this, the post is refused unread
MAX_FILENAME = 120
RECENT = 50
# A time a minute or two ago is "now" (the officer took a while); older is a mistake.
PAST_GRACE = timedelta(minutes=5)
DATETIME_LOCAL = "%Y-%m-%dT%H:%M"

NOTICES = {
    "sent": "Broadcast queued: the sender delivers it now.",
    "scheduled": "Broadcast scheduled: it is queued for its time.",
    "empty": "Nobody matched the audience: nothing was sent.",
    "already": "This broadcast had already been sent: nothing was queued again.",
    "cancelled": "Broadcast cancelled: messages not yet handed to Telegram will not go out.",
    "closed": "This broadcast was no longer open: nothing to cancel.",
    "changed": "The draft changed since that preview (another tab?). Check it again.",
    "problems": "Fix the problems before sending.",
}


# --- what the officer typed --------------------------------------------------------------


@dataclass(frozen=True)
class ComposeState:
    """The form exactly as typed (strings), so that any re-render shows it again."""

    reference: str = ""  # the stored draft, once there is one
    languages: tuple[str, ...] = ()  # the text boxes shown, in order
    texts: Mapping[str, str] = field(default_factory=dict)
    topics: tuple[str, ...] = ()
    areas: tuple[str, ...] = ()
    audience_languages: tuple[str, ...] = ()
    points: tuple[str, ...] = ()  # departure point ids
    priority: str = Priority.NORMAL.value
    when: str = "now"  # or "later", at send_at
    send_at: str = ""  # a datetime-local value, in the deployment's timezone
    latitude: str = ""
    longitude: str = ""
    remove_document: bool = False


@dataclass(frozen=True)
class Upload:
    filename: str
    content: bytes


@dataclass(frozen=True)
class Posted:
    fields: MultiDict[str]
    upload: Upload | None = None
    upload_too_large: bool = False


@dataclass(frozen=True)
class Choices:
    """What the audience may be chosen from, with the names staff read."""

    languages: tuple[tuple[str, str], ...]  # enabled: code, label
    areas: dict[str, str]  # adm1 code -> name
    points: dict[int, str]  # departure point id -> name


@dataclass(frozen=True)
class Attachment:
    name: str
    size: int


def _strings(fields: MultiDict[str], name: str, longest: int = 32) -> tuple[str, ...]:
    """Every value of a repeated field, once each, in order; absurd lengths dropped."""
    values = (value.strip() for value in fields.getall(name, []))
    return tuple(dict.fromkeys(value for value in values if value and len(value) <= longest))


def parse_state(fields: MultiDict[str], enabled: Sequence[str]) -> tuple[ComposeState, str]:
    """The form and what was asked: "add", "remove" or "preview" (Enter in a field too)."""
    languages = list(_strings(fields, "shown", 16))
    texts = {code: fields.get(f"text-{code}", "") for code in languages}
    action = fields.get("action", "preview")
    removed = fields.get("remove")
    if removed is not None:
        action = "remove"
        languages = [code for code in languages if code != removed]
        texts.pop(removed, None)
    elif action == "add":
        added = fields.get("add_language", "")
        if added in enabled and added not in languages:
            languages.append(added)
            texts[added] = ""
    elif action != "preview":
        action = "preview"
    state = ComposeState(
        reference=normalize_reference(fields.get("draft", ""))[:16],
        languages=tuple(languages),
        texts=texts,
        topics=_strings(fields, "topic"),
        areas=_strings(fields, "area"),
        audience_languages=_strings(fields, "language", 16),
        points=_strings(fields, "point", 12),
        priority=fields.get("priority", Priority.NORMAL.value),
        when=fields.get("when", "now"),
        send_at=fields.get("send_at", "").strip()[:32],
        latitude=fields.get("latitude", "").strip()[:32],
        longitude=fields.get("longitude", "").strip()[:32],
        remove_document=fields.get("remove_document") == "1",
    )
    return state, action


def _send_at(state: ComposeState, timezone: str, now: datetime) -> tuple[datetime | None, str]:
    if state.when != "later":
        return None, ""
    if not state.send_at:
        return None, "Choose the date and time to send at, or choose to send now."
    try:
        local = datetime.fromisoformat(state.send_at)
    except ValueError:
        return None, f"{state.send_at!r} is not a date and time."
    if local.tzinfo is not None:
        return None, "Give the time as the deployment's local time, without a zone."
    moment = local.replace(tzinfo=ZoneInfo(timezone)).astimezone(UTC)
    if moment < now - PAST_GRACE:
        return None, "The time to send at has passed; choose a later one or send now."
    return moment, ""


def _location(state: ComposeState) -> tuple[tuple[float, float] | None, str]:
    if not state.latitude and not state.longitude:
        return None, ""
    if not state.latitude or not state.longitude:
        return None, "Give both the latitude and the longitude of the location, or neither."
    try:
        latitude, longitude = float(state.latitude), float(state.longitude)
    except ValueError:
        return None, "Latitude and longitude are decimal numbers, such as 33.89 and 35.50."
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        return None, "Latitude and longitude are decimal numbers, such as 33.89 and 35.50."
    return (latitude, longitude), ""


def to_draft(
    state: ComposeState,
    upload: Upload | None,
    choices: Choices,
    timezone: str,
    now: datetime,
) -> tuple[Draft, list[str]]:
    """The draft the form describes, and what in the form cannot be read. Whatever can be
    read is kept; topics and languages are left for `problems` to judge."""
    errors: list[str] = []
    priority = Priority.NORMAL
    if state.priority in {p.value for p in Priority}:
        priority = Priority(state.priority)
    else:
        errors.append("Priority is normal or emergency.")
    send_at, problem = _send_at(state, timezone, now)
    errors += [problem] if problem else []
    location, problem = _location(state)
    errors += [problem] if problem else []
    unknown_areas = [code for code in state.areas if code not in choices.areas]
    if unknown_areas:
        errors.append(f"Unknown area: {', '.join(unknown_areas)}.")
    points = tuple(int(p) for p in state.points if p.isdigit() and int(p) in choices.points)
    if len(points) != len(state.points):
        errors.append("One of the departure points does not exist (any more).")
    audience = Audience(
        topics=state.topics,
        areas=tuple(code for code in state.areas if code in choices.areas),
        languages=state.audience_languages,
        departure_point_ids=points,
    )
    draft = Draft(
        texts={code: state.texts.get(code, "") for code in state.languages},
        audience=audience,
        priority=priority,
        send_at=send_at,
        location=location,
        document_name=upload.filename if upload else None,
        document_content=upload.content if upload else None,
    )
    return draft, errors


def state_of(broadcast: Broadcast, timezone: str, default_language: str) -> ComposeState:
    """The form for a stored draft ("Back to edit")."""
    texts = dict(broadcast.texts) or {default_language: ""}
    send_at = ""
    if broadcast.send_at is not None:
        send_at = broadcast.send_at.astimezone(ZoneInfo(timezone)).strftime(DATETIME_LOCAL)
    return ComposeState(
        reference=broadcast.reference,
        languages=tuple(texts),
        texts=texts,
        topics=tuple(broadcast.topics),
        areas=tuple(broadcast.areas or ()),
        audience_languages=tuple(broadcast.languages or ()),
        points=tuple(str(p) for p in broadcast.departure_point_ids or ()),
        priority=broadcast.priority,
        when="later" if send_at else "now",
        send_at=send_at,
        latitude="" if broadcast.latitude is None else repr(broadcast.latitude),
        longitude="" if broadcast.longitude is None else repr(broadcast.longitude),
    )


# --- reading the multipart form ----------------------------------------------------------


def safe_filename(raw: str) -> str:
    """The last part of what the browser says, without control characters, bounded."""
    name = re.split(r"[\\/]", raw)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[-MAX_FILENAME:] or "document"


async def _read_part(part: BodyPartReader, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of a part, and whether that was all of it (the rest is drained,
    so that the fields after it can still be read)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
    return b"".join(chunks), size <= limit


async def read_compose(request: web.Request) -> Posted:
    if request.content_type != "multipart/form-data":
        form = await read_form(request)
        return Posted(MultiDict((k, v) for k, v in form.items() if isinstance(v, str)))
    if request.content_length is None:
        raise Refused(411, "Send the form with its length.")
    if request.content_length > MAX_BODY:
        raise Refused(413, "The form is too large: the document may have at most 20 MB.")
    reader = await request.multipart()
    fields: MultiDict[str] = MultiDict()
    upload: Upload | None = None
    too_large = False
    used = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise Refused(400, "The form is not understood.")
        if part.name == "document":
            content, whole = await _read_part(part, MAX_DOCUMENT_BYTES)
            too_large = too_large or not whole
            if whole and content and part.filename:
                upload = Upload(safe_filename(part.filename), content)
            continue
        content, whole = await _read_part(part, MAX_FIELDS - used)
        if not whole:
            raise Refused(413, "The form is too large.")
        used += len(content)
        fields.add(part.name or "", content.decode("utf-8", errors="replace"))
    return Posted(fields, upload, too_large)


ComposePage = Callable[[web.Request, Dashboard, StaffMember, Posted], Awaitable[web.StreamResponse]]


def _compose_route(endpoint: ComposePage) -> Route:
    """Like app._form, for the multipart compose form: role, bounded body, CSRF."""

    async def route(request: web.Request) -> web.StreamResponse:
        member = request[_MEMBER]
        if member.role not in COMPOSE_ROLES:
            raise Refused(403, f"Your role ({ROLE_LABELS[member.role]}) may not do this.")
        dashboard = request.app[_DASHBOARD]
        posted = await read_compose(request)
        cookie = request.cookies.get(SESSION_COOKIE)
        if not dashboard.sessions.csrf_ok(cookie, posted.fields.get("csrf")):
            raise Refused(403, "The form is out of date. Go back, reload the page and try again.")
        return await endpoint(request, dashboard, member, posted)

    return route


# --- reading from the database -----------------------------------------------------------


def language_label(code: str) -> str:
    """ "Arabic (ar)": staff read English names."""
    language = get_language(code)
    if language is None:
        return code
    return f"{Locale.parse(language.locale).get_display_name('en') or code} ({code})"


def topic_label(key: str) -> str:
    topic = get_topic(key)
    return f"{topic.icon} {topic.label}" if topic else key


async def load_choices(session: AsyncSession, enabled: Sequence[str]) -> Choices:
    places = await session.scalars(select(Place).where(Place.kind == PlaceKind.DEPARTURE_POINT))
    points = {
        place.id: display_name(place.names, "en")
        + (f" ({place.adm1_name})" if place.adm1_name else "")
        for place in places
    }
    return Choices(
        languages=tuple((code, language_label(code)) for code in enabled),
        areas=dict(sorted((await area_names(session)).items(), key=lambda item: item[1])),
        points=dict(sorted(points.items(), key=lambda item: item[1])),
    )


async def _attachment(session: AsyncSession, broadcast: Broadcast) -> Attachment | None:
    if broadcast.document_name is None and broadcast.document_file_id is None:
        return None
    size = await session.scalar(
        select(func.length(Broadcast.document_content)).where(Broadcast.id == broadcast.id)
    )
    return Attachment(broadcast.document_name or "document", int(size or 0))


async def stored_draft(session: AsyncSession, broadcast: Broadcast) -> Draft:
    """The stored draft as `problems` and `preview` take it (with the document's bytes)."""
    content = await session.scalar(
        select(Broadcast.document_content).where(Broadcast.id == broadcast.id)
    )
    return Draft(
        texts=dict(broadcast.texts),
        audience=audience_of(broadcast),
        priority=Priority(broadcast.priority),
        send_at=broadcast.send_at,
        location=broadcast.location,
        document_file_id=broadcast.document_file_id,
        document_name=broadcast.document_name,
        document_content=content,
    )


def fingerprint(draft: Draft) -> str:
    """Changes with anything the preview shows, so that Send sends what was seen."""
    digest = hashlib.sha256()
    shown = {
        "texts": draft.texts,
        "audience": [
            draft.audience.topics,
            draft.audience.areas,
            draft.audience.languages,
            draft.audience.departure_point_ids,
        ],
        "priority": draft.priority.value,
        "send_at": draft.send_at.isoformat() if draft.send_at else None,
        "location": draft.location,
        "document": [draft.document_file_id, draft.document_name],
    }
    digest.update(json.dumps(shown, sort_keys=True, ensure_ascii=False).encode())
    digest.update(draft.document_content or b"")
    return digest.hexdigest()[:32]


async def _open_draft(session: AsyncSession, reference: str) -> Broadcast | None:
    broadcast = await find_broadcast(session, reference) if reference else None
    if broadcast is None or broadcast.status != BroadcastStatus.DRAFT.value:
        return None
    return broadcast


async def _save(
    session: AsyncSession,
    stored: Broadcast | None,
    draft: Draft,
    remove_document: bool,
    member: StaffMember,
    now: datetime,
) -> Broadcast:
    """Store the draft: a new row, or the fields of the existing one (which keeps its
    document unless a new one came or the officer removed it)."""
    if stored is None:
        return await create(session, draft, member.id, now)
    location = draft.location
    stored.texts = {code: text.strip() for code, text in draft.texts.items() if text.strip()}
    stored.topics = list(draft.audience.topics)
    stored.areas = list(draft.audience.areas)
    stored.languages = list(draft.audience.languages)
    stored.departure_point_ids = list(draft.audience.departure_point_ids)
    stored.priority = draft.priority.value
    stored.send_at = draft.send_at
    stored.latitude = location[0] if location else None
    stored.longitude = location[1] if location else None
    if draft.document_content is not None or remove_document:
        stored.document_content = draft.document_content
        stored.document_name = draft.document_name
        stored.document_file_id = None
    await session.flush()
    return stored


async def _outbox_counts(session: AsyncSession, ids: list[int]) -> dict[int, dict[str, int]]:
    if not ids:
        return {}
    rows = await session.execute(
        select(OutboxMessage.broadcast_id, OutboxMessage.state, func.count())
        .where(OutboxMessage.broadcast_id.in_(ids))
        .group_by(OutboxMessage.broadcast_id, OutboxMessage.state)
    )
    counts: dict[int, dict[str, int]] = {}
    for broadcast_id, state, count in rows:
        counts.setdefault(broadcast_id, {})[state] = count
    return counts


async def _staff_names(session: AsyncSession, ids: set[int | None]) -> dict[int, str]:
    wanted = {staff_id for staff_id in ids if staff_id is not None}
    if not wanted:
        return {}
    rows = await session.execute(
        select(StaffMember.id, StaffMember.name).where(StaffMember.id.in_(wanted))
    )
    return {staff_id: name for staff_id, name in rows}


async def _find(session: AsyncSession, request: web.Request) -> Broadcast:
    raw = request.match_info["reference"]
    reference = normalize_reference(raw)
    broadcast = await find_broadcast(session, reference) if reference else None
    if broadcast is None:
        raise Refused(404, f"No broadcast {raw[:16]}.")
    return broadcast


def _url(broadcast: Broadcast, page: str = "", done: str = "") -> str:
    path = f"{PREFIX}/broadcasts/{broadcast.reference}" + (f"/{page}" if page else "")
    return path + (f"?done={done}" if done else "")


def _notice(request: web.Request) -> str | None:
    return NOTICES.get(request.query.get("done", ""))


def _audience_labels(broadcast: Broadcast, choices: Choices) -> dict[str, str]:
    return {
        "topics": ", ".join(topic_label(t) for t in broadcast.topics),
        "areas": ", ".join(choices.areas.get(a, a) for a in broadcast.areas or ()) or "everywhere",
        "languages": ", ".join(language_label(c) for c in broadcast.languages or ()) or "all",
        "points": ", ".join(
            choices.points.get(p, f"#{p}") for p in broadcast.departure_point_ids or ()
        ),
    }


# --- the list and the report -------------------------------------------------------------


async def list_page(
    request: web.Request, dashboard: Dashboard, member: StaffMember
) -> web.StreamResponse:
    async with dashboard.db.transaction() as session:
        broadcasts = await recent_broadcasts(session, RECENT)
        counts = await _outbox_counts(session, [b.id for b in broadcasts])
    rows = [
        {
            "broadcast": broadcast,
            "topics": ", ".join(topic_label(t) for t in broadcast.topics),
            "sent": counts.get(broadcast.id, {}).get(OutboxState.SENT.value, 0),
            "failed": counts.get(broadcast.id, {}).get(OutboxState.FAILED.value, 0),
            "blocked": counts.get(broadcast.id, {}).get(OutboxState.BLOCKED.value, 0),
        }
        for broadcast in broadcasts
    ]
    return render(
        request,
        "broadcasts.html",
        rows=rows,
        may_compose=member.role in COMPOSE_ROLES,
        notice=_notice(request),
    )


async def report_page(
    request: web.Request, dashboard: Dashboard, member: StaffMember
) -> web.StreamResponse:
    settings = dashboard.settings
    async with dashboard.db.transaction() as session:
        broadcast = await _find(session, request)
        numbers = await report(session, broadcast)
        choices = await load_choices(session, settings.enabled_languages)
        names = await _staff_names(session, {broadcast.created_by, broadcast.cancelled_by})
        attachment = await _attachment(session, broadcast)
    return render(
        request,
        "broadcast.html",
        broadcast=broadcast,
        report=numbers,
        audience=_audience_labels(broadcast, choices),
        texts=_text_views(broadcast.texts),
        attachment=attachment,
        created_by=names.get(broadcast.created_by or 0, "–"),
        cancelled_by=names.get(broadcast.cancelled_by or 0, "–"),
        may_compose=member.role in COMPOSE_ROLES,
        is_open=broadcast.status in OPEN_STATUSES,
        notice=_notice(request),
    )


def _text_views(texts: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        {"code": code, "label": language_label(code), "text": text, "rtl": is_rtl(code)}
        for code, text in texts.items()
    ]


async def cancel_form(
    request: web.Request, dashboard: Dashboard, member: StaffMember, form: MultiDictProxy[Any]
) -> web.StreamResponse:
    async with dashboard.db.transaction() as session:
        broadcast = await _find(session, request)
        if broadcast.status not in OPEN_STATUSES:
            raise web.HTTPSeeOther(_url(broadcast, done="closed"))
        cancelled = await cancel(session, broadcast, dashboard.clock(), member.id)
        await audit.record(
            session,
            audit.Action.BROADCAST,
            dashboard.clock(),
            staff_id=member.id,
            target=broadcast.reference,
            detail=f"cancelled unsent={cancelled}",
        )
    log.info("dashboard: staff %s cancelled a broadcast (%d messages)", member.id, cancelled)
    raise web.HTTPSeeOther(_url(broadcast, done="cancelled"))


# --- composing ---------------------------------------------------------------------------


def _form_page(
    request: web.Request,
    dashboard: Dashboard,
    state: ComposeState,
    choices: Choices,
    *,
    attachment: Attachment | None = None,
    errors: Sequence[str] = (),
) -> web.Response:
    settings = dashboard.settings
    shown = [
        {
            "code": code,
            "label": language_label(code),
            "text": state.texts.get(code, ""),
            "rtl": is_rtl(code),
        }
        for code in state.languages
    ]
    quiet = settings.services.quiet_hours
    return render(
        request,
        "broadcast_new.html",
        status=400 if errors else 200,
        state=state,
        shown=shown,
        addable=[(c, label) for c, label in choices.languages if c not in state.languages],
        choices=choices,
        topics=[(t.key, topic_label(t.key)) for t in TOPICS],
        attachment=attachment,
        errors=list(errors),
        quiet=f"{quiet.start:%H:%M}–{quiet.end:%H:%M}" if quiet else "",
        max_text=MAX_TEXT,
        max_caption=MAX_CAPTION,
    )


async def new_page(
    request: web.Request, dashboard: Dashboard, member: StaffMember
) -> web.StreamResponse:
    settings = dashboard.settings
    state = ComposeState(
        languages=(settings.default_language,), texts={settings.default_language: ""}
    )
    async with dashboard.db.transaction() as session:
        choices = await load_choices(session, settings.enabled_languages)
    return _form_page(request, dashboard, state, choices)


async def edit_page(
    request: web.Request, dashboard: Dashboard, member: StaffMember
) -> web.StreamResponse:
    settings = dashboard.settings
    async with dashboard.db.transaction() as session:
        broadcast = await _find(session, request)
        if broadcast.status != BroadcastStatus.DRAFT.value:
            raise web.HTTPSeeOther(_url(broadcast, done="already"))
        choices = await load_choices(session, settings.enabled_languages)
        attachment = await _attachment(session, broadcast)
    state = state_of(broadcast, settings.timezone, settings.default_language)
    return _form_page(request, dashboard, state, choices, attachment=attachment)


async def compose_form(
    request: web.Request, dashboard: Dashboard, member: StaffMember, posted: Posted
) -> web.StreamResponse:
    settings = dashboard.settings
    state, action = parse_state(posted.fields, settings.enabled_languages)
    now = dashboard.clock()
    attachment: Attachment | None = None
    async with dashboard.db.transaction() as session:
        choices = await load_choices(session, settings.enabled_languages)
        draft, errors = to_draft(state, posted.upload, choices, settings.timezone, now)
        if posted.upload_too_large:
            errors.append("The document is larger than 20 MB; choose a smaller file.")
        stored = await _open_draft(session, state.reference)
        if state.reference and stored is None:
            errors.append(
                f"Broadcast {spoken(state.reference)} was sent or cancelled meanwhile: "
                "this form now makes a new draft (attach any document again)."
            )
            state = replace(state, reference="")
        if (action == "preview" and not errors) or posted.upload is not None:
            stored = await _save(session, stored, draft, state.remove_document, member, now)
            state = replace(state, reference=stored.reference, remove_document=False)
        if stored is not None:
            attachment = await _attachment(session, stored)
    if action == "preview" and not errors and stored is not None:
        log.info("dashboard: staff %s saved a broadcast draft", member.id)
        raise web.HTTPSeeOther(_url(stored, "preview"))
    return _form_page(request, dashboard, state, choices, attachment=attachment, errors=errors)


def _quiet_notice(dashboard: Dashboard, draft: Draft, now: datetime) -> datetime | None:
    """When quiet hours will hold this broadcast until, if they will."""
    quiet = dashboard.settings.services.quiet_hours
    if quiet is None or draft.priority is Priority.EMERGENCY:
        return None
    due = max(draft.send_at or now, now)
    return quiet.next_end(due) if quiet.contains(due) else None


async def preview_page(
    request: web.Request, dashboard: Dashboard, member: StaffMember
) -> web.StreamResponse:
    settings = dashboard.settings
    now = dashboard.clock()
    async with dashboard.db.transaction() as session:
        broadcast = await _find(session, request)
        if broadcast.status != BroadcastStatus.DRAFT.value:
            raise web.HTTPSeeOther(_url(broadcast))
        draft = await stored_draft(session, broadcast)
        found = problems(draft, settings.enabled_languages)
        counts = None
        if not found:
            counts = await preview(
                session, draft, settings.default_language, settings.fallback_languages
            )
        choices = await load_choices(session, settings.enabled_languages)
        attachment = await _attachment(session, broadcast)
    groups = [
        {
            "count": count,
            "label": language_label(count.language),
            "variant": language_label(count.variant) if count.variant else "–",
        }
        for count in (counts.by_language if counts else ())
    ]
    quiet = dashboard.settings.services.quiet_hours
    return render(
        request,
        "broadcast_preview.html",
        status=200,
        broadcast=broadcast,
        draft=draft,
        problems=found,
        total=counts.total if counts else 0,
        groups=groups,
        audience=_audience_labels(broadcast, choices),
        texts=_text_views(broadcast.texts),
        attachment=attachment,
        held_until=_quiet_notice(dashboard, draft, now),
        quiet=f"{quiet.start:%H:%M}–{quiet.end:%H:%M}" if quiet else "",
        version=fingerprint(draft),
        notice=_notice(request),
    )


async def _claim(session: AsyncSession, reference: str, now: datetime) -> bool:
    """Take the draft for sending: only one transaction finds it still a draft."""
    result = await session.execute(
        update(Broadcast)
        .where(Broadcast.reference == reference, Broadcast.status == BroadcastStatus.DRAFT.value)
        .values(enqueued_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def send_form(
    request: web.Request, dashboard: Dashboard, member: StaffMember, form: MultiDictProxy[Any]
) -> web.StreamResponse:
    settings = dashboard.settings
    now = dashboard.clock()
    reference = normalize_reference(request.match_info["reference"])
    version = form.get("version")
    async with dashboard.db.transaction() as session:
        # The claim comes first, before anything is read: see the module docstring.
        claimed = await _claim(session, reference, now)
        broadcast = await _find(session, request)
        if not claimed:
            raise web.HTTPSeeOther(_url(broadcast, done="already"))
        draft = await stored_draft(session, broadcast)
        # Raising inside the transaction rolls the claim back: the draft stays a draft.
        if version != fingerprint(draft):
            raise web.HTTPSeeOther(_url(broadcast, "preview", done="changed"))
        if problems(draft, settings.enabled_languages):
            raise web.HTTPSeeOther(_url(broadcast, "preview", done="problems"))
        recipients = await enqueue(session, broadcast, now, settings.default_language)
        await audit.record(
            session,
            audit.Action.BROADCAST,
            now,
            staff_id=member.id,
            target=broadcast.reference,
            detail=f"queued recipients={recipients} priority={broadcast.priority}",
        )
    log.info("dashboard: staff %s queued a broadcast for %d recipients", member.id, recipients)
    done = "empty" if recipients == 0 else "scheduled" if draft.send_at else "sent"
    raise web.HTTPSeeOther(_url(broadcast, done=done))


def add_routes(app: web.Application, dashboard: Dashboard) -> None:
    """Mount the broadcast pages on the dashboard app; the nav link reads `broadcast_roles`."""
    dashboard.templates.globals["broadcast_roles"] = READ_ROLES
    app.router.add_get("/broadcasts", _page(READ_ROLES, list_page))
    app.router.add_get("/broadcasts/new", _page(COMPOSE_ROLES, new_page))
    app.router.add_post("/broadcasts/new", _compose_route(compose_form))
    app.router.add_get("/broadcasts/{reference}", _page(READ_ROLES, report_page))
    app.router.add_get("/broadcasts/{reference}/edit", _page(COMPOSE_ROLES, edit_page))
    app.router.add_get("/broadcasts/{reference}/preview", _page(COMPOSE_ROLES, preview_page))
    app.router.add_post("/broadcasts/{reference}/send", _form(COMPOSE_ROLES, send_form))
    app.router.add_post("/broadcasts/{reference}/cancel", _form(COMPOSE_ROLES, cancel_form))
