"""Install bundles: what a technician copies to a kiosk to install and enrol the agent with one command.

A bundle is a directory (or a ``.tar.gz`` of one)::

    zonewatch-agent-<zone>/
      install.sh                  POSIX sh: user, venv, systemd unit, enrolment (provisioning/install.sh)
      zonewatch-agent.service     the hardened unit (provisioning/systemd/)
      server-url, zone            where and into which zone the device enrols
      server-ca.pem               the CA of the server's HTTPS certificate, when given
      enrol-token                 the one-time enrolment token (0600; install.sh deletes it once used)
      wheels/                     the zonewatch wheel; its dependencies too with ``deps``
      README.txt

The zonewatch wheel is built with ``pip wheel`` from this source checkout (offline when the installed
setuptools can build it, else pip fetches the build backend from its index), or copied from ``wheel``.
Dependencies: ``none`` (the kiosk's pip fetches them), ``installed`` (the wheels of the packages installed
here, repacked: offline, for kiosks with the same Python version and architecture) or ``download``
(``pip wheel`` from the package index). The bundle holds a token, so it is written 0700/0600.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
INSTALL_SH = HERE / "install.sh"
UNIT = HERE / "systemd" / "zonewatch-agent.service"
DEPS = ("none", "installed", "download")
SOURCE_PARTS = ("agent", "server", "protocol", "provisioning", "pyproject.toml", "README.md")
SKIP_IN_WHEEL = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


class BundleError(Exception):
    """Why no bundle was made, saying what to do."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    wheels: tuple[str, ...]


def source_tree() -> Path | None:
    """The checkout zonewatch runs from, if it runs from one (an editable install)."""
    root = HERE.parent
    return root if (root / "pyproject.toml").is_file() and (root / "agent").is_dir() else None


def _setuptools_builds_offline() -> bool:
    try:
        major = int(metadata.version("setuptools").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return major >= 77  # pyproject.toml's build-system requirement


def _pip(args: list[str], what: str, hint: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        tail = " | ".join(line.strip() for line in (done.stderr or done.stdout).strip().splitlines()[-4:])
        raise BundleError(f"{what} failed ({tail}); {hint}")


def build_wheel(dest: Path, wheel: str | Path | None = None) -> Path:
    """The zonewatch wheel in ``dest``: ``wheel`` copied, or built from the source checkout."""
    if wheel is not None:
        wheel = Path(wheel)
        if not (wheel.is_file() and wheel.name.startswith("zonewatch-") and wheel.suffix == ".whl"):
            raise BundleError(f"--wheel {wheel} is not a zonewatch wheel file (zonewatch-VERSION-py3-none-any.whl)")
        return Path(shutil.copy2(wheel, dest / wheel.name))
    tree = source_tree()
    if tree is None:
        raise BundleError("zonewatch does not run from a source checkout here, so no wheel can be built: give "
                          "--wheel FILE (e.g. from `pip download zonewatch --no-deps`)")
    with tempfile.TemporaryDirectory(prefix="zw-wheel-") as tmp:
        copy = Path(tmp) / "src"  # build from a clean copy: nothing is written into the checkout
        copy.mkdir()
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        for part in SOURCE_PARTS:
            src = tree / part
            if src.is_dir():
                shutil.copytree(src, copy / part, ignore=ignore)
            elif src.is_file():
                shutil.copy2(src, copy / part)
        isolation = ["--no-build-isolation"] if _setuptools_builds_offline() else []
        _pip(["wheel", "--no-deps", "-q", *isolation, "-w", str(dest), str(copy)], "building the zonewatch wheel",
             "install setuptools>=77 (pip install 'setuptools>=77') or let pip reach its package index")
    built = sorted(dest.glob("zonewatch-*.whl"))
    if not built:
        raise BundleError(f"pip made no zonewatch wheel in {dest}; build one (pip wheel --no-deps .) and give --wheel")
    return built[-1]


# -- dependencies --------------------------------------------------------------------------------


def _requirement_class():
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip always carries it
        from pip._vendor.packaging.requirements import Requirement
    return Requirement


def wheel_requirements(wheel: Path) -> list[str]:
    """The ``Requires-Dist`` lines of a wheel (what it was built with, not what is installed here)."""
    with zipfile.ZipFile(wheel) as zf:
        name = next((n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")), None)
        if name is None:
            raise BundleError(f"{wheel.name} has no METADATA: not a usable wheel")
        text = zf.read(name).decode("utf-8", "replace")
    return [line.split(":", 1)[1].strip() for line in text.split("\n\n", 1)[0].splitlines()
            if line.startswith("Requires-Dist:")]


def dependency_names(requires: list[str], extras: tuple[str, ...] = ("agent",)) -> list[str]:
    """Every installed distribution ``requires`` (with ``extras``) needs, recursively, markers evaluated here."""
    requirement = _requirement_class()
    seen: dict[str, None] = {}
    todo: list[tuple[list[str], set[str]]] = [(requires, set(extras))]
    while todo:
        texts, wanted = todo.pop()
        for text in texts:
            req = requirement(text)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (wanted or {""})):
                continue
            key = re.sub(r"[-_.]+", "-", req.name).lower()
            if key in seen:
                continue
            seen[key] = None
            try:
                todo.append((metadata.distribution(req.name).requires or [], set(req.extras)))
            except metadata.PackageNotFoundError:
                raise BundleError(f"{req.name} (needed by the agent) is not installed here, so --deps installed "
                                  "cannot carry it: pip install 'zonewatch[agent]' first, or use --deps download") \
                    from None
    return list(seen)


def _tag(wheel_text: str) -> str:
    tags = [line.split(":", 1)[1].strip() for line in wheel_text.splitlines() if line.startswith("Tag:")]
    if not tags:
        raise ValueError("no Tag")
    parts = [t.split("-") for t in tags]
    return "-".join(".".join(dict.fromkeys(p[i] for p in parts)) for i in range(3))


def repack_installed(name: str, dest: Path) -> Path:
    """A wheel of the installed distribution ``name`` (its files as installed, a fresh RECORD)."""
    dist = metadata.distribution(name)
    files = [f for f in dist.files or [] if f.parts[0] != ".." and "__pycache__" not in f.parts]
    info = next((f.parts[0] for f in files if f.parts[0].endswith(".dist-info")), None)
    wheel_text = dist.read_text("WHEEL")
    if info is None or wheel_text is None:
        raise BundleError(f"{name} is not installed from a wheel here (no .dist-info/WHEEL), so it cannot be "
                          "repacked: use --deps download, or reinstall it with pip")
    try:
        tag = _tag(wheel_text)
    except ValueError:
        raise BundleError(f"{name}'s WHEEL file has no Tag line; use --deps download") from None
    norm = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    target = dest / f"{norm}-{dist.version}-{tag}.whl"
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            if f.parts[0] == info and f.name in SKIP_IN_WHEEL:
                continue
            data = Path(dist.locate_file(f)).read_bytes()
            zf.writestr(f.as_posix(), data)
            sha = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            writer.writerow([f.as_posix(), f"sha256={sha}", len(data)])
        writer.writerow([f"{info}/RECORD", "", ""])
        zf.writestr(f"{info}/RECORD", record.getvalue())
    return target


def add_dependencies(dest: Path, wheel: Path, deps: str) -> list[Path]:
    if deps == "installed":
        return [repack_installed(name, dest) for name in dependency_names(wheel_requirements(wheel))]
    if deps == "download":
        before = set(dest.iterdir())
        _pip(["wheel", "-q", "-w", str(dest), f"{wheel}[agent]"], "fetching the agent's dependencies",
             "check pip's access to its package index (pip config list), or use --deps installed")
        return sorted(set(dest.iterdir()) - before)
    return []


# -- the bundle ----------------------------------------------------------------------------------


def _readme(zone: str, server_url: str, wheels: list[str], offline: bool) -> str:
    return (f"zonewatch agent install bundle for zone {zone}, enrolling with {server_url}.\n\n"
            "On the kiosk or counter PC (Debian, UOS, Kylin with Python 3.11+, python3-venv and CUPS):\n\n"
            "    sudo sh install.sh\n\n"
            "It creates the user zonewatch-agent, installs the agent in /opt/zonewatch-agent, the systemd unit\n"
            "zonewatch-agent.service, enrols this device with the one-time token in enrol-token (then deletes it)\n"
            "and starts the agent. `sh install.sh --help` lists the options.\n\n"
            + ("The dependencies are in wheels/: no network is needed but the server.\n" if offline else
               "The dependencies come from pip's package index: the kiosk needs access to it (or a mirror).\n")
            + "\nThe token works once and expires: keep this bundle like a key, delete it after use.\n\nwheels:\n"
            + "".join(f"  {w}\n" for w in wheels))


def write_bundle(out: str | Path, zone: str, server_url: str, make_token: Callable[[], str], *,
                 deps: str = "none", wheel: str | Path | None = None, server_ca: str | Path | None = None) -> Bundle:
    """Build the bundle at ``out`` (a new directory, or ``….tar.gz``); ``make_token`` is called last, once the
    wheels are there, so a failed build spends no token."""
    if deps not in DEPS:
        raise BundleError(f"--deps {deps!r}: use one of {', '.join(DEPS)}")
    out = Path(out)
    archive = out.name.endswith((".tar.gz", ".tgz"))
    if out.exists() and (archive or not out.is_dir() or any(out.iterdir())):
        raise BundleError(f"{out} exists already; give a new --out (a directory or FILE.tar.gz)")
    ca_pem = None
    if server_ca is not None:
        try:
            ca_pem = Path(server_ca).read_text()
        except (OSError, UnicodeError) as exc:
            raise BundleError(f"cannot read --server-ca {server_ca} ({exc}); give the PEM file of the CA") from None
        if "-----BEGIN CERTIFICATE-----" not in ca_pem:
            raise BundleError(f"--server-ca {server_ca} holds no PEM certificate")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise BundleError(f"directory {parent} does not exist; create it or give another --out")
    with tempfile.TemporaryDirectory(prefix=".zw-bundle-", dir=parent) as tmp:
        stage = Path(tmp) / f"zonewatch-agent-{re.sub(r'[^A-Za-z0-9_.-]', '_', zone)}"
        (stage / "wheels").mkdir(parents=True)
        stage.chmod(0o700)
        built = build_wheel(stage / "wheels", wheel)
        extra = add_dependencies(stage / "wheels", built, deps)
        (stage / "wheels" / "wheel").write_text(built.name + "\n")
        if deps != "none":
            (stage / "wheels" / "with-dependencies").write_text(f"{deps}\n")
        shutil.copy2(INSTALL_SH, stage / "install.sh")
        (stage / "install.sh").chmod(0o755)
        shutil.copy2(UNIT, stage / UNIT.name)
        (stage / "server-url").write_text(server_url + "\n")
        (stage / "zone").write_text(zone + "\n")
        if ca_pem is not None:
            (stage / "server-ca.pem").write_text(ca_pem)
        names = [built.name, *(p.name for p in extra)]
        (stage / "README.txt").write_text(_readme(zone, server_url, names, deps != "none"))
        token = make_token()
        fd = os.open(stage / "enrol-token", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        if archive:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w:gz") as tar:
                tar.add(stage, arcname=stage.name)
        else:
            if out.exists():
                out.rmdir()
            stage.rename(out)
    return Bundle(out, tuple(names))
