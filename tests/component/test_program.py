"""The real __main__.py under set_mocks, in the three documented shapes (+ Managed HSM and variants)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from byok_component.component import KEY_VAULT_CRYPTO_OFFICER
from tests.component import harness
from tests.component.conftest import KEY_PASSWORD
from tests.secretscan import SecretSet, assert_no_secrets

VAULT = "azure-native:keyvault:Vault"
KEY = "azure-native:keyvault:Key"
ROLE = "azure-native:authorization:RoleAssignment"
GROUP = "azure-native:resources:ResourceGroup"
COMPONENT = "byok:index:ByokVault"
BYOK_KEY = "pulumi-python:dynamic/byok:ByokKey"
KEK = "pulumi-python:dynamic/byok:Kek"
KEK_VIEW = "pulumi-python:dynamic/byok:KekPublicKey"
GATE = "pulumi-python:dynamic/byok:RbacGate"
ARM = {VAULT, KEY, ROLE, GROUP}
SECRET_SIG = harness.SECRET_SIG


def shape(*names: str) -> Any:
    return pytest.mark.parametrize("graph", names, indirect=True)


def byok_keys(g: harness.Graph) -> dict[str, dict[str, Any]]:
    return {r["inputs"]["key_name"]: r for r in g.of_type(BYOK_KEY)}


# --- shape 1: full Azure ------------------------------------------------------------------------------
@shape("azure")
def test_full_azure_graph_is_the_seed_setup(graph: harness.Graph) -> None:
    assert graph.outline() == [
        f"{GROUP}  byok-rg",
        f"{COMPONENT}  byok",
        f"  {VAULT}  byok-vault",
        f"  {ROLE}  byok-crypto-officer",
        f"  {GATE}  byok-rbac-gate",
        f"  {KEY}  byok-kek",
        f"  {KEK_VIEW}  byok-kek-public",
        f"  {BYOK_KEY}  byok-TestECKey",
        f"  {BYOK_KEY}  byok-TestRSAKey",
    ]
    assert graph.one(GROUP)["inputs"]["location"] == "westeurope"


@shape("azure")
def test_vault_is_premium_with_rbac_soft_delete_and_purge_protection(graph: harness.Graph) -> None:
    vault = graph.one(VAULT)
    props = vault["inputs"]["properties"]
    assert props["sku"] == {"family": "A", "name": "premium"}
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["softDeleteRetentionInDays"] == 90
    assert props["enablePurgeProtection"] is True
    assert props["tenantId"] == harness.TENANT  # from getClientConfig
    assert props["accessPolicies"] == []  # required unless createMode is recover; azure-cli sends [] with RBAC
    assert vault["inputs"]["resourceGroupName"] == graph.one(GROUP)["state"]["name"]


@shape("azure")
def test_role_assignment_is_crypto_officer_on_the_vault_for_the_deployer(graph: harness.Graph) -> None:
    role = graph.one(ROLE)["inputs"]
    assert role["roleDefinitionId"] == (f"/subscriptions/{harness.SUBSCRIPTION}/providers/"
                                        f"Microsoft.Authorization/roleDefinitions/{KEY_VAULT_CRYPTO_OFFICER}")
    assert KEY_VAULT_CRYPTO_OFFICER == "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
    assert role["scope"] == graph.one(VAULT)["id"]
    assert role["principalId"] == harness.OBJECT_ID
    # The mocked deployer signs in with its own app id: a service principal, not azure-native's "User".
    assert role["principalType"] == "ServicePrincipal"
    assert [c["token"] for c in graph.calls] == ["azure-native:authorization:getClientConfig"]


@shape("azure-user")
def test_a_user_signed_in_with_the_azure_cli_is_assigned_as_user(graph: harness.Graph) -> None:
    assert graph.one(ROLE)["inputs"]["principalType"] == "User"


@shape("azure")
def test_kek_is_rsa_hsm_4096_import_only_in_the_vault(graph: harness.Graph) -> None:
    kek = graph.one(KEY)
    assert kek["inputs"]["properties"] == {"kty": "RSA-HSM", "keySize": 4096, "keyOps": ["import"]}
    assert kek["inputs"]["keyName"] == "KEKforBYOK"
    assert kek["inputs"]["vaultName"] == graph.one(VAULT)["state"]["name"]
    assert kek["inputs"]["resourceGroupName"] == graph.one(GROUP)["state"]["name"]
    # Destroy order: the KEK (deleted through the data plane) goes before the role it needs.
    assert graph.one(ROLE)["urn"] in kek["dependencies"]
    # Up order: the KEK waits for the gate, which waits until the role applies (no ForbiddenByRbac race).
    assert graph.one(GATE)["urn"] in kek["dependencies"]


@shape("azure", "existing-vault-id")
def test_the_rbac_gate_sits_between_the_role_and_the_kek(graph: harness.Graph) -> None:
    gate, role = graph.one(GATE), graph.one(ROLE)
    assert role["urn"] in gate["dependencies"]
    assert gate["inputs"]["role_assignment_id"] == role["id"]  # a new assignment: the gate waits again
    assert gate["inputs"]["key_name"] == "KEKforBYOK"
    assert gate["inputs"]["vault_url"] == byok_keys(graph)["TestECKey"]["inputs"]["vault_url"]
    assert b"byok_component.rbacgate" in base64.b64decode(gate["inputs"]["__provider"]["value"])


@shape("azure", "azure-existing-group", "existing-vault-id")
def test_each_key_uses_the_versioned_kek_id_and_waits_for_kek_and_role(graph: harness.Graph) -> None:
    kek, role = graph.one(KEY), graph.one(ROLE)
    versioned = kek["state"]["keyUriWithVersion"]
    assert versioned.rsplit("/", 1)[1] and versioned != kek["state"]["keyUri"]
    assert ".vault.azure.net:443/keys/" in versioned  # ARM's form
    keys = byok_keys(graph)
    assert set(keys) == {"TestRSAKey", "TestECKey"}
    for key in keys.values():
        assert key["inputs"]["kek_id"] == versioned.replace(":443/", "/")  # the data plane's kid
        assert role["urn"] in key["dependencies"]
        assert kek["urn"] in key["dependencies"]
        assert key["parent"] == graph.one(COMPONENT)["urn"]


@shape("azure")
def test_keys_are_the_seed_keys_from_the_configured_files(graph: harness.Graph) -> None:
    keys = byok_keys(graph)
    vault_uri = graph.one(VAULT)["state"]["properties"]["vaultUri"].rstrip("/")
    rsa, ec = keys["TestRSAKey"]["inputs"], keys["TestECKey"]["inputs"]
    assert rsa["vault_url"] == ec["vault_url"] == vault_uri
    assert rsa["key_file"] == "TestRSAKey.pem" and ec["key_file"] == "TestECKey.pem"
    assert "key_ops" not in rsa  # RSA 4096 with the vault's default ops, as in the seed
    assert ec["key_ops"] == ["sign", "verify"]
    assert rsa["purge_on_delete"] is False and "key_password" not in rsa


@shape("azure")
def test_stack_and_component_outputs_are_present(graph: harness.Graph) -> None:
    out = {name: v["value"] for name, v in graph.stack_outputs.items()}
    keys = byok_keys(graph)
    assert out["vaultUri"] == graph.one(VAULT)["state"]["properties"]["vaultUri"].rstrip("/")
    assert out["vaultId"] == graph.one(VAULT)["id"]
    assert out["kekId"] == graph.one(KEY)["state"]["keyUriWithVersion"].replace(":443/", "/")
    assert ":443" not in out["kekId"]  # exported as users' HSM tools and transfer blobs name it
    assert out["kids"] == {name: k["state"]["kid"] for name, k in keys.items()}
    assert out["fingerprints"] == {name: k["state"]["fingerprint"] for name, k in keys.items()}
    component = graph.component_outputs[graph.one(COMPONENT)["urn"]]
    assert set(component["fields"] if "fields" in component else component) >= {
        "vault_uri", "kek_id", "kids", "fingerprints"}


@shape("azure")
def test_providers_are_pickled_by_reference(graph: harness.Graph) -> None:
    """A few dozen bytes naming the class: no code, no globals, no credentials in state."""
    for key in byok_keys(graph).values():
        wrapped = key["inputs"]["__provider"]
        assert wrapped[SECRET_SIG]  # secret-wrapped, as Pulumi always does
        pickled = base64.b64decode(wrapped["value"])
        assert len(pickled) < 200 and b"byok_component.provider" in pickled and b"ByokKeyProvider" in pickled


@shape("azure-no-project-defaults")
def test_program_fallbacks_match_pulumi_yaml_defaults(graph: harness.Graph, runs: dict[str, harness.Graph]
                                                      ) -> None:
    """Without the engine applying Pulumi.yaml's defaults, the program builds the very same graph."""
    def strip(g: harness.Graph) -> list[tuple[str, str, str]]:
        return sorted((r["type"], r["name"], json.dumps({k: v for k, v in r["inputs"].items() if k != "__provider"},
                                                        sort_keys=True)) for r in g.resources)
    assert strip(graph) == strip(runs["azure"])


def test_pulumi_yaml_declares_every_config_key_the_program_reads() -> None:
    project = yaml.safe_load((harness.ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "byok-component" and project["runtime"]["name"] == "python"
    declared = project["config"]
    for key, decl in declared.items():
        assert decl["type"] in ("string", "integer", "boolean", "array"), key
        assert decl.get("description"), key
        assert "default" in decl, f"{key}: a typed key without a default is required by the engine"
        if decl["type"] == "array":
            assert decl["items"] == {"type": "string"}
    source = (harness.ROOT / "__main__.py").read_text()
    import re
    read = set(re.findall(r'(?:text|secret|cfg\.get\w*)\("(\w+)"', source))
    assert read == set(declared), f"undeclared: {read - set(declared)}, unused: {set(declared) - read}"


@pytest.mark.parametrize("stack_file", ["Pulumi.example-azure.yaml", "Pulumi.example-existing-vault.yaml",
                                        "Pulumi.example-local.yaml"])
def test_example_stack_files_only_set_declared_keys(stack_file: str) -> None:
    declared = yaml.safe_load((harness.ROOT / "Pulumi.yaml").read_text())["config"]
    config = yaml.safe_load((harness.ROOT / stack_file).read_text())["config"]
    for key in config:
        namespace, _, name = key.partition(":")
        assert namespace == "byok-component" and name in declared, key


# --- variants of the Azure shape ------------------------------------------------------------------------
@shape("azure-existing-group")
def test_existing_resource_group_named_vault_and_settings(graph: harness.Graph) -> None:
    assert not graph.of_type(GROUP)
    vault = graph.one(VAULT)["inputs"]
    assert vault["resourceGroupName"] == "rg-existing" and vault["vaultName"] == "contoso-byok-kv"
    assert vault["properties"]["softDeleteRetentionInDays"] == 7
    # Azure refuses enablePurgeProtection=false; turning it off means leaving it out.
    assert "enablePurgeProtection" not in vault["properties"]
    assert graph.one(KEY)["inputs"]["properties"]["keySize"] == 3072


# --- shape 2: an existing vault -------------------------------------------------------------------------
@shape("existing-vault")
def test_existing_vault_by_url_creates_no_arm_resource(graph: harness.Graph) -> None:
    assert not graph.types() & ARM
    assert graph.outline() == [f"{COMPONENT}  byok", f"  {KEK}  byok-kek",
                               f"  {BYOK_KEY}  byok-TestECKey", f"  {BYOK_KEY}  byok-TestRSAKey"]
    assert graph.calls == []  # not even getClientConfig: no Azure credentials needed for ARM
    kek = graph.one(KEK)
    assert kek["inputs"]["vault_url"] == "https://contoso-byok-kv.vault.azure.net"
    assert kek["inputs"]["key_name"] == "KEKforBYOK" and kek["inputs"]["key_size"] == 4096
    for key in byok_keys(graph).values():
        assert key["inputs"]["kek_id"] == kek["state"]["kid"]
        assert kek["urn"] in key["dependencies"]
        assert key["inputs"]["vault_url"] == "https://contoso-byok-kv.vault.azure.net"
    assert graph.stack_outputs["vaultId"]["value"] is None


@shape("existing-vault-id")
def test_existing_vault_by_id_creates_role_and_kek_but_no_vault(graph: harness.Graph) -> None:
    assert not graph.of_type(VAULT) and not graph.of_type(GROUP)
    vault_id = "/subscriptions/sub-2/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/contoso-byok-kv"
    role = graph.one(ROLE)["inputs"]
    assert role["scope"] == vault_id
    # The role definition lives in the vault's subscription, not necessarily the deployer's.
    assert role["roleDefinitionId"] == (
        f"/subscriptions/sub-2/providers/Microsoft.Authorization/roleDefinitions/{KEY_VAULT_CRYPTO_OFFICER}")
    kek = graph.one(KEY)["inputs"]
    assert kek["resourceGroupName"] == "rg-kv" and kek["vaultName"] == "contoso-byok-kv"
    assert graph.stack_outputs["vaultUri"]["value"] == "https://contoso-byok-kv.vault.azure.net"


# --- shape 3: a local vault; and Managed HSM -----------------------------------------------------------
@shape("local", "managedhsm")
def test_data_plane_shapes_create_no_arm_resources(graph: harness.Graph) -> None:
    assert not graph.types() & ARM
    assert graph.calls == []
    kek = graph.one(KEK)
    for key in byok_keys(graph).values():
        assert key["inputs"]["kek_id"] == kek["state"]["kid"]
        assert key["dependencies"] == [kek["urn"]]


@shape("local")
def test_local_shape_targets_the_local_vault_and_purges_on_destroy(graph: harness.Graph) -> None:
    kek = graph.one(KEK)["inputs"]
    assert kek["vault_url"] == "https://127.0.0.1:8443" and kek["purge_on_delete"] is True
    assert all(k["inputs"]["purge_on_delete"] is True for k in byok_keys(graph).values())
    assert graph.stack_outputs["vaultUri"]["value"] == "https://127.0.0.1:8443"


@shape("managedhsm")
def test_managed_hsm_shape_with_the_ec_key_switched_off(graph: harness.Graph) -> None:
    assert set(byok_keys(graph)) == {"TestRSAKey"}
    assert graph.one(KEK)["inputs"]["vault_url"] == "https://contoso-hsm.managedhsm.azure.net"


def test_managed_hsm_without_a_url_fails_before_creating_anything(runs: dict[str, harness.Graph]) -> None:
    g = runs["bad-managedhsm-without-url"]
    assert g.error == {"type": "InputError", "message": "vault_url: target 'managedhsm' needs the vault's https URL"}
    assert g.resources == []


# --- secrets ----------------------------------------------------------------------------------------------
@shape("azure-encrypted")
def test_no_secret_in_plain_outputs_or_inputs(graph: harness.Graph, key_material: dict[str, Any]) -> None:
    secrets = (SecretSet().add_password("key_password", KEY_PASSWORD)
               .add_private_key("rsa", key_material["rsa"]).add_private_key("ec", key_material["ec"]))
    for key in byok_keys(graph).values():
        wrapped = key["inputs"]["key_password"]
        assert wrapped[SECRET_SIG] and wrapped["value"] == KEY_PASSWORD  # the password travels only as a secret

    def plain(value: Any) -> Any:
        """Drop every secret-wrapped value: what is left is what Pulumi shows and stores in the clear."""
        if isinstance(value, dict):
            return None if SECRET_SIG in value else {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    assert_no_secrets([plain(r["inputs"]) for r in graph.resources], secrets, "plain inputs")
    assert_no_secrets(plain(graph.component_outputs), secrets, "component outputs")
    assert_no_secrets({k: v["value"] for k, v in graph.stack_outputs.items() if not v["secret"]}, secrets,
                      "plain stack outputs")
    # Private key bytes are nowhere at all, not even inside secrets: the program passes paths only.
    secrets_without_password = SecretSet().add_private_key("rsa", key_material["rsa"]).add_private_key(
        "ec", key_material["ec"])
    assert_no_secrets(graph.raw, secrets_without_password, "the whole mocked run")


# --- the two-phase flow (docs/azure.md "Production") ---------------------------------------------------
@shape("two-phase-1")
def test_phase_1_declares_vault_and_kek_and_exports_what_the_officer_wraps_for(graph: harness.Graph) -> None:
    assert not graph.of_type(BYOK_KEY) and graph.one(KEY) and graph.one(KEK_VIEW)
    assert graph.stack_outputs["kekId"]["value"] == graph.one(KEY)["state"]["keyUriWithVersion"].replace(":443/", "/")
    assert graph.stack_outputs["kekPublicKeyPem"]["value"].startswith("-----BEGIN PUBLIC KEY-----")
    assert graph.stack_outputs["kekFingerprint"]["value"]


@shape("two-phase-3")
def test_phase_3_imports_the_committed_byok_file_and_no_private_key(graph: harness.Graph) -> None:
    (key,) = graph.of_type(BYOK_KEY)
    assert key["inputs"]["wrapped_key_file"] == "keys/TestECKey.byok"
    assert key["inputs"]["public_key_file"] == "keys/TestECKey.pub.pem"
    assert "key_file" not in key["inputs"] and key["inputs"]["key_ops"] == ["sign", "verify"]
    assert key["inputs"]["kek_id"] == graph.one(KEY)["state"]["keyUriWithVersion"].replace(":443/", "/")


@shape("managedhsm-wait-for-role")
def test_wait_for_role_config_gates_a_managed_hsm_kek(graph: harness.Graph) -> None:
    """A Managed HSM local role assigned just before `pulumi up`: waitForRole=true puts the gate before the KEK."""
    gate, kek = graph.one(GATE), graph.one(KEK)
    assert gate["inputs"]["vault_url"] == "https://contoso-hsm.managedhsm.azure.net"
    assert gate["urn"] in kek["dependencies"]


@shape("azure", "managedhsm")
def test_wait_for_role_auto_gates_only_a_role_this_stack_assigns(graph: harness.Graph) -> None:
    assert bool(graph.of_type(GATE)) == bool(graph.of_type(ROLE))


def test_a_bad_wait_for_role_is_one_clear_error(runs: dict[str, harness.Graph]) -> None:
    g = runs["bad-wait-for-role"]
    assert g.error == {"type": "InputError", "message": "waitForRole: must be auto, true or false, got 'sometimes'"}
    assert g.resources == []
