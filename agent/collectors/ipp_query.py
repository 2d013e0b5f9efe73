"""Ask an IPP printer about itself: one Get-Printer-Attributes over HTTP, standard library only.

pycups can send Get-Printer-Attributes to any IPP server, but it cannot decode octetString
values, and ``printer-supply`` (PWG 5100.13) is one; pyipp can, but it needs aiohttp, which the
agent must not depend on. IPP's binary encoding (RFC 8010) is small enough to speak directly for
the few attributes the printer collector needs, with a socket timeout of our own.

    attrs = get_printer_attributes("ipp://10.0.0.7/ipp/print", ["printer-state-reasons"])
    # {'printer-state-reasons': ['media-empty-error'], ...}: every value is a list
"""

from __future__ import annotations

import http.client
import ssl
import struct
from urllib.parse import urlsplit

GET_PRINTER_ATTRIBUTES = 0x000B
_OPERATION, _PRINTER, _END = 0x01, 0x04, 0x03
_INTEGER, _BOOLEAN, _ENUM = 0x21, 0x22, 0x23
_OCTET, _DATE, _RESOLUTION, _RANGE = 0x30, 0x31, 0x32, 0x33
_BEGIN_COLLECTION, _END_COLLECTION, _MEMBER_NAME = 0x34, 0x37, 0x4A
_TEXT_LANG, _NAME_LANG = 0x35, 0x36
_KEYWORD, _URI, _CHARSET, _LANGUAGE, _NAME = 0x44, 0x45, 0x47, 0x48, 0x42
#: Largest response read (bytes); a handful of attributes is a few kB.
MAX_RESPONSE = 1 << 20


class IppError(Exception):
    """The printer answered, but not with the attributes (HTTP or IPP error status)."""


def encode_request(printer_uri: str, attributes: list[str], request_id: int = 1,
                   user: str = "zonewatch") -> bytes:
    """An IPP/1.1 Get-Printer-Attributes request asking for ``attributes``."""
    out = bytearray(struct.pack(">BBHI", 1, 1, GET_PRINTER_ATTRIBUTES, request_id))
    out.append(_OPERATION)
    for tag, name, value in ((_CHARSET, "attributes-charset", "utf-8"),
                             (_LANGUAGE, "attributes-natural-language", "en"),
                             (_URI, "printer-uri", printer_uri),
                             (_NAME, "requesting-user-name", user)):
        out += _value(tag, name, value)
    for i, attribute in enumerate(attributes):
        out += _value(_KEYWORD, "requested-attributes" if i == 0 else "", attribute)
    out.append(_END)
    return bytes(out)


def _value(tag: int, name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack(">BH", tag, len(n)) + n + struct.pack(">H", len(v)) + v


def decode_response(data: bytes) -> tuple[int, dict[str, list]]:
    """(status code, printer attributes) of an IPP response; collections are skipped.

    Values: integers and enums → int, boolean → bool, octetString → str (UTF-8, errors
    replaced), text / name / keyword / uri … → str, out-of-band and dates → skipped.
    Anything malformed raises :class:`IppError`.
    """
    try:
        return _decode_response(data)
    except (struct.error, IndexError) as exc:
        raise IppError(f"malformed IPP response ({exc})") from None


def _decode_response(data: bytes) -> tuple[int, dict[str, list]]:
    if len(data) < 9:
        raise IppError(f"IPP response too short ({len(data)} bytes)")
    status = struct.unpack_from(">H", data, 2)[0]
    attrs: dict[str, list] = {}
    pos, group, name, depth = 8, 0, "", 0
    while pos < len(data):
        tag = data[pos]
        pos += 1
        if tag == _END:
            break
        if tag < 0x10:  # a delimiter: the next attribute group begins
            group = tag
            continue
        if tag == 0x7F:  # extension: a 4-byte tag follows in the value; never used for ours
            raise IppError("IPP extension tag in response")
        name_len = struct.unpack_from(">H", data, pos)[0]
        new_name = data[pos + 2:pos + 2 + name_len].decode("utf-8", "replace")
        pos += 2 + name_len
        value_len = struct.unpack_from(">H", data, pos)[0]
        raw = data[pos + 2:pos + 2 + value_len]
        pos += 2 + value_len
        if pos > len(data):
            raise IppError("IPP response truncated")
        if tag == _BEGIN_COLLECTION:
            depth += 1
            continue
        if tag == _END_COLLECTION:
            depth = max(0, depth - 1)
            continue
        if depth or group != _PRINTER:
            continue
        if new_name:
            name = new_name
        value = _decode(tag, raw)
        if value is not None and name:
            attrs.setdefault(name, []).append(value)
        elif new_name and name:
            attrs.setdefault(name, [])  # out-of-band value (no-value, unknown): present, empty
    return status, attrs


def _decode(tag: int, raw: bytes) -> object:
    if tag in (_INTEGER, _ENUM) and len(raw) == 4:
        return struct.unpack(">i", raw)[0]
    if tag == _BOOLEAN and len(raw) == 1:
        return raw != b"\0"
    if tag in (_TEXT_LANG, _NAME_LANG) and len(raw) >= 4:
        lang_len = struct.unpack_from(">H", raw)[0]
        text_len = struct.unpack_from(">H", raw, 2 + lang_len)[0]
        return raw[4 + lang_len:4 + lang_len + text_len].decode("utf-8", "replace")
    if tag == _OCTET or 0x41 <= tag <= 0x49:
        return raw.decode("utf-8", "replace")
    return None  # out-of-band (0x10-0x1F), date, resolution, range: not needed here


def http_target(printer_uri: str) -> tuple[str, str, int, str]:
    """``ipp://host[:port]/path`` → (scheme, host, port, path) to POST to (ipps → https)."""
    parts = urlsplit(printer_uri)
    if parts.scheme not in ("ipp", "ipps", "http", "https") or not parts.hostname:
        raise ValueError(f"not an IPP printer URI: {parts.scheme}://…")
    tls = parts.scheme in ("ipps", "https")
    return ("https" if tls else "http", parts.hostname, parts.port or (443 if parts.scheme == "https" else 631),
            parts.path or "/ipp/print")


def printer_uri_of(device_uri: str) -> str:
    """The printer-uri to name in a request: the device URI without credentials or query."""
    parts = urlsplit(device_uri)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path or '/ipp/print'}"


def get_printer_attributes(device_uri: str, attributes: list[str], timeout: float = 3.0) -> dict[str, list]:
    """Ask the printer at ``device_uri`` (ipp:// or ipps://) for ``attributes``.

    Raises OSError (not reachable, timeout), IppError (answered with an error) or ValueError
    (not an IPP URI). Printers' certificates are self-signed: ipps is encrypted, not verified
    (only status is read; nothing is sent but the request).
    """
    scheme, host, port, path = http_target(device_uri)
    body = encode_request(printer_uri_of(device_uri), attributes)
    if scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/ipp", "Accept": "application/ipp"})
        response = conn.getresponse()
        data = response.read(MAX_RESPONSE)
        if response.status != 200:
            raise IppError(f"HTTP {response.status} {response.reason}".strip())
    except http.client.HTTPException as exc:
        raise IppError(f"bad HTTP response: {type(exc).__name__}: {exc}") from None
    finally:
        conn.close()
    status, attrs = decode_response(data)
    if status >= 0x0400:
        raise IppError(f"IPP status 0x{status:04x}")
    return attrs
