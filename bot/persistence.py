"""Conversation state that survives a restart, read from the database the flows write.

python-telegram-bot writes persistence in batches, so a crash could lose the last step.
Our flows instead save their step in the same transaction as the answer (for the
registration: `Registration.step`), and this class only hands those steps back to the
ConversationHandler when the Application starts. The database is the one source of truth.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from telegram.ext import BasePersistence, PersistenceInput
from telegram.ext._utils.types import ConversationDict, ConversationKey

from evacuation.registrations import open_steps
from messages.contacts import ContactAddress
from storage.database import Database

REGISTRATION = "registration"

NOTHING_ELSE = PersistenceInput(
    bot_data=False, chat_data=False, user_data=False, callback_data=False
)


class FlowPersistence(BasePersistence[dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    def __init__(self, db: Database) -> None:
        super().__init__(store_data=NOTHING_ELSE, update_interval=60)
        self.db = db

    async def get_conversations(self, name: str) -> ConversationDict:
        if name != REGISTRATION:
            return {}
        async with self.db.transaction() as session:
            steps = await open_steps(session)
            rows = await session.execute(select(ContactAddress.contact_id, ContactAddress.chat_id))
            addresses = {contact_id: chat_id for contact_id, chat_id in rows}
        # Private chats only: the chat id is the user id.
        conversations: dict[ConversationKey, object] = {}
        for contact_id, step in steps:
            chat_id = addresses.get(contact_id)
            if chat_id is not None:
                conversations[(chat_id, chat_id)] = step
        return conversations

    async def update_conversation(
        self, name: str, key: ConversationKey, new_state: object | None
    ) -> None:
        """Nothing to do: the flow saved the step with the answer."""

    async def get_user_data(self) -> dict[int, dict[Any, Any]]:
        return {}

    async def get_chat_data(self) -> dict[int, dict[Any, Any]]:
        return {}

    async def get_bot_data(self) -> dict[Any, Any]:
        return {}

    async def get_callback_data(self) -> None:
        return None

    async def update_user_data(self, user_id: int, data: dict[Any, Any]) -> None:
        pass

    async def update_chat_data(self, chat_id: int, data: dict[Any, Any]) -> None:
        pass

    async def update_bot_data(self, data: dict[Any, Any]) -> None:
        pass

    async def update_callback_data(self, data: Any) -> None:
        pass

    async def drop_chat_data(self, chat_id: int) -> None:
        pass

    async def drop_user_data(self, user_id: int) -> None:
        pass

    async def refresh_user_data(self, user_id: int, user_data: dict[Any, Any]) -> None:
        pass

    async def refresh_chat_data(self, chat_id: int, chat_data: dict[Any, Any]) -> None:
        pass

    async def refresh_bot_data(self, bot_data: dict[Any, Any]) -> None:
        pass

    async def flush(self) -> None:
        pass
