"""Every model, imported so that Alembic sees the whole schema."""

from evacuation.registrations import Registration
from feedback.codes import Correction, ItemCode
from feedback.items import Attachment, FeedbackItem
from feedback.protection import ProtectionAlert
from feedback.replies import Reply
from feedback.review import ItemEvent
from messages.consulates import Mission
from messages.contacts import Contact, ContactAddress, Subscription
from messages.places import Place
from messages.shelters import Shelter, ShelterChange
from staff.models import LinkCode, StaffMember
from storage.base import Base

metadata = Base.metadata

__all__ = [
    "Attachment",
    "Contact",
    "ContactAddress",
    "Correction",
    "FeedbackItem",
    "ItemCode",
    "ItemEvent",
    "LinkCode",
    "Mission",
    "Place",
    "ProtectionAlert",
    "Registration",
    "Reply",
    "Shelter",
    "ShelterChange",
    "StaffMember",
    "Subscription",
    "metadata",
]
