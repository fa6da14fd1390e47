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
    assert report["kid"] == KID and report["sizes_fit_kek"] is True
    assert report["checked"] == "sizes fit this KEK; only the vault can prove the wrap (byok import)"
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


# --- issue 12: the KEK is bound, AES key text needs its encoding ---------------------------------------------------
def test_wrap_prints_the_kek_thumbprint_and_refuses_a_kek_that_is_not_the_pinned_one(tmp_path: Path, kek_files,
                                                                                     capsys) -> None:
    from byok_component.keys import describe_public_key
    _, kek_pub = kek_files
    thumbprint = describe_public_key(rsa_key(2048).public_key()).fingerprint
    (tmp_path / "ec.pem").write_bytes(private_key_pem(ec_key("P-256", 4)))
    argv = ["wrap", "--kek-pem", str(kek_pub), "--kek-id", KID, "--key", str(tmp_path / "ec.pem")]
    assert main([*argv, "-o", str(tmp_path / "a.byok"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["kek_fingerprint"], out["kek_pinned"]) == (thumbprint, False)
    assert main([*argv, "-o", str(tmp_path / "b.byok")]) == 0
    assert capsys.readouterr().out.rstrip().endswith(
        f"KEK NOT pinned: compare with the stack's kekFingerprint, for KEK {thumbprint}")
    assert main([*argv, "-o", str(tmp_path / "c.byok"), "--kek-fingerprint", thumbprint, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kek_pinned"] is True
    # A swapped KEK file (here: the target's own public key would not even load as a KEK; another RSA key does).
    swapped = tmp_path / "swapped.pem"
    swapped.write_bytes(rsa_key(2048, 9).public_key().public_bytes(serialization.Encoding.PEM,
                                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    assert main(["wrap", "--kek-pem", str(swapped), "--kek-id", KID, "--key", str(tmp_path / "ec.pem"),
                 "--kek-fingerprint", thumbprint, "-o", str(tmp_path / "d.byok")]) == 1
    err = capsys.readouterr().err
    assert f"--kek-fingerprint: the KEK from {swapped} has thumbprint" in err and f"not the pinned {thumbprint}" in err
    assert not (tmp_path / "d.byok").exists()
    # inspect: the same pin, and sizes reported as what they are
    assert main(["inspect", str(tmp_path / "a.byok"), "--kek-pem", str(swapped), "--kek-fingerprint", thumbprint]) == 1
    assert "not the pinned" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "a.byok"), "--kek-pem", str(swapped)]) == 0  # sizes fit any RSA-2048
    assert "only the vault can prove the wrap" in capsys.readouterr().out
    assert main(["wrap", "--kek-id", KID, "--key", str(tmp_path / "ec.pem"), "-o", str(tmp_path / "e.byok")]) == 1
    assert "--kek-pem: give the KEK as --kek-pem FILE, or --vault-url URL" in capsys.readouterr().err


def test_wrap_refuses_aes_key_text_without_its_encoding(tmp_path: Path, kek_files, capsys) -> None:
    _, kek_pub = kek_files
    key = bytes(range(40, 56))
    (tmp_path / "k.hex").write_text(key.hex() + "\n")  # openssl rand -hex 16 > k.hex
    argv = ["wrap", "--kek-pem", str(kek_pub), "--kek-id", KID, "--key", str(tmp_path / "k.hex"), "--kty", "oct"]
    assert main([*argv, "-o", str(tmp_path / "k.byok")]) == 1
    err = capsys.readouterr().err
    assert "hex of a 128-bit AES key" in err and key.hex() not in err and not (tmp_path / "k.byok").exists()
    assert main([*argv, "--key-encoding", "hex", "-o", str(tmp_path / "k.byok")]) == 0
    assert ": AES-128 (oct) key, fingerprint" in capsys.readouterr().out
    blob = TransferBlob.parse((tmp_path / "k.byok").read_bytes())
    assert wrap.unwrap(rsa_key(2048), blob.ciphertext) == key
