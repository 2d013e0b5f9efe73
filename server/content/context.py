"""What the content routes share, held by the app (no module state): settings, the signing key (made on first
use), the bundle store."""

from __future__ import annotations

import threading
from pathlib import Path

from aiohttp import web

from ..settings import Settings
from .signing import SigningKey
from .store import BundleStore


class ContentContext:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = Path(settings.server.data_dir)
        self._key: SigningKey | None = None
        self._store: BundleStore | None = None
        self._lock = threading.Lock()

    @property
    def key(self) -> SigningKey:
        with self._lock:
            if self._key is None:
                self._key = SigningKey.load_or_create(self.data_dir)
            return self._key

    @property
    def store(self) -> BundleStore:
        if self._store is None:
            self._store = BundleStore(self.data_dir, self.key)
        return self._store


CONTENT = web.AppKey("content", ContentContext)
