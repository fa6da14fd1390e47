"""Target key material: load it, classify it as Azure sees it, encode it for wrapping, fingerprint it.

Pure: no I/O beyond what the caller hands in (bytes), no pulumi, no HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Literal, Mapping

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .errors import KekError, KeyMaterialError

__all__ = [
    "KeyType",
    "RSA_SIZES",
    "EC_CURVES",
    "OCT_SIZES",
    "PublicKeyInfo",
    "TargetKey",
    "load_target_key",
    "load_public_key",
    "load_kek_public_key",
    "target_key_from_plaintext",
    "public_key_from_jwk",
    "describe_public_key",
    "jwk_thumbprint",
    "generate_private_key",
    "private_key_pem",
    "b64url",
    "b64url_decode",
]

KeyType = Literal["RSA", "EC", "oct"]

# Azure refuses other RSA sizes for BYOK targets (azure-byok.md §1.2).
RSA_SIZES: tuple[int, ...] = (2048, 3072, 4096)
# JWK curve names as Key Vault spells them (secp256k1 is "P-256K" in Key Vault's JWKs).
EC_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
    "P-256K": ec.SECP256K1,
}
_CURVE_BY_OPENSSL_NAME = {cls.name: jwk for jwk, cls in EC_CURVES.items()}
# Raw AES key lengths in bytes (oct-HSM, Managed HSM only).
OCT_SIZES: tuple[int, ...] = (16, 24, 32)


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raise ValueError on anything else."""
    if not isinstance(text, str) or any(c not in _B64URL_ALPHABET for c in text.rstrip("=")):
        raise ValueError("not base64url")
    stripped = text.rstrip("=")
    if len(stripped) % 4 == 1:
        raise ValueError("not base64url (bad length)")
    return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))


_B64URL_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _int_bytes(value: int, length: int | None = None) -> bytes:
    # RFC 7518 §6.3.1: minimal big-endian for RSA n/e; §6.2.1.2: fixed length for EC coordinates.
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(size, "big")


def jwk_thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638 thumbprint: SHA-256 over the required members, sorted, no whitespace; base64url."""
    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "oct": ("k", "kty")}
    members = required.get(jwk.get("kty", ""))
    if members is None:
        raise KeyMaterialError(f"cannot fingerprint a JWK of type {jwk.get('kty')!r}")
    canonical = json.dumps({m: jwk[m] for m in members}, sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


@dataclass(frozen=True, slots=True)
class PublicKeyInfo:
    """What may be shown about a key: its type, size, curve, public JWK and fingerprint."""

    kty: KeyType
    size: int  # bits: RSA modulus, EC field size, AES key length
    curve: str | None
    fingerprint: str  # RFC 7638 thumbprint of the public JWK (oct: of the key JWK, see README)
    public_pem: str | None  # SubjectPublicKeyInfo PEM; None for oct
    jwk_items: tuple[tuple[str, str], ...] = field(repr=False, default=())

    @property
    def jwk(self) -> dict[str, str]:
        return dict(self.jwk_items)


@dataclass(frozen=True, slots=True)
class TargetKey:
    """Private target key material ready to wrap. Its repr shows only the public description."""

    public: PublicKeyInfo
    _plaintext: bytes = field(repr=False)

    def wrapping_plaintext(self) -> bytes:
        """The bytes CKM_RSA_AES_KEY_WRAP wraps: PKCS#8 DER (RSA/EC) or raw bytes (oct), spec §1.5."""
        return self._plaintext

    @property
    def kty(self) -> KeyType:
        return self.public.kty

    def __repr__(self) -> str:
        return f"TargetKey({self.public.kty}, {self.public.size}, {self.public.curve}, {self.public.fingerprint})"


def describe_public_key(public_key: object, *, input: str = "key") -> PublicKeyInfo:  # noqa: A002
    """Classify a public key as Azure would and compute its JWK and RFC 7638 fingerprint."""
    if isinstance(public_key, rsa.RSAPublicKey):
        size = public_key.key_size
        if size not in RSA_SIZES:
            raise KeyMaterialError(
                f"RSA key of {size} bits is not supported by Azure Key Vault BYOK (use 2048, 3072 or 4096)",
                input=input)
        numbers = public_key.public_numbers()
        jwk = {"kty": "RSA", "n": b64url(_int_bytes(numbers.n)), "e": b64url(_int_bytes(numbers.e))}
        return _info("RSA", size, None, jwk, public_key)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = _CURVE_BY_OPENSSL_NAME.get(public_key.curve.name)
        if curve is None:
            raise KeyMaterialError(
                f"EC curve {public_key.curve.name} is not supported by Azure Key Vault "
                "(use P-256, P-384, P-521 or P-256K)", input=input)
        numbers = public_key.public_numbers()
        length = (public_key.curve.key_size + 7) // 8
        jwk = {"kty": "EC", "crv": curve, "x": b64url(_int_bytes(numbers.x, length)),
               "y": b64url(_int_bytes(numbers.y, length))}
        return _info("EC", public_key.curve.key_size, curve, jwk, public_key)
    raise KeyMaterialError(f"{_kind_name(public_key)} keys are not supported (use RSA or EC)", input=input)


def _info(kty: KeyType, size: int, curve: str | None, jwk: dict[str, str], public_key: object) -> PublicKeyInfo:
    pem = public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")
    return PublicKeyInfo(kty, size, curve, jwk_thumbprint(jwk), pem, tuple(sorted(jwk.items())))


def _kind_name(key: object) -> str:
    name = type(key).__name__
    for suffix in ("PrivateKey", "PublicKey"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name.lstrip("_") or "unknown"


def _oct_key(data: bytes, input: str) -> TargetKey:  # noqa: A002
    if len(data) not in OCT_SIZES:
        raise KeyMaterialError(
            f"a raw AES key must be 16, 24 or 32 bytes, got {len(data)}", input=input)
    jwk = {"kty": "oct", "k": b64url(data)}
    info = PublicKeyInfo("oct", len(data) * 8, None, jwk_thumbprint(jwk), None, ())
    return TargetKey(info, bytes(data))


def load_target_key(data: bytes, *, password: bytes | None = None, kty: KeyType | None = None,
                    input: str = "key", prime_check: bool = False) -> TargetKey:  # noqa: A002
    """Load a private target key from PEM/DER (PKCS#8, PKCS#1, SEC1; encrypted or not) or raw AES bytes.

    ``kty="oct"`` reads ``data`` as a raw AES key; otherwise it must be an RSA or EC private key.
    Errors name ``input`` and never echo key bytes.

    An RSA key's numbers must agree (n = p·q; d, dp, dq, qinv consistent with e): microseconds. Only with
    ``prime_check`` does OpenSSL also test p and q for primality, which costs 0.1-0.4 s for RSA-2048 and
    0.3-1.5 s for RSA-4096: the local vault asks for it (an HSM checks what it imports); previews, wraps and
    creates do not, or every preview would pay it per key.
    """
    if kty == "oct":
        if password:
            raise KeyMaterialError("a password was given but a raw AES key is not encrypted", input=input)
        return _oct_key(data, input)
    private_key = _load_private(data, password, input, prime_check)
    info = describe_public_key(private_key.public_key(), input=input)
    if kty is not None and kty != info.kty:
        raise KeyMaterialError(f"key type {kty} was asked for but the file holds an {info.kty} key", input=input)
    der = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    return TargetKey(info, der)


def _load_private(data: bytes, password: bytes | None, input: str,  # noqa: A002
                  prime_check: bool = False) -> object:
    if not data:
        raise KeyMaterialError("the file is empty", input=input)
    is_pem = data.lstrip().startswith(b"-----BEGIN")
    if is_pem and b"PUBLIC KEY-----" in data.split(b"\n", 1)[0] + data[:64]:
        raise KeyMaterialError("holds a public key; a private key is needed here", input=input)
    if is_pem and b"CERTIFICATE-----" in data[:64]:
        raise KeyMaterialError("holds a certificate; a private key is needed here", input=input)
    loader = serialization.load_pem_private_key if is_pem else serialization.load_der_private_key
    try:
        key = loader(data, password=password or None, unsafe_skip_rsa_key_validation=not prime_check)
    except TypeError as exc:
        text = str(exc)
        if "not encrypted" in text:
            raise KeyMaterialError("a password was given but the key is not encrypted", input=input) from None
        if "encrypted" in text:
            raise KeyMaterialError("the key is encrypted and no password was given", input=input) from None
        raise KeyMaterialError("not a readable private key", input=input) from None
    except UnsupportedAlgorithm:
        raise KeyMaterialError("uses an algorithm or curve that is not supported "
                               "(use RSA 2048/3072/4096 or EC P-256/P-384/P-521/P-256K)", input=input) from None
    except ValueError as exc:
        if password and "password" in str(exc).lower() or password and "decrypt" in str(exc).lower():
            raise KeyMaterialError("wrong password for the encrypted key", input=input) from None
        if password and is_pem and b"ENCRYPTED" in data[:200]:
            raise KeyMaterialError("wrong password for the encrypted key", input=input) from None
        if not is_pem and _looks_public_der(data):
            raise KeyMaterialError("holds a public key; a private key is needed here", input=input) from None
        if is_pem:
            raise KeyMaterialError("not a readable PEM private key (malformed or truncated)", input=input) from None
        raise KeyMaterialError(
            "not a PEM or DER private key (for a raw AES key give the key type oct)", input=input) from None
    if isinstance(key, rsa.RSAPrivateKey) and not prime_check and not _rsa_numbers_agree(key):
        raise KeyMaterialError("not a valid RSA private key (its numbers are inconsistent)", input=input)
    return key


def _rsa_numbers_agree(key: rsa.RSAPrivateKey) -> bool:
    """OpenSSL's RSA key check without its costly primality tests (RFC 8017 §3.2 relations)."""
    numbers = key.private_numbers()
    p, q, d, e, n = numbers.p, numbers.q, numbers.d, numbers.public_numbers.e, numbers.public_numbers.n
    return (p > 2 and q > 2 and p != q and p * q == n and 1 < d < n and numbers.dmp1 == d % (p - 1)
            and numbers.dmq1 == d % (q - 1) and e * numbers.dmp1 % (p - 1) == 1 and e * numbers.dmq1 % (q - 1) == 1
            and numbers.iqmp * q % p == 1)


def _looks_public_der(data: bytes) -> bool:
    try:
        serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


def target_key_from_plaintext(plaintext: bytes, kty: KeyType, *, input: str = "key") -> TargetKey:  # noqa: A002
    """Strictly read the plaintext of a transfer blob: one PKCS#8 DER structure (RSA/EC) or raw oct bytes.

    The local vault uses this after unwrapping: spec §1.5 says PKCS#8 for RSA/EC, raw bytes for oct.
    """
    if kty == "oct":
        return _oct_key(plaintext, input)
    if not _is_single_pkcs8(plaintext):
        raise KeyMaterialError("the unwrapped key is not a single PKCS#8 DER structure", input=input)
    return load_target_key(plaintext, kty=kty, input=input, prime_check=True)


def _is_single_pkcs8(der: bytes) -> bool:
    # PrivateKeyInfo ::= SEQUENCE { version INTEGER (0|1), algorithm AlgorithmIdentifier (SEQUENCE), ... }
    # (RFC 5208 §5 / RFC 5958 §2). PKCS#1 and SEC1 differ at the second element; trailing bytes are refused.
    def header(pos: int) -> tuple[int, int, int]:
        tag = der[pos]
        first = der[pos + 1]
        if first < 0x80:
            return tag, first, pos + 2
        count = first & 0x7F
        if count == 0 or count > 4:
            raise IndexError
        return tag, int.from_bytes(der[pos + 2: pos + 2 + count], "big"), pos + 2 + count

    try:
        tag, length, body = header(0)
        if tag != 0x30 or body + length != len(der):
            return False
        tag, length, pos = header(body)
        if tag != 0x02 or length != 1 or der[pos] not in (0, 1):
            return False
        tag, _, _ = header(pos + 1)
        return tag == 0x30
    except IndexError:
        return False


def load_public_key(data: bytes, *, input: str = "public_key_file") -> PublicKeyInfo:  # noqa: A002
    """Load a public key (SPKI PEM/DER, PKCS#1 RSA PEM, or the public half of a private key file)."""
    if not data:
        raise KeyMaterialError("the file is empty", input=input)
    public = _load_public(data)
    if public is None:
        raise KeyMaterialError("not a PEM or DER public key", input=input)
    return describe_public_key(public, input=input)


def _load_public(data: bytes) -> object | None:
    is_pem = data.lstrip().startswith(b"-----BEGIN")
    try:
        if is_pem:
            return serialization.load_pem_public_key(data)
        return serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        pass
    try:  # a private key file also carries the public half (documented for KEK files)
        loader = serialization.load_pem_private_key if is_pem else serialization.load_der_private_key
        # Only the public half is used: OpenSSL's primality tests of p and q would buy nothing here.
        return loader(data, password=None, unsafe_skip_rsa_key_validation=True).public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None


def load_kek_public_key(data: bytes, *, input: str = "kek-pem") -> rsa.RSAPublicKey:  # noqa: A002
    """Load the KEK's public key (as ``az keyvault key download`` writes it); size checked by wrap.check_kek.

    An unencrypted private key file is accepted too and only its public half is used (tests, demos).
    """
    if not data:
        raise KekError("the file is empty", input=input)
    public = _load_public(data)
    if public is None:
        raise KekError("not a PEM or DER RSA public key", input=input)
    if not isinstance(public, rsa.RSAPublicKey):
        raise KekError(f"the KEK must be an RSA key, got {_kind_name(public)}", input=input)
    return public


def public_key_from_jwk(jwk: Mapping[str, object], *, input: str = "key") -> PublicKeyInfo:  # noqa: A002
    """Describe a public key given as JWK members (bytes or base64url strings), e.g. from Key Vault."""
    def raw(name: str) -> bytes:
        value = jwk.get(name)
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        if isinstance(value, str):
            return b64url_decode(value)
        raise KeyMaterialError(f"JWK member {name!r} is missing", input=input)

    kty = str(jwk.get("kty", "")).removesuffix("-HSM")
    try:
        if kty == "RSA":
            public: object = rsa.RSAPublicNumbers(int.from_bytes(raw("e"), "big"),
                                                  int.from_bytes(raw("n"), "big")).public_key()
        elif kty == "EC":
            curve = EC_CURVES.get(str(jwk.get("crv")))
            if curve is None:
                raise KeyMaterialError(f"unsupported curve {jwk.get('crv')!r}", input=input)
            public = ec.EllipticCurvePublicNumbers(int.from_bytes(raw("x"), "big"),
                                                   int.from_bytes(raw("y"), "big"), curve()).public_key()
        else:
            raise KeyMaterialError(f"no public key to describe for key type {jwk.get('kty')!r}", input=input)
    except ValueError as exc:
        raise KeyMaterialError(f"invalid public JWK ({exc})", input=input) from None
    return describe_public_key(public, input=input)


def generate_private_key(kty: KeyType, *, size: int | None = None, curve: str | None = None) -> object:
    """Make a test key: RSA (2048/3072/4096) or EC (Key Vault curve names). oct keys are secrets.token_bytes."""
    if kty == "RSA":
        size = size or 4096
        if size not in RSA_SIZES:
            raise KeyMaterialError(f"RSA size {size} is not supported (use 2048, 3072 or 4096)", input="size")
        return rsa.generate_private_key(public_exponent=65537, key_size=size)
    if kty == "EC":
        curve = curve or "P-256"
        if curve not in EC_CURVES:
            raise KeyMaterialError(f"curve {curve} is not supported (use P-256, P-384, P-521 or P-256K)",
                                   input="curve")
        return ec.generate_private_key(EC_CURVES[curve]())
    raise KeyMaterialError(f"cannot generate a private key of type {kty}", input="kty")


def private_key_pem(private_key: object, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with the best available scheme when a password is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption())
    return private_key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
