"""``zonewatch-agent``: the command a field technician and systemd run on a device."""

from __future__ import annotations

import argparse
import sys

from . import __version__

DEFAULT_CONFIG = "/etc/zonewatch/agent.toml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zonewatch-agent",
        description="zonewatch device agent: checks the network, printers and kiosk of this "
        "device and reports them to the zonewatch server over MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run the agent service (what systemd starts)",
                         description="Collect checks every interval and on every change, spool "
                         "reports on disk, deliver them over MQTT, apply desired state and commands.")
    run.add_argument("--config", default=DEFAULT_CONFIG, help=f"agent config file (default {DEFAULT_CONFIG})")

    check = sub.add_parser("check", help="run every check once and print the result",
                           description="Run every enabled collector once, print a table (or the "
                           "exact report with --json) and exit 0/1/2/3 for ok/warning/critical/"
                           "unknown. Needs no broker.")
    check.add_argument("--config", default=DEFAULT_CONFIG, help=f"agent config file (default {DEFAULT_CONFIG})")
    check.add_argument("--json", action="store_true", help="print the report message as JSON")

    enroll = sub.add_parser("enroll", help="enrol this device with a zonewatch server",
                            description="Exchange a one-time enrolment token for this device's "
                            "identity and credentials, and write the agent config.")
    enroll.add_argument("--server", required=True, help="server URL, e.g. https://zonewatch.example")
    enroll.add_argument("--token", required=True, help="one-time enrolment token from an admin")
    enroll.add_argument("--config", default=DEFAULT_CONFIG, help=f"where to write the config (default {DEFAULT_CONFIG})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(f"zonewatch-agent {args.command}: not available in this build yet.", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
