"""The install bundle: ``zonewatch provision bundle`` makes it, and its real ``install.sh`` runs into a temp root
(``--root``): the user, the venv with the agent installed offline from the bundle's wheels, the hardened unit,
the directories and their modes, and enrolment against a real server and mosquitto (tests/test_enrol_e2e.py's
``site``). The installed agent then reports over TLS. Bad input to both is refused, saying what to do, and a
failed bundle spends no token."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

import pytest

from provisioning.bundle import BundleError, dependency_names, repack_installed
from server.cli import main as zonewatch
from tests.server_process import wait_until
from tests.test_enrol_e2e import site  # noqa: F401 (the fixture: server, broker with TLS, zones hall-01/02)
from tests.test_systemd_unit import UNIT, directives, verify

pytestmark = [pytest.mark.peer, pytest.mark.timeout(600)]
INSTALL_SH = UNIT.parent.parent / "install.sh"


def make_bundle(site, out: Path, *extra: str) -> int:  # noqa: F811
    """A bundle for the site's server, which serves HTTPS with a certificate of the site's CA (``--server-ca``)."""
    trust = [] if "--server-ca" in extra else ["--server-ca", str(site.ca.cert)]
    return zonewatch(["provision", "bundle", "--config", str(site.server.config), "--zone", "hall-01",
                      "--out", str(out), "--server", site.server.url, *trust, *extra])


def install(bundle: Path, *args: str, user: int | None = None) -> subprocess.CompletedProcess:
    command = ["sh", str(bundle / "install.sh"), *args]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]  # 65534: nobody
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})


def tokens(site) -> list[str]:  # noqa: F811
    answer = site.server.get("/api/v1/enrolment-tokens")[1]
    return [t["prefix"] for t in answer["items"]]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def account(root: Path, name: str) -> list[str]:
    return next(line.split(":") for line in (root / "etc/passwd").read_text().splitlines()
                if line.startswith(name + ":"))


def test_bundle_installs_into_a_root_enrols_and_the_installed_agent_reports(site, tmp_path):  # noqa: F811
    bundle, root = tmp_path / "bundle", tmp_path / "root"
    root.mkdir()
    assert make_bundle(site, bundle, "--deps", "installed") == 0
    assert mode(bundle) == 0o700 and mode(bundle / "enrol-token") == 0o600
    assert (bundle / "wheels" / "with-dependencies").exists() and len(list(bundle.glob("wheels/*.whl"))) >= 6
    assert len(tokens(site)) == 1

    done = install(bundle, "--root", str(root), "--device-id", "hall01-kiosk-9")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "offline" in done.stdout and "enrolled as device hall01-kiosk-9 in zone hall-01" in done.stdout

    name, _, uid, gid, _, home, shell = account(root, "zonewatch-agent")
    uid, gid = int(uid), int(gid)
    assert 0 < uid < 1000 and shell == "/usr/sbin/nologin" and home == "/var/lib/zonewatch"  # a system user
    conf, data = root / "etc/zonewatch", root / "var/lib/zonewatch"
    assert (mode(conf), conf.stat().st_uid, conf.stat().st_gid) == (0o750, 0, gid)
    assert (mode(data), data.stat().st_uid, data.stat().st_gid) == (0o750, uid, gid)
    for secret in (conf / "agent.toml", conf / "mqtt-password"):
        assert (mode(secret), secret.stat().st_uid) == (0o600, uid), secret
    config = tomllib.loads((conf / "agent.toml").read_text())
    assert config["agent"] == {"device_id": "hall01-kiosk-9", "data_dir": "/var/lib/zonewatch"}
    assert config["mqtt"]["password_file"] == "/etc/zonewatch/mqtt-password"  # paths as the device sees them
    assert config["mqtt"]["ca_file"] == "/etc/zonewatch/broker-ca.pem"
    assert (conf / "broker-ca.pem").read_text() == site.ca.cert.read_text()
    assert not (bundle / "enrol-token").exists(), "the spent token stays in the bundle"

    unit = root / "etc/systemd/system/zonewatch-agent.service"
    assert unit.read_text() == UNIT.read_text() and mode(unit) == 0o644
    assert (root / "etc/systemd/system/multi-user.target.wants/zonewatch-agent.service").is_symlink()
    agent = root / "opt/zonewatch-agent/bin/zonewatch-agent"
    verify(unit.read_text(), str(agent), tmp_path)  # systemd accepts it, and ExecStart exists in the root
    assert directives(unit.read_text())["User"] == name
    venv = root / "opt/zonewatch-agent"
    check = subprocess.run([str(venv / "bin/python"), "-c", "import agent.link, paho.mqtt, psutil, cups, icmplib, "
                            "dns.resolver; import aiohttp"], capture_output=True, text=True, timeout=60)
    assert "No module named 'aiohttp'" in check.stderr, check.stderr  # the agent's packages, not the server's

    # the installed agent, run on its enrolled config (paths mapped into the root), reports over TLS
    text = (conf / "agent.toml").read_text().replace('"/etc/', f'"{root}/etc/').replace('"/var/', f'"{root}/var/')
    quick = tmp_path / "quick.toml"
    quick.write_text(text.replace("[agent]\n", "[agent]\ninterval = 0.5\n") + "\n[collectors.network]\nenabled = "
                     "false\n[collectors.printer]\nenabled = false\n[collectors.kiosk]\nenabled = false\n")
    with (tmp_path / "agent.log").open("ab") as log:
        proc = subprocess.Popen([str(agent), "run", "--config", str(quick)], stdout=log, stderr=log)
    site.agents.append(proc)
    wait_until(lambda: site.server.get("/api/v1/devices/hall01-kiosk-9")[1].get("last_report_at"), 30,
               "the installed agent's first report")

    again = install(bundle, "--root", str(root))  # an upgrade: the enrolled device keeps its config
    assert again.returncode == 0 and "enrolled already" in again.stdout, again.stdout + again.stderr
    assert tomllib.loads((conf / "agent.toml").read_text())["agent"]["device_id"] == "hall01-kiosk-9"
    assert (root / "etc/passwd").read_text().count("zonewatch-agent:") == 1


def test_install_sh_refuses_clearly(site, tmp_path):  # noqa: F811
    bundle = tmp_path / "bundle"
    assert make_bundle(site, bundle) == 0
    assert not (bundle / "wheels" / "with-dependencies").exists()  # --deps none: the kiosk's pip fetches them
    public = Path(tempfile.mkdtemp(prefix="zw-bundle-test-"))  # a copy a user other than root can reach
    try:
        public.chmod(0o755)
        shutil.copytree(bundle, public / "b")
        (public / "b").chmod(0o755)
        done = install(public / "b", "--root", str(public), user=65534)
        assert done.returncode == 1 and "run it as root" in done.stderr and "--root DIR" in done.stderr, done.stderr
        done = install(public / "b", user=65534)
        assert done.returncode == 1 and "run it as root (sudo sh" in done.stderr, done.stderr
    finally:
        shutil.rmtree(public)
    for args, words in ((["--root", "relative/dir"], "absolute path"), (["--root", str(tmp_path / "no")], "not a "
                        "directory"), (["--bogus"], "unknown option '--bogus'"), (["--root"], "--root needs a value"),
                        (["--python", "/nonexistent/python"], "Python 3.11 or newer")):
        done = install(bundle, *args)
        assert done.returncode == 1 and words in done.stderr, (args, done.stderr)
    (bundle / "wheels" / "wheel").unlink()
    done = install(bundle, "--root", str(tmp_path))
    assert done.returncode == 1 and "not a complete install bundle" in done.stderr, done.stderr
    assert not (tmp_path / "etc").exists(), "a refused install changed the root"
    assert "usage: sh install.sh" in install(bundle, "--help").stdout


def test_bundle_as_a_tarball_keeps_the_token_private(site, tmp_path):  # noqa: F811
    out = tmp_path / "kiosk.tar.gz"
    assert make_bundle(site, out, "--token-expires", "2h", "--server-ca", str(site.ca.cert)) == 0
    assert mode(out) == 0o600
    with tarfile.open(out) as tar:
        members = {m.name: m for m in tar.getmembers()}
        top = "zonewatch-agent-hall-01"
        assert members[f"{top}/install.sh"].mode & 0o777 == 0o755
        assert members[f"{top}/enrol-token"].mode & 0o777 == 0o600
        assert members[top].mode & 0o777 == 0o700
        assert tar.extractfile(f"{top}/server-ca.pem").read().decode() == site.ca.cert.read_text()
        assert tar.extractfile(f"{top}/server-url").read().decode().strip() == site.server.url
        token = tar.extractfile(f"{top}/enrol-token").read().decode().strip()
    assert token.startswith("zwe_") and token[:10] in tokens(site)
    assert token not in site.server.log_text()


BAD_REQUESTS = [
    (["--zone", "hall-99"], "zone 'hall-99' does not exist"),
    (["--token-expires", "99d"], "out of range"),
    (["--token-expires", "soon"], "is not a duration"),
    (["--server", "ftp://x"], "is not a URL"),
    (["--server-ca", "/nonexistent.pem"], "cannot read --server-ca"),
    (["--server-ca", "/etc/hostname"], "holds no PEM certificate"),
    (["--wheel", "/etc/hostname"], "is not a zonewatch wheel"),
    (["--out", "/nonexistent/dir/bundle"], "does not exist"),
]


def test_bad_bundle_requests_spend_no_token(site, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "bundle"
    for args, words in BAD_REQUESTS:
        options = {"--config": str(site.server.config), "--zone": "hall-01", "--out": str(out),
                   "--server": site.server.url, **dict(zip(args[::2], args[1::2], strict=True))}
        assert zonewatch(["provision", "bundle", *(word for pair in options.items() for word in pair)]) == 1, args
        assert words in capsys.readouterr().err, args
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    assert make_bundle(site, tmp_path / "full") == 1
    assert "exists already" in capsys.readouterr().err and (tmp_path / "full" / "x").read_text() == "keep me"
    assert not out.exists() and tokens(site) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".zw-bundle-")]


def test_repacked_wheels_carry_a_record_pip_accepts(tmp_path):
    made = repack_installed("paho-mqtt", tmp_path)
    assert made.name.startswith("paho_mqtt-") and made.name.endswith("-py3-none-any.whl")
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "-q", "--target",
                           str(target), str(made)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (target / "paho" / "mqtt" / "client.py").exists()


def test_dependencies_follow_the_built_wheel_and_say_what_is_missing():
    names = dependency_names(['paho-mqtt>=2; extra == "agent"', 'aiohttp; extra == "server"', "msgspec>=0.18"])
    assert names[:2] == ["paho-mqtt", "msgspec"] and "aiohttp" not in names
    with pytest.raises(BundleError, match=r"no-such-agent-package .*not installed here.*--deps download"):
        dependency_names(['no-such-agent-package>=1; extra == "agent"'])


def test_enroll_refuses_a_bad_token_file_or_root_before_sending_anything(tmp_path, capsys):
    from agent.cli import main as agent

    empty = tmp_path / "token"
    empty.write_text("\n")
    unused = "http://127.0.0.1:9"  # nothing listens: reaching it would fail with another message
    for args, code, words in (
            (["--token-file", str(tmp_path / "missing")], 1, "cannot read the token file"),
            (["--token-file", str(empty)], 1, "is empty"),
            (["--token", "zwe_x", "--root", str(tmp_path), "--config", "etc/agent.toml"], 1, "absolute paths"),
            (["--token", "zwe_x", "--root", str(tmp_path), "--config", "/etc/zonewatch/agent.toml"], 73,
             f"directory {tmp_path}/etc/zonewatch does not exist")):
        assert agent(["enroll", "--server", unused, *args]) == code, args
        assert words in capsys.readouterr().err, args
