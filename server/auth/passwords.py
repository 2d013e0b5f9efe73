"""Password hashing (argon2id, argon2-cffi's defaults) and the rules a new password must meet."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 10
MAX_LENGTH = 1024
#: A few passwords people pick anyway; anything this common is refused whatever its length.
COMMON = frozenset({
    "password", "password1", "password123", "passw0rd", "1234567890", "12345678910", "0123456789",
    "qwertyuiop", "qwerty1234", "qwerty123456", "1q2w3e4r5t", "iloveyou12", "administrator", "letmein123",
    "welcome123", "changeme123", "zonewatch", "zonewatch1", "zonewatch123", "abcdefghij", "abc1234567",
})

_hasher = PasswordHasher()
#: Verified against when the user does not exist, so a wrong name takes as long as a wrong password.
_DUMMY = _hasher.hash("not a password anyone has")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (an argon2 hash); False for an empty or broken hash."""
    try:
        return _hasher.verify(stored or _DUMMY, password) and bool(stored)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return False


def weakness(password: str, username: str = "") -> str | None:
    """Why ``password`` is refused, or None when it is good enough."""
    if not password or not password.strip():
        return "the password is empty"
    if len(password) < MIN_LENGTH:
        return f"the password is too short: use at least {MIN_LENGTH} characters (a few words work well)"
    if len(password) > MAX_LENGTH:
        return f"the password is longer than {MAX_LENGTH} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        return "the password contains control characters (a newline?)"
    lowered = password.lower()
    if len(set(lowered)) < 5:
        return "the password repeats too few characters; pick something harder to guess"
    if lowered in COMMON or (username and username.lower() in lowered):
        return "the password is too easy to guess (a common password, or it contains the user name)"
    return None
