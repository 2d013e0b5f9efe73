"""The browser fixture (tests/peers/browser.py) against a real server: Debian's Chromium, offline flags,
signing in through the real /login form with a user made by ``zonewatch user add``, screenshots."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import psutil
import pytest

from server.cli import main
from tests.peers.browser import CHROMIUM_ARGS, Artifacts, artifacts_root, chromium_path, sign_in
from tests.server_process import ServerProcess

pytestmark = pytest.mark.timeout(180)
PASSWORD = "blue-heron-at-dawn-7"


@pytest.fixture(scope="module")
def server(tmp_path_factory, mosquitto) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("browser")
    server = ServerProcess(tmp / "server", mosquitto.port, f"sqlite:///{tmp / 'fleet.db'}").start()
    try:
        secret = tmp / "password"
        secret.write_text(PASSWORD + "\n")
        code = main(["user", "add", "irene", "--role", "viewer", "--password-file", str(secret),
                     "--config", str(server.config)])
        assert code == 0
        yield server
    finally:
        server.stop()


def _chromium_processes() -> list[psutil.Process]:
    """The browser processes this test process started (the main one, without --type=)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            line = child.cmdline()
        except psutil.Error:
            continue
        if any("--user-data-dir=" in a for a in line) and not any(a.startswith("--type=") for a in line):
            found.append(child)
    return found


def test_chromium_is_debians_headless_and_offline_with_a_fresh_profile(chromium):
    assert chromium.version.split(".")[0].isdigit()
    [process] = _chromium_processes()
    line = process.cmdline()
    assert line[0].startswith(("/usr/lib/chromium/", "/usr/bin/chromium")), line[0]
    for flag in CHROMIUM_ARGS:
        assert flag in line, flag
    profile = next(a.split("=", 1)[1] for a in line if a.startswith("--user-data-dir="))
    assert "playwright" in profile and profile.startswith(("/tmp/", "/var/tmp/")), profile


def test_sign_in_through_the_login_form_of_a_real_server(server, web_page, browser_context, artifacts):
    page = web_page
    answer = page.goto(f"{server.url}/")
    assert urlsplit(page.url).path == "/login" and answer.status == 200  # redirected to sign in
    assert page.locator("input[name=username]").is_visible()
    artifacts.screenshot(page, "01-login")

    sign_in(page, server.url, "irene", "not-her-password")
    assert urlsplit(page.url).path == "/login"
    assert "Wrong user name or password" in page.locator("[role=alert]").inner_text()
    assert not [c for c in browser_context.cookies() if c["name"] == "zw_session"]
    artifacts.screenshot(page, "02-wrong-password")

    sign_in(page, server.url, "irene", PASSWORD)
    assert urlsplit(page.url).path == "/", page.url
    [cookie] = [c for c in browser_context.cookies() if c["name"] == "zw_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]
    assert page.evaluate("document.cookie").find("zw_session") == -1  # scripts cannot read it
    assert "irene" in page.content()
    shot = artifacts.screenshot(page, "03-signed-in")
    assert shot.stat().st_size > 1000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.request.get(f"{server.url}/api/v1/me").json()["username"] == "irene"  # the session, from the page


def test_a_missing_chromium_fails_naming_the_package_and_artifacts_go_where_told(monkeypatch, tmp_path):
    monkeypatch.setenv("ZW_CHROMIUM", str(tmp_path / "no-such-chromium"))
    with pytest.raises(pytest.fail.Exception) as failed:
        chromium_path()
    assert "Debian package 'chromium'" in str(failed.value) and "playwright install" in str(failed.value)
    monkeypatch.setenv("ZW_TEST_ARTIFACTS", str(tmp_path / "out"))
    where = Artifacts(artifacts_root(), "tests/test_x.py::test_y[a/b <c>]").path("shot.png")
    assert where.parent == tmp_path / "out" / "test_y_a_b_c_" and where.parent.is_dir()
