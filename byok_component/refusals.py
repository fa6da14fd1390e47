"""What a Key Vault refusal means, whether waiting can cure it, and the remedy a user needs when it cannot.

Pure functions over (status, error code, innererror code, message); vault.py maps azure-core errors onto
these kinds and waits only on the transient ones:

- ``throttled``: 429 ``Throttled``, with or without ``Retry-After`` (vcsjones/AzureSignTool#219); back off
  ("overview-throttling": 1, 2, 4, 8, 16 s).
- ``rbac``: 403 with innererror ``ForbiddenByRbac`` -- "If role assignments ... were changed recently, please
  observe propagation time" (pulumi/pulumi-azure-native#890, pulumi/pulumi-azure-nextgen#195). Key Vault's
  RBAC guide said role changes take up to 10 minutes to apply; its migration guide says "several minutes ...
  implement retry logic". The only 403 worth waiting on; after the wait it names the role that is missing.
- ``pending``: 409 ``ObjectIsBeingDeleted`` / ``ObjectIsBeingRecovered``: a delete, purge or recover of the
  name is still in flight (azure-sdk-for-net#34322, #26027; hashicorp/terraform-provider-azurerm#12285).
- final 403s, at once: ``KeyOperationForbidden`` ("Operation decrypt is not permitted on this key",
  azure-sdk-for-net#11518): the key's key_ops lack the operation; ``KeyDisabled``: the key is disabled;
  purge under purge protection ("Operation "purge" is not allowed because purge protection is enabled",
  microsoft/AzureTRE#1760; "soft-delete-overview"); any other 403 -- an access-policy vault ("does not have
  keys purge permission", innererror ``ForbiddenByPolicy``, hashicorp/terraform-provider-azurerm#10271), a
  Managed HSM principal without the role for the operation: the role or permission to grant.

Roles (Key Vault "rbac-guide"; Managed HSM "built-in-roles"): on a vault *Key Vault Crypto Officer* covers
every key operation we do. On a Managed HSM *Managed HSM Crypto User* creates, imports, reads and deletes
keys, and only *Managed HSM Crypto Officer* may recover or purge deleted keys.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["Kind", "kind_of", "TRANSIENT", "remedy", "role_hint", "is_managed_hsm", "cli_target",
           "PURGE_PROTECTION_TEXT"]

Kind = Literal["throttled", "rbac", "pending", "key_ops", "disabled", "purge_protection", "forbidden", "other"]
TRANSIENT: frozenset[str] = frozenset({"throttled", "rbac", "pending"})
PURGE_PROTECTION_TEXT = "purge protection"


def kind_of(status: int | None, code: str | None, inner: str | None, message: str) -> Kind:
    """Classify one refusal by what Azure sent (status, error code, innererror code, message)."""
    if status == 429:
        return "throttled"
    if status == 409 and inner in ("ObjectIsBeingDeleted", "ObjectIsBeingRecovered"):
        return "pending"
    if status == 403:
        if inner == "ForbiddenByRbac":
            return "rbac"
        if inner == "KeyOperationForbidden":
            return "key_ops"
        if inner == "KeyDisabled" or "disabled key" in message.lower():
            return "disabled"
        if PURGE_PROTECTION_TEXT in message.lower():
            return "purge_protection"
        return "forbidden"
    return "other"


def is_managed_hsm(vault_url: str | None) -> bool:
    return bool(vault_url) and ".managedhsm." in str(vault_url).lower()


def cli_target(vault_url: str) -> str:
    """The az CLI flag naming this vault: ``--hsm-name H`` on a Managed HSM, ``--vault-name V`` otherwise."""
    host = vault_url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    name = host.split(".", 1)[0] if "." in host and not host.replace(".", "").isdigit() else "<vault>"
    return f"--hsm-name {name}" if is_managed_hsm(vault_url) else f"--vault-name {name}"


def role_hint(vault_url: str | None, operation: str) -> str:
    """The role the principal needs for ``operation`` (a word such as 'import', 'purge', 'recover')."""
    if is_managed_hsm(vault_url):
        if operation in ("purge", "recover"):
            return ("the principal needs the Managed HSM local role 'Managed HSM Crypto Officer' to recover or purge "
                    "deleted keys (`az keyvault role assignment create --hsm-name ... --role \"Managed HSM Crypto "
                    "Officer\" --scope /keys`)")
        return ("the principal needs the Managed HSM local role 'Managed HSM Crypto User' (`az keyvault role "
                "assignment create --hsm-name ... --role \"Managed HSM Crypto User\" --scope /keys`)")
    return ("the principal needs the 'Key Vault Crypto Officer' role on the vault (on a vault using access "
            f"policies: the key permission '{operation}')")


def remedy(kind: Kind, vault_url: str | None, operation: str, *, waited: float | None = None,
           setting: str | None = None) -> str:
    """The one-line advice appended to a refusal that will not go away by itself (or that outlasted its wait)."""
    after = f" after waiting {waited:.0f} s ({setting})" if waited is not None and setting else ""
    if kind == "rbac":
        return (f"still ForbiddenByRbac{after}: the role assignment has not taken effect or is missing; "
                f"{role_hint(vault_url, operation)}")
    if kind == "throttled":
        return f"still throttled{after}; retry later or lower the parallelism (pulumi up --parallel)"
    if kind == "pending":
        return f"still being deleted or recovered{after}; retry later"
    if kind == "key_ops":
        return "the key's key_ops do not allow this operation: add it to the key's key_ops"
    if kind == "disabled":
        return "the key is disabled: enable it (enabled: true) first"
    if kind == "purge_protection":
        return ("the vault has purge protection: the deleted key is kept until its retention period ends and "
                "nobody can purge it earlier")
    if kind == "forbidden":
        return role_hint(vault_url, operation)
    return ""
