"""Roles, one test per role (the five staff roles and someone who is not staff), over every
dashboard route, every staff API route and every Telegram command the bot registers.

Routes and commands are enumerated from the real applications, not listed by hand: each
must have a line in the tables below, so a new route or command fails here until someone
decides who may use it. Expectations: an allowed role gets the real answer; any other role
gets 403 on the web (401 or the login page when not signed in), and on Telegram exactly the
answer a made-up command gets. Sensitive items only for the protection focal point (not
even admins); the viewer sees aggregates only, never an item, a text or a pseudonym.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from telegram.ext import BaseHandler, CommandHandler, ConversationHandler

from bot.app import BotApplication
from bot.config import Settings
from bot.dashboard import Dashboard, mount_dashboard
from bot.dashboard.auth import ThrottleLimits
from bot.sandbox.botapi import ChatMessage, LoopbackBotApi
from bot.services import install
from bot.staff_api import StaffApi, mount_staff_api
from evacuation.registrations import Registration
from feedback.items import FeedbackItem
from messages.broadcasts import Audience, Draft, create
from messages.contacts import record_consent
from messages.places import Place, PlaceKind
from messages.shelters import Shelter, ShelterStatus
from staff.access import add_staff, issue_code, redeem_code
from staff.models import LinkCode, Role, StaffMember
from staff.tokens import issue_token
from storage.base import utcnow
from storage.database import Database
from tests.clock import FakeClock
from tests.phone import Phone
from tests.sandbox_fixtures import RunningBot
from tests.test_dashboard import NOW, PASSWORD, add_item, add_member, csrf_of

ADMIN, OFFICER, RESPONDER, FOCAL, VIEWER = (
    Role.ADMIN,
    Role.COMMUNICATIONS_OFFICER,
    Role.RESPONDER,
    Role.PROTECTION_FOCAL_POINT,
    Role.VIEWER,
)
EVERY_ROLE = frozenset(Role)
QUEUE = frozenset({ADMIN, RESPONDER, FOCAL})
OFFICERS = frozenset({ADMIN, OFFICER})
SHELTERS = frozenset({ADMIN, OFFICER, RESPONDER, FOCAL})
# Each test runs for every role and for someone who is not staff (None).
WHO = [*Role, None]
WHO_IDS = [*(role.value for role in Role), "not_staff"]

# What the seed holds that only some may see.
CHAT_ID = 7392018465  # a raw Telegram id: never shown to anyone
PSEUDONYM = "5eed5eed0123456789abcdef5eed5eed"
TEXTS = {"tent": "Our tent is flooded near the old mill", "secret": "He hit me at the pump"}
PHONE_NUMBER = "+254700111222"


def routes_of(app: web.Application) -> Iterator[tuple[str, str]]:
    """(method, canonical path) of every route of `app` and of the applications mounted in
    it; HEAD only where it is not the twin of a GET."""
    for resource in app.router.resources():
        info = resource.get_info()
        if "app" in info:
            yield from routes_of(info["app"])
            continue
        methods = {route.method for route in resource}
        for method in sorted(methods - ({"HEAD"} if "GET" in methods else set())):
            yield method, resource.canonical


# --- the dashboard --------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Who may use a route (None: anyone, signed in or not) and how to call it."""

    roles: frozenset[Role] | None
    path: str = ""  # a concrete path, "{item}" and "{broadcast}" filled from the seed
    form: dict[str, str] = field(default_factory=dict)


DASHBOARD: dict[tuple[str, str], Rule] = {
    ("GET", "/dashboard"): Rule(None),
    ("GET", "/dashboard/login"): Rule(None),
    ("POST", "/dashboard/login"): Rule(None),  # tested by signing in
    ("GET", "/dashboard/static"): Rule(None, "/dashboard/static/dashboard.css"),
    ("GET", "/dashboard/"): Rule(EVERY_ROLE),
    ("GET", "/dashboard/items"): Rule(QUEUE),
    ("GET", "/dashboard/items/{reference}"): Rule(QUEUE, "/dashboard/items/{item}"),
    ("POST", "/dashboard/items/{reference}/codes"): Rule(
        QUEUE, "/dashboard/items/{item}/codes", {"type": "request", "sector": "2"}
    ),
    ("POST", "/dashboard/items/{reference}/status"): Rule(
        QUEUE, "/dashboard/items/{item}/status", {"status": "in_review"}
    ),
    ("POST", "/dashboard/items/{reference}/reply"): Rule(
        QUEUE, "/dashboard/items/{item}/reply", {"text": "A team comes tomorrow."}
    ),
    ("GET", "/dashboard/shelters"): Rule(SHELTERS),
    ("GET", "/dashboard/broadcasts"): Rule(EVERY_ROLE),
    ("GET", "/dashboard/broadcasts/new"): Rule(OFFICERS),
    ("POST", "/dashboard/broadcasts/new"): Rule(OFFICERS, form={"add_language": "fr"}),
    ("GET", "/dashboard/broadcasts/{reference}"): Rule(
        EVERY_ROLE, "/dashboard/broadcasts/{broadcast}"
    ),
    ("GET", "/dashboard/broadcasts/{reference}/edit"): Rule(
        OFFICERS, "/dashboard/broadcasts/{broadcast}/edit"
    ),
    ("GET", "/dashboard/broadcasts/{reference}/preview"): Rule(
        OFFICERS, "/dashboard/broadcasts/{broadcast}/preview"
    ),
    ("POST", "/dashboard/broadcasts/{reference}/send"): Rule(
        OFFICERS, "/dashboard/broadcasts/{broadcast}/send", {"version": "stale"}
    ),
    ("POST", "/dashboard/broadcasts/{reference}/cancel"): Rule(
        OFFICERS, "/dashboard/broadcasts/{broadcast}/cancel"
    ),
    ("GET", "/dashboard/audit"): Rule(frozenset({ADMIN})),
    ("POST", "/dashboard/logout"): Rule(EVERY_ROLE),  # run last: it ends the session
}


@dataclass
class Site:
    client: TestClient[Any, Any]
    root: web.Application
    db: Database
    staff: dict[Role, StaffMember]
    item: str  # an ordinary item's reference
    secret: str  # a sensitive item's reference
    broadcast: str


async def seed(database: Database) -> tuple[dict[Role, StaffMember], str, str, str]:
    async with database.transaction() as session:
        staff = {role: await add_member(session, f"Staff {role.value}", role) for role in Role}
        amina = await record_consent(session, PSEUDONYM, CHAT_ID, "ar", NOW - timedelta(days=9))
        old = NOW - timedelta(days=5)
        tent = await add_item(session, amina, TEXTS["tent"], old, sectors=[2])
        secret = await add_item(session, amina, TEXTS["secret"], old, sectors=[10], sensitive=True)
        point = Place(
            external_id="DP-1",
            kind=PlaceKind.DEPARTURE_POINT,
            names={"en": "Bus station"},
            updated_by="test",
        )
        session.add(point)
        session.add(
            Shelter(
                external_id="SH-1",
                names={"en": "Riverside School"},
                latitude=1.0,
                longitude=1.0,
                status=ShelterStatus.OPEN,
                capacity=100,
                occupancy=40,
                updated_at=NOW,
                updated_by="test",
            )
        )
        await session.flush()
        session.add(
            Registration(
                contact_id=amina.id,
                reference="RG7PX2",
                status="submitted",
                adults=2,
                departure_point_id=point.id,
                phone=PHONE_NUMBER,
                consent_share=True,
                submitted_at=old,
            )
        )
        draft = await create(
            session, Draft({"en": "Water at the school"}, Audience(("alerts",))), None, NOW
        )
        return staff, tent.reference, secret.reference, draft.reference


@pytest.fixture
async def site(database: Database, settings: Settings) -> AsyncIterator[Site]:
    dashboard = Dashboard(
        database,
        b"test-deployment-key-0123456789abcdef",
        settings,
        clock=FakeClock(NOW),
        limits=ThrottleLimits(per_name=50, per_address=50),
    )
    root = web.Application()
    mount_dashboard(root, dashboard)
    staff, item, secret, broadcast = await seed(database)
    client: TestClient[Any, Any] = TestClient(TestServer(root))
    await client.start_server()
    yield Site(client, root, database, staff, item, secret, broadcast)
    await client.close()


def dashboard_table(root: web.Application) -> list[tuple[str, str, Rule]]:
    """Every route of the real dashboard with its rule; logout last."""
    found = list(routes_of(root))
    unclassified = [route for route in found if route not in DASHBOARD]
    assert not unclassified, f"classify these dashboard routes in DASHBOARD: {unclassified}"
    missing = [key for key in DASHBOARD if key not in found]
    assert not missing, f"routes in the table but not in the dashboard: {missing}"
    table = [(method, path, DASHBOARD[(method, path)]) for method, path in found]
    return sorted(table, key=lambda entry: entry[1] == "/dashboard/logout")


def concrete(site: Site, path: str, rule: Rule) -> str:
    template = rule.path or path
    return template.format(item=site.item, broadcast=site.broadcast)


def personal_data_shown(body: str, role: Role | None, site: Site) -> list[str]:
    """What `role` may not see that `body` contains."""
    found = [what for what in (str(CHAT_ID), PSEUDONYM, PHONE_NUMBER) if what in body]
    if role not in QUEUE:  # no item, no text, no pseudonym at all
        found += [t for t in (TEXTS["tent"], site.item, PSEUDONYM[:8]) if t in body]
    if role is not FOCAL:
        found += [t for t in (TEXTS["secret"], site.secret) if t in body]
    return found


async def sign_in(site: Site, role: Role) -> None:
    _, page = await fetch(site, "GET", "/dashboard/login")
    form = {"csrf": csrf_of(page), "username": str(site.staff[role].id), "password": PASSWORD}
    assert await fetch(site, "POST", "/dashboard/login", form) == (303, "/dashboard/")


@pytest.mark.parametrize("role", WHO, ids=WHO_IDS)
async def test_dashboard_routes_by_role(site: Site, role: Role | None) -> None:
    if role is not None:
        await sign_in(site, role)
    _, home = await fetch(site, "GET", "/dashboard/")
    token = csrf_of(home) if role is not None else ""
    for method, path, rule in dashboard_table(site.root):
        url = concrete(site, path, rule)
        where = f"{method} {url} as {role}"
        if rule.roles is None:
            if method == "GET":  # the login form, its CSS, /dashboard → /dashboard/
                assert (await fetch(site, method, url))[0] in (200, 302, 303), where
            continue  # signing in is the login POST
        if method == "GET":
            status, body = await fetch(site, method, url)
        else:
            status, body = await fetch(site, method, url, {"csrf": token, **rule.form})
        if role is None:
            assert status == 303 and body.startswith("/dashboard/login"), where
        elif role in rule.roles:
            assert status not in (401, 403) and status < 500, (where, status, body[:300])
            assert not body.startswith("/dashboard/login") or path == "/dashboard/logout", where
        else:
            assert status == 403, (where, status)
        if status == 200:
            assert personal_data_shown(body, role, site) == [], where
    if role is not None:
        assert (await fetch(site, "GET", "/dashboard/"))[0] == 303, "logged out at the end"


async def fetch(
    site: Site, method: str, url: str, form: dict[str, str] | None = None
) -> tuple[int, str]:
    """(status, Location of a redirect or the body)."""
    response = await site.client.request(method, url, data=form, allow_redirects=False)
    location = response.headers.get("Location", "")
    return response.status, location or await response.text()


@pytest.mark.parametrize("role", WHO, ids=WHO_IDS)
async def test_sensitive_items_only_for_the_protection_focal_point(
    site: Site, role: Role | None
) -> None:
    if role is not None:
        await sign_in(site, role)
    _, home = await fetch(site, "GET", "/dashboard/")
    token = csrf_of(home) if role is not None else ""
    page = await fetch(site, "GET", f"/dashboard/items/{site.secret}")
    queue = await fetch(site, "GET", "/dashboard/items?include_sensitive=1")
    reply = await fetch(
        site, "POST", f"/dashboard/items/{site.secret}/reply", {"csrf": token, "text": "Hello"}
    )
    if role is FOCAL:
        assert page[0] == 200 and TEXTS["secret"] in page[1]
        assert queue[0] == 200 and site.secret in queue[1]
        assert reply[0] == 303
    elif role in QUEUE:  # admin, responder: as if it did not exist
        assert page[0] == 404 and TEXTS["secret"] not in page[1]
        assert queue[0] == 200 and site.secret not in queue[1] and site.item in queue[1]
        assert reply[0] == 404
    elif role is None:
        assert {page[0], queue[0], reply[0]} == {303}
    else:
        assert (page[0], queue[0], reply[0]) == (403, 403, 403)
    async with site.db.transaction() as session:
        item = await session.scalar(
            select(FeedbackItem).where(FeedbackItem.reference == site.secret)
        )
        assert item is not None and item.status == ("in_review" if role is FOCAL else "new")


# --- the staff API --------------------------------------------------------------------------

ITEMS = frozenset({ADMIN, RESPONDER, FOCAL})
# Admins may do everything on the API except see sensitive items (include_sensitive below).
API: dict[tuple[str, str], Rule] = {
    ("GET", "/api/shelters"): Rule(EVERY_ROLE),
    ("GET", "/api/shelters/{external_id}"): Rule(EVERY_ROLE, "/api/shelters/SH-1"),
    ("PATCH", "/api/shelters/{external_id}"): Rule(OFFICERS, "/api/shelters/SH-1"),
    ("GET", "/api/registrations/summary"): Rule(EVERY_ROLE),
    ("GET", "/api/manifests/{filename}"): Rule(OFFICERS, "/api/manifests/DP-1.csv"),
    ("GET", "/api/aggregates"): Rule(EVERY_ROLE, "/api/aggregates?days=30"),
    ("GET", "/api/aggregates.csv"): Rule(EVERY_ROLE),
    ("GET", "/api/items.csv"): Rule(ITEMS),
    ("GET", "/api/items.xlsx"): Rule(ITEMS),
    ("*", "/api/{tail}"): Rule(EVERY_ROLE, "/api/no-such-thing"),  # 404 for staff
}
API_KEY = b"staff-api-roles-key-0123456789abcdef"


@dataclass
class Api:
    client: TestClient[Any, Any]
    root: web.Application
    db: Database
    tokens: dict[Role, str]
    item: str
    secret: str


@pytest.fixture
async def api(database: Database, settings: Settings) -> AsyncIterator[Api]:
    root = web.Application()
    mount_staff_api(root, StaffApi(database, API_KEY, settings))
    staff, item, secret, _ = await seed(database)
    tokens = {
        role: issue_token(API_KEY, member, days=1, now=utcnow()).token
        for role, member in staff.items()
    }
    async with TestClient(TestServer(root)) as client:
        yield Api(client, root, database, tokens, item, secret)


async def call(api: Api, role: Role | None, method: str, url: str) -> tuple[int, bytes]:
    headers = {} if role is None else {"Authorization": f"Bearer {api.tokens[role]}"}
    body: dict[str, Any] | None = {} if method == "PATCH" else None  # PATCH {}: confirmed
    response = await api.client.request(method, url, headers=headers, json=body)
    return response.status, await response.read()


@pytest.mark.parametrize("role", WHO, ids=WHO_IDS)
async def test_staff_api_routes_by_role(api: Api, role: Role | None) -> None:
    found = list(routes_of(api.root))
    unclassified = [route for route in found if route not in API]
    assert not unclassified, f"classify these staff API routes in API: {unclassified}"
    assert sorted(API) == sorted(found), "every route in the table is served"
    for method, path in found:
        rule = API[(method, path)]
        url = rule.path or path
        status, body = await call(api, role, "GET" if method == "*" else method, url)
        where = f"{method} {url} as {role}"
        assert rule.roles is not None
        if role is None:
            assert status == 401, where
        elif path == "/api/{tail}":
            assert status == 404, where
        elif role in rule.roles:
            assert status == 200, (where, body[:200])
        else:
            assert status == 403, (where, status)
        text = body.decode("utf-8", errors="replace") if status == 200 else ""
        shown = [t for t in (str(CHAT_ID), TEXTS["secret"], api.secret) if t in text]
        if role not in ITEMS:  # aggregates only: no item, text or pseudonym
            shown += [t for t in (TEXTS["tent"], api.item, PSEUDONYM[:8]) if t in text]
        if path != "/api/manifests/{filename}":  # a manifest is for the transport partner
            shown += [PHONE_NUMBER] if PHONE_NUMBER in text else []
        assert shown == [], where


@pytest.mark.parametrize("role", WHO, ids=WHO_IDS)
async def test_sensitive_exports_only_for_the_protection_focal_point(
    api: Api, role: Role | None
) -> None:
    for url in ("/api/items.csv?include_sensitive=1", "/api/items.xlsx?include_sensitive=1"):
        status, body = await call(api, role, "GET", url)
        expected = {None: 401, FOCAL: 200}.get(role, 403)
        assert status == expected, (url, role)
    status, body = await call(api, role, "GET", "/api/items.csv?include_sensitive=1")
    assert (TEXTS["secret"] in body.decode("utf-8", errors="replace")) == (role is FOCAL)


# --- Telegram commands ----------------------------------------------------------------------

# Commands for everyone. Staff commands: the roles allowed (admins pass every staff check).
PUBLIC_COMMANDS = {
    "start",
    "menu",
    "help",
    "language",
    "subscriptions",
    "myregistration",
    "cancel",
    "privacy",
    "mydata",
    "delete",
}
STAFF_COMMANDS: dict[str, frozenset[Role]] = {
    "whoami": EVERY_ROLE,
    "stafflist": frozenset({ADMIN}),
    "item": QUEUE,
    "reply": QUEUE,
    "status": QUEUE,
    "codes": QUEUE,
    "registrations": EVERY_ROLE,
    "manifest": OFFICERS,
    "shelters": OFFICERS,
    "broadcasts": EVERY_ROLE,
    "broadcast_report": EVERY_ROLE,
    "broadcast_cancel": OFFICERS,
    "broadcast": OFFICERS,  # starts a wizard: sent last
}
MADE_UP = "/teleport"


def commands_of(handlers: list[BaseHandler[Any, Any, Any]]) -> Iterator[str]:
    for handler in handlers:
        if isinstance(handler, CommandHandler):
            yield from handler.commands
        elif isinstance(handler, ConversationHandler):
            yield from commands_of(list(handler.entry_points))
            for state in handler.states.values():
                yield from commands_of(list(state))
            yield from commands_of(list(handler.fallbacks))


def registered_commands(application: BotApplication) -> set[str]:
    return {name for handlers in application.handlers.values() for name in commands_of(handlers)}


async def answers_to(phone: Phone, command: str, unknown: str) -> list[ChatMessage]:
    """Everything the bot answers to `command`: the made-up command sent after it marks the
    end (updates are handled one at a time, so its answer comes last)."""
    await phone.api.send_text(phone.user_id, command)
    await phone.api.send_text(phone.user_id, MADE_UP)
    answers = [await phone.next_message()]
    while answers[-1].text != unknown or len(answers) == 1:
        answers.append(await phone.next_message())
    return answers[:-1]


async def link(phone: Phone, bot: RunningBot, role: Role) -> str:
    """Add a staff member with `role` and link `phone` to them; the code used."""
    async with bot.services.db.transaction() as session:
        code = (await add_staff(session, f"Staff {role.value}", role, bot.services.clock())).code
    linked = await phone.send(code)
    assert linked.text == f"Linked: Staff {role.value}, role {role.value}. Send /whoami to check."
    return code


@pytest.mark.settings(FLOOD_UPDATES="1000")  # one person sends every command in a few seconds
@pytest.mark.parametrize("role", WHO, ids=WHO_IDS)
async def test_telegram_commands_by_role(
    bot_api: LoopbackBotApi, running_bot: RunningBot, role: Role | None
) -> None:
    found = registered_commands(running_bot.application)
    known = PUBLIC_COMMANDS | set(STAFF_COMMANDS)
    assert found - known == set(), "classify these commands in PUBLIC_COMMANDS or STAFF_COMMANDS"
    assert (PUBLIC_COMMANDS | set(STAFF_COMMANDS)) - found == set(), "listed but not registered"

    phone = Phone.of(bot_api, first_name="Sam", language_code="en")
    unknown = (await phone.send(MADE_UP)).text or ""
    assert unknown == "Sorry, I do not know that command. Send /help to see what I can do."
    if role is not None:
        await link(phone, running_bot, role)
    for command in sorted(PUBLIC_COMMANDS):
        answers = await answers_to(phone, f"/{command}", unknown)
        assert answers and answers[0].text != unknown, (command, role)
    staff_commands = [c for c in STAFF_COMMANDS if c in found]  # the wizard last
    for command in staff_commands:
        answers = await answers_to(phone, f"/{command}", unknown)
        texts = [answer.text or "" for answer in answers]
        if role in STAFF_COMMANDS[command]:
            assert answers and texts[0] != unknown, (command, role, texts)
        else:
            assert texts == [unknown], (command, role, texts)
    if role is not None:
        assert (await phone.send("/whoami")).text == f"Staff {role.value} · {role.value}"

    # A sensitive item: the focal point reads it; admins and responders are told it does not
    # exist; anyone else does not even learn that the command exists.
    async with running_bot.services.db.transaction() as session:
        amina = await record_consent(session, PSEUDONYM, CHAT_ID, "en", NOW)
        secret = await add_item(session, amina, TEXTS["secret"], NOW, sensitive=True)
    for command in (f"/item {secret.reference}", f"/reply {secret.reference} Are you safe?"):
        texts = [answer.text or "" for answer in await answers_to(phone, command, unknown)]
        if role is FOCAL:
            assert texts and not texts[0].startswith("No item"), (command, texts)
            assert TEXTS["secret"] in texts[0] or command.startswith("/reply")
        elif role in QUEUE:
            assert len(texts) == 1 and texts[0].startswith(f"No item {secret.reference}")
        else:
            assert texts == [unknown], (command, role)
        assert all(TEXTS["secret"] not in text for text in texts) or role is FOCAL


@pytest.mark.settings(FLOOD_UPDATES="1000")
@pytest.mark.parametrize("role", WHO, ids=WHO_IDS)
async def test_forged_staff_buttons_by_role(
    bot_api: LoopbackBotApi, running_bot: RunningBot, role: Role | None
) -> None:
    """Buttons carry their action in their data, and a modified client can send any data:
    the shelter update and manifest buttons check the role like the commands do."""
    async with running_bot.services.db.transaction() as session:
        shelter = Shelter(
            external_id="SH-9",
            names={"en": "Hill School"},
            latitude=1.0,
            longitude=1.0,
            status=ShelterStatus.OPEN,
            updated_at=NOW,
            updated_by="test",
        )
        session.add(shelter)
        await session.flush()
        shelter_id = shelter.id
    phone = Phone.of(bot_api, first_name="Sam", language_code="en")
    unknown = (await phone.send(MADE_UP)).text or ""
    if role is not None:
        await link(phone, running_bot, role)
    # Any message of the bot's carries a forged tap; /help (one message) marks the end.
    help_message = await phone.send("/help")
    help_text = help_message.text
    for data in (f"shu:s:{shelter_id}:closed", "mf:unassigned"):
        await phone.press_data(help_message.message_id, data)
        await phone.api.send_text(phone.user_id, "/help")
        answers = [await phone.next_message()]
        while answers[-1].text != help_text:
            answers.append(await phone.next_message())
        texts = [answer.text for answer in answers[:-1]]
        documents = [answer for answer in answers if answer.document is not None]
        if role in OFFICERS:
            assert data.startswith("shu") or len(documents) == 2, (data, role, texts)
        else:
            assert texts == [unknown] and documents == [], (data, role, texts)
    async with running_bot.services.db.transaction() as session:
        stored = await session.get(Shelter, shelter_id)
        assert stored is not None
        assert stored.status == ("closed" if role in OFFICERS else "open"), role


# --- linking a Telegram account -------------------------------------------------------------
# tests/test_staff.py: a code links once, expires after 24 hours, an unknown one fails;
# tests/test_e2e_staff.py: the same person cannot use it twice. Here: what is stored, the
# exact boundary, a deactivated member, and a used or expired code in someone else's hands.


async def test_a_link_code_is_kept_only_as_a_hash_and_ends_at_its_expiry(
    database: Database,
) -> None:
    async with database.transaction() as session:
        issued = await add_staff(session, "Rana", RESPONDER, NOW)
        member = await session.get(StaffMember, issued.staff_id)
        assert member is not None
        second = await issue_code(session, member, NOW)
    async with database.transaction() as session:
        stored = [link.code_hash for link in await session.scalars(select(LinkCode))]
    assert len(stored) == 2 and issued.code not in stored and second.code not in stored
    assert not any(issued.code.replace("-", "") in value.upper() for value in stored)
    async with database.transaction() as session:
        at_expiry = issued.expires_at
        assert await redeem_code(session, issued.code, "p1", at_expiry) is None, "not at 24 h"
        just_before = at_expiry - timedelta(seconds=1)
        linked = await redeem_code(session, second.code, "p1", just_before)
        assert linked is not None and linked.telegram_pseudonym == "p1"
    async with database.transaction() as session:
        gone = await add_staff(session, "Left", VIEWER, NOW)
        left = await session.get(StaffMember, gone.staff_id)
        assert left is not None
        left.active = False
    async with database.transaction() as session:
        assert await redeem_code(session, gone.code, "p2", NOW) is None, "deactivated"


@pytest.mark.settings(FLOOD_UPDATES="1000")
async def test_a_used_or_expired_code_links_nobody_else(
    bot_api: LoopbackBotApi, running_bot: RunningBot
) -> None:
    services = running_bot.services
    owner = Phone.of(bot_api, first_name="Rana", language_code="en")
    code = await link(owner, running_bot, RESPONDER)
    async with services.db.transaction() as session:
        [used] = list(await session.scalars(select(LinkCode)))
        member = await session.get(StaffMember, used.staff_id)
        assert member is not None and used.used_at is not None
        fresh = await issue_code(session, member, services.clock())
    stranger = Phone.of(bot_api, first_name="Eve", language_code="en")
    unknown = (await stranger.send(MADE_UP)).text
    assert "not valid" in ((await stranger.send(code)).text or ""), "used once already"
    # Expired: the bot's clock a day and a minute later.
    later = replace(services, clock=lambda: services.clock() + timedelta(hours=24, minutes=1))
    install(running_bot.application.bot_data, later)
    expired = await stranger.send(fresh.code)
    assert "not valid" in (expired.text or "")
    install(running_bot.application.bot_data, services)
    assert (await stranger.send("/whoami")).text == unknown
    assert (await owner.send("/whoami")).text == f"Staff {RESPONDER.value} · {RESPONDER.value}"
