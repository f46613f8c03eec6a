"""Short references people read aloud, write by hand or type back (registrations, feedback)."""

from __future__ import annotations

import re
import secrets

# No 0/O, 1/I/L, 2/Z, 5/S, 8/B: a code read aloud over a bad line or written by hand survives.
REFERENCE_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
REFERENCE_LENGTH = 6


def new_reference() -> str:
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


def normalize_reference(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text).upper()


def spoken(reference: str) -> str:
    """KM74PX → "KM7-4PX": two halves are easier to read aloud and to write down."""
    half = len(reference) // 2
    return f"{reference[:half]}-{reference[half:]}"
