"""The shared secret scanner finds every encoding it promises, and nothing in clean text."""

from __future__ import annotations

import base64
import json
import secrets

import pytest
from cryptography.hazmat.primitives import serialization

from tests.conftest import ec_key, rsa_key
from tests.secretscan import SecretSet, assert_no_secrets, find_secrets

PASSWORD = "pa55word-that-is-long-enough"


@pytest.fixture(scope="module")
def secret_set() -> SecretSet:
    return (SecretSet().add_private_key("rsa", rsa_key(2048)).add_private_key("ec", ec_key("P-256"))
            .add_password("password", PASSWORD).add_token("token", "eyJ0eXAiOiJKV1Qi." + "x" * 40)
            .add_bytes("aes", bytes(range(32))))


def _der(key: object, fmt: serialization.PrivateFormat) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())  # type: ignore


def test_clean_text_is_clean(secret_set: SecretSet) -> None:
    public = rsa_key(2048).public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
    haystack = {"public_key_pem": public.decode(), "fingerprint": "NHiT25dUXRuuHcHqNGmu4eEckCe_R6tX7UXvQj7zAkk",
                "noise": secrets.token_hex(2000)}
    assert find_secrets(haystack, secret_set) == []
    assert_no_secrets(json.dumps(haystack).encode(), secret_set)


@pytest.mark.parametrize("encode", [
    lambda der: der,
    lambda der: der.hex(),
    lambda der: der.hex().upper(),
    lambda der: base64.b64encode(b"x" + der).decode(),          # embedded at an odd offset
    lambda der: base64.urlsafe_b64encode(b"yz" + der + b"tail").decode().rstrip("="),
    lambda der: json.dumps({"blob": base64.b64encode(der).decode()}),
], ids=["raw", "hex", "HEX", "b64-offset1", "b64url-offset2", "json"])
@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL])
def test_der_in_any_encoding_is_found(secret_set: SecretSet, encode, fmt) -> None:  # type: ignore[no-untyped-def]
    assert "rsa:" in " ".join(find_secrets(encode(_der(rsa_key(2048), fmt)), secret_set))
    assert any(label.startswith("ec:") for label in find_secrets(encode(_der(ec_key("P-256"), fmt)), secret_set))


def test_pem_wrapped_or_json_escaped_is_found(secret_set: SecretSet) -> None:
    pem = rsa_key(2048).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()
    assert "rsa:pkcs8-der" in find_secrets(pem, secret_set)
    assert "rsa:pkcs8-der" in find_secrets(json.dumps({"k": pem}), secret_set)
    ec_pem = ec_key("P-256").private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()).decode()
    assert find_secrets(ec_pem, secret_set) == ["ec:ec-d"]
    rewrapped = "\n".join(pem.replace("\n", "")[i:i + 76] for i in range(0, len(pem) - 60, 76))
    assert find_secrets(rewrapped, secret_set)


@pytest.mark.parametrize("encode", [
    lambda n, size: str(n), lambda n, size: format(n, "x"), lambda n, size: format(n, "X"),
    lambda n, size: base64.urlsafe_b64encode(n.to_bytes(size, "big")).decode().rstrip("="),
    lambda n, size: n.to_bytes(size, "big"),
], ids=["decimal", "hex", "HEX", "jwk-b64url", "raw"])
def test_private_scalars_are_found(secret_set: SecretSet, encode) -> None:  # type: ignore[no-untyped-def]
    d = ec_key("P-256").private_numbers().private_value
    assert "ec:ec-d" in find_secrets(encode(d, 32), secret_set)
    rsa_d = rsa_key(2048).private_numbers().d
    assert "rsa:rsa-d" in find_secrets(encode(rsa_d, (rsa_d.bit_length() + 7) // 8), secret_set)


def test_passwords_tokens_and_raw_bytes(secret_set: SecretSet) -> None:
    assert find_secrets(f"error: bad {PASSWORD}!", secret_set) == ["password"]
    assert find_secrets(base64.b64encode(PASSWORD.encode()), secret_set) == ["password"]
    assert find_secrets("Authorization: Bearer eyJ0eXAiOiJKV1Qi." + "x" * 40, secret_set) == ["token"]
    assert find_secrets(bytes(range(32)).hex(), secret_set) == ["aes"]
    assert find_secrets(base64.b64encode(b"\0" + bytes(range(32))), secret_set) == ["aes"]
    with pytest.raises(AssertionError, match="leaks: password") as info:
        assert_no_secrets(PASSWORD, secret_set, "log")
    assert PASSWORD not in str(info.value)
    with pytest.raises(ValueError):
        SecretSet().add_password("short", "tiny")
