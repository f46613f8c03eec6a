"""Configuration from environment variables, optionally from a TOML file.

Every setting is read once at start-up into an immutable `Settings`. A wrong or missing
value raises `ConfigError` naming the variable; the CLI turns it into one line and exit 2.
The TOML file (path in CRISIS_COMMS_CONFIG) uses the same names as the variables;
the environment wins over the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from feedback.crisis_profile import CrisisProfile, scenario_catalog
from feedback.flags import FlagSettings
from messages.broadcasts import QuietHours
from messages.languages import language_codes

TELEGRAM_API_ROOT = "https://api.telegram.org"
SANDBOX_TOKEN = "123456789:SANDBOX-local-token-not-for-telegram"


class ConfigError(Exception):
    """A configuration value is wrong or missing."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class ServiceSettings:
    """How the information services behave; every value has a default that suits a response."""

    help_line: str | None = None
    shelter_radius_km: float = 25.0
    shelter_max_age: timedelta = timedelta(hours=24)
    departure_radius_km: float = 50.0
    registration_timeout: timedelta = timedelta(minutes=30)
    draft_retention: timedelta = timedelta(days=14)
    # Personal data older than this is erased or anonymised (privacy/retention.py).
    retention: timedelta = timedelta(days=180)
    # Sensitive reports: where alerts go, how often they repeat, what survivors are told.
    protection_chats: tuple[int, ...] = ()
    protection_alert_repeat: timedelta = timedelta(minutes=10)
    protection_hotline: str | None = None
    protection_referrals: str | None = None
    # Gap flags: windows, minimum counts and response-time targets (feedback/flags.py).
    flags: FlagSettings = field(default_factory=FlagSettings)
    # The responders' chat: a daily digest and a notice for each new gap flag (counts and
    # flag explanations only, never what people wrote). None: nothing is sent.
    responders_chat: int | None = None
    responders_chat_language: str = "en"
    digest_hour: int = 8  # local hour (TIMEZONE) of the daily digest
    # Broadcasts (bot/sender.py): messages per second for all senders together, local quiet
    # hours that only emergencies break, and whether this bot process sends at all.
    broadcast_rate: float = 30.0
    # Answers per second this process sends at most (Telegram allows a bot about 30 in all;
    # with several processes give each its share). 0: no overall pace, only the per-group
    # one and Telegram's 429s, which are waited out and retried.
    answer_rate: float = 30.0
    quiet_hours: QuietHours | None = None
    sender_name: str | None = None  # None: "bot@host" in the bot, "sender@host" alone
    sender_in_bot: bool = True
    # Flood control (bot/flood.py): past this many updates from one person within the
    # window, their commands and taps get one notice, then only a stopped spinner. A quick
    # household registration, counters and all, is about 25 taps; a script sends hundreds.
    flood_updates: int = 30
    flood_window: timedelta = timedelta(seconds=30)
    # Webhook workers (bot/worker.py): this process's name in the inbox's heartbeats, and how
    # many chats it processes at once on PostgreSQL (SQLite: one at a time, its one writer).
    # Each process is CPU-bound: more chats at once raise latency, not throughput (bench).
    worker_name: str | None = None  # None: "worker@host:pid"
    worker_concurrency: int = 2


@dataclass(frozen=True)
class Settings:
    token: str | None
    api_root: str
    database_url: str
    data_dir: Path
    web_host: str
    web_port: int
    default_language: str
    enabled_languages: tuple[str, ...]
    fallback_languages: tuple[str, ...]
    timezone: str
    crisis: CrisisProfile
    pseudonym_key: bytes | None
    mode: Literal["polling", "webhook"]
    webhook_url: str | None
    webhook_secret: str | None
    log_level: str
    services: ServiceSettings = field(default_factory=ServiceSettings)
    log_format: Literal["text", "json"] = "text"  # json: one object per line (bot/logs.py)

    @property
    def sandbox(self) -> bool:
        """No token: run against the embedded loopback Bot API server."""
        return self.token is None

    @property
    def api_base_url(self) -> str:
        return f"{self.api_root}/bot"

    @property
    def api_base_file_url(self) -> str:
        return f"{self.api_root}/file/bot"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from `env` (default: os.environ) and the optional TOML file."""
    values = _merged_values(dict(os.environ) if env is None else dict(env))
    return _parse(values)


def _merged_values(env: dict[str, str]) -> dict[str, str]:
    path = env.get("CRISIS_COMMS_CONFIG")
    if not path:
        return env
    try:
        file_values = tomllib.loads(Path(path).read_text("utf-8"))
    except OSError as error:
        raise ConfigError("CRISIS_COMMS_CONFIG", f"cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError("CRISIS_COMMS_CONFIG", f"{path} is not valid TOML: {error}") from None
    merged = {key: str(value) for key, value in file_values.items()}
    merged.update(env)
    return merged


def _parse(values: dict[str, str]) -> Settings:
    def get(name: str, default: str | None = None) -> str | None:
        value = values.get(name, "").strip()
        return value or default

    token = get("TELEGRAM_BOT_TOKEN")
    if token is not None and (":" not in token or len(token) < 10):
        raise ConfigError("TELEGRAM_BOT_TOKEN", "does not look like a bot token (id:secret)")
    data_dir = Path(get("CRISIS_DATA_DIR", "data") or "data")
    mode = get("TELEGRAM_MODE", "polling")
    if mode not in ("polling", "webhook"):
        raise ConfigError("TELEGRAM_MODE", f"must be 'polling' or 'webhook', not {mode!r}")
    webhook_url = _optional_url(get("WEBHOOK_URL"), "WEBHOOK_URL")
    webhook_secret = get("WEBHOOK_SECRET")
    if mode == "webhook":
        if token is None:
            raise ConfigError("TELEGRAM_MODE", "webhook mode needs TELEGRAM_BOT_TOKEN")
        if webhook_url is None:
            raise ConfigError("WEBHOOK_URL", "is required in webhook mode")
        if webhook_secret is None or len(webhook_secret) < 16:
            raise ConfigError("WEBHOOK_SECRET", "is required in webhook mode (16+ characters)")
    enabled = _languages(get("ENABLED_LANGUAGES"))
    default_language = get("DEFAULT_LANGUAGE", "en") or "en"
    if default_language not in enabled:
        raise ConfigError("DEFAULT_LANGUAGE", f"{default_language!r} is not an enabled language")
    fallbacks = _fallbacks(get("FALLBACK_LANGUAGES"), default_language)
    return Settings(
        token=token,
        api_root=_api_root(get("TELEGRAM_API_BASE_URL", TELEGRAM_API_ROOT) or TELEGRAM_API_ROOT),
        database_url=_database_url(get("DATABASE_URL"), data_dir),
        data_dir=data_dir,
        web_host=get("WEB_HOST", "127.0.0.1") or "127.0.0.1",
        web_port=_port(get("WEB_PORT", "8080") or "8080"),
        default_language=default_language,
        enabled_languages=enabled,
        fallback_languages=fallbacks,
        timezone=_timezone(get("TIMEZONE", "UTC") or "UTC"),
        crisis=_crisis(get("CRISIS_SCENARIO"), get("CRISIS_PHASE")),
        pseudonym_key=_pseudonym_key(get("PSEUDONYM_KEY"), required=token is not None),
        mode="webhook" if mode == "webhook" else "polling",
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        log_level=_log_level(get("LOG_LEVEL", "INFO") or "INFO"),
        services=_services(get),
        log_format=_log_format(get("LOG_FORMAT", "text") or "text"),
    )


def _services(get: Callable[[str], str | None]) -> ServiceSettings:
    def positive(name: str, default: float) -> float:
        value = get(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not 0 < number < 1e6:
            raise ConfigError(name, f"must be a positive number, not {value!r}")
        return number

    return ServiceSettings(
        help_line=get("HELP_LINE"),
        shelter_radius_km=positive("SHELTER_RADIUS_KM", 25),
        shelter_max_age=timedelta(hours=positive("SHELTER_MAX_AGE_HOURS", 24)),
        departure_radius_km=positive("DEPARTURE_RADIUS_KM", 50),
        registration_timeout=timedelta(minutes=positive("REGISTRATION_TIMEOUT_MINUTES", 30)),
        draft_retention=timedelta(days=positive("DRAFT_RETENTION_DAYS", 14)),
        retention=timedelta(days=_whole_days(get("RETENTION_DAYS"), "RETENTION_DAYS", 180)),
        protection_chats=_chat_ids(get("PROTECTION_CHATS")),
        protection_alert_repeat=timedelta(minutes=positive("PROTECTION_ALERT_REPEAT_MINUTES", 10)),
        protection_hotline=get("PROTECTION_HOTLINE"),
        protection_referrals=get("PROTECTION_REFERRALS"),
        flags=_flags(get, positive),
        responders_chat=_chat_id(get("RESPONDERS_CHAT"), "RESPONDERS_CHAT"),
        responders_chat_language=_chat_language(
            get("RESPONDERS_CHAT_LANGUAGE"), get("DEFAULT_LANGUAGE") or "en"
        ),
        digest_hour=_hour(get("DIGEST_HOUR"), "DIGEST_HOUR", 8),
        broadcast_rate=positive("BROADCAST_RATE", 30),
        answer_rate=_rate(get("ANSWER_RATE"), "ANSWER_RATE", 30),
        quiet_hours=_quiet_hours(get("QUIET_HOURS"), get("TIMEZONE") or "UTC"),
        sender_name=(get("SENDER_NAME") or "")[:64] or None,
        sender_in_bot=_flag(get("SENDER_IN_BOT"), "SENDER_IN_BOT", default=True),
        flood_updates=_count(get("FLOOD_UPDATES"), "FLOOD_UPDATES", 30),
        flood_window=timedelta(seconds=positive("FLOOD_WINDOW_SECONDS", 30)),
        worker_name=(get("WORKER_NAME") or "")[:64] or None,
        worker_concurrency=_count(get("WORKER_CONCURRENCY"), "WORKER_CONCURRENCY", 2),
    )


def _rate(value: str | None, variable: str, default: float) -> float:
    if value is None:
        return default
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if not 0 <= rate < 1e6:
        raise ConfigError(variable, f"must be 0 (off) or a positive number, not {value!r}")
    return rate


def _whole_days(value: str | None, variable: str, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or not 0 < int(value) < 100_000:
        raise ConfigError(variable, f"must be a whole number of days above 0, not {value!r}")
    return int(value)


def _count(value: str | None, variable: str, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or not 0 < int(value) < 1_000_000:
        raise ConfigError(variable, f"must be a whole number above 0, not {value!r}")
    return int(value)


def _quiet_hours(value: str | None, timezone: str) -> QuietHours | None:
    if value is None or value.lower() in ("off", "none"):
        return None
    try:
        return QuietHours.parse(value, timezone)
    except ValueError:
        problem = f"must look like 22:00-07:00 or 'off', not {value!r}"
        raise ConfigError("QUIET_HOURS", problem) from None


def _flag(value: str | None, variable: str, *, default: bool) -> bool:
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(variable, f"must be true or false, not {value!r}")


def _chat_id(value: str | None, variable: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(variable, f"{value!r} is not a Telegram chat id") from None


def _chat_language(value: str | None, default_language: str) -> str:
    if value is None:
        return default_language
    if value not in language_codes():
        raise ConfigError("RESPONDERS_CHAT_LANGUAGE", f"unknown language {value!r}")
    return value


def _hour(value: str | None, variable: str, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or not 0 <= int(value) <= 23:
        raise ConfigError(variable, f"must be an hour from 0 to 23, not {value!r}")
    return int(value)


def _flags(
    get: Callable[[str], str | None], positive: Callable[[str, float], float]
) -> FlagSettings:
    def whole(name: str, default: int) -> int:
        value = get(name)
        if value is None:
            return default
        if not value.isdigit() or not 0 < int(value) < 100_000:
            raise ConfigError(name, f"must be a whole number above 0, not {value!r}")
        return int(value)

    def hours(name: str, default: timedelta) -> timedelta:
        return timedelta(hours=positive(name, default / timedelta(hours=1)))

    defaults = FlagSettings()
    return FlagSettings(
        recent_days=whole("FLAG_RECENT_DAYS", defaults.recent_days),
        baseline_days=whole("FLAG_BASELINE_DAYS", defaults.baseline_days),
        min_count=whole("FLAG_MIN_COUNT", defaults.min_count),
        response_target_urgent=hours(
            "RESPONSE_TARGET_URGENT_HOURS", defaults.response_target_urgent
        ),
        response_target_sensitive=hours(
            "RESPONSE_TARGET_SENSITIVE_HOURS", defaults.response_target_sensitive
        ),
        response_target_critical_sector=hours(
            "RESPONSE_TARGET_CRITICAL_HOURS", defaults.response_target_critical_sector
        ),
        response_target_other=hours("RESPONSE_TARGET_OTHER_HOURS", defaults.response_target_other),
    )


def _chat_ids(value: str | None) -> tuple[int, ...]:
    """Telegram chat ids, comma-separated (groups are negative)."""
    ids: list[int] = []
    for part in (value or "").split(","):
        if part.strip():
            try:
                ids.append(int(part.strip()))
            except ValueError:
                raise ConfigError(
                    "PROTECTION_CHATS", f"{part.strip()!r} is not a chat id"
                ) from None
    return tuple(ids)


def _api_root(value: str) -> str:
    url = _optional_url(value, "TELEGRAM_API_BASE_URL")
    assert url is not None
    # Accept both the server root and PTB's ".../bot" form.
    url = url.rstrip("/")
    return url.removesuffix("/bot")


def _optional_url(value: str | None, variable: str) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(variable, f"must be an http(s) URL, not {value!r}")
    return value


def _database_url(value: str | None, data_dir: Path) -> str:
    if value is None:
        return f"sqlite+aiosqlite:///{data_dir / 'crisis-comms.db'}"
    # Accept the URLs people copy from their hosting, and pick the async drivers we ship.
    for plain, driver in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if value.startswith(plain):
            return driver + value.removeprefix(plain)
    if value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return value
    raise ConfigError("DATABASE_URL", "must be a postgresql:// or sqlite:// URL")


def _port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError("WEB_PORT", f"must be a port number (1-65535), not {value!r}")
    return int(value)


def _languages(value: str | None) -> tuple[str, ...]:
    known = language_codes()
    if value is None:
        return known
    chosen = tuple(code.strip() for code in value.split(",") if code.strip())
    unknown = [code for code in chosen if code not in known]
    if unknown or not chosen:
        raise ConfigError(
            "ENABLED_LANGUAGES", f"unknown language(s) {unknown}; known: {', '.join(known)}"
        )
    # Keep the keyboard order of the language list.
    return tuple(code for code in known if code in chosen)


def _fallbacks(value: str | None, default_language: str) -> tuple[str, ...]:
    """The deployment's chain for missing texts: the configured list, else the default."""
    if value is None:
        return (default_language,)
    chain = tuple(code.strip() for code in value.split(",") if code.strip())
    unknown = [code for code in chain if code not in language_codes()]
    if unknown or not chain:
        raise ConfigError("FALLBACK_LANGUAGES", f"unknown language(s) {unknown}")
    return chain


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            "TIMEZONE", f"unknown time zone {value!r} (e.g. Africa/Nairobi)"
        ) from None
    return value


def _crisis(scenario: str | None, phase: str | None) -> CrisisProfile:
    catalog = scenario_catalog()
    scenario = scenario or "sudden_onset_natural_disaster"
    phase = phase or "during"
    if scenario not in catalog.scenarios:
        raise ConfigError(
            "CRISIS_SCENARIO", f"{scenario!r} is not one of {', '.join(catalog.scenarios)}"
        )
    if phase not in catalog.phases:
        raise ConfigError("CRISIS_PHASE", f"{phase!r} is not one of {', '.join(catalog.phases)}")
    return CrisisProfile(scenario=scenario, phase=phase)


def _pseudonym_key(value: str | None, *, required: bool) -> bytes | None:
    if value is None:
        if required:
            raise ConfigError(
                "PSEUDONYM_KEY", "is required with a bot token (32+ random characters)"
            )
        return None
    if len(value) < 32:
        raise ConfigError("PSEUDONYM_KEY", "must be at least 32 characters long")
    return value.encode("utf-8")


def _log_format(value: str) -> Literal["text", "json"]:
    if value.lower() == "json":
        return "json"
    if value.lower() != "text":
        raise ConfigError("LOG_FORMAT", f"must be text or json, not {value!r}")
    return "text"


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("LOG_LEVEL", f"must be DEBUG, INFO, WARNING or ERROR, not {value!r}")
    return level
