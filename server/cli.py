"""``zonewatch``: the server-side command (server, demo, simulate, provision, user; zone, device, import)."""

from __future__ import annotations

import argparse
import sys

from . import __version__, cli_admin


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zonewatch", description="zonewatch fleet-health server and tools.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    server = sub.add_parser("server", help="run the server (ingest, health, alerts, web UI, API)")
    server.add_argument("--config", help="server config file (TOML); embedded defaults when omitted")
    server.add_argument("--host", help="address to listen on (default: server.host of the config, 127.0.0.1)")
    server.add_argument("--port", type=int, help="HTTP port (default: server.port of the config, 8080)")

    demo = sub.add_parser("demo", help="run a self-contained demo: server, broker and a simulated fleet")
    demo.add_argument("--devices", type=int, default=60, help="simulated devices (default 60)")
    demo.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")

    from . import simulate

    simulate.register(sub)  # the load generator

    from . import cli_content, cli_provision

    cli_content.register(sub)  # content upload
    cli_provision.register(sub)  # provision ca|cert|broker|token|revoke|rotate
    cli_admin.register(sub)  # zone add|list, device add|move|list, import; user add|list|remove|passwd|token
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("server", "demo"):
        return _serve(args)
    if args.command == "simulate":
        from . import simulate

        return simulate.run(args)
    if getattr(args, "content", None) is not None:
        from . import cli_content

        return cli_content.run(args)
    if getattr(args, "provision", None) is not None:
        from . import cli_provision

        return cli_provision.run(args)
    if getattr(args, "admin", None) is not None:
        return cli_admin.run(args)
    print(f"zonewatch {args.command}: not available in this build yet.", file=sys.stderr)
    return 2


def _serve(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.port, args.devices)
    from .run import serve

    return serve(args.config, args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
