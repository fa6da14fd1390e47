"""The offline ``byok`` commands: keygen, wrap, blob, inspect — results, refusals, nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from byok_component import wrap
from byok_component.blob import TransferBlob
from byok_component.cli import main
from byok_component.keys import load_target_key, private_key_pem
from tests.conftest import pem_armour, ec_key, rsa_key

KID = "https://127.0.0.1:8443/keys/kek/0123456789abcdef0123456789abcdef"


@pytest.fixture()
def kek_files(tmp_path: Path) -> tuple[Path, Path]:
    private = tmp_path / "kek.pem"
    private.write_bytes(private_key_pem(rsa_key(2048)))
    public = tmp_path / "kek.pub.pem"
    public.write_bytes(rsa_key(2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def test_keygen_wrap_inspect_round_trip(tmp_path: Path, kek_files, capsys, monkeypatch) -> None:
    _, kek_pub = kek_files
    monkeypatch.setenv("KEY_PW", "s3cret-pass")
    key = tmp_path / "ec.pem"
    assert main(["keygen", "--kty", "EC", "--curve", "P-384", "--password-env", "KEY_PW", "-o", str(key),
                 "--public-out", str(tmp_path / "ec.pub.pem")]) == 0
    assert key.stat().st_mode & 0o777 == 0o600
    assert b"ENCRYPTED" in key.read_bytes()
    out = tmp_path / "ec.byok"
    assert main(["wrap", "--kek-pem", str(kek_pub), "--kek-id", KID, "--key", str(key), "--password-env", "KEY_PW",
                 "-o", str(out)]) == 0
    blob = TransferBlob.parse(out.read_bytes())
    plaintext = wrap.unwrap(rsa_key(2048), blob.ciphertext)
    assert plaintext == load_target_key(key.read_bytes(), password=b"s3cret-pass").wrapping_plaintext()
    capsys.readouterr()
    assert main(["inspect", str(out), "--kek-pem", str(kek_pub), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kid"] == KID and report["fits_kek"] is True
    assert (report["rsa_part_bytes"], report["kwp_part_bytes"]) == (256, 200)  # P-384 PKCS#8 -> 200 (spec §1.6)


def test_wrap_oct_key(tmp_path: Path, kek_files) -> None:
    _, kek_pub = kek_files
    assert main(["keygen", "--kty", "oct", "--size", "256", "-o", str(tmp_path / "k.bin")]) == 0
    assert main(["wrap", "--kek-pem", str(kek_pub), "--kek-id", KID, "--key", str(tmp_path / "k.bin"),
                 "--kty", "oct", "-o", str(tmp_path / "k.byok")]) == 0
    blob = TransferBlob.parse((tmp_path / "k.byok").read_bytes())
    assert wrap.unwrap(rsa_key(2048), blob.ciphertext) == (tmp_path / "k.bin").read_bytes()


def test_blob_packages_foreign_ciphertext_unchanged(tmp_path: Path, kek_files, capsys) -> None:
    _, kek_pub = kek_files
    ciphertext = wrap.wrap(rsa_key(2048).public_key(), bytes(32))
    (tmp_path / "wrapped.bin").write_bytes(ciphertext)
    assert main(["blob", "--kek-id", KID, "--wrapped", str(tmp_path / "wrapped.bin"), "--kek-pem", str(kek_pub),
                 "-o", str(tmp_path / "x.byok")]) == 0
    assert TransferBlob.parse((tmp_path / "x.byok").read_bytes()).ciphertext == ciphertext


def refusals(tmp: Path, kek_private: Path, kek_public: Path) -> list[tuple[list[str], str]]:
    rsa1024 = tmp / "rsa1024.pem"
    rsa1024.write_bytes(private_key_pem(rsa_key(1024)))
    ec_pem = tmp / "ec.pem"
    ec_pem.write_bytes(private_key_pem(ec_key("P-256")))
    enc = tmp / "enc.pem"
    enc.write_bytes(private_key_pem(ec_key("P-256"), b"right-password"))
    garbage = tmp / "garbage.pem"
    garbage.write_bytes(pem_armour(b"not base64 at all"))
    truncated = tmp / "trunc.pem"
    truncated.write_bytes(private_key_pem(ec_key("P-256"))[:100])
    short_aes = tmp / "short.bin"
    short_aes.write_bytes(bytes(20))
    small_kek = tmp / "kek1024.pem"
    small_kek.write_bytes(private_key_pem(rsa_key(1024)))
    bad_blob = tmp / "bad.byok"
    bad_blob.write_text('{"schema_version":"1.0.0"}')
    w = ["wrap", "--kek-pem", str(kek_public), "--kek-id", KID]
    return [
        ([*w, "--key", str(rsa1024)], "--key: RSA key of 1024 bits is not supported"),
        ([*w, "--key", str(enc)], "--key: the key is encrypted and no password was given"),
        ([*w, "--key", str(enc), "--password-env", "WRONG_PW"], "--key: wrong password"),
        ([*w, "--key", str(enc), "--password-env", "UNSET_VAR"], "--password-env: environment variable UNSET_VAR"),
        ([*w, "--key", str(garbage)], "--key: not a readable PEM private key"),
        ([*w, "--key", str(truncated)], "--key: not a readable PEM private key"),
        ([*w, "--key", str(tmp / "missing.pem")], "--key: file"),
        ([*w, "--key", str(short_aes), "--kty", "oct"], "--key: a raw AES key must be 16, 24 or 32 bytes, got 20"),
        ([*w, "--key", str(ec_pem), "--kty", "RSA"], "--key: key type RSA was asked for"),
        (["wrap", "--kek-pem", str(small_kek), "--kek-id", KID, "--key", str(ec_pem)],
         "--kek-pem: the KEK must be RSA 2048, 3072 or 4096 bits, got 1024"),
        (["wrap", "--kek-pem", str(ec_pem), "--kek-id", KID, "--key", str(ec_pem)], "--kek-pem: the KEK must be an RSA key"),
        (["wrap", "--kek-pem", str(kek_public), "--kek-id", KID.rsplit("/", 1)[0], "--key", str(ec_pem)],
         "--kek-id: must include the key version"),
        (["blob", "--kek-id", KID, "--wrapped", str(short_aes), "--kek-pem", str(kek_public)],
         "--wrapped: ciphertext of 20 bytes does not fit a 2048-bit KEK"),
        (["inspect", str(bad_blob)], "header object"),
    ]


def test_refusals_are_one_line_name_the_input_and_leave_nothing(tmp_path: Path, kek_files, capsys,
                                                                monkeypatch) -> None:
    kek_private, kek_public = kek_files
    monkeypatch.setenv("WRONG_PW", "not-the-password")
    cases = refusals(tmp_path, kek_private, kek_public)
    for argv, expected in cases:
        out = tmp_path / "out.byok"
        code = main([*argv, *(["-o", str(out)] if argv[0] != "inspect" else [])])
        err = capsys.readouterr().err
        assert code == 1, argv
        assert err.count("\n") == 1 and err.startswith("byok: error: ") and expected in err, (argv, err)
        assert "Traceback" not in err and "right-password" not in err and "not-the-password" not in err
        assert not out.exists(), argv
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.byok")]


def test_outputs_are_not_overwritten_without_force(tmp_path: Path, capsys) -> None:
    target = tmp_path / "k.pem"
    target.write_text("keep me")
    assert main(["keygen", "--kty", "EC", "-o", str(target)]) == 1
    assert "already exists" in capsys.readouterr().err and target.read_text() == "keep me"


def test_python_dash_m_is_the_same_command(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "byok_component", "keygen", "--kty", "EC", "-o",
                             str(tmp_path / "k.pem")], capture_output=True, text=True, env=os.environ.copy())
    assert result.returncode == 0 and "EC P-256 test key" in result.stdout
    result = subprocess.run([sys.executable, "-m", "byok_component", "inspect", str(tmp_path / "nope.byok")],
                            capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path, capsys) -> None:
    assert main(["--debug", "inspect", str(tmp_path / "nope.byok")]) == 1
    assert "Traceback" in capsys.readouterr().err
