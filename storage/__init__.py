"""One database layer for every domain: SQLAlchemy 2 async, Alembic migrations.

Models live beside the domain that owns them (messages.contacts, staff.models);
this package only holds what they share.
"""
