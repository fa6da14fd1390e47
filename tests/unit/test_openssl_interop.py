"""The openssl command line as an independent implementation of CKM_RSA_AES_KEY_WRAP, both ways."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from byok_component import wrap
from byok_component.keys import load_target_key, private_key_pem
from tests.conftest import ec_key, rsa_key

OAEP_SHA1 = ["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1", "-pkeyopt", "rsa_mgf1_md:sha1"]

if shutil.which("openssl") is None:  # the image ships it; a missing openssl is a broken environment
    raise RuntimeError("the openssl command line is required for these tests")


def run(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def openssl_unwrap(tmp: Path, kek_pem: Path, ciphertext: bytes, modulus: int) -> bytes:
    (tmp / "rsa.bin").write_bytes(ciphertext[:modulus])
    (tmp / "kwp.bin").write_bytes(ciphertext[modulus:])
    run("pkeyutl", "-decrypt", "-inkey", str(kek_pem), *OAEP_SHA1, "-in", str(tmp / "rsa.bin"),
        "-out", str(tmp / "aes.bin"))
    aes = (tmp / "aes.bin").read_bytes()
    assert len(aes) == 32
    run("enc", "-d", "-id-aes256-wrap-pad", "-iv", "A65959A6", "-K", aes.hex(), "-in", str(tmp / "kwp.bin"),
        "-out", str(tmp / "plain.bin"))
    return (tmp / "plain.bin").read_bytes()


def openssl_wrap(tmp: Path, kek_public_pem: Path, plaintext: bytes) -> bytes:
    (tmp / "aes.bin").write_bytes(bytes.fromhex("00112233445566778899aabbccddeeff" * 2))
    (tmp / "plain.bin").write_bytes(plaintext)
    run("pkeyutl", "-encrypt", "-pubin", "-inkey", str(kek_public_pem), *OAEP_SHA1, "-in", str(tmp / "aes.bin"),
        "-out", str(tmp / "rsa.bin"))
    run("enc", "-e", "-id-aes256-wrap-pad", "-iv", "A65959A6", "-K", "00112233445566778899aabbccddeeff" * 2,
        "-in", str(tmp / "plain.bin"), "-out", str(tmp / "kwp.bin"))
    return (tmp / "rsa.bin").read_bytes() + (tmp / "kwp.bin").read_bytes()


CASES = [
    ("RSA-2048", lambda: private_key_pem(rsa_key(2048, 1)), None),
    ("RSA-4096", lambda: private_key_pem(rsa_key(4096, 1)), None),
    ("EC-P-256", lambda: private_key_pem(ec_key("P-256")), None),
    ("EC-P-521", lambda: private_key_pem(ec_key("P-521")), None),
    ("EC-P-256K", lambda: private_key_pem(ec_key("P-256K")), None),
    ("oct-256", lambda: bytes(range(32)), "oct"),
    ("oct-128", lambda: bytes(range(16)), "oct"),
]


@pytest.mark.parametrize("kek_bits", [2048, 4096])
@pytest.mark.parametrize("name,material,kty", CASES, ids=[c[0] for c in CASES])
def test_openssl_unwraps_what_we_wrap(tmp_path: Path, kek_bits: int, name: str, material, kty) -> None:
    kek = rsa_key(kek_bits)
    kek_pem = tmp_path / "kek.pem"
    kek_pem.write_bytes(private_key_pem(kek))
    target = load_target_key(material(), kty=kty)
    ciphertext = wrap.wrap(kek.public_key(), target.wrapping_plaintext())
    assert openssl_unwrap(tmp_path, kek_pem, ciphertext, kek_bits // 8) == target.wrapping_plaintext()


@pytest.mark.parametrize("kek_bits", [2048, 3072])
@pytest.mark.parametrize("name,material,kty", CASES, ids=[c[0] for c in CASES])
def test_we_unwrap_what_openssl_wraps(tmp_path: Path, kek_bits: int, name: str, material, kty) -> None:
    kek = rsa_key(kek_bits)
    public_pem = tmp_path / "kek.pub.pem"
    public_pem.write_bytes(kek.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    target = load_target_key(material(), kty=kty)
    ciphertext = openssl_wrap(tmp_path, public_pem, target.wrapping_plaintext())
    assert wrap.unwrap(kek, ciphertext) == target.wrapping_plaintext()
