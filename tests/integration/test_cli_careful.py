"""`byok import`, `verify`, `kek create` and `wrap --vault-url` as careful as the provider (issue 12, item 5).

Against local vaults over HTTPS with the real SDK; after each command the vault is inspected with the operator's
own SDK client (versions, enabled, material compared through pyca), and requests are counted at the vault.
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any, Iterator

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from byok_component import vault, verify
from byok_component.cli import main
from byok_component.keys import private_key_pem
from tests.conftest import ec_key, rsa_key, serve_vault
from tests.integration.conftest import make_key_client


@pytest.fixture()
def env(local_vault: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    point(local_vault, monkeypatch)
    return local_vault


def point(target: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYOK_CA_BUNDLE", target.ca_cert)
    monkeypatch.setenv("BYOK_ACCESS_TOKEN_FILE", target.token_file)
    monkeypatch.setenv("BYOK_RBAC_WAIT_SECONDS", "0")
    vault.clear_kek_cache()


def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("byok: error: ")]
    assert len(lines) == 1, err
    return lines[0]


def ec_files(tmp_path: Path, index: int) -> tuple[Path, Path]:
    key = ec_key("P-256", index)
    private, public = tmp_path / f"ec{index}.pem", tmp_path / f"ec{index}.pub.pem"
    private.write_bytes(private_key_pem(key))
    public.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return private, public


def public_numbers(kv: Any, name: str, version: str | None = None) -> tuple[int, int]:
    jwk = kv.get_key(name, version).key
    return int.from_bytes(jwk.x, "big"), int.from_bytes(jwk.y, "big")


def numbers_of(index: int) -> tuple[int, int]:
    point_ = ec_key("P-256", index).public_key().public_numbers()
    return point_.x, point_.y


@pytest.fixture()
def kek(env: Any, capsys: Any, unique_name: Any) -> str:
    code, out, err = run(capsys, "kek", "create", "--vault-url", env.vault_url, "--name", unique_name("kek"),
                         "--size", "2048", "--json")
    assert code == 0, err
    return json.loads(out)["kid"]


def wrap_for(capsys: Any, kek_id: str, vault_url: str, key: Path, out: Path) -> None:
    code, _, err = run(capsys, "wrap", "--vault-url", vault_url, "--kek-id", kek_id, "--key", str(key),
                       "-o", str(out))
    assert code == 0, err


def test_import_refuses_a_taken_name_and_a_second_import_of_the_same_file(env, kek, tmp_path, capsys, unique_name,
                                                                           key_client) -> None:
    url, name = env.vault_url, unique_name("taken")
    (one, one_pub), (two, two_pub) = ec_files(tmp_path, 21), ec_files(tmp_path, 22)
    wrap_for(capsys, kek, url, one, tmp_path / "one.byok")
    wrap_for(capsys, kek, url, two, tmp_path / "two.byok")
    base = ["import", "--vault-url", url, "--name", name]
    code, _, err = run(capsys, *base, "--byok-file", str(tmp_path / "one.byok"), "--public-key", str(one_pub))
    assert code == 0, err
    for byok_file, pub, expected in (("one.byok", one_pub, "imported from this very .byok file"),
                                     ("two.byok", two_pub, "holds other key material")):
        puts = sum(1 for method, _ in env.requests if method == "PUT")
        code, _, err = run(capsys, *base, "--byok-file", str(tmp_path / byok_file), "--public-key", str(pub))
        assert code == 1 and expected in error(err) and "--new-version" in error(err)
        assert sum(1 for method, _ in env.requests if method == "PUT") == puts  # nothing sent
        versions = list(key_client.list_properties_of_key_versions(name))
        assert len(versions) == 1 and public_numbers(key_client, name) == numbers_of(21)
    code, _, err = run(capsys, *base, "--byok-file", str(tmp_path / "two.byok"), "--public-key", str(two_pub),
                       "--new-version")
    assert code == 0, err
    assert len(list(key_client.list_properties_of_key_versions(name))) == 2
    assert public_numbers(key_client, name) == numbers_of(22)


def test_import_checks_the_kid_host_before_sending_anything(env, tmp_path, capsys, unique_name) -> None:
    one, one_pub = ec_files(tmp_path, 23)
    foreign = "https://contoso.vault.azure.net/keys/kek/" + "0" * 32
    kek_pem = tmp_path / "kek.pem"  # another vault's KEK, downloaded
    kek_pem.write_bytes(rsa_key(2048, 7).public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    assert run(capsys, "wrap", "--kek-pem", str(kek_pem), "--kek-id", foreign, "--key", str(one),
               "-o", str(tmp_path / "foreign.byok"))[0] == 0
    before = env.request_count
    code, _, err = run(capsys, "import", "--vault-url", env.vault_url, "--name", unique_name("host"),
                       "--byok-file", str(tmp_path / "foreign.byok"), "--public-key", str(one_pub))
    assert code == 1 and "--byok-file: was wrapped for KEK https://contoso.vault.azure.net" in error(err)
    assert "nothing was sent" in error(err) and env.request_count == before


def test_import_with_public_key_goes_live_only_when_it_matches(env, kek, tmp_path, capsys, unique_name,
                                                               key_client) -> None:
    url, name = env.vault_url, unique_name("checked")
    (one, one_pub), (_, two_pub) = ec_files(tmp_path, 24), ec_files(tmp_path, 25)
    wrap_for(capsys, kek, url, one, tmp_path / "one.byok")
    argv = ["import", "--vault-url", url, "--name", name, "--byok-file", str(tmp_path / "one.byok"),
            "--public-key", str(two_pub)]
    code, _, err = run(capsys, *argv)
    assert code == 1 and "holds other key material than --public-key" in error(err)
    assert "give the matching --byok-file and --public-key" in error(err) and "wrapped_key_file" not in error(err)
    held = key_client.get_key(name)
    assert held.properties.enabled is False and held.properties.tags[verify.UNVERIFIED_TAG] == verify.MISMATCH
    assert public_numbers(key_client, name) == numbers_of(24)
    code, _, err = run(capsys, *argv)  # the rerun says what happened and sends nothing
    assert code == 1 and "never shown to match" in error(err)
    assert len(list(key_client.list_properties_of_key_versions(name))) == 1
    # The public key that file really holds: that very version is compared and made live (as the provider does
    # with wrapped_key_file), not refused for ever nor imported a second time.
    code, out, err = run(capsys, *argv[:-1], str(one_pub))
    assert code == 0, err
    held = key_client.get_key(name)
    assert held.properties.enabled is True and verify.UNVERIFIED_TAG not in (held.properties.tags or {})
    assert len(list(key_client.list_properties_of_key_versions(name))) == 1 and held.id in out


def test_kek_create_refuses_an_existing_name(env, capsys, unique_name, key_client) -> None:
    name = unique_name("signing")
    key_client.create_ec_key(name, curve="P-256")
    code, _, err = run(capsys, "kek", "create", "--vault-url", env.vault_url, "--name", name, "--size", "2048")
    assert code == 1 and "already exists" in error(err) and "not a KEK" in error(err)
    versions = list(key_client.list_properties_of_key_versions(name))
    assert len(versions) == 1 and key_client.get_key(name).key_type == "EC"


def test_verify_with_a_public_key_reports_material_enabled_and_ops(env, kek, tmp_path, capsys, unique_name,
                                                                    key_client) -> None:
    url, name = env.vault_url, unique_name("verify")
    (one, one_pub), (_, two_pub) = ec_files(tmp_path, 26), ec_files(tmp_path, 27)
    wrap_for(capsys, kek, url, one, tmp_path / "one.byok")
    assert run(capsys, "import", "--vault-url", url, "--name", name, "--byok-file", str(tmp_path / "one.byok"),
               "--public-key", str(one_pub), "--ops", "sign", "verify")[0] == 0
    base = ["verify", "--vault-url", url, "--name", name]
    code, out, _ = run(capsys, *base, "--public-key", str(one_pub), "--ops", "sign", "verify", "--json")
    assert code == 0 and json.loads(out)["verified"] is True and json.loads(out)["material"] == "same"
    code, out, _ = run(capsys, *base, "--public-key", str(two_pub))
    assert code == 1 and "holds OTHER material" in out
    code, out, _ = run(capsys, *base, "--public-key", str(one_pub), "--ops", "sign")
    assert code == 1 and "(expected sign)" in out
    key_client.update_key_properties(name, enabled=False)
    code, out, _ = run(capsys, *base, "--key", str(one))
    assert code == 1 and "enabled: no (expected yes)" in out
    assert run(capsys, *base, "--key", str(one), "--disabled")[0] == 0


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from serve_vault(tmp_path_factory.mktemp("cli-hsm"), sku="managedhsm")


def test_verify_an_aes_key_with_the_vaults_wrapkey_probe(hsm, tmp_path, capsys, monkeypatch) -> None:
    point(hsm, monkeypatch)
    kv = make_key_client(hsm)
    kek_name, name = f"kek-{secrets.token_hex(3)}", f"aes-{secrets.token_hex(3)}"
    kek_id = kv.create_rsa_key(kek_name, size=2048, hardware_protected=True, key_operations=["import"]).id
    key = bytes(range(60, 92))
    (tmp_path / "k.b64").write_text(base64.b64encode(key).decode() + "\n")
    (tmp_path / "other.bin").write_bytes(bytes(range(100, 132)))
    code, _, err = run(capsys, "wrap", "--vault-url", hsm.vault_url, "--kek-id", kek_id, "--key",
                       str(tmp_path / "k.b64"), "--kty", "oct", "--key-encoding", "base64", "-o",
                       str(tmp_path / "k.byok"))
    assert code == 0, err
    assert run(capsys, "import", "--vault-url", hsm.vault_url, "--name", name, "--byok-file",
               str(tmp_path / "k.byok"), "--kty", "oct")[0] == 0
    base = ["verify", "--vault-url", hsm.vault_url, "--name", name]
    code, out, _ = run(capsys, *base, "--key", str(tmp_path / "k.b64"), "--kty", "oct", "--key-encoding", "base64")
    assert code == 0 and "holds this AES-256 key" in out
    code, out, _ = run(capsys, *base, "--key", str(tmp_path / "other.bin"), "--kty", "oct")
    assert code == 1 and "holds OTHER material than this AES-256 key" in out
    # A key of another size: the vault refuses A128KW with its AES-256 key, which proves it is not this key
    # (the version has wrapKey and is enabled, so "cannot be proven" would send the user looking for the wrong cause).
    (tmp_path / "short.bin").write_bytes(bytes(range(140, 156)))
    code, out, _ = run(capsys, *base, "--key", str(tmp_path / "short.bin"), "--kty", "oct")
    assert code == 1 and "holds OTHER material than this AES-128 key" in out and "another size" in out
    kv.update_key_properties(name, key_operations=["encrypt", "decrypt"])  # no wrapKey: the vault cannot say
    code, out, _ = run(capsys, *base, "--key", str(tmp_path / "k.b64"), "--kty", "oct", "--key-encoding", "base64")
    assert code == 1 and "cannot be proven" in out


def test_an_import_interrupted_before_the_comparison_is_left_disabled(env, kek, tmp_path, capsys, unique_name,
                                                                      key_client, monkeypatch) -> None:
    url, name = env.vault_url, unique_name("stopped")
    one, one_pub = ec_files(tmp_path, 28)
    wrap_for(capsys, kek, url, one, tmp_path / "one.byok")

    def stop(*args: Any, **kwargs: Any) -> Any:  # the process dies between the import and the comparison
        raise KeyboardInterrupt

    settle = verify.settle
    monkeypatch.setattr(verify, "settle", stop)
    code, _, _ = run(capsys, "import", "--vault-url", url, "--name", name, "--byok-file", str(tmp_path / "one.byok"),
                     "--public-key", str(one_pub))
    assert code == 130
    held = key_client.get_key(name)
    assert held.properties.enabled is False and held.properties.tags[verify.UNVERIFIED_TAG] == verify.PENDING
    monkeypatch.setattr(verify, "settle", settle)  # the rerun finishes the comparison on that version
    code, _, err = run(capsys, "import", "--vault-url", url, "--name", name, "--byok-file", str(tmp_path / "one.byok"),
                       "--public-key", str(one_pub))
    assert code == 0, err
    held = key_client.get_key(name)
    assert held.properties.enabled is True and verify.UNVERIFIED_TAG not in (held.properties.tags or {})
    assert len(list(key_client.list_properties_of_key_versions(name))) == 1


def test_import_refuses_reserved_tags_and_counts_them_against_the_limit(env, tmp_path, capsys, unique_name) -> None:
    from byok_component.blob import TransferBlob
    byok_file = tmp_path / "any.byok"  # never sent: the tags are refused first
    byok_file.write_bytes(TransferBlob.build(f"{env.vault_url}/keys/kek/{'0' * 32}", bytes(296)).to_json())
    before = env.request_count
    base = ["import", "--vault-url", env.vault_url, "--name", unique_name("tags"), "--byok-file", str(byok_file),
            "--kty", "EC", "--curve", "P-256", "--tags"]
    code, _, err = run(capsys, *base, f"{verify.CIPHERTEXT_TAG}=x")
    assert code == 1 and "is reserved" in error(err)
    code, _, err = run(capsys, *base, *(f"t{i}=v" for i in range(13)))
    assert code == 1 and "at most 12 tags" in error(err) and env.request_count == before
