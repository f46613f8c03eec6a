"""Where things are and what they are called: coordinates, distances, and the name matching
that lets a person find a place or a country by typing it in their own language and script.

Everything here is offline and pure: no geocoding service ever sees what a person typed.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

from rapidfuzz import fuzz

# Mean Earth radius (IUGG), good to about 0.5 % for the haversine distance.
EARTH_RADIUS_M = 6_371_008.8

# Similarity (0..1) below which a typed name is not offered as a match. Chosen on the demo
# gazetteer and the country names: one or two typos in a name of six or more letters score
# above it, unrelated names ("Atlantis", "asdfgh") score well below it.
MATCH_CUTOFF = 0.8


def valid_coordinates(latitude: float, longitude: float) -> bool:
    """A real point on Earth: finite, latitude -90..90, longitude -180..180, and not (0, 0).

    (0, 0) lies in the open sea; in humanitarian spreadsheets it almost always means two
    empty cells exported as zeros, so it is refused rather than shown as a shelter.
    """
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        return False
    if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):
        return False
    return not (latitude == 0.0 and longitude == 0.0)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The great-circle distance in metres between two points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi = phi2 - phi1
    d_lambda = math.radians(lon2 - lon1)
    a = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class BoundingBox:
    """A latitude/longitude box that contains every point within a radius of its centre.

    Used as a cheap SQL prefilter (plain comparisons on indexed columns, the same on SQLite
    and PostgreSQL); the exact distance is then computed in Python on the few rows left.
    """

    min_lat: float
    max_lat: float
    min_lon: float
    max_lon: float


def bounding_box(latitude: float, longitude: float, radius_m: float) -> BoundingBox:
    """The box around a point. Near a pole or across the antimeridian, where a box in degrees
    would wrap, it spans every longitude: correct, only a little less selective."""
    d_lat = math.degrees(radius_m / EARTH_RADIUS_M)
    min_lat, max_lat = max(-90.0, latitude - d_lat), min(90.0, latitude + d_lat)
    cos_lat = math.cos(math.radians(max(abs(min_lat), abs(max_lat))))
    if cos_lat < 1e-6:
        return BoundingBox(min_lat, max_lat, -180.0, 180.0)
    d_lon = math.degrees(radius_m / (EARTH_RADIUS_M * cos_lat))
    if d_lon >= 180.0 or longitude - d_lon < -180.0 or longitude + d_lon > 180.0:
        return BoundingBox(min_lat, max_lat, -180.0, 180.0)
    return BoundingBox(min_lat, max_lat, longitude - d_lon, longitude + d_lon)


# Letters that carry no combining mark to strip, yet readers treat as the plain letter.
_LATIN_FOLD = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ı": "i", "æ": "ae"})
# Arabic-script spellings that people (and keyboards) use interchangeably: hamza seats of
# alef, alef maqsura and Persian yeh, teh marbuta and heh, Persian and Arabic kaf, waw with
# hamza; tatweel (the stretching stroke) is dropped.
_ARABIC_FOLD = str.maketrans(
    {
        "أ": "ا",
        "إ": "ا",
        "آ": "ا",
        "ٱ": "ا",
        "ى": "ي",
        "ی": "ي",
        "ئ": "ي",
        "ة": "ه",
        "ۀ": "ه",
        "ک": "ك",
        "ؤ": "و",
        "ـ": None,
    }
)


def _is_arabic_mark(char: str) -> bool:
    """Tashkeel (short vowels, shadda, sukun), Quranic marks and the superscript alef."""
    code = ord(char)
    return 0x064B <= code <= 0x065F or code == 0x0670 or 0x06D6 <= code <= 0x06ED


def normalize_name(text: str) -> str:
    """A name reduced to what matters for matching what a person types.

    NFKC and casefold; accents stripped from Latin letters ("Érythrée" = "erythree") but kept
    in other scripts, where marks are letters (Ukrainian "й", Bengali vowel signs); Arabic
    tashkeel removed and letter variants unified; zero-width joiners dropped; punctuation
    turned into spaces, collapsed.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    kept: list[str] = []
    base_is_latin = False
    for char in unicodedata.normalize("NFD", text):
        if unicodedata.combining(char):
            if base_is_latin or _is_arabic_mark(char):
                continue
        else:
            base_is_latin = unicodedata.name(char, "").startswith("LATIN")
        kept.append(char)
    text = unicodedata.normalize("NFC", "".join(kept))
    text = text.translate(_LATIN_FOLD).translate(_ARABIC_FOLD)
    # Letters, marks and digits are kept; invisible format characters (the Persian
    # zero-width non-joiner, bidi marks) are dropped; anything else separates words.
    spaced = "".join(
        c if unicodedata.category(c)[0] in "LMN" else "" if unicodedata.category(c) == "Cf" else " "
        for c in text
    )
    return " ".join(spaced.split())


def name_similarity(query: str, candidate: str) -> float:
    """How well a normalised query matches a normalised name, 0..1.

    The edit-distance ratio tolerates typos ("Riversde", "Afganistan"). From four letters
    on, two looser comparisons count too, scaled down so that a near-exact name still wins:
    the token-set ratio (x0.9) for a name typed with extra words ("Riverside town") or one
    word of a longer name, and the partial ratio (x0.85) for the start of a name ("Afghan"
    for "Afghanistan"). Shorter queries only match near-exactly: "UK" must not match
    every name that contains "uk".
    """
    if len(query) < 2 or not candidate:
        return 0.0
    score = fuzz.ratio(query, candidate)
    if len(query) >= 4:
        score = max(
            score,
            0.9 * fuzz.token_set_ratio(query, candidate),
            0.85 * fuzz.partial_ratio(query, candidate),
        )
    return float(score) / 100.0
