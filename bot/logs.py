"""Logging set-up. No message text, names, phone numbers or Telegram ids reach the log.

Our own log lines are written without them. Third-party libraries are not so careful
(python-telegram-bot logs whole updates when it cannot parse them, httpx logs request URLs
that contain the bot token), so their records keep only their fixed message: arguments and
exception texts are replaced by a marker.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

HANDLER_NAME = "crisis-comms"
OWN_LOGGERS = "crisis_comms"
REDACTED = "[redacted]"


class RedactThirdParty(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == OWN_LOGGERS or record.name.startswith(OWN_LOGGERS + "."):
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


def configure(level: str, stream: TextIO | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactThirdParty())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "telegram", "aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    return handler
