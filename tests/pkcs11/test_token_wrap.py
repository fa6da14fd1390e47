"""Wrapping inside a SoftHSM token: what comes out unwraps in software to the token's key, what the token would
get wrong is refused before anything is wrapped, and nothing secret is shown on the way."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from byok_component import pkcs11
from byok_component.errors import InputError, TokenError
from byok_component.keys import target_key_from_plaintext
from byok_component.pkcs11 import TokenKey, probe, public_info, rsa_aes_key_wrap_params, wrap_in_token
from byok_component.wrap import unwrap
from tests.conftest import rsa_key
from tests.pkcs11.conftest import SoftHsm


def softhsm_version() -> tuple[int, ...]:
    out = subprocess.run(["softhsm2-util", "--version"], capture_output=True, text=True, check=True).stdout
    return tuple(int(part) for part in out.strip().split(".")[:2])


def token_key(softhsm: SoftHsm, obj: str, kind: str | None = None, pin: str | None = None) -> TokenKey:
    return TokenKey.from_inputs(softhsm.uri(obj, kind), softhsm.module, pin)


def test_probe_sees_softhsm_26_pad_and_caches_the_verdict(softhsm: SoftHsm, pin_env: str, label) -> None:
    key = token_key(softhsm, softhsm.make_aes(label("probe")))
    verdict = probe(key)
    assert verdict.mechanism == "CKM_RSA_PKCS_OAEP + CKM_AES_KEY_WRAP_PAD"  # 2.6.1 has neither 0x1054 nor 0x210B
    if softhsm_version() < (2, 7):
        assert (verdict.exact, verdict.pads) == (False, True)
        assert "13-byte test secret" in verdict.detail and "unwrapped as 16 bytes" in verdict.detail
    else:  # 2.7.0 fixed the padding
        assert (verdict.exact, verdict.pads) == (True, False)
    assert probe(token_key(softhsm, key.uri.object or "")) is verdict  # cached per module and token


@pytest.mark.parametrize("kind", ["aes", "p384"])
def test_wrapped_in_token_unwraps_in_software_to_the_tokens_key(softhsm: SoftHsm, pin_env: str, label,
                                                               kind: str) -> None:
    kek = rsa_key(2048, 15)
    name = softhsm.make_aes(label(kind)) if kind == "aes" else softhsm.make_ec(label(kind), "P-384")
    key = token_key(softhsm, name)
    wrapped = wrap_in_token(key, kek.public_key())
    plaintext = unwrap(kek, wrapped.ciphertext)  # raises on any OAEP or RFC 5649 integrity failure
    target = target_key_from_plaintext(plaintext, wrapped.public.kty)  # strict: one PKCS#8, no trailing bytes
    assert target.public.fingerprint == wrapped.public.fingerprint or kind == "aes"
    assert wrapped.public.fingerprint == public_info(key).fingerprint
    if kind == "p384":
        assert len(plaintext) == 80  # SoftHSM's minimal RFC 5915 form (no parameters, no public key inside)
        assert wrapped.public.curve == "P-384" and len(wrapped.ciphertext) == 256 + 88
    else:  # the same AES key: the token and the unwrapped copy encrypt a block alike
        assert len(plaintext) == 32 and len(wrapped.ciphertext) == 256 + 40
        block = bytes(range(16))
        import PyKCS11 as P
        with softhsm.session() as s:
            handle = s.findObjects([(P.CKA_LABEL, name)])[0]
            in_token = bytes(s.encrypt(handle, block, P.Mechanism(P.CKM_AES_ECB)))
        encryptor = Cipher(algorithms.AES(plaintext), modes.ECB()).encryptor()
        assert encryptor.update(block) + encryptor.finalize() == in_token


def test_p256_is_refused_on_a_token_that_pads(softhsm: SoftHsm, pin_env: str, label) -> None:
    if softhsm_version() >= (2, 7):
        pytest.fail("this SoftHSM no longer pads: the P-256 case now wraps; update this test")
    key = token_key(softhsm, softhsm.make_ec(label("p256"), "P-256"))
    with pytest.raises(TokenError) as caught:
        wrap_in_token(key, rsa_key(2048, 15).public_key())
    message = str(caught.value)
    assert "\n" not in message and caught.value.input == "pkcs11_uri"
    assert "zero-pads" in message and "P-256, a 67-byte PKCS#8" in message and "as 72 bytes" in message
    assert "SoftHSM 2.7.0 or later" in message and "P-384" in message  # the fix


def test_rsa_is_refused_on_a_token_that_pads(softhsm: SoftHsm, pin_env: str, label) -> None:
    key = token_key(softhsm, softhsm.make_rsa(label("rsa")))
    with pytest.raises(TokenError, match="length of an RSA key's PKCS#8 inside it cannot be known"):
        wrap_in_token(key, rsa_key(2048, 15).public_key())


def test_a_key_that_is_not_extractable_is_refused_by_name(softhsm: SoftHsm, pin_env: str, label) -> None:
    key = token_key(softhsm, softhsm.make_aes(label("stuck"), extractable=False))
    with pytest.raises(TokenError, match=r"is not extractable \(CKA_EXTRACTABLE false\): no token will wrap it"):
        wrap_in_token(key, rsa_key(2048, 15).public_key())


def test_wrong_pin_is_named_and_never_shown(softhsm: SoftHsm, label) -> None:
    name = softhsm.make_aes(label("pin"))
    wrong = "wrong-" + softhsm.pin
    with pytest.raises(TokenError) as caught:
        wrap_in_token(token_key(softhsm, name, pin=wrong), rsa_key(2048, 15).public_key())
    assert caught.value.input == "pkcs11_pin" and "the PIN is incorrect" in str(caught.value)
    assert softhsm.pin not in str(caught.value) and wrong not in str(caught.value)
    assert softhsm.pin not in repr(token_key(softhsm, name, pin=softhsm.pin))


def test_no_pin_anywhere_is_one_line_naming_the_ways(softhsm: SoftHsm, label) -> None:
    with pytest.raises(InputError, match=r"no PIN for .*: give it as a secret input, in \$BYOK_PKCS11_PIN, or as a "
                                         "pin-source file"):
        wrap_in_token(token_key(softhsm, softhsm.make_aes(label("nopin"))), rsa_key(2048, 15).public_key())


def test_public_key_of_an_ec_key_is_read_without_the_pin(softhsm: SoftHsm, label) -> None:
    name = softhsm.make_ec(label("pub"), "P-384")
    info = public_info(token_key(softhsm, name))  # no PIN: the public object is public
    assert info.kty == "EC" and info.curve == "P-384" and info.public_pem


def test_rsa_aes_key_wrap_params_layout() -> None:
    """CK_RSA_AES_KEY_WRAP_PARAMS {ulAESKeyBits=256, pOAEPParams->{CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED,
    NULL, 0}} (PKCS#11 v2.40 §2.1.21, §2.1.8), as the one-call mechanism needs it."""
    params = rsa_aes_key_wrap_params()
    ulong = ctypes.sizeof(ctypes.c_ulong)
    assert len(params.raw) == ulong + ctypes.sizeof(ctypes.c_void_p)
    assert int.from_bytes(params.raw[:ulong], sys.byteorder) == 256
    pointer = int.from_bytes(params.raw[ulong:], sys.byteorder)
    oaep = pkcs11._CkOaepParams.from_address(pointer)
    assert (oaep.hashAlg, oaep.mgf, oaep.source, oaep.pSourceData, oaep.ulSourceDataLen) == (0x220, 1, 1, None, 0)
