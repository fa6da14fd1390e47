"""BYOK import enforcement: open a transfer blob the way Azure must, refusing whatever the spec forbids.

Pure: the caller hands in the request fields, this vault's URLs and a KEK lookup; nothing is stored
unless this returns. Every refusal names the problem and holds no key material.

Choices where Azure's behaviour is unconfirmed (the public docs are silent), each tested in
tests/integration/test_localvault_byok.py:

- **Status.** Every BYOK refusal is **400 BadParameter**, a KEK that does not exist included: a 404
  on ``PUT /keys/{name}`` would read as "target key not found" to clients (KeyNotFound is kept for
  the key named in the URL).
- **key_hsm encoding.** base64url, padded or not (the SDK sends unpadded), or standard base64
  (the spec's example says "Base64"). The blob's ``ciphertext`` follows ``blob.TransferBlob.parse``:
  base64url with or without padding.
- **kty.** ``key_hsm`` needs ``RSA-HSM``, ``EC-HSM`` or ``oct-HSM``; a software kty with ``key_hsm`` is
  refused. ``"Hsm": false`` beside a ``*-HSM`` kty is ignored (azure-cli sends exactly that).
  ``crv`` is required for EC-HSM, must equal the key's curve, and is refused for RSA-HSM and oct-HSM.
- **KEK.** ``header.kid`` must be versioned and name this vault (``https://127.0.0.1:PORT`` or
  ``https://localhost:PORT``); the version must exist, not be soft-deleted, be enabled and inside its
  ``nbf``/``exp`` window, be RSA-HSM, and have key_ops exactly ``["import"]``.
- **Wrapping.** ``enc`` only ``CKM_RSA_AES_KEY_WRAP``; the AES key must be 256-bit (``wrap.unwrap``).
- **Plaintext.** One unencrypted PKCS#8 DER structure, no trailing bytes (RSA/EC; optional EC
  public-key field present or not), or 16/24/32 raw bytes (oct); RSA 2048/3072/4096 and EC P-256,
  P-384, P-521, P-256K only (``keys.target_key_from_plaintext``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Callable, Collection

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..blob import TransferBlob
from ..errors import ByokError
from ..keys import TargetKey, b64url_decode, target_key_from_plaintext
from ..kid import KeyId
from ..wrap import unwrap
from .errors import bad_parameter, short_repr
from .policy import Sku, check_curve, stored_kty

__all__ = ["KekView", "ImportedKey", "decode_key_hsm", "open_transfer_blob"]


@dataclass(frozen=True, slots=True)
class KekView:
    """What the vault knows of one key version, enough to judge it as a KEK."""

    kty: str
    key_ops: tuple[str, ...]
    enabled: bool
    nbf: int | None
    exp: int | None
    private_der: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class ImportedKey:
    """The result of a successful BYOK open: the kty to record and the target key."""

    kty: str
    target: TargetKey  # its repr shows only the public description


def decode_key_hsm(value: object) -> bytes:
    """The raw .byok file bytes from the ``key_hsm`` JWK member (base64url or base64, padded or not)."""
    if not isinstance(value, str) or not value:
        raise bad_parameter("key_hsm must be a non-empty base64url string (the whole .byok file)")
    try:
        return b64url_decode(value)
    except ValueError:
        pass
    try:
        stripped = value.rstrip("=")
        return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise bad_parameter("key_hsm is neither base64url nor base64") from None


def open_transfer_blob(*, request_kty: object, crv: object, key_hsm: object, sku: Sku,
                       vault_urls: Collection[str], find_kek: Callable[[str, str], KekView | None],
                       now: int) -> ImportedKey:
    """Check a BYOK import request and unwrap its target key, or raise a 400 ServiceError."""
    if not isinstance(request_kty, str) or not request_kty.endswith("-HSM"):
        raise bad_parameter("a BYOK import (key_hsm) needs kty RSA-HSM, EC-HSM or oct-HSM, "
                            f"not {short_repr(request_kty)}")
    kty = stored_kty(request_kty, sku)
    base = kty.removesuffix("-HSM")
    if base == "EC":
        if crv is None:
            raise bad_parameter("crv is required for an EC-HSM import (P-256, P-384, P-521 or P-256K)")
        crv = check_curve(crv, default=None)
    elif crv is not None:
        raise bad_parameter(f"crv is only valid for EC-HSM, not {kty}")

    try:
        blob = TransferBlob.parse(decode_key_hsm(key_hsm), input="key_hsm")
    except ByokError as exc:
        raise bad_parameter(f"transfer blob refused: {exc}") from None
    kek_id = KeyId.parse(blob.kid, versioned=True, input="header.kid")
    if kek_id.vault_url not in vault_urls:
        raise bad_parameter(f"header.kid {blob.kid} names a KEK in another vault; the KEK must be in this "
                            f"vault ({sorted(vault_urls)[0]})")
    assert kek_id.version is not None
    kek = find_kek(kek_id.name, kek_id.version)
    if kek is None:
        raise bad_parameter(f"header.kid {blob.kid}: no such KEK version in this vault (deleted or never created)")
    _check_kek(kek, blob.kid, now)

    kek_private = serialization.load_der_private_key(kek.private_der, None, unsafe_skip_rsa_key_validation=True)
    assert isinstance(kek_private, rsa.RSAPrivateKey)
    try:
        plaintext = unwrap(kek_private, blob.ciphertext)
        target = target_key_from_plaintext(plaintext, base, input="unwrapped key")  # type: ignore[arg-type]
    except ByokError as exc:
        raise bad_parameter(f"transfer blob refused: {exc}") from None
    if base == "EC" and target.public.curve != crv:
        raise bad_parameter(f"the request says crv {crv} but the transfer blob holds a {target.public.curve} key")
    return ImportedKey(kty, target)


def _check_kek(kek: KekView, kid: str, now: int) -> None:
    if kek.kty != "RSA-HSM":
        raise bad_parameter(f"header.kid {kid} is a {kek.kty} key; a KEK must be RSA-HSM")
    if kek.key_ops != ("import",):
        raise bad_parameter(f"header.kid {kid} has key_ops {list(kek.key_ops)}; a KEK must have exactly ['import']")
    if not kek.enabled:
        raise bad_parameter(f"header.kid {kid} is disabled; enable the KEK or use another version")
    if kek.nbf is not None and now < kek.nbf:
        raise bad_parameter(f"header.kid {kid} is not valid yet (nbf)")
    if kek.exp is not None and now >= kek.exp:
        raise bad_parameter(f"header.kid {kid} has expired (exp)")
