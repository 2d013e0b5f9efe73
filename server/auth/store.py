"""Users, API tokens, browser sessions and the audit log: plain functions of a database session.

Functions that change something commit. Secrets are returned once (a new token, a new session's
cookie value) and only their SHA-256 digests are stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import delete, func
from sqlmodel import Session, select

from ..errors import Conflict, NotFound
from . import ROLES, passwords
from .models import ApiToken, AuditEntry, User, WebSession

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
TOKEN_PREFIX = "zwt_"
#: A session ends after this long without use (the browser cookie itself lasts until the browser closes).
SESSION_IDLE = 12 * 3600.0
_REFRESH = 600.0  # move a session's expiry on at most every 10 minutes


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is making a request, and how they proved it."""

    username: str
    role: str
    via: str  # "session" | "token"
    csrf_token: str | None = None  # sessions only
    session_hash: str | None = None


# -- users -------------------------------------------------------------------------------------


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username or ""):
        raise ValueError(f"user name {username[:80]!r} is not allowed: use 1-64 letters, digits, '.', '_', '@' "
                         "or '-', starting with a letter or digit")
    return username


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role {role[:40]!r} is not a role: use viewer, oncall or admin")
    return role


def get_user(s: Session, username: str) -> User:
    user = s.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(f"no user {username[:80]!r}; `zonewatch user list` shows the users")
    return user


def add_user(s: Session, username: str, role: str, password: str | None) -> User:
    """A new user; ``password=None`` makes one that can use API tokens only (tests, scripts)."""
    check_username(username)
    check_role(role)
    if password is not None and (why := passwords.weakness(password, username)):
        raise ValueError(why)
    if s.exec(select(User).where(User.username == username)).first() is not None:
        raise Conflict(f"user {username!r} exists already; `zonewatch user passwd {username}` changes the password")
    now = time.time()
    user = User(username=username, role=role, created_at=now, password_changed_at=now if password else None,
                password_hash=passwords.hash_password(password) if password is not None else "")
    s.add(user)
    s.commit()
    return user


def list_users(s: Session) -> list[tuple[User, int]]:
    """Every user with the number of API tokens it has, by name."""
    counts = dict(s.exec(select(ApiToken.user_id, func.count()).group_by(ApiToken.user_id)).all())
    return [(u, counts.get(u.id, 0)) for u in s.exec(select(User).order_by(User.username)).all()]


def remove_user(s: Session, username: str) -> None:
    """The user, its tokens and its sessions go (its audit rows stay)."""
    user = get_user(s, username)
    _forget(s, user.id)
    s.delete(user)
    s.commit()


def set_password(s: Session, username: str, password: str) -> None:
    """A new password; every session of the user ends (its API tokens keep working)."""
    user = get_user(s, username)
    if why := passwords.weakness(password, username):
        raise ValueError(why)
    user.password_hash = passwords.hash_password(password)
    user.password_changed_at = time.time()
    s.add(user)
    s.exec(delete(WebSession).where(WebSession.user_id == user.id))
    s.commit()


def authenticate(s: Session, username: str, password: str) -> User | None:
    """The user when the password is right, else None (an unknown name takes as long as a wrong password)."""
    user = s.exec(select(User).where(User.username == username)).first() if USERNAME.fullmatch(username) else None
    if not passwords.verify(user.password_hash if user else "", password) or user is None:
        return None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
        s.add(user)
        s.commit()
    return user


def _forget(s: Session, user_id: int | None) -> None:
    s.exec(delete(ApiToken).where(ApiToken.user_id == user_id))
    s.exec(delete(WebSession).where(WebSession.user_id == user_id))


# -- API tokens --------------------------------------------------------------------------------


def new_token(s: Session, username: str) -> str:
    """A new API token for the user: returned this once, stored as a digest."""
    user = get_user(s, username)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    s.add(ApiToken(user_id=user.id, token_hash=digest(token), prefix=token[:12], created_at=time.time()))
    s.commit()
    return token


def revoke_tokens(s: Session, username: str) -> int:
    """Every API token of the user stops working; returns how many there were."""
    user = get_user(s, username)
    count = len(s.exec(select(ApiToken.id).where(ApiToken.user_id == user.id)).all())
    s.exec(delete(ApiToken).where(ApiToken.user_id == user.id))
    s.commit()
    return count


def token_principal(s: Session, token: str) -> Principal | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = s.exec(select(ApiToken, User).join(User, User.id == ApiToken.user_id)
                 .where(ApiToken.token_hash == digest(token))).first()
    if row is None:
        return None
    stored, user = row
    now = time.time()
    if stored.last_used_at is None or now - stored.last_used_at > _REFRESH:
        stored.last_used_at = now
        s.add(stored)
        s.commit()
    return Principal(user.username, user.role, "token")


# -- sessions ----------------------------------------------------------------------------------


def new_session(s: Session, user: User, address: str) -> tuple[str, str]:
    """A browser session for the user: (cookie value, CSRF token)."""
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = time.time()
    s.exec(delete(WebSession).where(WebSession.expires_at < now))
    s.add(WebSession(user_id=user.id, session_hash=digest(cookie), csrf_token=csrf, created_at=now,
                     expires_at=now + SESSION_IDLE, address=address[:64]))
    s.commit()
    return cookie, csrf


def session_principal(s: Session, cookie: str) -> Principal | None:
    if not cookie or len(cookie) > 200:
        return None
    row = s.exec(select(WebSession, User).join(User, User.id == WebSession.user_id)
                 .where(WebSession.session_hash == digest(cookie))).first()
    if row is None:
        return None
    session, user = row
    now = time.time()
    if session.expires_at <= now:
        s.delete(session)
        s.commit()
        return None
    if session.expires_at - now < SESSION_IDLE - _REFRESH:
        session.expires_at = now + SESSION_IDLE
        s.add(session)
        s.commit()
    return Principal(user.username, user.role, "session", session.csrf_token, session.session_hash)


def end_session(s: Session, session_hash: str) -> None:
    s.exec(delete(WebSession).where(WebSession.session_hash == session_hash))
    s.commit()


# -- audit -------------------------------------------------------------------------------------


def audit(s: Session, actor: str, action: str, target: str = "", detail: str = "", address: str = "",
          at: float | None = None) -> AuditEntry:
    """Record a state-changing action (and commit): who, what, to what, from where."""
    entry = AuditEntry(at=time.time() if at is None else at, actor=_clean(actor or "-")[:200],
                       action=_clean(action)[:64], target=_clean(target)[:300], detail=_clean(detail)[:4000],
                       address=_clean(address or "")[:64])
    s.add(entry)
    s.commit()
    return entry


def _clean(text: str) -> str:
    """Control characters (NUL cannot be stored in PostgreSQL; newlines fake rows) shown as U+FFFD."""
    return CONTROL.sub("\ufffd", text)


def audit_entries(s: Session, limit: int = 100, offset: int = 0) -> tuple[int, list[AuditEntry]]:
    """The audit log, newest first: (total, one page)."""
    total = s.exec(select(func.count()).select_from(AuditEntry)).one()
    rows = s.exec(select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                  .offset(offset).limit(limit)).all()
    return total, list(rows)
