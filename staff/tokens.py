"""Bearer tokens for the staff web API: signed, expiring, and checked against the staff list.

A token is issued by an admin on the server (`crisis-comms staff token STAFF_ID --days N`) and
is an itsdangerous URL-safe timed token (HMAC-SHA256) over the staff member's id, the moment
the member was created, and the expiry. The signing key is derived from the deployment's
pseudonym key with a salt of its own, so nothing new must be kept secret, and a token can
never be mistaken for anything else signed with that key.

Nothing is stored: a token is revoked by deactivating the staff member (every request
re-reads the member, active flag and role included), or for everyone by changing the
pseudonym key. Binding the creation time means a token does not pass to a later member who
happens to get a reused id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncSession

from staff.models import StaffMember

SALT = "crisis-comms.staff-api-token.v1"
DEFAULT_DAYS = 7
MAX_DAYS = 90  # a forgotten token must not outlive a deployment's rotation of people


class TokenError(ValueError):
    """A token that does not let anyone in; the message says why (for the API's answer)."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    staff_id: int
    expires_at: datetime


def _serializer(key: bytes) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        key,
        salt=SALT,
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256},
    )


def _stamp(moment: datetime) -> int:
    return int(moment.timestamp())


def issue_token(key: bytes, member: StaffMember, *, days: int, now: datetime) -> IssuedToken:
    """A token for an active member, valid `days` days (1..MAX_DAYS) from `now`."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"a token is valid for 1 to {MAX_DAYS} days, not {days}")
    if not member.active:
        raise ValueError(f"staff member {member.id} is not active")
    expires_at = now + timedelta(days=days)
    payload = {"sid": member.id, "c": _stamp(member.created_at), "exp": _stamp(expires_at)}
    return IssuedToken(_serializer(key).dumps(payload), member.id, expires_at)


def read_token(key: bytes, token: str, now: datetime) -> tuple[int, int]:
    """The (staff id, creation stamp) a valid, unexpired token names; TokenError otherwise."""
    try:
        # The signature's own timestamp caps any token at MAX_DAYS, whatever its payload says.
        payload = _serializer(key).loads(token, max_age=(MAX_DAYS + 1) * 86400)
    except BadData:
        raise TokenError("the token is not valid") from None
    if not isinstance(payload, dict) or not all(
        isinstance(payload.get(name), int) for name in ("sid", "c", "exp")
    ):
        raise TokenError("the token is not valid")
    if payload["exp"] <= _stamp(now):
        expired = datetime.fromtimestamp(payload["exp"], UTC)
        raise TokenError(f"the token expired at {expired:%Y-%m-%d %H:%M} UTC")
    return payload["sid"], payload["c"]


async def staff_for_token(
    session: AsyncSession, key: bytes, token: str, now: datetime
) -> StaffMember:
    """The active staff member a token belongs to; TokenError for a bad or expired token,
    an unknown or inactive member."""
    staff_id, created = read_token(key, token, now)
    member = await session.get(StaffMember, staff_id)
    if member is None or _stamp(member.created_at) != created:
        raise TokenError("the token's staff member does not exist")
    if not member.active:
        raise TokenError("the token's staff member is not active")
    return member


def attribution(member: StaffMember) -> str:
    """How a staff member's changes are signed in history rows (`updated_by`, `by`): the name
    colleagues know, and the id that stays the same when two people share a name."""
    return f"{member.name.strip()[:96]} (staff #{member.id})"
