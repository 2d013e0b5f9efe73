"""The fleet's own certificate authority (``cryptography``): a CA, the broker's / server's certificate with SAN
entries, and device client certificates for mutual TLS.

Files in the CA directory: ``ca.crt`` (give it to agents and the server: it verifies the broker), ``ca.key``
(0600, keep it offline once the certificates are made), ``<name>.crt`` / ``<name>.key`` for a server
(default name ``broker``) and ``devices/<id>.crt`` / ``.key`` for a device. Keys are EC P-256 and written
0600; a server key is owned by the user that reads it (mosquitto reads its key after dropping to the
``mosquitto`` user: a root-owned 0600 key does not load). Nothing is overwritten unless ``force``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protocol import DEVICE_ID_RE

from .files import user_ids, write_atomic

CA_CERT, CA_KEY = "ca.crt", "ca.key"
CA_DAYS = 3650
LEAF_DAYS = 825


class CaError(Exception):
    """A certificate problem, worded for the person running the command."""


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "zonewatch")])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def san_entries(sans: list[str]) -> list[x509.GeneralName]:
    """``127.0.0.1`` → an IPAddress entry (a DNSName "127.0.0.1" does not verify), anything else a DNSName."""
    out: list[x509.GeneralName] = []
    for raw in sans:
        text = raw.strip()
        if not text:
            raise CaError("an empty --san entry; give a host name or an IP address")
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(text)))
            continue
        except ValueError:
            pass
        label = text[2:] if text.startswith("*.") else text
        if len(text) > 253 or not all(part and len(part) <= 63 and part.replace("-", "").isalnum() and
                                      part.isascii() for part in label.split(".")):
            raise CaError(f"--san {text!r} is neither an IP address nor a host name (letters, digits, '-', dots)")
        out.append(x509.DNSName(text))
    return out


def _builder(subject: x509.Name, issuer: x509.Name, public_key, days: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days)))


def make_ca(name: str, days: int = CA_DAYS) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    subject = _name(name)
    cert = (_builder(subject, subject, key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def issue(ca_key, ca_cert: x509.Certificate, common_name: str, *, sans: list[str] | None = None,
          client: bool = False, days: int = LEAF_DAYS) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A leaf certificate: a server one (``sans`` required) or a client one (``client=True``)."""
    key = _key()
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (_builder(_name(common_name), ca_cert.subject, key.public_key(), days)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                            crl_sign=False, content_commitment=False, data_encipherment=False,
                                            key_agreement=True, encipher_only=False, decipher_only=False),
                              critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if not client:
        if not sans:
            raise CaError("a server certificate needs at least one --san (the host name or IP agents connect to)")
        builder = builder.add_extension(x509.SubjectAlternativeName(san_entries(sans)), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _refuse_existing(paths: list[Path], force: bool) -> None:
    there = [p for p in paths if p.exists()]
    if there and not force:
        raise CaError(f"{there[0]} exists already; give --force to replace it (certificates signed by the old CA "
                      "stop verifying)")


def _save_leaf(directory: Path, stem: str, key, cert: x509.Certificate, key_owner: str | None) -> Issued:
    directory.mkdir(parents=True, exist_ok=True)
    ids = user_ids(key_owner)
    key_path = write_atomic(directory / f"{stem}.key", _key_pem(key), 0o600,
                            uid=ids[0] if ids else None, gid=ids[1] if ids else None)
    cert_path = write_atomic(directory / f"{stem}.crt", _pem(cert), 0o644)
    return Issued(cert_path, key_path)


def create_ca(directory: str | Path, name: str, sans: list[str], *, server_name: str = "broker",
              key_owner: str | None = "mosquitto", force: bool = False) -> tuple[Issued, Issued]:
    """A new CA in ``directory`` and a server certificate ``<server_name>.crt`` for ``sans``; returns both."""
    directory = Path(directory)
    if not DEVICE_ID_RE.fullmatch(server_name):
        raise CaError(f"certificate name {server_name!r}: use letters, digits, '_', '.' or '-'")
    _refuse_existing([directory / CA_CERT, directory / CA_KEY, directory / f"{server_name}.key"], force)
    san_entries(sans)  # refuse a bad entry before anything is written
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    ca_key, ca_cert = make_ca(name)
    ca = Issued(write_atomic(directory / CA_CERT, _pem(ca_cert), 0o644),
                write_atomic(directory / CA_KEY, _key_pem(ca_key), 0o600))
    key, cert = issue(ca_key, ca_cert, sans[0] if sans else server_name, sans=sans)
    return ca, _save_leaf(directory, server_name, key, cert, key_owner)


def load_ca(directory: str | Path):
    directory = Path(directory)
    try:
        cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise CaError(f"{exc.filename} not found; create the CA first with `zonewatch provision ca --dir "
                      f"{directory} --name NAME --san HOST`") from None
    except ValueError as exc:
        raise CaError(f"the CA in {directory} cannot be read ({exc}); is it a zonewatch CA directory?") from None
    return key, cert


def issue_server(directory: str | Path, name: str, sans: list[str], *, key_owner: str | None = None,
                 force: bool = False) -> Issued:
    """Another server certificate (e.g. for the HTTPS server) from the CA in ``directory``."""
    directory = Path(directory)
    _refuse_existing([directory / f"{name}.key"], force)
    ca_key, ca_cert = load_ca(directory)
    key, cert = issue(ca_key, ca_cert, sans[0] if sans else name, sans=sans)
    return _save_leaf(directory, name, key, cert, key_owner)


def issue_device(directory: str | Path, device_id: str, *, key_owner: str | None = None,
                 force: bool = False) -> Issued:
    """A client certificate for mutual TLS, common name = the device id, in ``directory/devices/``."""
    if not DEVICE_ID_RE.fullmatch(device_id or ""):
        raise CaError(f"device id {device_id!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-'")
    directory = Path(directory)
    _refuse_existing([directory / "devices" / f"{device_id}.key"], force)
    ca_key, ca_cert = load_ca(directory)
    key, cert = issue(ca_key, ca_cert, device_id, client=True)
    return _save_leaf(directory / "devices", device_id, key, cert, key_owner)
