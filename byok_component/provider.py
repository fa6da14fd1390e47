"""ByokKeyProvider: the Pulumi dynamic provider behind ``ByokKey`` — thin glue between props and vault.

It holds no state and builds its Key Vault client inside each method; it lives in this importable module,
so Pulumi pickles it by reference (a few dozen bytes naming the class, no code, no credentials;
https://www.pulumi.com/docs/iac/concepts/resources/dynamic-providers/). ``check`` and ``diff`` are offline (they run in every preview); the Azure SDK
is imported only by the methods that talk to a vault.
"""

from __future__ import annotations

import copy
import functools
import re
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, TypeVar

from pulumi.dynamic import (CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, ResourceProvider,
                            UpdateResult)

from . import ownership, refusals, verify
from . import props as P
from . import rfc3339
from .blob import TransferBlob
from .errors import ByokError, InputError, KeyConflictError, KeyDeletedError, UnwrapError
from .files import holds_content
from .keys import PublicKeyInfo
from .kid import KeyId, normalize_vault_url
from .wrap import split, wrap

if TYPE_CHECKING:  # pragma: no cover
    from azure.keyvault.keys import KeyClient

    from .vault import VaultKey

__all__ = ["ByokKeyProvider"]


T = TypeVar("T")


def _plain_inputs(method: Callable[..., T]) -> Callable[..., T]:
    """Secret-marked inputs (check's answer, as an in-process caller hands it back) arrive as plain values, as the
    engine sends them to a provider that does not accept secrets."""
    @functools.wraps(method)
    def plain(self: Any, *args: Any) -> T:
        return method(self, *(P.unwrap_secrets(a) if isinstance(a, dict) else a for a in args))
    return plain


class ByokKeyProvider(ResourceProvider):
    """CRUD for a BYOK key in Key Vault. Stateless: safe to share between the engine's worker threads."""

    # --- offline: previews -------------------------------------------------------------------------------
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Called first on every preview and update: validate offline, add the fingerprint and derived facts."""
        result = P.check(P.unwrap_secrets(olds), P.unwrap_secrets(news))
        return CheckResult(P.mark_secrets(result.inputs),
                           [engine_failure(prop, reason, news.get(prop)) for prop, reason in result.failures])

    @_plain_inputs
    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Called on previews and updates: old outputs (what the vault held) against the new checked inputs.

        Vault or name changed -> replace; other material (fingerprint) -> update importing a new version;
        ops/enabled/dates/tags -> update in place; kek_id or paths alone -> nothing.
        """
        d = P.diff(olds, news)
        return DiffResult(changes=d.changes, replaces=list(d.replaces), stables=[],
                          delete_before_replace=d.delete_before_replace)

    # --- online: pulumi up / refresh / destroy ---------------------------------------------------------
    @_plain_inputs
    def create(self, props: dict[str, Any]) -> CreateResult:
        """Called by `pulumi up` for a new key (and for the new side of any replacement): wrap, import, confirm.

        Idempotent on a name that holds our material: the key is adopted (no new version). Either way the
        current version gets a fresh owner marker (ownership.py), so the delete of a resource this one replaces
        leaves the key alone. An existing key with other material is refused (unless ``adopt_existing``: then
        this material is imported as a new version of it). A soft-deleted key holding this very material (RSA/EC,
        by public key) is recovered and adopted — what a delete-before-replace replacement leaves behind; any other
        soft-deleted name is refused with how to recover or purge it.
        """
        from . import vault

        p = P.KeyProps.from_inputs(props)
        marker = ownership.new_marker()
        with _context("create", p.id):
            material = P.load_material(p)
            kv = vault.client(p.vault_url)
            existing = vault.get_key(kv, p.key_name)
            settled = _settle(kv, p, existing, material.public, material.ciphertext) if existing else None
            if existing is None:
                # A soft-deleted name needs no extra GET: the import's 409 says so (KeyDeletedError).
                try:
                    found = _import(kv, p, material, existing, marker)
                except KeyDeletedError:
                    recovered = _recover_if_declared(kv, p, material.public)
                    if recovered is None:
                        raise
                    found = _patch(kv, p, recovered, material.public.kty, marker)
            elif settled is not None or _holds(kv, existing, material):
                found = _patch(kv, p, settled or existing, material.public.kty, marker)  # adopt: no new version
            elif p.adopt_existing:
                found = _import(kv, p, material, existing, marker)
            else:
                held = existing.fingerprint or "an AES key that is not this one or cannot be compared"
                raise KeyConflictError(
                    f"already holds other key material ({existing.kty}, {held}); set adopt_existing to import "
                    "this material as a new version of that key, or choose another key_name", input="key_name")
            return CreateResult(p.id, _outputs(p, found, material.public, marker))

    @_plain_inputs
    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Called by `pulumi up` when diff found changes: new material imports a new version, else one PATCH.

        The private key is read only when a new version is imported, so a property change needs no key_file.
        The resource keeps its owner marker (state from an older provider gets one now) and writes it onto the
        version it leaves current.
        """
        from . import vault

        p = P.KeyProps.from_inputs(news)
        marker = ownership.marker_of(olds) or ownership.new_marker()
        with _context("update", p.id):
            kv = vault.client(p.vault_url)
            current = vault.get_key(kv, p.key_name)
            if current is None:
                if vault.is_deleted(kv, p.key_name):
                    raise KeyDeletedError(_deleted_message(p) + "; or run `pulumi refresh` to forget it",
                                          input="key_name")
                material = P.load_material(p)
                return UpdateResult(_outputs(p, _import(kv, p, material, current, marker), material.public, marker))
            if verify.unverified(current):  # a wrapped version an earlier run imported but did not make live
                declared = P.public_material(news, kek_id=p.kek_id, key_type=p.declared_key_type)
                ciphertext = P.load_material(p).ciphertext if p.wrapped_key_file else None
                current = _settle(kv, p, current, declared, ciphertext) or current
            wanted = p.fingerprint or P.public_material(news, kek_id=p.kek_id,
                                                       key_type=p.declared_key_type).fingerprint
            if current.public is not None:
                material_changed = current.public.fingerprint != wanted
            else:  # an AES key: the vault never shows it, so trust state (and any version we did not make)
                material_changed = olds.get("fingerprint") != wanted or olds.get("version") != current.version
            material = P.load_material(p) if material_changed else None
            # An AES version state does not know may still hold this key (an update that crashed after importing
            # it): the vault is asked before importing a duplicate.
            if material is not None and not (current.public is None and _holds(kv, current, material)):
                return UpdateResult(_outputs(p, _import(kv, p, material, current, marker), material.public, marker))
            public = current.public or _oct_public(olds, current.version) or (
                material.public if material is not None else
                P.public_material(news, kek_id=p.kek_id, key_type=p.declared_key_type))
            return UpdateResult(_outputs(p, _patch(kv, p, current, public.kty, marker), public, marker))

    @_plain_inputs
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Called by `pulumi refresh`: what the vault holds now. A deleted key returns a blank id (dropped).

        Ops, enabled, dates, tags, the current version and (RSA/EC) the fingerprint come from the vault;
        the returned inputs carry the same values so the next preview diffs against reality. Reserved tags are
        not the user's and never show as drift; a key another resource has taken over is reported (its destroy
        will leave the key alone), the owner marker in state is kept.
        """
        from . import vault

        vault_url, key_name = _where(id_, props)
        with _context("read", P.key_id(vault_url, key_name)):
            kv = vault.client(vault_url)
            current = vault.get_key(kv, key_name)
            if current is not None:  # a wrapped version that was never verified is not recorded (verify.py)
                current = verify.live_version(kv, current)
            if current is None:
                return ReadResult("", {})
            verdict = ownership.may_remove(ownership.marker_of(props), current.tags)
            if not verdict.remove:
                ownership.warn(f"refresh {P.key_id(vault_url, key_name)}: destroying this resource will leave the key "
                               f"in the vault: {verdict.why}")
            old = {k: props[k] for k in P.OUTPUTS if props.get(k) is not None}
            if isinstance(old.get("key_size"), float):  # numbers arrive as floats
                old["key_size"] = int(old["key_size"])
            outs = {**old, **_vault_facts(current, _oct_public(props, current.version))}
            outs.update(vault_url=vault_url, key_name=key_name)
            outs = {k: v for k, v in outs.items() if v is not None}
            inputs = {k: outs[k] for k in P.INPUTS + P.DERIVED if k in outs and k not in P.SECRET_INPUTS}
            return ReadResult(P.key_id(vault_url, key_name), outs, inputs=inputs)

    @_plain_inputs
    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Called on destroy, and for the old side of a replacement: soft-delete; purge too when ``purge_on_delete``.

        Only a key this resource still owns is removed (ownership.py): when a replacement's create has adopted
        it (``--replace``, taint, a cascade, a case-only rename), its marker is no longer ours and the key stays,
        with the reason on stderr. Absent counts as deleted; a soft-deleted key is purged only if it was ours.
        """
        from . import vault

        vault_url, key_name = _where(id_, props)
        key = P.key_id(vault_url, key_name)
        purge = props.get("purge_on_delete") is True
        with _context("delete", key):
            vault.delete_if_owned(vault.client(vault_url), key_name, ownership.marker_of(props), purge=purge, key=key)


# --- helpers -------------------------------------------------------------------------------------------------
def engine_failure(prop: str, reason: str, value: object = None) -> CheckFailure:
    """A CheckFailure the engine can print safely.

    The engine prints a failing property's value from the program's inputs (step_generator.go
    issueCheckFailures, ``%v``). Pulumi v3.274.1 masks a value the program marked secret (``{[secret]}``; ByokKey
    marks key_password and pkcs11_pin) but not every secret is marked (pulumi/pulumi#19465), so a secret property is
    never the failing property: it is named in the text of a failure against no property (the engine then prints
    the resource and the reason only). The same goes for a ``value`` that may hold a secret although its property
    is not secret, which the engine prints in clear: a key pasted where its path goes, a ``pkcs11_uri`` carrying
    ``pin-value`` (RFC 7512 §2.4).
    """
    pin_in_uri = isinstance(value, str) and re.search(r"pin(-|%2d)value", value, re.IGNORECASE) is not None
    if prop in P.SECRET_INPUTS or holds_content(value) or pin_in_uri:
        return CheckFailure("", f"{prop}: {reason}")
    return CheckFailure(prop, reason)


@contextmanager
def _context(action: str, key: str) -> Iterator[None]:
    """Prefix our errors with what was being done to which key; drop the chained traceback (no lower text)."""
    try:
        yield
    except ByokError as exc:
        error = copy.copy(exc)
        error.args = (f"{action} {key}: {exc}",)
        raise error from None


def _deleted_message(p: P.KeyProps) -> str:
    """What to do about a soft-deleted name: az flags for a vault or a Managed HSM (``--hsm-name``, and there
    only Managed HSM Crypto Officer may recover or purge); a purge is refused under purge protection."""
    flag = refusals.cli_target(p.vault_url)
    officer = " (needs the Managed HSM Crypto Officer role)" if refusals.is_managed_hsm(p.vault_url) else ""
    return (f"is soft-deleted in {p.vault_url}: recover it (`az keyvault key recover {flag} --name {p.key_name}`)"
            f"{officer}, or purge it (`az keyvault key purge {flag} --name {p.key_name}`; refused under purge "
            "protection until the retention period ends), or choose another key_name")


def _where(id_: str, props: Mapping[str, Any]) -> tuple[str, str]:
    """Vault URL and key name from state, else from the id (a get by id passes only the id)."""
    vault_url, key_name = props.get("vault_url"), props.get("key_name")
    if isinstance(vault_url, str) and isinstance(key_name, str):
        return normalize_vault_url(vault_url), key_name
    kid = KeyId.parse(id_, versioned=False, input="id")
    return kid.vault_url, kid.name


def _holds(kv: "KeyClient", existing: "VaultKey", material: P.Material) -> bool:
    """Whether the vault's version holds this material: by public key, or for an AES key by asking the vault."""
    from . import vault

    if existing.public is not None:
        return existing.public.fingerprint == material.public.fingerprint
    if material.ciphertext is not None and verify.made_from(existing, material.ciphertext):
        return True  # a wrapped AES key: the version records the ciphertext it was made from
    if material.target is None or material.target.kty != "oct":
        return False  # an AES key wrapped elsewhere: we never see it, so it cannot be compared
    return vault.holds_aes_key(kv, existing, material.target.wrapping_plaintext()) is True


def _settle(kv: "KeyClient", p: P.KeyProps, vk: "VaultKey", declared: PublicKeyInfo,
            ciphertext: bytes | None) -> "VaultKey | None":
    """A version an earlier run imported disabled and did not make live (verify.py): made live now if it holds
    the declared material, refused again (raises) if it was made from this ciphertext and does not; None when
    it has nothing to do with these inputs (or is verified)."""
    if not verify.unverified(vk):
        return None
    if vk.fingerprint == declared.fingerprint or (ciphertext is not None and verify.made_from(vk, ciphertext)):
        return verify.settle(kv, vk, declared, enabled=p.enabled, **_wrapped_inputs(p))
    return None


def _wrapped_inputs(p: P.KeyProps) -> dict[str, str]:
    """Which inputs a version wrapped elsewhere came from (``wrapped``) and was compared with (``source``): a key
    wrapped inside its token is compared with the token's own public key (public_key_file, if given, matched it)."""
    if p.pkcs11_uri:
        return {"wrapped": "pkcs11_uri", "source": "pkcs11_uri"}
    return {"wrapped": "wrapped_key_file", "source": "public_key_file"}


def _recover_if_declared(kv: "KeyClient", p: P.KeyProps, public: PublicKeyInfo) -> "VaultKey | None":
    """Recover the soft-deleted ``p.key_name`` if it holds the declared material (compared by public key; an AES
    key cannot be compared while deleted, so it is not recovered). None when it is not the declared key."""
    from . import vault

    deleted = vault.get_deleted_key(kv, p.key_name)
    if deleted is None or deleted.public is None or deleted.public.fingerprint != public.fingerprint:
        return None
    ownership.warn(f"create {p.id}: recovering the soft-deleted key: it holds the declared material "
                   f"({public.fingerprint})")
    return vault.recover(kv, p.key_name)


def _oct_public(state: Mapping[str, Any], version: str) -> PublicKeyInfo | None:
    """An AES key's identity from state, valid only while the vault's current version is the one we made."""
    fingerprint, size = state.get("fingerprint"), state.get("key_size")
    if state.get("version") != version or not isinstance(fingerprint, str) or size is None:
        return None
    return PublicKeyInfo("oct", int(size), None, fingerprint, None, ())


def _ops(p: P.KeyProps, kty: str) -> list[str]:
    return list(p.key_ops) if p.key_ops is not None else list(P.KEY_OPS_BY_TYPE[kty])


def _import(kv: "KeyClient", p: P.KeyProps, material: P.Material, current: "VaultKey | None",
            marker: str) -> "VaultKey":
    """Wrap (or take the ciphertext wrapped elsewhere), import as a new version, confirm the public key.

    ``current`` is what the vault held before (None: nothing); a soft-deleted name is refused with the way out.
    The new version carries the user's tags and the owner ``marker``. Ciphertext wrapped elsewhere or inside a
    PKCS#11 token (RSA/EC) is imported disabled and made live only once its public key matches the declared one
    (verify.py).
    """
    from . import vault

    kek = vault.fetch_kek(p.kek_id)
    if material.token is not None:  # wrapped inside the token: the key never exists here in clear
        from .pkcs11 import wrap_in_token
        ciphertext = wrap_in_token(material.token, kek.public_key,
                                   expected_fingerprint=material.public.fingerprint).ciphertext
    elif material.target is not None:
        ciphertext = wrap(kek.public_key, material.target.wrapping_plaintext())
    else:
        assert material.ciphertext is not None
        ciphertext = material.ciphertext
        try:
            split(ciphertext, (kek.size + 7) // 8)
        except UnwrapError as exc:
            raise InputError(f"{exc.reason} — it was not wrapped by {kek.kid}", input="wrapped_key_file") from None
    public = material.public
    checkable = public.kty in ("RSA", "EC")
    tags = ownership.vault_tags(p.tags, marker)
    # Ciphertext we could not check before the import: wrapped elsewhere, or inside a token (which we trust only
    # as far as its probe went).
    wrapped = material.ciphertext is not None or material.token is not None
    if wrapped:  # imported disabled, compared, then made live (verify.py); recognised by its ciphertext digest
        tags = verify.pending_tags(tags, ciphertext, checkable=checkable)
    try:
        found = vault.import_blob(
            kv, p.key_name, TransferBlob.build(kek.kid, ciphertext), kty=public.kty, curve=public.curve,
            key_ops=_ops(p, public.kty), enabled=p.enabled and not (wrapped and checkable), not_before=p.not_before,
            expires_on=p.expires_on, tags=tags, current=current,
            expected_fingerprint=public.fingerprint if checkable and not wrapped else None,
            expected_tags={verify.CIPHERTEXT_TAG: tags[verify.CIPHERTEXT_TAG]} if wrapped else None)
    except KeyDeletedError:
        raise KeyDeletedError(_deleted_message(p), input="key_name") from None
    if wrapped and checkable:
        return verify.settle(kv, found, public, enabled=p.enabled, **_wrapped_inputs(p))
    if checkable and found.fingerprint != public.fingerprint:
        raise KeyConflictError(
            f"the vault holds version {found.version} with public key {found.fingerprint}, not the expected "
            f"{public.fingerprint}: the imported ciphertext does not hold the material described by "
            f"{'public_key_file' if material.ciphertext is not None else 'key_file'}", input="key_name")
    return found


def _patch(kv: "KeyClient", p: P.KeyProps, current: "VaultKey", kty: str, marker: str) -> "VaultKey":
    """PATCH the current version to the declared properties and owner ``marker``; no call when nothing differs.

    Reserved tags other than the owner's that the version holds are kept.
    """
    from . import vault

    changes: dict[str, Any] = {}
    ops = _ops(p, kty)
    if set(current.key_ops) != set(ops):
        changes["key_ops"] = ops
    if current.enabled != p.enabled:
        changes["enabled"] = p.enabled
    for name in ("not_before", "expires_on"):
        wanted: datetime | None = getattr(p, name)
        if wanted is not None and getattr(current, name) != wanted:
            changes[name] = wanted
    tags = ownership.vault_tags(p.tags, marker, current.tags)
    if dict(current.tags) != tags:
        changes["tags"] = tags
    if not changes:
        return current
    return vault.update_properties(kv, p.key_name, current.version, **changes)


def _vault_facts(found: "VaultKey", oct_public: PublicKeyInfo | None) -> dict[str, Any]:
    """Outputs that reflect the vault: version, kid, ops, enabled, dates, tags, public facts."""
    public = found.public or oct_public
    facts: dict[str, Any] = {
        "kid": found.kid, "version": found.version, "key_ops": sorted(found.key_ops), "enabled": found.enabled,
        "not_before": rfc3339.format(found.not_before), "expires_on": rfc3339.format(found.expires_on),
        "tags": ownership.user_tags(found.tags),
        "key_type": found.kty.removesuffix("-HSM"),
        "fingerprint": public.fingerprint if public else None,
    }
    if public is not None:
        facts.update(key_type=public.kty, key_size=public.size, curve=public.curve, public_key_pem=public.public_pem)
    return facts


def _outputs(p: P.KeyProps, found: "VaultKey", material: PublicKeyInfo, marker: str) -> dict[str, Any]:
    """The inputs echoed (never the password), then what the vault reports for the version it holds, and the
    owner marker."""
    outs: dict[str, Any] = {**p.echo(), "key_size": material.size, "curve": material.curve,
                            "public_key_pem": material.public_pem, ownership.OWNER_OUTPUT: marker}
    outs.update(_vault_facts(found, material if found.public is None else None))
    return {k: v for k, v in outs.items() if v is not None}
