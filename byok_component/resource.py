"""ByokKey: a Pulumi dynamic resource that imports key material you own into Key Vault via BYOK."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional, Sequence

import pulumi
from pulumi.dynamic import Resource

from .props import OUTPUTS
from .provider import ByokKeyProvider

__all__ = ["ByokKey", "ByokKeyArgs", "KeyMaterialArgs", "OUTPUT_NAMES"]

# Outputs beyond the echoed inputs (README "ByokKey").
OUTPUT_NAMES: tuple[str, ...] = ("kid", "version", "key_type", "key_size", "curve", "public_key_pem", "fingerprint",
                                  "owner")


@dataclass(kw_only=True)
class KeyMaterialArgs:
    """A key's material and properties, shared by ``ByokKeyArgs`` and ``ByokVault``'s ``ByokKeySpec``.

    Give ``key_file`` (+ ``key_password``), or ``wrapped_key_file`` + ``public_key_file``, or ``pkcs11_uri``
    (+ ``pkcs11_module``, ``pkcs11_pin``) for a key that is wrapped inside its PKCS#11 token.
    ``public_key_file`` beside ``key_file`` lets previews run without the private key (recommended for PR runners).
    Keyword-only. ``None`` leaves a property to the material or the vault's default.

    Attributes:
        key_file: Path of the private key (PEM/DER; PKCS#8, PKCS#1 or SEC1; encrypted or not), or of an AES key
            (raw 16/24/32 bytes, or hex/base64 text with ``key_encoding``). Read only by create/update (and by
            previews when no ``public_key_file`` is given); never stored, only its path.
        key_password: Password of an encrypted ``key_file``. A secret input: encrypted in state, never an output.
        wrapped_key_file: Ciphertext an external KMS/HSM already wrapped for this KEK (CKM_RSA_AES_KEY_WRAP), raw
            or as a ``.byok`` file. Needs ``public_key_file`` (RSA/EC); instead of ``key_file``.
        public_key_file: The key's public half (SubjectPublicKeyInfo PEM/DER). Lets previews run without the
            private key; with ``key_file``, ``up`` refuses a private key whose public half differs.
        key_encoding: How an AES ``key_file`` holds its key: ``raw``, ``hex`` or ``base64`` (text is refused
            without it).
        key_type: ``RSA``, ``EC`` or ``oct`` (``-HSM`` suffixes accepted); inferred from the material, must agree.
        curve: EC curve, ``P-256``/``P-384``/``P-521``/``P-256K``; inferred, must agree.
        key_ops: Operations the key allows (``sign``, ``verify``, ``encrypt``, ``decrypt``, ``wrapKey``,
            ``unwrapKey``; what the type permits). Default: the vault's.
        enabled: Whether the current version is enabled (default true).
        not_before: Activation date, RFC 3339 (e.g. ``2030-01-01T00:00:00Z``).
        expires_on: Expiry date, RFC 3339; after ``not_before``.
        tags: Up to 15 tags less the provider's reserved ones, names and values up to 256 characters.
        purge_on_delete: On destroy/replace, also purge the soft-deleted key (refused under purge protection).
        adopt_existing: Adopt a key of this name that holds other material instead of refusing it.
        pkcs11_uri: RFC 7512 URI of a key in a PKCS#11 token, wrapped inside the token; instead of ``key_file``.
        pkcs11_module: Path of the PKCS#11 module (or ``module-path`` in the URI, or ``$BYOK_PKCS11_MODULE``).
        pkcs11_pin: The token's user PIN, a secret input (or ``$BYOK_PKCS11_PIN``).
    """

    key_file: Optional[pulumi.Input[str]] = None
    key_password: Optional[pulumi.Input[str]] = None
    wrapped_key_file: Optional[pulumi.Input[str]] = None
    public_key_file: Optional[pulumi.Input[str]] = None
    # An AES key_file's encoding: raw (the 16/24/32 bytes), hex or base64 text. Text is refused without it.
    key_encoding: Optional[pulumi.Input[str]] = None
    key_type: Optional[pulumi.Input[str]] = None
    curve: Optional[pulumi.Input[str]] = None
    key_ops: Optional[pulumi.Input[Sequence[pulumi.Input[str]]]] = None
    enabled: Optional[pulumi.Input[bool]] = None
    not_before: Optional[pulumi.Input[str]] = None
    expires_on: Optional[pulumi.Input[str]] = None
    tags: Optional[pulumi.Input[Mapping[str, pulumi.Input[str]]]] = None
    purge_on_delete: Optional[pulumi.Input[bool]] = None
    adopt_existing: Optional[pulumi.Input[bool]] = None
    # A key in a PKCS#11 token, wrapped inside it (RFC 7512 URI; module path; PIN, a secret, or $BYOK_PKCS11_PIN).
    pkcs11_uri: Optional[pulumi.Input[str]] = None
    pkcs11_module: Optional[pulumi.Input[str]] = None
    pkcs11_pin: Optional[pulumi.Input[str]] = None

    def material_args(self) -> dict[str, Any]:
        """The shared fields only (what a ByokKeySpec hands to its ByokKey)."""
        return {f.name: getattr(self, f.name) for f in fields(KeyMaterialArgs)}


@dataclass(kw_only=True)
class ByokKeyArgs(KeyMaterialArgs):
    """Inputs of a ByokKey: where it goes (vault, name, the versioned KEK kid) and its material.

    Keyword-only. Besides the ``KeyMaterialArgs`` attributes (material and properties):

    Attributes:
        vault_url: The vault, ``https://NAME.vault.azure.net`` (or a Managed HSM, or a loopback local vault).
            Changing it replaces the key.
        key_name: The key's name in the vault, 1-127 of ``0-9 a-z A-Z -``. Changing it replaces the key.
        kek_id: The KEK's *versioned* kid on the same vault (``DataPlaneKek.kid``, an ARM key's
            ``key_uri_with_version``). Transport only: changing it changes nothing in the vault.
    """

    vault_url: pulumi.Input[str]
    key_name: pulumi.Input[str]
    kek_id: pulumi.Input[str]


class ByokKey(Resource, module="byok", name="ByokKey"):
    """A BYOK key in Azure Key Vault (type ``pulumi-python:dynamic/byok:ByokKey``).

    New material (another fingerprint) imports a new version under the same name; ops, enabled, dates and
    tags are updated in place; another vault or name replaces the key. ``key_password`` is never an output.
    """

    # Echoed inputs (enabled, key_ops, tags and the dates as the vault holds them).
    vault_url: pulumi.Output[str]
    key_name: pulumi.Output[str]
    kek_id: pulumi.Output[str]
    key_file: pulumi.Output[Optional[str]]
    wrapped_key_file: pulumi.Output[Optional[str]]
    public_key_file: pulumi.Output[Optional[str]]
    key_encoding: pulumi.Output[Optional[str]]
    key_ops: pulumi.Output[list[str]]
    enabled: pulumi.Output[bool]
    not_before: pulumi.Output[Optional[str]]
    expires_on: pulumi.Output[Optional[str]]
    tags: pulumi.Output[dict[str, str]]
    purge_on_delete: pulumi.Output[bool]
    adopt_existing: pulumi.Output[bool]
    pkcs11_uri: pulumi.Output[Optional[str]]
    pkcs11_module: pulumi.Output[Optional[str]]
    # From the material and the vault.
    kid: pulumi.Output[str]
    version: pulumi.Output[str]
    key_type: pulumi.Output[str]
    key_size: pulumi.Output[int]
    curve: pulumi.Output[Optional[str]]
    public_key_pem: pulumi.Output[Optional[str]]
    fingerprint: pulumi.Output[str]
    # The owner marker this resource wrote on the key (README "Replacement and ownership").
    owner: pulumi.Output[str]

    def __init__(self, resource_name: str, args: ByokKeyArgs,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        # A fresh dict per resource: Resource.__init__ adds __provider to it.
        props: dict[str, Any] = {name: None for name in OUTPUTS}
        props.update({f.name: getattr(args, f.name) for f in fields(args)})
        if args.key_password is not None:
            # Stored encrypted in state like any secret input; the provider never echoes it.
            props["key_password"] = pulumi.Output.secret(args.key_password)
        if args.pkcs11_pin is not None:
            props["pkcs11_pin"] = pulumi.Output.secret(args.pkcs11_pin)
        super().__init__(ByokKeyProvider(), resource_name, props, opts)
