"""``zonewatch provision ca|cert|broker|token|bundle|revoke|rotate``: the fleet's certificates, broker files and
enrolment from the command line (the work is in :mod:`provisioning`).

Exit codes as for the other admin commands (server/cli_admin.py): 0 done; 1 bad input, not found, a clash
or a broker/certificate problem (one line on stderr saying what to do); 69 database unreachable; 78 bad config.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from .cli_admin import CONFIG_HELP, EX_INPUT


def register(sub: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    prov = sub.add_parser("provision", help="certificates, broker files, enrolment tokens, revoke and rotate")
    what = prov.add_subparsers(dest="what", metavar="WHAT", required=True)

    ca = what.add_parser("ca", help="create the fleet's CA and the broker's certificate",
                         description="Create a CA (ca.crt, ca.key) and a server certificate for the broker with "
                         "the given names and IP addresses (SAN entries) in DIR.")
    ca.add_argument("--dir", required=True, metavar="DIR", help="where the CA and certificates are kept")
    ca.add_argument("--name", required=True, help="the CA's name, e.g. 'Province X zonewatch CA'")
    ca.add_argument("--san", action="append", required=True, metavar="HOST|IP",
                    help="a host name or IP address agents use to reach the broker (repeat for several)")
    ca.add_argument("--server-name", default="broker", help="file name of the server certificate (default broker)")
    ca.add_argument("--key-owner", default="mosquitto", metavar="USER",
                    help="system user that must read the server key (default mosquitto; ignored if absent)")
    ca.add_argument("--force", action="store_true", help="replace an existing CA (old certificates stop verifying)")
    ca.set_defaults(provision=_ca, db=False)

    cert = what.add_parser("cert", help="issue a device client certificate (mutual TLS) or another server one")
    cert.add_argument("--dir", required=True, metavar="DIR", help="the CA directory (from `provision ca`)")
    kind = cert.add_mutually_exclusive_group(required=True)
    kind.add_argument("--device", metavar="ID", help="a client certificate for this device id")
    kind.add_argument("--server", metavar="NAME", help="a server certificate NAME.crt (give --san)")
    cert.add_argument("--san", action="append", default=[], metavar="HOST|IP", help="SAN entry of a server cert")
    cert.add_argument("--key-owner", metavar="USER", help="system user that must read the key")
    cert.add_argument("--force", action="store_true", help="replace an existing certificate")
    cert.set_defaults(provision=_cert, db=False)

    broker = what.add_parser("broker", parents=[common], help="write the broker's password/ACL files and reload it",
                             description="Write passwd and acl in DIR from the devices in the database and the "
                             "server's MQTT account, then SIGHUP mosquitto; with --conf also a mosquitto.conf.")
    broker.add_argument("--dir", metavar="DIR", help="where to write (default provisioning.broker_dir)")
    who = broker.add_mutually_exclusive_group()
    who.add_argument("--pid-file", metavar="FILE", help="mosquitto's pid file (default provisioning.broker_pid_file)")
    who.add_argument("--pid", type=int, help="mosquitto's process id")
    who.add_argument("--no-reload", action="store_true", help="write the files only")
    broker.add_argument("--conf", action="store_true", help="also write DIR/mosquitto.conf")
    broker.add_argument("--tls-port", type=int, default=8883, help="TLS listener port in mosquitto.conf (8883)")
    broker.add_argument("--plain-port", type=int, help="also a plain listener on this port (e.g. 1883 on 127.0.0.1)")
    broker.add_argument("--host", default="", help="address the listeners bind (default: all)")
    broker.add_argument("--ca-dir", metavar="DIR", help="the CA directory with ca.crt, broker.crt, broker.key")
    broker.add_argument("--mutual-tls", action="store_true", help="devices must show a client certificate")
    broker.add_argument("--identity-as-username", action="store_true",
                        help="with --mutual-tls: the certificate's name is the user name (no password)")
    broker.set_defaults(provision=_broker, db=True)

    token = what.add_parser("token", help="enrolment tokens").add_subparsers(dest="action", metavar="ACTION",
                                                                              required=True)
    create = token.add_parser("create", parents=[common], help="a one-time enrolment token for a zone",
                              description="Print a one-time token that enrols one device into ZONE (shown once).")
    create.add_argument("--zone", required=True, metavar="CODE", help="the zone the device goes into")
    create.add_argument("--expires", default="24h", metavar="TIME", help="lifetime: 30m, 24h, 7d (default 24h)")
    create.add_argument("--role", default="kiosk", help="kiosk, desktop or counter_pc (default kiosk)")
    create.set_defaults(provision=_token_create, db=True)
    listing = token.add_parser("list", parents=[common], help="list enrolment tokens (never the tokens themselves)")
    listing.set_defaults(provision=_token_list, db=True)

    bundle = what.add_parser("bundle", parents=[common], help="an install bundle for a kiosk (agent, unit, token)",
                             description="Write what a technician copies to a kiosk: the agent's wheel(s), "
                             "install.sh (user, venv, hardened systemd unit, enrolment) and a fresh one-time "
                             "enrolment token for ZONE. On the kiosk: sudo sh install.sh")
    bundle.add_argument("--zone", required=True, metavar="CODE", help="the zone the device enrols into")
    bundle.add_argument("--out", required=True, metavar="DIR|FILE.tar.gz", help="a new directory, or a tarball")
    bundle.add_argument("--server", metavar="URL", help="the server URL kiosks reach (default alerts.public_url)")
    bundle.add_argument("--server-ca", metavar="FILE", help="CA of the server's HTTPS certificate, when the "
                        "kiosks' system CAs do not know it")
    bundle.add_argument("--token-expires", default="24h", metavar="TIME", help="token lifetime (default 24h)")
    bundle.add_argument("--role", default="kiosk", help="kiosk, desktop or counter_pc (default kiosk)")
    bundle.add_argument("--deps", choices=("none", "installed", "download"), default="none",
                        help="carry the agent's dependencies: none (the kiosk's pip fetches them), installed "
                        "(repacked from this machine, offline; same Python and architecture as the kiosks), "
                        "download (pip wheel from the package index)")
    bundle.add_argument("--wheel", metavar="FILE", help="use this zonewatch wheel instead of building one")
    bundle.set_defaults(provision=_bundle, db=True)

    revoke = what.add_parser("revoke", parents=[common], help="revoke a device: its broker login goes at once")
    revoke.add_argument("device_id", metavar="DEVICE")
    revoke.set_defaults(provision=_revoke, db=True)
    rotate = what.add_parser("rotate", parents=[common], help="give a device a new MQTT secret (printed once)")
    rotate.add_argument("device_id", metavar="DEVICE")
    rotate.set_defaults(provision=_rotate, db=True)


def run(args: argparse.Namespace) -> int:
    from provisioning.broker import BrokerError
    from provisioning.bundle import BundleError
    from provisioning.ca import CaError

    from . import cli_admin

    try:
        if not args.db:
            return args.provision(None, args)
        args.admin = lambda session, a: a.provision(session, a)
        return cli_admin.run(args)
    except (BrokerError, CaError, BundleError) as exc:
        print(f"zonewatch: {exc}", file=sys.stderr)
        return EX_INPUT
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"zonewatch: {exc.strerror or exc}{where}. Check the path and its permissions", file=sys.stderr)
        return EX_INPUT


def _settings(args: argparse.Namespace):
    from .settings import load_settings

    return load_settings(args.config)


def _audit(session: Any, action: str, target: str, detail: str = "") -> None:
    from .auth.cli import _actor
    from .auth.store import audit

    audit(session, _actor(), action, target, detail)


# -- certificates ----------------------------------------------------------------------------


def _ca(_session: None, args: argparse.Namespace) -> int:
    from provisioning.ca import create_ca

    ca, server = create_ca(args.dir, args.name, args.san, server_name=args.server_name, key_owner=args.key_owner,
                           force=args.force)
    print(f"CA: {ca.cert} (give it to agents and the server), key {ca.key} (0600: keep it safe, offline)")
    print(f"broker certificate: {server.cert} for {', '.join(args.san)}, key {server.key}")
    return 0


def _cert(_session: None, args: argparse.Namespace) -> int:
    from provisioning.ca import issue_device, issue_server

    if args.device:
        issued = issue_device(args.dir, args.device, key_owner=args.key_owner, force=args.force)
    else:
        issued = issue_server(args.dir, args.server, args.san, key_owner=args.key_owner, force=args.force)
    print(f"certificate {issued.cert}, key {issued.key}")
    return 0


# -- broker files ----------------------------------------------------------------------------


def _broker(session: Any, args: argparse.Namespace) -> int:
    from provisioning.sync import sync_broker

    settings = _settings(args)
    directory = args.dir or settings.provisioning.broker_dir
    if not directory:
        raise ValueError("where should the files go? Give --dir DIR or set provisioning.broker_dir in the config")
    if args.conf:
        _write_conf(Path(directory), args)
    synced = sync_broker(session, settings, directory, pid_file=args.pid_file, pid=args.pid,
                         reload=not args.no_reload)
    print(synced.describe() if synced else "nothing written")
    return 0


def _write_conf(directory: Path, args: argparse.Namespace) -> None:
    from provisioning.broker import BrokerFiles
    from provisioning.broker_conf import BrokerConfig, Listener
    from provisioning.files import user_ids, write_atomic

    if not args.ca_dir:
        raise ValueError("a TLS listener needs the CA directory: give --ca-dir DIR (made by `zonewatch provision ca`)")
    ca = Path(args.ca_dir).resolve()
    files = BrokerFiles(directory.resolve())
    listeners = [Listener(args.tls_port, args.host, ca / "ca.crt", ca / "broker.crt", ca / "broker.key",
                          mutual_tls=args.mutual_tls, identity_as_username=args.identity_as_username)]
    if args.plain_port:
        listeners.insert(0, Listener(args.plain_port, args.host or "127.0.0.1"))
    conf = BrokerConfig(tuple(listeners), files.password_file, files.acl_file, directory.resolve() / "persistence",
                        pid_file=directory.resolve() / "mosquitto.pid")
    persistence = directory / "persistence"
    persistence.mkdir(exist_ok=True)
    owner = user_ids(files.broker_user)
    if owner is not None and os.geteuid() == 0:  # a root-started mosquitto writes it as user mosquitto
        os.chown(persistence, *owner)
    write_atomic(directory / "mosquitto.conf", conf.text(), 0o644)
    print(f"wrote {directory / 'mosquitto.conf'}: run `mosquitto -c {directory.resolve() / 'mosquitto.conf'}`")


# -- enrolment, revocation, rotation ---------------------------------------------------------


def _token_create(session: Any, args: argparse.Namespace) -> int:
    from provisioning.enrolment import create_token, parse_ttl

    from .auth.cli import _actor

    token, row = create_token(session, args.zone, parse_ttl(args.expires), args.role, _actor())
    _audit(session, "enrolment_token_create", f"zone:{args.zone.strip()}", f"{row.prefix}… role={row.role}")
    until = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.expires_at))
    print(token)
    print(f"one-time enrolment token for zone {args.zone.strip()} ({row.role}), valid until {until}. On the device:\n"
          f"  zonewatch-agent enroll --server URL --token {token}", file=sys.stderr)
    return 0


def _bundle(session: Any, args: argparse.Namespace) -> int:
    from urllib.parse import urlsplit

    from provisioning.bundle import write_bundle
    from provisioning.enrolment import create_token, parse_ttl

    from .admin import find_zone
    from .auth.cli import _actor

    zone = find_zone(session, args.zone).code  # an unknown zone fails before anything is built
    ttl = parse_ttl(args.token_expires)
    server = (args.server or _settings(args).alerts.public_url).rstrip("/")
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--server {server!r} is not a URL like https://zonewatch.example.gov")
    if parts.hostname in ("127.0.0.1", "localhost", "::1"):
        print(f"zonewatch: note: kiosks will enrol with {server}, this machine's own address; give --server with "
              "the address kiosks reach", file=sys.stderr)

    def make_token() -> str:
        token, row = create_token(session, zone, ttl, args.role, _actor())
        _audit(session, "enrolment_token_create", f"zone:{zone}", f"{row.prefix}… role={row.role} bundle")
        return token

    made = write_bundle(args.out, zone, server, make_token, deps=args.deps, wheel=args.wheel,
                        server_ca=args.server_ca)
    print(f"install bundle for zone {zone}: {made.path} ({len(made.wheels)} wheel(s)). It holds a one-time "
          f"enrolment token valid for {args.token_expires}: copy it to the kiosk and run `sudo sh install.sh` there; "
          "keep it like a key and delete it afterwards")
    return 0


def _token_list(session: Any, args: argparse.Namespace) -> int:
    from provisioning.enrolment import list_tokens

    now = time.time()
    rows = list_tokens(session)
    if not rows:
        print("No enrolment tokens. Make one with: zonewatch provision token create --zone CODE")
        return 0
    for token, zone in rows:
        state = (f"used by {token.device_id}" if token.used_at else "expired" if token.expires_at <= now else
                 "valid until " + time.strftime("%Y-%m-%d %H:%M", time.localtime(token.expires_at)))
        print(f"{token.prefix}…  zone {zone}  {token.role}  {state}")
    return 0


def _sync_or_hint(session: Any, args: argparse.Namespace) -> None:
    from provisioning.sync import sync_broker

    synced = sync_broker(session, _settings(args))
    print(synced.describe() if synced else "provisioning.broker_dir is not set: rewrite the broker files with "
          "`zonewatch provision broker --dir DIR`", file=sys.stderr)


def _revoke(session: Any, args: argparse.Namespace) -> int:
    from provisioning.enrolment import revoke

    device, already = revoke(session, args.device_id)
    _audit(session, "device_revoke", f"device:{device.id}")
    print(f"device {device.id} {'was revoked already' if already else 'revoked'}; its broker login is removed")
    _sync_or_hint(session, args)
    return 0


def _rotate(session: Any, args: argparse.Namespace) -> int:
    from provisioning.enrolment import rotate

    secret = rotate(session, args.device_id)
    _audit(session, "device_rotate", f"device:{args.device_id.strip()}")
    print(secret)
    print(f"new MQTT secret for {args.device_id.strip()} (shown once): put it in the device's mqtt.password_file "
          "and restart its agent; the old one stops working when the broker reloads its files", file=sys.stderr)
    _sync_or_hint(session, args)
    return 0
