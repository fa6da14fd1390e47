"""CKM_RSA_AES_KEY_WRAP: RFC 5649 known answers, round trips, sizes, refusals."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from byok_component import wrap
from byok_component.errors import KekError, UnwrapError
from byok_component.keys import load_target_key, private_key_pem
from tests.conftest import ec_key, rsa_key

# RFC 5649 §6, the two published examples (KEK, plaintext key, wrapped key).
RFC5649_KEK = bytes.fromhex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
RFC5649_VECTORS = [
    ("c37b7e6492584340bed12207808941155068f738",
     "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"),
    ("466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"),
]


@pytest.mark.parametrize("plaintext,wrapped", RFC5649_VECTORS)
def test_kwp_primitive_matches_rfc5649_known_answers(plaintext: str, wrapped: str) -> None:
    assert aes_key_wrap_with_padding(RFC5649_KEK, bytes.fromhex(plaintext)).hex() == wrapped


@pytest.mark.parametrize("plaintext", [p for p, _ in RFC5649_VECTORS])
def test_kwp_length_formula_matches_rfc5649(plaintext: str) -> None:
    n = len(bytes.fromhex(plaintext))
    assert wrap.kwp_length(n) == len(aes_key_wrap_with_padding(RFC5649_KEK, bytes.fromhex(plaintext)))


TARGETS = {
    "RSA-2048": lambda: private_key_pem(rsa_key(2048, 1)),
    "RSA-3072": lambda: private_key_pem(rsa_key(3072, 1)),
    "RSA-4096": lambda: private_key_pem(rsa_key(4096, 1)),
    "EC-P-256": lambda: private_key_pem(ec_key("P-256")),
    "EC-P-384": lambda: private_key_pem(ec_key("P-384")),
    "EC-P-521": lambda: private_key_pem(ec_key("P-521")),
    "EC-P-256K": lambda: private_key_pem(ec_key("P-256K")),
}


@pytest.mark.parametrize("kek_bits", [2048, 3072, 4096])
@pytest.mark.parametrize("target", list(TARGETS) + ["oct-128", "oct-192", "oct-256"])
def test_round_trip_every_key_type_and_kek_size(target: str, kek_bits: int) -> None:
    kek = rsa_key(kek_bits)
    if target.startswith("oct"):
        key = load_target_key(bytes(range(int(target[4:]) // 8)), kty="oct")
    else:
        key = load_target_key(TARGETS[target]())
    ciphertext = wrap.wrap(kek.public_key(), key.wrapping_plaintext())
    # Layout: OAEP output is exactly the modulus length; the KWP part follows (spec §1.4).
    assert len(ciphertext) == kek_bits // 8 + wrap.kwp_length(len(key.wrapping_plaintext()))
    assert wrap.unwrap(kek, ciphertext) == key.wrapping_plaintext()


def test_seed_figure_4096_bit_kek_and_256_bit_key_is_552_bytes() -> None:
    ciphertext = wrap.wrap(rsa_key(4096).public_key(), bytes(32))
    assert len(ciphertext) == 552


def test_each_wrap_uses_a_fresh_aes_key() -> None:
    kek = rsa_key(2048).public_key()
    first, second = wrap.wrap(kek, bytes(32)), wrap.wrap(kek, bytes(32))
    assert first[256:] != second[256:]  # different ephemeral AES keys -> different KWP outputs


@pytest.mark.parametrize("bad_kek,match", [
    (lambda: rsa_key(1024).public_key(), "2048, 3072 or 4096 bits, got 1024"),
    (lambda: ec_key("P-256").public_key(), "must be an RSA key"),
])
def test_unusable_keks_are_refused(bad_kek, match: str) -> None:
    with pytest.raises(KekError, match=match):
        wrap.wrap(bad_kek(), bytes(32))


def test_private_kek_is_accepted_and_only_its_public_half_used() -> None:
    kek = rsa_key(2048)
    assert wrap.unwrap(kek, wrap.wrap(kek, b"k" * 32)) == b"k" * 32  # documented: check_kek takes the public half


def test_unwrap_with_another_kek_fails_cleanly() -> None:
    ciphertext = wrap.wrap(rsa_key(2048).public_key(), bytes(32))
    with pytest.raises(UnwrapError, match="does not decrypt under this KEK"):
        wrap.unwrap(rsa_key(2048, 2), ciphertext)


def test_tampered_kwp_part_fails_integrity() -> None:
    ciphertext = bytearray(wrap.wrap(rsa_key(2048).public_key(), bytes(32)))
    ciphertext[-1] ^= 1
    with pytest.raises(UnwrapError, match="integrity"):
        wrap.unwrap(rsa_key(2048), bytes(ciphertext))


@pytest.mark.parametrize("length", [0, 255, 256, 256 + 8, 256 + 17])
def test_truncated_or_misaligned_ciphertext_is_refused(length: int) -> None:
    with pytest.raises(UnwrapError, match="does not fit a 2048-bit KEK"):
        wrap.unwrap(rsa_key(2048), bytes(length))


def test_split_at_modulus_length() -> None:
    parts = wrap.split(bytes(512 + 40), 512)
    assert (len(parts.rsa_part), len(parts.kwp_part)) == (512, 40)
