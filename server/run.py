"""``zonewatch server``: load settings, log, run the app until SIGTERM / Ctrl-C."""

from __future__ import annotations

import logging
import os
import ssl
import sys
from pathlib import Path

from .errors import ConfigError
from .settings import Settings, load_settings


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def tls_context(settings: Settings, source: str) -> ssl.SSLContext | None:
    """The HTTPS context of ``[server] tls_cert_file`` / ``tls_key_file``; None for plain HTTP."""
    cert, key = settings.server.tls_cert_file, settings.server.tls_key_file
    if not cert and not key:
        return None
    for name, path in (("server.tls_cert_file", cert), ("server.tls_key_file", key)):
        if not os.path.isfile(path):
            raise ConfigError(source, name, f"{path}: file not found; give the PEM file (`zonewatch provision ca` "
                              "makes a certificate and key) or remove the key for plain HTTP")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:  # a password callback so that an encrypted key fails here instead of prompting on the terminal
        context.load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:
        raise ConfigError(source, "server.tls_key_file", f"cannot use {cert} with {key} ({exc.reason or exc}); give "
                          "the PEM certificate (chain) and its own unencrypted private key") from None
    except OSError as exc:
        raise ConfigError(source, "server.tls_key_file", f"cannot read {exc.filename or key} ({exc.strerror}); the "
                          "server's user must be able to read the certificate and the key") from None
    return context


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
        context = tls_context(settings, str(config or "<defaults>"))
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
    scheme = "https" if context is not None else "http"
    print(f"zonewatch server: {scheme}://{host}:{port}/ (database {settings.database_url.split('@')[-1]}, "
          f"broker {settings.mqtt.url}); Ctrl-C stops", flush=True)
    web.run_app(app, host=host, port=port, print=None, access_log=None, ssl_context=context)
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
