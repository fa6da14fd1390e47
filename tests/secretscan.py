"""Find secrets in anything a test can capture: responses, state, pickles, logs, error text, files.

Build a :class:`SecretSet` from what must never leak (private keys, raw AES keys, passwords, tokens), then
``find_secrets(haystack, secrets)`` returns the labels of every secret found. Each secret is searched in
the encodings a leak would plausibly take:

- a private key: the private part of its PKCS#8 and traditional (PKCS#1 / SEC1) DER as raw bytes, hex (either
  case) and base64 / base64url at all three byte alignments (so a DER embedded anywhere inside a larger
  encoded blob, or PEM, is still found); every private integer (RSA d, p, q, dp, dq, qi; the EC scalar)
  as raw big-endian bytes, hex, decimal and base64 / base64url. Public parts (n, e, the EC point) are
  never needles, so a public key PEM next to the secrets does not match.
- raw secret bytes (an AES key, a wrapping key): raw, hex, base64, base64url.
- passwords and tokens: the text itself, its UTF-8 bytes in hex and base64.

The haystack may be ``str``, ``bytes``, or any JSON-able structure (dicts, lists, protobuf-decoded
values); it is searched as is and again with all whitespace and escaped newlines removed, so wrapped or
JSON-escaped PEM is caught too. Needles are long enough (>= 16 characters) that chance matches do not occur.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dh, dsa, ec, ed448, ed25519, rsa, x448, x25519

__all__ = ["SecretSet", "find_secrets", "assert_no_secrets", "flatten", "outside_secrets", "secret_values"]

_WINDOW = 24  # characters (or bytes) per needle taken from a long encoding
_MIN_NEEDLE = 16


def _b64_variants(data: bytes) -> list[str]:
    std = base64.b64encode(data).decode("ascii")
    url = base64.urlsafe_b64encode(data).decode("ascii")
    return [std.rstrip("="), url.rstrip("=")]


def _windows(text: str | bytes, width: int = _WINDOW, count: int = 3) -> list[Any]:
    """A few needles from the start, middle and end of a long encoding (or the whole of a short one)."""
    if len(text) <= width * 2:
        return [text]
    last = len(text) - width
    positions = sorted({0, last // 2, last} | {last * i // (count + 1) for i in range(1, count + 1)})
    return [text[i:i + width] for i in positions]


def _int_bytes(value: int, length: int | None = None) -> bytes:
    return value.to_bytes(length or max(1, (value.bit_length() + 7) // 8), "big")


@dataclass
class SecretSet:
    """Labelled needles for everything that must not leak. Add secrets with the ``add_*`` methods."""

    text_needles: dict[str, set[str]] = field(default_factory=dict)
    byte_needles: dict[str, set[bytes]] = field(default_factory=dict)

    # --- building ---------------------------------------------------------------------------------------
    def _text(self, label: str, needles: Iterable[str]) -> None:
        bucket = self.text_needles.setdefault(label, set())
        bucket.update(n for n in needles if len(n) >= _MIN_NEEDLE)

    def _bytes(self, label: str, needles: Iterable[bytes]) -> None:
        bucket = self.byte_needles.setdefault(label, set())
        bucket.update(n for n in needles if len(n) >= _MIN_NEEDLE)

    def add_bytes(self, label: str, data: bytes) -> "SecretSet":
        """Raw secret bytes (an AES key, a DER blob): raw, hex, base64/base64url at every alignment."""
        self._bytes(label, _windows(data))
        hex_text = data.hex()
        self._text(label, [w for w in _windows(hex_text)] + [w.upper() for w in _windows(hex_text)])
        for offset in range(3):
            chunk = data[offset:]
            for encoded in _b64_variants(chunk):
                # Drop the last group: it depends on what follows the secret in a larger blob.
                body = encoded[: len(encoded) // 4 * 4 - 4] if len(encoded) > 8 else encoded
                self._text(label, _windows(body))
        return self

    def add_integer(self, label: str, value: int, length: int | None = None) -> "SecretSet":
        """A private integer: decimal, hex (both cases, padded and minimal), big-endian bytes and base64."""
        raw = _int_bytes(value, length)
        self.add_bytes(label, raw)
        if length is not None:
            self.add_bytes(label, _int_bytes(value))
        decimal = str(value)
        self._text(label, _windows(decimal, width=max(_MIN_NEEDLE, min(40, len(decimal)))))
        minimal_hex = format(value, "x")
        self._text(label, [w for w in _windows(minimal_hex)] + [w.upper() for w in _windows(minimal_hex)])
        return self

    def add_private_key(self, label: str, private_key: Any) -> "SecretSet":
        """An RSA or EC private key: its DER (PKCS#8 and traditional) and PEM, and its private numbers. Keys Azure
        refuses (DSA, DH: the private integer; Ed25519, X25519, Ed448, X448: the raw private bytes) are taken too,
        since a refusal must not quote them either.

        Only the private part of each DER is used (RSA: from ``d`` on; EC: the scalar), so the public key,
        which may appear anywhere, never matches.
        """
        if isinstance(private_key, rsa.RSAPrivateKey):
            ders = [private_key.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())
                    for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL)]
            numbers = private_key.private_numbers()
            d_bytes = _int_bytes(numbers.d)
            for der, kind in zip(ders, ("pkcs8-der", "traditional-der")):
                start = der.find(d_bytes)
                assert start > 0, "d not found in the DER"
                self.add_bytes(f"{label}:{kind}", der[start:])
            for name in ("d", "p", "q", "dmp1", "dmq1", "iqmp"):
                self.add_integer(f"{label}:rsa-{name}", getattr(numbers, name))
        elif isinstance(private_key, ec.EllipticCurvePrivateKey):
            length = (private_key.curve.key_size + 7) // 8
            # The scalar is the only secret in an EC DER (SEC1 privateKey OCTET STRING); PEM is base64 of it,
            # which the aligned base64 needles of the scalar cover.
            self.add_integer(f"{label}:ec-d", private_key.private_numbers().private_value, length)
        elif isinstance(private_key, (dsa.DSAPrivateKey, dh.DHPrivateKey)):
            self.add_integer(f"{label}:x", private_key.private_numbers().x)
        elif isinstance(private_key, (ed25519.Ed25519PrivateKey, x25519.X25519PrivateKey, ed448.Ed448PrivateKey,
                                      x448.X448PrivateKey)):
            self.add_bytes(f"{label}:raw", private_key.private_bytes_raw())
        else:
            raise TypeError(f"unsupported private key type {type(private_key).__name__}")
        return self

    def add_password(self, label: str, password: str | bytes) -> "SecretSet":
        """A password or passphrase: the text, and its bytes in hex and base64."""
        text = password.decode("utf-8") if isinstance(password, bytes) else password
        if len(text) < _MIN_NEEDLE:
            raise ValueError(f"use test passwords of at least {_MIN_NEEDLE} characters so a match means a leak")
        raw = text.encode("utf-8")
        self._text(label, [text, raw.hex(), *_b64_variants(raw)])
        self._bytes(label, [raw])
        return self

    add_token = add_password

    def add_vault_tokens(self, *vaults: Any) -> "SecretSet":
        """The bearer tokens (full and read-only) of local vaults, read from their token files."""
        from pathlib import Path

        for vault in vaults:
            for path in (vault.token_file, vault.readonly_token_file):
                self.add_token(f"token:{vault.port}:{Path(path).name}", Path(path).read_text().strip())
        return self

    # --- searching --------------------------------------------------------------------------------------
    def labels(self) -> list[str]:
        return sorted(set(self.text_needles) | set(self.byte_needles))


_SECRET_SIG_KEY, _SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(_SECRET_SIG_KEY) == _SECRET_SIG


def outside_secrets(value: Any) -> Any:
    """``value`` with every Pulumi secret (``{sig: secret, "value": ...}``, the wire encoding the engine keeps
    encrypted in state) replaced by a placeholder: what is left must hold no secret at all."""
    if _is_secret(value):
        return "[secret]"
    if isinstance(value, dict):
        return {k: outside_secrets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [outside_secrets(v) for v in value]
    return value


def secret_values(value: Any) -> list[Any]:
    """The values inside Pulumi secrets anywhere in ``value`` (for positive controls: the secret is there, marked)."""
    if _is_secret(value):
        return [value.get("value")]
    if isinstance(value, dict):
        return [found for v in value.values() for found in secret_values(v)]
    if isinstance(value, (list, tuple)):
        return [found for v in value for found in secret_values(v)]
    return []


def flatten(haystack: Any) -> str | bytes:
    """A str/bytes view of anything: bytes and str as they are, other values as sorted JSON (repr fallback)."""
    if isinstance(haystack, (str, bytes)):
        return haystack
    if isinstance(haystack, bytearray):
        return bytes(haystack)
    try:
        return json.dumps(haystack, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return repr(haystack)


_SQUEEZE_TEXT = re.compile(r"\s+|\\n|\\r")
_SQUEEZE_BYTES = re.compile(rb"\s+|\\n|\\r")


def find_secrets(haystack: Any, secrets: SecretSet) -> list[str]:
    """Labels of every secret in ``secrets`` that appears in ``haystack`` (empty list: nothing leaked)."""
    data = flatten(haystack)
    if isinstance(data, str):
        views_text = [data, _SQUEEZE_TEXT.sub("", data)]
        views_bytes = [data.encode("utf-8", "surrogateescape")]
    else:
        views_bytes = [data, _SQUEEZE_BYTES.sub(b"", data)]
        views_text = [data.decode("latin-1"), _SQUEEZE_BYTES.sub(b"", data).decode("latin-1")]
    found: set[str] = set()
    for label, needles in secrets.text_needles.items():
        if any(n in view for view in views_text for n in needles):
            found.add(label)
    for label, needles in secrets.byte_needles.items():
        if any(n in view for view in views_bytes for n in needles):
            found.add(label)
    return sorted(found)


def assert_no_secrets(haystack: Any, secrets: SecretSet, what: str = "output") -> None:
    """Fail with the leaked labels (never the secret itself) if anything in ``secrets`` is in ``haystack``."""
    leaked = find_secrets(haystack, secrets)
    assert not leaked, f"{what} leaks: {', '.join(leaked)}"
