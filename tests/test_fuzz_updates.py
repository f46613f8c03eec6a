"""Property-based fuzzing of update handling: random and malformed updates through the real
Application never raise, and never leave a person stuck.

Each example is a new person who sends a random sequence: text with control characters,
right-to-left marks, emoji and huge strings; commands with junk after them; button taps with
random data, valid prefixes followed by garbage among them; stickers, photos, voice notes,
files, contacts, locations out of range, polls, edits, messages in groups, channel posts,
chat-member changes and updates without a user. Updates go through
`application.process_update` against the loopback Bot API server, so the bot's answers
succeed as they would on Telegram; a clock the test moves lets some sequences run into flood
control. Afterwards, no handler may have failed (the Application's error handler and every
ERROR log record are watched), and the same person sending /cancel then /start must get the
step they are at: the consent notice, the language choice or the main menu.

Hypothesis runs derandomized (a fixed seed, no example database), so CI cannot flake.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram import Update
from telegram.ext import ContextTypes

from bot.app import BotApplication, build_application
from bot.config import Settings
from bot.errors import describe
from bot.keyboards import MenuItem
from bot.sandbox.botapi import BotEvent, LoopbackBotApi, command_entities
from bot.services import Services
from messages.contacts import Pseudonymizer
from messages.i18n import translations
from storage.database import Database
from tests.clock import FakeClock
from tests.sandbox_fixtures import TEST_KEY

# Updates are processed without the job queue running: registration timeouts are not fuzzed.
pytestmark = pytest.mark.filterwarnings("ignore:Ignoring `conversation_timeout`")

JSON = dict[str, Any]
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)

COMMANDS = (
    "start", "help", "menu", "cancel", "language", "myregistration", "subscriptions",
    "mydata", "delete", "privacy", "item", "reply", "status", "codes", "whoami",
    "stafflist", "shelters", "broadcast", "broadcasts", "broadcast_cancel",
    "broadcast_report", "registrations", "manifest", "nonsense", "",
)  # fmt: skip
CALLBACKS = (
    "consent:accept", "consent:more", "consent:full", "consent:decline", "lang:en",
    "lang:ar", "lang:xx", "need:3", "need:ok:5", "need:ok:0", "care:ABC123:y",
    "reg:scope:self", "reg:scope:household", "reg:people:back", "reg:review:confirm",
    "subs:t:general", "subs:a:0", "subs:e:0", "subs:x:0:HT01", "subs:v", "subs:done",
    "unsub:general", "resub:general", "priv:data", "priv:delete", "priv:withdraw",
    "priv:full", "priv:delete:yes:1", "priv:delete:no", "con:SY", "shp:1", "ack:ABC123",
    "mf:DP-1", "bc:1:topic:general", "shu:1", "menu:help",
)  # fmt: skip
PREFIXES = tuple(sorted({data.split(":")[0] + ":" for data in CALLBACKS}))
STRANGE = (
    "\u200f\u202eمرحبا\u202c", "\u0000\u0007\u001b[31m", "\u202a+\u202c", "🏳️‍🌈👨‍👩‍👧‍👦🙏🏽",
    "a\u0301\u0308\u20dd", "\ufeff\u200b\u2060", "<b>bold</b> *md* _x_ `code`", "=1+1",
    "STAFF-ABCD-EFGH", "\r\n\r\n", "   ", "'; DROP TABLE contacts; --", "%s %d {0} {x}",
)  # fmt: skip
MENU_LABELS = tuple(
    item.text(translations(code).gettext) for item in MenuItem for code in ("en", "ar")
)

HUGE = (4096, 4097, 20_000)  # Telegram's limit, one past it (a webhook could), far past it
# Characters a person can type, and the ones they cannot but a malformed update may carry.
CHARACTERS = st.characters(codec="utf-8", exclude_categories=["Cs"])
WORDS = st.one_of(
    st.text(CHARACTERS, max_size=40),
    st.sampled_from(STRANGE),
    st.builds(lambda c, n: c * n, st.sampled_from("aéب🙏\u200f"), st.sampled_from(HUGE)),
)


# --- actions: what one update in a sequence is --------------------------------------------


@dataclass(frozen=True)
class Action:
    kind: str
    text: str = ""
    number: float = 0.0
    other: float = 0.0
    pause: float = 1.0  # seconds since the previous update


ACTIONS = st.one_of(
    st.builds(Action, st.just("text"), WORDS),
    st.builds(
        Action,
        st.just("command"),
        st.builds(lambda c, junk: f"/{c}{junk}", st.sampled_from(COMMANDS), WORDS),
    ),
    st.builds(Action, st.just("command"), st.sampled_from(COMMANDS).map(lambda c: f"/{c}")),
    st.builds(Action, st.just("tap"), st.sampled_from(CALLBACKS)),
    st.builds(
        Action,
        st.just("tap"),
        st.builds(lambda p, junk: p + junk, st.sampled_from(PREFIXES), WORDS),
    ),
    st.builds(Action, st.just("tap"), st.text(CHARACTERS, min_size=1, max_size=64)),
    st.builds(Action, st.just("text"), st.sampled_from(MENU_LABELS)),
    st.builds(Action, st.sampled_from(["sticker", "voice", "poll", "member", "inline"])),
    st.builds(Action, st.sampled_from(["photo", "document", "edit", "channel", "no_user"]), WORDS),
    st.builds(Action, st.sampled_from(["group", "group_tap"]), WORDS),
    st.builds(
        Action,
        st.just("location"),
        number=st.one_of(st.floats(-1000, 1000), st.sampled_from([90.0, -90.0, 0.0])),
        other=st.one_of(st.floats(-1000, 1000), st.sampled_from([180.0, -180.0, 0.0])),
    ),
    st.builds(Action, st.just("contact"), WORDS, number=st.sampled_from([0.0, 1.0])),
)
PAUSES = st.sampled_from([0.0, 0.0, 0.5, 2.0, 40.0])
SEQUENCES = st.lists(
    st.builds(lambda a, p: replace(a, pause=p), ACTIONS, PAUSES), min_size=1, max_size=14
)


# --- the fuzzing harness ---------------------------------------------------------------------


@dataclass
class Person:
    user_id: int
    group_id: int
    name: str
    language: str | None


@dataclass
class Harness:
    api: LoopbackBotApi
    application: BotApplication
    clock: FakeClock
    failures: list[str] = field(default_factory=list)
    serials: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def new_person(self, name: str, language: str | None) -> Person:
        user = self.api.add_user(first_name=name or "X", language_code=language, started=True)
        return Person(user.id, 10_000 + next(self.serials), user.first_name, language)

    async def process(self, data: JSON) -> None:
        await self.application.process_update(Update.de_json(data, self.application.bot))

    async def process_pushed(self) -> None:
        """The update the loopback server just queued (as Telegram would deliver it)."""
        await self.process(self.api.pending_updates()[-1])

    def raw(self, kind: str, payload: JSON) -> JSON:
        return {"update_id": 900_000_000 + next(self.serials), kind: payload}

    async def say(self, person: Person, text: str) -> None:
        """A message in the private chat, whatever its text (Telegram's checks bypassed)."""
        user, chat = self.api._user_chat(person.user_id)
        self.api._user_message(chat, user, text=text, entities=command_entities(text))
        await self.process_pushed()

    async def perform(self, person: Person, action: Action) -> None:
        self.clock.now += timedelta(seconds=action.pause)
        handler = getattr(self, f"_{action.kind}")
        await handler(person, action)

    async def _text(self, person: Person, action: Action) -> None:
        await self.say(person, action.text)

    async def _command(self, person: Person, action: Action) -> None:
        await self.say(person, action.text)

    async def _tap(self, person: Person, action: Action) -> None:
        data = action.text.encode()[:64].decode(errors="ignore") or "x"
        await self.api.press_button(person.user_id, await self._bot_message(person), data)
        await self.process_pushed()

    async def _bot_message(self, person: Person, chat_id: int | None = None) -> int:
        """The newest bot message in the chat; a plain one first when there is none yet."""
        chat_id = chat_id or person.user_id
        mine = [m.message_id for m in self.api.transcript(chat_id) if m.from_bot]
        if mine:
            return mine[-1]
        sent = await self.application.bot.send_message(chat_id, "…")
        return int(sent.message_id)

    async def _sticker(self, person: Person, action: Action) -> None:
        await self.api.send_sticker(person.user_id)
        await self.process_pushed()

    async def _voice(self, person: Person, action: Action) -> None:
        await self.api.send_voice(person.user_id)
        await self.process_pushed()

    async def _photo(self, person: Person, action: Action) -> None:
        user, chat = self.api._user_chat(person.user_id)
        media = {"photo": [{"file_id": "p1", "file_unique_id": "u1", "width": 9, "height": 9}]}
        self.api._user_message(chat, user, media=media, caption=action.text)
        await self.process_pushed()

    async def _document(self, person: Person, action: Action) -> None:
        name = "".join(c for c in action.text if c.isprintable())[:100] or "file"
        await self.api.send_document(person.user_id, name, caption=action.text[:1024] or None)
        await self.process_pushed()

    async def _location(self, person: Person, action: Action) -> None:
        user, chat = self.api._user_chat(person.user_id)
        location = {"latitude": action.number, "longitude": action.other}
        self.api._user_message(chat, user, location=location)
        await self.process_pushed()

    async def _contact(self, person: Person, action: Action) -> None:
        user, chat = self.api._user_chat(person.user_id)
        contact: JSON = {"phone_number": action.text, "first_name": person.name}
        if action.number:
            contact["user_id"] = person.user_id + 1  # someone else's contact
        self.api._user_message(chat, user, media={"contact": contact})
        await self.process_pushed()

    async def _poll(self, person: Person, action: Action) -> None:
        poll = {
            "id": "1",
            "question": "?",
            "options": [
                {"persistent_id": str(n), "text": text, "voter_count": 0}
                for n, text in enumerate("ab")
            ],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": True,
            "type": "regular",
            "allows_multiple_answers": False,
            "allows_revoting": False,
            "members_only": False,
        }
        await self.process(self.raw("poll", poll))  # no user at all
        user, chat = self.api._user_chat(person.user_id)
        self.api._user_message(chat, user, media={"poll": poll})
        await self.process_pushed()

    async def _member(self, person: Person, action: Action) -> None:
        bot = self.api.bot_user()
        old, new = ("member", "kicked") if next(self.serials) % 2 else ("kicked", "member")
        change = {
            "chat": self.api.user(person.user_id).private_chat(),
            "from": self.api.user(person.user_id).to_api(),
            "date": int(self.clock.now.timestamp()),
            "old_chat_member": {"status": old, "user": bot, **_until(old)},
            "new_chat_member": {"status": new, "user": bot, **_until(new)},
        }
        await self.process(self.raw("my_chat_member", change))

    async def _inline(self, person: Person, action: Action) -> None:
        query = {"id": "7", "from": self.api.user(person.user_id).to_api(), "query": "x"}
        await self.process(self.raw("inline_query", {**query, "offset": ""}))

    async def _edit(self, person: Person, action: Action) -> None:
        message = {
            "message_id": 999_999,  # a message the server never saw
            "from": self.api.user(person.user_id).to_api(),
            "chat": self.api.user(person.user_id).private_chat(),
            "date": int(self.clock.now.timestamp()),
            "edit_date": int(self.clock.now.timestamp()),
            "text": action.text,
        }
        await self.process(self.raw("edited_message", message))

    async def _channel(self, person: Person, action: Action) -> None:
        post = {
            "message_id": 1,
            "chat": {"id": -1_001_000_000_000 - person.group_id, "type": "channel", "title": "C"},
            "date": int(self.clock.now.timestamp()),
            "text": action.text,
        }
        await self.process(self.raw("channel_post", post))

    async def _no_user(self, person: Person, action: Action) -> None:
        """An anonymous group admin: a message with a sender chat and no user."""
        await self._ensure_group(person)
        group = {"id": -person.group_id, "type": "group", "title": "G"}
        message = {
            "message_id": 1,
            "sender_chat": group,
            "chat": group,
            "date": int(self.clock.now.timestamp()),
            "text": action.text,
        }
        await self.process(self.raw("message", message))

    async def _group(self, person: Person, action: Action) -> None:
        await self._ensure_group(person)
        user = self.api.user(person.user_id)
        chat = self.api._chat(-person.group_id)
        text = action.text if action.text.strip() else "/help"
        self.api._user_message(chat, user, text=text, entities=command_entities(text))
        await self.process_pushed()

    async def _group_tap(self, person: Person, action: Action) -> None:
        await self._ensure_group(person)
        message_id = await self._bot_message(person, -person.group_id)
        data = action.text.encode()[:64].decode(errors="ignore") or "x"
        await self.api.press_button(person.user_id, message_id, data, chat_id=-person.group_id)
        await self.process_pushed()

    async def _ensure_group(self, person: Person) -> None:
        await self.api.send_group_text(person.user_id, person.group_id, "hello")
        await self.process_pushed()

    async def step_after(self, person: Person) -> BotEvent:
        """/cancel then /start, past the flood window: the last message the bot sent."""
        self.clock.now += timedelta(minutes=2)
        await self.say(person, "/cancel")
        self.api.pending_bot_events(person.user_id)
        await self.say(person, "/start")
        sent = [e for e in self.api.pending_bot_events(person.user_id) if e.kind == "send"]
        assert sent, "/start got no answer"
        return sent[-1]


def _until(status: str) -> JSON:
    return {"until_date": 0} if status == "kicked" else {}


def is_a_step(event: BotEvent, person_language: str | None) -> bool:
    """The consent notice, the language choice or the main menu, whatever the language."""
    message = event.message
    assert message is not None
    data = [b.get("callback_data", "") for row in message.inline_keyboard for b in row]
    if any(d.startswith("consent:") for d in data) or any(d.startswith("lang:") for d in data):
        return True
    keyboard = (message.reply_markup or {}).get("keyboard", [])
    labels = [b["text"] if isinstance(b, dict) else str(b) for row in keyboard for b in row]
    menu_icons = {item.icon for item in MenuItem}
    return bool(labels) and all(label.split(" ", 1)[0] in menu_icons for label in labels)


class _Failures(logging.Handler):
    def __init__(self, failures: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.failures = failures

    def emit(self, record: logging.LogRecord) -> None:
        self.failures.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture
async def harness(
    bot_api: LoopbackBotApi, database: Database, settings: Settings
) -> AsyncIterator[Harness]:
    clock = FakeClock(T0)
    services = Services(
        replace(settings, api_root=bot_api.url), database, Pseudonymizer(TEST_KEY), clock=clock
    )
    application = build_application(services)
    result = Harness(bot_api, application, clock)

    async def failed(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        if context.error is not None:
            result.failures.append(describe(context.error))

    application.add_error_handler(failed)
    watcher = _Failures(result.failures)
    logging.getLogger().addHandler(watcher)
    try:
        async with application:
            yield result
    finally:
        logging.getLogger().removeHandler(watcher)


FUZZ = settings(
    max_examples=45,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.settings(FLOOD_UPDATES="6")  # quick sequences run into flood control too
@FUZZ
@given(
    name=st.text(CHARACTERS, min_size=1, max_size=64).filter(lambda n: n.strip() != ""),
    language=st.sampled_from([None, "en", "ar", "fa-AF", "xx", "zz-ZZ"]),
    actions=SEQUENCES,
)
async def test_random_updates_never_raise_and_never_leave_a_person_stuck(
    harness: Harness, name: str, language: str | None, actions: list[Action]
) -> None:
    harness.failures.clear()
    person = harness.new_person(name, language)
    for action in actions:
        await harness.perform(person, action)
    assert harness.failures == []
    step = await harness.step_after(person)
    assert is_a_step(step, language), step.summary()
    assert harness.failures == []


@FUZZ
@given(actions=SEQUENCES)
async def test_an_onboarded_person_is_never_stuck(harness: Harness, actions: list[Action]) -> None:
    """The same after consent and a language: most of the flows are reachable from here."""
    harness.failures.clear()
    person = harness.new_person("Amina", "en")
    await harness.say(person, "/start")
    await harness.perform(person, Action("tap", "consent:accept"))
    await harness.perform(person, Action("tap", "lang:en"))
    for action in actions:
        await harness.perform(person, action)
    assert harness.failures == []
    step = await harness.step_after(person)
    assert is_a_step(step, "en"), step.summary()
    assert harness.failures == []
