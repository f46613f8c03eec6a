"""Dashboard passwords: argon2id hashes (argon2-cffi), never the password itself.

An admin sets a staff member's password on the server (`crisis-comms staff password STAFF_ID`,
read from standard input); the dashboard verifies it at login and re-hashes it when the
parameters recommended by argon2-cffi have changed since it was stored (`needs_rehash`).
"""

from __future__ import annotations

import contextlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.ext.asyncio import AsyncSession

from staff.models import StaffMember

MIN_LENGTH = 12
# Hashing is deliberately slow and memory-hard: a bound keeps one request from costing more.
MAX_LENGTH = 1024


class PasswordError(ValueError):
    """A password that may not be set; the message says why."""


def _hasher() -> PasswordHasher:
    # argon2-cffi's defaults follow RFC 9106's second recommended option (argon2id, 64 MiB).
    return PasswordHasher()


def check_strength(password: str) -> None:
    """PasswordError unless the password is long enough to be set (and short enough to hash)."""
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordError(f"a password has at most {MAX_LENGTH} characters")
    if password != password.strip():
        raise PasswordError("a password may not start or end with spaces")


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher().hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True if `password` matches the stored hash. No hash (never set) never matches, but
    costs the same time as a mismatch, so that a login does not reveal which members have
    a password."""
    if len(password) > MAX_LENGTH:
        return False
    hasher = _hasher()
    if stored is None:
        _burn_time(hasher, password)
        return False
    try:
        return hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True when the hash was made with other parameters than today's defaults."""
    try:
        return _hasher().check_needs_rehash(stored)
    except InvalidHashError:
        return True


def _burn_time(hasher: PasswordHasher, password: str) -> None:
    with contextlib.suppress(VerifyMismatchError, VerificationError, InvalidHashError):
        hasher.verify(_DUMMY_HASH, password)


# A hash of a random password nobody knows, made with the default parameters.
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$DoD1AgMybJZQsnQ0ae+hJg$"
    "qW6omwptaFeBvAvc/2QvIuS3DFreQRslVDDljsz2YOA"
)


async def set_password(session: AsyncSession, staff_id: int, password: str) -> StaffMember:
    """Store a new password for an active staff member; their dashboard sessions end (the
    session cookie carries a fingerprint of the hash). PasswordError says what is wrong."""
    member = await session.get(StaffMember, staff_id)
    if member is None:
        raise PasswordError(f"staff member {staff_id} is unknown")
    if not member.active:
        raise PasswordError(f"staff member {staff_id} is not active")
    member.password_hash = hash_password(password)
    return member
