"""Which language to answer in.

Precedence: the person's explicit choice (kept until they change it) > a confident
detection of what they write > the Telegram client's language (a hint only) > the
deployment default. A chosen language is never switched automatically: after several
recent messages confidently in another enabled language, the person is offered the switch.
"""

from __future__ import annotations

from messages.detection import Detection
from messages.languages import match_language

CONFIDENT = 0.8  # detections below this count as "unknown"
SWITCH_AFTER = 3  # this many confident messages in a row in another language → offer
_SEPARATOR = ","


def initial_language(
    detection: Detection | None, hint: str | None, enabled: tuple[str, ...], default: str
) -> str:
    """The language for someone who has not chosen one yet."""
    if detection is not None and detection.language and detection.confidence >= CONFIDENT:
        detected = match_language(detection.language, enabled)
        if detected:
            return detected
    return match_language(hint, enabled) or default


def remember(recent: str | None, detection: Detection, keep: int = SWITCH_AFTER) -> str:
    """The contact's recent-language trail with this message added (codes only, no text)."""
    code = detection.language if detection.confidence >= CONFIDENT and detection.language else "?"
    trail = [*(recent.split(_SEPARATOR) if recent else []), code]
    return _SEPARATOR.join(trail[-keep:])


def switch_suggestion(
    chosen: str | None, recent: str | None, enabled: tuple[str, ...]
) -> str | None:
    """The language to offer when the last messages were all confidently in another one."""
    trail = recent.split(_SEPARATOR) if recent else []
    if len(trail) < SWITCH_AFTER or len(set(trail)) != 1 or trail[0] == "?":
        return None
    candidate = match_language(trail[0], enabled)
    if candidate is None or chosen is None or _same_language(candidate, chosen):
        return None
    return candidate


def _same_language(a: str, b: str) -> bool:
    """Dari (fa-AF) readers writing Persian script are not asking to switch to Persian."""
    return a.split("-")[0] == b.split("-")[0]
