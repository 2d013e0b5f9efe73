"""Server settings: TOML, environment overrides, errors that name the key; the example is generated."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.errors import ConfigError
from server.sample_config import render
from server.settings import load_settings, parse_settings

EXAMPLE = Path(__file__).resolve().parent.parent / "server" / "server.example.toml"


def test_example_config_is_generated_from_the_code_and_valid():
    assert EXAMPLE.read_text() == render(), (
        "server/server.example.toml is out of date: run `python -m server.sample_config > server/server.example.toml`")
    settings = parse_settings(EXAMPLE.read_text(), str(EXAMPLE), environ={})
    assert settings.mqtt.url == "mqtt://127.0.0.1:1883"


def test_embedded_defaults_need_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, environ={})
    assert settings.database_url == f"sqlite:///{tmp_path / 'zonewatch-data' / 'zonewatch.db'}"
    assert settings.mqtt.url == "mqtt://127.0.0.1:1883"


def test_environment_wins_over_the_file():
    settings = parse_settings('[database]\nurl = "sqlite:///a.db"\n[server]\nport = 1\n', "f.toml", environ={
        "ZONEWATCH_DATABASE_URL": "postgresql+psycopg://zw@127.0.0.1/zw", "ZONEWATCH_SERVER_PORT": "9090",
        "ZONEWATCH_HEALTH_OFFLINE_AFTER_INTERVALS": "4", "OTHER": "x"})
    assert settings.database.url.startswith("postgresql") and settings.server.port == 9090
    assert settings.health.offline_after_intervals == 4.0


@pytest.mark.parametrize(("text", "environ", "key", "words"), [
    ("[database]\nbatchmax = 5\n", {}, "database.batchmax", "unknown key"),
    ("[server]\nport = 70000\n", {}, "server.port", "<= 65535"),
    ("", {"ZONEWATCH_SERVER_PORT": "eighty"}, "server.port", "expected int"),
    ('[mqtt]\nurl = "http://broker"\n', {}, "mqtt.url", "mqtt://host"),
    ('[database]\nurl = "mysql://x"\n', {}, "database.url", "sqlite:///"),
    ('[mqtt]\npassword = "a"\npassword_file = "/p"\n', {}, "mqtt.password", "not both"),
    ("[server\n", {}, None, "not valid TOML"),
    ("[health]\noffline_after_intervals = 1\n", {}, "health.offline_after_intervals", ">= 1.5"),
])
def test_bad_settings_name_the_key_and_the_problem(text, environ, key, words):
    with pytest.raises(ConfigError) as err:
        parse_settings(text, "server.toml", environ=environ)
    assert err.value.key == key and words in err.value.problem, str(err.value)


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="file not found; give the server config with --config FILE"):
        load_settings(tmp_path / "nope.toml", environ={})
