"""Dates, times, numbers, distances and country names in the person's locale (Babel/CLDR),
in the deployment's time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime, format_timedelta
from babel.numbers import format_decimal
from babel.units import format_unit

from messages.languages import get_language


def babel_locale(language_code: str) -> str:
    language = get_language(language_code)
    return language.locale if language else "en"


def time_ago(then: datetime, now: datetime, language_code: str) -> str:
    """ "3 hours ago" in the person's language."""
    return format_timedelta(
        then - now, add_direction=True, threshold=1.0, locale=babel_locale(language_code)
    )


def date_time(moment: datetime, language_code: str, timezone: str) -> str:
    local = moment.astimezone(ZoneInfo(timezone))
    return format_datetime(local, format="medium", locale=babel_locale(language_code))


def number(value: float, language_code: str) -> str:
    return format_decimal(value, locale=babel_locale(language_code))


def distance(meters: float, language_code: str) -> str:
    """Metres under a kilometre, else kilometres with one decimal under ten."""
    locale = babel_locale(language_code)
    if meters < 1000:
        return format_unit(round(meters / 10) * 10, "length-meter", "short", locale=locale)
    km = meters / 1000
    shown = round(km, 1) if km < 10 else round(km)
    return format_unit(shown, "length-kilometer", "short", locale=locale)


def country_name(country_code: str, language_code: str) -> str:
    """A country's name in the person's language; the code itself if CLDR has none."""
    locale = Locale.parse(babel_locale(language_code))
    return str(locale.territories.get(country_code.upper(), country_code.upper()))
