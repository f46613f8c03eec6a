"""A loopback fake of the Telegram Bot API server, with simulated Telegram users.

Real python-telegram-bot clients talk to it over 127.0.0.1 (``Bot(token, base_url=api.base_url,
base_file_url=api.base_file_url)``). End-to-end tests drive the "phone" side through the Python
API (``add_user``, ``send_text``, ``press_button`` ...) and observe the bot through
``transcript`` / ``wait_for_bot``; the browser sandbox (``bot/sandbox/page.py``) does the same
over HTTP. Only what the bot needs is implemented, but where it is implemented it answers like
Telegram does (limits, error texts, entity parsing), because the point is to catch bugs that would
otherwise only show up in production.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import itertools
import json
import math
import mimetypes
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import urlparse

import telegram
from aiohttp import web

from bot.sandbox.page import add_page_routes
from bot.web_security import protect

JSON = dict[str, Any]
Handler = Callable[["_Params"], Awaitable[Any]]

MAX_TEXT_LENGTH: Final = 4096
MAX_CAPTION_LENGTH: Final = 1024
MAX_CALLBACK_DATA_BYTES: Final = 64
MAX_UPLOAD_BYTES: Final = 50 * 1024 * 1024
FIRST_USER_ID: Final = 1_000_001

# Form values are always strings on the wire; these parameters must stay strings even when they
# look like JSON ("123", "true"). Everything else is JSON-decoded when possible.
_STRING_KEYS: Final = frozenset(
    {
        "text", "caption", "parse_mode", "title", "address", "description", "short_description",
        "name", "language_code", "url", "callback_query_id", "inline_message_id", "action",
        "secret_token", "ip_address", "foursquare_id", "foursquare_type", "google_place_id",
        "google_place_type", "message_effect_id", "business_connection_id", "file_id",
        "document", "photo", "sticker", "voice", "audio", "video", "emoji", "phone_number",
        "first_name", "last_name", "vcard",
    }
)  # fmt: skip
_DEFAULT_ALLOWED_UPDATES: Final = frozenset(
    {
        "message", "edited_message", "channel_post", "edited_channel_post", "inline_query",
        "chosen_inline_result", "callback_query", "shipping_query", "pre_checkout_query",
        "poll", "poll_answer", "my_chat_member", "chat_join_request", "business_connection",
        "business_message", "edited_business_message", "deleted_business_messages",
        "purchased_paid_media", "chat_boost", "removed_chat_boost",
    }
)  # fmt: skip
_CHAT_ACTIONS: Final = frozenset(
    {
        "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
        "upload_document", "choose_sticker", "find_location", "record_video_note",
        "upload_video_note",
    }
)  # fmt: skip
_INLINE_BUTTON_ACTIONS: Final = (
    "callback_data", "url", "web_app", "login_url", "switch_inline_query",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
    "callback_game", "pay",
)  # fmt: skip
_COMMAND_RE: Final = re.compile(r"[a-z0-9_]{1,32}")
_USER_COMMAND_RE: Final = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w@])")
_NOT_MODIFIED: Final = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
_WEBHOOK_CONFLICT: Final = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
_POLL_CONFLICT: Final = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
_QUERY_TOO_OLD: Final = "query is too old and response timeout expired or query ID is invalid"
# Real Bot API methods (PTB's camelCase aliases). Those we do not fake get a clear 400 instead of
# Telegram's 404, which PTB would report as a misleading InvalidToken.
_TELEGRAM_METHODS: Final = frozenset(
    name.lower() for name in dir(telegram.Bot) if name[:1].islower() and name.lower() != name
)


class ApiError(Exception):
    """A Bot API error answer; the HTTP status equals ``error_code``, as with Telegram."""

    def __init__(self, error_code: int, description: str, *, retry_after: int | None = None):
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def to_json(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


class BotEventTimeout(TimeoutError, AssertionError):
    """``wait_for_bot`` gave up; both an ``asyncio.TimeoutError`` and a test failure."""


@dataclass
class SimUser:
    """A simulated Telegram user (the person holding the phone)."""

    id: int
    first_name: str
    language_code: str | None = "en"  # Telegram omits it for some clients
    last_name: str | None = None
    username: str | None = None

    def to_api(self) -> JSON:
        data: JSON = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data

    def private_chat(self) -> JSON:
        data: JSON = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        return data


@dataclass
class ChatMessage:
    """One message in a chat, in its current state. ``entities`` belong to ``text`` or, for
    media messages, to ``caption``. ``media`` holds other Telegram-shaped content (sticker,
    photo, voice, contact). ``reply_markup`` is whatever the bot sent, reply keyboards too."""

    message_id: int
    chat_id: int
    from_bot: bool
    sender_id: int
    date: int
    text: str | None = None
    entities: list[JSON] = field(default_factory=list)
    caption: str | None = None
    reply_markup: JSON | None = None
    location: JSON | None = None
    venue: JSON | None = None
    document: JSON | None = None
    media: JSON = field(default_factory=dict)
    reply_to_message_id: int | None = None
    edited: bool = False
    edit_date: int | None = None
    deleted: bool = False

    @property
    def inline_keyboard(self) -> list[list[JSON]]:
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return rows if isinstance(rows, list) else []

    @property
    def content_kind(self) -> str:
        if self.venue is not None:
            return "venue"
        for kind in ("location", "document"):
            if getattr(self, kind) is not None:
                return kind
        return next(iter(self.media), "text")


@dataclass
class BotEvent:
    """Something the bot did in a chat. ``message`` is a snapshot taken when it happened (for
    ``answer_callback``: the message whose button was pressed)."""

    kind: str  # "send" | "edit" | "delete" | "answer_callback"
    chat_id: int
    message: ChatMessage | None
    callback_text: str | None = None
    show_alert: bool = False

    def summary(self) -> str:
        text = self.callback_text if self.kind == "answer_callback" else None
        if self.message is not None and text is None:
            text = self.message.text or self.message.caption or self.message.content_kind
        return f"{self.kind}({text!r})"


@dataclass(frozen=True)
class SentRecord:
    """One message the server accepted through sendMessage (``record_sends``)."""

    chat_id: int
    at: float  # the server's clock (``clock``), seconds
    message_id: int


@dataclass(frozen=True)
class RateLimits:
    """Flood limits applied to new bot messages when ``enforce_rate_limits`` is on.

    Telegram documents ~30 messages/s overall, ~1 message/s per private chat (short bursts are
    tolerated) and 20 messages/minute per group. We model each as a token bucket; a private chat
    may burst ``private_burst`` messages before the 1/s rate applies. Edits, deletes, callback
    answers and chat actions are not counted.
    """

    global_per_second: float = 30.0
    private_burst: int = 3
    private_per_second: float = 1.0
    group_per_minute: int = 20


@dataclass
class _Bucket:
    capacity: float
    rate: float  # tokens per second
    tokens: float
    stamp: float

    def wait_time(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


class _FloodControl:
    def __init__(self, limits: RateLimits, clock: Callable[[], float]) -> None:
        self._limits = limits
        self._clock = clock
        rate = limits.global_per_second
        self._global = _Bucket(rate, rate, rate, clock())
        self._chats: dict[int, _Bucket] = {}

    def _chat_bucket(self, chat_id: int, chat_type: str, now: float) -> _Bucket:
        if chat_id not in self._chats:
            if chat_type == "private":
                burst, rate = float(self._limits.private_burst), self._limits.private_per_second
            else:
                burst = float(self._limits.group_per_minute)
                rate = self._limits.group_per_minute / 60
            self._chats[chat_id] = _Bucket(burst, rate, burst, now)
        return self._chats[chat_id]

    def retry_after(self, chat_id: int, chat_type: str) -> int | None:
        """Takes a token from both buckets, or returns whole seconds to wait (nothing taken)."""
        now = self._clock()
        buckets = (self._global, self._chat_bucket(chat_id, chat_type, now))
        wait = max(bucket.wait_time(now) for bucket in buckets)
        if wait > 0:
            return max(1, math.ceil(wait))
        for bucket in buckets:
            bucket.tokens -= 1
        return None


class _Signal:
    """Wakes every waiter on any state change. Safe without a lock: asyncio only switches tasks
    at ``await``, so nothing can change between a waiter's check and its wait."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), max(seconds, 0))


@dataclass
class _Chat:
    id: int
    type: str  # "private" | "group"
    title: str | None = None
    started: bool = False  # a private chat exists for Telegram once the user wrote to the bot
    messages: dict[int, ChatMessage] = field(default_factory=dict)
    next_message_id: int = 1
    events: list[BotEvent] = field(default_factory=list)
    cursor: int = 0
    version: int = 0
    reply_keyboard: JSON | None = None
    force_reply: JSON | None = None
    notices: list[JSON] = field(default_factory=list)
    action: str | None = None
    action_at: float = 0.0


@dataclass
class _Update:
    update_id: int
    kind: str
    payload: JSON

    def to_api(self) -> JSON:
        return {"update_id": self.update_id, self.kind: self.payload}


@dataclass
class _CallbackRecord:
    chat_id: int
    message_id: int
    answered: bool = False


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes
    file_name: str
    mime_type: str


@dataclass
class _Failure:
    error_code: int
    description: str
    retry_after: int | None
    remaining: int


@dataclass
class _Params:
    """Decoded request parameters with Telegram-like errors for missing/invalid values."""

    values: JSON

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def has(self, key: str) -> bool:
        return self.values.get(key) not in (None, "")

    def req_int(self, key: str, missing: str | None = None) -> int:
        value = self.values.get(key)
        if value in (None, ""):
            raise _bad(missing or f"{key} is empty")
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise _bad(f"invalid {key} specified")
        try:
            return int(value)
        except ValueError:
            raise _bad(f"invalid {key} specified") from None

    def opt_int(self, key: str) -> int | None:
        return self.req_int(key) if self.has(key) else None

    def req_float(self, key: str) -> float:
        value = self.values.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float | str) or value == "":
            raise _bad(f"invalid {key} specified")
        try:
            return float(value)
        except ValueError:
            raise _bad(f"invalid {key} specified") from None

    def opt_str(self, key: str) -> str | None:
        value = self.values.get(key)
        return None if value is None else str(value)

    def flag(self, key: str) -> bool:
        return self.values.get(key) in (True, 1, "true", "True", "1")


def _decode_value(key: str, value: Any) -> Any:
    if isinstance(value, web.FileField):
        return value
    if key in _STRING_KEYS:
        return value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


async def _read_params(request: web.Request) -> _Params:
    """GET query, JSON body, urlencoded or multipart form: all four are accepted by Telegram."""
    values: JSON = dict(request.query)
    if request.method == "POST" and request.body_exists:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _bad("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise _bad("can't parse JSON object")
            values.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            values.update(await request.post())
    return _Params({key: _decode_value(key, value) for key, value in values.items()})


def _json_response(body: JSON, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode())


# --- formatted text (parse_mode / entities) ------------------------------------------------------


def _entity_error(description: str) -> ApiError:
    return _bad(f"can't parse entities: {description}")


@dataclass
class _Open:
    tag: str
    entity: JSON | None  # None: the tag produces no entity (e.g. <code> inside <pre>)
    start: int  # UTF-16 offset in the output
    source_index: int


_HTML_TAG_RE: Final = re.compile(r"<(/?)([^\s<>/]*)([^<>]*)>")
_HTML_ATTR_RE: Final = re.compile(r"([A-Za-z-]+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?")
_HTML_CHAR_REF_RE: Final = re.compile(r"&(#[xX][0-9a-fA-F]{1,6}|#[0-9]{1,7}|lt|gt|amp|quot);")
_HTML_TYPES: Final = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "tg-spoiler": "spoiler", "span": "spoiler", "a": "text_link", "code": "code", "pre": "pre",
    "blockquote": "blockquote", "tg-emoji": "custom_emoji",
}  # fmt: skip
_NAMED_REFS: Final = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class _TextBuilder:
    """Collects output text and entities with UTF-16 offsets, as Telegram counts them."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.entities: list[JSON] = []

    def emit(self, text: str) -> None:
        self.parts.append(text)
        self.pos += _utf16_len(text)

    def close(self, entity: JSON | None, start: int) -> None:
        if entity is not None and self.pos > start:
            self.entities.append({**entity, "offset": start, "length": self.pos - start})

    def result(self) -> tuple[str, list[JSON]]:
        entities = sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), entities


class _HtmlParser:
    """Telegram's HTML subset; unknown tags and bad nesting fail like Telegram does."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.out = _TextBuilder()
        self.stack: list[_Open] = []

    def parse(self) -> tuple[str, list[JSON]]:
        i = 0
        while i < len(self.src):
            char = self.src[i]
            if char == "<":
                i = self._tag(i)
            elif char == "&":
                i = self._char_ref(i)
            else:
                nxt = min((j for j in (self.src.find("<", i), self.src.find("&", i)) if j >= 0),
                          default=len(self.src))  # fmt: skip
                self.out.emit(self.src[i:nxt])
                i = nxt
        if self.stack:
            tag = self.stack[-1].tag
            raise _entity_error(f'Can\'t find end tag corresponding to start tag "{tag}"')
        return self.out.result()

    def _tag(self, i: int) -> int:
        match = _HTML_TAG_RE.match(self.src, i)
        if match is None:
            bare = re.match(r"<[^\s<>]*", self.src[i:])
            found = bare.group(0)[1:] if bare else ""
            raise _entity_error(
                f'Unsupported start tag "{found}" at byte offset {_byte_offset(self.src, i)}'
            )
        closing, name, attrs = match.group(1) == "/", match.group(2).lower(), match.group(3)
        if closing:
            self._close(name, i)
        else:
            self._open(name, attrs, i)
        return match.end()

    def _open(self, name: str, raw_attrs: str, i: int) -> None:
        if name not in _HTML_TYPES:
            offset = _byte_offset(self.src, i)
            raise _entity_error(f'Unsupported start tag "{name}" at byte offset {offset}')
        attrs = {
            key.lower(): (value or "").strip("\"'")
            for key, value in _HTML_ATTR_RE.findall(raw_attrs)
        }
        entity: JSON | None = {"type": _HTML_TYPES[name]}
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise _entity_error('Tag "span" must have class "tg-spoiler"')
        if name == "a":
            entity = {"type": "text_link", "url": attrs["href"]} if attrs.get("href") else None
        elif name == "blockquote" and "expandable" in attrs:
            entity = {"type": "expandable_blockquote"}
        elif name == "tg-emoji":
            entity = {"type": "custom_emoji", "custom_emoji_id": attrs.get("emoji-id", "")}
        elif name == "code" and self.stack and self.stack[-1].tag == "pre":
            pre = self.stack[-1].entity
            language = attrs.get("class", "").removeprefix("language-")
            if pre is not None and language and attrs.get("class", "").startswith("language-"):
                pre["language"] = language
                entity = None
        self.stack.append(_Open(name, entity, self.out.pos, i))

    def _close(self, name: str, i: int) -> None:
        offset = _byte_offset(self.src, i)
        if not self.stack:
            raise _entity_error(f"Unexpected end tag at byte offset {offset}")
        top = self.stack[-1]
        if top.tag != name:
            raise _entity_error(
                f'Unmatched end tag at byte offset {offset}, expected "</{top.tag}>", '
                f'found "</{name}>"'
            )
        self.stack.pop()
        self.out.close(top.entity, top.start)

    def _char_ref(self, i: int) -> int:
        match = _HTML_CHAR_REF_RE.match(self.src, i)
        if match is None:
            self.out.emit("&")
            return i + 1
        ref = match.group(1)
        if ref.startswith(("#x", "#X")):
            code = int(ref[2:], 16)
        elif ref.startswith("#"):
            code = int(ref[1:])
        else:
            self.out.emit(_NAMED_REFS[ref])
            return match.end()
        self.out.emit(chr(code) if 0 < code <= 0x10FFFF else "\ufffd")
        return match.end()


_MD_V2_RESERVED: Final = frozenset("_*[]()~`>#+-=|{}.!")
_MD_NAMES: Final = {
    "bold": "Bold", "italic": "Italic", "underline": "Underline", "strikethrough": "Strikethrough",
    "spoiler": "Spoiler", "code": "Code", "pre": "Pre", "text_link": "TextUrl",
}  # fmt: skip
_MD_V2_MARKS: Final = (("__", "underline"), ("||", "spoiler"), ("*", "bold"), ("_", "italic"),
                       ("~", "strikethrough"))  # fmt: skip
_MD_V1_MARKS: Final = (("*", "bold"), ("_", "italic"))


class _MarkdownParser:
    """MarkdownV2 (strict, reserved characters must be escaped) and legacy Markdown."""

    def __init__(self, source: str, *, v2: bool) -> None:
        self.src = source
        self.v2 = v2
        self.out = _TextBuilder()
        self.stack: list[_Open] = []
        self.quote: int | None = None

    def _error_unclosed(self, item: _Open) -> ApiError:
        offset = _byte_offset(self.src, item.source_index)
        if not self.v2:
            return _entity_error(f"Can't find end of the entity starting at byte offset {offset}")
        name = _MD_NAMES.get(item.tag, item.tag)
        return _entity_error(f"Can't find end of {name} entity at byte offset {offset}")

    def parse(self) -> tuple[str, list[JSON]]:
        i = 0
        while i < len(self.src):
            i = self._step(i)
        if self.stack:
            raise self._error_unclosed(self.stack[-1])
        if self.quote is not None:
            self.out.close({"type": "blockquote"}, self.quote)
        return self.out.result()

    def _escapable(self, char: str) -> bool:
        return 0 < ord(char) < 127 if self.v2 else char in "_*`["

    def _step(self, i: int) -> int:
        src, char = self.src, self.src[i]
        if char == "\\" and i + 1 < len(src) and self._escapable(src[i + 1]):
            self.out.emit(src[i + 1])
            return i + 2
        if self.v2 and char == ">" and (i == 0 or src[i - 1] == "\n"):
            if self.quote is None:
                self.quote = self.out.pos
            return i + 1
        if char == "\n" and self.quote is not None and not src.startswith(">", i + 1):
            self.out.close({"type": "blockquote"}, self.quote)
            self.quote = None
        if char == "`":
            return self._code(i)
        if char == "[":
            self.stack.append(_Open("text_link", None, self.out.pos, i))
            return i + 1
        if char == "]" and self.stack and self.stack[-1].tag == "text_link":
            return self._link_end(i)
        for mark, kind in _MD_V2_MARKS if self.v2 else _MD_V1_MARKS:
            if src.startswith(mark, i) and self._toggle(kind, i):
                return i + len(mark)
        if self.v2 and char in _MD_V2_RESERVED:
            raise _entity_error(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
        self.out.emit(char)
        return i + 1

    def _toggle(self, kind: str, i: int) -> bool:
        """Opens or closes ``kind``; False when the mark is literal (legacy, inside an entity)."""
        if self.stack and self.stack[-1].tag == kind:
            top = self.stack.pop()
            self.out.close({"type": kind}, top.start)
            return True
        if any(item.tag == kind for item in self.stack):
            raise self._error_unclosed(self.stack[-1])
        if self.stack and not self.v2:
            return False
        self.stack.append(_Open(kind, None, self.out.pos, i))
        return True

    def _find_closing(self, start: int, closing: str) -> int:
        """Index of ``closing`` after ``start``, honouring backslash escapes in V2; -1 if none."""
        j = start
        while j < len(self.src):
            if self.v2 and self.src[j] == "\\" and j + 1 < len(self.src):
                j += 2
            elif self.src.startswith(closing, j):
                return j
            else:
                j += 1
        return -1

    def _unescape(self, text: str) -> str:
        return re.sub(r"\\([\\`)])", r"\1", text) if self.v2 else text

    def _code(self, i: int) -> int:
        is_pre = self.src.startswith("```", i)
        mark = "```" if is_pre else "`"
        body_start = i + len(mark)
        end = self._find_closing(body_start, mark)
        if end < 0:
            raise self._error_unclosed(_Open("pre" if is_pre else "code", None, 0, i))
        body = self.src[body_start:end]
        entity: JSON = {"type": "pre" if is_pre else "code"}
        first_line, newline, rest = body.partition("\n")
        if is_pre and newline and first_line and not re.search(r"\s", first_line):
            entity["language"] = first_line
            body = rest
        start = self.out.pos
        self.out.emit(self._unescape(body))
        self.out.close(entity, start)
        return end + len(mark)

    def _link_end(self, i: int) -> int:
        top = self.stack[-1]
        if not self.src.startswith("(", i + 1):
            raise self._error_unclosed(top)
        end = self._find_closing(i + 2, ")")
        if end < 0:
            raise self._error_unclosed(top)
        self.stack.pop()
        url = self._unescape(self.src[i + 2 : end])
        self.out.close({"type": "text_link", "url": url} if url else None, top.start)
        return end + 1


def _trim(text: str, entities: list[JSON]) -> tuple[str, list[JSON]]:
    """Telegram strips leading/trailing whitespace and clips entities accordingly."""
    left_trimmed = text.lstrip()
    shift = _utf16_len(text) - _utf16_len(left_trimmed)
    result = left_trimmed.rstrip()
    total = _utf16_len(result)
    clipped: list[JSON] = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] + entity["length"] - shift, total)
        if end > start:
            clipped.append({**entity, "offset": start, "length": end - start})
    return result, clipped


def _explicit_entities(raw: Any) -> list[JSON]:
    if not isinstance(raw, list) or not all(
        isinstance(e, dict) and isinstance(e.get("type"), str) for e in raw
    ):
        raise _bad("can't parse entities JSON object")
    return [dict(e) for e in raw]


def format_text(text: str | None, parse_mode: str | None, entities: Any) -> tuple[str, list[JSON]]:
    """Returns Telegram's view of a text: markup parsed into entities, whitespace trimmed."""
    source = text or ""
    mode = (parse_mode or "").lower()
    if entities not in (None, ""):
        parsed = source, _explicit_entities(entities)
    elif mode == "html":
        parsed = _HtmlParser(source).parse()
    elif mode in ("markdown", "markdownv2"):
        parsed = _MarkdownParser(source, v2=mode == "markdownv2").parse()
    elif mode:
        raise _bad(f"unsupported parse_mode {parse_mode!r}")
    else:
        parsed = source, []
    return _trim(*parsed)


def command_entities(text: str) -> list[JSON]:
    """bot_command entities Telegram adds to a user's text (``/start``, ``/help@SomeBot``)."""
    return [
        {
            "type": "bot_command",
            "offset": _utf16_len(text[: match.start()]),
            "length": _utf16_len(match.group(0)),
        }
        for match in _USER_COMMAND_RE.finditer(text)
    ]


# --- reply markup -------------------------------------------------------------------------------


def _validate_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise _bad('can\'t parse inline keyboard button: Field "text" must be of type String')
    actions = [key for key in _INLINE_BUTTON_ACTIONS if key in button]
    if not actions:
        raise _bad(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    data = button.get("callback_data")
    if "callback_data" in button and (
        not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES
    ):
        raise _bad("BUTTON_DATA_INVALID")
    url = button.get("url")
    if "url" in button and (
        not isinstance(url, str) or urlparse(url).scheme not in ("http", "https", "tg")
    ):
        raise _bad(f"inline keyboard button URL '{url}' is invalid: unsupported URL protocol")


def _rows(markup: JSON, key: str) -> list[list[Any]]:
    rows = markup.get(key)
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad(f'Field "{key}" of the reply markup must be an Array of Arrays')
    return rows


def validate_markup(markup: Any, *, inline_only: bool = False) -> JSON | None:
    """Checks reply_markup like Telegram; string buttons of reply keyboards become ``{text}``."""
    if markup in (None, ""):
        return None
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        for row in _rows(markup, "inline_keyboard"):
            for button in row:
                _validate_inline_button(button)
        return markup
    if inline_only:
        raise _bad("inline keyboard expected")
    if "keyboard" in markup:
        rows = [
            [button if isinstance(button, dict) else {"text": str(button)} for button in row]
            for row in _rows(markup, "keyboard")
        ]
        return {**markup, "keyboard": rows}
    if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
        return markup
    raise _bad("can't parse reply keyboard markup JSON object")


def _command_scope_key(scope: Any) -> str:
    if scope in (None, ""):
        return "default"
    if not isinstance(scope, dict) or not isinstance(scope.get("type"), str):
        raise _bad("can't parse BotCommandScope JSON object")
    kind = str(scope["type"])
    if kind in ("chat", "chat_administrators"):
        return f"{kind}:{scope.get('chat_id')}"
    if kind == "chat_member":
        return f"chat_member:{scope.get('chat_id')}:{scope.get('user_id')}"
    if kind not in ("default", "all_private_chats", "all_group_chats", "all_chat_administrators"):
        raise _bad("wrong BotCommandScope type specified")
    return kind


def _validate_commands(raw: Any) -> list[JSON]:
    if not isinstance(raw, list) or len(raw) > 100:
        raise _bad("can't parse commands JSON object")
    commands: list[JSON] = []
    for item in raw:
        if not isinstance(item, dict):
            raise _bad("can't parse BotCommand JSON object")
        command, description = item.get("command"), item.get("description")
        if not isinstance(command, str) or not _COMMAND_RE.fullmatch(command):
            raise _bad("BOT_COMMAND_INVALID")
        if not isinstance(description, str) or not 1 <= len(description) <= 256:
            raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        commands.append({"command": command, "description": description})
    return commands


def _bot_id_from_token(token: str) -> int:
    head = token.split(":", 1)[0]
    return int(head) if head.isdigit() else 123456


# --- the server ---------------------------------------------------------------------------------


class LoopbackBotApi:
    """Fake Telegram Bot API server on loopback, with simulated users; see the module doc.

    ``rate_limits`` / ``clock`` tune flood control (``enforce_rate_limits``); the clock only
    drives the token buckets, so tests can step time without affecting long-poll timeouts.
    ``record_sends`` keeps `sent_log`, the server's own record of every sendMessage it
    accepted (bench/broadcast.py counts copies and the rate from it); off, it costs nothing.
    """

    def __init__(
        self,
        token: str = "123456:SANDBOX-TOKEN",
        host: str = "127.0.0.1",
        port: int = 0,
        bot_username: str = "CrisisCommsBot",
        enforce_rate_limits: bool = False,
        *,
        bot_first_name: str = "Crisis Comms",
        rate_limits: RateLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        record_sends: bool = False,
    ) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.bot_id = _bot_id_from_token(token)
        self.enforce_rate_limits = enforce_rate_limits
        # Differs per server process, so a page long-polling across a restart resyncs at once.
        self.instance_id = secrets.token_hex(6)
        self._flood = _FloodControl(rate_limits or RateLimits(), clock)
        self._clock = clock
        self.record_sends = record_sends
        self.sent_log: list[SentRecord] = []
        self._users: dict[int, SimUser] = {}
        self._chats: dict[int, _Chat] = {}
        self._updates: list[_Update] = []
        self._update_ids = itertools.count(1)
        self._versions = itertools.count(1)
        self._serials = itertools.count(1)
        self._confirmed_offset = 0
        self._allowed_updates: list[str] | None = None
        self._webhook: JSON | None = None
        self._commands: dict[tuple[str, str], list[JSON]] = {}
        self._bot_settings: dict[str, Any] = {}
        self._callbacks: dict[str, _CallbackRecord] = {}
        self._files: dict[str, StoredFile] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._blocked: set[int] = set()
        self._rate_limited = 0
        self._poll_generation = 0
        self._signal = _Signal()
        self._closing = False
        self._app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._methods = self._method_table()

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        # A wildcard bind (e.g. in a container) is still reached through loopback locally.
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        host = "[::1]" if host == "::" else f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    @property
    def app(self) -> web.Application:
        if self._app is None:
            self._app = self.make_app()
        return self._app

    def make_app(self) -> web.Application:
        """A new aiohttp app serving the Bot API, file downloads and the sandbox page."""
        app = protect(web.Application(client_max_size=MAX_UPLOAD_BYTES))
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        add_page_routes(app, self)
        return app

    async def start(self) -> None:
        self._closing = False
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        # Release long polls first so the runner does not wait for them.
        self._closing = True
        self._signal.notify()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._app = None  # an aiohttp app cannot be started twice; start() builds a new one

    @property
    def closing(self) -> bool:
        return self._closing

    # --- HTTP plumbing --------------------------------------------------------------------------

    def _method_table(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {
            "getMe": self._get_me,
            "logOut": self._true,
            "close": self._true,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "sendChatAction": self._send_chat_action,
            "sendLocation": self._send_location,
            "sendVenue": self._send_venue,
            "sendDocument": self._send_document,
            "getFile": self._get_file,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setChatMenuButton": self._store_setting("menu_button"),
            "setMyDescription": self._store_setting("description"),
            "setMyShortDescription": self._store_setting("short_description"),
            "setMyName": self._store_setting("name"),
        }
        # Telegram matches method names case-insensitively.
        return {name.lower(): handler for name, handler in table.items()}

    async def _handle_method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error(ApiError(401, "Unauthorized"))
        name = request.match_info["method"].lower()
        handler = self._methods.get(name)
        if handler is None and name in _TELEGRAM_METHODS:
            method = request.match_info["method"]
            return self._error(_bad(f"{method} is not implemented by the loopback Bot API"))
        if handler is None:
            return self._error(ApiError(404, "Not Found"))
        try:
            params = await _read_params(request)
            self._injected_failure(name)
            result = await handler(params)
        except ApiError as error:
            return self._error(error)
        return _json_response({"ok": True, "result": result})

    def _error(self, error: ApiError) -> web.Response:
        if error.error_code == HTTPStatus.TOO_MANY_REQUESTS:
            self._rate_limited += 1
        return _json_response(error.to_json(), status=error.error_code)

    async def _handle_file(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        stored = next((f for f in self._files.values() if f.file_path == path), None)
        if request.match_info["token"] != self.token or stored is None:
            return _json_response(ApiError(404, "Not Found").to_json(), status=404)
        return web.Response(body=stored.content, content_type=stored.mime_type)

    def fail_next(
        self,
        method: str,
        *,
        error_code: int = 429,
        retry_after: int | None = None,
        description: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail the way Telegram would."""
        if error_code == HTTPStatus.TOO_MANY_REQUESTS and retry_after is None:
            retry_after = 1
        if description is None:
            description = self._default_failure_text(error_code, retry_after)
        failure = _Failure(error_code, description, retry_after, times)
        self._failures.setdefault(method.lower(), []).append(failure)

    @staticmethod
    def _default_failure_text(error_code: int, retry_after: int | None) -> str:
        if error_code == HTTPStatus.TOO_MANY_REQUESTS:
            return f"Too Many Requests: retry after {retry_after}"
        if error_code == HTTPStatus.FORBIDDEN:
            return "Forbidden: bot was blocked by the user"
        if error_code == HTTPStatus.BAD_REQUEST:
            return "Bad Request: injected failure"
        try:
            return HTTPStatus(error_code).phrase
        except ValueError:
            return "Injected failure"

    def _injected_failure(self, method: str) -> None:
        queue = self._failures.get(method)
        if not queue:
            return
        failure = queue[0]
        failure.remaining -= 1
        if failure.remaining <= 0:
            queue.pop(0)
        raise ApiError(failure.error_code, failure.description, retry_after=failure.retry_after)

    # --- JSON shapes ----------------------------------------------------------------------------

    def bot_user(self) -> JSON:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def _chat_json(self, chat: _Chat) -> JSON:
        if chat.type == "private":
            return self._users[chat.id].private_chat()
        return {"id": chat.id, "type": chat.type, "title": chat.title or "Group"}

    def message_json(self, msg: ChatMessage, *, with_reply: bool = True) -> JSON:
        """The Telegram ``Message`` object for a stored message, as the Bot API returns it."""
        chat = self._chats[msg.chat_id]
        sender = self.bot_user() if msg.from_bot else self._users[msg.sender_id].to_api()
        data: JSON = {
            "message_id": msg.message_id,
            "from": sender,
            "chat": self._chat_json(chat),
            "date": msg.date,
        }
        if msg.edit_date is not None:
            data["edit_date"] = msg.edit_date
        target = chat.messages.get(msg.reply_to_message_id or 0)
        if with_reply and target is not None and not target.deleted:
            data["reply_to_message"] = self.message_json(target, with_reply=False)
        if msg.text is not None:
            data["text"] = msg.text
        if msg.caption is not None:
            data["caption"] = msg.caption
        if msg.entities:
            data["entities" if msg.text is not None else "caption_entities"] = msg.entities
        for key in ("location", "venue", "document"):
            if getattr(msg, key) is not None:
                data[key] = getattr(msg, key)
        data.update(msg.media)
        # Telegram only echoes inline keyboards back; reply keyboards are not part of a Message.
        if msg.reply_markup is not None and "inline_keyboard" in msg.reply_markup:
            data["reply_markup"] = msg.reply_markup
        return copy.deepcopy(data)

    # --- internal state helpers -----------------------------------------------------------------

    def _touch(self, chat: _Chat) -> None:
        chat.version = next(self._versions)
        self._signal.notify()

    def _push_update(self, kind: str, payload: JSON) -> _Update:
        update = _Update(next(self._update_ids), kind, payload)
        self._updates.append(update)
        self._signal.notify()
        return update

    def _new_message(
        self, chat: _Chat, *, from_bot: bool, sender_id: int, **fields: Any
    ) -> ChatMessage:
        msg = ChatMessage(
            message_id=chat.next_message_id,
            chat_id=chat.id,
            from_bot=from_bot,
            sender_id=sender_id,
            date=int(time.time()),
            **fields,
        )
        chat.next_message_id += 1
        chat.messages[msg.message_id] = msg
        return msg

    def _record(self, chat: _Chat, event: BotEvent) -> None:
        chat.events.append(event)
        self._touch(chat)

    def _resolve_chat(self, params: _Params) -> _Chat:
        """The chat a bot request targets, with Telegram's errors for unknown/blocked chats."""
        raw = params.get("chat_id")
        if raw in (None, ""):
            raise _bad("chat_id is empty")
        try:
            chat = self._chats.get(int(raw))
        except (TypeError, ValueError):
            chat = None  # "@channelusername": no channels here
        if chat is None:
            raise _bad("chat not found")
        return chat

    def _sendable_chat(self, params: _Params) -> _Chat:
        chat = self._resolve_chat(params)
        if chat.type == "private" and chat.id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat.type == "private" and not chat.started:
            raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        return chat

    def _check_flood(self, chat: _Chat) -> None:
        if not self.enforce_rate_limits:
            return
        retry_after = self._flood.retry_after(chat.id, chat.type)
        if retry_after is not None:
            raise ApiError(
                429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after
            )

    def _reply_target(self, chat: _Chat, params: _Params) -> int | None:
        reply = params.get("reply_parameters")
        allow = params.flag("allow_sending_without_reply")
        if isinstance(reply, dict):
            message_id = reply.get("message_id")
            allow = allow or bool(reply.get("allow_sending_without_reply"))
        else:
            message_id = params.opt_int("reply_to_message_id")
        if not isinstance(message_id, int):
            return None
        target = chat.messages.get(message_id)
        if target is not None and not target.deleted:
            return message_id
        if allow:
            return None
        raise _bad("message to be replied not found")

    def _send_bot_message(self, chat: _Chat, params: _Params, **content: Any) -> JSON:
        markup = validate_markup(params.get("reply_markup"))
        reply_to = self._reply_target(chat, params)
        self._check_flood(chat)
        msg = self._new_message(
            chat,
            from_bot=True,
            sender_id=self.bot_id,
            reply_markup=markup,
            reply_to_message_id=reply_to,
            **content,
        )
        self._update_keyboard_state(chat, markup)
        self._record(chat, BotEvent("send", chat.id, copy.deepcopy(msg)))
        return self.message_json(msg)

    @staticmethod
    def _update_keyboard_state(chat: _Chat, markup: JSON | None) -> None:
        if markup is None or "inline_keyboard" in markup:
            return
        chat.force_reply = markup if markup.get("force_reply") else None
        if "keyboard" in markup:
            chat.reply_keyboard = markup
        elif markup.get("remove_keyboard"):
            chat.reply_keyboard = None

    # --- Bot API methods ------------------------------------------------------------------------

    async def _true(self, params: _Params) -> bool:
        return True

    def _store_setting(self, key: str) -> Handler:
        async def handler(params: _Params) -> bool:
            self._bot_settings[key] = dict(params.values)
            return True

        return handler

    async def _get_me(self, params: _Params) -> JSON:
        return {
            **self.bot_user(),
            "can_join_groups": True,
            # Consistent with send_group_text delivering every group message to the bot.
            "can_read_all_group_messages": True,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: _Params) -> list[JSON]:
        if self._webhook is not None:
            raise ApiError(409, _WEBHOOK_CONFLICT)
        offset, limit = params.opt_int("offset"), params.opt_int("limit") or 100
        timeout = max(0, params.opt_int("timeout") or 0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed]
        if offset is not None:
            self._confirm(offset)
        # A newer getUpdates terminates a pending one, as Telegram does.
        self._poll_generation += 1
        generation = self._poll_generation
        self._signal.notify()
        deadline = time.monotonic() + timeout
        while True:
            if generation != self._poll_generation:
                raise ApiError(409, _WEBHOOK_CONFLICT if self._webhook else _POLL_CONFLICT)
            batch = self._deliverable()[: max(1, min(limit, 100))]
            if batch or self._closing:
                return [update.to_api() for update in batch]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await self._signal.wait(remaining)

    def _confirm(self, offset: int) -> None:
        if offset < 0:
            kept = self._updates[offset:]
            self._confirmed_offset = kept[0].update_id if kept else self._confirmed_offset
        else:
            self._confirmed_offset = max(self._confirmed_offset, offset)
        self._updates = [u for u in self._updates if u.update_id >= self._confirmed_offset]

    def _deliverable(self) -> list[_Update]:
        allowed = set(self._allowed_updates or _DEFAULT_ALLOWED_UPDATES)
        return [update for update in self._updates if update.kind in allowed]

    async def _set_webhook(self, params: _Params) -> bool:
        url = params.opt_str("url") or ""
        if not url:
            return await self._delete_webhook(params)
        if urlparse(url).scheme != "https":
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        if params.flag("drop_pending_updates"):
            self._updates.clear()
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed]
        self._webhook = {"url": url, "max_connections": params.opt_int("max_connections") or 40}
        self._poll_generation += 1  # a pending getUpdates ends with the webhook conflict
        self._signal.notify()
        return True

    async def _delete_webhook(self, params: _Params) -> bool:
        self._webhook = None
        if params.flag("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _get_webhook_info(self, params: _Params) -> JSON:
        info: JSON = {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._deliverable()),
        }
        if self._webhook is not None:
            info.update(self._webhook)
            if self._allowed_updates is not None:
                info["allowed_updates"] = self._allowed_updates
        return info

    def _formatted(
        self, params: _Params, key: str, entities_key: str, limit: int
    ) -> tuple[str, list[JSON]]:
        text, entities = format_text(
            params.opt_str(key), params.opt_str("parse_mode"), params.get(entities_key)
        )
        if len(text) > limit:
            raise _bad("message is too long" if key == "text" else "message caption is too long")
        return text, entities

    async def _send_message(self, params: _Params) -> JSON:
        chat = self._sendable_chat(params)
        text, entities = self._formatted(params, "text", "entities", MAX_TEXT_LENGTH)
        if not text:
            raise _bad("message text is empty")
        result = self._send_bot_message(chat, params, text=text, entities=entities)
        if self.record_sends:
            self.sent_log.append(SentRecord(chat.id, self._clock(), result["message_id"]))
        return result

    def _editable(self, params: _Params) -> tuple[_Chat, ChatMessage]:
        if params.has("inline_message_id"):
            raise _bad("message to edit not found")  # no inline mode in the sandbox
        chat = self._sendable_chat(params)
        message_id = params.req_int("message_id", "message identifier is not specified")
        msg = chat.messages.get(message_id)
        if msg is None or msg.deleted:
            raise _bad("message to edit not found")
        if not msg.from_bot:
            raise _bad("message can't be edited")
        return chat, msg

    def _apply_edit(self, chat: _Chat, msg: ChatMessage, **changes: Any) -> JSON:
        if all(getattr(msg, key) == value for key, value in changes.items()):
            raise _bad(_NOT_MODIFIED)
        for key, value in changes.items():
            setattr(msg, key, value)
        msg.edited = True
        msg.edit_date = int(time.time())
        self._record(chat, BotEvent("edit", chat.id, copy.deepcopy(msg)))
        return self.message_json(msg)

    async def _edit_message_text(self, params: _Params) -> JSON:
        chat, msg = self._editable(params)
        if msg.text is None:
            raise _bad("there is no text in the message to edit")
        text, entities = self._formatted(params, "text", "entities", MAX_TEXT_LENGTH)
        if not text:
            raise _bad("message text is empty")
        # Omitting reply_markup removes the inline keyboard, exactly like Telegram.
        markup = validate_markup(params.get("reply_markup"), inline_only=True)
        return self._apply_edit(chat, msg, text=text, entities=entities, reply_markup=markup)

    async def _edit_message_reply_markup(self, params: _Params) -> JSON:
        chat, msg = self._editable(params)
        markup = validate_markup(params.get("reply_markup"), inline_only=True)
        return self._apply_edit(chat, msg, reply_markup=markup)

    async def _delete_message(self, params: _Params) -> bool:
        chat = self._resolve_chat(params)
        msg = chat.messages.get(params.req_int("message_id", "message identifier is not specified"))
        if msg is None or msg.deleted:
            raise _bad("message to delete not found")
        if chat.type != "private" and not msg.from_bot:
            raise _bad("message can't be deleted")
        msg.deleted = True
        self._record(chat, BotEvent("delete", chat.id, copy.deepcopy(msg)))
        return True

    async def _answer_callback_query(self, params: _Params) -> bool:
        record = self._callbacks.get(params.opt_str("callback_query_id") or "")
        if record is None or record.answered:
            raise _bad(_QUERY_TOO_OLD)
        record.answered = True
        chat = self._chats[record.chat_id]
        text = params.opt_str("text") or None
        show_alert = params.flag("show_alert")
        msg = chat.messages.get(record.message_id)
        snapshot = copy.deepcopy(msg) if msg is not None else None
        if text:
            notice_id = len(chat.notices) + 1
            chat.notices.append({"id": notice_id, "text": text, "show_alert": show_alert})
        self._record(chat, BotEvent("answer_callback", chat.id, snapshot, text, show_alert))
        return True

    async def _send_chat_action(self, params: _Params) -> bool:
        chat = self._sendable_chat(params)
        action = params.opt_str("action") or ""
        if action not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        chat.action, chat.action_at = action, time.time()
        self._touch(chat)
        return True

    def _location(self, params: _Params) -> JSON:
        latitude, longitude = params.req_float("latitude"), params.req_float("longitude")
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise _bad("wrong location specified")
        location: JSON = {"latitude": latitude, "longitude": longitude}
        for key in ("horizontal_accuracy", "live_period", "heading", "proximity_alert_radius"):
            if params.has(key):
                location[key] = params.get(key)
        return location

    async def _send_location(self, params: _Params) -> JSON:
        chat = self._sendable_chat(params)
        return self._send_bot_message(chat, params, location=self._location(params))

    async def _send_venue(self, params: _Params) -> JSON:
        chat = self._sendable_chat(params)
        location = self._location(params)
        title, address = params.opt_str("title"), params.opt_str("address")
        if not title or not address:
            raise _bad("venue title and address must be non-empty")
        venue: JSON = {"location": location, "title": title, "address": address}
        for key in ("foursquare_id", "foursquare_type", "google_place_id", "google_place_type"):
            if params.has(key):
                venue[key] = params.get(key)
        return self._send_bot_message(chat, params, location=location, venue=venue)

    async def _send_document(self, params: _Params) -> JSON:
        chat = self._sendable_chat(params)
        caption, entities = self._formatted(
            params, "caption", "caption_entities", MAX_CAPTION_LENGTH
        )
        document = self._document_input(params)
        return self._send_bot_message(
            chat, params, document=document, caption=caption or None, entities=entities
        )

    def _document_input(self, params: _Params) -> JSON:
        value = params.get("document")
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value.removeprefix("attach://"))
        if isinstance(value, web.FileField):
            content = value.file.read()
            if not content:
                raise _bad("file must be non-empty")
            mime = value.content_type or "application/octet-stream"
            stored = self.store_file(content, value.filename or "file", mime, "documents")
            return self._document_json(stored)
        if isinstance(value, str) and value in self._files:
            return self._document_json(self._files[value])
        if isinstance(value, str) and urlparse(value).scheme in ("http", "https"):
            # No outbound network here: remember the name, as if Telegram had fetched it.
            name = urlparse(value).path.rsplit("/", 1)[-1] or "file"
            mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
            return self._document_json(self.store_file(b"", name, mime, "documents"))
        raise _bad("wrong file identifier/HTTP URL specified")

    @staticmethod
    def _document_json(stored: StoredFile) -> JSON:
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": stored.file_name,
            "mime_type": stored.mime_type,
            "file_size": len(stored.content),
        }

    def store_file(self, content: bytes, file_name: str, mime_type: str, folder: str) -> StoredFile:
        """Keeps a file so getFile and the file download URL work for it."""
        serial = next(self._serials)
        suffix = secrets.token_hex(8)
        extension = file_name.rsplit(".", 1)[-1] if "." in file_name else "bin"
        stored = StoredFile(
            file_id=f"BQACAgQAAxkBAAI{serial:05d}{suffix}",
            file_unique_id=f"AgAD{serial:04d}{suffix[:6]}",
            file_path=f"{folder}/file_{serial}.{extension}",
            content=content,
            file_name=file_name,
            mime_type=mime_type,
        )
        self._files[stored.file_id] = stored
        return stored

    def stored_file(self, file_id: str) -> StoredFile | None:
        return self._files.get(file_id)

    async def _get_file(self, params: _Params) -> JSON:
        stored = self._files.get(params.opt_str("file_id") or "")
        if stored is None:
            raise _bad("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }

    def _commands_key(self, params: _Params) -> tuple[str, str]:
        return _command_scope_key(params.get("scope")), params.opt_str("language_code") or ""

    async def _set_my_commands(self, params: _Params) -> bool:
        commands = _validate_commands(params.get("commands"))
        self._commands[self._commands_key(params)] = commands
        return True

    async def _get_my_commands(self, params: _Params) -> list[JSON]:
        return copy.deepcopy(self._commands.get(self._commands_key(params), []))

    async def _delete_my_commands(self, params: _Params) -> bool:
        self._commands.pop(self._commands_key(params), None)
        return True

    # --- simulated users ------------------------------------------------------------------------

    def add_user(
        self,
        first_name: str = "Test",
        language_code: str | None = "en",
        user_id: int | None = None,
        last_name: str | None = None,
        username: str | None = None,
        *,
        started: bool = False,
    ) -> SimUser:
        """Creates a simulated user, or updates the one with ``user_id``.

        Like Telegram, the bot may only write to a user who wrote to it first (anything else is
        403 "bot can't initiate conversation"); ``started=True`` means they did so earlier,
        e.g. to seed subscribers without sending /start."""
        first_name = first_name.strip()
        if not 1 <= len(first_name) <= 64:
            raise ValueError("first_name must be 1-64 characters")
        if user_id is None:
            user_id = next(i for i in itertools.count(FIRST_USER_ID) if i not in self._users)
        if user_id <= 0 or (user_id in self._chats and self._chats[user_id].type != "private"):
            raise ValueError(f"invalid user id {user_id}")
        user = SimUser(user_id, first_name, language_code, last_name, username)
        self._users[user_id] = user
        chat = self._chats.setdefault(user_id, _Chat(user_id, "private"))
        chat.started = chat.started or started
        self._touch(chat)
        return user

    def user(self, user_id: int) -> SimUser:
        if user_id not in self._users:
            raise KeyError(f"unknown simulated user {user_id}; call add_user() first")
        return self._users[user_id]

    def users(self) -> list[SimUser]:
        return list(self._users.values())

    def _user_chat(self, user_id: int) -> tuple[SimUser, _Chat]:
        user = self.user(user_id)
        return user, self._chats[user_id]

    def _user_message(self, chat: _Chat, user: SimUser, **fields: Any) -> JSON:
        msg = self._new_message(chat, from_bot=False, sender_id=user.id, **fields)
        chat.started = True
        if chat.reply_keyboard and chat.reply_keyboard.get("one_time_keyboard"):
            chat.reply_keyboard = None
        chat.force_reply = None
        self._touch(chat)
        payload = self.message_json(msg)
        self._push_update("message", payload)
        return copy.deepcopy(payload)

    @staticmethod
    def _check_text(text: str) -> str:
        if not text.strip():
            raise ValueError("text must not be empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise ValueError(f"text longer than {MAX_TEXT_LENGTH} characters")
        return text.strip()

    async def send_text(
        self, user_id: int, text: str, *, reply_to_message_id: int | None = None
    ) -> JSON:
        """The user types ``text`` in their private chat; returns the Telegram message."""
        user, chat = self._user_chat(user_id)
        text = self._check_text(text)
        if reply_to_message_id is not None and reply_to_message_id not in chat.messages:
            raise ValueError(f"no message {reply_to_message_id} to reply to")
        return self._user_message(
            chat,
            user,
            text=text,
            entities=command_entities(text),
            reply_to_message_id=reply_to_message_id,
        )

    async def press_button(
        self, user_id: int, message_id: int, callback_data: str, *, chat_id: int | None = None
    ) -> str:
        """The user taps an inline button (in their private chat, or in the group
        ``chat_id``); returns the callback query id.

        ``callback_data`` need not be on the message's current keyboard: stale keyboards and
        modified clients send such data to real bots too. Use ``button_data`` to find a label's.
        """
        user, chat = self._user_chat(user_id)
        if chat_id is not None and chat_id != user_id:
            if chat_id not in self._chats:
                raise ValueError(f"no chat {chat_id}")
            chat = self._chats[chat_id]
        msg = chat.messages.get(message_id)
        if msg is None or msg.deleted or not msg.from_bot:
            raise ValueError(f"no bot message {message_id} in chat {chat.id}")
        if not 1 <= len(callback_data.encode()) <= MAX_CALLBACK_DATA_BYTES:
            raise ValueError("callback_data must be 1-64 bytes, as Telegram allows")
        query_id = str(next(self._serials) * 1_000_003 + user_id)
        self._callbacks[query_id] = _CallbackRecord(chat.id, message_id)
        chat.started = True
        payload: JSON = {
            "id": query_id,
            "from": user.to_api(),
            "message": self.message_json(msg),
            "chat_instance": str(abs(chat.id * 7919 + self.bot_id)),
            "data": callback_data,
        }
        self._push_update("callback_query", payload)
        return query_id

    async def share_location(self, user_id: int, latitude: float, longitude: float) -> JSON:
        user, chat = self._user_chat(user_id)
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise ValueError("latitude must be in [-90, 90] and longitude in [-180, 180]")
        return self._user_message(
            chat, user, location={"latitude": latitude, "longitude": longitude}
        )

    def _fake_file(self, name: str, mime: str, folder: str, content: bytes) -> JSON:
        stored = self.store_file(content, name, mime, folder)
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(content),
        }

    async def send_sticker(self, user_id: int, emoji: str = "👍") -> JSON:
        user, chat = self._user_chat(user_id)
        sticker = {
            **self._fake_file("sticker.webp", "image/webp", "stickers", b"RIFF\x00WEBP"),
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
        }
        return self._user_message(chat, user, media={"sticker": sticker})

    async def send_photo(self, user_id: int, caption: str | None = None) -> JSON:
        user, chat = self._user_chat(user_id)
        sizes = [
            {**self._fake_file("photo.jpg", "image/jpeg", "photos", b"\xff\xd8" * size), "width": w,
             "height": w * 3 // 4}
            for size, w in ((40, 90), (400, 320), (4000, 1280))
        ]  # fmt: skip
        return self._user_message(
            chat, user, media={"photo": sizes}, caption=caption,
            entities=command_entities(caption) if caption else [],
        )  # fmt: skip

    async def send_voice(self, user_id: int, duration: int = 3) -> JSON:
        user, chat = self._user_chat(user_id)
        voice = {
            **self._fake_file("voice.oga", "audio/ogg", "voice", b"OggS" * 256),
            "duration": duration,
            "mime_type": "audio/ogg",
        }
        return self._user_message(chat, user, media={"voice": voice})

    async def send_document(
        self,
        user_id: int,
        file_name: str = "x.pdf",
        *,
        content: bytes = b"%PDF-1.4\n% sandbox document\n",
        mime_type: str | None = None,
        caption: str | None = None,
    ) -> JSON:
        user, chat = self._user_chat(user_id)
        mime = mime_type or mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        stored = self.store_file(content, file_name, mime, "documents")
        return self._user_message(chat, user, document=self._document_json(stored), caption=caption)

    async def send_contact(self, user_id: int, phone: str, first_name: str | None = None) -> JSON:
        """Shares a contact; without ``first_name`` it is the user's own (request_contact)."""
        user, chat = self._user_chat(user_id)
        contact: JSON = {"phone_number": phone, "first_name": first_name or user.first_name}
        if first_name is None:
            contact["user_id"] = user.id
        return self._user_message(chat, user, media={"contact": contact})

    async def edit_user_message(self, user_id: int, message_id: int, new_text: str) -> JSON:
        _, chat = self._user_chat(user_id)
        msg = chat.messages.get(message_id)
        if msg is None or msg.deleted or msg.from_bot or msg.text is None:
            raise ValueError(f"no text message {message_id} from user {user_id}")
        msg.text = self._check_text(new_text)
        msg.entities = command_entities(msg.text)
        msg.edited, msg.edit_date = True, int(time.time())
        self._touch(chat)
        payload = self.message_json(msg)
        self._push_update("edited_message", payload)
        return copy.deepcopy(payload)

    async def send_group_text(
        self, user_id: int, group_id: int, text: str, group_title: str = "Group"
    ) -> JSON:
        """The user writes in a basic group that includes the bot (group ids are negative)."""
        user = self.user(user_id)
        chat_id = -abs(group_id)
        chat = self._chats.setdefault(chat_id, _Chat(chat_id, "group", title=group_title))
        chat.title = group_title
        text = self._check_text(text)
        return self._user_message(chat, user, text=text, entities=command_entities(text))

    def block(self, user_id: int) -> None:
        """The user blocks the bot: sends and edits to them now fail with 403."""
        self._set_member_status(user_id, blocked=True)

    def unblock(self, user_id: int) -> None:
        self._set_member_status(user_id, blocked=False)

    def is_blocked(self, user_id: int) -> bool:
        return user_id in self._blocked

    def _set_member_status(self, user_id: int, *, blocked: bool) -> None:
        user, chat = self._user_chat(user_id)
        if blocked == (user_id in self._blocked):
            return
        (self._blocked.add if blocked else self._blocked.discard)(user_id)
        member: JSON = {"user": self.bot_user(), "status": "member"}
        kicked: JSON = {"user": self.bot_user(), "status": "kicked", "until_date": 0}
        # Telegram tells the bot through a my_chat_member update.
        self._push_update(
            "my_chat_member",
            {
                "chat": self._chat_json(chat),
                "from": user.to_api(),
                "date": int(time.time()),
                "old_chat_member": member if blocked else kicked,
                "new_chat_member": kicked if blocked else member,
            },
        )

    # --- observing the bot ----------------------------------------------------------------------

    def _chat(self, chat_id: int) -> _Chat:
        if chat_id not in self._chats:
            raise KeyError(f"unknown chat {chat_id}")
        return self._chats[chat_id]

    def transcript(self, chat_id: int) -> list[ChatMessage]:
        """All messages of a chat in order, both directions, deleted ones flagged."""
        chat = self._chat(chat_id)
        return [copy.deepcopy(chat.messages[key]) for key in sorted(chat.messages)]

    def last_bot_message(self, chat_id: int) -> ChatMessage | None:
        bot_messages = [m for m in self.transcript(chat_id) if m.from_bot and not m.deleted]
        return bot_messages[-1] if bot_messages else None

    @staticmethod
    def button_data(message: ChatMessage | JSON, label: str) -> str:
        """callback_data of the inline button labelled ``label`` (exact text)."""
        markup = (
            message.reply_markup
            if isinstance(message, ChatMessage)
            else message.get("reply_markup")
        )
        rows = (markup or {}).get("inline_keyboard", [])
        labels = [button.get("text") for row in rows for button in row]
        for row in rows:
            for button in row:
                if button.get("text") == label and "callback_data" in button:
                    return str(button["callback_data"])
        raise KeyError(f"no callback button {label!r}; buttons: {labels}")

    # The deadline is part of the test-facing API, hence a `timeout` parameter.
    async def wait_for_bot(
        self,
        chat_id: int,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[BotEvent]:
        """The next ``count`` bot events in the chat not returned by an earlier call."""
        deadline = time.monotonic() + timeout
        while True:
            chat = self._chats.get(chat_id)
            available = chat.events[chat.cursor :] if chat else []
            if chat is not None and len(available) >= count:
                chat.cursor += count
                return available[:count]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = ", ".join(event.summary() for event in available) or "nothing"
                raise BotEventTimeout(
                    f"expected {count} bot event(s) in chat {chat_id} within {timeout}s; "
                    f"got {len(available)}: {seen}"
                )
            await self._signal.wait(remaining)

    def pending_bot_events(self, chat_id: int) -> list[BotEvent]:
        """Bot events not yet consumed (consumes them)."""
        chat = self._chats.get(chat_id)
        if chat is None:
            return []
        events = chat.events[chat.cursor :]
        chat.cursor = len(chat.events)
        return events

    def commands(self, scope: str = "default", language_code: str = "") -> list[JSON]:
        """Commands stored by setMyCommands; ``scope`` like "default", "all_private_chats",
        "chat:<chat_id>"."""
        return copy.deepcopy(self._commands.get((scope, language_code), []))

    def effective_commands(self, user_id: int) -> list[JSON]:
        """What Telegram shows a user in their private chat (scope/language fallback order)."""
        language = self.user(user_id).language_code or ""
        for scope in (f"chat:{user_id}", "all_private_chats", "default"):
            for lang in (language, ""):
                if (scope, lang) in self._commands:
                    return copy.deepcopy(self._commands[(scope, lang)])
        return []

    def updates_confirmed(self, update_id: int) -> bool:
        return update_id < self._confirmed_offset

    def pending_updates(self) -> list[JSON]:
        """Updates not yet confirmed by the bot (not consumed)."""
        return [update.to_api() for update in self._updates]

    async def wait_for_updates(
        self,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[JSON]:
        """Waits until at least ``count`` updates are pending, returns them all."""
        deadline = time.monotonic() + timeout
        while len(self._updates) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BotEventTimeout(
                    f"expected {count} pending update(s), got {self.pending_updates()}"
                )
            await self._signal.wait(remaining)
        return self.pending_updates()

    @property
    def rate_limited_count(self) -> int:
        return self._rate_limited

    @property
    def webhook_url(self) -> str | None:
        return None if self._webhook is None else str(self._webhook["url"])

    def bot_settings(self) -> JSON:
        """Parameters of the last setChatMenuButton / setMyDescription / ... calls."""
        return copy.deepcopy(self._bot_settings)

    # --- sandbox page support -------------------------------------------------------------------

    def chat_version(self, chat_id: int) -> int:
        return self._chat(chat_id).version

    async def wait_chat_change(self, chat_id: int, after_version: int, max_wait: float) -> None:
        """Returns once the chat changed after ``after_version``, or after ``max_wait`` s."""
        deadline = time.monotonic() + max_wait
        while self.chat_version(chat_id) <= after_version and not self._closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await self._signal.wait(remaining)

    def chat_view(self, chat_id: int) -> JSON:
        """Everything the page renders for a chat."""
        chat = self._chat(chat_id)
        typing = chat.action if chat.action and time.time() - chat.action_at < 5 else None
        messages = [
            self._page_message(msg) for _, msg in sorted(chat.messages.items()) if not msg.deleted
        ]
        return {
            "instance": self.instance_id,
            "version": chat.version,
            "messages": messages,
            "reply_keyboard": copy.deepcopy(chat.reply_keyboard),
            "force_reply": copy.deepcopy(chat.force_reply),
            "notices": copy.deepcopy(chat.notices[-20:]),
            "action": typing,
        }

    def _page_message(self, msg: ChatMessage) -> JSON:
        data = self.message_json(msg, with_reply=False)
        data["from_bot"] = msg.from_bot
        data["edited"] = msg.edited
        data["kind"] = msg.content_kind
        data.pop("chat", None)
        data.pop("from", None)
        if msg.reply_to_message_id is not None:
            data["reply_to_message_id"] = msg.reply_to_message_id
        return data


async def _serve(port: int, token: str) -> None:
    api = LoopbackBotApi(token=token, port=port)
    await api.start()
    print(f"Sandbox chat page: {api.url}/")
    print(f"Bot API base_url:  {api.base_url}  (token {token})")
    try:
        await asyncio.Event().wait()
    finally:
        await api.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Loopback Telegram Bot API + sandbox chat page")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--token", default="123456:SANDBOX-TOKEN")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port, args.token))


if __name__ == "__main__":
    main()
