"""Logging set-up. No message text, names, phone numbers or Telegram ids reach the log.

Our own log lines are written without them. Third-party libraries are not so careful
(python-telegram-bot logs whole updates when it cannot parse them, httpx logs request URLs
that contain the bot token), so their records keep only their fixed message: arguments and
exception texts are replaced by a marker.

Two formats (LOG_FORMAT): ``text``, one readable line per record, and ``json``, one JSON
object per line for a log collector: time (ISO 8601, UTC), level, logger, message, the few
safe fields our code passes with ``extra=`` (SAFE_FIELDS), and an exception as its type
only. The redaction is the same in both: it is a filter on the handler, run before either
formatter.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

HANDLER_NAME = "crisis-comms"
OWN_LOGGERS = "crisis_comms"
REDACTED = "[redacted]"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LogFormat = Literal["text", "json"]
# Fields our own log calls may pass with `extra=`: ids and names of our own making, never a
# person's. Only plain numbers, booleans and short strings are written.
SAFE_FIELDS = ("update_id", "worker", "kind", "outcome", "attempts", "count")
_MAX_FIELD = 64
# Libraries kept at WARNING and above: at INFO they log every request and every run of a
# repeating job (the scheduler's every two seconds), which drowns our own lines.
NOISY_LOGGERS = ("httpx", "httpcore", "telegram", "aiohttp.access", "asyncio", "apscheduler")


def _own(record: logging.LogRecord) -> bool:
    return record.name == OWN_LOGGERS or record.name.startswith(OWN_LOGGERS + ".")


class RedactThirdParty(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _own(record):
            return True
        if record.args:
            # A format string is fixed text: keep it, drop what was put into it.
            count = len(record.args) if isinstance(record.args, tuple) else 1
            try:
                record.msg = str(record.msg) % tuple(REDACTED for _ in range(count))
            except (TypeError, ValueError):  # "%d" or "%(name)s" take no marker: show as is
                record.msg = f"{record.msg} {REDACTED}"
            record.args = None
        else:
            # A ready-made message may have data built into it: keep only where it came from.
            record.msg = f"{REDACTED} message at {record.module}:{record.lineno}"
        if record.exc_info and record.exc_info[0] is not None:
            record.msg = f"{record.msg} ({record.exc_info[0].__qualname__})"
            record.exc_info = None
            record.exc_text = None
        return True


class JsonLines(logging.Formatter):
    """One JSON object per record, on one line. Exceptions as their type only: a traceback
    quotes the exception's text, which may hold what a person wrote."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if _own(record):
            entry.update(_safe_fields(record))
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__qualname__
        return json.dumps(entry, ensure_ascii=False, default=str)


def _safe_fields(record: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = {}
    for name in SAFE_FIELDS:
        value = record.__dict__.get(name)
        if isinstance(value, bool | int | float) or (
            isinstance(value, str) and len(value) <= _MAX_FIELD
        ):
            fields[name] = value
    return fields


def configure(
    level: str, stream: TextIO | None = None, log_format: LogFormat = "text"
) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JsonLines() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactThirdParty())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # Python's warnings print straight to stderr, which would break the JSON lines: route
    # them through the handler (a library's record, so redacted like the others).
    logging.captureWarnings(log_format == "json")
    return handler
