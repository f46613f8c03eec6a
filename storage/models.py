"""Every model, imported so that Alembic sees the whole schema."""

from messages.contacts import Contact, ContactAddress, Subscription
from staff.models import LinkCode, StaffMember
from storage.base import Base

metadata = Base.metadata

__all__ = ["Contact", "ContactAddress", "LinkCode", "StaffMember", "Subscription", "metadata"]
