"""The responders' dashboard: aiohttp, server-rendered pages, login required.

Mounted under /dashboard in every mode, beside the staff API (see bot/runner.py). Pages:

| path | roles | what |
| --- | --- | --- |
| GET /dashboard/ | every role | gap flags, counts and trends, heat map, response times |
| GET /dashboard/items | admin, responder, protection focal point | the item queue |
| GET /dashboard/items/{ref} | same; sensitive items only as may_see allows | one item |
| POST /dashboard/items/{ref}/codes, /status, /reply | same | correct, move, answer |
| GET /dashboard/shelters | all but viewer | shelters and registrations at a glance |
| /dashboard/broadcasts… | see bot/dashboard/broadcasts.py | compose, preview, send, report |
| GET /dashboard/audit | admin | the audit log (bot/dashboard/audit.py) |
| GET, POST /dashboard/login; POST /dashboard/logout | anyone | sign in and out |

Viewers see the overview's aggregates only, without links to items. Replies are recorded as
pending; the bot process delivers them (bot/flows/responders.py `replies_job`), so the web
server needs no Telegram connection and nothing is lost when either restarts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined
from multidict import MultiDictProxy

from bot.config import Settings
from bot.dashboard import data
from bot.dashboard.auth import (
    ALL_ROLES,
    QUEUE_ROLES,
    SHELTER_ROLES,
    LoginThrottle,
    Sessions,
    ThrottleLimits,
    sees_sensitive,
)
from bot.errors import describe
from bot.web_security import protect
from feedback.codes import CodeSet, correct
from feedback.flags import FlagKind
from feedback.items import FeedbackItem, ItemStatus, find_item
from feedback.protection import CATEGORY_LABELS
from feedback.queries import OPEN, ItemFilter
from feedback.replies import ERASED_NO_REPLY, MAX_REPLY, record_reply
from feedback.review import TransitionError, may_see, move, open_item
from feedback.taxonomy import taxonomy
from staff import audit
from staff.models import Role, StaffMember
from staff.passwords import hash_password, needs_rehash, verify_password
from storage.base import utcnow
from storage.database import Database
from storage.references import normalize_reference, spoken

log = logging.getLogger("crisis_comms.dashboard")
PREFIX = "/dashboard"
STATIC_DIR = Path(__file__).resolve().parent / "static"
SESSION_COOKIE = "cc_dashboard"
PRELOGIN_COOKIE = "cc_dashboard_login"
MAX_FORM = 64 * 1024  # a reply is at most 3,500 characters
DAY_CHOICES = (7, 30, 90)
# An empty form field means "any"; "unknown" (no area, no detected language) is written "-".
UNKNOWN_PARAM = "-"
NULLABLE = ("area_code", "language")
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
DONE = {
    "codes": "Codes saved.",
    "status": "Status changed.",
    "reply": "Reply recorded: the bot sends it to the person within seconds.",
    "hidden": "Saved. The item is now sensitive: only the protection focal point sees it.",
}
ROLE_LABELS = {
    Role.ADMIN: "admin",
    Role.COMMUNICATIONS_OFFICER: "communications officer",
    Role.RESPONDER: "responder",
    Role.PROTECTION_FOCAL_POINT: "protection focal point",
    Role.VIEWER: "viewer",
}
FLAG_LABELS = {
    FlagKind.SURGE: "Surge",
    FlagKind.PRIORITY_UNMET: "Priority sector unmet",
    FlagKind.UNANSWERED: "Unanswered",
    FlagKind.SILENCE: "Silence",
    FlagKind.RUMOUR: "Rumour trending",
}


class Dashboard:
    """What the pages need: the database, the session keys, the settings, a clock, and the
    login throttle (kept here, per server, not in a module global)."""

    def __init__(
        self,
        database: Database,
        key: bytes,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
        limits: ThrottleLimits | None = None,
    ) -> None:
        self.db = database
        self.settings = settings
        self.clock = clock
        self.sessions = Sessions(key)
        self.throttle = LoginThrottle(limits or ThrottleLimits())
        self.templates = _environment(settings.timezone)


_DASHBOARD = web.AppKey("dashboard", Dashboard)
_MEMBER = web.RequestKey("dashboard_member", StaffMember)


def _environment(timezone: str) -> Environment:
    env = Environment(
        loader=PackageLoader("bot.dashboard", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    zone = ZoneInfo(timezone)

    def when(moment: datetime | None) -> str:
        return "–" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    env.filters["when"] = when
    env.filters["spoken"] = spoken
    env.filters["qs"] = lambda query: urlencode(query)
    env.filters["items_qs"] = lambda wanted: urlencode(link_query(wanted.to_query()))
    env.globals["prefix"] = PREFIX
    env.globals["timezone"] = timezone
    return env


def link_query(query: Mapping[str, str]) -> dict[str, str]:
    """A filter's query (ItemFilter.to_query) as dashboard links write it."""
    return {k: UNKNOWN_PARAM if k in NULLABLE and v == "" else v for k, v in query.items()}


def read_link_query(query: Mapping[str, str]) -> dict[str, str]:
    """The inverse of `link_query`, for ItemFilter.from_query: empty fields dropped."""
    read: dict[str, str] = {}
    for key in query:
        value = query[key]
        if key in NULLABLE:
            if value == "":
                continue
            value = "" if value == UNKNOWN_PARAM else value
        read[key] = value
    return read


def dashboard_app(dashboard: Dashboard) -> web.Application:
    """The dashboard as an aiohttp application, to mount with `mount_dashboard`."""
    app = protect(web.Application(middlewares=[_headers, _errors, _authenticate]))
    app[_DASHBOARD] = dashboard
    app.router.add_get("/login", login_page, name="login")
    app.router.add_post("/login", login, name="login_post")
    app.router.add_static("/static", STATIC_DIR, name="static")
    app.router.add_post("/logout", _form(ALL_ROLES, logout))
    app.router.add_get("/", _page(ALL_ROLES, overview_page))
    app.router.add_get("/items", _page(QUEUE_ROLES, queue_page))
    app.router.add_get("/items/{reference}", _page(QUEUE_ROLES, item_page))
    app.router.add_post("/items/{reference}/codes", _form(QUEUE_ROLES, codes_form))
    app.router.add_post("/items/{reference}/status", _form(QUEUE_ROLES, status_form))
    app.router.add_post("/items/{reference}/reply", _form(QUEUE_ROLES, reply_form))
    app.router.add_get("/shelters", _page(SHELTER_ROLES, shelters_page))
    # Imported here: the broadcast and audit pages build on this module's plumbing.
    from bot.dashboard import audit as audit_pages
    from bot.dashboard import broadcasts

    broadcasts.add_routes(app, dashboard)
    audit_pages.add_routes(app, dashboard)
    return app


def mount_dashboard(root: web.Application, dashboard: Dashboard) -> None:
    """Serve the dashboard under /dashboard on `root` (before `root` is started)."""

    async def to_overview(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{PREFIX}/")

    root.router.add_get(PREFIX, to_overview)
    root.add_subapp(PREFIX, dashboard_app(dashboard))


# --- plumbing -------------------------------------------------------------------------------

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]
Page = Callable[[web.Request, Dashboard, StaffMember], Awaitable[web.StreamResponse]]
FormPage = Callable[
    [web.Request, Dashboard, StaffMember, MultiDictProxy[Any]], Awaitable[web.StreamResponse]
]
PUBLIC = frozenset({"login", "login_post", "static"})


class Refused(Exception):
    """A request the dashboard answers with an error page: status and a message for staff."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def render(
    request: web.Request,
    template: str,
    status: int = 200,
    **context: Any,
) -> web.Response:
    dashboard = request.app[_DASHBOARD]
    member = request.get(_MEMBER)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    base: dict[str, Any] = {
        "member": member,
        "role_label": ROLE_LABELS.get(member.role, "") if member else "",
        "csrf": dashboard.sessions.csrf_token(cookie) if member else "",
        "may_queue": member is not None and member.role in QUEUE_ROLES,
        "may_shelters": member is not None and member.role in SHELTER_ROLES,
        "done": DONE.get(request.query.get("done", "")),
    }
    html = dashboard.templates.get_template(template).render(**base, **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "error.html", status=status, status_code=status, message=message)


@web.middleware
async def _headers(request: web.Request, handler: Route) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as http:
        response = http
        _secure(response)
        raise
    _secure(response)
    return response


def _secure(response: web.StreamResponse) -> None:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.content_type == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def _errors(request: web.Request, handler: Route) -> web.StreamResponse:
    """Errors as pages; the unexpected ones without details (which are logged)."""
    try:
        return await handler(request)
    except Refused as refused:
        return error_page(request, refused.status, str(refused))
    except web.HTTPException as http:
        if http.status < 400:
            raise
        return error_page(request, http.status, http.reason)
    except Exception as failure:
        # Type and frames only: a database error's text can quote the rows it was writing.
        log.error("dashboard: %s %s failed: %s", request.method, request.path, describe(failure))
        return error_page(request, 500, "Something went wrong; it has been logged.")


@web.middleware
async def _authenticate(request: web.Request, handler: Route) -> web.StreamResponse:
    """Every page but the login page needs a valid session of an active staff member."""
    dashboard = request.app[_DASHBOARD]
    resource = request.match_info.route.resource
    if resource is not None and resource.name in PUBLIC:
        return await handler(request)
    member = await _session_member(request, dashboard)
    if member is None:
        target = f"{PREFIX}/login"
        if request.method == "GET" and request.path.startswith(f"{PREFIX}/"):
            target += "?" + urlencode({"next": request.path_qs})
        response = web.HTTPSeeOther(target)
        if SESSION_COOKIE in request.cookies:
            response.del_cookie(SESSION_COOKIE, path=PREFIX)
        raise response
    request[_MEMBER] = member
    return await handler(request)


async def _session_member(request: web.Request, dashboard: Dashboard) -> StaffMember | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    session_data = dashboard.sessions.read(cookie, dashboard.clock())
    if session_data is None:
        return None
    async with dashboard.db.transaction() as session:
        member = await session.get(StaffMember, session_data.staff_id)
    return member if dashboard.sessions.matches(session_data, member) else None


def _page(roles: frozenset[Role], endpoint: Page) -> Route:
    async def route(request: web.Request) -> web.StreamResponse:
        member = request[_MEMBER]
        if member.role not in roles:
            raise Refused(403, f"Your role ({ROLE_LABELS[member.role]}) may not see this page.")
        return await endpoint(request, request.app[_DASHBOARD], member)

    return route


def _form(roles: frozenset[Role], endpoint: FormPage) -> Route:
    """A POST: role checked, body bounded, CSRF token checked against the session cookie."""

    async def route(request: web.Request) -> web.StreamResponse:
        member = request[_MEMBER]
        if member.role not in roles:
            raise Refused(403, f"Your role ({ROLE_LABELS[member.role]}) may not do this.")
        dashboard = request.app[_DASHBOARD]
        form = await read_form(request)
        token = form.get("csrf")
        cookie = request.cookies.get(SESSION_COOKIE)
        if not dashboard.sessions.csrf_ok(cookie, token if isinstance(token, str) else None):
            raise Refused(403, "The form is out of date. Go back, reload the page and try again.")
        return await endpoint(request, dashboard, member, form)

    return route


async def read_form(request: web.Request) -> MultiDictProxy[Any]:
    if request.content_length is None:
        raise Refused(411, "Send the form with its length.")
    if request.content_length > MAX_FORM:
        raise Refused(413, "The form is too large.")
    return await request.post()


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _texts(form: MultiDictProxy[Any], name: str) -> list[str]:
    return [value for value in form.getall(name, []) if isinstance(value, str)]


def _secure_cookie(request: web.Request) -> bool:
    # Behind a TLS-terminating proxy the request reaches us over http.
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


# --- login and logout -----------------------------------------------------------------------


def _safe_next(value: str) -> str:
    """Only a dashboard path: never another site (an open redirect)."""
    if value.startswith(f"{PREFIX}/") and "\\" not in value and not value.startswith("//"):
        return value
    return f"{PREFIX}/"


async def login_page(request: web.Request) -> web.StreamResponse:
    dashboard = request.app[_DASHBOARD]
    if await _session_member(request, dashboard) is not None:
        raise web.HTTPSeeOther(_safe_next(request.query.get("next", "")))
    return _login_form(request, dashboard)


def _login_form(
    request: web.Request, dashboard: Dashboard, *, status: int = 200, problem: str = ""
) -> web.Response:
    pre = request.cookies.get(PRELOGIN_COOKIE) or dashboard.sessions.new_prelogin()
    response = render(
        request,
        "login.html",
        status=status,
        login_csrf=dashboard.sessions.csrf_token(f"login:{pre}"),
        next=_safe_next(request.query.get("next", "")),
        problem=problem,
    )
    response.set_cookie(
        PRELOGIN_COOKIE,
        pre,
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=_secure_cookie(request),
        max_age=3600,
    )
    return response


async def login(request: web.Request) -> web.StreamResponse:
    dashboard = request.app[_DASHBOARD]
    form = await read_form(request)
    pre = request.cookies.get(PRELOGIN_COOKIE)
    if not pre or not dashboard.sessions.csrf_ok(f"login:{pre}", _text(form, "csrf")):
        return _login_form(
            request, dashboard, status=403, problem="The form expired. Please try again."
        )
    username, password = _text(form, "username").strip(), _text(form, "password")
    address = request.remote or "unknown"
    now = dashboard.clock()
    wait = dashboard.throttle.retry_after(username, address, now)
    if wait is not None:
        minutes = max(1, round(wait.total_seconds() / 60))
        return _login_form(
            request,
            dashboard,
            status=429,
            problem=f"Too many failed attempts. Try again in {minutes} minute(s).",
        )
    member = await _check_password(dashboard, username, password)
    if member is None:
        dashboard.throttle.failed(username, address, now)
        log.info("dashboard: failed login")
        await _audit_login(dashboard, audit.Action.LOGIN_FAILED, now, tried=username)
        return _login_form(request, dashboard, status=401, problem="Wrong staff id or password.")
    dashboard.throttle.succeeded(username)
    log.info("dashboard: staff %s logged in", member.id)
    await _audit_login(dashboard, audit.Action.LOGIN, now, staff_id=member.id)
    response = web.HTTPSeeOther(_safe_next(_text(form, "next")))
    response.set_cookie(
        SESSION_COOKIE,
        dashboard.sessions.issue(member, now),
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=_secure_cookie(request),
        max_age=int(dashboard.sessions.lifetime.total_seconds()),
    )
    response.del_cookie(PRELOGIN_COOKIE, path=PREFIX)
    raise response


async def _audit_login(
    dashboard: Dashboard,
    action: audit.Action,
    now: datetime,
    *,
    staff_id: int | None = None,
    tried: str = "",
) -> None:
    """A login or a failed one in the audit log. A failure names the staff id tried when it
    is a number, never other typed text (it might be a password in the wrong field)."""
    target = f"staff:{tried}" if tried.isdigit() and len(tried) < 10 else None
    async with dashboard.db.transaction() as session:
        await audit.record(
            session, action, now, staff_id=staff_id, actor=audit.Actor.STAFF, target=target
        )


async def _check_password(dashboard: Dashboard, username: str, password: str) -> StaffMember | None:
    """The active member whose id is `username`, if the password is theirs. The hash is
    checked in a thread (it is slow on purpose) and upgraded when its parameters are old."""
    staff_id = int(username) if username.isdigit() and len(username) < 10 else None
    async with dashboard.db.transaction() as session:
        member = await session.get(StaffMember, staff_id) if staff_id is not None else None
    stored = member.password_hash if member is not None and member.active else None
    if not await asyncio.to_thread(verify_password, stored, password):
        return None
    assert member is not None and stored is not None
    if needs_rehash(stored):
        fresh = await asyncio.to_thread(hash_password, password)
        async with dashboard.db.transaction() as session:
            current = await session.get(StaffMember, member.id)
            if current is not None and current.password_hash == stored:
                current.password_hash = fresh
                member = current
    return member


async def logout(
    request: web.Request, dashboard: Dashboard, member: StaffMember, form: MultiDictProxy[Any]
) -> web.StreamResponse:
    response = web.HTTPSeeOther(f"{PREFIX}/login")
    response.del_cookie(SESSION_COOKIE, path=PREFIX)
    raise response


# --- overview -------------------------------------------------------------------------------


def _choice(request: web.Request) -> tuple[int, str | None]:
    raw_days = request.query.get("days", "7")
    if not raw_days.isdigit() or int(raw_days) not in DAY_CHOICES:
        raise Refused(400, f"days must be one of {', '.join(map(str, DAY_CHOICES))}.")
    area = request.query.get("area", "").strip() or None
    if area is not None and len(area) > 32:
        raise Refused(400, "area must be an area code (at most 32 characters).")
    return int(raw_days), area


async def overview_page(
    request: web.Request, dashboard: Dashboard, member: StaffMember
) -> web.StreamResponse:
    days, area = _choice(request)
    links = member.role in QUEUE_ROLES
    async with dashboard.db.transaction() as session:
        view = await data.overview(
            session,
            dashboard.settings,
            days=days,
            area_code=area,
            include_sensitive=sees_sensitive(member),
            links=links,
            now=dashboard.clock(),
        )
    flags = [
        {
            "flag": flag,
            "label": FLAG_LABELS.get(flag.kind, str(flag.kind)),
            "query": _flag_query(flag) if links else None,
        }
        for flag in view.flags
    ]
    return render(
        request,
        "overview.html",
        view=view,
        flags=flags,
        days=days,
        day_choices=DAY_CHOICES,
        area=area or "",
        links=links,
        sectors=taxonomy().sectors,
    )


def _flag_query(flag: Any) -> dict[str, str]:
    query = link_query(flag.evidence.items.to_query())
    if flag.kind is FlagKind.UNANSWERED:
        query["order"] = "oldest"  # the longest waiting first
    return query


# --- the item queue -------------------------------------------------------------------------


def parse_queue_query(query: Mapping[str, str]) -> tuple[ItemFilter, int, bool]:
    """The filter, page and order a queue URL asks for; Refused(400) saying what is wrong."""
    raw_page = query.get("page", "1")
    if not raw_page.isdigit() or not 1 <= int(raw_page) <= 100_000:
        raise Refused(400, "page must be a whole number from 1.")
    order = query.get("order", "newest")
    if order not in ("newest", "oldest"):
        raise Refused(400, "order must be newest or oldest.")
    try:
        wanted = ItemFilter.from_query(read_link_query(query))
    except ValueError as problem:
        raise Refused(400, f"Filter not understood: {problem}.") from None
    tax = taxonomy()
    if wanted.sector is not None and wanted.sector not in tax.sectors:
        raise Refused(400, f"sector must be one of 1 to {max(tax.sectors)}.")
    if wanted.cluster is not None and wanted.cluster not in tax.clusters:
        raise Refused(400, f"unknown cluster {wanted.cluster!r}.")
    if wanted.type is not None and wanted.type not in tax.types:
        raise Refused(400, f"unknown feedback type {wanted.type!r}.")
    return wanted, int(raw_page), order == "oldest"


async def queue_page(
    request: web.Request, dashboard: Dashboard, member: StaffMember
) -> web.StreamResponse:
    wanted, page, oldest_first = parse_queue_query(request.query)
    wanted = wanted.allowing_sensitive(sees_sensitive(member))
    async with dashboard.db.transaction() as session:
        result = await data.queue(session, wanted, page=page, oldest_first=oldest_first)
        areas = await data.area_choices(session)
    query = link_query(wanted.to_query())
    order = "oldest" if oldest_first else "newest"
    hidden = {k: v for k, v in query.items() if k in ("since", "until", "references")}
    return render(
        request,
        "queue.html",
        result=result,
        wanted=wanted,
        query=query,
        order=order,
        hidden=hidden,
        areas=areas,
        tax=taxonomy(),
        statuses=[s.value for s in ItemStatus],
        open_statuses=",".join(s.value for s in ItemStatus if s.value in OPEN),
        sees_sensitive=sees_sensitive(member),
    )


# --- one item -------------------------------------------------------------------------------


async def _visible_item(request: web.Request, session: Any, member: StaffMember) -> FeedbackItem:
    """The item, if this member may see it; the same 404 otherwise, so that a reference does
    not reveal that a sensitive item exists."""
    raw = request.match_info["reference"]
    reference = normalize_reference(raw)
    item = await find_item(session, reference) if reference else None
    if item is None or not may_see(member, item):
        raise Refused(404, f"No item {raw[:16]}.")
    return item


async def item_page(
    request: web.Request, dashboard: Dashboard, member: StaffMember
) -> web.StreamResponse:
    async with dashboard.db.transaction() as session:
        item = await _visible_item(request, session, member)
        await open_item(session, item, member, dashboard.clock())
        view = await data.item_view(session, item)
    tax = taxonomy()
    return render(
        request,
        "item.html",
        view=view,
        item=view.item,
        tax=tax,
        categories=CATEGORY_LABELS,
        max_reply=MAX_REPLY,
    )


def parse_codes(form: MultiDictProxy[Any]) -> CodeSet:
    """The codes a correction form sends; Refused(400) naming what is not a valid code."""
    tax = taxonomy()
    kind = _text(form, "type")
    if kind not in tax.types:
        raise Refused(400, f"Type must be one of {', '.join(tax.types)}.")
    sectors = set()
    for value in _texts(form, "sector"):
        if not value.isdigit() or int(value) not in tax.sectors:
            raise Refused(400, f"Sector {value[:8]!r} is not an MCOF sector (1 to 15).")
        sectors.add(int(value))
    clusters = set(_texts(form, "cluster"))
    unknown = sorted(clusters - set(tax.clusters))
    if unknown:
        raise Refused(400, f"Unknown cluster {unknown[0][:32]!r}.")
    categories = set(_texts(form, "sensitive"))
    unknown = sorted(categories - set(CATEGORY_LABELS))
    if unknown:
        raise Refused(400, f"Unknown sensitive category {unknown[0][:32]!r}.")
    return CodeSet(
        type=kind,
        sectors=frozenset(sectors),
        clusters=frozenset(clusters),
        urgent=_text(form, "urgent") == "1",
        sensitive=bool(categories),
        sensitive_categories=frozenset(categories),
    )


def _item_url(item: FeedbackItem, done: str) -> str:
    return f"{PREFIX}/items/{item.reference}?done={done}"


async def codes_form(
    request: web.Request, dashboard: Dashboard, member: StaffMember, form: MultiDictProxy[Any]
) -> web.StreamResponse:
    corrected = parse_codes(form)
    async with dashboard.db.transaction() as session:
        item = await _visible_item(request, session, member)
        await correct(session, item, corrected, member.id, dashboard.clock())
        still_visible = may_see(member, item)
    log.info("dashboard: staff %s corrected the codes of an item", member.id)
    if not still_visible:
        raise web.HTTPSeeOther(f"{PREFIX}/items?done=hidden")
    raise web.HTTPSeeOther(_item_url(item, "codes"))


async def status_form(
    request: web.Request, dashboard: Dashboard, member: StaffMember, form: MultiDictProxy[Any]
) -> web.StreamResponse:
    raw = _text(form, "status")
    if raw not in {s.value for s in ItemStatus}:
        raise Refused(400, f"Status must be one of {', '.join(s.value for s in ItemStatus)}.")
    async with dashboard.db.transaction() as session:
        item = await _visible_item(request, session, member)
        try:
            await move(session, item, ItemStatus(raw), dashboard.clock(), staff_id=member.id)
        except TransitionError as problem:
            raise Refused(409, f"Not changed: {problem}.") from None
    raise web.HTTPSeeOther(_item_url(item, "status"))


async def reply_form(
    request: web.Request, dashboard: Dashboard, member: StaffMember, form: MultiDictProxy[Any]
) -> web.StreamResponse:
    text = _text(form, "text").strip()
    if not text:
        raise Refused(400, "Write the reply first.")
    if len(text) > MAX_REPLY:
        raise Refused(400, f"A reply has at most {MAX_REPLY} characters; this one has {len(text)}.")
    async with dashboard.db.transaction() as session:
        item = await _visible_item(request, session, member)
        if item.erased_at is not None:
            raise Refused(409, ERASED_NO_REPLY)
        await record_reply(session, item, member.id, text, dashboard.clock())
    log.info("dashboard: staff %s recorded a reply", member.id)
    raise web.HTTPSeeOther(_item_url(item, "reply"))


# --- shelters and registrations -------------------------------------------------------------


async def shelters_page(
    request: web.Request, dashboard: Dashboard, member: StaffMember
) -> web.StreamResponse:
    now = dashboard.clock()
    async with dashboard.db.transaction() as session:
        shelters = await data.shelters(session, dashboard.settings, now)
        points = await data.registrations_by_point(session)
    return render(
        request,
        "shelters.html",
        shelters=shelters,
        points=points,
        max_age_hours=round(dashboard.settings.services.shelter_max_age.total_seconds() / 3600),
    )
