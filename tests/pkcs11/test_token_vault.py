"""The documented production path with a token: `byok wrap --pkcs11` inside SoftHSM, `byok import` into the local
vault, and proof the vault now holds the token's key (it signs what the token's public key verifies; it encrypts
what the token decrypts). The key never exists in clear outside the token and the vault; no output shows it or
the PIN."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
from pathlib import Path
from typing import Iterator

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from byok_component import vault
from byok_component.cli import main
from tests.conftest import serve_vault
from tests.integration.conftest import TokenFileCredential
from tests.pkcs11.conftest import SoftHsm
from tests.secretscan import SecretSet, assert_no_secrets


@pytest.fixture(scope="module")
def vaults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A premium vault (RSA/EC) and a Managed HSM one (the only kind that takes AES keys)."""
    out = {}
    premium = serve_vault(tmp_path_factory.mktemp("pkcs11-premium"))
    hsm = serve_vault(tmp_path_factory.mktemp("pkcs11-mhsm"), sku="managedhsm")
    out["premium"], out["managedhsm"] = next(premium), next(hsm)
    yield out
    for gen in (premium, hsm):
        next(gen, None)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def held_material(local_vault, name: str) -> bytes:
    """What the test double stores for ``name`` (private bytes): only to search outputs for it."""
    db = sqlite3.connect(Path(local_vault.data_dir) / "vault.sqlite3")
    try:
        (private,) = db.execute("SELECT private FROM versions WHERE name = ? ORDER BY seq DESC", (name,)).fetchone()
    finally:
        db.close()
    return bytes(private)


def use(local_vault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYOK_CA_BUNDLE", local_vault.ca_cert)
    monkeypatch.setenv("BYOK_ACCESS_TOKEN_FILE", local_vault.token_file)
    monkeypatch.setenv("BYOK_RBAC_WAIT_SECONDS", "0")
    vault.clear_kek_cache()


def crypto_client(local_vault, kid: str):
    from azure.keyvault.keys.crypto import CryptographyClient
    return CryptographyClient(kid, TokenFileCredential(local_vault.token_file), verify_challenge_resource=False,
                              connection_verify=local_vault.ca_cert)


@pytest.mark.parametrize("kind", ["p384", "aes"])
def test_wrap_in_token_then_import_puts_the_tokens_key_in_the_vault(
        softhsm: SoftHsm, vaults: dict, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    local_vault = vaults["managedhsm" if kind == "aes" else "premium"]
    use(local_vault, monkeypatch)
    monkeypatch.setenv("OFFICER_PIN", softhsm.pin)
    url, suffix = local_vault.vault_url, secrets.token_hex(3)
    obj = softhsm.make_aes(f"aes-{suffix}") if kind == "aes" else softhsm.make_ec(f"p384-{suffix}", "P-384")
    outputs: list[str] = []

    code, out, err = run(capsys, "kek", "create", "--vault-url", url, "--name", f"kek-{suffix}", "--size", "2048")
    assert code == 0, err
    kek_id = out.strip()
    outputs += [out, err]
    kek_pem = tmp_path / "kek.pem"
    assert run(capsys, "kek", "download", "--vault-url", url, "--name", f"kek-{suffix}", "-o", str(kek_pem))[0] == 0

    # Phase 2: the key officer wraps inside the token; only the .byok and the public key are committed.
    wrap_args = ["wrap", "--kek-pem", str(kek_pem), "--kek-id", kek_id, "--pkcs11", softhsm.uri(obj),
                 "--pkcs11-module", softhsm.module, "--pin-env", "OFFICER_PIN", "-o", str(tmp_path / "key.byok")]
    if kind == "p384":
        wrap_args += ["--public-out", str(tmp_path / "key.pub.pem")]
    code, out, err = run(capsys, *wrap_args)
    assert code == 0, err
    assert "inside the token, CKM_RSA_PKCS_OAEP + CKM_AES_KEY_WRAP_PAD" in out
    from byok_component.keys import load_public_key
    assert out.rstrip().endswith(f"for KEK {load_public_key(kek_pem.read_bytes()).fingerprint}")  # to compare
    outputs += [out, err]

    # Phase 3: import.
    kty_args = ["--kty", "oct"] if kind == "aes" else ["--kty", "EC", "--curve", "P-384", "--ops", "sign", "verify"]
    code, out, err = run(capsys, "import", "--vault-url", url, "--name", f"target-{suffix}", "--byok-file",
                         str(tmp_path / "key.byok"), *kty_args, "--json")
    assert code == 0, err
    outputs += [out, err]
    kid = json.loads(out)["kid"]

    import PyKCS11 as P
    if kind == "p384":  # the vault signs; the token's public key verifies
        public = serialization.load_pem_public_key((tmp_path / "key.pub.pem").read_bytes())
        assert isinstance(public, ec.EllipticCurvePublicKey)
        digest = hashlib.sha384(b"signed in the vault").digest()
        signature = crypto_client(local_vault, kid).sign("ES384", digest).signature
        public.verify(utils.encode_dss_signature(int.from_bytes(signature[:48], "big"),
                                                 int.from_bytes(signature[48:], "big")),
                      digest, ec.ECDSA(utils.Prehashed(hashes.SHA384())))
    else:  # the vault encrypts; the token decrypts
        iv, message = os.urandom(16), os.urandom(32)
        sealed = crypto_client(local_vault, kid).encrypt("A256CBC", message, iv=iv).ciphertext
        with softhsm.session() as s:
            handle = s.findObjects([(P.CKA_LABEL, obj)])[0]
            assert bytes(s.decrypt(handle, sealed, P.Mechanism(P.CKM_AES_CBC, iv))) == message

    held = held_material(local_vault, f"target-{suffix}")
    found = SecretSet().add_password("pin", softhsm.pin).add_password("so_pin", softhsm.so_pin)
    if kind == "aes":
        found.add_bytes("aes", held)
    else:
        found.add_private_key("p384", serialization.load_der_private_key(held, None))
    files = [(tmp_path / "key.byok").read_bytes()] + ([(tmp_path / "key.pub.pem").read_bytes()]
                                                      if kind == "p384" else [])
    assert_no_secrets(outputs + files, found, "CLI output and committed files")


def test_wrap_refusing_p256_on_softhsm_26_is_one_line_and_writes_nothing(
        softhsm: SoftHsm, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import rsa_key
    from byok_component.keys import describe_public_key

    monkeypatch.setenv("BYOK_PKCS11_PIN", softhsm.pin)
    (tmp_path / "kek.pem").write_text(describe_public_key(rsa_key(2048, 15).public_key()).public_pem or "")
    obj = softhsm.make_ec(f"p256-{secrets.token_hex(3)}", "P-256")
    code, out, err = run(capsys, "wrap", "--kek-pem", str(tmp_path / "kek.pem"), "--kek-id",
                         "https://127.0.0.1:1/keys/kek/" + "0" * 32, "--pkcs11", softhsm.uri(obj),
                         "--pkcs11-module", softhsm.module, "-o", str(tmp_path / "key.byok"))
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("byok: error: --pkcs11: ") and "zero-pads" in err and "P-256" in err
    assert not (tmp_path / "key.byok").exists() and softhsm.pin not in err
    code, out, err = run(capsys, "pkcs11", "probe", softhsm.uri(obj), "--pkcs11-module", softhsm.module, "--json")
    report = json.loads(out)
    assert code == 1 and report["pads"] is True and report["key_ok"] is False  # SoftHSM 2.6.1
    assert err.count("\n") == 1 and "P-256" in err
    good = softhsm.make_ec(f"p384-{secrets.token_hex(3)}", "P-384")
    code, out, err = run(capsys, "pkcs11", "probe", softhsm.uri(good), "--pkcs11-module", softhsm.module)
    assert code == 0 and err == "" and "PADS" in out and "wraps exactly on this token" in out


def test_the_pin_is_never_a_command_line_argument(softhsm: SoftHsm, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["wrap", "--kek-pem", "k.pem", "--kek-id", "x", "--pkcs11", softhsm.uri("k"), "--pin", softhsm.pin,
              "-o", "x.byok"])
    assert caught.value.code == 2 and softhsm.pin not in capsys.readouterr().err
