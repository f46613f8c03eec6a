"""LOG_FORMAT=json: one JSON object per line, redacted exactly as the text format.

Every line must parse on its own (a log collector reads line by line), third-party records
keep only their fixed text, an exception is its type only (never its text or traceback),
and through the real bot no line holds what a person sent (the scanner of
tests/test_log_privacy.py, run on the JSON lines' values).
"""

from __future__ import annotations

import io
import json
import logging
import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.config import ConfigError, load_settings
from bot.logs import HANDLER_NAME, NOISY_LOGGERS, JsonLines, configure
from bot.sandbox.botapi import LoopbackBotApi
from tests.phone import Phone
from tests.test_e2e_onboarding import onboard
from tests.test_log_privacy import Needles, leaks, needles_from

PRIVATE = "We have no water at Rue Lamarre 12"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The log as `crisis-comms run` writes it with LOG_FORMAT=json, at DEBUG."""
    buffer = io.StringIO()
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in (*NOISY_LOGGERS, "")}
    configure("DEBUG", buffer, log_format="json")
    yield buffer
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)  # also one a test configured in its place
    logging.captureWarnings(False)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def entries(buffer: io.StringIO) -> list[dict[str, Any]]:
    """Each line as its JSON object; fails on a line that is not one."""
    lines = buffer.getvalue().splitlines()
    parsed = [json.loads(line) for line in lines]
    assert all(isinstance(entry, dict) for entry in parsed)
    return parsed


def scannable(parsed: list[dict[str, Any]]) -> list[str]:
    """Every value but the time (its digits are no id), as one line per entry."""
    return [" ".join(str(v) for k, v in entry.items() if k != "time") for entry in parsed]


def test_every_line_is_one_json_object_with_the_fields(json_log: io.StringIO) -> None:
    before = datetime.now(UTC)
    own = logging.getLogger("crisis_comms.test")
    own.info("worker started")
    own.warning('two\nlines and "quotes" and a tab\tin one record')
    own.info("inbox: %d updates back in the queue", 3, extra={"worker": "w1", "kind": "inbox"})
    logging.getLogger("telegram.ext.Updater").error("network problem %s", "x")
    parsed = entries(json_log)
    assert len(parsed) == 4 and len(json_log.getvalue().splitlines()) == 4
    for entry in parsed:
        assert {"time", "level", "logger", "message"} <= set(entry)
        when = datetime.fromisoformat(entry["time"])
        assert when.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= when <= datetime.now(UTC) + timedelta(seconds=1)
    assert [entry["level"] for entry in parsed] == ["INFO", "WARNING", "INFO", "ERROR"]
    assert parsed[0]["logger"] == "crisis_comms.test"
    assert parsed[1]["message"] == 'two\nlines and "quotes" and a tab\tin one record'
    assert parsed[2]["message"] == "inbox: 3 updates back in the queue"
    assert (parsed[2]["worker"], parsed[2]["kind"]) == ("w1", "inbox")


def test_only_the_safe_extra_fields_of_our_own_records_are_written(
    json_log: io.StringIO,
) -> None:
    own = logging.getLogger("crisis_comms.worker")
    own.info(
        "update done",
        extra={
            "update_id": 912_345,
            "outcome": "ok",
            "attempts": 2,
            "text": PRIVATE,  # not a safe field
            "first_name": "Amina",
            "kind": {"nested": PRIVATE},  # a safe name, but not a plain value
            "worker": "x" * 500,  # too long to be one of our names
        },
    )
    logging.getLogger("aiohttp.server").warning("library line", extra={"update_id": 5})
    [ours, library] = entries(json_log)
    assert {k: v for k, v in ours.items() if k != "time"} == {
        "level": "INFO",
        "logger": "crisis_comms.worker",
        "message": "update done",
        "update_id": 912_345,
        "outcome": "ok",
        "attempts": 2,
    }
    assert "update_id" not in library, "a library's fields are not vouched for"
    assert PRIVATE not in json_log.getvalue() and "Amina" not in json_log.getvalue()


def log_as_libraries() -> None:
    logging.getLogger("telegram.ext.ExtBot").critical(
        "Error while parsing updates! Received data was %s", [{"text": PRIVATE}]
    )
    # Libraries log at WARNING and above (configure); the filter applies at any level.
    logging.getLogger("httpx").warning("HTTP Request: POST /bot123:SECRET/getUpdates")
    logging.getLogger("telegram.ext").warning("took %d ms for %s", 5, "Amina")


def test_third_party_arguments_are_redacted_as_in_the_text_format(
    json_log: io.StringIO,
) -> None:
    log_as_libraries()
    messages = [entry["message"] for entry in entries(json_log)]
    assert messages[0] == "Error while parsing updates! Received data was [redacted]"
    assert messages[1].startswith("[redacted] message at test_logs_json:")
    assert messages[2] == "took %d ms for %s [redacted]"
    assert PRIVATE not in json_log.getvalue() and "SECRET" not in json_log.getvalue()
    text_log = io.StringIO()
    configure("DEBUG", text_log)  # the text format, in place of the JSON one
    log_as_libraries()
    lines = text_log.getvalue().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == messages, "the same in both formats"


def test_an_exception_is_its_type_only(json_log: io.StringIO) -> None:
    for logger in ("crisis_comms.test", "telegram.ext.Application"):
        try:
            raise ValueError(f"Amina typed: {PRIVATE}")
        except ValueError:
            logging.getLogger(logger).exception("handler failed")
    ours, library = entries(json_log)
    assert ours["exception"] == "ValueError" and ours["message"] == "handler failed"
    # A library's record: the filter already put the type into the message, as in text.
    assert library["message"].startswith("[redacted] message at test_logs_json:")
    assert library["message"].endswith(" (ValueError)") and "exception" not in library
    written = json_log.getvalue()
    assert "Amina" not in written and "Rue Lamarre" not in written
    assert "Traceback" not in written and "test_logs_json.py" not in written


def test_python_warnings_become_json_lines_too(json_log: io.StringIO) -> None:
    """A library's warning (python-telegram-bot warns at start-up) would otherwise print a
    bare line to stderr; it goes through the handler, redacted as a library's record."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        logging.captureWarnings(True)  # pytest's own capture replaced configure's
        warnings.warn(f"odd input {PRIVATE}", UserWarning, stacklevel=1)
    [entry] = entries(json_log)
    assert (entry["logger"], entry["level"]) == ("py.warnings", "WARNING")
    assert entry["message"].startswith("[redacted] message at warnings:")


def test_the_formatter_alone_drops_the_traceback_and_stack() -> None:
    """Even without the filter (a handler someone adds), the JSON line holds no traceback."""
    try:
        raise KeyError(PRIVATE)
    except KeyError:
        record = logging.getLogger("crisis_comms.x").makeRecord(
            "crisis_comms.x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    record.stack_info = "Stack (most recent call last): " + PRIVATE
    line = JsonLines().format(record)
    assert json.loads(line)["exception"] == "KeyError"
    assert PRIVATE not in line and "\n" not in line


def test_configure_replaces_its_own_handler_and_keeps_the_text_format_by_default() -> None:
    root = logging.getLogger()
    level = root.level
    first, second = io.StringIO(), io.StringIO()
    try:
        configure("INFO", first, log_format="json")
        configure("INFO", second)
        logging.getLogger("crisis_comms.test").info("once")
        assert first.getvalue() == ""
        assert second.getvalue().rstrip().endswith("INFO crisis_comms.test: once")
        assert [h.get_name() for h in root.handlers].count(HANDLER_NAME) == 1
    finally:
        for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
            root.removeHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)


@pytest.mark.parametrize(
    ("value", "expected"), [(None, "text"), ("json", "json"), ("JSON", "json"), ("text", "text")]
)
def test_log_format_setting(value: str | None, expected: str) -> None:
    env = {} if value is None else {"LOG_FORMAT": value}
    assert load_settings(env).log_format == expected


def test_a_wrong_log_format_names_the_variable() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"LOG_FORMAT": "xml"})
    assert raised.value.variable == "LOG_FORMAT"


async def test_through_the_bot_no_json_line_holds_what_a_person_sent(
    phone: Phone, bot_api: LoopbackBotApi, json_log: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person onboards, writes feedback and hits a crashing handler; the bot's own lines
    are there, and none of them (nor any library's) holds their words, name or ids."""
    await onboard(phone)
    await phone.send(PRIVATE)

    def broken(*_args: object) -> str:
        raise RuntimeError(f"secret: {PRIVATE}, call +509 3700 0000")

    monkeypatch.setattr("bot.flows.menu.help_text", broken)
    answer = await phone.send("❓ Help")
    assert answer.text == "Sorry, something went wrong. Please try again."
    parsed = entries(json_log)
    own = [entry for entry in parsed if entry["logger"].startswith("crisis_comms")]
    assert any("handler failed" in entry["message"] for entry in own), "our lines are written"
    needles = needles_from(bot_api)
    assert PRIVATE in needles.texts and "Amina" in needles.names
    assert leaks(scannable(parsed), needles) == []
    assert "+509" not in json_log.getvalue()


def test_the_scan_of_json_lines_catches_a_planted_leak(json_log: io.StringIO) -> None:
    """The check above can fail: the same scan finds a person's words in an own line."""
    logging.getLogger("crisis_comms.test").info("received %s", PRIVATE)
    needles = Needles()
    needles.add_text(PRIVATE)
    assert len(leaks(scannable(entries(json_log)), needles)) == 1
