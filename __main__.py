"""The seed's BYOK setup as a Pulumi program: resource group, premium vault, KEK, TestRSAKey and TestECKey.

Every setting is stack config, declared (with types, descriptions and defaults) in Pulumi.yaml.
Three shapes (see Pulumi.example-*.yaml and docs/azure.md):

- full Azure (default): a resource group (or ``resourceGroupName``), a premium vault with RBAC and purge
  protection, Key Vault Crypto Officer for you, the KEK and the two keys;
- an existing vault: ``vaultUrl`` (no ARM resources; data-plane KEK) or ``vaultId`` (role + ARM KEK);
- a local vault: ``target: local`` + ``vaultUrl`` of ``byok local-vault serve`` (no ARM resources).

The fallbacks below repeat Pulumi.yaml's defaults, so the program behaves the same where the engine
has not applied them (tests under ``pulumi.runtime.set_mocks``).
"""

from __future__ import annotations

from typing import Optional

import pulumi

from byok_component.component import ByokKeySpec, ByokVault, ByokVaultArgs
from byok_component.errors import InputError

cfg = pulumi.Config()


def text(key: str, default: str = "") -> Optional[str]:
    """A string setting; empty means unset (Pulumi.yaml declares optional strings with default "")."""
    value = cfg.get(key)
    value = default if value is None else value
    return value or None


def secret(key: str) -> Optional[pulumi.Output[str]]:
    value = cfg.get(key)
    return pulumi.Output.secret(value) if value else None


target = text("target", "azure") or "azure"
vault_url = text("vaultUrl")
vault_id = text("vaultId")
purge_on_delete = cfg.get_bool("purgeOnDelete")
purge_on_delete = False if purge_on_delete is None else purge_on_delete
_wait = (text("waitForRole", "auto") or "auto").lower()
if _wait not in ("auto", "true", "false"):
    raise InputError(f"must be auto, true or false, got {_wait!r}", input="waitForRole")
wait_for_role = None if _wait == "auto" else _wait == "true"

# A resource group only when a new vault is made and none was named; `location` only shapes new things.
new_vault = target == "azure" and vault_url is None and vault_id is None
resource_group_name = text("resourceGroupName")
location = text("location") if new_vault else None
if new_vault and resource_group_name is None:
    from pulumi_azure_native import resources

    group = resources.ResourceGroup("byok-rg", location=location)
    resource_group_name = group.name  # type: ignore[assignment]

keys: list[ByokKeySpec] = []
# The two-phase flow (docs/azure.md "Production"): a .byok wrapped offline replaces the private key file.
rsa_wrapped = text("rsaWrappedKeyFile")
rsa_key_file = None if rsa_wrapped else text("rsaKeyFile", "TestRSAKey.pem")
if rsa_key_file or rsa_wrapped:
    keys.append(ByokKeySpec(
        name=text("rsaKeyName", "TestRSAKey") or "TestRSAKey",
        key_file=rsa_key_file,
        wrapped_key_file=rsa_wrapped,
        public_key_file=text("rsaPublicKeyFile"),
        key_password=secret("rsaKeyPassword"),
        purge_on_delete=purge_on_delete,
    ))
ec_wrapped = text("ecWrappedKeyFile")
ec_key_file = None if ec_wrapped else text("ecKeyFile", "TestECKey.pem")
if ec_key_file or ec_wrapped:
    ec_ops = cfg.get_object("ecKeyOps")
    keys.append(ByokKeySpec(
        name=text("ecKeyName", "TestECKey") or "TestECKey",
        key_file=ec_key_file,
        wrapped_key_file=ec_wrapped,
        public_key_file=text("ecPublicKeyFile"),
        key_password=secret("ecKeyPassword"),
        key_ops=list(ec_ops) if ec_ops is not None else ["sign", "verify"],
        purge_on_delete=purge_on_delete,
    ))

retention = cfg.get_int("softDeleteRetentionDays")
purge_protection = cfg.get_bool("purgeProtection")
assign_role = cfg.get_bool("assignRole")
kek_size = cfg.get_int("kekSize")

byok = ByokVault("byok", ByokVaultArgs(
    keys=keys,
    target=target,
    resource_group_name=resource_group_name,
    location=location,
    vault_name=text("vaultName"),
    soft_delete_retention_days=90 if retention is None else retention,
    purge_protection=True if purge_protection is None else purge_protection,
    vault_url=vault_url,
    vault_id=vault_id,
    assign_role=True if assign_role is None else assign_role,
    wait_for_role=wait_for_role,
    principal_id=text("principalId"),
    principal_type=text("principalType"),
    kek_name=text("kekName", "KEKforBYOK") or "KEKforBYOK",
    kek_size=4096 if kek_size is None else kek_size,
    kek_id=text("kekId"),
    kek_purge_on_delete=purge_on_delete,
))

pulumi.export("target", target)
pulumi.export("resourceGroupName", resource_group_name)
pulumi.export("vaultUri", byok.vault_uri)
pulumi.export("vaultId", byok.vault_id)
pulumi.export("kekId", byok.kek_id)
pulumi.export("kekFingerprint", byok.kek_fingerprint)  # RFC 7638: pin it in `byok wrap --kek-fingerprint`
pulumi.export("kekPublicKeyPem", byok.kek_public_key_pem)
pulumi.export("kids", byok.kids)
pulumi.export("fingerprints", byok.fingerprints)
