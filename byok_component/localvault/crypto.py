"""Key material held by the local vault, and the operations a user runs to prove it works.

Sign/verify (RS*, PS*, ES256/384/512, ES256K), encrypt/decrypt and wrapKey/unwrapKey (RSA-OAEP,
RSA-OAEP-256, RSA1_5; on oct-HSM A*GCM, A*CBC, A*CBCPAD, A*KW), as Key Vault defines them: ``sign``
takes a digest, PS* uses a salt as long as the digest, ES* signatures are raw ``r || s``.
Private material never leaves this module except as the stored bytes (PKCS#8 DER or raw AES).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import constant_time, hashes, hmac, padding as sym_padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from ..errors import KeyMaterialError
from ..keys import EC_CURVES, TargetKey, b64url_decode, describe_public_key
from .errors import ServiceError, bad_parameter

__all__ = ["KeyMaterial", "generate", "from_target_key", "from_jwk", "sign", "verify", "encrypt", "decrypt",
           "wrap_key", "unwrap_key", "EncryptOutput", "jwk_members"]

Base = Literal["RSA", "EC", "oct"]


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """A stored key: PKCS#8 DER (RSA/EC) or raw bytes (oct), with its public JWK members."""

    base: Base
    private: bytes = field(repr=False)
    public_jwk: tuple[tuple[str, str], ...] = ()  # n/e or crv/x/y (oct: none, never k)
    size: int = 0
    curve: str | None = None

    def private_key(self) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
        if self.base == "oct":
            raise bad_parameter("an oct key has no asymmetric private key")
        # Our own bytes, checked when stored: skip the slow RSA consistency check on every operation.
        key = serialization.load_der_private_key(self.private, None, unsafe_skip_rsa_key_validation=True)
        assert isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey))
        return key


def _from_private(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> KeyMaterial:
    try:
        info = describe_public_key(key.public_key())
    except KeyMaterialError as exc:
        raise bad_parameter(exc.reason) from None
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    jwk = tuple((k, v) for k, v in info.jwk_items if k != "kty")
    return KeyMaterial(info.kty, der, jwk, info.size, info.curve)


def generate(base: Base, *, size: int = 2048, curve: str = "P-256") -> KeyMaterial:
    """A fresh key made in the vault (``size`` in bits for RSA and oct)."""
    if base == "RSA":
        return _from_private(rsa.generate_private_key(public_exponent=65537, key_size=size))
    if base == "EC":
        return _from_private(ec.generate_private_key(EC_CURVES[curve]()))
    return KeyMaterial("oct", os.urandom(size // 8), (), size, None)


def from_target_key(target: TargetKey) -> KeyMaterial:
    """Material unwrapped from a transfer blob (already checked by keys.target_key_from_plaintext)."""
    plaintext = target.wrapping_plaintext()
    if target.kty == "oct":
        return KeyMaterial("oct", plaintext, (), len(plaintext) * 8, None)
    jwk = tuple((k, v) for k, v in target.public.jwk_items if k != "kty")
    return KeyMaterial(target.kty, plaintext, jwk, target.public.size, target.public.curve)


def _member(jwk: dict[str, object], name: str, *, required: bool = True) -> int | None:
    value = jwk.get(name)
    if value is None:
        if required:
            raise bad_parameter(f"The property \"key\" must be a valid JsonWebKey object: member {name!r} is missing")
        return None
    try:
        return int.from_bytes(b64url_decode(str(value)), "big")
    except ValueError:
        raise bad_parameter(f"JsonWebKey member {name!r} is not base64url") from None


def from_jwk(jwk: dict[str, object], base: Base) -> KeyMaterial:
    """Plain (non-BYOK) JWK import: the private members must be present and consistent with the public ones."""
    try:
        if base == "RSA":
            n, e, d = (_member(jwk, m) for m in ("n", "e", "d"))
            assert n is not None and e is not None and d is not None
            p, q = _member(jwk, "p", required=False), _member(jwk, "q", required=False)
            if p is None or q is None:
                p, q = rsa.rsa_recover_prime_factors(n, e, d)
            numbers = rsa.RSAPrivateNumbers(
                p, q, d, _member(jwk, "dp", required=False) or rsa.rsa_crt_dmp1(d, p),
                _member(jwk, "dq", required=False) or rsa.rsa_crt_dmq1(d, q),
                _member(jwk, "qi", required=False) or rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, n))
            return _from_private(numbers.private_key())
        if base == "EC":
            curve = EC_CURVES.get(str(jwk.get("crv")))
            if curve is None:
                raise bad_parameter("crv must be P-256, P-384, P-521 or P-256K")
            x, y, d = (_member(jwk, m) for m in ("x", "y", "d"))
            assert x is not None and y is not None and d is not None
            public = ec.EllipticCurvePublicNumbers(x, y, curve())
            return _from_private(ec.EllipticCurvePrivateNumbers(d, public).private_key())
        k = jwk.get("k")
        if not isinstance(k, str):
            raise bad_parameter("The property \"key\" must be a valid JsonWebKey object: member 'k' is missing")
        raw = b64url_decode(k)
        if len(raw) * 8 not in (128, 192, 256):
            raise bad_parameter(f"an oct-HSM key must be 128, 192 or 256 bits, got {len(raw) * 8}")
        return KeyMaterial("oct", raw, (), len(raw) * 8, None)
    except ServiceError:
        raise
    except (ValueError, TypeError):
        raise bad_parameter(f"{base} key is not valid: the JsonWebKey members are inconsistent") from None


# --- sign / verify ------------------------------------------------------------------------------
_HASH = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_EC_ALG_CURVE = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521", "ES256K": "P-256K"}
_EC_ALG_HASH = {"ES256": "256", "ES384": "384", "ES512": "512", "ES256K": "256"}


_HMAC_ALGS = {"HS256": "256", "HS384": "384", "HS512": "512"}


def _sign_hash(material: KeyMaterial, alg: str) -> hashes.HashAlgorithm:
    if material.base == "oct" and alg in _HMAC_ALGS:
        return _HASH[_HMAC_ALGS[alg]]()
    if material.base == "RSA" and alg[:2] in ("RS", "PS") and alg[2:] in _HASH:
        return _HASH[alg[2:]]()
    if material.base == "EC" and alg in _EC_ALG_CURVE:
        if _EC_ALG_CURVE[alg] != material.curve:
            raise bad_parameter(f"algorithm {alg} needs curve {_EC_ALG_CURVE[alg]}; this key is {material.curve}")
        return _HASH[_EC_ALG_HASH[alg]]()
    raise bad_parameter(f"signature algorithm {str(alg)[:20]!r} is not supported for a {material.base} key")


def _rsa_sign_padding(alg: str, digest: hashes.HashAlgorithm) -> padding.AsymmetricPadding:
    if alg.startswith("PS"):
        return padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
    return padding.PKCS1v15()


def _check_digest(digest: bytes, algorithm: hashes.HashAlgorithm, alg: str) -> None:
    if len(digest) != algorithm.digest_size:
        raise bad_parameter(f"the digest is {len(digest)} bytes; {alg} signs a {algorithm.digest_size}-byte digest")


def _hmac(material: KeyMaterial, algorithm: hashes.HashAlgorithm, value: bytes) -> bytes:
    """Managed HSM's HS256/384/512 on an oct key: HMAC over the value sent (whether the service expects a
    digest or the message is not documented; the local vault MACs whatever it is given)."""
    mac = hmac.HMAC(material.private, algorithm)
    mac.update(value)
    return mac.finalize()


def sign(material: KeyMaterial, alg: str, digest: bytes) -> bytes:
    algorithm = _sign_hash(material, alg)
    if material.base == "oct":
        return _hmac(material, algorithm, digest)
    _check_digest(digest, algorithm, alg)
    key = material.private_key()
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(digest, _rsa_sign_padding(alg, algorithm), utils.Prehashed(algorithm))
    der = key.sign(digest, ec.ECDSA(utils.Prehashed(algorithm)))
    r, s = utils.decode_dss_signature(der)
    length = (key.curve.key_size + 7) // 8
    return r.to_bytes(length, "big") + s.to_bytes(length, "big")


def verify(material: KeyMaterial, alg: str, digest: bytes, signature: bytes) -> bool:
    algorithm = _sign_hash(material, alg)
    if material.base == "oct":
        return constant_time.bytes_eq(_hmac(material, algorithm, digest), signature)
    _check_digest(digest, algorithm, alg)
    public = material.private_key().public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, digest, _rsa_sign_padding(alg, algorithm), utils.Prehashed(algorithm))
        else:
            length = (public.curve.key_size + 7) // 8
            if len(signature) != 2 * length:
                return False
            der = utils.encode_dss_signature(int.from_bytes(signature[:length], "big"),
                                             int.from_bytes(signature[length:], "big"))
            public.verify(der, digest, ec.ECDSA(utils.Prehashed(algorithm)))
    except InvalidSignature:
        return False
    return True


# --- encrypt / decrypt / wrap / unwrap ----------------------------------------------------------
def _rsa_padding(alg: str) -> padding.AsymmetricPadding | None:
    if alg == "RSA-OAEP":  # SHA-1 and MGF1-SHA-1 (https://learn.microsoft.com/azure/key-vault/keys/about-keys-details)
        return padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    if alg == "RSA-OAEP-256":
        return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    if alg == "RSA1_5":
        return padding.PKCS1v15()
    return None


def _aes_key(material: KeyMaterial, alg: str) -> bytes:
    bits = int(alg[1:4])
    if len(material.private) * 8 != bits:
        raise bad_parameter(f"algorithm {alg} needs a {bits}-bit key; this key is {len(material.private) * 8} bits")
    return material.private


@dataclass(frozen=True, slots=True)
class EncryptOutput:
    value: bytes
    iv: bytes | None = None
    tag: bytes | None = None


def _unsupported(material: KeyMaterial, alg: str, what: str) -> ServiceError:
    return bad_parameter(f"{what} algorithm {str(alg)[:20]!r} is not supported for a {material.base} key")


def encrypt(material: KeyMaterial, alg: str, plaintext: bytes, *, iv: bytes | None = None,
            aad: bytes | None = None) -> EncryptOutput:
    if material.base == "RSA":
        pad = _rsa_padding(alg)
        if pad is None:
            raise _unsupported(material, alg, "encryption")
        try:
            return EncryptOutput(material.private_key().public_key().encrypt(plaintext, pad))  # type: ignore[arg-type]
        except ValueError:
            raise bad_parameter(f"the plaintext is too long for {alg} with this key") from None
    if material.base == "oct" and alg in ("A128GCM", "A192GCM", "A256GCM"):
        nonce = iv or os.urandom(12)
        sealed = AESGCM(_aes_key(material, alg)).encrypt(nonce, plaintext, aad)
        return EncryptOutput(sealed[:-16], nonce, sealed[-16:])
    if material.base == "oct" and alg in ("A128CBC", "A192CBC", "A256CBC", "A128CBCPAD", "A192CBCPAD", "A256CBCPAD"):
        nonce = iv or os.urandom(16)
        if len(nonce) != 16:
            raise bad_parameter("the iv must be 16 bytes for AES-CBC")
        data = plaintext
        if alg.endswith("PAD"):
            padder = sym_padding.PKCS7(128).padder()
            data = padder.update(plaintext) + padder.finalize()
        elif len(data) % 16:
            raise bad_parameter(f"{alg} needs a plaintext that is a multiple of 16 bytes (or use {alg}PAD)")
        encryptor = Cipher(algorithms.AES(_aes_key(material, alg)), modes.CBC(nonce)).encryptor()
        return EncryptOutput(encryptor.update(data) + encryptor.finalize(), nonce)
    raise _unsupported(material, alg, "encryption")


def decrypt(material: KeyMaterial, alg: str, ciphertext: bytes, *, iv: bytes | None = None,
            aad: bytes | None = None, tag: bytes | None = None) -> bytes:
    if material.base == "RSA":
        pad = _rsa_padding(alg)
        if pad is None:
            raise _unsupported(material, alg, "encryption")
        try:
            return material.private_key().decrypt(ciphertext, pad)  # type: ignore[union-attr,arg-type]
        except ValueError:
            raise bad_parameter(f"the ciphertext does not decrypt under this key with {alg}") from None
    if material.base == "oct" and alg in ("A128GCM", "A192GCM", "A256GCM"):
        if not iv or not tag:
            raise bad_parameter(f"{alg} decryption needs the iv and the authentication tag")
        try:
            return AESGCM(_aes_key(material, alg)).decrypt(iv, ciphertext + tag, aad)
        except InvalidTag:
            raise bad_parameter(f"the ciphertext fails its {alg} authentication") from None
    if material.base == "oct" and alg in ("A128CBC", "A192CBC", "A256CBC", "A128CBCPAD", "A192CBCPAD", "A256CBCPAD"):
        if not iv or len(iv) != 16 or len(ciphertext) % 16:
            raise bad_parameter(f"{alg} decryption needs a 16-byte iv and whole 16-byte blocks")
        decryptor = Cipher(algorithms.AES(_aes_key(material, alg)), modes.CBC(iv)).decryptor()
        data = decryptor.update(ciphertext) + decryptor.finalize()
        if alg.endswith("PAD"):
            unpadder = sym_padding.PKCS7(128).unpadder()
            try:
                data = unpadder.update(data) + unpadder.finalize()
            except ValueError:
                raise bad_parameter(f"the ciphertext does not decrypt under this key with {alg}") from None
        return data
    raise _unsupported(material, alg, "encryption")


def wrap_key(material: KeyMaterial, alg: str, key: bytes) -> bytes:
    if material.base == "oct" and alg in ("A128KW", "A192KW", "A256KW"):
        try:
            return aes_key_wrap(_aes_key(material, alg), key)
        except ValueError:
            raise bad_parameter(f"{alg} wraps keys of at least 16 bytes, a multiple of 8") from None
    if material.base == "RSA" and _rsa_padding(alg) is not None:
        return encrypt(material, alg, key).value
    raise _unsupported(material, alg, "key wrap")


def unwrap_key(material: KeyMaterial, alg: str, wrapped: bytes) -> bytes:
    if material.base == "oct" and alg in ("A128KW", "A192KW", "A256KW"):
        try:
            return aes_key_unwrap(_aes_key(material, alg), wrapped)
        except (InvalidUnwrap, ValueError):
            raise bad_parameter(f"the wrapped key fails its {alg} integrity check") from None
    if material.base == "RSA" and _rsa_padding(alg) is not None:
        return decrypt(material, alg, wrapped)
    raise _unsupported(material, alg, "key wrap")


def jwk_members(material: KeyMaterial) -> dict[str, str]:
    """Public JWK members for a KeyBundle: n/e or crv/x/y; nothing for oct (Key Vault never returns k)."""
    return dict(material.public_jwk)

