"""Target key material: load it, classify it as Azure sees it, encode it for wrapping, fingerprint it.

Pure: no I/O beyond what the caller hands in (bytes), no pulumi, no HTTP.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
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
    "AES_KEY_ENCODINGS",
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

# Azure refuses other RSA sizes for BYOK targets (https://learn.microsoft.com/azure/key-vault/keys/byok-specification).
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
# How an AES key file holds its key: the bytes themselves, or hex / base64 text of them.
AES_KEY_ENCODINGS: tuple[str, ...] = ("raw", "hex", "base64")
AesKeyEncoding = Literal["raw", "hex", "base64"]


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
        if numbers.e < 3 or numbers.e % 2 == 0:
            # RFC 8017 §3.1: e is odd and 3 <= e < n; e = 1 "encrypts" nothing, an even e has no inverse.
            raise KeyMaterialError(f"RSA public exponent e = {numbers.e} is not valid (it must be odd and at least "
                                   "3; keys are normally made with 65537)", input=input)
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
    return _oct_target(data)


def _oct_target(data: bytes) -> TargetKey:
    jwk = {"kty": "oct", "k": b64url(data)}
    info = PublicKeyInfo("oct", len(data) * 8, None, jwk_thumbprint(jwk), None, ())
    return TargetKey(info, bytes(data))


_TEXT_BYTES = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}
_HEX_RE = re.compile(rb"[0-9A-Fa-f]+")
_B64_RE = re.compile(rb"[A-Za-z0-9+/_-]+={0,2}")


def is_text(data: bytes) -> bool:
    """Printable ASCII only. Random key bytes are that by chance once in ~10^7 (16 bytes), 10^13 (32 bytes)."""
    return bool(data) and all(b in _TEXT_BYTES for b in data)


def guess_aes_text(data: bytes) -> tuple[AesKeyEncoding, int] | None:
    """(encoding, bits) when ``data`` reads as hex or base64 text of a 128/192/256-bit AES key, else None.

    Hex is tried first: 32/48/64 hex digits are also valid base64, but base64 of 16/24/32 bytes is 24/32/44
    characters with padding, and ``openssl rand -hex`` output is what people write.
    """
    text = b"".join(data.split())
    if _HEX_RE.fullmatch(text) and len(text) // 2 in OCT_SIZES and len(text) % 2 == 0:
        return "hex", len(text) * 4
    if _B64_RE.fullmatch(text):
        try:
            size = len(_b64_any(text))
        except ValueError:
            return None
        if size in OCT_SIZES:
            return "base64", size * 8
    return None


def _b64_any(text: bytes) -> bytes:
    """Standard or URL-safe base64, padding optional; ValueError on anything else."""
    normal = text.replace(b"-", b"+").replace(b"_", b"/").rstrip(b"=")
    try:
        return base64.b64decode(normal + b"=" * (-len(normal) % 4), validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None


def decode_aes_key(data: bytes, encoding: AesKeyEncoding | None, *, input: str = "key") -> bytes:  # noqa: A002
    """The AES key bytes of a key file, read as ``encoding`` says.

    Without an encoding only raw bytes that do not look like text are taken: a 32-byte file of hex digits is
    either an AES-256 key whose bytes happen to be text or the hex of an AES-128 key, and guessing wrong
    imports a key nobody else holds. Errors never echo the file's content.
    """
    if encoding is None or encoding == "raw":
        if encoding is None and is_text(data):
            guess = guess_aes_text(data)
            what = (f"hex or base64 text (it reads as the {guess[0]} of a {guess[1]}-bit AES key)" if guess
                    else "text, not raw key bytes")
            raise KeyMaterialError(
                f"holds {len(data)} bytes of {what}; declare the file's encoding (key_encoding / --key-encoding "
                "hex or base64, or raw if these bytes really are the key)", input=input)
        if len(data) not in OCT_SIZES:
            raise KeyMaterialError(f"a raw AES key must be 16, 24 or 32 bytes, got {len(data)}", input=input)
        return bytes(data)
    text = b"".join(data.split())
    try:
        if encoding == "hex":
            if not _HEX_RE.fullmatch(text) or len(text) % 2:
                raise ValueError
            key = bytes.fromhex(text.decode("ascii"))
        elif encoding == "base64":
            if not _B64_RE.fullmatch(text):
                raise ValueError
            key = _b64_any(text)
        else:
            raise KeyMaterialError(f"unknown AES key encoding {encoding!r} (raw, hex or base64)", input=input)
    except ValueError:
        raise KeyMaterialError(f"is not {encoding} text (key encoding {encoding} was declared)", input=input) from None
    if len(key) not in OCT_SIZES:
        raise KeyMaterialError(f"its {encoding} text decodes to {len(key)} bytes; an AES key is 16, 24 or 32 bytes",
                               input=input)
    return key


def load_target_key(data: bytes, *, password: bytes | None = None, kty: KeyType | None = None,
                    input: str = "key", prime_check: bool = False,  # noqa: A002
                    encoding: AesKeyEncoding | None = None) -> TargetKey:
    """Load a private target key from PEM/DER (PKCS#8, PKCS#1, SEC1; encrypted or not) or an AES key.

    ``kty="oct"`` reads ``data`` as an AES key in ``encoding`` (see ``decode_aes_key``: without one, text is
    refused); otherwise it must be an RSA or EC private key. Errors name ``input`` and never echo key bytes.

    An RSA key's numbers must agree (n = p·q; d, dp, dq, qinv consistent with e): microseconds. Only with
    ``prime_check`` does OpenSSL also test p and q for primality, which costs about 0.06 s for RSA-2048 and
    0.5 s for RSA-4096 (measured here): creates, updates, ``byok wrap`` and the local vault ask for it (once per
    key and process); previews do not, or every preview would pay it per key.
    """
    if encoding is not None and kty not in (None, "oct"):
        raise KeyMaterialError(f"an encoding ({encoding}) applies to AES key files only, not to {kty} keys",
                               input=input)
    if kty == "oct" or encoding is not None:
        if password:
            raise KeyMaterialError("a password was given but a raw AES key is not encrypted", input=input)
        return _oct_target(decode_aes_key(data, encoding, input=input))
    private_key, info = _load_private(data, password, input, prime_check)
    if kty is not None and kty != info.kty:
        raise KeyMaterialError(f"key type {kty} was asked for but the file holds an {info.kty} key", input=input)
    der = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    return TargetKey(info, der)


# PEM (RFC 7468 §2): text before the first BEGIN line is allowed ("Bag Attributes" from `openssl pkcs12 -nodes`);
# blanks after a BEGIN line's dashes too, as OpenSSL and pyca read them (else such a key would go uncounted).
_PEM_BLOCK_RE = re.compile(rb"-----BEGIN ([A-Z0-9 -]+)-----[ \t]*\r?\n.*?-----END \1-----", re.DOTALL)
# id-RSASSA-PSS (RFC 4055 §3.1, RFC 8017 A.2.3) as a DER OBJECT IDENTIFIER.
_RSA_PSS_OID = bytes.fromhex("06092a864886f70d01010a")


def _pem_key(data: bytes, input: str, wanted: str) -> tuple[bytes, str] | None:  # noqa: A002
    """The one key block of a PEM file and its label, or None when ``data`` is not PEM at all.

    More than one key is refused (which one was meant?); certificates and parameters beside the key are
    ignored; a file with only certificates is refused with how to get the public key out.
    """
    if b"-----BEGIN " not in data:
        return None
    blocks = [(m.group(0), m.group(1).decode("ascii")) for m in _PEM_BLOCK_RE.finditer(data)]
    found = [(block, label) for block, label in blocks if label.endswith("KEY") and "PARAMETERS" not in label]
    if len(found) > 1:
        raise KeyMaterialError(f"holds {len(found)} keys ({', '.join(label for _, label in found)}); give a file "
                               "with exactly one key", input=input)
    if not found:
        if any(label.endswith("CERTIFICATE") for _, label in blocks):
            raise KeyMaterialError(f"holds a certificate but no key; a {wanted} key is needed here (the public key"
                                   " of a certificate: openssl x509 -in FILE -pubkey -noout)", input=input)
        raise KeyMaterialError(f"not a readable PEM {wanted} key (malformed or truncated)", input=input)
    return found[0]


def _refuse_rsa_pss(der: bytes, input: str, label: str = "") -> None:  # noqa: A002
    """RSA keys restricted to RSASSA-PSS load as plain RSA keys (pyca drops the restriction); Key Vault would
    import one with every RSA operation, so it is refused (the AlgorithmIdentifier sits in the first bytes of
    PKCS#8 and SubjectPublicKeyInfo; an encrypted PKCS#8 file hides it until decrypted and cannot be told)."""
    if _RSA_PSS_OID in der[:32] or "RSA-PSS" in label:
        raise KeyMaterialError(
            "holds an RSA-PSS-restricted key (id-RSASSA-PSS): Key Vault would import it as a plain RSA key with "
            "every RSA operation, dropping the restriction; if a plain RSA key is meant, convert it "
            "(openssl rsa -in FILE -traditional | sed 's/RSA-PSS PRIVATE/RSA PRIVATE/' > plain.pem) and limit key_ops to "
            "what you allow", input=input)


def _pem_body(block: bytes) -> bytes:
    """The DER inside a PEM block without headers (encrypted traditional PEM has headers: no check there)."""
    lines = block.splitlines()[1:-1]
    if any(b":" in line for line in lines):
        return b""
    try:
        return base64.b64decode(b"".join(lines))
    except binascii.Error:
        return b""


# Keys whose primes OpenSSL already checked in this process (SHA-256 of their PKCS#8; held in memory only).
_PRIMES_CHECKED: set[bytes] = set()
_PRIMES_LOCK = threading.Lock()


def _check_primes(key: rsa.RSAPrivateKey, input: str) -> None:  # noqa: A002
    """OpenSSL's full RSA key check (p and q prime), once per key per process."""
    digest = hashlib.sha256(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption())).digest()
    with _PRIMES_LOCK:
        if digest in _PRIMES_CHECKED:
            return
    try:
        key.private_numbers().private_key(unsafe_skip_rsa_key_validation=False)
    except ValueError:
        raise KeyMaterialError("not a valid RSA private key (p or q is not prime, or its numbers disagree)",
                               input=input) from None
    with _PRIMES_LOCK:
        if len(_PRIMES_CHECKED) > 1024:
            _PRIMES_CHECKED.clear()
        _PRIMES_CHECKED.add(digest)


def _load_private(data: bytes, password: bytes | None, input: str,  # noqa: A002
                  prime_check: bool = False) -> tuple[object, PublicKeyInfo]:
    """The private key and its public description (described once: the RFC 7638 thumbprint is not free)."""
    if not data:
        raise KeyMaterialError("the file is empty", input=input)
    pem = _pem_key(data, input, "private")
    is_pem = pem is not None
    if pem is not None:
        data, label = pem
        if label.endswith("PUBLIC KEY"):
            raise KeyMaterialError("holds a public key; a private key is needed here", input=input)
        _refuse_rsa_pss(_pem_body(data), input, label)
    else:
        _refuse_rsa_pss(data, input)
    loader = serialization.load_pem_private_key if is_pem else serialization.load_der_private_key
    try:
        key = loader(data, password=password or None, unsafe_skip_rsa_key_validation=True)
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
            "not a PEM or DER private key (for an AES key file declare the key type oct)", input=input) from None
    info = describe_public_key(key.public_key(), input=input)  # e and size first: the clearest message
    if isinstance(key, rsa.RSAPrivateKey):
        if not _rsa_numbers_agree(key):
            raise KeyMaterialError("not a valid RSA private key (its numbers are inconsistent)", input=input)
        if prime_check:
            _check_primes(key, input)
    return key, info


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
    public = _load_public(data, input)
    if public is None:
        raise KeyMaterialError("not a PEM or DER public key", input=input)
    return describe_public_key(public, input=input)


def _load_public(data: bytes, input: str) -> object | None:  # noqa: A002
    pem = _pem_key(data, input, "public")
    is_pem = pem is not None
    if pem is not None:
        data = pem[0]
    _refuse_rsa_pss(_pem_body(data) if is_pem else data, input, pem[1] if pem is not None else "")
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
    try:
        public = _load_public(data, input)
    except KeyMaterialError as exc:
        raise KekError(exc.reason, input=input) from None
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
