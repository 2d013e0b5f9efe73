"""The sign-in tables. Secrets are never stored: passwords as argon2 hashes, API tokens and session
ids as SHA-256 digests (they are long random strings, so a fast digest is enough)."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class User(SQLModel, table=True):
    __tablename__ = "app_user"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    role: str = Field(max_length=16)  # viewer | oncall | admin
    #: argon2id hash (``$argon2id$…``); empty: this user cannot sign in with a password.
    password_hash: str = Field(default="", max_length=255)
    created_at: float = 0.0
    password_changed_at: float | None = None


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    #: SHA-256 of the token, hex.
    token_hash: str = Field(max_length=64, unique=True, index=True)
    #: The token's first characters, so a person can tell tokens apart (``zwt_AbCd…``).
    prefix: str = Field(max_length=16)
    created_at: float = 0.0
    last_used_at: float | None = None


class WebSession(SQLModel, table=True):
    __tablename__ = "web_session"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    #: SHA-256 of the cookie's value, hex.
    session_hash: str = Field(max_length=64, unique=True, index=True)
    #: The CSRF token bound to this session (sent back in a form field or X-CSRF-Token).
    csrf_token: str = Field(max_length=64)
    created_at: float = 0.0
    expires_at: float = Field(default=0.0, index=True)
    address: str = Field(default="", max_length=64)


class AuditEntry(SQLModel, table=True):
    """Every state-changing action: who, what, to what, when, from where."""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    at: float = Field(index=True)
    actor: str = Field(max_length=200)  # a user name, "cli:<os user>", "ack link", or "-" when unknown
    action: str = Field(max_length=64, index=True)  # login, login_failed, logout, ack_incident, …
    target: str = Field(default="", max_length=300)
    detail: str = ""
    address: str = Field(default="", max_length=64)  # client address; "" from the command line
