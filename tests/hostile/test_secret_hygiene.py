"""Secret hygiene: state (checked inputs and outputs), the pickled provider, CLI output, logs (caplog, which
includes azure-core's and the local vault's loggers) and exception text, scanned with the one shared scanner
(tests/secretscan.py) for private-key bytes (PEM body, DER as base64 and hex, private scalars), AES keys,
passwords and the vaults' bearer tokens. Expected count: 0.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import secrets
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import dill
import pytest
from cryptography.hazmat.primitives import serialization
from pulumi.dynamic.dynamic import serialize_provider

from byok_component import cli
from byok_component.blob import TransferBlob
from byok_component.errors import ByokError
from byok_component.provider import ByokKeyProvider
from byok_component.wrap import wrap
from tests.hostile.conftest import KEY_PASSWORD, KeyFiles, add_tokens, make_kek, scan, start_vault
from tests.integration.conftest import make_key_client
from tests.secretscan import SecretSet, outside_secrets, secret_values

if TYPE_CHECKING:
    from byok_component.localvault import LocalVault


@pytest.fixture(scope="module")
def vaults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, "LocalVault"]]:
    made = {sku: start_vault(tmp_path_factory.mktemp(f"hygiene-{sku}"), sku=sku) for sku in ("premium", "managedhsm")}
    try:
        yield made
    finally:
        for vault in made.values():
            vault.stop()


@pytest.fixture(scope="module")
def keks(vaults: dict[str, "LocalVault"]) -> dict[str, str]:
    return {sku: make_kek(vault) for sku, vault in vaults.items()}


@pytest.fixture
def everything(secret_set: SecretSet, vaults: dict[str, "LocalVault"]) -> SecretSet:
    return add_tokens(copy.deepcopy(secret_set), *vaults.values())


def _error_texts(exc: BaseException) -> list[str]:
    """Everything an exception shows: str, repr, and the traceback the provider host sends the engine."""
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


def test_the_scanner_sees_what_it_must(keys: dict[str, KeyFiles], everything: SecretSet,
                                       vaults: dict[str, "LocalVault"]) -> None:
    """Positive controls (not counted in the figures): each kind of secret is found where it is."""
    from tests.secretscan import find_secrets

    pem = Path(keys["ec"].private).read_text()
    assert "ec:ec-d" in find_secrets(pem, everything)
    assert "rsa:rsa-d" in find_secrets(serialization.load_pem_private_key(
        Path(keys["rsa"].private).read_bytes(), KEY_PASSWORD.encode()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).hex(), everything)
    assert find_secrets(base64.b64encode(Path(keys["aes"].private).read_bytes()), everything) == ["aes"]
    assert find_secrets(f"password={KEY_PASSWORD}", everything) == ["key_password"]
    token = Path(vaults["premium"].token_file).read_text().strip()
    assert find_secrets(f"Authorization: Bearer {token}", everything) == [f"token:{vaults['premium'].port}:token"]
    from cryptography.hazmat.primitives.asymmetric import dsa, ed25519, x25519
    for kind, key in (("ed25519", ed25519.Ed25519PrivateKey.generate()), ("x25519", x25519.X25519PrivateKey.generate()),
                      ("dsa", dsa.generate_private_key(1024))):  # key kinds Azure refuses: still secrets
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        assert find_secrets(pem, SecretSet().add_private_key(kind, key)), kind


def test_state_logs_and_errors_through_a_whole_lifecycle(vaults: dict[str, "LocalVault"], keks: dict[str, str],
                                                         keys: dict[str, KeyFiles], everything: SecretSet,
                                                         use_vault: Callable[..., Any], tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    provider = ByokKeyProvider()
    leaks: list[str] = []
    marked: list[Any] = []  # what check handed back marked secret (the password must be there, and only there)

    def look(what: str, value: Any, secret_set: SecretSet = everything) -> None:
        leaks.extend(f"{what}: {label}" for label in scan(value, secret_set))

    # An externally wrapped EC key (a .byok for the premium KEK) beside three local key files.
    operator = make_key_client(vaults["premium"])
    kek_jwk = operator.get_key("kek").key
    from cryptography.hazmat.primitives.asymmetric import rsa
    kek_public = rsa.RSAPublicNumbers(int.from_bytes(kek_jwk.e, "big"), int.from_bytes(kek_jwk.n, "big")).public_key()
    from byok_component.keys import load_target_key
    der = load_target_key(Path(keys["ec2"].private).read_bytes()).wrapping_plaintext()
    wrapped = tmp_path / "ec2.byok"
    wrapped.write_bytes(TransferBlob.build(keks["premium"], wrap(kek_public, der)).to_json())
    look("the .byok file", wrapped.read_bytes())

    lifecycles = [  # (sku, declared, the declaration after rotation)
        ("premium", {"key_file": keys["ec"].private}, {"key_file": keys["ec2"].private}),
        ("premium", {"key_file": keys["rsa"].private, "key_password": KEY_PASSWORD},
         {"key_file": keys["rsa"].private, "key_password": KEY_PASSWORD, "tags": {"rotated": "no"}}),
        ("managedhsm", {"key_file": keys["aes"].private}, {"key_file": keys["aes2"].private}),
        ("premium", {"wrapped_key_file": str(wrapped), "public_key_file": keys["ec2"].public},
         {"wrapped_key_file": str(wrapped), "public_key_file": keys["ec2"].public, "enabled": False}),
    ]
    for sku, material, rotated in lifecycles:
        vault = use_vault(vaults[sku])
        base = {"vault_url": vault.vault_url, "key_name": f"hygiene-{secrets.token_hex(4)}", "kek_id": keks[sku],
                "purge_on_delete": True}
        checked = provider.check({}, {**base, **material})
        assert not checked.failures, checked.failures
        look("check inputs", outside_secrets(checked.inputs))  # everything, the password included
        marked += secret_values(checked.inputs)
        created = provider.create(checked.inputs)
        look("create outputs", created.outs)
        news = provider.check(created.outs, {**base, **rotated})
        look("check inputs (rotation)", outside_secrets(news.inputs))
        marked += secret_values(news.inputs)
        look("diff", vars(provider.diff(created.id, created.outs, news.inputs)))
        updated = provider.update(created.id, created.outs, news.inputs)
        look("update outputs", updated.outs)
        read = provider.read(created.id, updated.outs)
        look("read outputs and inputs", [read.outs, read.inputs])
        provider.delete(created.id, read.outs)

    # Error paths: wrong password, a key file that does not match its public file, a read-only and a bad token.
    vault = use_vault(vaults["premium"])
    base = {"vault_url": vault.vault_url, "key_name": f"hygiene-{secrets.token_hex(4)}", "kek_id": keks["premium"]}
    failing = [
        {**base, "key_file": keys["rsa"].private, "key_password": "not-" + KEY_PASSWORD},
        {**base, "key_file": keys["ec"].private, "public_key_file": keys["ec2"].public},
        {**base, "key_file": keys["rsa"].private},
    ]
    for declared in failing:
        look("check failures", [(f.property, f.reason) for f in provider.check({}, declared).failures])
        with pytest.raises(ByokError) as info:
            provider.create(declared)
        for text in _error_texts(info.value):
            look("exception text", text)
    for token_file in (vault.readonly_token_file, str(tmp_path / "wrong-token")):
        Path(tmp_path / "wrong-token").write_text("not-the-token-" + secrets.token_hex(16))
        use_vault(vault, BYOK_ACCESS_TOKEN_FILE=token_file)
        with pytest.raises(ByokError) as info:
            provider.create({**base, "key_file": keys["ec"].private})
        for text in _error_texts(info.value):
            look("exception text (auth)", text)

    assert marked == [KEY_PASSWORD, KEY_PASSWORD]  # the one lifecycle with a password, check and rotation
    assert provider.__dict__ == {}  # nothing stuck to the instance after all that
    records = caplog.records
    assert any(r.name.startswith("byok_component.localvault") for r in records), "the vault's log was not captured"
    assert any(r.name.startswith("azure") for r in records), "azure-core's log was not captured"
    look("logs", caplog.text)
    look("log record arguments", [repr(r.args) for r in records])
    assert leaks == []


def test_the_pickled_provider_holds_nothing(everything: SecretSet) -> None:
    """Pickled by reference: module and class name only, the same bytes every time, no state, no secrets."""
    provider = ByokKeyProvider()
    serialized = serialize_provider(provider)
    raw = base64.b64decode(serialized)
    assert provider.__dict__ == {}
    assert len(raw) < 100 and b"byok_component.provider" in raw
    assert serialize_provider(ByokKeyProvider()) == serialized
    assert type(dill.loads(raw)) is ByokKeyProvider
    assert scan(raw, everything) == [] and scan(serialized, everything) == []


def test_cli_output_holds_no_secret(vaults: dict[str, "LocalVault"], keys: dict[str, KeyFiles], everything: SecretSet,
                                    use_vault: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Every command, errors included; the keys keygen writes join the secret set before the scan."""
    caplog.set_level(logging.DEBUG)
    vault = use_vault(vaults["premium"])
    password = "cli-password-" + secrets.token_hex(8)
    monkeypatch.setenv("KEY_PW", password)
    monkeypatch.setenv("RSA_PW", KEY_PASSWORD)
    monkeypatch.setenv("WRONG_PW", "wrong-" + password)
    everything.add_password("cli-password", password)
    out = tmp_path
    kek_name = f"cli-kek-{secrets.token_hex(3)}"
    transcript: list[str] = []

    def byok(*argv: str) -> int:
        code = cli.main(list(argv))
        captured = capsys.readouterr()
        transcript.append(f"$ byok {' '.join(argv)}\n{captured.out}{captured.err}")
        return code

    assert byok("keygen", "--kty", "EC", "--curve", "P-384", "--password-env", "KEY_PW", "-o", f"{out}/ec.pem",
                "--public-out", f"{out}/ec.pub.pem") == 0
    assert byok("keygen", "--kty", "RSA", "--size", "2048", "-o", f"{out}/rsa.pem") == 0
    assert byok("keygen", "--kty", "oct", "--size", "256", "-o", f"{out}/aes.bin") == 0
    for name, pw in (("ec.pem", password.encode()), ("rsa.pem", None)):
        everything.add_private_key(f"keygen:{name}", serialization.load_pem_private_key((out / name).read_bytes(), pw))
    everything.add_bytes("keygen:aes.bin", (out / "aes.bin").read_bytes())

    assert byok("kek", "create", "--vault-url", vault.vault_url, "--name", kek_name, "--size", "2048") == 0
    kek_id = transcript[-1].splitlines()[1].strip()
    assert byok("kek", "download", "--vault-url", vault.vault_url, "--name", kek_name, "-o", f"{out}/kek.pem") == 0
    assert byok("wrap", "--kek-pem", f"{out}/kek.pem", "--kek-id", kek_id, "--key", f"{out}/ec.pem",
                "--password-env", "KEY_PW", "-o", f"{out}/ec.byok") == 0
    assert byok("wrap", "--kek-pem", f"{out}/kek.pem", "--kek-id", kek_id, "--key", keys["rsa"].private,
                "--password-env", "RSA_PW", "-o", f"{out}/rsa.byok") == 0
    ciphertext = TransferBlob.parse((out / "rsa.byok").read_bytes()).ciphertext
    (out / "rsa.bin").write_bytes(ciphertext)
    assert byok("blob", "--kek-id", kek_id, "--wrapped", f"{out}/rsa.bin", "--kek-pem", f"{out}/kek.pem",
                "-o", f"{out}/rsa2.byok") == 0
    assert byok("inspect", f"{out}/ec.byok", "--kek-pem", f"{out}/kek.pem") == 0
    assert byok("inspect", f"{out}/rsa2.byok", "--json") == 0
    name = f"cli-{secrets.token_hex(3)}"
    assert byok("import", "--vault-url", vault.vault_url, "--name", name, "--byok-file", f"{out}/ec.byok",
                "--kty", "EC", "--curve", "P-384", "--tags", "owner=hygiene") == 0
    assert byok("verify", "--vault-url", vault.vault_url, "--name", name, "--key", f"{out}/ec.pem",
                "--password-env", "KEY_PW") == 0
    # Failures, with --debug too (its traceback shows code, never values).
    assert byok("wrap", "--kek-pem", f"{out}/kek.pem", "--kek-id", kek_id, "--key", f"{out}/ec.pem",
                "--password-env", "WRONG_PW", "-o", f"{out}/x.byok") != 0
    assert byok("--debug", "verify", "--vault-url", vault.vault_url, "--name", name, "--key", f"{out}/rsa.pem") != 0
    assert byok("--debug", "wrap", "--kek-pem", f"{out}/ec.pem", "--kek-id", kek_id, "--key", f"{out}/rsa.pem",
                "-o", f"{out}/y.byok") != 0
    use_vault(vault, BYOK_ACCESS_TOKEN_FILE=vault.readonly_token_file)
    assert byok("import", "--vault-url", vault.vault_url, "--name", name, "--byok-file", f"{out}/ec.byok",
                "--kty", "EC", "--curve", "P-384") != 0

    text = "\n".join(transcript)
    assert "error" in text and "Traceback" in text  # the scan is not vacuous: errors and a --debug traceback
    assert scan(text, everything) == [], scan(text, everything)
    assert scan(caplog.text, everything) == []


def test_provider_over_grpc_state_and_stderr(vaults: dict[str, "LocalVault"], keks: dict[str, str],
                                             keys: dict[str, KeyFiles], everything: SecretSet) -> None:
    """The engine's view: what the provider host returns for check/create/read/delete, and what it logs."""
    from google.protobuf import json_format

    from tests.provider.grpc_host import ProviderHost, plain

    vault = vaults["premium"]
    host = ProviderHost({"BYOK_CA_BUNDLE": vault.ca_cert, "BYOK_ACCESS_TOKEN_FILE": vault.token_file,
                         "BYOK_RBAC_WAIT_SECONDS": "0"})
    responses: list[str] = []
    try:
        host.configure()
        news = {"vault_url": vault.vault_url, "key_name": f"grpc-{secrets.token_hex(4)}", "kek_id": keks["premium"],
                "key_file": keys["rsa"].private, "key_password": KEY_PASSWORD,
                "__provider": serialize_provider(ByokKeyProvider())}
        checked = host.check({}, news)
        inputs = plain(checked.inputs)
        created = host.create(inputs)
        outs = plain(created.properties)
        read = host.read(created.id, outs)
        responses += [json_format.MessageToJson(m) for m in (created, read)]
        host.delete(created.id, outs)
        import grpc
        with pytest.raises(grpc.RpcError) as info:  # an error over the wire carries the provider's traceback
            host.create({**inputs, "key_password": "not-" + KEY_PASSWORD})
        responses.append(str(info.value.details()))
        assert "Traceback" in responses[-1] and "key_password" in responses[-1]
    finally:
        stderr = host.close()
    assert "key_password" not in outs and json.dumps(outs).count(KEY_PASSWORD) == 0
    checked_inputs = plain(checked.inputs)
    assert secret_values(checked_inputs) == [KEY_PASSWORD]  # on the wire, marked secret by the provider itself
    assert scan(outside_secrets(checked_inputs), everything) == []
    assert scan([f.reason for f in checked.failures], everything) == []
    assert scan(responses, everything) == [] and scan(stderr, everything) == []
