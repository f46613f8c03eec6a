from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings


def test_defaults_run_the_sandbox_on_sqlite() -> None:
    settings = load_settings({})
    assert settings.sandbox
    assert settings.database_url == "sqlite+aiosqlite:///data/crisis-comms.db"
    assert settings.api_base_url == "https://api.telegram.org/bot"
    assert settings.default_language == "en"
    assert "fa-AF" in settings.enabled_languages and len(settings.enabled_languages) == 19
    assert (settings.crisis.scenario, settings.crisis.phase) == (
        "sudden_onset_natural_disaster",
        "during",
    )


def test_a_token_needs_a_pseudonym_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"TELEGRAM_BOT_TOKEN": "123456:ABCDEFGHIJ"})
    assert caught.value.variable == "PSEUDONYM_KEY"


def test_self_hosted_bot_api_root_accepts_either_form() -> None:
    for value in ("http://127.0.0.1:8081", "http://127.0.0.1:8081/bot", "http://127.0.0.1:8081/"):
        settings = load_settings({"TELEGRAM_API_BASE_URL": value})
        assert settings.api_base_url == "http://127.0.0.1:8081/bot"
        assert settings.api_base_file_url == "http://127.0.0.1:8081/file/bot"


def test_postgres_urls_get_the_async_driver() -> None:
    settings = load_settings({"DATABASE_URL": "postgres://u:p@db:5432/cc"})
    assert settings.database_url == "postgresql+asyncpg://u:p@db:5432/cc"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"WEB_PORT": "eighty"}, "WEB_PORT"),
        ({"WEB_PORT": "70000"}, "WEB_PORT"),
        ({"TIMEZONE": "Mars/Olympus"}, "TIMEZONE"),
        ({"DEFAULT_LANGUAGE": "xx"}, "DEFAULT_LANGUAGE"),
        ({"ENABLED_LANGUAGES": "en,klingon"}, "ENABLED_LANGUAGES"),
        ({"ENABLED_LANGUAGES": "fr,ar"}, "DEFAULT_LANGUAGE"),
        ({"CRISIS_SCENARIO": "earthquake"}, "CRISIS_SCENARIO"),
        ({"CRISIS_PHASE": "later"}, "CRISIS_PHASE"),
        ({"TELEGRAM_API_BASE_URL": "ftp://x"}, "TELEGRAM_API_BASE_URL"),
        ({"TELEGRAM_BOT_TOKEN": "nocolon"}, "TELEGRAM_BOT_TOKEN"),
        ({"TELEGRAM_MODE": "carrier-pigeon"}, "TELEGRAM_MODE"),
        ({"TELEGRAM_MODE": "webhook"}, "TELEGRAM_MODE"),
        ({"PSEUDONYM_KEY": "short"}, "PSEUDONYM_KEY"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"ANSWER_RATE": "-1"}, "ANSWER_RATE"),
        ({"ANSWER_RATE": "fast"}, "ANSWER_RATE"),
        ({"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY"),
    ],
)
def test_wrong_values_name_their_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")


def test_the_answer_pace_can_be_shared_or_turned_off() -> None:
    assert load_settings({}).services.answer_rate == 30
    assert load_settings({"ANSWER_RATE": "7.5"}).services.answer_rate == 7.5
    assert load_settings({"ANSWER_RATE": "0"}).services.answer_rate == 0


def test_webhook_mode_needs_url_and_secret() -> None:
    base = {
        "TELEGRAM_BOT_TOKEN": "123456:ABCDEFGHIJ",
        "PSEUDONYM_KEY": "k" * 32,
        "TELEGRAM_MODE": "webhook",
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(base)
    assert caught.value.variable == "WEBHOOK_URL"
    with pytest.raises(ConfigError) as caught:
        load_settings({**base, "WEBHOOK_URL": "https://bot.example.org"})
    assert caught.value.variable == "WEBHOOK_SECRET"
    settings = load_settings(
        {**base, "WEBHOOK_URL": "https://bot.example.org", "WEBHOOK_SECRET": "s" * 16}
    )
    assert settings.mode == "webhook" and not settings.sandbox


def test_toml_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "crisis.toml"
    path.write_text('DEFAULT_LANGUAGE = "fr"\nWEB_PORT = 9000\nCRISIS_PHASE = "after"\n')
    settings = load_settings({"CRISIS_COMMS_CONFIG": str(path), "WEB_PORT": "9100"})
    assert settings.default_language == "fr"
    assert settings.crisis.phase == "after"
    assert settings.web_port == 9100


def test_unreadable_toml_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"CRISIS_COMMS_CONFIG": str(tmp_path / "missing.toml")})
    assert caught.value.variable == "CRISIS_COMMS_CONFIG"
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    with pytest.raises(ConfigError):
        load_settings({"CRISIS_COMMS_CONFIG": str(bad)})


def test_responders_chat_digest_settings() -> None:
    services = load_settings({}).services
    assert services.responders_chat is None, "no chat: no digest is sent"
    assert (services.responders_chat_language, services.digest_hour) == ("en", 8)
    services = load_settings(
        {"RESPONDERS_CHAT": "-1001234", "DEFAULT_LANGUAGE": "fr", "DIGEST_HOUR": "0"}
    ).services
    assert services.responders_chat == -1001234
    assert services.responders_chat_language == "fr", "the default language by default"
    assert services.digest_hour == 0
    chosen = load_settings({"RESPONDERS_CHAT_LANGUAGE": "ar"}).services
    assert chosen.responders_chat_language == "ar"
    for env, variable in (
        ({"RESPONDERS_CHAT": "@responders"}, "RESPONDERS_CHAT"),
        ({"RESPONDERS_CHAT_LANGUAGE": "xx"}, "RESPONDERS_CHAT_LANGUAGE"),
        ({"DIGEST_HOUR": "24"}, "DIGEST_HOUR"),
        ({"DIGEST_HOUR": "8am"}, "DIGEST_HOUR"),
    ):
        with pytest.raises(ConfigError) as caught:
            load_settings(env)
        assert caught.value.variable == variable


def test_gap_flag_settings() -> None:
    flags = load_settings({}).services.flags
    assert (flags.recent_days, flags.baseline_days, flags.min_count) == (7, 28, 10)
    assert flags.response_target_urgent == timedelta(hours=4)
    assert flags.response_target_other == timedelta(hours=72)
    flags = load_settings(
        {
            "FLAG_RECENT_DAYS": "3",
            "FLAG_BASELINE_DAYS": "21",
            "FLAG_MIN_COUNT": "5",
            "RESPONSE_TARGET_URGENT_HOURS": "1.5",
            "RESPONSE_TARGET_SENSITIVE_HOURS": "1",
            "RESPONSE_TARGET_CRITICAL_HOURS": "12",
            "RESPONSE_TARGET_OTHER_HOURS": "48",
        }
    ).services.flags
    assert (flags.recent_days, flags.baseline_days, flags.min_count) == (3, 21, 5)
    assert flags.response_target_urgent == timedelta(minutes=90)
    assert flags.response_target_sensitive == timedelta(hours=1)
    assert flags.response_target_critical_sector == timedelta(hours=12)
    assert flags.response_target_other == timedelta(hours=48)
    for env, variable in (
        ({"FLAG_RECENT_DAYS": "0"}, "FLAG_RECENT_DAYS"),
        ({"FLAG_MIN_COUNT": "2.5"}, "FLAG_MIN_COUNT"),
        ({"RESPONSE_TARGET_OTHER_HOURS": "-1"}, "RESPONSE_TARGET_OTHER_HOURS"),
    ):
        with pytest.raises(ConfigError) as caught:
            load_settings(env)
        assert caught.value.variable == variable
