"""The server's Ed25519 content-signing key: created on first use in the data dir (0600), signs bundles.

The key file is PEM (PKCS#8). Devices hold the public key (base64 of the raw 32 bytes), handed over at
enrolment and served at ``GET /device/content-key``. Losing the key means re-enrolling (or re-configuring)
every device, so back it up with the database.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.content.signature import statement

KEY_FILE = "content-signing.key"


class SigningKey:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private

    @classmethod
    def load_or_create(cls, data_dir: str | Path) -> SigningKey:
        path = Path(data_dir) / KEY_FILE
        if path.exists():
            return cls(_load(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it a moment ago
            return cls(_load(path))
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return cls(private)

    @property
    def public_b64(self) -> str:
        raw = self._private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def sign(self, version: str, sha256: str, size: int) -> str:
        return base64.b64encode(self._private.sign(statement(version, sha256, size))).decode()

    def sign_bytes(self, data: bytes) -> str:
        """Sign any statement (e.g. a one-shot command's, agent/commands.py); base64 of the signature."""
        return base64.b64encode(self._private.sign(data)).decode()


def _load(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise RuntimeError(f"{path} is not a PEM Ed25519 private key ({exc}); restore it from backup, or move it "
                           "away to make a new one (devices then need the new public key)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError(f"{path} holds a {type(key).__name__}, not an Ed25519 key; move it away")
    return key
