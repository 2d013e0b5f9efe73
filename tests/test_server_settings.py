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
    ('[server]\ntls_cert_file = "/etc/zw/server.crt"\n', {}, "server.tls_key_file", "both"),
    ("", {"ZONEWATCH_SERVER_TLS_KEY_FILE": "/etc/zw/server.key"}, "server.tls_cert_file", "both"),
])
def test_bad_settings_name_the_key_and_the_problem(text, environ, key, words):
    with pytest.raises(ConfigError) as err:
        parse_settings(text, "server.toml", environ=environ)
    assert err.value.key == key and words in err.value.problem, str(err.value)


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="file not found; give the server config with --config FILE"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_https_certificate_and_key_are_checked_before_the_server_starts(tmp_path, capsys):
    import ssl

    from cryptography.hazmat.primitives import serialization

    from provisioning.ca import create_ca, issue_server
    from server.run import serve, tls_context
    from server.secret_files import check_secret_files

    _, cert = create_ca(tmp_path / "ca", "test CA", ["127.0.0.1"], server_name="server", key_owner=None)
    other = issue_server(tmp_path / "ca", "other", ["127.0.0.1"])

    def settings(cert_file, key_file):
        return parse_settings(f'[server]\ntls_cert_file = "{cert_file}"\ntls_key_file = "{key_file}"\n', "s.toml",
                              environ={})

    assert tls_context(parse_settings("", environ={}), "s.toml") is None  # plain HTTP by default
    good = settings(cert.cert, cert.key)
    assert isinstance(tls_context(good, "s.toml"), ssl.SSLContext) and check_secret_files(good, None) == []
    cert.key.chmod(0o644)
    with pytest.raises(ConfigError, match=f"chmod 600 {cert.key}") as err:
        check_secret_files(good, None)
    assert err.value.key == "server.tls_key_file"
    cert.key.chmod(0o600)
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key\n")
    encrypted = tmp_path / "encrypted.key"  # refused, never a passphrase prompt on the terminal
    encrypted.write_bytes(serialization.load_pem_private_key(cert.key.read_bytes(), None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")))
    for cert_file, key_file, key, words in [
        (cert.cert, other.key, "server.tls_key_file", "its own unencrypted private key"),  # another certificate's
        (cert.cert, garbage, "server.tls_key_file", "its own unencrypted private key"),
        (cert.cert, encrypted, "server.tls_key_file", "its own unencrypted private key"),
        (garbage, cert.key, "server.tls_key_file", "PEM certificate"),
        (tmp_path / "nope.crt", cert.key, "server.tls_cert_file", "file not found"),
        (cert.cert, tmp_path, "server.tls_key_file", "file not found"),  # a directory
    ]:
        with pytest.raises(ConfigError) as err:
            tls_context(settings(cert_file, key_file), "s.toml")
        assert err.value.key == key and words in err.value.problem, str(err.value)
    config = tmp_path / "server.toml"
    config.write_text(f'[server]\ntls_cert_file = "{cert.cert}"\ntls_key_file = "{other.key}"\n')
    assert serve(str(config)) == 78  # refused before anything listens
    assert "server.tls_key_file" in capsys.readouterr().err
