"""Provider fixtures: local vaults (premium and Managed HSM), KEKs, target keys made at test time, and the
set of secrets none of it may ever show.

The provider reaches a vault the way it does in production, through env ``BYOK_CA_BUNDLE`` and
``BYOK_ACCESS_TOKEN_FILE`` (set per test by ``on_vault``); the tests' own SDK client plays the operator who
changes things out of band.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest
from cryptography.hazmat.primitives import serialization

from byok_component.keys import PublicKeyInfo, load_target_key, private_key_pem
from byok_component.provider import ByokKeyProvider
from tests.conftest import PURGEABLE, ec_key, rsa_key, serve_vault
from tests.secretscan import SecretSet

if TYPE_CHECKING:
    from azure.keyvault.keys import KeyClient

    from byok_component.localvault import LocalVault

KEY_PASSWORD = "provider-test-password-" + secrets.token_hex(8)


@dataclass(frozen=True)
class KeyFiles:
    """One target key on disk: private (maybe encrypted) and public files, and its public facts."""

    name: str
    private: str
    public: str | None
    info: PublicKeyInfo
    password: str | None = None


def _start(tmp_path_factory: pytest.TempPathFactory, sku: str) -> Iterator["LocalVault"]:
    # Without purge protection: the provider tests purge (purge protection: tests/provider/test_azure_harsh.py).
    yield from serve_vault(tmp_path_factory.mktemp(f"provider-vault-{sku}"), sku=sku, behaviour=PURGEABLE)


@pytest.fixture(scope="session")
def premium_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator["LocalVault"]:
    yield from _start(tmp_path_factory, "premium")


@pytest.fixture(scope="session")
def hsm_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator["LocalVault"]:
    """A Managed HSM local vault: the only kind that takes AES (oct-HSM) keys."""
    yield from _start(tmp_path_factory, "managedhsm")


@pytest.fixture
def on_vault(monkeypatch: pytest.MonkeyPatch) -> Callable[["LocalVault"], "LocalVault"]:
    """``on_vault(vault)`` points the provider at ``vault`` for this test (CA bundle + token file)."""
    def use(vault: "LocalVault") -> "LocalVault":
        monkeypatch.setenv("BYOK_CA_BUNDLE", vault.ca_cert)
        monkeypatch.setenv("BYOK_ACCESS_TOKEN_FILE", vault.token_file)
        monkeypatch.setenv("BYOK_RBAC_WAIT_SECONDS", "0")
        return vault
    return use


@pytest.fixture
def premium(on_vault: Callable[["LocalVault"], "LocalVault"], premium_vault: "LocalVault") -> "LocalVault":
    """The premium local vault, with the provider pointed at it."""
    return on_vault(premium_vault)


@pytest.fixture
def hsm(on_vault: Callable[["LocalVault"], "LocalVault"], hsm_vault: "LocalVault") -> "LocalVault":
    """The Managed HSM local vault, with the provider pointed at it."""
    return on_vault(hsm_vault)


def _kek(vault: "LocalVault", sdk: Callable[["LocalVault"], "KeyClient"], size: int) -> str:
    key = sdk(vault).create_rsa_key(f"kek-{size}-{secrets.token_hex(3)}", size=size, hardware_protected=True,
                                    key_operations=["import"])
    assert key.id is not None
    return key.id


@pytest.fixture(scope="session")
def kek_id(premium_vault: "LocalVault", sdk: Callable[["LocalVault"], "KeyClient"]) -> str:
    """A 2048-bit KEK in the premium vault (fast to make; 4096 is covered separately)."""
    return _kek(premium_vault, sdk, 2048)


@pytest.fixture(scope="session")
def hsm_kek_id(hsm_vault: "LocalVault", sdk: Callable[["LocalVault"], "KeyClient"]) -> str:
    return _kek(hsm_vault, sdk, 2048)


@pytest.fixture(scope="session")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("provider-keys")


def _write(keydir: Path, name: str, private_key: Any, password: str | None = None) -> KeyFiles:
    private = keydir / f"{name}.pem"
    private.write_bytes(private_key_pem(private_key, password.encode() if password else None))
    public = keydir / f"{name}.pub.pem"
    public.write_bytes(private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo))
    return KeyFiles(name, str(private), str(public), load_target_key(private_key_pem(private_key)).public, password)


@pytest.fixture(scope="session")
def keys(keydir: Path) -> dict[str, KeyFiles]:
    """Target keys: two EC P-256 (rotation), an EC P-384, an encrypted RSA-2048, two AES-256 keys."""
    made = {
        "ec": _write(keydir, "ec", ec_key("P-256", 11)),
        "ec2": _write(keydir, "ec2", ec_key("P-256", 12)),
        "p384": _write(keydir, "p384", ec_key("P-384", 11)),
        "rsa": _write(keydir, "rsa", rsa_key(2048, 11), KEY_PASSWORD),
    }
    for name in ("aes", "aes2"):
        path = keydir / f"{name}.bin"
        path.write_bytes(secrets.token_bytes(32))
        made[name] = KeyFiles(name, str(path), None, load_target_key(path.read_bytes(), kty="oct").public)
    return made


@pytest.fixture(scope="session")
def secret_set(keys: dict[str, KeyFiles]) -> SecretSet:
    """Everything that must never leave its box: private keys, AES keys, the password, the vault tokens."""
    found = SecretSet()
    for name, private in (("ec", ec_key("P-256", 11)), ("ec2", ec_key("P-256", 12)), ("p384", ec_key("P-384", 11)),
                          ("rsa", rsa_key(2048, 11))):
        found.add_private_key(name, private)
    for name in ("aes", "aes2"):
        found.add_bytes(name, Path(keys[name].private).read_bytes())
    return found.add_password("key_password", KEY_PASSWORD)


def with_tokens(secrets_: SecretSet, *vaults: "LocalVault") -> SecretSet:
    """The secret set plus the bearer tokens of ``vaults``."""
    return secrets_.add_vault_tokens(*vaults)


@pytest.fixture
def provider() -> ByokKeyProvider:
    return ByokKeyProvider()


@pytest.fixture
def checked(provider: ByokKeyProvider) -> Callable[..., dict[str, Any]]:
    """``checked(**inputs)``: run ``check`` as the engine does before create/update; fail on any CheckFailure."""
    def run(**news: Any) -> dict[str, Any]:
        result = provider.check({}, {k: v for k, v in news.items() if v is not None})
        assert [(f.property, f.reason) for f in result.failures] == []
        return result.inputs
    return run
