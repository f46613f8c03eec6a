"""Dashboard sign-in: session cookies, CSRF tokens, login throttling and who may see what.

- The session is an itsdangerous-signed cookie (HMAC-SHA256) over the staff member's id, the
  moment they were created, a fingerprint of their password hash and the issue time. The key
  derives from the deployment's pseudonym key with a salt of its own (as the staff API's
  tokens do). Nothing is stored server-side: a session ends when it expires
  (SESSION_LIFETIME), when the member is deactivated or their password changes (every
  request re-reads the member), or when they log out (the cookie is cleared).
- Every POST form carries a CSRF token: an HMAC of the session cookie, compared in constant
  time. The login form, before any session, uses a random pre-login cookie the same way.
- Failed logins are counted per client address and per username in a sliding window; past
  the limit, logins are refused without checking the password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from itsdangerous import BadData, URLSafeSerializer

from staff.models import Role, StaffMember

SESSION_SALT = "crisis-comms.dashboard-session.v1"
CSRF_SALT = b"crisis-comms.dashboard-csrf.v1"
SESSION_LIFETIME = timedelta(hours=8)

# Roles per part of the dashboard; admins are named explicitly, not implied.
QUEUE_ROLES = frozenset({Role.ADMIN, Role.RESPONDER, Role.PROTECTION_FOCAL_POINT})
SHELTER_ROLES = frozenset(
    {Role.ADMIN, Role.COMMUNICATIONS_OFFICER, Role.RESPONDER, Role.PROTECTION_FOCAL_POINT}
)
ALL_ROLES = frozenset(Role)


def sees_sensitive(member: StaffMember) -> bool:
    """Whether sensitive items count in this member's views: the rule of
    feedback.review.may_see (only the protection focal point), applied to aggregates."""
    return member.active and member.role is Role.PROTECTION_FOCAL_POINT


def _stamp(moment: datetime) -> int:
    return int(moment.timestamp())


def password_fingerprint(password_hash: str | None) -> str:
    """Changes whenever the password does, so that older sessions stop working."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SessionData:
    staff_id: int
    created: int
    password: str
    issued_at: datetime


class Sessions:
    """Issues and reads session cookies and the CSRF tokens bound to them."""

    def __init__(self, key: bytes, lifetime: timedelta = SESSION_LIFETIME) -> None:
        self._serializer = URLSafeSerializer(
            key,
            salt=SESSION_SALT,
            signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256},
        )
        self._csrf_key = hmac.new(key, CSRF_SALT, hashlib.sha256).digest()
        self.lifetime = lifetime

    def issue(self, member: StaffMember, now: datetime) -> str:
        payload = {
            "sid": member.id,
            "c": _stamp(member.created_at),
            "p": password_fingerprint(member.password_hash),
            "iat": _stamp(now),
        }
        return str(self._serializer.dumps(payload))

    def read(self, cookie: str, now: datetime) -> SessionData | None:
        """The session a valid, unexpired cookie names; None otherwise."""
        if not cookie.isascii():  # ours always is; other bytes would fail to encode
            return None
        try:
            payload = self._serializer.loads(cookie)
        except BadData:
            return None
        if not isinstance(payload, dict):
            return None
        staff_id, created, issued = payload.get("sid"), payload.get("c"), payload.get("iat")
        fingerprint = payload.get("p")
        if not (
            isinstance(staff_id, int)
            and isinstance(created, int)
            and isinstance(issued, int)
            and isinstance(fingerprint, str)
        ):
            return None
        issued_at = datetime.fromtimestamp(issued, now.tzinfo)
        # A cookie from the future is as wrong as an expired one.
        if not -timedelta(minutes=5) <= now - issued_at < self.lifetime:
            return None
        return SessionData(staff_id, created, fingerprint, issued_at)

    @staticmethod
    def matches(data: SessionData, member: StaffMember | None) -> bool:
        """The cookie still belongs to this member as they are now."""
        return (
            member is not None
            and member.active
            and _stamp(member.created_at) == data.created
            and member.password_hash is not None
            and hmac.compare_digest(password_fingerprint(member.password_hash), data.password)
        )

    def csrf_token(self, bound_to: str) -> str:
        """The token a form sends back; bound to the session (or pre-login) cookie."""
        # surrogateescape: a pre-login cookie holding bytes that are not UTF-8 still maps.
        message = bound_to.encode("utf-8", "surrogateescape")
        return hmac.new(self._csrf_key, message, hashlib.sha256).hexdigest()

    def csrf_ok(self, bound_to: str | None, token: str | None) -> bool:
        if not bound_to or not token or not token.isascii():  # compare_digest needs ASCII
            return False
        return hmac.compare_digest(self.csrf_token(bound_to), token)

    @staticmethod
    def new_prelogin() -> str:
        return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class ThrottleLimits:
    per_name: int = 5  # failed attempts on one username
    per_address: int = 20  # failed attempts from one client address (all usernames)
    window: timedelta = timedelta(minutes=15)
    max_keys: int = 10_000  # memory bound: the oldest keys are forgotten first


@dataclass
class LoginThrottle:
    """Failed login attempts in a sliding window, per key ("name:…", "addr:…")."""

    limits: ThrottleLimits = field(default_factory=ThrottleLimits)
    _failures: dict[str, deque[datetime]] = field(default_factory=dict)

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] >= self.limits.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, name: str, address: str, now: datetime) -> timedelta | None:
        """None if a login may be tried now; otherwise how long until it may."""
        waits = []
        for key, limit in (
            (f"name:{name.strip().lower()}", self.limits.per_name),
            (f"addr:{address}", self.limits.per_address),
        ):
            times = self._recent(key, now)
            if len(times) >= limit:
                waits.append(times[len(times) - limit] + self.limits.window - now)
        return max(waits) if waits else None

    def failed(self, name: str, address: str, now: datetime) -> None:
        for key in (f"name:{name.strip().lower()}", f"addr:{address}"):
            self._failures.setdefault(key, deque()).append(now)
            # dicts keep insertion order: re-insert so the oldest-touched key goes first.
            self._failures[key] = self._failures.pop(key)
        while len(self._failures) > self.limits.max_keys:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, name: str) -> None:
        self._failures.pop(f"name:{name.strip().lower()}", None)
