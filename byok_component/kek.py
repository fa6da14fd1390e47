"""DataPlaneKek: a Key Exchange Key created through the Key Vault data plane, where ARM cannot create one.

azure-native v3 has no Managed HSM key resource, and a local vault (``byok local-vault serve``) has no
ARM at all; there the KEK is made with ``POST /keys/{name}/create`` (RSA-HSM, ops exactly ``["import"]``,
BYOK spec §1.1). On a premium Key Vault prefer the ARM ``keyvault.Key`` that ``ByokVault`` declares.

The provider holds no state and builds its client inside each method; it lives in this importable
module, so Pulumi pickles it by reference (https://www.pulumi.com/docs/iac/concepts/resources/dynamic-providers/).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional

import pulumi
from pulumi.dynamic import (CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, Resource,
                            ResourceProvider, UpdateResult)

from . import ownership
from .errors import ByokError, InputError, KeyConflictError, KeyDeletedError
from .kid import KeyId, check_key_name, normalize_vault_url
from .unknown import is_unknown

__all__ = ["DataPlaneKek", "DataPlaneKekArgs", "DataPlaneKekProvider", "KekProps", "KEK_SIZES", "KEK_OUTPUTS"]

# BYOK spec §1.1: "an RSA-HSM key (4096-bit or 3072-bit or 2048-bit)".
KEK_SIZES: tuple[int, ...] = (2048, 3072, 4096)
DEFAULT_KEK_SIZE = 4096
# Outputs beyond the echoed inputs.
KEK_OUTPUTS: tuple[str, ...] = ("kid", "version", "public_key_pem", "fingerprint", "key_ops", "enabled",
                                 ownership.OWNER_OUTPUT)

@dataclass(frozen=True, slots=True)
class KekProps:
    """The KEK's inputs, checked and normalised: an https vault URL, a Key Vault name, an allowed size."""

    vault_url: str
    key_name: str
    key_size: int = DEFAULT_KEK_SIZE
    purge_on_delete: bool = False

    @classmethod
    def from_dict(cls, props: Mapping[str, Any]) -> "KekProps":
        """Parse engine properties (sizes arrive as floats); raise InputError naming the property at fault."""
        vault_url = normalize_vault_url(props.get("vault_url"), input="vault_url")
        key_name = check_key_name(props.get("key_name"), input="key_name")
        return cls(vault_url, key_name, _size(props.get("key_size")), bool(props.get("purge_on_delete") or False))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def key_id(self) -> str:
        """The unversioned key identifier, used as the resource id (stable across new KEK versions)."""
        return f"{self.vault_url}/keys/{self.key_name}"


def _size(value: object) -> int:
    if value is None:
        return DEFAULT_KEK_SIZE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value \
            or int(value) not in KEK_SIZES:
        raise InputError(f"must be 2048, 3072 or 4096 (BYOK spec: RSA-HSM KEK sizes), got {value!r}",
                         input="key_size")
    return int(value)


def _outputs(props: KekProps, key: Any, marker: str | None) -> dict[str, Any]:
    """Echo the inputs and add what the vault reports for this KEK version (public parts only), and the owner
    marker (None only for state written before markers existed)."""
    public = key.public
    return {
        **props.to_dict(),
        "key_size": public.size if public is not None else props.key_size,
        "kid": key.kid,
        "version": key.version,
        "public_key_pem": public.public_pem if public is not None else None,
        "fingerprint": public.fingerprint if public is not None else None,
        "key_ops": list(key.key_ops),
        "enabled": key.enabled,
        ownership.OWNER_OUTPUT: marker,
    }


def _is_kek(key: Any) -> bool:
    return str(key.kty).startswith("RSA") and sorted(key.key_ops) == ["import"]


class DataPlaneKekProvider(ResourceProvider):
    """CRUD for a data-plane KEK. ``check``/``diff`` are offline and pure (they run during previews)."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Called on every preview and update: validate and normalise the inputs, without any network call."""
        inputs = dict(news)
        failures: list[CheckFailure] = []
        checks = (("vault_url", lambda v: normalize_vault_url(v, input="vault_url")),
                  ("key_name", lambda v: check_key_name(v, input="key_name")),
                  ("key_size", _size))
        for name, check in checks:
            value = news.get(name)
            if is_unknown(value):
                continue
            try:
                inputs[name] = check(value)
            except ByokError as exc:
                failures.append(CheckFailure(name, exc.reason))
        if not is_unknown(news.get("purge_on_delete")):
            inputs["purge_on_delete"] = bool(news.get("purge_on_delete") or False)
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Vault or name changed -> replace (a different key). Size changed -> update: a new KEK version.

        A size change is deliberately not a replacement: replacing a same-named key would delete the
        name after creating it (or, deleting first, collide with the soft-deleted name).
        """
        replaces: list[str] = []
        changed: list[str] = []
        for name in ("vault_url", "key_name"):
            new, old = news.get(name), olds.get(name)
            if is_unknown(new) or new != old:
                # Key Vault names (and hosts) are case-insensitive: another case is the same key, an update
                # that records the new spelling. A replacement would adopt the KEK, then delete it.
                same = isinstance(new, str) and isinstance(old, str) and _same_place(name, new, old)
                (changed if same else replaces).append(name)
        new_size = news.get("key_size")
        if is_unknown(new_size) or _size_or_none(new_size) != _size_or_none(olds.get("key_size")):
            changed.append("key_size")
        if is_unknown(news.get("purge_on_delete")) or \
                bool(news.get("purge_on_delete") or False) != bool(olds.get("purge_on_delete") or False):
            changed.append("purge_on_delete")
        return DiffResult(changes=bool(replaces or changed), replaces=replaces, stables=[],
                          delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Called by `pulumi up` for a new KEK (and the new side of a replacement). Idempotent: an existing
        import-only RSA key of this size is adopted. Either way the current version gets a fresh owner marker
        (ownership.py), so the delete of a resource this one replaces leaves the KEK alone.

        A name that holds any other key is refused rather than given a KEK version on top. A soft-deleted KEK of
        this size (what a delete-before-replace replacement leaves behind) is recovered and adopted.
        """
        from . import vault

        p = KekProps.from_dict(props)
        marker = ownership.new_marker()
        kv = vault.client(p.vault_url)
        existing = vault.get_key(kv, p.key_name)
        if existing is not None:
            if not _is_kek(existing):
                raise KeyConflictError(
                    f"{p.key_id} already holds a {existing.kty} key with ops {list(existing.key_ops)}; "
                    "a KEK needs a name of its own (RSA-HSM, ops exactly ['import'])", input="key_name")
            if existing.enabled and existing.public is not None and existing.public.size == p.key_size:
                return CreateResult(p.key_id, _outputs(p, _claim(kv, p.key_name, existing, marker), marker))
        try:
            return CreateResult(p.key_id, _outputs(p, _new_version(kv, p, marker), marker))
        except KeyDeletedError:
            deleted = vault.get_deleted_key(kv, p.key_name)
            if deleted is None or not _is_kek(deleted) or deleted.public is None or deleted.public.size != p.key_size:
                raise
            ownership.warn(f"create {p.key_id}: recovering the soft-deleted KEK of the declared size")
            recovered = vault.recover(kv, p.key_name)
            return CreateResult(p.key_id, _outputs(p, _claim(kv, p.key_name, recovered, marker), marker))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Called when ``key_size`` or ``purge_on_delete`` changed: a new size makes a new KEK version."""
        from . import vault

        p = KekProps.from_dict(news)
        if _size_or_none(olds.get("key_size")) != p.key_size:
            kv = vault.client(p.vault_url)
            marker = ownership.marker_of(olds) or ownership.new_marker()
            return UpdateResult(_outputs(p, _new_version(kv, p, marker), marker))
        keep = {k: olds.get(k) for k in KEK_OUTPUTS}
        return UpdateResult({**p.to_dict(), "key_size": p.key_size, **keep})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Called by `pulumi refresh`: report the KEK version held in state as the vault has it now.

        A key that is gone (deleted, or its version no longer exists) returns a blank id, so refresh
        drops it from state. The owner marker in state is kept; a KEK another resource took over is reported.
        """
        from . import vault

        p = KekProps.from_dict(props)
        version = None
        if isinstance(props.get("kid"), str) and props["kid"]:
            version = KeyId.parse(props["kid"], versioned=False, input="kid").version
        found = vault.get_key(vault.client(p.vault_url), p.key_name, version)
        if found is None:
            return ReadResult("", {})
        marker = ownership.marker_of(props)
        verdict = ownership.may_remove(marker, found.tags)
        if not verdict.remove:
            ownership.warn(f"refresh {p.key_id}: destroying this resource will leave the KEK in the vault: "
                           f"{verdict.why}")
        outs = _outputs(p, found, marker)
        return ReadResult(id_ or p.key_id, outs, inputs=p.to_dict() | {"key_size": outs["key_size"]})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Called on destroy or the old side of a replacement: soft-delete the KEK (purge too when
        ``purge_on_delete``) — only while it carries this resource's owner marker (or none; ownership.py)."""
        from . import vault

        p = KekProps.from_dict(props)
        vault.delete_if_owned(vault.client(p.vault_url), p.key_name, ownership.marker_of(props),
                              purge=p.purge_on_delete, key=p.key_id)


def _same_place(name: str, new: str, old: str) -> bool:
    """Whether two vault URLs / key names designate the same vault / key (Key Vault ignores case in both)."""
    if name == "vault_url":
        try:
            return normalize_vault_url(new).lower() == normalize_vault_url(old).lower()
        except InputError:
            return False
    return new.lower() == old.lower()


def _claim(kv: Any, name: str, existing: Any, marker: str) -> Any:
    """Write ``marker`` onto the KEK's current version (one PATCH; its other reserved tags are kept)."""
    from . import vault

    return vault.update_properties(kv, name, existing.version,
                                   tags=ownership.vault_tags(ownership.user_tags(existing.tags), marker,
                                                             existing.tags))


def _new_version(kv: Any, p: KekProps, marker: str) -> Any:
    """A new KEK version carrying ``marker``."""
    from . import vault

    return vault.create_kek(kv, p.key_name, size=p.key_size, tags=ownership.vault_tags({}, marker))


def _size_or_none(value: object) -> Optional[int]:
    try:
        return _size(value)
    except InputError:
        return None


@dataclass(kw_only=True)
class DataPlaneKekArgs:
    """Inputs of a DataPlaneKek, a KEK made through the vault's data plane (RSA-HSM, ops exactly ``["import"]``).

    Keyword-only, like every other Args class.

    Attributes:
        vault_url: The vault, ``https://NAME.vault.azure.net``, a Managed HSM or a loopback local vault.
            Changing it replaces the KEK.
        key_name: The KEK's key name (e.g. ``KEKforBYOK``); a name holding any other key is refused.
            Changing it replaces the KEK.
        key_size: RSA modulus bits, 2048/3072/4096 (default 4096). Changing it makes a new KEK version.
        purge_on_delete: On destroy, also purge the soft-deleted KEK (default False; refused under purge
            protection).
    """

    vault_url: pulumi.Input[str]
    key_name: pulumi.Input[str]
    key_size: Optional[pulumi.Input[int]] = None
    purge_on_delete: Optional[pulumi.Input[bool]] = None


class DataPlaneKek(Resource, module="byok", name="Kek"):
    """A KEK created through the data plane (type ``pulumi-python:dynamic/byok:Kek``).

    ``kid`` is the versioned key identifier that goes in a transfer blob's header.
    """

    vault_url: pulumi.Output[str]
    key_name: pulumi.Output[str]
    key_size: pulumi.Output[int]
    purge_on_delete: pulumi.Output[bool]
    kid: pulumi.Output[str]
    version: pulumi.Output[str]
    public_key_pem: pulumi.Output[str]
    fingerprint: pulumi.Output[str]
    key_ops: pulumi.Output[list[str]]
    enabled: pulumi.Output[bool]
    owner: pulumi.Output[str]

    def __init__(self, resource_name: str, args: DataPlaneKekArgs,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props: dict[str, Any] = {name: None for name in KEK_OUTPUTS}
        props.update({f.name: getattr(args, f.name) for f in fields(args)})
        if props["key_size"] is None:
            props["key_size"] = DEFAULT_KEK_SIZE
        if props["purge_on_delete"] is None:
            props["purge_on_delete"] = False
        super().__init__(DataPlaneKekProvider(), resource_name, props, opts)
