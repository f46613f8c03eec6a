"""Per-person flood control for everything a person sends (the pace of free text alone is
feedback/intake.py's).

Every update from a person counts. Past `FloodLimits.updates` within `FloodLimits.window`,
their commands and button taps (inline buttons and main-menu labels) get one polite notice in
their language and then only what the phone needs: a tapped button's spinner stops, nothing
else is sent. Text, files, locations and contacts still reach the flows, which keep them:
flood control never loses what a person wrote. Staff are not limited.

The counts live in memory on the Application (bot_data), one small window per person, keyed
by the Telegram user id and never logged; windows that went quiet are dropped, and at most
`FloodLimits.max_people` are kept, so memory stays bounded. A restart forgets them. Webhook
workers count from the inbox instead (every update's arrival time, whichever worker took
it), so several workers hold a person to one limit; only the notice's "once per flood" is
per process.

A person's pace:

```mermaid
stateDiagram-v2
    [*] --> Normal
    Normal --> Limited: an update over the limit within the window
    Limited --> Limited: a command or tap (first one: the notice; then only answer())
    Limited --> Normal: the window holds no more than the limit again
```
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from telegram import Update
from telegram.error import BadRequest
from telegram.ext import ApplicationHandlerStop, ContextTypes, TypeHandler

from bot.keyboards import menu_item_for
from bot.people import current_person, pseudonym_of
from bot.services import Handler, Services, services_of
from bot.worker import current_attempt
from messages.i18n import N_
from staff.access import find_staff

_KEY = "flood"
GROUP = -10  # before every other handler group

NOTICE = N_("You are sending very quickly. Please wait a few seconds, then try again.")


@dataclass(frozen=True)
class FloodLimits:
    updates: int = 30
    window: timedelta = timedelta(seconds=30)
    max_people: int = 50_000  # windows kept at most; the quietest go first


@dataclass
class _Window:
    times: deque[datetime]  # the latest arrivals, at most `updates + 1`
    noticed: bool = False  # the notice was sent during this flood
    staff: bool | None = None  # looked up once per window, not once per held update


@dataclass
class FloodGate:
    """The windows of every person who wrote recently; one per Application."""

    limits: FloodLimits = field(default_factory=FloodLimits)
    # Ordered by last arrival (each arrival moves its window to the end).
    _windows: OrderedDict[int, _Window] = field(default_factory=OrderedDict, init=False, repr=False)

    def __len__(self) -> int:
        return len(self._windows)

    def arrive(self, who: int, now: datetime, shared: Sequence[datetime] | None = None) -> bool:
        """Count one update from `who`; True when it is over the limit. `shared`: the
        person's arrivals up to this one as the inbox recorded them (every worker's), which
        replace this process's own count."""
        self._evict(now)
        window = self._windows.pop(who, None)
        if window is None:
            window = _Window(deque(maxlen=self.limits.updates + 1))
        if shared:
            window.times.clear()
            window.times.extend(shared[-(self.limits.updates + 1) :])
        else:
            window.times.append(now)
        self._windows[who] = window
        while len(self._windows) > self.limits.max_people:
            self._windows.popitem(last=False)
        full = len(window.times) > self.limits.updates
        over = full and window.times[0] > now - self.limits.window
        if not over:
            window.noticed = False  # the pace dropped: a later flood gets a notice again
        return over

    def first_notice(self, who: int) -> bool:
        """True once per flood: whether to send the notice now."""
        window = self._windows.get(who)
        if window is None or window.noticed:
            return False
        window.noticed = True
        return True

    def staff(self, who: int) -> bool | None:
        """Whether `who` is staff, if it was looked up during this window."""
        window = self._windows.get(who)
        return None if window is None else window.staff

    def remember_staff(self, who: int, staff: bool) -> None:
        window = self._windows.get(who)
        if window is not None:
            window.staff = staff

    def _evict(self, now: datetime) -> None:
        """Drop the windows whose latest arrival left the window: they cannot be over it."""
        cutoff = now - self.limits.window
        while self._windows:
            oldest = next(iter(self._windows.values()))
            if oldest.times[-1] > cutoff:
                return
            self._windows.popitem(last=False)


def install(bot_data: dict[Any, Any], limits: FloodLimits) -> None:
    bot_data[_KEY] = FloodGate(limits)


def gate_of(bot_data: dict[Any, Any]) -> FloodGate:
    gate = bot_data[_KEY]
    assert isinstance(gate, FloodGate)
    return gate


def is_command_or_tap(update: Update, languages: tuple[str, ...]) -> bool:
    """What flood control may hold back: commands, inline button taps and main-menu taps.
    Everything else is content a flow keeps."""
    if update.callback_query is not None:
        return True
    message = update.message
    text = message.text if message is not None else None
    if text is None:
        return False
    return text.startswith("/") or menu_item_for(text, languages) is not None


async def check_pace(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.effective_user is None:
        return  # a channel post or a poll: nobody to count
    services = services_of(context)
    gate = gate_of(context.bot_data)
    who = update.effective_user.id
    shared = _inbox_arrivals(update)
    now = shared[-1] if shared else services.clock()
    if not gate.arrive(who, now, shared):
        return
    if not is_command_or_tap(update, services.settings.enabled_languages):
        return  # content goes on to the flows, which keep it
    staff = gate.staff(who)
    if staff is None:
        staff = await _is_staff(update, services)
        gate.remember_staff(who, staff)
    if staff:
        return
    await _answer_minimally(update, context, notice=gate.first_notice(who))
    raise ApplicationHandlerStop


def _inbox_arrivals(update: Update) -> tuple[datetime, ...] | None:
    """A webhook worker's update in a private chat: the person's arrivals from the inbox
    (the chat is the person there). None when polling, or in a group."""
    attempt = current_attempt.get()
    chat = update.effective_chat
    if attempt is None or chat is None or chat.type != "private":
        return None
    return attempt.arrivals


async def _is_staff(update: Update, services: Services) -> bool:
    pseudonym = pseudonym_of(update, services)
    if pseudonym is None:
        return False
    async with services.db.transaction() as session:
        return await find_staff(session, pseudonym) is not None


async def _answer_minimally(
    update: Update, context: ContextTypes.DEFAULT_TYPE, *, notice: bool
) -> None:
    """Stop the button's spinner; the first time, tell the person (in a private chat only:
    never in a group)."""
    if update.callback_query is not None:
        with suppress(BadRequest):  # a query too old to answer: its spinner stopped anyway
            await update.callback_query.answer()
    chat = update.effective_chat
    if not notice or chat is None or chat.type != "private":
        return
    person = await current_person(update, context)
    await context.bot.send_message(person.chat_id, person.gettext(NOTICE))


def handler() -> Handler:
    """Sees every update first (group GROUP); stops only the ones held back."""
    return TypeHandler(Update, check_pace)
