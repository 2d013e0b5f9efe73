"""What a bundle signature covers, and its check on the device (Ed25519 through PyNaCl).

The server signs the statement ``zonewatch-content-v1\\n<version>\\n<sha256>\\n<size>\\n`` with its Ed25519
key; a signature therefore binds the version to exactly these bytes. PyNaCl (libsodium) rather than
``cryptography`` on the device: importing it costs about 1.2 MB of resident memory there, against about
8 MB for ``cryptography``'s Ed25519 (measured beside paho and psutil; see docs/content-rollout.md).
"""

from __future__ import annotations

import base64
import binascii

PREFIX = b"zonewatch-content-v1\n"


class BadSignature(Exception):
    """The signature does not verify, or the key or signature is malformed."""


def statement(version: str, sha256: str, size: int) -> bytes:
    """The exact bytes the server signs for a bundle."""
    return PREFIX + f"{version}\n{sha256}\n{size}\n".encode()


def decode_key(text: str) -> bytes:
    """A public key as written in configs and the enrolment answer: base64 of the raw 32 bytes."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise BadSignature("the content signing key is not base64 of 32 bytes; copy it again from the server "
                           "(GET /device/content-key) or re-enrol")
    return raw


def verify(public_key_b64: str, version: str, sha256: str, size: int, signature_b64: str) -> None:
    """Raise :class:`BadSignature` unless ``signature_b64`` signs this bundle under the key."""
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    key = decode_key(public_key_b64)
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature("the bundle's signature is not valid base64; refused") from None
    try:
        VerifyKey(key).verify(statement(version, sha256, size), signature)
    except (BadSignatureError, ValueError):
        raise BadSignature("the bundle's signature does not verify against this device's content signing key "
                           "(forged, altered, or signed by another server); refused") from None
