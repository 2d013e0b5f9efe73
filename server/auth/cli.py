"""``zonewatch user add|list|remove|passwd|token``: the web UI's and API's local users.

Passwords come from ``--password-file FILE`` (its first line; ``-`` reads standard input) or are
asked for twice without echo. Exit codes as the other admin commands (server.cli_admin).
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path
from typing import Any

from . import ROLES, store


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    user = sub.add_parser("user", help="manage local users of the web UI and API").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    add = user.add_parser("add", parents=[common], help="add a user", description="Add a user with a role.")
    add.add_argument("username", metavar="NAME")
    add.add_argument("--role", required=True, choices=ROLES, help="viewer sees; oncall also acknowledges and "
                     "silences; admin also manages")
    add.add_argument("--password-file", metavar="FILE", help="read the password from FILE's first line "
                     "('-': standard input) instead of asking")
    add.set_defaults(admin=_add)
    listing = user.add_parser("list", parents=[common], help="list users", description="List the users.")
    listing.set_defaults(admin=_list)
    remove = user.add_parser("remove", parents=[common], help="remove a user (its tokens and sessions end)")
    remove.add_argument("username", metavar="NAME")
    remove.set_defaults(admin=_remove)
    passwd = user.add_parser("passwd", parents=[common], help="set a user's password (its sessions end)")
    passwd.add_argument("username", metavar="NAME")
    passwd.add_argument("--password-file", metavar="FILE", help="read the password from FILE's first line")
    passwd.set_defaults(admin=_passwd)
    token = user.add_parser("token", parents=[common], help="print a new API token for a user (shown once)",
                            description="Print a new API token for NAME; scripts send it as "
                            "'Authorization: Bearer <token>'. It is shown once and stored only as a digest.")
    token.add_argument("username", metavar="NAME")
    token.add_argument("--revoke", action="store_true", help="instead: revoke every API token of the user")
    token.set_defaults(admin=_token)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:?"


def read_password(path: str | None, username: str) -> str:
    """The new password: from the file, or asked twice. Refused (ValueError) when weak or empty."""
    from .passwords import weakness

    if path is not None:
        text = sys.stdin.readline() if path == "-" else Path(path).read_text(encoding="utf-8")
        password = text.splitlines()[0] if text.splitlines() else ""
    else:
        try:
            password = getpass.getpass(f"New password for {username}: ")
            if (why := weakness(password, username)) is None and getpass.getpass("Again: ") != password:
                raise ValueError("the two passwords differ; nothing was changed")
        except EOFError:
            raise ValueError("no password given (standard input ended); use --password-file FILE") from None
    if why := weakness(password, username):
        raise ValueError(f"{why}; nothing was changed")
    return password


def _add(session: Any, args: argparse.Namespace) -> int:
    store.check_username(args.username)
    if any(u.username == args.username for u, _ in store.list_users(session)):
        raise store.Conflict(f"user {args.username!r} exists already; `zonewatch user passwd {args.username}` "
                             "changes the password")
    password = read_password(args.password_file, args.username)
    store.add_user(session, args.username, args.role, password)
    store.audit(session, _actor(), "user_add", f"user:{args.username}", f"role={args.role}")
    print(f"added user {args.username} ({args.role})")
    return 0


def _list(session: Any, args: argparse.Namespace) -> int:
    users = store.list_users(session)
    if not users:
        print("no users; add one with `zonewatch user add NAME --role admin`", file=sys.stderr)
        return 0
    width = max(len(u.username) for u, _ in users)
    print(f"{'USER':<{width}}  ROLE    TOKENS  CREATED")
    for u, tokens in users:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(u.created_at))
        print(f"{u.username:<{width}}  {u.role:<6}  {tokens:>6}  {created}")
    return 0


def _remove(session: Any, args: argparse.Namespace) -> int:
    store.remove_user(session, args.username)
    store.audit(session, _actor(), "user_remove", f"user:{args.username}")
    print(f"removed user {args.username}; its API tokens and sessions no longer work")
    return 0


def _passwd(session: Any, args: argparse.Namespace) -> int:
    store.get_user(session, args.username)
    store.set_password(session, args.username, read_password(args.password_file, args.username))
    store.audit(session, _actor(), "user_passwd", f"user:{args.username}")
    print(f"password of {args.username} changed; its sessions have ended")
    return 0


def _token(session: Any, args: argparse.Namespace) -> int:
    if args.revoke:
        count = store.revoke_tokens(session, args.username)
        store.audit(session, _actor(), "token_revoke", f"user:{args.username}", f"{count} tokens")
        print(f"revoked {count} API token(s) of {args.username}")
        return 0
    token = store.new_token(session, args.username)
    store.audit(session, _actor(), "token_new", f"user:{args.username}", token[:12] + "…")
    print(token)
    print(f"(a new API token for {args.username}: shown this once; send it as 'Authorization: Bearer <token>')",
          file=sys.stderr)
    return 0
