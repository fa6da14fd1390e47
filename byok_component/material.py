"""Key material: read the key files a ByokKey names, and say what they hold, offline.

The rules that decide which key a vault will hold live here: which file is read how (a private key, raw AES
bytes, ciphertext wrapped elsewhere, a public key), whether the files agree with each other and with the
declared type and curve. ``check`` uses ``public_material`` in every preview; ``create``/``update`` use
``load_material``. No network, no pulumi, no Azure SDK.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from .blob import TransferBlob, looks_like_transfer_blob
from .errors import BlobError, ByokError, InputError, KeyMaterialError
from .files import MAX_INPUT_BYTES, read_input
from .hardening import no_core_dumps
from .keys import (AES_KEY_ENCODINGS, OCT_SIZES, AesKeyEncoding, KeyType, PublicKeyInfo, TargetKey,
                   guess_aes_text, is_text, load_public_key, load_target_key)
from .unknown import is_unknown
from .verify import ciphertext_digest

if TYPE_CHECKING:  # pragma: no cover
    from .pkcs11 import TokenKey
    from .props import KeyProps

__all__ = ["Material", "public_material", "load_material", "agree", "key_encoding", "WRAPPED_FINGERPRINT_PREFIX",
           "MAX_KEY_FILE_BYTES"]

MAX_KEY_FILE_BYTES = MAX_INPUT_BYTES  # a key or blob file is a few KB; refuse to slurp anything huge
# A wrapped AES key has no public half; its identity is the SHA-256 of the ciphertext (see README).
WRAPPED_FINGERPRINT_PREFIX = "wrapped-sha256:"
# Sizes a wrapped AES key's ciphertext can have: RSA part (KEK 2048/3072/4096) + RFC 5649 output (16/24/32+8).
_WRAPPED_OCT_BITS = {m + n + 8: n * 8 for m in (256, 384, 512) for n in OCT_SIZES}


def _read(path: object, prop: str) -> bytes:
    """Read a key/blob file; errors name the property and the path (never any content)."""
    return read_input(path, input=prop, max_bytes=MAX_KEY_FILE_BYTES)


def _password(value: object) -> bytes | None:
    if value is not None and not isinstance(value, str):
        raise InputError(f"must be a string, got {type(value).__name__}", input="key_password")
    return value.encode("utf-8") if value else None


def key_encoding(value: object) -> AesKeyEncoding | None:
    """The declared encoding of an AES key file (raw, hex or base64), or None (raw, refused if it is text)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value.strip().lower() not in AES_KEY_ENCODINGS:
        raise InputError(f"must be one of {', '.join(AES_KEY_ENCODINGS)}, got {str(value)[:20]!r}",
                         input="key_encoding")
    return value.strip().lower()  # type: ignore[return-value]


def _looks_aes(data: bytes) -> bool:
    """A file that can only be meant as an AES key: 16/24/32 bytes that are not PEM (no DER private key is that
    short), or hex/base64 text of 16/24/32 bytes (then refused until its encoding is declared)."""
    if len(data) in OCT_SIZES and not data.lstrip().startswith(b"-----"):
        return True
    return is_text(data) and guess_aes_text(data) is not None


def _oct_hint(kty: KeyType | None, encoding: AesKeyEncoding | None) -> KeyType | None:
    """A declared key_encoding means an AES key; with another key_type it is a contradiction."""
    if encoding is None:
        return kty
    if kty not in (None, "oct"):
        raise InputError(f"applies to AES (oct) key files only, not to a {kty} key", input="key_encoding")
    return "oct"


def _material_error(exc: ByokError, default_prop: str) -> InputError:
    """Attribute a key-loading failure to the property a user must fix (password problems -> key_password)."""
    reason = exc.reason
    prop = "key_password" if "password" in reason else default_prop
    return KeyMaterialError(reason, input=prop)


def _load_private(path: object, password: object, kty: KeyType | None, encoding: AesKeyEncoding | None = None,
                  *, prime_check: bool = False) -> TargetKey:
    no_core_dumps()  # this process is about to hold a private key
    data = _read(path, "key_file")
    kty = _oct_hint(kty, encoding)
    if kty is None and not password and _looks_aes(data):
        kty = "oct"
    try:  # only "oct" changes how the bytes are read; other disagreements are reported by agree
        return load_target_key(data, password=_password(password), kty="oct" if kty == "oct" else None,
                               encoding=encoding, input="key_file", prime_check=prime_check)
    except ByokError as exc:
        raise _material_error(exc, "key_file") from None


def _load_public(path: object) -> PublicKeyInfo:
    return load_public_key(_read(path, "public_key_file"), input="public_key_file")


def _read_wrapped(path: object, kek_id: str | None) -> bytes:
    """The ciphertext of a key wrapped elsewhere: a .byok transfer blob, or the raw CKM_RSA_AES_KEY_WRAP bytes."""
    data = _read(path, "wrapped_key_file")
    if looks_like_transfer_blob(data):  # the same test as byok blob --wrapped
        try:
            blob = TransferBlob.parse(data, input="wrapped_key_file")
        except BlobError as exc:
            raise KeyMaterialError(exc.reason, input="wrapped_key_file") from None
        if kek_id is not None and blob.kid != kek_id:
            raise KeyMaterialError(f"was wrapped for KEK {blob.kid}, not for kek_id {kek_id}",
                                   input="wrapped_key_file")
        ciphertext = blob.ciphertext
    else:
        ciphertext = data
    if len(ciphertext) < 256 + 16 or len(ciphertext) % 8:
        raise KeyMaterialError(
            f"holds {len(ciphertext)} bytes, which is not CKM_RSA_AES_KEY_WRAP ciphertext (RSA part of a 2048/3072/"
            "4096-bit KEK + RFC 5649 output, a multiple of 8 bytes); give the raw ciphertext or a .byok file",
            input="wrapped_key_file")
    return ciphertext


def _wrapped_oct_info(ciphertext: bytes) -> PublicKeyInfo:
    bits = _WRAPPED_OCT_BITS.get(len(ciphertext))
    if bits is None:
        raise KeyMaterialError(f"holds {len(ciphertext)} bytes, which is not a wrapped 128/192/256-bit AES key "
                               "under a 2048/3072/4096-bit KEK", input="wrapped_key_file")
    fingerprint = WRAPPED_FINGERPRINT_PREFIX + ciphertext_digest(ciphertext)
    return PublicKeyInfo("oct", bits, None, fingerprint, None, ())


@dataclass(frozen=True, slots=True)
class Material:
    """Key material ready to import: its public description and the private key, the ciphertext, or the token
    key that is wrapped inside its token once the KEK is known (``pkcs11.wrap_in_token``)."""

    public: PublicKeyInfo
    target: TargetKey | None = field(default=None, repr=False)
    ciphertext: bytes | None = field(default=None, repr=False)
    token: "TokenKey | None" = field(default=None, repr=False)


_TOKEN_PROPS = ("pkcs11_uri", "pkcs11_module", "pkcs11_pin")


def _token_key(p: Mapping[str, Any]) -> "TokenKey":
    from .pkcs11 import TokenKey
    if p.get("key_file") or p.get("wrapped_key_file") or p.get("key_password") or p.get("key_encoding"):
        raise InputError("give pkcs11_uri or key_file/wrapped_key_file, not both", input="pkcs11_uri")
    return TokenKey.from_inputs(p.get("pkcs11_uri"), p.get("pkcs11_module"), p.get("pkcs11_pin"))


def _token_public(p: Mapping[str, Any], key_type: KeyType | None) -> PublicKeyInfo:
    """A token key's public facts: public_key_file when given (previews need no token), else the token's."""
    from .pkcs11 import preflight, public_info
    key = _token_key(p)
    if p.get("public_key_file"):
        if key_type == "oct":
            raise InputError("an AES (oct) key has no public key; leave public_key_file out", input="public_key_file")
        return _load_public(p.get("public_key_file"))
    try:  # with a PIN at hand, a token that would get this key wrong is refused in the preview already
        return preflight(key) if key.has_pin() else public_info(key)
    except ByokError as exc:
        if exc.input in ("pkcs11_module", "pkcs11_uri"):
            raise type(exc)(f"{exc.reason} (for previews without the token give public_key_file)",
                            input=exc.input) from None
        raise


def public_material(p: Mapping[str, Any], *, kek_id: str | None = None,
                    key_type: KeyType | None = None) -> PublicKeyInfo:
    """The public facts of the material, offline, as previews need them.

    With ``public_key_file`` beside ``key_file`` only the public file is needed; if ``key_file`` is there and
    readable too, its public half must match.
    """
    if p.get("pkcs11_uri"):
        return _token_public(p, key_type)
    for name in _TOKEN_PROPS[1:]:
        if p.get(name):
            raise InputError("applies only with pkcs11_uri", input=name)
    key_file, wrapped = p.get("key_file"), p.get("wrapped_key_file")
    public_file, password = p.get("public_key_file"), p.get("key_password")
    encoding = key_encoding(p.get("key_encoding"))
    if key_file and wrapped:
        raise InputError("give key_file or wrapped_key_file, not both", input="wrapped_key_file")
    if wrapped:
        _only_key_file(password, encoding)
        ciphertext = _read_wrapped(wrapped, kek_id)
        if public_file:
            if key_type == "oct":
                raise InputError("an AES (oct) key has no public key; leave public_key_file out",
                                 input="public_key_file")
            return _load_public(public_file)
        if key_type == "oct":
            return _wrapped_oct_info(ciphertext)
        raise InputError("is required with wrapped_key_file for RSA and EC keys (set key_type oct for an "
                         "AES key)", input="public_key_file")
    if not key_file:
        raise InputError("give key_file (a private key file), or wrapped_key_file + public_key_file",
                         input="key_file")
    key_type = _oct_hint(key_type, encoding)
    if public_file:
        if key_type == "oct":
            raise InputError("an AES (oct) key has no public key; leave public_key_file out",
                             input="public_key_file")
        public = _load_public(public_file)
        if isinstance(key_file, str) and not is_unknown(key_file) and not is_unknown(password) \
                and os.path.exists(key_file):
            private = _load_private(key_file, password, key_type)
            _same_public(private.public, public)
        return public
    return _load_private(key_file, password, key_type, encoding).public


def _only_key_file(password: object, encoding: AesKeyEncoding | None) -> None:
    if password:
        raise InputError("applies only to key_file (wrapped_key_file is already encrypted)", input="key_password")
    if encoding is not None:
        raise InputError("applies only to key_file (wrapped_key_file is ciphertext)", input="key_encoding")


def _same_public(private: PublicKeyInfo, public: PublicKeyInfo, private_input: str = "key_file") -> None:
    if private.fingerprint != public.fingerprint:
        raise KeyMaterialError(
            f"does not match {private_input}: {private_input} holds {private.kty} key {private.fingerprint}, "
            f"public_key_file holds {public.kty} key {public.fingerprint}", input="public_key_file")


def load_material(p: KeyProps) -> Material:
    """Everything ``create``/``update`` import: reads ``key_file`` (it must match ``public_key_file``) or the
    wrapped ciphertext, or finds the key in its token. Raises InputError naming the property at fault.

    Unlike previews, an RSA key_file's primes are tested here (OpenSSL, once per key and process): a composite p
    would otherwise be found only by the vault, with a misleading message.
    """
    if p.pkcs11_uri:
        from .pkcs11 import public_info
        props = {"pkcs11_uri": p.pkcs11_uri, "pkcs11_module": p.pkcs11_module, "pkcs11_pin": p.pkcs11_pin,
                 "key_file": p.key_file, "wrapped_key_file": p.wrapped_key_file, "key_password": p.key_password,
                 "key_encoding": p.key_encoding}
        key = _token_key(props)
        public = public_info(key)
        if p.public_key_file:
            _same_public(public, _load_public(p.public_key_file), private_input="pkcs11_uri")
        agree(public, p.declared_key_type, p.declared_curve)
        return Material(public, token=key)
    if p.wrapped_key_file:  # the same refusals as check's public_material: create never takes what check refuses
        if p.key_file:
            raise InputError("give key_file or wrapped_key_file, not both", input="wrapped_key_file")
        _only_key_file(p.key_password, p.key_encoding)
        ciphertext = _read_wrapped(p.wrapped_key_file, p.kek_id)
        public = (_load_public(p.public_key_file) if p.public_key_file else
                  _wrapped_oct_info(ciphertext) if p.declared_key_type == "oct" else None)
        if public is None:
            raise InputError("is required with wrapped_key_file for RSA and EC keys", input="public_key_file")
        agree(public, p.declared_key_type, p.declared_curve)
        return Material(public, ciphertext=ciphertext)
    target = _load_private(p.key_file, p.key_password, p.declared_key_type, p.key_encoding, prime_check=True)
    if p.public_key_file:
        _same_public(target.public, _load_public(p.public_key_file))
    agree(target.public, p.declared_key_type, p.declared_curve)
    return Material(target.public, target=target)


def agree(public: PublicKeyInfo, kty: KeyType | None, curve: str | None) -> None:
    """Refuse material that is not of the declared key_type/curve (the error names the declaration)."""
    if kty is not None and kty != public.kty:
        raise InputError(f"is {kty} but the key material is an {public.kty} key", input="key_type")
    if curve is not None and curve != public.curve:
        actual = f"on curve {public.curve}" if public.curve else f"an {public.kty} key (no curve)"
        raise InputError(f"is {curve} but the key material is {actual}", input="curve")
