"""Every model, imported so that Alembic sees the whole schema."""

from evacuation.registrations import Registration
from feedback.codes import Correction
from feedback.items import Attachment, FeedbackItem, ItemCode
from feedback.notices import Notice
from feedback.protection import ProtectionAlert
from feedback.replies import Reply
from feedback.review import ItemEvent
from feedback.rollups import FeedbackCount
from inbox.conversations import ConversationState
from inbox.updates import InboxUpdate
from inbox.workers import WorkerBeat
from messages.broadcasts import Broadcast
from messages.consulates import Mission
from messages.contacts import Contact, ContactAddress, Subscription
from messages.misses import ServiceMiss
from messages.outbox import OutboxMessage, SendPace
from messages.places import Place
from messages.shelters import Shelter, ShelterChange
from staff.audit import AuditEvent
from staff.models import LinkCode, StaffMember
from storage.base import Base

metadata = Base.metadata

__all__ = [
    "Attachment",
    "AuditEvent",
    "Broadcast",
    "Contact",
    "ContactAddress",
    "ConversationState",
    "Correction",
    "FeedbackCount",
    "FeedbackItem",
    "InboxUpdate",
    "ItemCode",
    "ItemEvent",
    "LinkCode",
    "Mission",
    "Notice",
    "OutboxMessage",
    "Place",
    "ProtectionAlert",
    "Registration",
    "Reply",
    "SendPace",
    "ServiceMiss",
    "Shelter",
    "ShelterChange",
    "StaffMember",
    "Subscription",
    "WorkerBeat",
    "metadata",
]
