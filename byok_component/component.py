"""ByokVault: a premium Key Vault (or an existing vault / Managed HSM / local vault), the Crypto Officer
role, the Key Exchange Key and the BYOK keys, declared as one Pulumi component.

No crypto and no HTTP here: the keys are ``ByokKey`` children and a data-plane KEK is a ``DataPlaneKek``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional, Sequence

import pulumi

from .errors import InputError
from .kek import KEK_SIZES, DataPlaneKek, DataPlaneKekArgs
from .kekview import KekPublicKey, KekPublicKeyArgs
from .kid import KeyId, check_key_name, is_loopback, normalize_vault_url
from .rbacgate import RbacGate, RbacGateArgs
from .resource import ByokKey, ByokKeyArgs, KeyMaterialArgs

__all__ = [
    "ByokVault", "ByokVaultArgs", "ByokKeySpec", "Target", "TARGETS",
    "KEY_VAULT_CRYPTO_OFFICER", "MANAGED_HSM_CRYPTO_USER", "MANAGED_HSM_CRYPTO_OFFICER",
    "crypto_officer_role_definition_id", "deploying_principal_type", "parse_vault_id", "data_plane_kid",
]

Target = Literal["azure", "managedhsm", "local"]
TARGETS: tuple[str, ...] = ("azure", "managedhsm", "local")

# Built-in role ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/security). Key Vault Crypto Officer: any action on keys, except permissions.
KEY_VAULT_CRYPTO_OFFICER = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
# Managed HSM *local* RBAC roles. They are data-plane assignments (`az keyvault role assignment create
# --hsm-name ...`); azure-native v3 has no resource for them, so ByokVault creates none (docs/azure.md).
MANAGED_HSM_CRYPTO_USER = "21dbd100-6940-42c2-9190-5d6cb909625b"     # import, create, delete, write
MANAGED_HSM_CRYPTO_OFFICER = "515eb02d-2335-4d2d-92f2-b1cbdf9c3778"  # recover, purge

# Microsoft first-party public clients a *user* signs in through: Azure CLI, Azure PowerShell.
_FIRST_PARTY_PUBLIC_CLIENTS = frozenset({"04b07795-8ddb-461a-bbee-02f9e1bf7b46", "1950a258-227b-4e31-a9cf-717495945fc2"})
PRINCIPAL_TYPES: tuple[str, ...] = ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device")
_VAULT_ID_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.KeyVault/vaults/(?P<name>[^/]+)/?$",
    re.IGNORECASE)
# Vault names: 3-24 of a-z A-Z 0-9 -, start with a letter, end with a letter or digit, no "--".
_VAULT_NAME_RE = re.compile(r"^(?!.*--)[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]\Z")


def deploying_principal_type(client_id: Optional[str]) -> str:
    """Guess the deploying principal's type from the app it signed in with (azure-native getClientConfig).

    ARM refuses a role assignment whose principalType does not match the principal (UnmatchedPrincipalType),
    and azure-native sends "User" when none is given, which fails for a service principal. A user signs
    in through a first-party public client (Azure CLI, Azure PowerShell); anything else -- a service
    principal's or managed identity's own client id -- is a ServicePrincipal. Set principal_type to be sure.
    """
    return "User" if (client_id or "").lower() in _FIRST_PARTY_PUBLIC_CLIENTS else "ServicePrincipal"


def crypto_officer_role_definition_id(subscription_id: str) -> str:
    """The Key Vault Crypto Officer role definition, as ARM wants it in a role assignment."""
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{KEY_VAULT_CRYPTO_OFFICER}"


def parse_vault_id(vault_id: str) -> tuple[str, str, str]:
    """Split ``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}``."""
    match = _VAULT_ID_RE.match(vault_id.strip()) if isinstance(vault_id, str) else None
    if not match:
        raise InputError("must be a Key Vault resource id "
                         "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}",
                         input="vault_id")
    return match["sub"], match["rg"], match["name"]


@dataclass(kw_only=True)
class ByokKeySpec(KeyMaterialArgs):
    """One BYOK key of a ByokVault: its key name in the vault, and its material (the fields of ``ByokKeyArgs``).

    The vault URL and ``kek_id`` come from the ByokVault. Keyword-only. Besides the ``KeyMaterialArgs``
    attributes:

    Attributes:
        name: The key's name in the vault (1-127 of ``0-9 a-z A-Z -``); also names the child ``ByokKey``
            (``<vault resource name>-<name>``) and keys the ``kids``/``fingerprints`` outputs.
    """

    name: str


@dataclass(kw_only=True)
class ByokVaultArgs:
    """Inputs of a ByokVault.

    Shapes, by ``target``:

    - ``"azure"`` (default), new vault: give ``resource_group_name`` (and optionally ``location``,
      ``vault_name``). A premium vault with RBAC, soft delete and purge protection is created, the
      deploying principal gets Key Vault Crypto Officer on it, and the KEK is an ARM ``keyvault.Key``.
    - ``"azure"``, existing vault by ARM id: give ``vault_id`` (and ``vault_url`` outside the public
      cloud). No vault is created; the role assignment and the ARM KEK are.
    - ``"azure"``, existing vault by URL only: give ``vault_url``. No ARM resource at all: the KEK is a
      ``DataPlaneKek`` and the principal must already hold Crypto Officer.
    - ``"managedhsm"``: give the HSM's ``vault_url``. Data-plane KEK; oct-HSM keys allowed; the local
      RBAC role (Managed HSM Crypto User) must be assigned outside Pulumi (docs/azure.md).
    - ``"local"``: give a local vault's ``vault_url`` (``byok local-vault serve``). Data-plane KEK only.

    ``kek_id`` (a versioned KEK kid) uses an existing KEK instead of declaring one. Keyword-only; plain values
    (not Outputs) are checked before anything is registered.

    Attributes:
        keys: The BYOK keys to import (``ByokKeySpec``); names unique, none equal to ``kek_name``.
        target: ``azure`` (Key Vault, default), ``managedhsm`` or ``local`` (see the shapes above).
        resource_group_name: New vault: the (existing) resource group it goes in.
        location: New vault: its region (default: the group's / ``azure-native:location``).
        vault_name: New vault: 3-24 characters, globally unique (default: auto-named by Pulumi).
        tenant_id: New vault: its Entra ID tenant (default: the deploying principal's).
        soft_delete_retention_days: New vault: 7-90 days (default 90), fixed at creation.
        purge_protection: New vault: purge protection (default True). IRREVERSIBLE once on: deleted keys and
            the vault cannot be purged before retention ends. Set False (and retention 7) for throwaway stacks.
        vault_url: An existing vault, Managed HSM or local vault by URL (``https://...``).
        vault_id: An existing vault by ARM id (``/subscriptions/.../vaults/NAME``): role and ARM KEK, no vault.
        assign_role: Give Key Vault Crypto Officer on the vault (ARM shapes only; default True).
        principal_id: Who gets the role (default: the deploying principal); needs ``principal_type``.
        principal_type: ``User``, ``Group``, ``ServicePrincipal``, ... (default: guessed from the sign-in app).
        kek_name: The KEK's key name (default ``KEKforBYOK``).
        kek_size: The KEK's RSA size, 2048/3072/4096 (default 4096).
        kek_id: A versioned kid of a KEK you already have; none is declared then.
        kek_purge_on_delete: Data-plane KEK only: destroy also purges it (not under purge protection: then it is
            left soft-deleted until its retention ends, and destroy says so).
        tags: Tags for the vault and the ARM KEK (not the imported keys: give those per key).
        wait_for_role: Put an ``RbacGate`` between the role and the KEK: it waits until the vault's data plane
            stops answering 403 ForbiddenByRbac (a role assignment takes minutes to apply). Default (None): when
            this component assigns the role; True also for a role assigned just before, outside Pulumi (a
            Managed HSM local role); False never.
    """

    keys: Sequence[ByokKeySpec] = ()
    target: str = "azure"
    # A new vault (target "azure" without vault_url/vault_id).
    resource_group_name: Optional[pulumi.Input[str]] = None
    location: Optional[pulumi.Input[str]] = None
    vault_name: Optional[pulumi.Input[str]] = None
    tenant_id: Optional[pulumi.Input[str]] = None
    soft_delete_retention_days: int = 90
    purge_protection: bool = True
    # An existing vault, Managed HSM or local vault.
    vault_url: Optional[pulumi.Input[str]] = None
    vault_id: Optional[pulumi.Input[str]] = None
    # Key Vault Crypto Officer for the deploying principal (or another one).
    assign_role: bool = True
    principal_id: Optional[pulumi.Input[str]] = None
    principal_type: Optional[pulumi.Input[str]] = None
    # The KEK.
    kek_name: str = "KEKforBYOK"
    kek_size: int = 4096
    kek_id: Optional[pulumi.Input[str]] = None
    kek_purge_on_delete: bool = False
    tags: Optional[Mapping[str, str]] = field(default=None)
    wait_for_role: Optional[bool] = None


class ByokVault(pulumi.ComponentResource):
    """Vault + Crypto Officer role + KEK + BYOK keys (type ``byok:index:ByokVault``).

    Outputs: ``vault_uri``, ``vault_id`` (ARM id, or None off ARM), ``kek_id`` (versioned KEK kid),
    ``kek_public_key_pem`` and ``kek_fingerprint`` (its RFC 7638 thumbprint: what an officer wrapping offline
    pins with ``byok wrap --kek-fingerprint``), ``kids`` and ``fingerprints`` (dicts keyed by key name). The
    children are reachable as ``vault``, ``role_assignment``, ``rbac_gate``, ``kek`` (each None when not created)
    and ``keys`` (dict by key name).
    """

    vault_uri: pulumi.Output[str]
    vault_id: pulumi.Output[Optional[str]]
    kek_id: pulumi.Output[str]
    kek_public_key_pem: pulumi.Output[str]
    kek_fingerprint: pulumi.Output[str]
    kids: pulumi.Output[dict[str, str]]
    fingerprints: pulumi.Output[dict[str, str]]

    def __init__(self, name: str, args: ByokVaultArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        _validate(args)  # before registering anything: a bad shape creates nothing
        super().__init__("byok:index:ByokVault", name, None, opts)
        self.vault: Any = None
        self.role_assignment: Any = None
        self.kek: Any = None
        self.keys: dict[str, ByokKey] = {}

        arm = args.target == "azure" and (args.vault_url is None or args.vault_id is not None)
        client_config = None
        if arm:
            from pulumi_azure_native import authorization
            client_config = authorization.get_client_config_output(
                opts=pulumi.InvokeOutputOptions(parent=self))

        # --- the vault ---------------------------------------------------------------------------
        if arm and args.vault_id is None:
            self.vault = self._new_vault(name, args, client_config)
            vault_id: pulumi.Output[Optional[str]] = self.vault.id
            vault_name: pulumi.Input[str] = self.vault.name
            resource_group: pulumi.Input[str] = args.resource_group_name  # type: ignore[assignment]
            vault_uri = self.vault.properties.apply(lambda p: p.vault_uri.rstrip("/") if p.vault_uri else p.vault_uri)
            subscription = client_config.subscription_id  # type: ignore[union-attr]
        elif arm:
            parts = pulumi.Output.from_input(args.vault_id).apply(parse_vault_id)
            vault_id = pulumi.Output.from_input(args.vault_id)
            subscription, resource_group, vault_name = parts[0], parts[1], parts[2]
            vault_uri = (pulumi.Output.from_input(args.vault_url).apply(normalize_vault_url)
                         if args.vault_url is not None
                         else parts.apply(lambda p: f"https://{p[2].lower()}.vault.azure.net"))
        else:
            vault_id = pulumi.Output.from_input(None)
            vault_uri = pulumi.Output.from_input(args.vault_url).apply(normalize_vault_url)

        # --- the role ----------------------------------------------------------------------------
        if arm and args.assign_role:
            from pulumi_azure_native import authorization
            if args.principal_id is not None:
                principal, principal_type = args.principal_id, args.principal_type
            else:
                principal = client_config.object_id  # type: ignore[union-attr]
                principal_type = (args.principal_type if args.principal_type is not None
                                  else client_config.client_id.apply(deploying_principal_type))  # type: ignore[union-attr]
            self.role_assignment = authorization.RoleAssignment(
                f"{name}-crypto-officer",
                principal_id=principal,
                principal_type=principal_type,
                role_definition_id=pulumi.Output.from_input(subscription).apply(crypto_officer_role_definition_id),
                scope=vault_id,
                description="byok: Key Vault Crypto Officer for BYOK key import",
                opts=pulumi.ResourceOptions(parent=self))
        # --- the RBAC gate: nothing that needs the role runs before the data plane honours it ------------
        self.rbac_gate: Optional[RbacGate] = None
        if args.wait_for_role if args.wait_for_role is not None else self.role_assignment is not None:
            self.rbac_gate = RbacGate(
                f"{name}-rbac-gate",
                RbacGateArgs(vault_url=vault_uri, key_name=args.kek_name,
                             role_assignment_id=self.role_assignment.id if self.role_assignment is not None else None),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.role_assignment] if self.role_assignment
                                            is not None else []))
        role = [r for r in (self.role_assignment, self.rbac_gate) if r is not None]

        # --- the KEK -----------------------------------------------------------------------------
        if args.kek_id is not None:
            kek_id = pulumi.Output.from_input(args.kek_id)
        elif arm:
            from pulumi_azure_native import keyvault
            # The KEK depends on the role too: azure-native deletes keys through the data plane, so on
            # destroy the KEK must go before the Crypto Officer assignment does.
            self.kek = keyvault.Key(
                f"{name}-kek",
                resource_group_name=resource_group,
                vault_name=vault_name,
                key_name=args.kek_name,
                properties=keyvault.KeyPropertiesArgs(kty="RSA-HSM", key_size=args.kek_size, key_ops=["import"]),
                tags=args.tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=role))
            kek_id = self.kek.key_uri_with_version.apply(data_plane_kid)
        else:
            self.kek = DataPlaneKek(
                f"{name}-kek",
                DataPlaneKekArgs(vault_url=vault_uri, key_name=args.kek_name, key_size=args.kek_size,
                                 purge_on_delete=args.kek_purge_on_delete),
                opts=pulumi.ResourceOptions(parent=self, depends_on=role))
            kek_id = self.kek.kid

        # --- the keys ----------------------------------------------------------------------------
        after = [r for r in (self.kek, *role) if r is not None]
        if isinstance(self.kek, DataPlaneKek):
            self.kek_public_key_pem, self.kek_fingerprint = self.kek.public_key_pem, self.kek.fingerprint
        else:  # ARM's keyvault.Key and a given kek_id expose no public key: read it from the data plane
            view = KekPublicKey(f"{name}-kek-public", KekPublicKeyArgs(kek_id=kek_id),
                                opts=pulumi.ResourceOptions(parent=self, depends_on=after))
            self.kek_public_key_pem, self.kek_fingerprint = view.public_key_pem, view.fingerprint
        for spec in args.keys:
            key_args = ByokKeyArgs(vault_url=vault_uri, key_name=spec.name, kek_id=kek_id, **spec.material_args())
            self.keys[spec.name] = ByokKey(f"{name}-{spec.name}", key_args,
                                           opts=pulumi.ResourceOptions(parent=self, depends_on=after))

        self.vault_uri = vault_uri
        self.vault_id = vault_id
        self.kek_id = kek_id
        self.kids = _by_name({n: k.kid for n, k in self.keys.items()})
        self.fingerprints = _by_name({n: k.fingerprint for n, k in self.keys.items()})
        self.register_outputs({"vault_uri": self.vault_uri, "vault_id": self.vault_id, "kek_id": self.kek_id,
                               "kek_public_key_pem": self.kek_public_key_pem, "kek_fingerprint": self.kek_fingerprint,
                               "kids": self.kids, "fingerprints": self.fingerprints})

    def _new_vault(self, name: str, args: ByokVaultArgs, client_config: Any) -> Any:
        from pulumi_azure_native import keyvault

        tenant = args.tenant_id if args.tenant_id is not None else client_config.tenant_id
        return keyvault.Vault(
            f"{name}-vault",
            resource_group_name=args.resource_group_name,
            vault_name=args.vault_name,
            location=args.location,
            tags=args.tags,
            properties=keyvault.VaultPropertiesArgs(
                tenant_id=tenant,
                sku=keyvault.SkuArgs(family="A", name="premium"),  # HSM-backed keys need premium
                enable_rbac_authorization=True,
                enable_soft_delete=True,
                soft_delete_retention_in_days=args.soft_delete_retention_days,
                # Azure refuses `false` here ("does not accept false as its value"): omit it instead.
                enable_purge_protection=True if args.purge_protection else None,
                # Required unless createMode is "recover" (azure-native's VaultPropertiesArgs); with RBAC on,
                # azure-cli's `keyvault create` sends [] too.
                access_policies=[],
            ),
            opts=pulumi.ResourceOptions(parent=self))


def data_plane_kid(uri: Optional[str]) -> Optional[str]:
    """A KEK kid in the data plane's form. ARM's keyUriWithVersion carries the default port
    (``https://v.vault.azure.net:443/keys/k/<version>``, ARM's createKey example); the kid that transfer blobs
    and users' HSM tools name -- the data plane's -- has none."""
    return str(KeyId.parse(uri, versioned=True, input="kek_id")) if uri else uri


def _by_name(outputs: Mapping[str, pulumi.Output[str]]) -> pulumi.Output[dict[str, str]]:
    return pulumi.Output.all(**outputs) if outputs else pulumi.Output.from_input({})  # type: ignore[return-value]


def _validate(args: ByokVaultArgs) -> None:
    """Refuse impossible shapes early, with the input at fault named (plain values only; Outputs pass)."""
    if args.target not in TARGETS:
        raise InputError(f"must be one of {', '.join(TARGETS)}, got {args.target!r}", input="target")
    if args.target in ("managedhsm", "local"):
        if args.vault_url is None:
            raise InputError(f"target {args.target!r} needs the vault's https URL", input="vault_url")
        for name in ("vault_id", "resource_group_name", "vault_name", "principal_id"):
            if getattr(args, name) is not None:
                raise InputError(f"is not used with target {args.target!r} (no ARM resources are created"
                                 + ("; assign the Managed HSM local role with `az keyvault role assignment create`"
                                    if name == "principal_id" and args.target == "managedhsm" else "") + ")",
                                 input=name)
    elif args.vault_url is None and args.vault_id is None:
        if args.resource_group_name is None:
            raise InputError("is needed to create a vault (or give vault_id / vault_url of an existing one)",
                             input="resource_group_name")
    else:
        for name in ("resource_group_name", "vault_name", "location", "tenant_id"):
            if getattr(args, name) is not None:
                raise InputError("only shapes a new vault; with vault_url/vault_id none is created", input=name)
        if args.vault_id is None and args.principal_id is not None:
            raise InputError("needs vault_id: the role assignment is scoped to the vault's ARM id (with vault_url "
                             "alone no ARM resource is created)", input="principal_id")
    if isinstance(args.vault_url, str):
        url = normalize_vault_url(args.vault_url, input="vault_url")
        if args.target == "managedhsm" and ".managedhsm." not in url and not is_loopback(url):
            raise InputError("target 'managedhsm' needs a Managed HSM URL (https://NAME.managedhsm.azure.net)",
                             input="vault_url")
        if args.target == "azure" and ".managedhsm." in url:
            raise InputError("is a Managed HSM; use target 'managedhsm'", input="vault_url")
    if isinstance(args.vault_id, str):
        parse_vault_id(args.vault_id)
    if isinstance(args.vault_name, str) and not _VAULT_NAME_RE.match(args.vault_name):
        raise InputError("must be 3-24 characters of a-z, A-Z, 0-9 and '-', start with a letter, end with a "
                         "letter or digit, without '--'", input="vault_name")
    if args.principal_id is not None and args.principal_type is None and args.target == "azure":
        raise InputError("is needed with principal_id: User, Group or ServicePrincipal (ARM refuses a "
                         "mismatched type, and azure-native would send 'User')", input="principal_type")
    if isinstance(args.principal_type, str) and args.principal_type not in PRINCIPAL_TYPES:
        raise InputError(f"must be one of {', '.join(PRINCIPAL_TYPES)}", input="principal_type")
    if not isinstance(args.soft_delete_retention_days, int) or not 7 <= args.soft_delete_retention_days <= 90:
        raise InputError("must be 7-90 days", input="soft_delete_retention_days")
    if args.kek_size not in KEK_SIZES:
        raise InputError("must be 2048, 3072 or 4096 (BYOK spec: RSA-HSM KEK sizes)", input="kek_size")
    check_key_name(args.kek_name, input="kek_name")
    seen: set[str] = set()
    for spec in args.keys:
        check_key_name(spec.name, input="keys[].name")
        if spec.name in seen or spec.name == args.kek_name:
            raise InputError(f"key name {spec.name!r} is used twice (key names and kek_name must be unique)",
                             input="keys[].name")
        seen.add(spec.name)
        if args.target == "azure" and _is_oct(spec):
            raise InputError(f"key {spec.name!r} is an AES (oct-HSM) key; only Managed HSM imports those "
                             "(use target 'managedhsm')", input=f"keys[{spec.name}].key_type")


def _is_oct(spec: ByokKeySpec) -> bool:
    """oct when declared so (a key_encoding declares it too), or when key_file is a bare 16/24/32-byte file."""
    if isinstance(spec.key_encoding, str):
        return True
    if isinstance(spec.key_type, str):
        return spec.key_type.split("-")[0].lower() == "oct"
    if spec.key_type is None and isinstance(spec.key_file, str) and os.path.isfile(spec.key_file):
        return os.path.getsize(spec.key_file) in (16, 24, 32)
    return False
