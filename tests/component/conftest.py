"""Mocked runs of the real program and of the component, each in its own interpreter, all started at once.

``runs`` does every entry of ``RUNS`` the first time a test asks for it (one process each, since
set_mocks is process-global: see harness.run_all), then hands out the graphs by name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pytest

from byok_component.keys import private_key_pem
from tests.component import harness
from tests.conftest import ec_key, rsa_key

KEY_PASSWORD = "correct-horse-battery-staple-42"  # >= 16 characters: secretscan needs a distinctive needle


def _write_keys(directory: Path, password: bytes | None = None) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    # Providers never run under mocks, so the size is irrelevant here: share the suite's cached RSA-2048
    # rather than pay seconds for a 4096-bit key (the real TestRSAKey is RSA 4096).
    rsa_private, ec_private = rsa_key(2048), ec_key("P-256")
    (directory / "TestRSAKey.pem").write_bytes(private_key_pem(rsa_private, password))
    (directory / "TestECKey.pem").write_bytes(private_key_pem(ec_private, password))
    (directory / "aes256.bin").write_bytes(os.urandom(32))
    return {"rsa": rsa_private, "ec": ec_private, "oct": (directory / "aes256.bin").read_bytes()}


def _program(stack_file: str | None = None, cwd: str = "plain", defaults: bool = True, **overrides: Any
             ) -> Callable[[dict[str, Path]], dict[str, Any]]:
    def spec(dirs: dict[str, Path]) -> dict[str, Any]:
        return {"mode": "program", "cwd": str(dirs[cwd]),
                "config": harness.project_config(stack_file, overrides, defaults=defaults),
                "secret_keys": [f"{harness.PROJECT}:rsaKeyPassword", f"{harness.PROJECT}:ecKeyPassword"]}
    return spec


def _component(client_id: str | None = None, **kwargs: Any) -> Callable[[dict[str, Path]], dict[str, Any]]:
    def spec(dirs: dict[str, Path]) -> dict[str, Any]:
        data: dict[str, Any] = {"mode": "component", "cwd": str(dirs["plain"]), "component": kwargs}
        if client_id:
            data["client_id"] = client_id
        return data
    return spec


# name -> spec builder. Program runs go through the real __main__.py with the example stack files.
RUNS: dict[str, Callable[[dict[str, Path]], dict[str, Any]]] = {
    "azure": _program("Pulumi.example-azure.yaml"),
    "azure-no-project-defaults": _program("Pulumi.example-azure.yaml", defaults=False),
    "azure-existing-group": _program("Pulumi.example-azure.yaml", resourceGroupName="rg-existing",
                                     vaultName="contoso-byok-kv", softDeleteRetentionDays=7,
                                     purgeProtection=False, kekSize=3072),
    "azure-user": _program("Pulumi.example-azure.yaml"),  # client id of the Azure CLI, see below
    "azure-encrypted": _program("Pulumi.example-azure.yaml", cwd="encrypted",
                                rsaKeyPassword=KEY_PASSWORD, ecKeyPassword=KEY_PASSWORD),
    "existing-vault": _program("Pulumi.example-existing-vault.yaml"),
    "existing-vault-id": _program(None, vaultId="/subscriptions/sub-2/resourceGroups/rg-kv/providers/"
                                                "Microsoft.KeyVault/vaults/contoso-byok-kv"),
    "local": _program("Pulumi.example-local.yaml"),
    "managedhsm": _program(None, target="managedhsm", vaultUrl="https://contoso-hsm.managedhsm.azure.net",
                           ecKeyFile=""),
    "bad-managedhsm-without-url": _program(None, target="managedhsm"),
    "managedhsm-wait-for-role": _program(None, target="managedhsm", vaultUrl="https://contoso-hsm.managedhsm.azure.net",
                                         ecKeyFile="", waitForRole="true"),
    "bad-wait-for-role": _program(None, waitForRole="sometimes"),
    "component-existing-kek": _component(
        vault_url="https://contoso-byok-kv.vault.azure.net",
        vault_id="/subscriptions/sub-3/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/contoso-byok-kv",
        kek_id="https://contoso-byok-kv.vault.azure.net/keys/OldKEK/0123456789abcdef0123456789abcdef",
        principal_id="ffffffff-0000-1111-2222-333333333333", principal_type="Group",
        keys=[{"name": "k1", "key_file": "TestRSAKey.pem", "tags": {"env": "test"}}]),
    "component-hsm-oct": _component(
        target="managedhsm", vault_url="https://contoso-hsm.managedhsm.azure.net", kek_size=2048,
        keys=[{"name": "aes", "key_file": "aes256.bin"},
              {"name": "aes2", "key_file": "aes256.bin", "key_type": "oct-HSM", "key_ops": ["wrapKey", "unwrapKey"]}]),
    "component-no-keys": _component(resource_group_name="rg-empty", assign_role=False),
    # The two-phase flow: phase 1 declares vault + KEK only; phase 3 imports what the key officer committed.
    "two-phase-1": _program("Pulumi.example-azure.yaml", rsaKeyFile="", ecKeyFile=""),
    "two-phase-3": _program("Pulumi.example-azure.yaml", rsaKeyFile="", ecWrappedKeyFile="keys/TestECKey.byok",
                            ecPublicKeyFile="keys/TestECKey.pub.pem"),
    "component-local-gated": _component(target="local", vault_url="https://127.0.0.1:8443", wait_for_role=True,
                                        keys=[{"name": "k1", "key_file": "TestECKey.pem"}]),
    "component-azure-ungated": _component(resource_group_name="rg", wait_for_role=False),
}
RUN_OPTIONS: dict[str, dict[str, Any]] = {"azure-user": {"client_id": harness.AZURE_CLI_CLIENT_ID}}


@pytest.fixture(scope="session")
def key_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("program")
    return {"plain": root / "plain", "encrypted": root / "encrypted"}


@pytest.fixture(scope="session")
def key_material(key_dirs: dict[str, Path]) -> dict[str, Any]:
    material = _write_keys(key_dirs["plain"])
    _write_keys(key_dirs["encrypted"], KEY_PASSWORD.encode())
    return material


@pytest.fixture(scope="session")
def runs(key_dirs: dict[str, Path], key_material: dict[str, Any]) -> dict[str, harness.Graph]:
    """Every mocked run, done together once per session (forked from one pre-imported process)."""
    return harness.run_all({name: {**build(key_dirs), **RUN_OPTIONS.get(name, {})} for name, build in RUNS.items()})


@pytest.fixture
def graph(request: pytest.FixtureRequest, runs: dict[str, harness.Graph]) -> harness.Graph:
    """The graph of the run named by the test's ``shape`` parameter; fails if the program raised."""
    g = runs[request.param]
    assert g.error is None, f"{request.param}: {g.error}\n{g.stderr}"
    return g
