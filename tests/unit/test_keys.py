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
from tests.conftest import ec_key, pem_armour, rsa_key

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


# --- issue 12: AES key files that hold text ----------------------------------------------------------------------
AES_128 = bytes(range(100, 116))


@pytest.mark.parametrize("text,guess", [
    (AES_128.hex().encode(), "hex of a 128-bit"),                      # `openssl rand -hex 16 | tr -d '\n'`: 32 bytes
    (AES_128.hex().encode() + b"\n", "hex of a 128-bit"),              # `openssl rand -hex 16 > k`
    (base64.b64encode(AES_128 + AES_128[:8]), "base64 of a 192-bit"),  # 32 bytes: AES-256 if read raw
    (base64.b64encode(AES_128) + b"\n", "base64 of a 128-bit"),
    (b"correct horse battery staple!!!", "text, not raw key bytes"),  # 32 printable bytes
])
def test_aes_key_text_is_refused_unless_its_encoding_is_declared(text: bytes, guess: str) -> None:
    with pytest.raises(KeyMaterialError, match=f"{guess}.*key_encoding") as caught:
        keys.load_target_key(text, kty="oct")
    assert text.decode().strip() not in str(caught.value)  # never echoes the key text


def test_aes_key_encodings_decode_to_the_key() -> None:
    hex_text, b64_text = AES_128.hex().encode() + b"\n", base64.b64encode(AES_128) + b"\n"
    for data, encoding in ((hex_text, "hex"), (hex_text.upper(), "hex"), (b64_text, "base64"),
                           (base64.urlsafe_b64encode(AES_128).rstrip(b"="), "base64"), (AES_128, "raw")):
        target = keys.load_target_key(data, encoding=encoding)
        assert (target.kty, target.public.size, target.wrapping_plaintext()) == ("oct", 128, AES_128), encoding
    # raw declared: the 32 text bytes ARE the key (the user said so)
    assert keys.load_target_key(AES_128.hex().encode(), kty="oct", encoding="raw").public.size == 256
    with pytest.raises(KeyMaterialError, match="is not hex text"):
        keys.load_target_key(b64_text, encoding="hex")
    with pytest.raises(KeyMaterialError, match="decodes to 8 bytes"):
        keys.load_target_key(AES_128[:8].hex().encode(), encoding="hex")
    with pytest.raises(KeyMaterialError, match="AES key files only"):
        keys.load_target_key(hex_text, kty="RSA", encoding="hex")


# --- issue 12: RSA sanity -----------------------------------------------------------------------------------------
def _numbers_pem(p: int, q: int, e: int, d: int | None = None) -> bytes:
    import math
    lam = math.lcm(p - 1, q - 1)
    d = d if d is not None else pow(e, -1, lam)
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p),
                                    rsa.RSAPublicNumbers(e, p * q))
    return keys.private_key_pem(numbers.private_key(unsafe_skip_rsa_key_validation=True))


def _der_int(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return b"\x02" + _der_len(len(body)) + body


def _der_len(size: int) -> bytes:
    if size < 128:
        return bytes([size])
    return b"\x81" + bytes([size]) if size < 256 else b"\x82" + size.to_bytes(2, "big")


def _pkcs1(*integers: int, label: bytes) -> bytes:
    """A PKCS#1 RSAPrivateKey/RSAPublicKey (RFC 8017 A.1) built by hand: pyca will not build e = 1 or e = 4."""
    body = b"".join(_der_int(i) for i in integers)
    der = b"\x30" + _der_len(len(body)) + body
    return pem_armour(base64.encodebytes(der).strip(), label)


def test_rsa_exponent_one_or_even_is_refused() -> None:
    import math
    numbers = rsa_key(2048).private_numbers()
    p, q = numbers.p, numbers.q
    d = 1 + math.lcm(p - 1, q - 1)  # e = 1: d = 1 (mod lambda) keeps every relation the cheap check tests
    e_one = _pkcs1(0, p * q, 1, d, p, q, d % (p - 1), d % (q - 1), pow(q, -1, p), label=b"RSA PRIVATE KEY")
    with pytest.raises(KeyMaterialError, match="e = 1 is not valid"):
        keys.load_target_key(e_one)
    d = 3  # e = 4: no inverse exists; whatever d is, the even exponent is what gets named
    e_even = _pkcs1(0, p * q, 4, d, p, q, d % (p - 1), d % (q - 1), pow(q, -1, p), label=b"RSA PRIVATE KEY")
    with pytest.raises(KeyMaterialError, match="e = 4 is not valid"):
        keys.load_target_key(e_even)
    for e in (1, 4):  # public keys: OpenSSL itself refuses to load these
        with pytest.raises(KeyMaterialError, match="not a PEM or DER public key"):
            keys.load_public_key(_pkcs1(p * q, e, label=b"RSA PUBLIC KEY"))


def test_a_composite_prime_is_refused_on_the_create_path_not_in_previews() -> None:
    """p = p1*p2 with consistent d, dp, dq, qinv: the cheap relations hold, only a primality test sees it."""
    small = [rsa_key(1024, i).private_numbers() for i in range(2)]
    q = rsa_key(2048, 3).private_numbers().p
    p = small[0].p * small[1].q
    pem = _numbers_pem(p, q, 65537)
    assert keys.load_target_key(pem).public.size == 2048  # a preview stays cheap: relations only
    with pytest.raises(KeyMaterialError, match="p or q is not prime"):
        keys.load_target_key(pem, prime_check=True)


def _as_pss(der: bytes) -> bytes:
    """Swap rsaEncryption+NULL for id-RSASSA-PSS (no parameters, RFC 4055 §3.1) in a PKCS#8 or SPKI DER."""
    old = bytes.fromhex("300d06092a864886f70d0101010500")
    new = bytes.fromhex("300b06092a864886f70d01010a")
    assert der[:2] == b"\x30\x82" and old in der[:32]
    body = der[4:].replace(old, new, 1)
    return b"\x30\x82" + len(body).to_bytes(2, "big") + body


def test_rsa_pss_restricted_keys_are_refused_with_a_way_out() -> None:
    key = rsa_key(2048)
    pss_private = _as_pss(key.private_bytes(DER, PKCS8, NOENC))
    pss_public = _as_pss(key.public_key().public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    armoured = b"-----BEGIN PRIVATE KEY-----\n" + base64.encodebytes(pss_private) + b"-----END PRIVATE KEY-----\n"
    for data in (pss_private, armoured):
        with pytest.raises(KeyMaterialError, match="RSA-PSS-restricted.*openssl rsa"):
            keys.load_target_key(data)
    with pytest.raises(KeyMaterialError, match="RSA-PSS-restricted"):
        keys.load_public_key(pss_public)


def test_pem_with_two_keys_is_refused_and_leading_text_or_certificates_are_fine() -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    one, two = ec_key("P-256", 1), ec_key("P-256", 2)
    first, second = one.private_bytes(PEM, PKCS8, NOENC), two.private_bytes(PEM, PKCS8, NOENC)
    with pytest.raises(KeyMaterialError, match="holds 2 keys"):
        keys.load_target_key(first + second)
    # OpenSSL (and pyca) read a BEGIN/END line with trailing blanks: such a first key must count, not be skipped
    # in favour of the second one (`openssl pkey` would read the first).
    blank_after = first.replace(b"-----BEGIN PRIVATE KEY-----\n", b"-----BEGIN PRIVATE KEY----- \t\n", 1)
    with pytest.raises(KeyMaterialError, match="holds 2 keys"):
        keys.load_target_key(blank_after + second)
    alone = keys.load_target_key(blank_after).public.fingerprint
    assert alone == keys.describe_public_key(one.public_key()).fingerprint
    with pytest.raises(KeyMaterialError, match="holds 2 keys"):
        keys.load_public_key(one.public_key().public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                             + first)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(one.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(one, hashes.SHA256()).public_bytes(PEM))
    # `openssl pkcs12 -nodes` output: Bag Attributes lines, the key, then the certificate.
    pkcs12_dump = b"Bag Attributes\n    localKeyID: 01 02 03\nKey Attributes: <No Attributes>\n" + first + \
        b"Bag Attributes\n    friendlyName: t\nsubject=CN = t\n" + cert
    expected = keys.describe_public_key(one.public_key()).fingerprint
    assert keys.load_target_key(pkcs12_dump).public.fingerprint == expected
    assert keys.load_public_key(pkcs12_dump).fingerprint == expected
    with pytest.raises(KeyMaterialError, match="certificate but no key.*x509"):
        keys.load_public_key(cert)
