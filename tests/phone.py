"""A simulated person with a phone: sends what a person sends, reads what the bot answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.sandbox.botapi import BotEvent, ChatMessage, LoopbackBotApi

TIMEOUT = 10.0


@dataclass
class Phone:
    api: LoopbackBotApi
    user_id: int
    seen: list[BotEvent] = field(default_factory=list)

    @classmethod
    def of(cls, api: LoopbackBotApi, first_name: str, language_code: str | None) -> Phone:
        user = api.add_user(first_name=first_name, language_code=language_code)
        return cls(api, user.id)

    async def send(self, text: str) -> ChatMessage:
        """Send text and return the next message the bot sends in answer."""
        await self.api.send_text(self.user_id, text)
        return await self.next_message()

    async def next_message(self) -> ChatMessage:
        """The next message the bot sends, after any edits or callback answers before it."""
        event = await self.next_event("send")
        assert event.message is not None
        return event.message

    async def next_edit(self) -> ChatMessage:
        event = await self.next_event("edit")
        assert event.message is not None
        return event.message

    async def next_event(self, kind: str) -> BotEvent:
        while True:
            (event,) = await self.api.wait_for_bot(self.user_id, count=1, timeout=TIMEOUT)
            self.seen.append(event)
            if event.kind == kind:
                return event

    async def tap(self, message: ChatMessage, label: str) -> ChatMessage:
        """Press the inline button whose label contains `label`; return the next message."""
        data = inline_data(message, label)
        await self.api.press_button(self.user_id, message.message_id, data)
        return await self.next_message()

    async def press_data(self, message_id: int, data: str) -> None:
        await self.api.press_button(self.user_id, message_id, data)

    async def answered_callbacks(self) -> list[str | None]:
        return [e.callback_text for e in self.seen if e.kind == "answer_callback"]


def inline_labels(message: ChatMessage) -> list[str]:
    markup: dict[str, Any] = message.reply_markup or {}
    return [b["text"] for row in markup.get("inline_keyboard", []) for b in row]


def inline_data(message: ChatMessage, label: str) -> str:
    markup: dict[str, Any] = message.reply_markup or {}
    for row in markup.get("inline_keyboard", []):
        for button in row:
            if label in button["text"]:
                return str(button["callback_data"])
    raise AssertionError(f"no inline button {label!r} in {inline_labels(message)}")


def reply_labels(message: ChatMessage) -> list[str]:
    markup: dict[str, Any] = message.reply_markup or {}
    return [
        b["text"] if isinstance(b, dict) else str(b)
        for row in markup.get("keyboard", [])
        for b in row
    ]
