"""``zonewatch-agent``: the command a field technician and systemd run on a device."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from . import __version__
from .errors import ConfigError

DEFAULT_CONFIG = "/etc/zonewatch/agent.toml"
EXIT_CODES = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}  # the Nagios convention


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
    given = enroll.add_mutually_exclusive_group(required=True)
    given.add_argument("--token", help="one-time enrolment token from an admin")
    given.add_argument("--token-file", metavar="FILE", help="read the token from FILE (keeps it out of the "
                       "process list; the install bundle's enrol-token)")
    enroll.add_argument("--config", default=DEFAULT_CONFIG,
                        help=f"where to write the config (default {DEFAULT_CONFIG})")
    enroll.add_argument("--ca-file", metavar="FILE", help="CA that signed the server's HTTPS certificate "
                        "(default: the system's CAs)")
    enroll.add_argument("--device-id", metavar="ID", help="this device's id (default: the server picks one)")
    enroll.add_argument("--name", help="a name people recognise (default: this machine's host name)")
    enroll.add_argument("--zone", metavar="CODE", help="refuse unless the token is for this zone")
    enroll.add_argument("--data-dir", default="/var/lib/zonewatch", metavar="DIR",
                        help="the agent's spool and content directory (default /var/lib/zonewatch)")
    enroll.add_argument("--user", default="zonewatch-agent", help="system user the agent runs as: owns the "
                        "config and data dir when it exists and this runs as root (default zonewatch-agent)")
    enroll.add_argument("--root", metavar="DIR", help="write the files under DIR (an image or a test root); "
                        "--config and --data-dir stay the paths the device sees")
    enroll.add_argument("--force", action="store_true", help="replace an existing config")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check":
            return _check(args)
        if args.command == "run":
            return _run(args)
    except ConfigError as exc:
        print(f"zonewatch-agent: config error: {exc}", file=sys.stderr)
        return 3 if args.command == "check" else 78  # EX_CONFIG: systemd will not hammer restarts
    return _enroll(args)


def _enroll(args: argparse.Namespace) -> int:
    from .enroll import EnrolFailed, enrol_device, read_token_file

    try:
        token = args.token if args.token is not None else read_token_file(args.token_file)
        done = enrol_device(args.server, token, args.config, ca_file=args.ca_file, device_id=args.device_id,
                            name=args.name, zone=args.zone, data_dir=args.data_dir, user=args.user, force=args.force,
                            root=args.root)
    except EnrolFailed as exc:
        print(f"zonewatch-agent enroll: {exc}", file=sys.stderr)
        return exc.code
    print(f"enrolled as device {done.device_id} in zone {done.zone}; config written to {done.config}. "
          "Start the agent: systemctl enable --now zonewatch-agent")
    return 0


def _check(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from protocol import Report, encode, worst

    from .collectors import AgentContext
    from .collectors.runner import CollectorRunner
    from .config import load_config
    from .service import build_collectors

    config = load_config(args.config)
    context = AgentContext(device_id=config.agent.device_id, data_dir=Path(config.agent.data_dir))
    collectors = build_collectors(config, context)
    runner = CollectorRunner()
    try:
        checks = runner.run_once(collectors)
    finally:
        for collector in collectors:
            collector.close()
        runner.close()
    status = worst(c.status for c in checks) if checks else "unknown"
    if args.json:
        report = Report(device_id=config.agent.device_id, ts=time.time(), seq=0, interval_s=config.agent.interval,
                        checks=checks, trigger="check", agent_version=__version__)
        sys.stdout.write(encode(report).decode() + "\n")
    else:
        print(_table(checks, config.agent.device_id, status))
    return EXIT_CODES[status]


def _table(checks, device_id: str, status: str) -> str:
    rows = [("STATUS", "CHECK", "SUMMARY")] + [(c.status.upper(), c.name, c.summary) for c in checks]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in rows]
    lines.append(f"\n{device_id}: {status.upper()} ({len(checks)} checks)")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    from .config import load_config
    from .logs import setup_logging
    from .service import AgentService

    config = load_config(args.config)
    setup_logging(config.agent.log_level, config.agent.log_format)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await AgentService(config).run(stop)

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
