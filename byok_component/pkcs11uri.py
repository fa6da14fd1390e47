"""RFC 7512 ``pkcs11:`` URIs: which token and which key object a PKCS#11 key source names.

Pure: text in, a frozen value out. Only the attributes this tool can honour are accepted; anything else is
refused by name (a mistyped ``objekt=`` must not quietly select another key). ``pin-value`` is refused: a
PIN inside a URI ends up in shell history, process lists and Pulumi state. ``pin-source`` (RFC 7512 §2.4)
names a file holding the PIN, which is fine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote_to_bytes

from .errors import InputError

__all__ = ["Pkcs11Uri", "ObjectType"]

ObjectType = Literal["private", "public", "secret-key"]

# RFC 7512 §2.3 path attributes we match on, and the query attributes we read.
_PATH = ("token", "manufacturer", "serial", "model", "object", "id", "type", "slot-id")
_QUERY = ("module-path", "pin-source")
_TYPES = ("private", "public", "secret-key", "cert", "data")


@dataclass(frozen=True, slots=True)
class Pkcs11Uri:
    """A parsed ``pkcs11:`` URI. ``id`` is the raw CKA_ID bytes; text attributes are percent-decoded UTF-8."""

    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    object: str | None = None  # CKA_LABEL
    id: bytes | None = None    # CKA_ID
    type: ObjectType | None = None
    slot_id: int | None = None
    module_path: str | None = None
    pin_source: str | None = None

    @classmethod
    def parse(cls, text: object, *, input: str = "pkcs11_uri") -> "Pkcs11Uri":  # noqa: A002
        if not isinstance(text, str) or not text.strip():
            raise InputError("is required (a pkcs11: URI, RFC 7512)", input=input)
        text = text.strip()
        if not text.lower().startswith("pkcs11:"):
            raise InputError("must be a pkcs11: URI (RFC 7512), e.g. pkcs11:token=HSM1;object=TestKey;type=private",
                             input=input)
        body = text[len("pkcs11:"):]
        path, _, query = body.partition("?")
        values: dict[str, str | bytes] = {}
        for part, separator, allowed in ((path, ";", _PATH), (query, "&", _QUERY)):
            for item in filter(None, part.split(separator)):
                name, eq, raw = item.partition("=")
                name = name.strip().lower()
                if name == "pin-value":
                    raise InputError("must not carry pin-value (the PIN would end up in shell history and state); "
                                     "give the PIN as a secret input or an environment variable", input=input)
                if not eq or name not in allowed:
                    where = "path" if separator == ";" else "query"
                    raise InputError(f"unknown or malformed {where} attribute {name[:30]!r} (this tool reads "
                                     f"{', '.join(allowed)})", input=input)
                if name in values:
                    raise InputError(f"attribute {name} is given twice", input=input)
                if _bad_escape(raw):
                    raise InputError(f"attribute {name} has a malformed %-escape (RFC 3986 §2.1)", input=input)
                decoded = unquote_to_bytes(raw)
                values[name] = decoded if name == "id" else _text(decoded, name, input)
        kind = values.get("type")
        if kind is not None and kind not in ("private", "public", "secret-key"):
            if kind in _TYPES:
                raise InputError(f"type={kind} names no key; use type=private (RSA/EC) or type=secret-key (AES)",
                                 input=input)
            raise InputError(f"type must be private, public or secret-key, got {str(kind)[:20]!r}", input=input)
        slot = values.get("slot-id")
        if slot is not None and not (isinstance(slot, str) and slot.isdigit()):
            raise InputError("slot-id must be a decimal number", input=input)
        uri = cls(token=_s(values, "token"), manufacturer=_s(values, "manufacturer"), serial=_s(values, "serial"),
                  model=_s(values, "model"), object=_s(values, "object"), id=values.get("id") or None,  # type: ignore[arg-type]
                  type=kind, slot_id=int(slot) if isinstance(slot, str) else None,  # type: ignore[arg-type]
                  module_path=_s(values, "module-path"), pin_source=_s(values, "pin-source"))
        if uri.object is None and uri.id is None:
            raise InputError("must name the key with object= (its label) or id= (its CKA_ID)", input=input)
        if uri.token is None and uri.serial is None and uri.slot_id is None:
            raise InputError("must name the token with token= (its label) or serial=", input=input)
        return uri

    def __str__(self) -> str:
        """The canonical text form (RFC 7512 §2.3 order of our attributes); never a PIN."""
        path = [f"{name}={_q(value)}" for name, value in (
            ("token", self.token), ("manufacturer", self.manufacturer), ("serial", self.serial),
            ("model", self.model), ("object", self.object)) if value is not None]
        if self.id is not None:
            path.append("id=" + "".join(f"%{b:02X}" for b in self.id))
        if self.type is not None:
            path.append(f"type={self.type}")
        if self.slot_id is not None:
            path.append(f"slot-id={self.slot_id}")
        query = [f"{name}={_q(value)}" for name, value in (("module-path", self.module_path),
                                                           ("pin-source", self.pin_source)) if value is not None]
        return "pkcs11:" + ";".join(path) + ("?" + "&".join(query) if query else "")

    def describe(self) -> str:
        """Token and object only, for messages."""
        key = self.object if self.object is not None else "id " + (self.id or b"").hex()
        token = self.token or self.serial or f"slot {self.slot_id}"
        return f"{key} on token {token}"


def _q(value: str) -> str:
    return quote(value, safe="-._~:/@!$'()*+,")


def _s(values: dict[str, str | bytes], name: str) -> str | None:
    value = values.get(name)
    return value if isinstance(value, str) else None


def _text(raw: bytes, name: str, input: str) -> str:  # noqa: A002
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"attribute {name} is not UTF-8 text", input=input) from None


def _bad_escape(raw: str) -> bool:
    """A "%" not followed by two hex digits (unquote would leave it as it is and match the wrong label)."""
    return re.search(r"%(?![0-9A-Fa-f]{2})", raw) is not None
