"""Right-to-left text that stays readable when it carries left-to-right inserts.

In an Arabic, Persian, Pashto or Urdu sentence, a phone number, a reference code or an
address in Latin script is reordered by the Unicode bidirectional algorithm and can
scramble the sentence around it. Each such insert is wrapped in a directional isolate
(LRI … PDI, Unicode UAX #9), which Telegram's clients honour, so it reads as one
left-to-right unit inside the right-to-left sentence.
"""

from __future__ import annotations

import unicodedata
from typing import Any

LRI = "\u2066"  # left-to-right isolate
FSI = "\u2068"  # first-strong isolate
PDI = "\u2069"  # pop directional isolate
RLM = "\u200f"  # right-to-left mark


def has_ltr(text: str) -> bool:
    """True when the text has a left-to-right letter or a digit (digits are weak, but a
    phone number's "+" and spaces reorder around them)."""
    return any(unicodedata.bidirectional(ch) in ("L", "EN", "AN") for ch in text)


def is_rtl_text(text: str) -> bool:
    return any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in text)


def isolate(value: str) -> str:
    """Wrap an insert: left-to-right when it has no right-to-left letters, else first-strong."""
    if not value or value.startswith((LRI, FSI)):
        return value
    return (FSI if is_rtl_text(value) else LRI) + value + PDI


def format_text(template: str, rtl: bool, /, **values: Any) -> str:
    """`template.format(**values)`, isolating left-to-right values in a right-to-left text."""
    if not rtl:
        return template.format(**values)
    isolated = {
        key: isolate(str(value)) if has_ltr(str(value)) else value for key, value in values.items()
    }
    return template.format(**isolated)
