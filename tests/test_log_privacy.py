"""No personal data in logs, proven on the end-to-end suite.

During every test that talks to the loopback Bot API (the `bot_api`, `phone`, `running_bot`
or `start_bot` fixtures), tests/sandbox_fixtures.py captures every log record at DEBUG as the
production handler writes it (bot/logs.py: `RedactThirdParty`, then the formatter, exception
text included). At the end of the test it fails if a line contains what a simulated person
sent (any text of 4 characters or more that is not a bare command, a caption, a shared
contact's phone number, or a typed phone number in the form the bot stores), a name from a
profile or a shared contact, or a raw Telegram user or chat id.

The needles are read from the loopback server's own record of every chat, so whatever a test
sends, through a Phone or straight to the server, is covered. Below: the scanner's own tests,
which plant a leak and check that it is caught.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from bot.config import SANDBOX_TOKEN
from bot.logs import RedactThirdParty
from bot.sandbox.botapi import LoopbackBotApi
from evacuation.registrations import normalize_phone

# The production format (bot/logs.py configure); the prefix holds nothing personal anyway.
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MIN_TEXT = 4
MIN_ID = 1000
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")  # the asctime prefix
_BARE_COMMAND = re.compile(r"^/[A-Za-z0-9_]+(@\w+)?$")


@dataclass
class Needles:
    """What must never appear in a log line."""

    texts: set[str] = field(default_factory=set)  # found anywhere in a line
    names: set[str] = field(default_factory=set)  # found as whole words
    ids: set[int] = field(default_factory=set)  # found as whole numbers, with or without sign

    def add_text(self, text: str | None) -> None:
        text = (text or "").strip()
        if len(text) >= MIN_TEXT and not _BARE_COMMAND.match(text):
            self.texts.add(text)
        phone = normalize_phone(text) if text else None
        if phone is not None:
            self.texts.add(phone)

    def add_name(self, name: str | None) -> None:
        if name and len(name.strip()) >= 2:
            self.names.add(name.strip())

    def add_id(self, number: int) -> None:
        # Real Telegram ids have six or more digits; a test's chat "600" is too common a number.
        if abs(number) >= MIN_ID:
            self.ids.add(abs(number))


def needles_from(api: LoopbackBotApi) -> Needles:
    """Everything the simulated people sent or showed the bot, read from the server's chats."""
    needles = Needles()
    for user in api.users():
        needles.add_id(user.id)
        for name in (user.first_name, user.last_name, user.username):
            needles.add_name(name)
    # The server keeps every chat, groups included; there is no public list of them.
    for chat in api._chats.values():
        needles.add_id(chat.id)
        for message in chat.messages.values():
            if message.from_bot:
                continue
            needles.add_text(message.text)
            needles.add_text(message.caption)
            contact = message.media.get("contact")
            if isinstance(contact, dict):
                needles.add_text(str(contact.get("phone_number", "")))
                needles.add_name(contact.get("first_name"))
                needles.add_name(contact.get("last_name"))
    return needles


def leaks(lines: Iterable[str], needles: Needles) -> list[str]:
    """Each offending line, with what it gave away."""
    names = _words(needles.names)
    ids = (
        re.compile(r"(?<!\d)(" + "|".join(sorted(map(str, needles.ids))) + r")(?!\d)")
        if needles.ids
        else None
    )
    found: list[str] = []
    for line in lines:
        line = _TIMESTAMP.sub("", line)
        what = [f"text {text!r}" for text in needles.texts if text in line]
        if names is not None:
            what += [f"name {m.group(0)!r}" for m in names.finditer(line)]
        if ids is not None:
            what += [f"id {m.group(0)}" for m in ids.finditer(line)]
        if what:
            found.append(f"{', '.join(what)} in: {line[:300]}")
    return found


def _words(words: set[str]) -> re.Pattern[str] | None:
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(r"(?<!\w)(" + alternatives + r")(?!\w)")


class ProductionLogCapture(logging.Handler):
    """Every record formatted as the production handler writes it. Each record is copied
    before the redaction filter changes it, so other handlers (pytest's) see it unchanged."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter(FORMAT))
        self.redact = RedactThirdParty()
        self.lines: list[str] = []

    def handle(self, record: logging.LogRecord) -> bool:
        copy = logging.makeLogRecord(record.__dict__)
        if self.redact.filter(copy):
            self.emit(copy)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def capture_logs() -> Iterator[ProductionLogCapture]:
    """Every logger at DEBUG for the duration (stricter than production, which keeps
    third-party libraries at WARNING), levels restored afterwards."""
    handler = ProductionLogCapture()
    root = logging.getLogger()
    saved = {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and logger.level > logging.DEBUG
    }
    root_level = root.level
    for name in saved:
        logging.getLogger(name).setLevel(logging.DEBUG)
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(root_level)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


# --- the scanner's own tests ----------------------------------------------------------------


def _needles() -> Needles:
    needles = Needles()
    needles.add_text("We have no water since yesterday")
    needles.add_text("/start")
    needles.add_text("ok")
    needles.add_text("0712 345 678")
    needles.add_name("Amina")
    needles.add_id(1_000_001)
    needles.add_id(-4242)
    return needles


def test_a_planted_leak_of_each_kind_is_caught() -> None:
    needles = _needles()
    with capture_logs() as capture:
        log = logging.getLogger("crisis_comms.test")
        log.info("received %s", "We have no water since yesterday")
        log.warning("user %d wrote", 1_000_001)
        log.warning("group -4242 is noisy")
        log.info("hello Amina")
        log.info("phone 0712345678 saved")
        try:
            raise ValueError("Amina typed this")
        except ValueError:
            log.exception("failed")
    found = leaks(capture.lines, needles)
    assert len(found) == 6, found
    assert "text 'We have no water since yesterday'" in found[0]
    assert "id 1000001" in found[1] and "id 4242" in found[2]
    assert "name 'Amina'" in found[3]
    assert "text '0712345678'" in found[4]
    assert "name 'Amina'" in found[5], "the traceback's exception message counts"


def test_what_is_not_personal_passes() -> None:
    needles = _needles()
    needles.add_id(600)  # a test's small chat id: not scanned for
    lines = [
        "2026-11-21 10:12:43,600 DEBUG telegram.ext: the milliseconds are no id",
        "INFO crisis_comms.bot: retry after 600 s",
        "INFO crisis_comms.bot: /start answered",  # a bare command is not personal
        "INFO crisis_comms.bot: ok then",  # shorter than 4 characters
        "INFO crisis_comms.bot: update 10000012 took 21000001 ms",  # ids inside other numbers
        "INFO crisis_comms.bot: Aminata is another word",
    ]
    assert leaks(lines, needles) == []


def test_third_party_records_are_redacted_as_in_production() -> None:
    """The capture applies bot/logs.py's filter: a library's arguments and exception texts
    never reach the line, even at DEBUG."""
    needles = _needles()
    with capture_logs() as capture:
        library = logging.getLogger("telegram.ext.test")
        library.debug("update %s", {"text": "We have no water since yesterday"})
        library.debug("took %d ms for %s", 5, "Amina")  # "%d" cannot take the marker
        try:
            raise RuntimeError("Amina 1000001")
        except RuntimeError:
            library.exception("boom")
    assert len(capture.lines) == 3
    assert leaks(capture.lines, needles) == []
    assert capture.lines[1].endswith("took %d ms for %s [redacted]")


def test_capture_leaves_the_record_unchanged_for_other_handlers() -> None:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keep = Keep()
    library = logging.getLogger("telegram.ext.test2")
    library.addHandler(keep)
    try:
        with capture_logs():
            library.debug("update %s", "secret words")
    finally:
        library.removeHandler(keep)
    assert seen[0].getMessage() == "update secret words"


async def test_needles_come_from_every_chat_of_the_server() -> None:
    api = LoopbackBotApi(token=SANDBOX_TOKEN, host="127.0.0.1", port=0)
    user = api.add_user(first_name="Huda", last_name="Haddad", username="huda_h")
    await api.send_text(user.id, "The road to the camp is cut")
    await api.send_contact(user.id, "+254712345678", first_name="Omar")
    await api.send_photo(user.id, caption="our tent after the storm")
    await api.send_group_text(user.id, 4242, "hello group people")
    needles = needles_from(api)
    assert {"The road to the camp is cut", "+254712345678", "our tent after the storm"} <= (
        needles.texts
    )
    assert "hello group people" in needles.texts
    assert {"Huda", "Haddad", "huda_h", "Omar"} <= needles.names
    assert {user.id, 4242} <= needles.ids


@pytest.mark.parametrize("text", ["", "   ", "/help", "abc"])
def test_short_texts_and_bare_commands_are_no_needles(text: str) -> None:
    needles = Needles()
    needles.add_text(text)
    assert needles.texts == set()
