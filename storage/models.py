"""Every model, imported so that Alembic sees the whole schema."""

from evacuation.registrations import Registration
from feedback.items import Attachment, FeedbackItem
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
    "FeedbackItem",
    "LinkCode",
    "Mission",
    "Place",
    "Registration",
    "Shelter",
    "ShelterChange",
    "StaffMember",
    "Subscription",
    "metadata",
]
