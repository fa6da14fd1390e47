"""ByokVault used directly: its validation (in-process: it raises before registering anything), its pure
helpers, and mocked graphs of shapes the program does not reach."""

from __future__ import annotations

import json
from typing import Any

import pytest

from byok_component.component import (ByokKeySpec, ByokVault, ByokVaultArgs, crypto_officer_role_definition_id,
                                      deploying_principal_type, parse_vault_id)
from byok_component.errors import InputError
from tests.component import harness
from tests.component.test_program import BYOK_KEY, COMPONENT, KEK, KEK_VIEW, KEY, ROLE, VAULT, byok_keys, shape

HSM = "https://contoso-hsm.managedhsm.azure.net"
KV = "https://contoso-byok-kv.vault.azure.net"


def test_crypto_officer_role_definition_id() -> None:
    assert crypto_officer_role_definition_id("s-1") == (
        "/subscriptions/s-1/providers/Microsoft.Authorization/roleDefinitions/14b46e9e-c2b7-41b4-b07b-48a6ebf60603")


def test_parse_vault_id() -> None:
    assert parse_vault_id("/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv") == (
        "s", "rg", "kv")
    assert parse_vault_id("/SUBSCRIPTIONS/s/resourcegroups/rg/providers/microsoft.keyvault/VAULTS/kv/") == (
        "s", "rg", "kv")
    for bad in ("", "kv", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/managedHSMs/h",
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/keys/k"):
        with pytest.raises(InputError, match="vault_id"):
            parse_vault_id(bad)


@pytest.mark.parametrize("client_id,expected", [
    ("04b07795-8ddb-461a-bbee-02f9e1bf7b46", "User"),              # Azure CLI
    ("1950A258-227B-4E31-A9CF-717495945FC2", "User"),              # Azure PowerShell
    ("12121212-3434-5656-7878-909090909090", "ServicePrincipal"),  # an app's own id
    (None, "ServicePrincipal"),
])
def test_deploying_principal_type(client_id: Any, expected: str) -> None:
    assert deploying_principal_type(client_id) == expected


def _rsa(name: str = "k1", **kw: Any) -> ByokKeySpec:
    return ByokKeySpec(name=name, key_file="TestRSAKey.pem", **kw)


@pytest.mark.parametrize("kwargs,prop,reason", [
    ({"target": "aws"}, "target", "must be one of azure, managedhsm, local"),
    ({}, "resource_group_name", "is needed to create a vault"),
    ({"target": "local"}, "vault_url", "needs the vault's https URL"),
    ({"target": "local", "vault_url": "https://127.0.0.1:8443", "resource_group_name": "rg"},
     "resource_group_name", "is not used with target 'local'"),
    ({"target": "managedhsm", "vault_url": HSM, "principal_id": "p"}, "principal_id",
     "az keyvault role assignment create"),
    ({"target": "managedhsm", "vault_url": KV}, "vault_url", "needs a Managed HSM URL"),
    ({"vault_url": HSM}, "vault_url", "use target 'managedhsm'"),
    ({"vault_url": "http://contoso.vault.azure.net"}, "vault_url", "must use https"),
    ({"vault_id": "/subscriptions/s/resourceGroups/rg"}, "vault_id", "must be a Key Vault resource id"),
    ({"vault_url": KV, "resource_group_name": "rg"}, "resource_group_name", "only shapes a new vault"),
    ({"vault_url": KV, "vault_name": "kv1"}, "vault_name", "only shapes a new vault"),
    ({"vault_id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv", "location": "x"},
     "location", "only shapes a new vault"),
    ({"vault_url": KV, "principal_id": "p", "principal_type": "User"}, "principal_id", "needs vault_id"),
    ({"resource_group_name": "rg", "vault_name": "a--b"}, "vault_name", "3-24 characters"),
    ({"resource_group_name": "rg", "vault_name": "x" * 25}, "vault_name", "3-24 characters"),
    ({"resource_group_name": "rg", "principal_id": "p"}, "principal_type", "is needed with principal_id"),
    ({"resource_group_name": "rg", "principal_id": "p", "principal_type": "Robot"}, "principal_type",
     "must be one of"),
    ({"resource_group_name": "rg", "soft_delete_retention_days": 6}, "soft_delete_retention_days", "7-90"),
    ({"resource_group_name": "rg", "soft_delete_retention_days": 91}, "soft_delete_retention_days", "7-90"),
    ({"resource_group_name": "rg", "kek_size": 1024}, "kek_size", "2048, 3072 or 4096"),
    ({"resource_group_name": "rg", "kek_name": "bad name"}, "kek_name", "1-127 characters"),
    ({"resource_group_name": "rg", "keys": [_rsa("bad_name")]}, "keys[].name", "1-127 characters"),
    ({"resource_group_name": "rg", "keys": [_rsa(), _rsa()]}, "keys[].name", "used twice"),
    ({"resource_group_name": "rg", "keys": [_rsa("KEKforBYOK")]}, "keys[].name", "used twice"),
    ({"resource_group_name": "rg", "keys": [ByokKeySpec(name="aes", wrapped_key_file="w.bin", key_type="oct")]},
     "keys[aes].key_type", "only Managed HSM imports those"),
    ({"vault_url": KV, "keys": [ByokKeySpec(name="aes", key_file="k.bin", key_type="oct-HSM")]},
     "keys[aes].key_type", "only Managed HSM imports those"),
])
def test_impossible_shapes_fail_early_naming_the_input(kwargs: dict[str, Any], prop: str, reason: str) -> None:
    with pytest.raises(InputError) as info:
        ByokVault("v", ByokVaultArgs(**kwargs))
    assert info.value.input == prop and reason in str(info.value)


def test_a_raw_aes_key_file_counts_as_oct_on_azure(tmp_path: Any) -> None:
    (tmp_path / "aes.bin").write_bytes(bytes(32))
    with pytest.raises(InputError, match="AES .oct-HSM. key"):
        ByokVault("v", ByokVaultArgs(resource_group_name="rg",
                                     keys=[ByokKeySpec(name="aes", key_file=str(tmp_path / "aes.bin"))]))


# --- mocked graphs ---------------------------------------------------------------------------------------
@shape("component-existing-kek")
def test_existing_kek_and_principal_override(graph: harness.Graph) -> None:
    assert not graph.of_type(VAULT) and not graph.of_type(KEY) and not graph.of_type(KEK)
    role = graph.one(ROLE)
    assert role["inputs"]["principalId"] == "ffffffff-0000-1111-2222-333333333333"
    assert role["inputs"]["principalType"] == "Group"
    assert role["inputs"]["roleDefinitionId"].startswith("/subscriptions/sub-3/")
    key = byok_keys(graph)["k1"]
    assert key["inputs"]["kek_id"] == "https://contoso-byok-kv.vault.azure.net/keys/OldKEK/0123456789abcdef0123456789abcdef"
    assert key["inputs"]["tags"] == {"env": "test"}
    gate = graph.one("pulumi-python:dynamic/byok:RbacGate")
    assert gate["dependencies"] == [role["urn"]]
    assert sorted(key["dependencies"]) == sorted([role["urn"], gate["urn"]])
    assert graph.stack_outputs["kek_id"]["value"].endswith("/OldKEK/0123456789abcdef0123456789abcdef")


@shape("component-hsm-oct")
def test_managed_hsm_takes_oct_keys_and_a_data_plane_kek(graph: harness.Graph) -> None:
    assert graph.types() == {COMPONENT, KEK, BYOK_KEY}
    kek = graph.one(KEK)  # a data-plane KEK has its public key itself: no view
    assert graph.stack_outputs["kek_fingerprint"]["value"] == f"kek-fp-{kek['name']}"
    assert kek["inputs"]["vault_url"] == HSM and kek["inputs"]["key_size"] == 2048
    keys = byok_keys(graph)
    assert keys["aes"]["inputs"]["key_file"] == "aes256.bin"
    assert keys["aes2"]["inputs"]["key_type"] == "oct-HSM"
    assert keys["aes2"]["inputs"]["key_ops"] == ["wrapKey", "unwrapKey"]
    assert set(graph.stack_outputs["kids"]["value"]) == {"aes", "aes2"}


@shape("component-no-keys")
def test_vault_without_keys_or_role(graph: harness.Graph) -> None:
    assert graph.types() == {COMPONENT, VAULT, KEY, KEK_VIEW}
    assert graph.one(KEY)["dependencies"] == [graph.one(VAULT)["urn"]]  # through vault_name only
    # The ARM KEK exposes no public key: the view reads it, and the component exports it for offline wraps.
    view = graph.one(KEK_VIEW)
    assert view["dependencies"] == [graph.one(KEY)["urn"]]
    assert graph.stack_outputs["kek_fingerprint"]["value"] == "kek-fp-" + view["name"]
    assert "PUBLIC KEY" in graph.stack_outputs["kek_public_key_pem"]["value"]
    assert graph.stack_outputs["kids"]["value"] == {} and graph.stack_outputs["fingerprints"]["value"] == {}
    assert [c["token"] for c in graph.calls] == ["azure-native:authorization:getClientConfig"]  # tenant id


def test_a_fresh_interpreter_run_matches_the_forked_one(runs: dict[str, harness.Graph],
                                                        key_dirs: dict[str, Any]) -> None:
    """The fork server is an optimisation only: one run in its own interpreter gives the same graph."""
    from tests.component.conftest import RUNS

    alone = harness.run_one(RUNS["local"](key_dirs))
    assert alone.error is None
    def seen(g: harness.Graph) -> list[tuple[str, str, str]]:
        return sorted((r["type"], r["name"], json.dumps(r["inputs"], sort_keys=True)) for r in g.resources)

    assert alone.outline() == runs["local"].outline()
    assert seen(alone) == seen(runs["local"])


@shape("component-local-gated")
def test_wait_for_role_gates_a_data_plane_kek_too(graph: harness.Graph) -> None:
    """A role assigned outside Pulumi just before (a Managed HSM local role, a local vault's window): the KEK
    and the keys wait for the gate."""
    gate, kek = graph.one("pulumi-python:dynamic/byok:RbacGate"), graph.one(KEK)
    assert gate["inputs"]["vault_url"] == "https://127.0.0.1:8443" and "role_assignment_id" not in gate["inputs"]
    assert gate["urn"] in kek["dependencies"]
    assert gate["urn"] in byok_keys(graph)["k1"]["dependencies"]


@shape("component-azure-ungated")
def test_wait_for_role_false_leaves_the_gate_out(graph: harness.Graph) -> None:
    assert not graph.of_type("pulumi-python:dynamic/byok:RbacGate") and graph.of_type(ROLE)
