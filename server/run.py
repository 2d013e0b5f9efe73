"""``zonewatch server``: load settings, log, run the app until SIGTERM / Ctrl-C."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from .errors import ConfigError
from .settings import Settings, load_settings


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def serve(config: str | None, host: str | None = None, port: int | None = None,
          settings: Settings | None = None) -> int:
    from aiohttp import web

    from .app import create_app

    if settings is None:
        try:
            settings = load_settings(config)
        except ConfigError as exc:
            print(f"zonewatch: {exc}", file=sys.stderr)
            return 78
    from .secret_files import check_secret_files, environment_keys

    try:
        warnings = check_secret_files(settings, config, environment_keys(os.environ))
    except ConfigError as exc:
        print(f"zonewatch: {exc}", file=sys.stderr)
        return 78
    host = host or settings.server.host
    port = settings.server.port if port is None else port
    setup_logging(settings.server.log_level)
    for warning in warnings:
        logging.getLogger("zonewatch.secrets").warning("%s", warning)
    Path(settings.server.data_dir).mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    print(f"zonewatch server: http://{host}:{port}/ (database {settings.database_url.split('@')[-1]}, "
          f"broker {settings.mqtt.url}); Ctrl-C stops", flush=True)
    web.run_app(app, host=host, port=port, print=None, access_log=None)
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="zonewatch server")
    parser.add_argument("--config")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    return serve(args.config, args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
