"""What a print queue's raw IPP/CUPS facts mean, in plain words. Pure functions, no I/O.

The printer collector (agent/collectors/printer.py) gathers facts from CUPS and, for network
printers, from the printer itself; everything here turns them into a :class:`PrinterCheck`:

* every ``printer-state-reasons`` keyword → a condition with a severity (:func:`reason_condition`);
* marker / ``printer-supply`` levels → normalised :class:`Supply` values (:func:`normalise_supply`),
  with IPP's special levels, waste receptacles and out-of-range values handled explicitly;
* jobs → how many wait and how long the oldest has waited (:func:`waiting_jobs`);
* a one-line summary a person can read (:func:`summarise`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from protocol import STATUS_RANK, PrinterCheck, PrinterCondition, Supply, worst

#: A supply at or below this percentage is "low" unless the printer (marker-low-levels) or the
#: config (supply_low_pct) says otherwise.
DEFAULT_LOW_PCT = 10.0
#: A waste receptacle at or above this percentage full is "near-full" unless the printer says
#: otherwise (marker-high-levels). ippeveprinter, the IPP reference printer, uses 90.
DEFAULT_NEAR_FULL_PCT = 90.0
#: CUPS sets connecting-to-device at the start of every job on a network queue; only when it
#: lasts this long (seconds) is it a warning, so normal printing does not flap the status.
CONNECTING_GRACE_S = 30.0

#: Reasons that say nothing is wrong.
BENIGN_REASONS = frozenset({"none", "cups-waiting-for-job-completed"})

# code -> (condition text, phrase after the queue name in a summary)
WORDS: dict[str, tuple[str, str]] = {
    "media-empty": ("out of paper", "is out of paper"),
    "media-low": ("paper low", "is low on paper"),
    "media-jam": ("paper jam", "has a paper jam"),
    "door-open": ("door or cover open", "has a door or cover open"),
    "toner-low": ("toner low", "is low on toner"),
    "toner-empty": ("out of toner", "is out of toner"),
    "marker-supply-low": ("ink or toner low", "is low on ink or toner"),
    "marker-supply-empty": ("out of ink or toner", "is out of ink or toner"),
    "marker-waste-full": ("waste container full", "has a full waste container"),
    "marker-waste-almost-full": ("waste container almost full", "has an almost full waste container"),
    "offline": ("printer offline (not responding)", "is offline"),
    "connecting-to-device": ("connecting to the printer", "is connecting to the printer"),
    "paused": ("queue stopped", "is stopped"),
    "stopped": ("queue stopped", "is stopped"),
    "not-accepting": ("not accepting jobs", "is not accepting jobs"),
}

# printer-state-reasons keyword (suffix removed) -> condition code; matched on the whole keyword
# or as a prefix followed by "-" (vendor variants such as media-jam-tray-2).
_REASON_CODES: tuple[tuple[str, str], ...] = (
    ("media-empty", "media-empty"), ("media-needed", "media-empty"),
    ("media-low", "media-low"), ("media-jam", "media-jam"),
    ("door-open", "door-open"), ("cover-open", "door-open"), ("interlock-open", "door-open"),
    ("toner-low", "toner-low"), ("toner-empty", "toner-empty"),
    ("marker-supply-low", "marker-supply-low"), ("marker-supply-empty", "marker-supply-empty"),
    ("marker-waste-almost-full", "marker-waste-almost-full"), ("marker-waste-full", "marker-waste-full"),
    ("offline", "offline"), ("shutdown", "offline"),
    ("connecting-to-device", "connecting-to-device"), ("paused", "paused"),
)
# Conditions that stop printing when the printer says -error (or gives no suffix).
_BLOCKING = frozenset({"media-empty", "media-jam", "door-open", "toner-empty", "marker-supply-empty",
                       "marker-waste-full"})
_SUFFIXES = ("error", "warning", "report")


def split_reason(keyword: str) -> tuple[str, str]:
    """``'media-empty-error'`` → ``('media-empty', 'error')``; no suffix → level ``''``."""
    for level in _SUFFIXES:
        if keyword.endswith("-" + level):
            return keyword[: -len(level) - 1], level
    return keyword, ""


def reason_code(keyword: str) -> str | None:
    """The condition code of one printer-state-reasons keyword; ``None`` for 'none'."""
    if keyword in BENIGN_REASONS:
        return None
    base, _ = split_reason(keyword)
    for key, code in _REASON_CODES:
        if base == key or base.startswith(key + "-"):
            return code
    return "other"


def reason_condition(keyword: str, persisted_s: float | None = None,
                     connecting_grace: float | None = None) -> PrinterCondition | None:
    """The plain condition one reason keyword means, or ``None`` when it means nothing is wrong.

    Severity: offline, paused and media-needed (a job waits for paper) are critical; a blocking
    condition (out of paper or toner, jam, door open, waste full) is critical when the printer says
    ``-error`` or gives no suffix (IPP: no suffix = error) and a warning for ``-warning`` /
    ``-report`` (ippeveprinter reports an empty tray as -report while idle); low supplies are
    warnings; connecting-to-device is a warning once it has lasted ``CONNECTING_GRACE_S``
    (``persisted_s``; unknown = lasted) and ``ok`` before; any other reason is critical with
    ``-error`` and a warning otherwise.
    """
    code = reason_code(keyword)
    if code is None:
        return None
    base, level = split_reason(keyword)
    if code in ("offline", "paused") or base == "media-needed":  # media-needed: a job waits for paper
        severity = "critical"
    elif code in _BLOCKING:
        severity = "critical" if level in ("error", "") else "warning"
    elif code == "connecting-to-device":
        grace = CONNECTING_GRACE_S if connecting_grace is None else connecting_grace
        severity = "ok" if persisted_s is not None and persisted_s < grace else "warning"
    elif code == "other":
        severity = "critical" if level == "error" else "warning"
    else:
        severity = "warning"
    if code == "marker-waste-almost-full":
        code = "marker-waste-full"
        text = WORDS["marker-waste-almost-full"][0]
    else:
        text = WORDS[code][0] if code in WORDS else f"printer reports {keyword}"[:1024]
    return PrinterCondition(code=code, severity=severity, text=text, reason=_keyword(keyword))


# -- supplies --------------------------------------------------------------------------------

_INT64 = 2**63 - 1


def supply_type(value: object) -> str:
    """A supply type keyword: CUPS ``waste-toner`` and IPP ``wasteToner`` both → ``waste-toner``."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", str(value or "")).strip().lower().replace("_", "-")
    text = re.sub(r"[^a-z0-9.-]+", "-", text).strip("-")
    return text[:64] or "other"


def as_int(value: object) -> int | None:
    """An integer from what a printer sent (int, numeric text); ``None`` for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -_INT64 <= value <= _INT64 else None
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d{1,18}\s*", value):
        return int(value)
    return None


def normalise_supply(name: object, type_: object = None, raw_level: object = None, *,
                     max_capacity: object = None, unit: str | None = None, color: object = None,
                     receptacle: bool | None = None, low_pct: float | None = None,
                     near_full_pct: float | None = None) -> Supply:
    """One marker / supply as a :class:`Supply` with ``level`` in 0..100 or ``None``.

    * ``raw_level`` -1 (unavailable), -2 (unknown) and other negatives: no level, state unknown;
      -3 ("some remaining"): no level, state ``remaining`` — not low.
    * With a positive ``max_capacity`` the level is ``raw / max``; a level above the capacity
      (refilled, overfilled cartridges) counts as 100 %.
    * Without one, the level is a percentage (CUPS marker-levels are); a value above 100, or one
      in a unit other than percent, is not a percentage: no level, state unknown.
    * Consumables are ``empty`` at 0 and ``low`` at or below ``low_pct``; waste receptacles
      (``receptacle``, or a ``waste-*`` type) count how full they are: ``near-full`` at or above
      ``near_full_pct``, ``full`` at 100 — an empty waste box is the healthiest it gets.
    """
    kind = supply_type(type_)
    if receptacle is None:
        receptacle = kind.startswith("waste")
    raw = as_int(raw_level)
    capacity = as_int(max_capacity)
    level: float | None = None
    if raw is not None and raw >= 0:
        if capacity is not None and capacity > 0:
            level = min(100.0, raw * 100.0 / capacity)
        elif raw <= 100 and (unit is None or unit == "percent"):
            level = float(raw)
    if level is not None:
        level = round(level, 1)
    if raw == -3:
        state = "remaining"
    elif level is None:
        state = "unknown"
    elif receptacle:
        near = near_full_pct if near_full_pct is not None and 0 < near_full_pct <= 100 else DEFAULT_NEAR_FULL_PCT
        state = "full" if level >= 100 else "near-full" if level >= near else "ok"
    else:
        low = low_pct if low_pct is not None and 0 <= low_pct < 100 else DEFAULT_LOW_PCT
        state = "empty" if level <= 0 else "low" if level <= low else "ok"
    label = str(name).strip() if name not in (None, "") else ""
    return Supply(name=(label or kind)[:1024], type=kind, color=_color(color), raw_level=raw,
                  level=level, state=state)


def supply_severity(supply: Supply) -> str:
    """low / near-full → warning; empty / full → critical; anything else → ok."""
    return {"low": "warning", "near-full": "warning", "empty": "critical", "full": "critical"}.get(
        supply.state, "ok")


def supply_condition(supply: Supply) -> PrinterCondition | None:
    """The condition a supply's own level means (independent of the printer's reasons)."""
    severity = supply_severity(supply)
    if severity == "ok":
        return None
    empty = supply.state in ("empty", "full")
    if supply.type.startswith("waste"):
        code, words = "marker-waste-full", WORDS["marker-waste-full" if empty else "marker-waste-almost-full"][0]
    elif supply.type.startswith("toner"):
        code = "toner-empty" if empty else "toner-low"
        words = WORDS[code][0]
    else:
        code = "marker-supply-empty" if empty else "marker-supply-low"
        words = WORDS[code][0]
    return PrinterCondition(code=code, severity=severity, text=f"{words}: {supply.name} at {supply.level:g}%"[:1024])


def _values(value: object) -> list:
    """pycups gives one value as a scalar in places, and none as None."""
    return list(value) if isinstance(value, (list, tuple)) else [] if value is None else [value]


def supplies_from_markers(attrs: Mapping[str, object], low_pct: float | None = None) -> list[Supply]:
    """Supplies from CUPS ``marker-*`` attributes; the lists may differ in length (by index)."""
    keys = ("marker-names", "marker-types", "marker-levels", "marker-colors", "marker-low-levels",
            "marker-high-levels")
    lists = [_values(attrs.get(k)) for k in keys]
    supplies = []
    for i in range(max(len(v) for v in lists[:3])):
        name, kind, level, color, low, high = (v[i] if i < len(v) else None for v in lists)
        printer_low = as_int(low)
        supplies.append(normalise_supply(
            name if name else f"Supply {i + 1}", kind, level, color=color,
            low_pct=low_pct if low_pct is not None else (printer_low if printer_low and printer_low > 0 else None),
            near_full_pct=as_int(high)))
    return supplies


def parse_printer_supply(value: str | bytes) -> dict[str, str]:
    """``'type=toner;maxcapacity=100;level=25;index=1;'`` → ``{'type': 'toner', ...}``."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    fields = {}
    for part in value.split(";"):
        key, sep, val = part.partition("=")
        if sep and key.strip():
            fields[key.strip().lower()] = val.strip()
    return fields


def supplies_from_printer_supply(values: Sequence[str | bytes], descriptions: Sequence[str] = (),
                                 low_pct: float | None = None) -> list[Supply]:
    """Supplies from IPP ``printer-supply`` (PWG 5100.13) and ``printer-supply-description``."""
    supplies = []
    for i, value in enumerate(values):
        f = parse_printer_supply(value)
        name = descriptions[i] if i < len(descriptions) and descriptions[i] else None
        colorant = f.get("colorantname") or f.get("markercolor")
        supplies.append(normalise_supply(
            name or " ".join(p for p in (colorant, f.get("type")) if p and p != "unknown") or f"Supply {i + 1}",
            f.get("type"), f.get("level"), max_capacity=f.get("maxcapacity"), unit=f.get("unit"),
            color=colorant, receptacle=f.get("class") == "receptacleThatIsFilled" or None, low_pct=low_pct))
    return supplies


# -- jobs --------------------------------------------------------------------------------------

JOB_PENDING, JOB_HELD, JOB_PROCESSING, JOB_STOPPED = 3, 4, 5, 6
#: Reasons a job is held on purpose (by its owner or an admin) — such a job is not "stuck".
USER_HOLD_REASONS = frozenset({"job-hold-until-specified"})


def waiting_jobs(jobs: Iterable[Mapping[str, object]], now: float) -> tuple[int, float | None]:
    """(jobs not yet completed, seconds the oldest *waiting* job has waited, or None).

    Waiting = pending (3), processing-stopped (6), or held (4) for any reason except a hold its
    owner asked for (job-hold-until-specified) — CUPS shows a job waiting to retry a failed
    printer as held with resources-are-not-ready. A job that is printing (5) is not waiting;
    the jobs queued behind a hung one are.
    """
    queued, oldest = 0, None
    for job in jobs:
        state = as_int(job.get("job-state"))
        if state not in (JOB_PENDING, JOB_HELD, JOB_PROCESSING, JOB_STOPPED):
            continue
        queued += 1
        if state == JOB_PROCESSING:
            continue
        if state == JOB_HELD and USER_HOLD_REASONS & set(_values(job.get("job-state-reasons"))):
            continue
        created = as_int(job.get("time-at-creation"))
        if created is not None and created > 0:
            age = max(0.0, now - created)
            oldest = age if oldest is None else max(oldest, age)
    return queued, oldest


# -- the check ---------------------------------------------------------------------------------

_STATES = {3: "idle", 4: "processing", 5: "stopped"}


@dataclass
class QueueFacts:
    """What is known about one queue (and its printer) at one moment."""

    name: str
    state: int | None = None
    accepting: bool | None = None
    reasons: list[str] = field(default_factory=list)
    message: str = ""
    supplies: list[Supply] = field(default_factory=list)
    media_ready: list[str] | None = None
    jobs_queued: int = 0
    oldest_job_age_s: float | None = None
    make_model: str | None = None
    uri: str | None = None
    source: str = "cups"
    #: reason keyword -> seconds it has been present (for connecting-to-device)
    reason_ages: dict[str, float] = field(default_factory=dict)
    #: conditions the collector found itself (printer not answering over IPP, …)
    extra: list[PrinterCondition] = field(default_factory=list)


def conditions_of(facts: QueueFacts, stuck_job_after: float,
                  connecting_grace: float | None = None) -> list[PrinterCondition]:
    """Every condition of one queue, worst first, one per code."""
    found: list[PrinterCondition] = []
    for reason in facts.reasons:
        if (c := reason_condition(reason, facts.reason_ages.get(reason), connecting_grace)) is not None:
            found.append(c)
    message = f": {facts.message}" if facts.message else ""
    codes = {c.code for c in found}
    if "paused" in codes:
        found = [_with_text(c, c.text + message) if c.code == "paused" else c for c in found]
    elif as_int(facts.state) == 5:
        found.append(PrinterCondition(code="stopped", severity="critical", text=WORDS["stopped"][0] + message))
    if facts.accepting is False:
        found.append(PrinterCondition(code="not-accepting", severity="critical", text=WORDS["not-accepting"][0]))
    if facts.media_ready == []:
        found.append(PrinterCondition(code="media-empty", severity="critical",
                                      text="out of paper (no media loaded)"))
    found.extend(c for s in facts.supplies if (c := supply_condition(s)) is not None)
    if facts.oldest_job_age_s is not None and facts.oldest_job_age_s > stuck_job_after:
        found.append(PrinterCondition(code="stuck-queue", severity="critical",
                                      text=f"job stuck in the queue for {duration(facts.oldest_job_age_s)}"))
    found.extend(facts.extra)
    best: dict[str, PrinterCondition] = {}
    for c in found:  # first wins among equals: reasons before level-derived ones
        if c.code not in best or STATUS_RANK[c.severity] > STATUS_RANK[best[c.code].severity]:
            best[c.code] = c
    return sorted(best.values(), key=lambda c: -STATUS_RANK[c.severity])


def evaluate(facts: QueueFacts, stuck_job_after: float = 300.0,
             connecting_grace: float | None = None) -> PrinterCheck:
    """The printer check for one queue."""
    conditions = conditions_of(facts, stuck_job_after, connecting_grace)
    state = _STATES.get(as_int(facts.state), "unknown")
    return PrinterCheck(
        name=check_name(facts.name), printer=facts.name[:128] or "?", status=worst(c.severity for c in conditions),
        summary=summarise(facts.name, state, conditions, facts.jobs_queued),
        state=state, accepting=facts.accepting,
        reasons=[k for r in facts.reasons if r not in BENIGN_REASONS and (k := _keyword(r))],
        conditions=conditions, supplies=facts.supplies, media_ready=facts.media_ready,
        jobs_queued=max(0, facts.jobs_queued), oldest_job_age_s=facts.oldest_job_age_s,
        make_model=facts.make_model[:1024] if facts.make_model else None,
        uri=strip_credentials(facts.uri) if facts.uri else None, source=facts.source)


def unreachable_check(name: str, server: str, error: str, status: str = "critical") -> PrinterCheck:
    """A queue (or, when no queue is known, the CUPS server itself) that cannot be asked."""
    text = f"CUPS at {server} is not answering ({error})"
    condition = PrinterCondition(code="cups-unreachable", severity=status, text=text[:1024])
    return PrinterCheck(
        name=check_name(name), printer=name[:128] or "?", status=status, state="unknown",
        summary=f"{name} cannot be checked: {text}; printing is impossible until CUPS runs again "
                f"(systemctl start cups)"[:1024],
        conditions=[condition])


def missing_check(name: str, server: str) -> PrinterCheck:
    text = f"no queue named {name!r} on CUPS at {server}"
    return PrinterCheck(
        name=check_name(name), printer=name[:128] or "?", status="critical", state="unknown",
        summary=f"{name} does not exist: {text}; check [collectors.printer] printers or lpstat -p"[:1024],
        conditions=[PrinterCondition(code="missing", severity="critical", text=text[:1024])])


def check_name(queue: str) -> str:
    return f"printer:{queue}"[:128]


def summarise(queue: str, state: str, conditions: Sequence[PrinterCondition], jobs_queued: int) -> str:
    """``'Hall-3-HP is out of paper (stopped, 2 jobs waiting)'``."""
    bad = [c for c in conditions if c.severity != "ok"]
    phrases = []
    for c in bad:
        phrase = _phrase(c)
        if phrase not in phrases:
            phrases.append(phrase)
    if not phrases:
        phrases = ["is printing" if state == "processing" else "is ready" if state == "idle" else "is fine"]
    jobs = {0: "no jobs waiting", 1: "1 job waiting"}.get(max(0, jobs_queued), f"{jobs_queued} jobs waiting")
    more = {0: "", 1: "; 1 more problem"}.get(max(0, len(phrases) - 2), f"; {len(phrases) - 2} more problems")
    return f"{queue} {' and '.join(phrases[:2])} ({state}, {jobs}{more})"[:1024]


def _phrase(c: PrinterCondition) -> str:
    if c.code == "marker-waste-full" and c.severity != "critical":
        return WORDS["marker-waste-almost-full"][1]
    if c.code == "stuck-queue":
        return "has a " + c.text
    if c.code in WORDS:
        return WORDS[c.code][1]
    return f"reports {c.reason or c.text}"


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days"


def strip_credentials(uri: str) -> str:
    """``ipp://user:secret@host/ipp/print`` → ``ipp://host/ipp/print`` (also in a query's password)."""
    if "@" not in uri and "=" not in uri:
        return uri[:1024]
    try:
        parts = urlsplit(uri)
        netloc = parts.netloc.rpartition("@")[2]
        query = re.sub(r"(?i)((?:^|&)(?:password|passwd|pass|pwd|secret|token)=)[^&]*", r"\1***", parts.query)
        clean = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        clean = re.sub(r"//[^/@]*@", "//", uri)
    return clean[:1024]


def _with_text(c: PrinterCondition, text: str) -> PrinterCondition:
    return PrinterCondition(code=c.code, severity=c.severity, text=text[:1024], reason=c.reason)


def _keyword(value: str) -> str | None:
    value = value.strip()
    return value[:64] if value else None


def _color(value: object) -> str | None:
    text = str(value or "").strip()
    return text[:64] if text and text.lower() not in ("none", "unknown") else None
