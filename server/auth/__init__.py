"""Sign-in and roles: local users (argon2 password hashes), API tokens, browser sessions with CSRF
tokens, login rate limiting and the audit log.

- :mod:`.models` — the tables (registered with the fleet's tables, migrated with them);
- :mod:`.store` — users, tokens, sessions and audit rows (plain functions of a database session);
- :mod:`.passwords` — hashing and the password rules; :mod:`.ratelimit` — failed sign-ins;
- :mod:`.web` — the aiohttp middleware, ``/login`` and ``/logout``; :mod:`.cli` — ``zonewatch user``.

Roles are ordered ``viewer`` < ``oncall`` < ``admin``: viewers see, oncall also acknowledges and
silences, admins also manage.
"""

ROLES = ("viewer", "oncall", "admin")


def role_at_least(role: str | None, needed: str) -> bool:
    """Whether ``role`` is ``needed`` or above it; an unknown role is below everything."""
    if role not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(needed)
