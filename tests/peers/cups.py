"""A private CUPS daemon (Debian `cups-daemon` 2.4.2) and printer queues on it.

Fixtures:
    cupsd       session scope: one `cupsd -f` on a free 127.0.0.1 port with its own ServerRoot,
                spool, cache, state and logs in a temp dir; no unix socket, no browsing, no DNS-SD;
                every IPP operation allowed from 127.0.0.1 without authentication.
    cups_queue  function scope factory: ``cups_queue(device_uri="file:///dev/null") -> name``
                adds an enabled, accepting raw queue with a unique name; all are deleted after.

Printer conditions are produced the way real printers produce them: the test backend `zwtest`
(tests/peers/cups_backend.py, installed as ServerBin/backend/zwtest) writes `STATE:` and `ATTR:`
lines that cupsd turns into printer-state-reasons and marker-* attributes.
See `Cupsd.set_condition` / `Cupsd.clear_condition`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.peers._util import free_port, is_root, require_binary, stop_process, wait_for

PACKAGE = "cups-daemon"
SYSTEM_SERVER_BIN = Path("/usr/lib/cups")
BACKEND_SOURCE = Path(__file__).with_name("cups_backend.py")

IDLE, PROCESSING, STOPPED = 3, 4, 5  # printer-state
JOB_PENDING, JOB_HELD, JOB_PROCESSING, JOB_STOPPED = 3, 4, 5, 6  # job-state
JOB_CANCELED, JOB_ABORTED, JOB_COMPLETED = 7, 8, 9

# A marker as given to set_condition: (name, type, level, color), e.g. ("Black", "toner", 42,
# "#000000"). Levels are percent, or -1 (unavailable), -2 (unknown), -3 (some left, unknown).
Marker = tuple[str, str, int, str]

CUPS_FILES_CONF = """\
User lp
Group lp
SystemGroup root
ServerRoot {root}/etc
RequestRoot {root}/spool
TempDir {root}/spool/tmp
CacheDir {root}/cache
StateDir {root}/state
ServerBin {root}/lib
DataDir /usr/share/cups
DocumentRoot /usr/share/cups/doc-root
AccessLog {root}/log/access_log
ErrorLog {root}/log/error_log
PageLog {root}/log/page_log
Printcap {root}/printcap
FileDevice Yes
CreateSelfSignedCerts No
"""

CUPSD_CONF = """\
LogLevel info
MaxLogSize 0
Listen 127.0.0.1:{port}
Browsing No
BrowseLocalProtocols none
WebInterface No
DefaultAuthType None
DefaultEncryption Never
DefaultPolicy open
ErrorPolicy retry-job
JobKillDelay 1
PreserveJobHistory Yes
PreserveJobFiles No
MaxJobs 0
Timeout 30
<Location />
  Order allow,deny
  Allow from 127.0.0.1
</Location>
<Policy open>
  JobPrivateAccess all
  JobPrivateValues none
  SubscriptionPrivateAccess all
  SubscriptionPrivateValues none
  <Limit All>
    Order deny,allow
  </Limit>
</Policy>
"""


class Cupsd:
    """One private cupsd; every CUPS CLI tool and pycups call here talks to it by host:port."""

    host = "127.0.0.1"

    def __init__(self, port: int | None = None) -> None:
        self.cupsd = require_binary("cupsd", PACKAGE)
        if not is_root():
            pytest.fail("the private cupsd must be started as root (it refuses to run backends "
                        "as root and drops to user lp itself): run the suite as root, e.g. "
                        "scripts/test.sh", pytrace=False)
        self.port = port or free_port()
        self.server = f"{self.host}:{self.port}"
        # pytest's tmp dirs are 0700 and cupsd drops to user lp for backends, filters and the
        # spool, so the tree lives in its own 0755 dir that lp can traverse.
        self.root = Path(tempfile.mkdtemp(prefix="zw-cupsd-"))
        self.root.chmod(0o755)
        self.log = self.root / "log" / "error_log"
        self.proc: subprocess.Popen | None = None
        self._stderr = None
        self._names = itertools.count(1)
        try:
            self._write_tree()
        except BaseException:
            self.cleanup()
            raise

    # -- the daemon ------------------------------------------------------------------------

    def _write_tree(self) -> None:
        for sub in ("etc", "etc/ppd", "etc/ssl", "spool", "spool/tmp", "cache", "state", "log",
                    "lib", "lib/backend"):
            (self.root / sub).mkdir(mode=0o755, exist_ok=True)
        # ServerBin: the system's filters, drivers, notifiers and daemon helpers, plus a backend/
        # dir of our own holding the system backends and zwtest.
        for entry in SYSTEM_SERVER_BIN.iterdir():
            if entry.name != "backend":
                (self.root / "lib" / entry.name).symlink_to(entry)
        for entry in (SYSTEM_SERVER_BIN / "backend").iterdir():
            (self.root / "lib" / "backend" / entry.name).symlink_to(entry.resolve())
        backend = self.root / "lib" / "backend" / "zwtest"
        shutil.copyfile(BACKEND_SOURCE, backend)
        backend.chmod(0o755)  # cupsd runs only root-owned backends, as lp unless they are 0700
        os.chown(backend, 0, 0)
        for name in ("spool", "spool/tmp", "cache", "state"):
            shutil.chown(self.root / name, group="lp")
        (self.root / "spool" / "tmp").chmod(0o1770)
        (self.root / "etc" / "cups-files.conf").write_text(CUPS_FILES_CONF.format(root=self.root))
        (self.root / "etc" / "cupsd.conf").write_text(CUPSD_CONF.format(port=self.port))

    def start(self, timeout: float = 30) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CUPS_", "LISTEN_", "NOTIFY_SOCKET"))}
        self._stderr = open(self.root / "log" / "stderr", "ab")  # noqa: SIM115 - closed in stop()
        # cwd: cupsd never chdirs in the foreground, and its backends inherit its cwd.
        self.proc = subprocess.Popen(
            [self.cupsd, "-f", "-c", str(self.root / "etc" / "cupsd.conf"),
             "-s", str(self.root / "etc" / "cups-files.conf")],
            env=env, cwd=self.root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        wait_for(self._answers, timeout, f"cupsd on {self.server}", self.proc, self.log)

    def _answers(self) -> bool:
        try:
            self.connection().getPrinters()
        except Exception:  # cups.IPPError / RuntimeError while it is still starting
            return False
        return True

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def connection(self):
        import cups

        return cups.Connection(host=self.host, port=self.port)

    def env(self) -> dict[str, str]:
        """Environment for CUPS client tools (lp, lpstat, lpadmin, …) and agent subprocesses."""
        return {**os.environ, "CUPS_SERVER": self.server}

    def run(self, tool: str, *args: str, stdin: bytes | None = None) -> str:
        """Run a CUPS client tool against this daemon; its stdout, or an error with its stderr."""
        path = require_binary(tool, "cups-client")
        done = subprocess.run([path, "-h", self.server, *args], input=stdin, env=self.env(),
                              capture_output=True, timeout=30, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({done.returncode}): "
                               f"{done.stderr.decode(errors='replace').strip()}")
        return done.stdout.decode(errors="replace")

    # -- queues ----------------------------------------------------------------------------

    def unique_name(self) -> str:
        return f"zwq{os.getpid()}_{next(self._names)}"

    def add_queue(self, name: str, device_uri: str = "file:///dev/null") -> None:
        """A raw queue (no PPD, no filters: data goes to the backend as is), enabled, accepting."""
        self.run("lpadmin", "-p", name, "-v", device_uri, "-E")
        wait_for(lambda: name in self.connection().getPrinters(), 10, f"queue {name} added")

    def delete_queue(self, name: str) -> None:
        """Remove the queue and every job on it (pending ones and history too)."""
        with contextlib.suppress(RuntimeError):
            self.run("cancel", "-a", "-x", name)
        self.run("lpadmin", "-x", name)

    def disable(self, name: str, reason: str = "") -> None:
        """cupsdisable: printer-state 5 (stopped), 'paused' in printer-state-reasons."""
        self.run("cupsdisable", *(["-r", reason] if reason else []), name)

    def enable(self, name: str) -> None:
        self.run("cupsenable", name)

    def reject(self, name: str, reason: str = "") -> None:
        """cupsreject: printer-is-accepting-jobs False; the printer-state does not change."""
        self.run("cupsreject", *(["-r", reason] if reason else []), name)

    def accept(self, name: str) -> None:
        self.run("cupsaccept", name)

    def set_device_uri(self, name: str, device_uri: str) -> None:
        self.run("lpadmin", "-p", name, "-v", device_uri)

    def submit_job(self, name: str, title: str = "zonewatch test", hold: bool = False) -> int:
        """Submit a small text job with `lp`; its job id. hold=True: held indefinitely (state 4)."""
        args = ["-d", name, "-t", title, *(["-H", "indefinite"] if hold else [])]
        out = self.run("lp", *args, stdin=b"zonewatch test page\n")
        match = re.search(r"request id is \S+-(\d+)", out)
        if match is None:
            raise RuntimeError(f"lp printed no job id: {out!r}")
        return int(match.group(1))

    def stuck_job(self, name: str, how: str = "stopped") -> int:
        """A job that stays in the queue, not printing, until cancelled; its job id.

        how="stopped" (default): the queue is stopped first (`cupsdisable -r "zonewatch test:
            stuck job"`), then a job is submitted: job-state 3 (pending), job-state-reasons
            'none' — a job waiting for a stopped printer. (Only a job the queue stopped *on*, as
            with set_condition(stop=True), carries 'printer-stopped'.)
        how="held": the queue is left alone; the job is submitted with job-hold-until=indefinite:
            job-state 4 (pending-held), job-state-reasons 'job-hold-until-specified'.
        how="busy": the queue stays enabled but is pointed at a zwtest backend that hangs for an
            hour; a first job blocks it (job-state 5, 'job-printing'; printer-state 4) and the
            returned second job waits behind it: job-state 3 (pending), reasons 'none'.
        In every case the job's time-at-creation is its submission time (epoch seconds).
        """
        if how == "stopped":
            self.disable(name, "zonewatch test: stuck job")
        elif how == "busy":
            self.set_device_uri(name, self.zwtest_uri(name, sleep=3600))
            blocker = self.submit_job(name, "zonewatch blocking job")
            wait_for(lambda: self.job_state(blocker) == JOB_PROCESSING, 10,
                     f"job {blocker} on {name} processing", self.proc, self.log)
        elif how != "held":
            raise ValueError(f"stuck_job: how must be 'stopped', 'held' or 'busy', not {how!r}")
        job = self.submit_job(name, "zonewatch stuck job", hold=how == "held")
        want = JOB_HELD if how == "held" else JOB_PENDING
        wait_for(lambda: self.job_state(job) == want, 10, f"job {job} on {name} stuck",
                 self.proc, self.log)
        return job

    def jobs(self, name: str, which: str = "not-completed") -> dict[int, dict]:
        """Jobs on one queue, {job_id: attributes}; which: 'not-completed', 'completed', 'all'."""
        return {
            job_id: attrs
            for job_id, attrs in self.connection().getJobs(
                which_jobs=which, requested_attributes=["all"]).items()
            if attrs.get("job-printer-uri", "").rsplit("/", 1)[-1] == name
        }

    def job_state(self, job_id: int) -> int:
        return self.connection().getJobAttributes(job_id)["job-state"]

    def printer_attributes(self, name: str) -> dict:
        return self.connection().getPrinterAttributes(name)

    # -- printer conditions reported by the zwtest backend ----------------------------------

    @staticmethod
    def zwtest_uri(name: str, reasons: Sequence[str] = (), markers: Sequence[Marker] = (),
                   clear: Sequence[str] = (), exit_code: int = 0, sleep: float = 0,
                   message: str = "") -> str:
        """A zwtest device URI; see tests/peers/cups_backend.py for what each part does."""
        query: dict[str, str] = {}
        if clear:
            query["clear"] = ",".join(clear)
        if reasons:
            query["reasons"] = ",".join(reasons)
        if markers:
            names, types, levels, colors = zip(*markers, strict=True)
            query.update({"marker-names": ",".join(names), "marker-types": ",".join(types),
                          "marker-levels": ",".join(str(level) for level in levels),
                          "marker-colors": ",".join(colors)})
        if message:
            query["message"] = message
        if sleep:
            query["sleep"] = str(sleep)
        if exit_code:
            query["exit"] = str(exit_code)
        return f"zwtest://{name}" + (f"?{urlencode(query)}" if query else "")

    def set_condition(self, name: str, reasons: Sequence[str] = (),
                      markers: Sequence[Marker] = (), stop: bool = True, *, message: str = "",
                      sleep: float = 0, timeout: float = 20) -> None:
        """Make the queue's printer report a condition, the way a real backend does.

        Points the queue at a zwtest URI, enables it and prints one job. The backend sends
        `STATE: +reason` for each reason, one `ATTR: marker-…` line and `message` as `INFO:`,
        then (after `sleep` seconds) exits 4 = CUPS_BACKEND_STOP when stop=True — the queue stops
        (printer-state 5, 'paused' added) and the job goes back to job-state 3 with reason
        'printer-stopped' — or 0 when stop=False: the job completes and the reasons and markers
        stay. Returns once CUPS shows the reasons and markers and the queue is stopped / the job
        completed; with sleep > 0, as soon as they show while the job is still processing
        (printer-state 4). Needed for 'offline-report': cupsd drops that one when a job ends,
        and the printer-state-message with it.
        """
        self.set_device_uri(name, self.zwtest_uri(name, reasons, markers, message=message,
                                                  sleep=sleep, exit_code=4 if stop else 0))
        self.enable(name)
        job = self.submit_job(name, "zonewatch condition")

        def shown() -> bool:
            attrs = self.printer_attributes(name)
            if not set(reasons) <= set(attrs["printer-state-reasons"]):
                return False
            if markers and attrs.get("marker-levels") != [m[2] for m in markers]:
                return False
            if sleep:
                return attrs["printer-state"] == PROCESSING
            if stop:
                return attrs["printer-state"] == STOPPED
            return self.job_state(job) == JOB_COMPLETED

        wait_for(shown, timeout, f"condition {list(reasons)} on {name}", self.proc, self.log)

    def clear_condition(self, name: str, markers: Sequence[Marker] = (),
                        timeout: float = 20) -> None:
        """Back to a healthy printer: idle, accepting, printer-state-reasons ['none'], no jobs.

        In CUPS 2.4.2 a backend's reasons outlive its job, a re-enable (which removes only
        'paused'), a new device URI and a cupsd restart; what removes them is a later backend
        run writing `STATE: -reason` or `STATE: none` (or an admin's
        `lpadmin -p NAME -o printer-state-reasons=none`). So, the way a repaired printer recovers:
        the queue is pointed at a zwtest URI that sends `STATE: none` (and `markers`, if given;
        otherwise the last reported marker values stay), accepts and is enabled; the jobs still
        waiting on it (e.g. the one set_condition left) print, or one recovery job does.
        """
        self.set_device_uri(name, self.zwtest_uri(name, markers=markers, clear=["all"]))
        self.accept(name)
        self.enable(name)
        if not self.jobs(name):
            self.submit_job(name, "zonewatch recovery")

        def healthy() -> bool:
            attrs = self.printer_attributes(name)
            return (attrs["printer-state"] == IDLE
                    and attrs["printer-state-reasons"] == ["none"]
                    and not self.jobs(name))

        wait_for(healthy, timeout, f"printer {name} healthy again", self.proc, self.log)


@pytest.fixture(scope="session")
def cupsd() -> Iterator[Cupsd]:
    """One private cupsd for the whole session; always stopped and its temp dir removed."""
    daemon = Cupsd()
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.cleanup()


@pytest.fixture
def cups_queue(cupsd: Cupsd) -> Iterator[Callable[..., str]]:
    """Factory: ``cups_queue(device_uri="file:///dev/null") -> name`` of a new raw queue."""
    names: list[str] = []

    def make(device_uri: str = "file:///dev/null") -> str:
        name = cupsd.unique_name()
        cupsd.add_queue(name, device_uri)
        names.append(name)
        return name

    yield make
    if cupsd.proc is None:  # a test stopped the daemon; bring it back to clean up after it
        cupsd.start()
    for name in names:
        with contextlib.suppress(RuntimeError):
            cupsd.delete_queue(name)
