"""Broadcasts on the dashboard through aiohttp's test client: who may do what, CSRF, the
compose form round trip (languages added and removed, errors keeping what was typed, the
document), the preview's counts, sending exactly once, the report and cancelling."""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.dashboard import Dashboard, mount_dashboard
from bot.dashboard import broadcasts as pages
from bot.dashboard.auth import ThrottleLimits
from evacuation.registrations import Registration
from messages.broadcasts import Audience, Broadcast, Draft, create
from messages.contacts import Contact, Subscription, record_consent
from messages.outbox import OutboxMessage, OutboxState
from messages.places import Place, PlaceKind
from staff.models import Role
from storage.database import Database
from storage.references import spoken
from tests.clock import FakeClock
from tests.test_dashboard import NOW, Site, add_member, csrf_of, get, login_as

NEW = "/dashboard/broadcasts/new"
READERS = tuple(Role)  # counts and the texts sent: every staff role
COMPOSERS = (Role.ADMIN, Role.COMMUNICATIONS_OFFICER)
ENGLISH = "The shelter at the school closes tonight. Go to the stadium."
ARABIC = "يغلق الملجأ في المدرسة الليلة. توجهوا إلى الملعب."

Fields = list[tuple[str, str]]


class FormFields(HTMLParser):
    """The fields a browser would send for the compose form, as the page shows them."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: Fields = []
        self._in_form = False
        self._textarea: str | None = None
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("action", "").endswith("/broadcasts/new"):
            self._in_form = True
        if not self._in_form:
            return
        if tag == "input" and "name" in a:
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if kind not in ("file", "submit"):
                self.fields.append((a["name"], a.get("value", "")))
        elif tag == "textarea":
            self._textarea = a["name"]
            self.fields.append((a["name"], ""))
        elif tag == "select":
            self._select, self._options = a["name"], []
        elif tag == "option" and self._select:
            self._options.append((a.get("value", ""), "selected" in a))

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            name, text = self.fields[-1]
            self.fields[-1] = (name, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select" and self._select:
            chosen = [v for v, selected in self._options if selected] or [self._options[0][0]]
            self.fields.append((self._select, chosen[0]))
            self._select = None


def form_fields(html: str) -> Fields:
    reader = FormFields()
    reader.feed(html)
    return reader.fields


def value(fields: Fields, name: str) -> str:
    [found] = [v for k, v in fields if k == name]
    return found


def values(fields: Fields, name: str) -> list[str]:
    return [v for k, v in fields if k == name]


def setting(fields: Fields, name: str, new: str) -> Fields:
    """The fields with `name` (added if missing) set to `new`."""
    kept = [(k, v) for k, v in fields if k != name]
    return [*kept, (name, new)]


async def submit(
    site: Site,
    fields: Fields,
    press: tuple[str, str] = ("action", "preview"),
    *,
    document: tuple[str, bytes] | None = None,
    multipart: bool = True,
) -> tuple[int, str]:
    """Post the compose form as a browser does after pressing the button `press`."""
    data = FormData(default_to_multipart=multipart)
    for name, text in [*fields, press]:
        data.add_field(name, text)
    if document is not None:
        filename, content = document
        data.add_field("document", content, filename=filename, content_type="application/pdf")
    elif multipart:
        data.add_field("document", b"", filename="", content_type="application/octet-stream")
    response = await site.client.post(NEW, data=data, allow_redirects=False)
    return response.status, response.headers.get("Location", "") or await response.text()


async def new_form(site: Site) -> Fields:
    status, html = await get(site, NEW)
    assert status == 200, html
    return form_fields(html)


async def compose(site: Site, **texts: str) -> Fields:
    """The new form with a text in each language given, added in that order."""
    fields = await new_form(site)
    for code in texts:
        if code != "en":
            _, html = await submit(site, setting(fields, "add_language", code), ("action", "add"))
            fields = form_fields(html)
    for code, text in texts.items():
        fields = setting(fields, f"text-{code}", text)
    return fields


async def preview_of(site: Site, fields: Fields, **extra: Any) -> tuple[str, str]:
    """Preview: (reference, the preview page)."""
    status, location = await submit(site, fields, **extra)
    assert status == 303, location
    match = re.fullmatch(r"/dashboard/broadcasts/([A-Z0-9]+)/preview", location)
    assert match, location
    status, html = await get(site, location)
    assert status == 200, html
    return match.group(1), html


async def send(site: Site, reference: str, html: str) -> tuple[int, str]:
    """Press Send on the preview page `html`."""
    version = re.search(r'name="version" value="([^"]+)"', html)
    assert version, "the preview has a Send form"
    response = await site.client.post(
        f"/dashboard/broadcasts/{reference}/send",
        data={"csrf": csrf_of(html), "version": version.group(1)},
        allow_redirects=False,
    )
    return response.status, response.headers.get("Location", "") or await response.text()


async def stored(site: Site, reference: str) -> Broadcast:
    async with site.db.transaction() as session:
        broadcast = await session.scalar(select(Broadcast).where(Broadcast.reference == reference))
        assert broadcast is not None
        return broadcast


async def count(site: Site, model: Any, *where: Any) -> int:
    async with site.db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def table_rows(html: str, table_class: str) -> list[list[str]]:
    """The cells' text of each body row of the table with that class."""
    start = html.index(f'class="{table_class}"')
    body = html[html.index("<tbody>", start) : html.index("</tbody>", start)]
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


# --- the people and places --------------------------------------------------------------


async def person(
    session: AsyncSession,
    name: str,
    language: str | None,
    subscriptions: dict[str, str | None],
    *,
    consent: bool = True,
    unreachable: bool = False,
) -> Contact:
    chat_id = 700_000 + zlib.crc32(name.encode()) % 100_000
    contact = await record_consent(session, f"pseudo-{name}", chat_id, language, NOW)
    if not consent:
        contact.consent_at = None
    if unreachable:
        contact.unreachable_at = NOW
    for topic, area in subscriptions.items():
        session.add(Subscription(contact_id=contact.id, topic=topic, area=area))
    await session.flush()
    return contact


async def seed(session: AsyncSession, site: Site) -> dict[str, int]:
    for role in Role:
        site.staff[role] = await add_member(session, f"Staff {role.value}", role)
    for code, name in (("LB-NA", "North"), ("LB-SO", "South")):
        session.add(
            Place(
                external_id=code,
                kind=PlaceKind.ADM1,
                names={"en": name},
                adm1_code=code,
                adm1_name=name,
                updated_by="test",
            )
        )
    point = Place(
        external_id="DP-1",
        kind=PlaceKind.DEPARTURE_POINT,
        names={"en": "Bus station"},
        adm1_code="LB-NA",
        adm1_name="North",
        updated_by="test",
    )
    session.add(point)
    await session.flush()
    await person(session, "en1", "en", {"alerts": None})
    await person(session, "en2", "en", {"alerts": "LB-SO"})
    await person(session, "ar1", "ar", {"alerts": None})
    ar2 = await person(session, "ar2", "ar", {"alerts": "LB-NA", "evacuation": "LB-NA"})
    session.add(Registration(contact_id=ar2.id, status="submitted", departure_point_id=point.id))
    await person(session, "ps1", "ps", {"alerts": None})
    await person(session, "fr1", "fr", {"shelter": None})
    await person(session, "no-consent", "ar", {"alerts": None}, consent=False)
    await person(session, "blocked", "en", {"alerts": None}, unreachable=True)
    return {"point": point.id}


@pytest.fixture
async def site(database: Database, settings: Settings) -> AsyncIterator[Site]:
    clock = FakeClock(NOW)
    dashboard = Dashboard(
        database, b"test-deployment-key-0123456789abcdef", settings, clock=clock,
        limits=ThrottleLimits(per_name=50, per_address=50),
    )  # fmt: skip
    root = web.Application()
    mount_dashboard(root, dashboard)
    client: TestClient[Any, Any] = TestClient(TestServer(root))
    await client.start_server()
    result = Site(client, dashboard, database, clock)
    async with database.transaction() as session:
        await seed(session, result)
    yield result
    await client.close()


async def point_id(site: Site) -> int:
    async with site.db.transaction() as session:
        found = await session.scalar(select(Place.id).where(Place.external_id == "DP-1"))
        assert found is not None
        return found


# --- roles and CSRF ------------------------------------------------------------------------


async def test_who_may_read_compose_send_and_cancel(site: Site) -> None:
    async with site.db.transaction() as session:
        draft = Draft({"en": ENGLISH}, Audience(("alerts",)))
        reference = (await create(session, draft, None, NOW)).reference
    pages_for_readers = ["/dashboard/broadcasts", f"/dashboard/broadcasts/{reference}"]
    pages_for_composers = [NEW, f"/dashboard/broadcasts/{reference}/edit"]
    pages_for_composers.append(f"/dashboard/broadcasts/{reference}/preview")
    posts = [NEW, f"/dashboard/broadcasts/{reference}/send"]
    posts.append(f"/dashboard/broadcasts/{reference}/cancel")

    # Not logged in: to the login page, as everywhere in the dashboard.
    for path in pages_for_readers + pages_for_composers:
        status, location = await get(site, path)
        assert status == 303 and location.startswith("/dashboard/login?next="), path
    for path in posts:
        response = await site.client.post(path, data={"x": "1"}, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"] == "/dashboard/login"

    for role in Role:
        await login_as(site, role)
        _, overview = await get(site, "/dashboard/")
        assert ('href="/dashboard/broadcasts"' in overview) == (role in READERS), role
        for path in pages_for_readers:
            status, html = await get(site, path)
            assert status == (200 if role in READERS else 403), (role, path)
        for path in pages_for_composers:
            status, html = await get(site, path)
            assert status == (200 if role in COMPOSERS else 403), (role, path)
            if status == 403:
                assert "may not see this page" in html
        _, report_page = await get(site, f"/dashboard/broadcasts/{reference}")
        cancel_button = "Discard the draft" in report_page
        assert cancel_button == (role in COMPOSERS), role
        if role not in COMPOSERS:
            # Refused before the form is even read: no CSRF token needed to be turned away.
            for path in posts:
                response = await site.client.post(path, data={"x": "1"}, allow_redirects=False)
                assert response.status == 403, (role, path)
    assert (await stored(site, reference)).status == "draft"
    assert await count(site, Broadcast) == 1


async def test_every_post_needs_the_csrf_token(site: Site) -> None:
    await login_as(site, Role.COMMUNICATIONS_OFFICER)
    fields = setting(await compose(site, en=ENGLISH), "topic", "alerts")
    forged = setting(fields, "csrf", "0" * 64)
    assert (await submit(site, forged))[0] == 403
    assert (await submit(site, [(k, v) for k, v in fields if k != "csrf"]))[0] == 403
    assert await count(site, Broadcast) == 0, "nothing stored by a forged post"

    reference, _ = await preview_of(site, fields)
    for path in ("send", "cancel"):
        response = await site.client.post(
            f"/dashboard/broadcasts/{reference}/{path}",
            data={"csrf": "forged", "version": "x"},
            allow_redirects=False,
        )
        assert response.status == 403
        assert "The form is out of date" in await response.text()
    assert (await stored(site, reference)).status == "draft"
    assert await count(site, OutboxMessage) == 0


# --- the compose form ----------------------------------------------------------------------


async def test_languages_are_added_and_removed_keeping_what_was_typed(site: Site) -> None:
    await login_as(site, Role.COMMUNICATIONS_OFFICER)
    fields = await new_form(site)
    assert values(fields, "shown") == ["en"], "the deployment's default language first"
    fields = setting(fields, "text-en", ENGLISH)
    fields += [("topic", "alerts"), ("topic", "evacuation"), ("area", "LB-NA")]
    fields = setting(setting(fields, "priority", "emergency"), "latitude", "33.89")
    fields = setting(fields, "longitude", "35.5")

    status, html = await submit(site, setting(fields, "add_language", "ar"), ("action", "add"))
    assert status == 200, html
    again = form_fields(html)
    assert values(again, "shown") == ["en", "ar"]
    assert value(again, "text-en") == ENGLISH and value(again, "text-ar") == ""
    assert 'id="text-ar" name="text-ar" rows="6" lang="ar" dir="rtl"' in html
    assert 'id="text-en" name="text-en" rows="6" lang="en" dir="ltr"' in html
    assert values(again, "topic") == ["alerts", "evacuation"]
    assert values(again, "area") == ["LB-NA"] and value(again, "priority") == "emergency"
    assert (value(again, "latitude"), value(again, "longitude")) == ("33.89", "35.5")
    assert '<option value="ar">' not in html, "Arabic cannot be added twice"

    # Type Arabic, add French, then remove English: the others stay as typed.
    again = setting(again, "text-ar", ARABIC)
    status, html = await submit(site, setting(again, "add_language", "fr"), ("action", "add"))
    again = form_fields(html)
    assert values(again, "shown") == ["en", "ar", "fr"] and value(again, "text-ar") == ARABIC
    status, html = await submit(site, setting(again, "text-fr", "Ferme ce soir."), ("remove", "en"))
    assert status == 200
    again = form_fields(html)
    assert values(again, "shown") == ["ar", "fr"]
    assert value(again, "text-ar") == ARABIC and value(again, "text-fr") == "Ferme ce soir."
    assert "text-en" not in dict(again) and '<option value="en">' in html
    assert await count(site, Broadcast) == 0, "adding languages stores nothing"


async def test_a_form_that_cannot_be_read_comes_back_as_typed(site: Site) -> None:
    await login_as(site, Role.COMMUNICATIONS_OFFICER)
    fields = await compose(site, en=ENGLISH, ar=ARABIC)
    fields += [("topic", "shelter"), ("language", "ar"), ("point", str(await point_id(site)))]
    fields = setting(setting(fields, "latitude", "north of the river"), "longitude", "35.5")
    fields = setting(setting(fields, "when", "later"), "send_at", "")
    status, html = await submit(site, fields)
    assert status == 400
    assert "Latitude and longitude are decimal numbers" in html
    assert "Choose the date and time to send at" in html
    assert sorted(form_fields(html)) == sorted(fields), "everything as it was typed"

    for bad, message in (
        ({"latitude": "33.9", "longitude": ""}, "Give both the latitude and the longitude"),
        ({"latitude": "nan", "longitude": "1"}, "decimal numbers"),
        ({"when": "later", "send_at": "tomorrow"}, "is not a date and time"),
        ({"when": "later", "send_at": "2026-05-09T12:00"}, "The time to send at has passed"),
        ({"priority": "urgent"}, "Priority is normal or emergency"),
        ({"area": "XX-99"}, "Unknown area: XX-99"),
        ({"point": "999"}, "departure points does not exist"),
    ):
        typed = setting(setting(fields, "latitude", ""), "longitude", "")
        typed = setting(setting(typed, "when", "now"), "send_at", "")
        for name, text in bad.items():
            typed = setting(typed, name, text)
        status, html = await submit(site, typed)
        assert status == 400 and message in html, bad
        assert value(form_fields(html), "text-ar") == ARABIC
    assert await count(site, Broadcast) == 0


async def test_problems_show_on_the_preview_with_only_back_to_edit(site: Site) -> None:
    await login_as(site, Role.COMMUNICATIONS_OFFICER)
    fields = await compose(site, en="", ar=ARABIC)  # no topic, English left empty
    fields = setting(setting(fields, "latitude", "95"), "longitude", "35.5")
    reference, html = await preview_of(site, fields)
    assert "Choose at least one topic." in html
    assert "The location is not a valid latitude and longitude." in html
    assert "/send" not in html and f"/dashboard/broadcasts/{reference}/edit" in html
    status, html = await get(site, f"/dashboard/broadcasts/{reference}/edit")
    assert status == 200
    back = form_fields(html)
    assert value(back, "draft") == reference and value(back, "text-ar") == ARABIC
    assert value(back, "latitude") == "95.0" and values(back, "topic") == []
    # Fix it: the same draft is updated, not a second one made.
    fixed = [*setting(setting(back, "latitude", ""), "longitude", ""), ("topic", "alerts")]
    again, html = await preview_of(site, fixed)
    assert again == reference and await count(site, Broadcast) == 1
    assert "cannot be sent yet" not in html and 'class="send"' in html


async def test_the_preview_counts_recipients_per_language(site: Site) -> None:
    await login_as(site, Role.ADMIN)
    fields = setting(await compose(site, en=ENGLISH, ar=ARABIC), "topic", "alerts")
    reference, html = await preview_of(site, fields)
    # en1, en2, ar1, ar2, ps1: not fr1 (another topic), nor the unconsented or blocked.
    assert '<p class="big total"><strong>5</strong> people</p>' in html
    rows = table_rows(html, "preview-counts")
    assert rows == [
        ["Arabic (ar)", "2", "Arabic (ar)"],
        ["English (en)", "2", "English (en)"],
        ["Pashto (ps)", "1", "English (en) fallback with a note"],
    ]
    assert f'lang="ar" dir="rtl">{ARABIC}</blockquote>' in html
    assert "Quiet hours" not in html

    # The audience narrowed by area, by language, by departure point.
    back = form_fields((await get(site, f"/dashboard/broadcasts/{reference}/edit"))[1])
    _, html = await preview_of(site, setting(back, "area", "LB-NA"))
    assert "<strong>4</strong>" in html, "en1, ar1 and ps1 everywhere, ar2 in the north"
    _, html = await preview_of(site, setting(back, "language", "ar"))
    assert (
        "<strong>2</strong>" in html and table_rows(html, "preview-counts")[0][0] == "Arabic (ar)"
    )
    point = setting(setting(back, "topic", "evacuation"), "point", str(await point_id(site)))
    _, html = await preview_of(site, point)
    assert "<strong>1</strong> person" in html and "Bus station (North)" in html
    assert await count(site, Broadcast) == 1, "every preview updated the one draft"
    assert await count(site, OutboxMessage) == 0, "a preview queues nothing"


@pytest.mark.settings(QUIET_HOURS="22:00-07:00", TIMEZONE="Asia/Beirut")
async def test_quiet_hours_and_the_time_to_send_at_are_local(site: Site) -> None:
    site.clock.now = datetime(2026, 5, 10, 20, 30, tzinfo=UTC)  # 23:30 in Beirut (UTC+3)
    await login_as(site, Role.COMMUNICATIONS_OFFICER)
    fields = setting(await compose(site, en=ENGLISH), "topic", "alerts")
    _, html = await get(site, NEW)
    assert "waits for the end of quiet hours (22:00–07:00)" in html
    reference, html = await preview_of(site, fields)
    assert "this normal broadcast is held until 2026-05-11 07:00" in html
    fields = setting(fields, "draft", reference)
    _, html = await preview_of(site, setting(fields, "priority", "emergency"))
    assert "held until" not in html, "emergencies break quiet hours"

    later = setting(setting(fields, "when", "later"), "send_at", "2026-05-11T09:30")
    _, html = await preview_of(site, later)
    assert "held until" not in html and "2026-05-11 09:30 (Asia/Beirut)" in html
    assert (await stored(site, reference)).send_at == datetime(2026, 5, 11, 6, 30, tzinfo=UTC)
    status, location = await send(site, reference, html)
    assert (status, location) == (303, f"/dashboard/broadcasts/{reference}?done=scheduled")
    async with site.db.transaction() as session:
        due = set(await session.scalars(select(OutboxMessage.not_before)))
    assert due == {datetime(2026, 5, 11, 6, 30, tzinfo=UTC)}


# --- sending, the report, cancelling ------------------------------------------------------


async def test_send_queues_once_whatever_is_pressed_twice(site: Site) -> None:
    await login_as(site, Role.COMMUNICATIONS_OFFICER)
    fields = setting(await compose(site, en=ENGLISH, ar=ARABIC), "topic", "alerts")
    reference, html = await preview_of(site, fields)

    # Two presses at once, then one more later (the back button): one enqueue.
    first, second = await asyncio.gather(send(site, reference, html), send(site, reference, html))
    assert sorted([first, second]) == [
        (303, f"/dashboard/broadcasts/{reference}?done=already"),
        (303, f"/dashboard/broadcasts/{reference}?done=sent"),
    ]
    assert await send(site, reference, html) == (
        303,
        f"/dashboard/broadcasts/{reference}?done=already",
    )
    assert await count(site, OutboxMessage) == 5
    broadcast = await stored(site, reference)
    assert (broadcast.status, broadcast.recipients) == ("scheduled", 5)
    assert broadcast.created_by == site.staff[Role.COMMUNICATIONS_OFFICER].id

    # The sent draft can no longer be edited or previewed; the old form makes a new draft.
    status, location = await get(site, f"/dashboard/broadcasts/{reference}/edit")
    assert (status, location) == (303, f"/dashboard/broadcasts/{reference}?done=already")
    status, html = await submit(site, setting(fields, "draft", reference))
    assert status == 400 and "was sent or cancelled meanwhile" in html
    assert value(form_fields(html), "draft") == ""

    status, html = await get(site, f"/dashboard/broadcasts/{reference}?done=sent")
    assert "Broadcast queued" in html
    assert re.search(r'id="count-recipients">5<', html) and re.search(r'id="count-queued">5<', html)


async def test_a_preview_edited_since_is_shown_again_not_sent(site: Site) -> None:
    await login_as(site, Role.COMMUNICATIONS_OFFICER)
    fields = setting(await compose(site, en=ENGLISH), "topic", "alerts")
    reference, old_tab = await preview_of(site, fields)
    edited = setting(setting(fields, "draft", reference), "text-en", "Changed: stay home.")
    _, new_tab = await preview_of(site, edited)
    assert await send(site, reference, old_tab) == (
        303,
        f"/dashboard/broadcasts/{reference}/preview?done=changed",
    )
    assert (await stored(site, reference)).status == "draft"
    assert await count(site, OutboxMessage) == 0
    status, _ = await send(site, reference, new_tab)
    assert status == 303 and (await stored(site, reference)).texts == {"en": "Changed: stay home."}
    # Arabic speakers get the English text too, with the note: 5 in all.
    assert await count(site, OutboxMessage) == 5
    assert await count(site, OutboxMessage, OutboxMessage.language == "ar") == 2


async def test_the_report_and_the_list_count_what_happened(site: Site) -> None:
    await login_as(site, Role.COMMUNICATIONS_OFFICER)
    fields = setting(await compose(site, en=ENGLISH, ar=ARABIC), "topic", "alerts")
    reference, html = await preview_of(site, setting(fields, "priority", "emergency"))
    await send(site, reference, html)
    async with site.db.transaction() as session:
        rows = list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        for row, state in zip(rows, ("sent", "sent", "sent", "failed", "blocked"), strict=True):
            row.state = state
        for n, row in enumerate(rows[:3]):
            row.sent_at = NOW + timedelta(seconds=n)
        rows[3].error = "uncertain"
        broadcast = await session.scalar(select(Broadcast).where(Broadcast.reference == reference))
        assert broadcast is not None
        broadcast.status, broadcast.started_at = "finished", NOW
        broadcast.finished_at = NOW + timedelta(seconds=2)

    await login_as(site, Role.VIEWER)
    status, html = await get(site, f"/dashboard/broadcasts/{reference}")
    assert status == 200
    for name, number in (("sent", 3), ("failed", 1), ("blocked", 1), ("queued", 0)):
        assert re.search(rf'id="count-{name}">{number}\b', html), name
    assert "1 uncertain: one copy or none" in html
    assert "1.0 messages per second" in html and "2026-05-10 12:00" in html
    assert f'lang="ar" dir="rtl">{ARABIC}</blockquote>' in html
    assert "Staff communications_officer" in html and "emergency" in html
    assert "Cancel the broadcast" not in html, "finished, and a viewer"

    status, html = await get(site, "/dashboard/broadcasts")
    [listed] = table_rows(html, "broadcast-list")
    assert listed[0] == spoken(reference) and listed[2:] == [
        "finished",
        "emergency",
        "📢 General alerts",
        "5",
        "3",
        "1",
        "1",
    ]


async def test_an_officer_cancels_a_broadcast_in_progress(site: Site) -> None:
    await login_as(site, Role.COMMUNICATIONS_OFFICER)
    fields = setting(await compose(site, en=ENGLISH), "topic", "alerts")
    reference, html = await preview_of(site, fields)
    await send(site, reference, html)
    async with site.db.transaction() as session:
        first = await session.scalar(select(OutboxMessage).order_by(OutboxMessage.id))
        assert first is not None
        first.state, first.sent_at = OutboxState.SENT.value, NOW

    _, html = await get(site, f"/dashboard/broadcasts/{reference}")
    assert "Cancel the broadcast" in html
    response = await site.client.post(
        f"/dashboard/broadcasts/{reference}/cancel",
        data={"csrf": csrf_of(html)},
        allow_redirects=False,
    )
    assert response.headers["Location"] == f"/dashboard/broadcasts/{reference}?done=cancelled"
    broadcast = await stored(site, reference)
    assert broadcast.status == "cancelled" and broadcast.cancelled_at == NOW
    assert broadcast.cancelled_by == site.staff[Role.COMMUNICATIONS_OFFICER].id
    assert await count(site, OutboxMessage, OutboxMessage.state == "cancelled") == 4
    assert await count(site, OutboxMessage, OutboxMessage.state == "sent") == 1
    _, html = await get(site, f"/dashboard/broadcasts/{reference}?done=cancelled")
    assert re.search(r'id="count-cancelled">4<', html) and "Cancel the broadcast" not in html
    assert "by Staff communications_officer" in html

    again = await site.client.post(
        f"/dashboard/broadcasts/{reference}/cancel",
        data={"csrf": csrf_of(html)},
        allow_redirects=False,
    )
    assert again.headers["Location"] == f"/dashboard/broadcasts/{reference}?done=closed"


async def test_a_document_is_stored_once_chosen_and_kept_through_edits(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    await login_as(site, Role.COMMUNICATIONS_OFFICER)
    pdf = b"%PDF-1.4 evacuation routes " + bytes(range(256)) * 40
    fields = setting(await compose(site, en=ENGLISH), "topic", "alerts")
    # Chosen, then "Add language": the file is stored on a draft at once.
    status, html = await submit(
        site,
        setting(fields, "add_language", "ar"),
        ("action", "add"),
        document=("routes.pdf", pdf),
    )
    assert status == 200 and "Attached: <strong>routes.pdf</strong>" in html
    fields = setting(form_fields(html), "text-ar", ARABIC)
    reference = value(fields, "draft")
    async with site.db.transaction() as session:
        content = await session.scalar(
            select(Broadcast.document_content).where(Broadcast.reference == reference)
        )
    assert content == pdf

    _, html = await preview_of(site, fields)  # no new file: the stored one stays
    assert "routes.pdf (10.0 KB)" in html and await count(site, Broadcast) == 1
    # A caption is shorter than a message.
    long = setting(fields, "text-en", "x" * 901)
    _, html = await preview_of(site, long)
    assert "The en text has 901 characters; a document&#39;s caption allows 900." in html
    # Removed on request; a too large file is refused, keeping what was typed.
    _, html = await preview_of(site, setting(fields, "remove_document", "1"))
    assert "routes.pdf" not in html
    assert (await stored(site, reference)).document_name is None
    monkeypatch.setattr(pages, "MAX_DOCUMENT_BYTES", 1000)
    status, html = await submit(site, fields, document=("big.pdf", pdf))
    assert status == 400 and "larger than 20 MB" in html
    assert value(form_fields(html), "text-ar") == ARABIC
    assert (await stored(site, reference)).document_name is None


async def test_the_form_also_works_without_multipart(site: Site) -> None:
    await login_as(site, Role.ADMIN)
    fields = setting(await compose(site, en=ENGLISH), "topic", "alerts")
    status, location = await submit(site, fields, multipart=False)
    assert status == 303 and location.endswith("/preview")


def test_uploaded_file_names_are_tamed() -> None:
    assert pages.safe_filename("C:\\fakepath\\routes.pdf") == "routes.pdf"
    assert pages.safe_filename("../../etc/pass\x07wd") == "passwd"
    assert pages.safe_filename("  ") == "document"
    assert len(pages.safe_filename("a" * 500 + ".pdf")) == pages.MAX_FILENAME
