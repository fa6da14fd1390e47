"""The minimal RFC 5915 form of an EC private key inside PKCS#8 — version and private key only, no parameters
and no public key in ECPrivateKey — is what SoftHSM (and other HSMs) wrap: 67 bytes for P-256, 80 for P-384,
against 138/185 from OpenSSL. Azure must take it (the optional fields are optional, RFC 5915 §3), so the local
vault's strict plaintext reader must too, and must still refuse trailing bytes."""

from __future__ import annotations

import pytest

from byok_component.errors import KeyMaterialError
from byok_component.keys import describe_public_key, target_key_from_plaintext
from byok_component.wrap import unwrap, wrap
from tests.conftest import ec_key, rsa_key

# AlgorithmIdentifier {id-ecPublicKey, namedCurve} (RFC 5480 §2.1.1), DER.
_ALG = {"P-256": bytes.fromhex("301306072a8648ce3d020106082a8648ce3d030107"),
        "P-384": bytes.fromhex("301006072a8648ce3d020106052b81040022")}


def _tlv(tag: int, body: bytes) -> bytes:
    assert len(body) < 128
    return bytes([tag, len(body)]) + body


def minimal_pkcs8(curve: str, index: int) -> bytes:
    key = ec_key(curve, index)
    size = (key.curve.key_size + 7) // 8
    ec_private_key = _tlv(0x30, bytes.fromhex("020101") + _tlv(0x04, key.private_numbers().private_value.to_bytes(
        size, "big")))
    return _tlv(0x30, bytes.fromhex("020100") + _ALG[curve] + _tlv(0x04, ec_private_key))


@pytest.mark.parametrize("curve, length", [("P-256", 67), ("P-384", 80)])
def test_minimal_form_is_read_as_the_same_key(curve: str, length: int) -> None:
    der = minimal_pkcs8(curve, 21)
    assert len(der) == length
    target = target_key_from_plaintext(der, "EC")
    assert target.public.fingerprint == describe_public_key(ec_key(curve, 21).public_key()).fingerprint
    kek = rsa_key(2048, 21)
    assert target_key_from_plaintext(unwrap(kek, wrap(kek.public_key(), der)), "EC").public == target.public


def test_minimal_form_zero_padded_as_softhsm_26_wraps_it_is_refused() -> None:
    der = minimal_pkcs8("P-256", 21)
    with pytest.raises(KeyMaterialError, match="not a single PKCS#8 DER structure"):
        target_key_from_plaintext(der + b"\x00" * 5, "EC")
