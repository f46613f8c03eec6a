"""The staff web API (aiohttp), mounted under /api in every mode: on the sandbox's server,
on the webhook's server, or on a server of its own on WEB_HOST:WEB_PORT when polling.

Every request carries `Authorization: Bearer <token>`, a token from `crisis-comms staff token
STAFF_ID [--days N]` (see staff/tokens.py); the staff member is read again on every request,
so deactivating them or changing their role takes effect at once.

| method and path | who | what |
| --- | --- | --- |
| GET /api/shelters | any staff | every shelter, closed ones too |
| GET /api/shelters/{external_id} | any staff | one shelter and its change history |
| PATCH /api/shelters/{external_id} | admin, communications officer | `{"status"?, "occupancy"?}` |
| GET /api/registrations/summary | any staff | registration counts (no personal data) |
| GET /api/manifests/{point}.csv, .xlsx | admin, communications officer | a manifest |
| GET /api/aggregates | any staff | feedback counts as JSON: the summary and daily rows |
| GET /api/aggregates.csv | any staff | the daily rows as CSV with an HXL hashtag row |
| GET /api/items.csv, .xlsx | admin, responder, protection focal point | feedback items |

The aggregates take `days` (the last N days), `since` and `until` (YYYY-MM-DD, UTC days),
`area` (an adm1 code) and `by` (`sector`, the default, `cluster` or `item` for totals); the
JSON covers the last 7 days unless asked, the CSV every day. They are read from the rollup
counts and never count sensitive items. The item exports take the item filter's query
parameters (feedback/queries.py `ItemFilter`, the same a gap flag links to); they carry
pseudonyms, never chat ids or names, and sensitive items only with `include_sensitive=1`
for a role that may see them (403 otherwise).

PATCH takes `status` ("open", "full" or "closed") and/or `occupancy` (a whole number, 0 or
more) and answers the updated shelter; an empty object `{}` confirms the shelter unchanged
(it is then no longer out of date). Changes are attributed to the staff member.

Errors are JSON `{"error": "..."}`: 400 what is wrong with the request, 401 missing, invalid
or expired token (or a staff member no longer active), 403 the role does not allow it,
404 unknown shelter, departure point or path, 413 body too large.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.errors import describe
from bot.web_security import protect
from evacuation.manifests import UNASSIGNED, manifest_rows, summary, to_csv, to_xlsx
from feedback.exports import (
    AGGREGATE_KINDS,
    aggregate_rows,
    aggregates_csv,
    items_xlsx,
    write_items_csv,
)
from feedback.items import FeedbackItem
from feedback.queries import ItemFilter
from feedback.report import summary_json
from feedback.review import may_see
from feedback.summary import Window, summarise
from feedback.taxonomy import taxonomy
from messages.places import find_place
from messages.shelters import (
    Shelter,
    ShelterChange,
    ShelterStatus,
    ShelterUpdateError,
    find_shelter,
    is_stale,
    list_shelters,
    shelter_history,
    update_shelter,
)
from staff import audit
from staff.models import Role, StaffMember
from staff.tokens import TokenError, attribution, staff_for_token
from storage.base import utcnow
from storage.database import Database

log = logging.getLogger("crisis_comms.staff_api")
PREFIX = "/api"
MAX_BODY = 16 * 1024  # a shelter update is a few dozen bytes
ANY_STAFF = frozenset(Role)
OFFICERS = frozenset({Role.ADMIN, Role.COMMUNICATIONS_OFFICER})
ITEM_EXPORTERS = frozenset({Role.ADMIN, Role.RESPONDER, Role.PROTECTION_FOCAL_POINT})
CONTENT_TYPES = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_MEMBER = web.RequestKey("staff_member", StaffMember)


class StaffApi:
    """What the handlers need: the database, the token key, the settings and a clock."""

    def __init__(
        self,
        database: Database,
        key: bytes,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = database
        self.key = key
        self.settings = settings
        self.clock = clock


_CONFIG = web.AppKey("staff_api", StaffApi)


def error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def staff_api_app(api: StaffApi) -> web.Application:
    """The API as an aiohttp application, to mount with `mount_staff_api`."""
    app = protect(web.Application(middlewares=[_errors, _authenticate]))
    app[_CONFIG] = api
    app.router.add_get("/shelters", _guard(ANY_STAFF, list_all))
    app.router.add_get("/shelters/{external_id}", _guard(ANY_STAFF, show_one))
    app.router.add_patch("/shelters/{external_id}", _guard(OFFICERS, change_one))
    app.router.add_get("/registrations/summary", _guard(ANY_STAFF, registrations))
    app.router.add_get("/manifests/{filename}", _guard(OFFICERS, manifest))
    app.router.add_get("/aggregates", _guard(ANY_STAFF, aggregates))
    app.router.add_get("/aggregates.csv", _guard(ANY_STAFF, aggregates_hxl))
    app.router.add_get("/items.csv", _guard(ITEM_EXPORTERS, items_export))
    app.router.add_get("/items.xlsx", _guard(ITEM_EXPORTERS, items_export))
    app.router.add_route("*", "/{tail:.*}", _not_found)
    return app


def mount_staff_api(root: web.Application, api: StaffApi) -> None:
    """Serve the API under /api on `root` (before `root` is started)."""
    root.add_subapp(PREFIX, staff_api_app(api))


def standalone_app(api: StaffApi) -> web.Application:
    """A server with only the API, for polling mode (the runner adds /healthz and co.)."""
    root = protect(web.Application())
    mount_staff_api(root, api)
    return root


# --- plumbing -------------------------------------------------------------------------------

Endpoint = Callable[[web.Request, StaffApi, StaffMember], Awaitable[web.StreamResponse]]
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Route) -> web.StreamResponse:
    """Every answer is JSON, the unexpected ones too (without the details, which are logged)."""
    try:
        return await handler(request)
    except web.HTTPException as http_error:
        if http_error.status < 400:
            raise
        return error(http_error.status, http_error.reason)
    except Exception as failure:
        # Type and frames only: a database error's text can quote the rows it was writing.
        log.error("staff API: %s %s failed: %s", request.method, request.path, describe(failure))
        return error(500, "internal error")


@web.middleware
async def _authenticate(request: web.Request, handler: Route) -> web.StreamResponse:
    api = request.app[_CONFIG]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return error(401, "send Authorization: Bearer <token>", **{"WWW-Authenticate": "Bearer"})
    try:
        if not token.isascii():  # ours always is; other bytes would fail to encode
            raise TokenError("the token is not valid")
        async with api.db.transaction() as session:
            member = await staff_for_token(session, api.key, token.strip(), api.clock())
    except TokenError as problem:
        return error(401, str(problem), **{"WWW-Authenticate": 'Bearer error="invalid_token"'})
    request[_MEMBER] = member
    return await handler(request)


def _guard(roles: frozenset[Role], endpoint: Endpoint) -> Route:
    async def route(request: web.Request) -> web.StreamResponse:
        member = request[_MEMBER]
        if member.role is not Role.ADMIN and member.role not in roles:
            allowed = ", ".join(sorted(role.value for role in roles))
            return error(403, f"your role ({member.role.value}) may not do this; {allowed} may")
        return await endpoint(request, request.app[_CONFIG], member)

    return route


async def _not_found(request: web.Request) -> web.StreamResponse:
    return error(404, f"no such endpoint: {request.method} {request.path}")


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, read no further than MAX_BODY (413 beyond it)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _Refused(413, f"the body is larger than {MAX_BODY} bytes")
    body = bytearray()
    async for chunk in request.content.iter_chunked(4096):
        body += chunk
        if len(body) > MAX_BODY:
            raise _Refused(413, f"the body is larger than {MAX_BODY} bytes")
    try:
        data = json.loads(body)
    except ValueError:
        raise _Refused(400, "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise _Refused(400, "the body must be a JSON object")
    return data


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --- representations ------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def shelter_json(shelter: Shelter, api: StaffApi, now: datetime) -> dict[str, Any]:
    return {
        "external_id": shelter.external_id,
        "names": shelter.names,
        "notes": shelter.notes or {},
        "address": shelter.address,
        "latitude": shelter.latitude,
        "longitude": shelter.longitude,
        "adm1_code": shelter.adm1_code,
        "adm1_name": shelter.adm1_name,
        "adm2_code": shelter.adm2_code,
        "adm2_name": shelter.adm2_name,
        "status": shelter.status.value,
        "capacity": shelter.capacity,
        "occupancy": shelter.occupancy,
        "places_free": shelter.places_free,
        "services": [service.value for service in shelter.service_list()],
        "contact_name": shelter.contact_name,
        "contact_phone": shelter.contact_phone,
        "opening_hours": shelter.opening_hours,
        "updated_at": _iso(shelter.updated_at),
        "updated_by": shelter.updated_by,
        "stale": is_stale(shelter, now, api.settings.services.shelter_max_age),
    }


def change_json(change: ShelterChange) -> dict[str, Any]:
    return {
        "at": _iso(change.at),
        "by": change.by,
        "status": ShelterStatus(change.status).value,
        "occupancy": change.occupancy,
    }


async def _with_history(
    session: AsyncSession, shelter: Shelter, api: StaffApi, now: datetime
) -> dict[str, Any]:
    history = await shelter_history(session, shelter)
    return {**shelter_json(shelter, api, now), "history": [change_json(c) for c in history]}


# --- endpoints ------------------------------------------------------------------------------


async def list_all(request: web.Request, api: StaffApi, member: StaffMember) -> web.Response:
    now = api.clock()
    async with api.db.transaction() as session:
        shelters = await list_shelters(session)
        body = [shelter_json(shelter, api, now) for shelter in shelters]
    return web.json_response({"shelters": body})


async def show_one(request: web.Request, api: StaffApi, member: StaffMember) -> web.Response:
    external_id = request.match_info["external_id"]
    now = api.clock()
    async with api.db.transaction() as session:
        shelter = await find_shelter(session, external_id)
        if shelter is None:
            return error(404, f"no shelter {external_id!r}")
        return web.json_response(await _with_history(session, shelter, api, now))


def parse_update(data: dict[str, Any]) -> tuple[ShelterStatus | None, int | None]:
    """The status and occupancy a PATCH body asks for; _Refused(400) saying what is wrong."""
    unknown = sorted(set(data) - {"status", "occupancy"})
    if unknown:
        raise _Refused(400, f"unknown field(s) {', '.join(unknown)}: only status and occupancy")
    status = None
    if "status" in data:
        value = data["status"]
        choices = [s.value for s in ShelterStatus]
        if not isinstance(value, str) or value not in choices:
            raise _Refused(400, f"status must be one of {', '.join(choices)}, not {value!r}")
        status = ShelterStatus(value)
    occupancy = None
    if "occupancy" in data:
        value = data["occupancy"]
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Refused(400, f"occupancy must be a whole number, not {value!r}")
        if value > 1_000_000:
            raise _Refused(400, f"occupancy {value} is not plausible for one shelter")
        occupancy = value
    return status, occupancy


async def change_one(request: web.Request, api: StaffApi, member: StaffMember) -> web.Response:
    external_id = request.match_info["external_id"]
    try:
        status, occupancy = parse_update(await read_json_object(request))
    except _Refused as refused:
        return error(refused.status, str(refused))
    now = api.clock()
    async with api.db.transaction() as session:
        shelter = await find_shelter(session, external_id)
        if shelter is None:
            return error(404, f"no shelter {external_id!r}")
        try:
            await update_shelter(
                session,
                shelter,
                status=status,
                occupancy=occupancy,
                by=attribution(member),
                now=now,
            )
        except ShelterUpdateError as problem:
            return error(400, str(problem))
        body = await _with_history(session, shelter, api, now)
    log.info("staff %s updated shelter %s via the API", member.id, external_id)
    return web.json_response(body)


async def registrations(request: web.Request, api: StaffApi, member: StaffMember) -> web.Response:
    async with api.db.transaction() as session:
        counts = await summary(session)
    return web.json_response(
        {
            "registrations": counts.registrations,
            "people": counts.people,
            "by_departure_point": dict(counts.by_departure_point.most_common()),
            "by_nationality": dict(counts.by_nationality.most_common()),
            "by_need": dict(counts.by_need.most_common()),
        }
    )


async def manifest(request: web.Request, api: StaffApi, member: StaffMember) -> web.Response:
    key, dot, extension = request.match_info["filename"].rpartition(".")
    if not dot or extension not in CONTENT_TYPES or not key:
        return error(404, "ask for /api/manifests/<departure point>.csv or .xlsx")
    async with api.db.transaction() as session:
        if key != UNASSIGNED and await find_place(session, key) is None:
            return error(404, f"no departure point {key!r}")
        rows = await manifest_rows(session, key)
        await exported(session, api, member, f"manifest:{key}", f"{extension} rows={len(rows)}")
    body = to_csv(rows) if extension == "csv" else to_xlsx(rows, key)
    stamp = api.clock().strftime("%Y%m%d-%H%M")
    safe_key = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key)
    filename = f"manifest-{safe_key}-{stamp}.{extension}"
    log.info("staff %s downloaded the %s manifest (%d rows)", member.id, key, len(rows))
    return web.Response(
        body=body,
        content_type=CONTENT_TYPES[extension],
        charset="utf-8" if extension == "csv" else None,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


# --- feedback aggregates and item exports ---------------------------------------------------


def _attachment(api: StaffApi, name: str, extension: str) -> dict[str, str]:
    stamp = api.clock().strftime("%Y%m%d-%H%M")
    return {
        "Content-Disposition": f'attachment; filename="{name}-{stamp}.{extension}"',
        "Cache-Control": "no-store",
    }


def parse_period(
    query: Mapping[str, str], today: date, default_days: int | None
) -> tuple[date | None, date | None]:
    """`days`, `since` and `until` as first and last day; _Refused(400) saying what is wrong."""
    try:
        since = date.fromisoformat(query["since"]) if query.get("since") else None
        until = date.fromisoformat(query["until"]) if query.get("until") else None
    except ValueError:
        raise _Refused(400, "since and until must be dates, YYYY-MM-DD") from None
    raw_days = query.get("days")
    if raw_days is not None and (not raw_days.isdigit() or not 1 <= int(raw_days) <= 3660):
        raise _Refused(400, "days must be a whole number, 1 to 3660")
    if raw_days is not None and since is not None:
        raise _Refused(400, "give since or days, not both")
    days = int(raw_days) if raw_days is not None else default_days
    if since is None and days is not None:
        since = (until or today) - timedelta(days=days - 1)
        until = until or today
    if since is not None and until is not None and since > until:
        raise _Refused(400, f"since {since} is after until {until}")
    return since, until


def _aggregate_query(
    request: web.Request, api: StaffApi, default_days: int | None
) -> tuple[date | None, date | None, str | None, str]:
    by = request.query.get("by", "sector")
    if by not in AGGREGATE_KINDS:
        raise _Refused(400, f"by must be one of {', '.join(AGGREGATE_KINDS)}")
    since, until = parse_period(request.query, api.clock().date(), default_days)
    return since, until, request.query.get("area") or None, by


async def aggregates(request: web.Request, api: StaffApi, member: StaffMember) -> web.Response:
    try:
        since, until, area, by = _aggregate_query(request, api, default_days=7)
    except _Refused as refused:
        return error(refused.status, str(refused))
    assert since is not None
    until = until or api.clock().date()
    async with api.db.transaction() as session:
        counts = await summarise(session, Window(since, until), area_code=area)
        rows = await aggregate_rows(session, by=by, since=since, until=until, area_code=area)
        await exported(session, api, member, "aggregates", _period_detail(by, since, until, area))
    return web.json_response(
        {"by": by, "summary": summary_json(counts), "rows": [row.to_json() for row in rows]}
    )


async def aggregates_hxl(request: web.Request, api: StaffApi, member: StaffMember) -> web.Response:
    try:
        since, until, area, by = _aggregate_query(request, api, default_days=None)
    except _Refused as refused:
        return error(refused.status, str(refused))
    async with api.db.transaction() as session:
        rows = await aggregate_rows(session, by=by, since=since, until=until, area_code=area)
        detail = _period_detail(by, since, until, area)
        await exported(session, api, member, "aggregates.csv", detail)
    return web.Response(
        body=aggregates_csv(rows),
        content_type=CONTENT_TYPES["csv"],
        charset="utf-8",
        headers=_attachment(api, f"feedback-{by}-counts", "csv"),
    )


async def exported(
    session: AsyncSession, api: StaffApi, member: StaffMember, target: str, detail: str
) -> None:
    """An export in the audit log: what, by whom, which filter; never the content."""
    await audit.record(
        session, audit.Action.EXPORT, api.clock(), staff_id=member.id, target=target, detail=detail
    )


def _period_detail(by: str, since: date | None, until: date | None, area: str | None) -> str:
    return f"by={by} since={since or '-'} until={until or '-'} area={area or '-'}"


def may_export_sensitive(member: StaffMember) -> bool:
    """Whoever may see a sensitive item (feedback/review.py decides)."""
    return may_see(member, FeedbackItem(sensitive=True))


async def items_export(
    request: web.Request, api: StaffApi, member: StaffMember
) -> web.StreamResponse:
    extension = request.path.rpartition(".")[2]
    try:
        wanted = ItemFilter.from_query(request.query)
    except (ValueError, TypeError) as problem:
        return error(400, f"bad item filter: {problem}")
    sectors = taxonomy().sectors
    if wanted.sector is not None and wanted.sector not in sectors:
        return error(400, f"bad item filter: sector must be one of 1 to {max(sectors)}")
    if wanted.include_sensitive and not may_export_sensitive(member):
        return error(403, f"your role ({member.role.value}) may not export sensitive items")
    headers = _attachment(api, "feedback-items", extension)
    which = urlencode(wanted.to_query())
    if extension == "csv":
        # Recorded before the stream starts: a download cut short still left the server.
        async with api.db.transaction() as session:
            await exported(session, api, member, "items.csv", which)
    async with api.db.transaction() as session:
        if extension == "xlsx":
            body, count = await items_xlsx(session, wanted)
            await exported(session, api, member, "items.xlsx", f"rows={count} {which}".strip())
            log.info("staff %s exported %d feedback items (xlsx)", member.id, count)
            return web.Response(body=body, content_type=CONTENT_TYPES["xlsx"], headers=headers)
        # Streamed batch by batch: a large export is never held whole.
        response = web.StreamResponse(headers=headers)
        response.content_type = CONTENT_TYPES["csv"]
        response.charset = "utf-8"
        await response.prepare(request)
        count = await write_items_csv(session, wanted, response.write)
    await response.write_eof()
    log.info("staff %s exported %d feedback items (csv)", member.id, count)
    return response
