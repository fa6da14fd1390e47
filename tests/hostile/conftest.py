"""Hostile-conditions fixtures: local vaults (clean or with injected faults), the key material the suite
imports, the one shared secret set (tests/secretscan.py) and checks every error text must pass.

The provider reaches a vault as in production, through env ``BYOK_CA_BUNDLE`` / ``BYOK_ACCESS_TOKEN_FILE``;
the tests' own SDK client (``operator``) counts versions and reads what the vault really holds. Vaults start
in-process and ``start()`` returns once they accept connections: nothing here sleeps to wait for a server.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest
from cryptography.hazmat.primitives import serialization

from byok_component import vault as vault_adapter
from byok_component.keys import PublicKeyInfo, load_target_key, private_key_pem
from tests.conftest import ec_key, rsa_key, serve_vault
from tests.hostile.figures import FIGURES
from tests.integration.conftest import make_key_client
from tests.secretscan import SecretSet, find_secrets

if TYPE_CHECKING:
    from azure.keyvault.keys import KeyClient

    from byok_component.localvault import LocalVault

KEY_PASSWORD = "hostile-key-password-" + secrets.token_hex(8)


@dataclass(frozen=True)
class KeyFiles:
    """A target key on disk and its public facts."""

    private: str
    public: str | None
    info: PublicKeyInfo
    password: str | None = None


# --- vaults ----------------------------------------------------------------------------------------------
def start_vault(data_dir: Path, *, sku: str = "premium", port: int = 0, behaviour: dict[str, Any] | None = None,
                **faults: Any) -> "LocalVault":
    """A local vault in ``data_dir`` (faults as FaultConfig fields, ``behaviour`` as Behaviour fields), started
    and accepting connections."""
    from byok_component.localvault import Behaviour, FaultConfig, LocalVault

    return LocalVault(data_dir, sku=sku, port=port, faults=FaultConfig(**faults),
                      behaviour=Behaviour(**(behaviour or {}))).start()


def restart_with(vault: "LocalVault", behaviour: dict[str, Any] | None = None, **faults: Any) -> "LocalVault":
    """Stop ``vault`` and serve the same data on the same port with these faults (counters start afresh) and
    ``behaviour`` (Behaviour fields; None: the same as before)."""
    from dataclasses import asdict

    vault.stop()
    kept = asdict(vault.behaviour) if behaviour is None else behaviour
    return start_vault(vault.data_dir, sku=vault.sku, port=vault.port, behaviour=kept, **faults)


def make_kek(vault: "LocalVault", name: str = "kek", size: int = 2048) -> str:
    """An RSA-HSM import-only KEK made by the operator; returns its versioned kid."""
    key = make_key_client(vault).create_rsa_key(name, size=size, hardware_protected=True, key_operations=["import"])
    assert key.id is not None
    return key.id


@pytest.fixture
def use_vault(monkeypatch: pytest.MonkeyPatch) -> Callable[..., "LocalVault"]:
    """``use_vault(vault, **env)`` points the provider and the CLI at ``vault`` (extra BYOK_* env as keywords)."""
    def use(vault: "LocalVault", **env: str) -> "LocalVault":
        monkeypatch.setenv("BYOK_CA_BUNDLE", vault.ca_cert)
        monkeypatch.setenv("BYOK_ACCESS_TOKEN_FILE", vault.token_file)
        monkeypatch.setenv("BYOK_RBAC_WAIT_SECONDS", "0")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        vault_adapter.clear_kek_cache()
        return vault
    return use


@pytest.fixture(scope="session")
def shared_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator["LocalVault"]:
    """A clean premium vault for the bad-input, hygiene and concurrency tests (unique key names per test)."""
    yield from serve_vault(tmp_path_factory.mktemp("hostile-vault"))


@pytest.fixture(scope="session")
def shared_kek(shared_vault: "LocalVault") -> str:
    return make_kek(shared_vault, "hostile-kek")


@pytest.fixture(scope="session")
def operator(sdk: Callable[["LocalVault"], "KeyClient"]) -> Callable[["LocalVault"], "KeyClient"]:
    """``operator(vault)``: the operator's own KeyClient (the shared ``sdk`` fixture under this suite's name)."""
    return sdk


def versions(client: "KeyClient", name: str) -> int:
    """How many versions the vault holds under ``name`` (0: no such key, or soft-deleted)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return sum(1 for _ in client.list_properties_of_key_versions(name))
    except ResourceNotFoundError:
        return 0


def inventory(client: "KeyClient") -> dict[str, int]:
    """Every live key name and its version count, plus soft-deleted names (``deleted:<name>``)."""
    held = {k.name: versions(client, k.name) for k in client.list_properties_of_keys() if k.name}
    held.update({f"deleted:{k.name}": 0 for k in client.list_deleted_keys() if k.name})
    return held


# --- key material ----------------------------------------------------------------------------------------
def write_key(directory: Path, name: str, private_key: Any, password: str | None = None) -> KeyFiles:
    private = directory / f"{name}.pem"
    private.write_bytes(private_key_pem(private_key, password.encode() if password else None))
    public = directory / f"{name}.pub.pem"
    public.write_bytes(private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo))
    return KeyFiles(str(private), str(public), load_target_key(private_key_pem(private_key)).public, password)


@pytest.fixture(scope="session")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile-keys")


@pytest.fixture(scope="session")
def keys(keydir: Path) -> dict[str, KeyFiles]:
    """Target keys: EC P-256 and AES-256 (two of each, for rotation), an encrypted RSA-2048."""
    made = {
        "ec": write_key(keydir, "ec", ec_key("P-256", 61)),
        "ec2": write_key(keydir, "ec2", ec_key("P-256", 62)),
        "rsa": write_key(keydir, "rsa", rsa_key(2048, 61), KEY_PASSWORD),
    }
    for name in ("aes", "aes2"):
        aes = keydir / f"{name}.bin"
        aes.write_bytes(secrets.token_bytes(32))
        made[name] = KeyFiles(str(aes), None, load_target_key(aes.read_bytes(), kty="oct").public)
    return made


@pytest.fixture(scope="session")
def secret_set(keys: dict[str, KeyFiles]) -> SecretSet:
    """The one shared secret set (tests/secretscan.py): private keys, the AES key, the password.

    Tests add what else they make (vault tokens, corpus keys) with ``SecretSet.add_*``.
    """
    found = SecretSet()
    for name, private in (("ec", ec_key("P-256", 61)), ("ec2", ec_key("P-256", 62)), ("rsa", rsa_key(2048, 61))):
        found.add_private_key(name, private)
    for name in ("aes", "aes2"):
        found.add_bytes(name, Path(keys[name].private).read_bytes())
    return found.add_password("key_password", KEY_PASSWORD)


def add_tokens(secret_set: SecretSet, *vaults: "LocalVault") -> SecretSet:
    """Add the bearer tokens (full and read-only) of ``vaults`` to ``secret_set``; returns it."""
    return secret_set.add_vault_tokens(*vaults)


def scan(haystack: Any, secret_set: SecretSet) -> list[str]:
    """``find_secrets`` that also counts the scan in the figures."""
    leaked = find_secrets(haystack, secret_set)
    FIGURES.scan(len(leaked))
    return leaked


def clear_error_problems(text: str, *, names: tuple[str, ...], secret_set: SecretSet | None = None) -> list[str]:
    """What is wrong with an error text a user sees: not one line, no input named, a traceback, a secret."""
    problems = []
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines")
    if "Traceback" in text or 'File "' in text:
        problems.append("traceback")
    if names and not any(name in text for name in names):
        problems.append(f"names none of {names}")
    if secret_set is not None:
        leaked = scan(text, secret_set)
        if leaked:
            problems.append(f"leaks {leaked}")
    return problems


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES.empty:
        terminalreporter.write_sep("=", "hostile conditions: figures")
        terminalreporter.write_line(FIGURES.table())
