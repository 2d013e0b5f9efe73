"""A real IPP Everywhere printer: `ippeveprinter` (Debian `cups-ipp-utils` 2.4.2) on 127.0.0.1.

Fixtures:
    ipp_dnssd            session scope: the DNS-SD plumbing ippeveprinter refuses to start without
                         (it exits with "Unable to initialize DNS-SD." unless it can reach an Avahi
                         daemon over the D-Bus *system* bus; there is no option to skip it in 2.4.2,
                         `-r off` included). See DnssdInfra for how it is kept off the network.
    ipp_printer          function scope: a fresh, idle, accepting mono laser on a free port
                         (startup ≈ 0.1 s, so no state leaks between tests).
    ipp_printer_factory  function scope factory: ``ipp_printer_factory(color=True, ...)`` for other
                         models or several printers at once; all are stopped after the test.

What the printer reports (seen running here):
  * Fresh: printer-state 3, printer-state-reasons 'none', printer-is-accepting-jobs true.
    Mono: supplies "Toner Waste Tank" 25 %, "Black Toner" 75 %. color=True: "Ink Waste Tank" 25,
    "Black Ink" 75, "Cyan Ink" 50, "Magenta Ink" 33, "Yellow Ink" 67. Trays (media-source-supported
    auto, main, manual, by-pass-tray): main holds na_letter_8.5x11in stationery, by-pass-tray
    na_number-10_4.125x9.5in envelope.
  * Supply levels exist only as `printer-supply` octetStrings ("index=2;class=supplyThatIsConsumed;
    type=toner;unit=percent;maxcapacity=100;level=3;colorantname=black;") plus
    `printer-supply-description`; there are NO marker-* attributes (pyipp's Printer.markers is
    therefore empty for this printer).
  * Reasons carry a suffix that follows printer-state: '-report' while idle, '-warning' while
    processing (e.g. media-empty-warning, media-needed-warning).
  * Supply form: waste (supply0) 100 → marker-waste-full, 91..99 → marker-waste-almost-full;
    any other supply 0 → toner-empty, below 10 → toner-low, unknown (-2) included (one
    printer-wide reason, not per colorant; an ink printer's supplies turn into toner ones once
    the form was used). The printer-state stays 3 and jobs are still accepted.
  * Media form: a tray with 0 sheets → media-empty (+ media-needed while a job waits; the job then
    stays 'processing' until media is loaded), 1..24 → media-low. No tray with media at all →
    media-ready and media-col-ready become out-of-band no-value, and from then on the /media page
    only answers "Error: No media-col-ready defined for printer." (media can never be loaded again).
  * printer-state-change-time / -date-time do not change when supplies or media change.
  * The web forms are plain GETs without authentication (POST → 400 Bad Request); see
    set_supplies / set_media for the field names and the ways to break the printer with them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import itertools
import os
import plistlib
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.peers._util import free_port, is_root, require_binary, stop_process, wait_for

PACKAGE = "cups-ipp-utils"

IDLE, PROCESSING, STOPPED = 3, 4, 5  # printer-state
JOB_PENDING, JOB_HELD, JOB_PROCESSING, JOB_STOPPED = 3, 4, 5, 6  # job-state
JOB_CANCELED, JOB_ABORTED, JOB_COMPLETED = 7, 8, 9
JOB_DONE = frozenset({JOB_CANCELED, JOB_ABORTED, JOB_COMPLETED})

# Formats the printer accepts (document-format-supported adds application/octet-stream itself).
DEFAULT_FORMATS = ("application/pdf", "image/jpeg", "image/pwg-raster", "image/urf")

# A tray's loaded media as set_media takes it: (media size keyword, media-type or None, sheets).
# Sheets: 0 empty, 1..24 low, -2 unknown; the web form offers 250/125/50/25/5/0/-2.
MediaLoad = tuple[str, str | None, int]

# Trays the /media form cannot change (ippeveprinter skips them).
_FIXED_SOURCES = ("auto", "manual")

_OUT_OF_BAND = re.compile(r"^<<[a-z-]+>>$")  # ipptool's rendering of no-value, unknown, …
_INT_KEYS = frozenset({"index", "level", "maxcapacity", "mediafeed", "mediaxfeed", "status"})

_names = itertools.count(1)

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_pytest() -> None:
    """preexec_fn: the peer gets SIGTERM if pytest itself dies (SIGKILL, crash), so a killed test
    run cannot leave daemons behind for the next one."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _clean_env(extra: Mapping[str, str] | None = None, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CUPS_", "LISTEN_", "NOTIFY_SOCKET"))}
    env.update(extra or {})
    env.update(more)
    return env


def _popen(cmd: Sequence[str], log: Path, env: Mapping[str, str], cwd: Path) -> subprocess.Popen:
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            list(cmd), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_pytest,
        )


# -- DNS-SD plumbing ---------------------------------------------------------------------------

BUS_CONF = """\
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <!-- zonewatch tests: a private "system" bus for avahi-daemon and ippeveprinter only -->
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
"""

# Publishing is disabled outright: ippeveprinter's service registrations are answered
# "Not permitted" (it logs nothing and carries on), so nothing is ever announced, and the
# daemon only ever joins the mDNS group on lo. NOT disable-user-service-publishing=yes: that
# refuses EntryGroupNew itself, and ippeveprinter then aborts (SIGABRT) on an avahi assertion
# "avahi_entry_group_add_service_strlst: Assertion `group' failed."
AVAHI_CONF = """\
[server]
use-ipv4=yes
use-ipv6=no
allow-interfaces=lo
enable-dbus=yes
disallow-other-stacks=no
ratelimit-interval-usec=1000000
ratelimit-burst=1000

[wide-area]
enable-wide-area=no

[publish]
disable-publishing=yes
publish-addresses=no
publish-hinfo=no
publish-workstation=no
publish-domain=no

[reflector]
enable-reflector=no

[rlimits]
"""

# avahi-daemon's pid file and socket are fixed at /run/avahi-daemon/; in a private mount namespace
# with a tmpfs on /run it never sees (or leaves) any other instance's files.
AVAHI_IN_MOUNT_NS = ('mount -t tmpfs -o mode=0755,size=1m zw-avahi-run /run && '
                     'mkdir /run/avahi-daemon && exec "$0" "$@"')


class DnssdInfra:
    """What ippeveprinter needs for DNS-SD: an Avahi daemon on a D-Bus system bus.

    As root (the suite's normal case) both are private to the test session, whether or not the
    machine runs its own: `dbus-daemon --nofork` with a permissive config listening on a socket in
    the session's temp dir (clients are pointed at it with DBUS_SYSTEM_BUS_ADDRESS, which
    libdbus honours, so /run/dbus is never touched), and `avahi-daemon --no-chroot --no-drop-root`
    with the config above, inside `unshare --mount` with its own tmpfs on /run. So stale sockets
    and pid files from earlier runs, in whatever network namespace, never matter, a machine's own
    avahi is left alone, and nothing is announced on any network. The host's avahi is deliberately
    NOT reused even when present: it sits in the host's network namespace (the bus socket is a
    file, so it is reachable from inside `unshare -n`) and would advertise the test printers on the
    real LAN. Not root: the host's bus and avahi are used if they answer (mode "system"), otherwise
    the fixture fails, naming what to do.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.mode = ""  # "private" or "system" once started
        self.bus_address = ""
        self.startup_seconds = 0.0
        self._sockdir: Path | None = None
        self._dbus: subprocess.Popen | None = None
        self._avahi: subprocess.Popen | None = None
        self.dbus_log = workdir / "dbus-daemon.log"
        self.avahi_log = workdir / "avahi-daemon.log"

    def env(self) -> dict[str, str]:
        """Variables a DNS-SD client (ippeveprinter) needs to reach this Avahi."""
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.bus_address} if self.mode == "private" else {}

    def start(self, timeout: float = 20) -> DnssdInfra:
        began = time.monotonic()
        dbus_send = require_binary("dbus-send", "dbus")
        if not is_root():
            if self._avahi_state(dbus_send, ["--system"]) == 2:
                self.mode = "system"
                return self
            pytest.fail("ippeveprinter needs DNS-SD: run the suite as root (scripts/test.sh), which "
                        "starts a private D-Bus and avahi-daemon, or have the system's dbus and "
                        "avahi-daemon running.", pytrace=False)
        dbus_daemon = require_binary("dbus-daemon", "dbus")
        avahi_daemon = require_binary("avahi-daemon", "avahi-daemon")
        self.workdir.mkdir(parents=True, exist_ok=True)
        socket_path = self.workdir / "system_bus_socket"
        if len(str(socket_path)) > 100:  # unix socket paths are limited to 107 bytes
            self._sockdir = Path(tempfile.mkdtemp(prefix="zw-dbus-"))
            socket_path = self._sockdir / "system_bus_socket"
        self.bus_address = f"unix:path={socket_path}"
        bus_conf = self.workdir / "bus.conf"
        bus_conf.write_text(BUS_CONF.format(socket=socket_path))
        avahi_conf = self.workdir / "avahi-daemon.conf"
        avahi_conf.write_text(AVAHI_CONF)
        self.mode = "private"
        try:
            self._dbus = _popen([dbus_daemon, f"--config-file={bus_conf}", "--nofork", "--nopidfile"],
                                self.dbus_log, _clean_env(), self.workdir)
            bus = [f"--bus={self.bus_address}"]
            wait_for(lambda: socket_path.exists() and self._call(dbus_send, bus, "org.freedesktop.DBus",
                                                               "/org/freedesktop/DBus",
                                                               "org.freedesktop.DBus.GetId") is not None,
                     timeout, "private dbus-daemon", self._dbus, self.dbus_log)
            avahi = [avahi_daemon, "-f", str(avahi_conf), "--no-chroot", "--no-drop-root", "--no-rlimits",
                     "--no-proc-title"]
            if self._private_mounts_work():
                avahi = [require_binary("unshare", "util-linux"), "--mount", "--propagation", "private",
                         "sh", "-c", AVAHI_IN_MOUNT_NS, *avahi]
            self._avahi = _popen(avahi, self.avahi_log,
                                 _clean_env(DBUS_SYSTEM_BUS_ADDRESS=self.bus_address), self.workdir)
            wait_for(lambda: self._avahi_state(dbus_send, bus) == 2, timeout, "private avahi-daemon",
                     self._avahi, self.avahi_log)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop what start() started; never the host's services."""
        stop_process(self._avahi)
        stop_process(self._dbus)
        self._avahi = self._dbus = None
        if self._sockdir is not None:
            shutil.rmtree(self._sockdir, ignore_errors=True)
            self._sockdir = None

    @staticmethod
    def _private_mounts_work() -> bool:
        unshare = shutil.which("unshare")
        if unshare is None:
            return False
        probe = subprocess.run([unshare, "--mount", "--propagation", "private", "sh", "-c",
                                "mount -t tmpfs -o size=1m zw-probe /mnt"],
                               capture_output=True, timeout=10, check=False)
        return probe.returncode == 0

    @staticmethod
    def _call(dbus_send: str, bus: list[str], dest: str, path: str, method: str) -> str | None:
        done = subprocess.run([dbus_send, *bus, "--print-reply", f"--dest={dest}", path, method],
                              capture_output=True, timeout=10, check=False)
        return done.stdout.decode(errors="replace") if done.returncode == 0 else None

    def _avahi_state(self, dbus_send: str, bus: list[str]) -> int | None:
        """AvahiServerState over D-Bus: 2 = running."""
        out = self._call(dbus_send, bus, "org.freedesktop.Avahi", "/", "org.freedesktop.Avahi.Server.GetState")
        match = re.search(r"int32 (-?\d+)", out or "")
        return int(match.group(1)) if match else None


# -- the printer -----------------------------------------------------------------------------

class IppError(RuntimeError):
    """An IPP request the printer (or ipptool) did not answer with successful-ok."""


_PRINTER_ATTRS_TEST = """\
{
  NAME "Get-Printer-Attributes"
  OPERATION Get-Printer-Attributes
  GROUP operation-attributes-tag
  ATTR charset attributes-charset utf-8
  ATTR language attributes-natural-language en
  ATTR uri printer-uri $uri
  ATTR name requesting-user-name zonewatch
  ATTR keyword requested-attributes all,media-col-database
  STATUS successful-ok
}
"""

_PRINT_JOB_TEST = """\
{
  NAME "Print-Job"
  OPERATION Print-Job
  GROUP operation-attributes-tag
  ATTR charset attributes-charset utf-8
  ATTR language attributes-natural-language en
  ATTR uri printer-uri $uri
  ATTR name requesting-user-name zonewatch
  ATTR name job-name $job_name
  ATTR mimeMediaType document-format $document_format
  FILE $filename
  STATUS successful-ok
  STATUS successful-ok-ignored-or-substituted-attributes
  EXPECT job-id
}
"""

_JOB_ATTRS_TEST = """\
{
  NAME "Get-Job-Attributes"
  OPERATION Get-Job-Attributes
  GROUP operation-attributes-tag
  ATTR charset attributes-charset utf-8
  ATTR language attributes-natural-language en
  ATTR uri printer-uri $uri
  ATTR integer job-id $job_id
  ATTR name requesting-user-name zonewatch
  ATTR keyword requested-attributes all
  STATUS successful-ok
}
"""


def _minimal_pdf() -> bytes:
    """A valid one-page PDF (Letter, the text "zonewatch test page") with a correct xref table."""
    content = b"BT /F1 24 Tf 72 700 Td (zonewatch test page) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


TEST_PDF = _minimal_pdf()


def as_list(value: Any) -> list:
    """IPP does not mark 1setOf: one value comes back as a scalar, none (no-value) as None."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse_keyvalues(value: bytes | str) -> dict[str, str | int]:
    """'index=2;class=…;level=3;…' (printer-supply, printer-input-tray) as a dict; numbers as int."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    out: dict[str, str | int] = {}
    for part in text.split(";"):
        key, sep, val = part.partition("=")
        if not sep:
            continue
        out[key] = int(val) if key in _INT_KEYS and re.fullmatch(r"-?\d+", val) else val
    return out


def _decode(value: Any) -> Any:
    """ipptool's plist values: out-of-band strings ("<<no-value>>", "<<unknown>>") become None."""
    if isinstance(value, str) and _OUT_OF_BAND.match(value):
        return None
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value


class IppPrinter:
    """One `ippeveprinter` process; asked over IPP with `ipptool`, driven through its web forms.

    The IPP side uses ipptool (CUPS's reference client, the same libcups the printer is built on)
    with `-X` XML-plist output parsed by plistlib: typed values (int, bool, bytes for octetString,
    dict for collections, datetime), synchronous, and independent of pyipp, which the agent uses —
    so a test compares the agent's reading with a second, reference implementation. (pyipp 0.17
    also decodes out-of-band values as '' and keeps only the last value of a multi-valued
    collection member.)

    Listens on 127.0.0.1:PORT and [::1]:PORT (`-n localhost`: with `-n 127.0.0.1` it exits with
    "Unable to create IPv6 listener"). printer-uri-supported (and printer-more-info, an https:
    URL: the port also speaks TLS) echo the request's Host header: libcups clients such as ipptool
    send "localhost" for 127.0.0.1, pyipp sends "127.0.0.1".
    """

    host = "127.0.0.1"

    def __init__(self, workdir: Path, env: Mapping[str, str] | None = None, *, name: str | None = None,
                 make: str = "Zonewatch", model: str = "Test Laser", color: bool = False,
                 duplex: bool = False, formats: Sequence[str] = DEFAULT_FORMATS,
                 command: str | None = "cat", location: str = "") -> None:
        """command: run on every job's file, its stdout saved as `spool/<id>-<name>.prn`; the
        default `cat` completes a job at once. None: ippeveprinter's own simulation, which keeps
        each job 'processing' for a random 5-15 s."""
        self.ippeveprinter = require_binary("ippeveprinter", PACKAGE)
        self.ipptool = require_binary("ipptool", PACKAGE)
        self.workdir = workdir
        self.spool = workdir / "spool"
        self.log = workdir / "ippeveprinter.log"
        self.name = name or f"zonewatch-test-{os.getpid()}-{next(_names)}"
        self.make, self.model = make, model
        self.color, self.duplex = color, duplex
        self.formats = tuple(formats)
        self.command = (shutil.which(command) or command) if command else None
        self.location = location
        self._env = dict(env or {})
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.startup_seconds = 0.0
        self._tests: dict[str, Path] = {}

    @property
    def uri(self) -> str:
        return f"ipp://{self.host}:{self.port}/ipp/print"

    @property
    def web_url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    # -- process -----------------------------------------------------------------------------

    def start(self, timeout: float = 20) -> IppPrinter:
        for sub in ("spool", "keys", "home", "ipptool"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        for key, text in (("printer", _PRINTER_ATTRS_TEST), ("print", _PRINT_JOB_TEST),
                          ("job", _JOB_ATTRS_TEST)):
            self._tests[key] = self.workdir / "ipptool" / f"{key}.test"
            self._tests[key].write_text(text)
        began = time.monotonic()
        for attempt in range(3):  # a port free on 127.0.0.1 may still be taken on ::1
            self.port = free_port()
            cmd = [self.ippeveprinter, "-v", "-n", "localhost", "-p", str(self.port),
                   "-d", str(self.spool), "-K", str(self.workdir / "keys"), "-k",
                   "-M", self.make, "-m", self.model, "-s", "10,8" if self.color else "10",
                   "-f", ",".join(self.formats)]
            cmd += ["-c", self.command] if self.command else []
            cmd += ["-l", self.location] if self.location else []
            cmd += ["-2"] if self.duplex else []
            cmd.append(self.name)
            with open(self.log, "ab") as log:
                log.write(f"=== attempt {attempt + 1}: {' '.join(cmd)}\n".encode())
            self.proc = _popen(cmd, self.log, _clean_env(self._env, HOME=str(self.workdir / "home")),
                               self.workdir)
            try:
                wait_for(self._answers, timeout, f"ippeveprinter on {self.host}:{self.port}", self.proc,
                         self.log)
                break
            except RuntimeError:  # it exited: port clash on ::1, or DNS-SD unreachable (3 times)
                stop_process(self.proc)
                if attempt == 2:
                    raise
            except BaseException:
                stop_process(self.proc)
                raise
        self.startup_seconds = time.monotonic() - began
        return self

    def _answers(self) -> bool:
        try:
            return self.attributes(["printer-state"]).get("printer-state") is not None
        except IppError:
            return False

    def stop(self) -> None:
        """SIGTERM (it exits within a few ms), SIGKILL if it does not."""
        stop_process(self.proc)
        self.proc = None

    # -- IPP ---------------------------------------------------------------------------------

    def run_ipptool(self, test: Path | str, uri: str | None = None,
                    variables: Mapping[str, Any] | None = None, file: Path | None = None,
                    timeout: float = 15) -> list[dict]:
        """Run one ipptool test file (`-X`) against the printer; its tests' plist dicts, each with
        'Successful', 'StatusCode' and 'ResponseAttributes' (a list of attribute groups)."""
        cmd = [self.ipptool, "-X", "-T", str(int(timeout))]
        for key, value in (variables or {}).items():
            cmd += ["-d", f"{key}={value}"]
        cmd += ["-f", str(file)] if file else []
        cmd += [uri or self.uri, str(test)]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=timeout + 10, check=False,
                                  env=_clean_env(HOME=str(self.workdir / "home")))
        except subprocess.TimeoutExpired as exc:
            raise IppError(f"ipptool did not finish: {' '.join(cmd)}") from exc
        try:
            plist = plistlib.loads(done.stdout)
        except Exception as exc:
            raise IppError(f"ipptool printed no plist ({done.returncode}): "
                           f"{done.stderr.decode(errors='replace').strip()}") from exc
        tests = plist.get("Tests") or []
        if not tests:
            raise IppError(plist.get("ErrorMessage") or done.stderr.decode(errors="replace").strip())
        return tests

    def _request(self, test: str, variables: Mapping[str, Any] | None = None,
                 file: Path | None = None) -> dict[str, Any]:
        """One request; the response's attributes (operation group left out), decoded."""
        result = self.run_ipptool(self._tests[test], variables=variables, file=file)[0]
        groups = result.get("ResponseAttributes") or []
        if not result.get("Successful"):
            message = groups[0].get("status-message", "") if groups else ""
            raise IppError(f"{result.get('Operation')}: {result.get('StatusCode')} {message} "
                           f"{result.get('Errors', '')}".strip())
        attrs: dict[str, Any] = {}
        for group in groups[1:]:
            attrs.update(group)
        return _decode(attrs)

    def attributes(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """Get-Printer-Attributes (all + media-col-database), asked of the printer itself.

        Values: int (enums too: printer-state 3), bool, str, bytes (octetString: printer-supply,
        printer-input-tray), dict (collections), datetime (naive, UTC); a 1setOf with one value is
        a scalar (see as_list); out-of-band no-value/unknown is None. names: keep only these.
        """
        attrs = self._request("printer")
        return attrs if names is None else {k: v for k, v in attrs.items() if k in names}

    def state_reasons(self) -> list[str]:
        return as_list(self.attributes(["printer-state-reasons"]).get("printer-state-reasons"))

    def supplies(self) -> list[dict[str, str | int]]:
        """printer-supply decoded, each with its printer-supply-description as 'description'."""
        attrs = self.attributes(["printer-supply", "printer-supply-description"])
        descriptions = as_list(attrs.get("printer-supply-description"))
        supplies = [parse_keyvalues(v) for v in as_list(attrs.get("printer-supply"))]
        for supply, description in zip(supplies, descriptions, strict=False):
            supply["description"] = description
        return supplies

    def input_trays(self) -> dict[str, dict[str, str | int]]:
        """printer-input-tray decoded, by tray name: type, maxcapacity, level (sheets), …"""
        trays = [parse_keyvalues(v) for v in as_list(self.attributes(["printer-input-tray"])
                                                      .get("printer-input-tray"))]
        return {str(tray.get("name")): tray for tray in trays}

    def print_job(self, document: bytes | Path = TEST_PDF, document_format: str = "application/pdf",
                  job_name: str = "zonewatch-test") -> int:
        """Print-Job over IPP; the job id. job_name: no spaces (ipptool variable)."""
        if isinstance(document, bytes):
            path = self.workdir / f"document-{next(_names)}"
            path.write_bytes(document)
        else:
            path = document
        attrs = self._request("print", {"job_name": job_name, "document_format": document_format},
                              file=path)
        return int(attrs["job-id"])

    def job_attributes(self, job_id: int) -> dict[str, Any]:
        return self._request("job", {"job_id": job_id})

    def wait_job(self, job_id: int, states: frozenset[int] | set[int] = JOB_DONE,
                 timeout: float = 30) -> dict[str, Any]:
        """Poll Get-Job-Attributes until job-state is one of `states`; the job's attributes."""
        seen: dict[str, Any] = {}

        def reached() -> bool:
            seen.update(self.job_attributes(job_id))
            return seen.get("job-state") in states

        wait_for(reached, timeout, f"job {job_id} on {self.name} in {sorted(states)}", self.proc, self.log)
        return seen

    # -- the web forms ----------------------------------------------------------------------

    def _web_get(self, path: str) -> str:
        """GET on the printer's web interface; no proxy, whatever the environment says."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(self.web_url.rstrip("/") + path, timeout=10) as response:
                return response.read().decode("utf-8", "replace")
        except urllib.error.URLError as exc:
            raise IppError(f"GET {path} on {self.name}: {exc}") from exc

    @staticmethod
    def _form_error(html: str) -> str:
        match = re.search(r"<p>(Error:[^<]*)</p>", html)
        return match.group(1) if match else html[-500:]

    def set_supplies(self, levels: Sequence[int], timeout: float = 10) -> None:
        """Set every supply level (percent) through /supplies?supply0=…&supply1=…; returns once
        Get-Printer-Attributes shows the new levels.

        Order as in printer-supply-description: [waste tank, black] (mono) or
        [waste tank, black, cyan, magenta, yellow] (color). All levels are required: the form
        rebuilds printer-supply from the fields sent, so a missing one would delete that supply,
        and the page then answers only "Error: Different number of values for printer-supply and
        printer-supply-description" for the rest of the printer's life.
        """
        count = len(as_list(self.attributes(["printer-supply-description"]).get("printer-supply-description")))
        if len(levels) != count:
            raise ValueError(f"set_supplies: {self.name} has {count} supplies, got {len(levels)} levels")
        levels = [int(level) for level in levels]
        html = self._web_get("/supplies?" + urlencode({f"supply{i}": lv for i, lv in enumerate(levels)}))
        if "Supplies updated." not in html:
            raise IppError(f"/supplies on {self.name}: {self._form_error(html)}")
        wait_for(lambda: [s.get("level") for s in self.supplies()] == levels, timeout,
                 f"supply levels {levels} on {self.name}", self.proc, self.log)

    def set_media(self, trays: Mapping[str, MediaLoad | None] | None = None, timeout: float = 10) -> None:
        """Load or empty trays through the /media form; returns once IPP shows the result.

        trays: {"main": ("iso_a4_210x297mm", "stationery", 250), "by-pass-tray": None, …};
        a tray given None is emptied (no media, 0 sheets → media-empty); trays not named keep
        what they hold. trays=None empties every tray: media-ready and media-col-ready become
        no-value (None here) with 'media-empty-report' — and after that ippeveprinter's /media
        page is broken for good, so no later set_media can load anything (IppError).
        Settable trays: main, by-pass-tray ('auto' and 'manual' are not trays the form knows).
        """
        attrs = self.attributes(["media-source-supported", "media-col-ready", "media-supported"])
        sources = as_list(attrs.get("media-source-supported"))
        settable = [s for s in sources if s not in _FIXED_SOURCES and "-man" not in s]
        if attrs.get("media-col-ready") is None:
            raise IppError(f"set_media: every tray of {self.name} was emptied; ippeveprinter's /media "
                           "form cannot load media after that: use a fresh printer")
        unknown = set(trays or {}) - set(settable)
        if unknown:
            raise ValueError(f"set_media: no tray {sorted(unknown)} on {self.name}; trays: {settable}")
        supported = set(as_list(attrs.get("media-supported")))
        current = self._loaded_media()
        want: dict[str, MediaLoad | None] = {}
        for source in settable:
            if trays is None:
                load = None
            elif source not in trays:
                load = current.get(source)
            elif (load := trays[source]) is not None:
                size, media_type, sheets = load
                if size not in supported:
                    raise ValueError(f"set_media: {size!r} is not in media-supported {sorted(supported)}")
                load = (size, media_type, int(sheets))
            want[source] = load
        query: dict[str, str | int] = {}
        for source, load in want.items():
            i = sources.index(source)
            size, media_type, sheets = load if load is not None else ("", None, 0)
            query.update({f"size{i}": size, f"type{i}": media_type or "", f"level{i}": int(sheets)})
        html = self._web_get("/media?" + urlencode(query))
        if "Media updated." not in html:
            raise IppError(f"/media on {self.name}: {self._form_error(html)}")

        def shown() -> bool:
            now = self._loaded_media()
            return all(now.get(source) == load for source, load in want.items())

        wait_for(shown, timeout, f"media {want} on {self.name}", self.proc, self.log)

    def _loaded_media(self) -> dict[str, MediaLoad | None]:
        """What each tray holds, per media-col-ready and printer-input-tray."""
        attrs = self.attributes(["media-col-ready", "printer-input-tray"])
        cols = {col.get("media-source"): col for col in as_list(attrs.get("media-col-ready"))}
        loaded: dict[str, MediaLoad | None] = {}
        for tray in (parse_keyvalues(v) for v in as_list(attrs.get("printer-input-tray"))):
            name, sheets = str(tray.get("name")), int(tray.get("level", 0))
            col = cols.get(name)
            if col is not None:
                loaded[name] = (col.get("media-size-name"), col.get("media-type"), sheets)
            else:
                loaded[name] = None if sheets == 0 else ("", None, sheets)
        return loaded


# -- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def ipp_dnssd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnssdInfra]:
    """D-Bus + avahi-daemon for ippeveprinter, private to the session (see DnssdInfra); stops
    exactly what it started."""
    require_binary("ippeveprinter", PACKAGE)
    infra = DnssdInfra(tmp_path_factory.mktemp("ipp-dnssd"))
    try:
        infra.start()
        yield infra
    finally:
        infra.stop()


@pytest.fixture
def ipp_printer_factory(ipp_dnssd: DnssdInfra, tmp_path: Path) -> Iterator[Callable[..., IppPrinter]]:
    """Factory: ``ipp_printer_factory(**IppPrinter options) -> started IppPrinter``."""
    printers: list[IppPrinter] = []

    def make(**options: Any) -> IppPrinter:
        printer = IppPrinter(tmp_path / f"printer{len(printers) + 1}", ipp_dnssd.env(), **options)
        printers.append(printer)
        return printer.start()

    yield make
    for printer in printers:
        with contextlib.suppress(Exception):
            printer.stop()


@pytest.fixture
def ipp_printer(ipp_printer_factory: Callable[..., IppPrinter]) -> IppPrinter:
    """A fresh mono laser for this test: idle, accepting, toner 75 %, letter paper in 'main'."""
    return ipp_printer_factory()
