"""The audit log on the dashboard, for admins only: who viewed, exported, changed, answered
or erased what, and when (staff/audit.py keeps it).

| path | roles | what |
| --- | --- | --- |
| GET /dashboard/audit?action=&staff=&before= | admin | newest first, 100 a page |

Filters: one action, one staff member (what they did). "Older" pages on with ``before`` (the
last id shown), so a page stays the same while new events arrive. Reading the log is itself
recorded (``audit_view``), with the filter used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from bot.dashboard.app import Dashboard, Refused, _page, render
from staff import audit
from staff.access import list_staff
from staff.models import Role, StaffMember

PAGE_SIZE = 100
AUDIT_ROLES = frozenset({Role.ADMIN})
ACTIONS = tuple(action.value for action in audit.Action)


@dataclass(frozen=True)
class AuditQuery:
    """What the page was asked for; None means "any" (or the newest page)."""

    action: str | None = None
    staff_id: int | None = None
    before_id: int | None = None

    def filters(self) -> dict[str, str]:
        """The filters as query parameters, for the "older" link (paging kept apart)."""
        wanted = {"action": self.action, "staff": self.staff_id}
        return {name: str(value) for name, value in wanted.items() if value is not None}

    def describe(self) -> str | None:
        """For the audit_view event: which filter, or None."""
        parts = [f"{k}={v}" for k, v in self.filters().items()]
        if self.before_id is not None:
            parts.append(f"before={self.before_id}")
        return " ".join(parts) or None


def parse_query(query: Mapping[str, str]) -> AuditQuery:
    """The page's query; Refused(400) naming what is wrong."""
    action = query.get("action", "") or None
    if action is not None and action not in ACTIONS:
        raise Refused(400, f"action must be one of {', '.join(ACTIONS)}.")
    return AuditQuery(
        action=action,
        staff_id=_whole(query.get("staff", ""), "staff"),
        before_id=_whole(query.get("before", ""), "before"),
    )


def _whole(raw: str, name: str) -> int | None:
    if raw == "":
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise Refused(400, f"{name} must be a whole number.")
    return int(raw)


async def audit_page(
    request: web.Request, dashboard: Dashboard, member: StaffMember
) -> web.StreamResponse:
    wanted = parse_query(request.query)
    async with dashboard.db.transaction() as session:
        events = await audit.recent(
            session,
            limit=PAGE_SIZE + 1,  # one more tells whether there is an older page
            before_id=wanted.before_id,
            action=wanted.action,
            staff_id=wanted.staff_id,
        )
        staff = await list_staff(session)
        await audit.record(
            session,
            audit.Action.AUDIT_VIEW,
            dashboard.clock(),
            staff_id=member.id,
            detail=wanted.describe(),
        )
    shown = events[:PAGE_SIZE]
    older = shown[-1][0] if len(events) > PAGE_SIZE else None
    return render(
        request,
        "audit.html",
        events=shown,
        wanted=wanted,
        filters=wanted.filters(),
        older=older,
        actions=ACTIONS,
        staff=staff,
    )


def add_routes(app: web.Application, dashboard: Dashboard) -> None:
    """Mount the page; the nav link reads `audit_roles`."""
    dashboard.templates.globals["audit_roles"] = AUDIT_ROLES
    app.router.add_get("/audit", _page(AUDIT_ROLES, audit_page))
