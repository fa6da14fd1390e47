"""Key material: every accepted encoding, classification, fingerprints, and clean refusals."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dh, dsa, ec, ed25519, rsa, x25519

from byok_component import keys
from byok_component.errors import KeyMaterialError
from tests.conftest import ec_key, rsa_key

PEM, DER = serialization.Encoding.PEM, serialization.Encoding.DER
PKCS8 = serialization.PrivateFormat.PKCS8
TRAD = serialization.PrivateFormat.TraditionalOpenSSL  # PKCS#1 for RSA, SEC1 for EC
NOENC = serialization.NoEncryption()


def encodings(private_key, password: bytes = b"correct horse"):
    yield "pem-pkcs8", private_key.private_bytes(PEM, PKCS8, NOENC), None
    yield "der-pkcs8", private_key.private_bytes(DER, PKCS8, NOENC), None
    yield "pem-traditional", private_key.private_bytes(PEM, TRAD, NOENC), None
    yield "der-traditional", private_key.private_bytes(DER, TRAD, NOENC), None
    yield "pem-pkcs8-encrypted", private_key.private_bytes(
        PEM, PKCS8, serialization.BestAvailableEncryption(password)), password
    yield "pem-traditional-encrypted", private_key.private_bytes(
        PEM, TRAD, serialization.BestAvailableEncryption(password)), password


@pytest.mark.parametrize("make,kty,size,curve", [
    (lambda: rsa_key(2048, 1), "RSA", 2048, None),
    (lambda: ec_key("P-256"), "EC", 256, "P-256"),
    (lambda: ec_key("P-384"), "EC", 384, "P-384"),
    (lambda: ec_key("P-521"), "EC", 521, "P-521"),
    (lambda: ec_key("P-256K"), "EC", 256, "P-256K"),
])
def test_every_encoding_loads_to_the_same_pkcs8_and_fingerprint(make, kty, size, curve) -> None:
    private_key = make()
    expected_der = private_key.private_bytes(DER, PKCS8, NOENC)
    results = set()
    for _name, data, password in encodings(private_key):
        target = keys.load_target_key(data, password=password)
        assert (target.kty, target.public.size, target.public.curve) == (kty, size, curve)
        assert target.wrapping_plaintext() == expected_der
        results.add(target.public.fingerprint)
    assert len(results) == 1


def test_rsa_jwk_thumbprint_matches_rfc7638_example() -> None:
    # RFC 7638 §3.1: the example RSA key and its thumbprint.
    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3o"
         "knjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu"
         "6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8aw"
         "apJzKnqDKgw")
    assert keys.jwk_thumbprint({"kty": "RSA", "n": n, "e": "AQAB"}) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rsa_fingerprint_uses_minimal_big_endian_integers() -> None:
    info = keys.describe_public_key(rsa_key(2048, 1).public_key())
    assert info.jwk["e"] == "AQAB"  # 65537 in 3 bytes, no leading zeros
    assert len(keys.b64url_decode(info.jwk["n"])) == 256


def test_ec_coordinates_are_fixed_length_for_p521() -> None:
    info = keys.describe_public_key(ec_key("P-521").public_key())
    assert len(keys.b64url_decode(info.jwk["x"])) == 66 and len(keys.b64url_decode(info.jwk["y"])) == 66


def test_fingerprint_is_sha256_of_canonical_required_members() -> None:
    info = keys.describe_public_key(ec_key("P-256").public_key())
    canonical = json.dumps({k: info.jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    digest = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    assert info.fingerprint == digest


def test_public_key_from_vault_jwk_gives_the_same_fingerprint() -> None:
    for key in (rsa_key(2048, 1), ec_key("P-384")):
        info = keys.describe_public_key(key.public_key())
        raw = {k: (keys.b64url_decode(v) if k not in ("kty", "crv") else v) for k, v in info.jwk.items()}
        raw["kty"] = raw["kty"] + "-HSM"
        assert keys.public_key_from_jwk(raw).fingerprint == info.fingerprint


@pytest.mark.parametrize("length", [16, 24, 32])
def test_raw_aes_keys(length: int) -> None:
    target = keys.load_target_key(bytes(range(length)), kty="oct")
    assert (target.kty, target.public.size, target.wrapping_plaintext()) == ("oct", length * 8, bytes(range(length)))


@pytest.mark.parametrize("length", [0, 8, 15, 17, 31, 33, 64])
def test_oct_keys_of_the_wrong_length_are_refused(length: int) -> None:
    with pytest.raises(KeyMaterialError, match=f"16, 24 or 32 bytes, got {length}"):
        keys.load_target_key(bytes(length), kty="oct")


def _pkcs8(key) -> bytes:
    return key.private_bytes(PEM, PKCS8, NOENC)


@pytest.mark.parametrize("make,match", [
    (lambda: _pkcs8(rsa_key(1024)), "1024 bits is not supported"),
    (lambda: _pkcs8(ec.generate_private_key(ec.SECP224R1())), "curve secp224r1 is not supported"),
    (lambda: _pkcs8(ec.generate_private_key(ec.BrainpoolP256R1())), "brainpoolP256r1 is not supported"),
    (lambda: _pkcs8(ed25519.Ed25519PrivateKey.generate()), "Ed25519 keys are not supported"),
    (lambda: _pkcs8(x25519.X25519PrivateKey.generate()), "X25519 keys are not supported"),
    (lambda: _pkcs8(dsa.generate_private_key(2048)), "DSA keys are not supported"),
    (lambda: b"", "the file is empty"),
    (lambda: b"not a key at all", "not a PEM or DER private key"),
    (lambda: _pkcs8(ec_key("P-256"))[:120], "not a readable PEM private key"),
    (lambda: ec_key("P-256").private_bytes(DER, PKCS8, NOENC)[:-5], "not a PEM or DER private key"),
    (lambda: ec_key("P-256").public_key().public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
     "holds a public key"),
    (lambda: ec_key("P-256").public_key().public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo),
     "holds a public key"),
])
def test_refusals_are_clear(make, match: str) -> None:
    with pytest.raises(KeyMaterialError, match=match):
        keys.load_target_key(make())


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
def test_dh_keys_are_refused() -> None:
    params = dh.generate_parameters(generator=2, key_size=512)
    with pytest.raises(KeyMaterialError, match="not supported"):
        keys.load_target_key(_pkcs8(params.generate_private_key()))


def test_password_problems() -> None:
    encrypted = rsa_key(2048, 1).private_bytes(PEM, PKCS8, serialization.BestAvailableEncryption(b"right"))
    with pytest.raises(KeyMaterialError, match="wrong password"):
        keys.load_target_key(encrypted, password=b"wrong")
    with pytest.raises(KeyMaterialError, match="encrypted and no password"):
        keys.load_target_key(encrypted)
    with pytest.raises(KeyMaterialError, match="password was given but the key is not encrypted"):
        keys.load_target_key(_pkcs8(rsa_key(2048, 1)), password=b"unneeded")


def test_asked_type_must_agree_with_material() -> None:
    with pytest.raises(KeyMaterialError, match="key type EC was asked for but the file holds an RSA key"):
        keys.load_target_key(_pkcs8(rsa_key(2048, 1)), kty="EC")


def test_errors_and_reprs_never_show_key_bytes() -> None:
    private_key = rsa_key(2048, 1)
    target = keys.load_target_key(_pkcs8(private_key))
    der_hex = target.wrapping_plaintext().hex()
    assert der_hex[:64] not in repr(target) and "MII" not in repr(target)
    with pytest.raises(KeyMaterialError) as caught:
        keys.load_target_key(_pkcs8(private_key)[:-40])
    assert "MII" not in str(caught.value)


def test_unwrapped_plaintext_must_be_one_pkcs8_structure() -> None:
    key = ec_key("P-256")
    pkcs8 = key.private_bytes(DER, PKCS8, NOENC)
    assert keys.target_key_from_plaintext(pkcs8, "EC").public.curve == "P-256"
    for bad in (pkcs8 + b"\x00", key.private_bytes(DER, TRAD, NOENC),
                rsa_key(2048, 1).private_bytes(DER, TRAD, NOENC)):
        with pytest.raises(KeyMaterialError):
            keys.target_key_from_plaintext(bad, "EC")


def test_kek_loading_accepts_public_pem_and_refuses_ec() -> None:
    pem = rsa_key(2048).public_key().public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert keys.load_kek_public_key(pem).key_size == 2048
    from byok_component.errors import KekError
    with pytest.raises(KekError, match="must be an RSA key"):
        keys.load_kek_public_key(ec_key("P-256").public_key().public_bytes(
            PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(KekError, match="not a PEM or DER RSA public key"):
        keys.load_kek_public_key(b"garbage")


def test_rsa_numbers_must_agree_without_the_costly_prime_tests() -> None:
    """Loading skips OpenSSL's primality tests (seconds per RSA-4096 key in every preview) but not consistency."""
    good = rsa_key(2048)
    numbers = good.private_numbers()
    assert keys.load_target_key(keys.private_key_pem(good)).public.size == 2048
    for bad in (
        rsa.RSAPrivateNumbers(numbers.p, numbers.q, numbers.d + 2, numbers.dmp1, numbers.dmq1, numbers.iqmp,
                              numbers.public_numbers),
        rsa.RSAPrivateNumbers(numbers.p, numbers.q, numbers.d, numbers.dmp1 ^ 2, numbers.dmq1, numbers.iqmp,
                              numbers.public_numbers),
        rsa.RSAPrivateNumbers(numbers.p, numbers.q, numbers.d, numbers.dmp1, numbers.dmq1, numbers.iqmp + 1,
                              numbers.public_numbers),
    ):
        pem = keys.private_key_pem(bad.private_key(unsafe_skip_rsa_key_validation=True))
        with pytest.raises(KeyMaterialError, match="inconsistent"):
            keys.load_target_key(pem)
        with pytest.raises(KeyMaterialError):  # the local vault's full check refuses it too
            keys.load_target_key(pem, prime_check=True)
