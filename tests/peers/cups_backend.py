#!/usr/bin/python3
"""zwtest: a CUPS backend that reports whatever printer condition its device URI asks for.

Installed by tests/peers/cups.py as ServerBin/backend/zwtest of a private cupsd. It runs as
user lp with CUPS's sanitized environment, so it uses nothing but the Python standard library
of /usr/bin/python3 (never the project's venv).

    zwtest                      -> prints its discovery line and exits 0
    zwtest job user title copies options [file]
        DEVICE_URI=zwtest://x?reasons=media-empty-error,toner-low-report
                              &clear=media-jam-error
                              &marker-levels=42,-3&marker-names=Black,Waste
                              &marker-types=toner,waste-toner&marker-colors=%23000000,none
                              &message=Out+of+paper&sleep=5&exit=4

For a job it writes `STATE: -reason` for each of `clear` (`clear=all`: `STATE: none`, which
replaces the whole set), then `STATE: +reason` for each of `reasons`, one `ATTR:` line with the
marker-* values given (each value list single-quoted, as CUPS's own ipp backend writes them, so
names may contain spaces but not commas), and an optional `INFO:` message; then it drains the
print data (the file named by argv[6] — what cupsd passes to a raw queue's backend — or stdin),
sleeps `sleep` seconds, and exits with `exit` (default 0 = CUPS_BACKEND_OK; 1 failed,
4 = CUPS_BACKEND_STOP stops the queue).
"""

import os
import sys
import time
from urllib.parse import parse_qs, urlsplit

MARKER_KEYS = ("marker-names", "marker-types", "marker-levels", "marker-colors",
               "marker-low-levels", "marker-high-levels")


def report(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def split_list(query: dict[str, list[str]], key: str) -> list[str]:
    return [item for value in query.get(key, []) for item in value.split(",") if item]


def drain(argv: list[str]) -> int:
    if len(argv) > 6:
        with open(argv[6], "rb") as f:
            return sum(len(chunk) for chunk in iter(lambda: f.read(65536), b""))
    total = 0
    while chunk := sys.stdin.buffer.read(65536):
        total += len(chunk)
    return total


def main(argv: list[str]) -> int:
    if len(argv) == 1:
        print('direct zwtest "Unknown" "zonewatch test backend"')
        return 0
    if len(argv) < 6:
        report("ERROR: usage: zwtest job-id user title copies options [file]")
        return 1
    query = parse_qs(urlsplit(os.environ.get("DEVICE_URI", "")).query)
    clear = split_list(query, "clear")
    if "all" in clear:
        report("STATE: none")
    for reason in clear:
        if reason != "all":
            report(f"STATE: -{reason}")
    for reason in split_list(query, "reasons"):
        report(f"STATE: +{reason}")
    markers = [f"{key}='{','.join(split_list(query, key))}'" for key in MARKER_KEYS if key in query]
    if markers:
        report("ATTR: " + " ".join(markers))
    if "message" in query:
        report("INFO: " + query["message"][0])
    size = drain(argv)
    report(f"DEBUG: zwtest read {size} bytes for job {argv[1]}")
    time.sleep(float(query.get("sleep", ["0"])[0]))
    return int(query.get("exit", ["0"])[0])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
