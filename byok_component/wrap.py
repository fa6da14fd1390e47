"""CKM_RSA_AES_KEY_WRAP built from pyca primitives: RSA-OAEP-SHA1 of an ephemeral AES-256 key + RFC 5649 KWP.

Pure: bytes and key objects in, bytes out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding, aes_key_wrap_with_padding

from .errors import KekError, UnwrapError

__all__ = ["KEK_SIZES", "AES_KEY_BYTES", "check_kek", "wrap", "unwrap", "split", "kwp_length", "CiphertextParts"]

# BYOK spec §"Key Exchange Key": an RSA-HSM key of 2048, 3072 or 4096 bits.
KEK_SIZES: tuple[int, ...] = (2048, 3072, 4096)
# Every public tool uses an AES-256 ephemeral key (https://learn.microsoft.com/azure/key-vault/keys/byok-specification); we emit and accept only that.
AES_KEY_BYTES = 32


# BYOK spec: "encrypted with the wrapping RSA key using RSA-OAEP with SHA1" — MGF1-SHA1, empty label
# (the RFC 8017 defaults; PKCS#11 CKM_RSA_PKCS_OAEP inside CKM_RSA_AES_KEY_WRAP). Immutable: made once.
_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def _oaep() -> padding.OAEP:
    return _OAEP


def check_kek(kek: object, *, input: str = "kek") -> rsa.RSAPublicKey:  # noqa: A002
    """Return the KEK as an RSA public key, or raise KekError if it cannot be a BYOK KEK."""
    if isinstance(kek, rsa.RSAPrivateKey):
        kek = kek.public_key()
    if not isinstance(kek, rsa.RSAPublicKey):
        raise KekError("the KEK must be an RSA key", input=input)
    if kek.key_size not in KEK_SIZES:
        raise KekError(f"the KEK must be RSA 2048, 3072 or 4096 bits, got {kek.key_size}", input=input)
    return kek


def wrap(kek: rsa.RSAPublicKey, plaintext: bytes) -> bytes:
    """CKM_RSA_AES_KEY_WRAP: ``OAEP-SHA1(kek, aes_key) || KWP(aes_key, plaintext)`` with a fresh AES-256 key.

    The AES key comes from the OS CSPRNG and exists only inside this call.
    """
    kek = check_kek(kek)
    if not plaintext:
        raise ValueError("nothing to wrap")
    aes_key = secrets.token_bytes(AES_KEY_BYTES)
    # Spec §"Key transfer blob": "The encrypted AES key and the encrypted plaintext key are concatenated".
    return kek.encrypt(aes_key, _oaep()) + aes_key_wrap_with_padding(aes_key, plaintext)


@dataclass(frozen=True, slots=True)
class CiphertextParts:
    """The split of a ciphertext: the RSA part is exactly the KEK modulus length (spec layout)."""

    rsa_part: bytes
    kwp_part: bytes


def split(ciphertext: bytes, modulus_bytes: int) -> CiphertextParts:
    """Split at the KEK modulus length; the KWP part of RFC 5649 is at least 16 bytes, a multiple of 8."""
    kwp = ciphertext[modulus_bytes:]
    if len(ciphertext) < modulus_bytes + 16 or len(kwp) % 8:
        raise UnwrapError(
            f"ciphertext of {len(ciphertext)} bytes does not fit a {modulus_bytes * 8}-bit KEK "
            f"(expected {modulus_bytes} + a multiple of 8, at least 16)")
    return CiphertextParts(ciphertext[:modulus_bytes], kwp)


def unwrap(kek_private: rsa.RSAPrivateKey, ciphertext: bytes) -> bytes:
    """Inverse of :func:`wrap` for the local vault and tests. Raises UnwrapError on any integrity failure."""
    parts = split(ciphertext, (kek_private.key_size + 7) // 8)
    try:
        aes_key = kek_private.decrypt(parts.rsa_part, _oaep())
    except ValueError:
        raise UnwrapError("the RSA-OAEP part does not decrypt under this KEK (wrong KEK or corrupted)") from None
    if len(aes_key) != AES_KEY_BYTES:
        raise UnwrapError(f"the wrapped AES key is {len(aes_key) * 8} bits; CKM_RSA_AES_KEY_WRAP here uses 256")
    try:
        return aes_key_unwrap_with_padding(aes_key, parts.kwp_part)
    except InvalidUnwrap:
        raise UnwrapError("the AES key-wrap part fails its RFC 5649 integrity check (corrupted)") from None


def kwp_length(plaintext_length: int) -> int:
    """RFC 5649 §4.1 output length: pad to a multiple of 8, plus the 8-byte AIV block (16 minimum)."""
    return max(16, (plaintext_length + 7) // 8 * 8 + 8)
