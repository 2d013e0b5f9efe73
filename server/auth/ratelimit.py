"""Failed sign-ins, counted per user name and per client address over a sliding window.

After ``per_user`` failures for one name (or ``per_address`` from one address) within ``window``
seconds, further attempts are refused (429) until the oldest failure leaves the window — even
with the right password, so guessing cannot go on. A successful sign-in clears its name's count.
"""

from __future__ import annotations

import math
from collections import deque

MAX_KEYS = 50_000  # memory bound: an attacker cycling names or addresses cannot grow this forever


class LoginLimiter:
    def __init__(self, per_user: int = 5, per_address: int = 20, window: float = 300.0) -> None:
        self.per_user, self.per_address, self.window = per_user, per_address, window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, username: str, address: str, now: float) -> int | None:
        """Seconds to wait before the next attempt, or None when an attempt is allowed now."""
        waits = []
        for key, limit in ((_user(username), self.per_user), (_addr(address), self.per_address)):
            times = self._recent(key, now)
            if len(times) >= limit:
                waits.append(times[len(times) - limit] + self.window - now)
        return max(1, math.ceil(max(waits))) if waits else None

    def attempt(self, username: str, address: str, now: float) -> None:
        """Count an attempt as failed before the password is checked (so parallel guesses are counted too);
        :meth:`succeeded` takes it back."""
        self.failed(username, address, now)

    def failed(self, username: str, address: str, now: float) -> None:
        if len(self._failures) >= MAX_KEYS:
            for key in list(self._failures):
                self._recent(key, now)
        for key in (_user(username), _addr(address)):
            if key in self._failures or len(self._failures) < MAX_KEYS:
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, username: str, address: str, at: float) -> None:
        """A right password: the name's count is cleared, and the attempt made at ``at`` is taken back."""
        self._failures.pop(_user(username), None)
        self._take_back(_addr(address), at)

    def forgive(self, username: str, address: str, at: float) -> None:
        """The attempt made at ``at`` does not count (the server, not the person, failed)."""
        self._take_back(_user(username), at)
        self._take_back(_addr(address), at)

    def _take_back(self, key: str, at: float) -> None:
        times = self._failures.get(key)
        if times is not None and at in times:
            times.remove(at)


def _user(name: str) -> str:
    return "u:" + name.strip().lower()[:200]


def _addr(address: str) -> str:
    return "a:" + (address or "?")
