"""What ``byok import``, ``byok verify`` and ``byok kek create`` check against the vault before and after they act.

Why: the command line is where people import by hand, and a careless import is the way a vault ends up holding a
key other than the one meant: a name that holds other material silently gets a new current version, the same
``.byok`` twice makes a duplicate, a signing key's name gets an RSA-HSM ``[import]`` version stacked on it, and
ciphertext goes to whatever ``--vault-url`` says. These rules are the provider's (create refuses other material,
verify.py makes a wrapped version live only once it matches), applied to one-off commands. Pure decisions on
what the vault returned; the commands do the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from . import verify
from .blob import TransferBlob
from .console import next_step
from .errors import InputError, KeyConflictError
from .keys import PublicKeyInfo
from .kid import KeyId, normalize_vault_url

if TYPE_CHECKING:  # pragma: no cover
    from .vault import VaultKey

__all__ = ["check_blob_vault", "finishes", "refuse_taken", "refuse_existing_kek", "Verdict", "verdict"]


def check_blob_vault(blob: TransferBlob, vault_url: str) -> str:
    """The normalised ``--vault-url``; refused (before anything is sent) when the blob's KEK lives elsewhere."""
    url = normalize_vault_url(vault_url, input="--vault-url")
    kek_vault = KeyId.parse(blob.kid, versioned=True, input="--byok-file").vault_url
    if kek_vault != url:
        raise InputError(next_step(
            f"was wrapped for KEK {blob.kid} of {kek_vault}, not for a KEK of --vault-url {url}: that vault "
            "cannot unwrap it, so nothing was sent",
            f"import it into {kek_vault}, or wrap the key again for this vault's KEK (byok kek download "
            f"--vault-url {url} --name KEK -o KEK.pem; byok wrap --kek-pem KEK.pem --kek-id KID ...)"),
            input="--byok-file")
    return url


def _held(vk: "VaultKey") -> str:
    return f"{vk.kty} {vk.fingerprint}" if vk.fingerprint else f"{vk.kty} (an AES key: the vault never shows it)"


def finishes(existing: "VaultKey | None", blob: TransferBlob, expected: PublicKeyInfo | None, *,
             new_version: bool) -> bool:
    """Whether the current version is this very ``.byok``'s import, left disabled and unverified by an earlier
    run (stopped before the comparison, or compared with another key), that holds ``expected``: then it is made
    live rather than refused or imported again."""
    return (existing is not None and not new_version and expected is not None and verify.unverified(existing)
            and verify.made_from(existing, blob.ciphertext) and existing.fingerprint == expected.fingerprint)


def refuse_taken(existing: "VaultKey | None", blob: TransferBlob, expected: PublicKeyInfo | None, *,
                 new_version: bool) -> None:
    """Refuse to import onto a name that already holds a key, unless ``--new-version`` says a new version is meant.

    Named precisely: the same ciphertext already imported (by its ``byok-ciphertext-sha256`` tag), the same
    material already current (by ``--public-key``), or other material.
    """
    if existing is None or new_version:
        return
    where = f"{existing.name}'s current version {existing.version}"
    if verify.made_from(existing, blob.ciphertext) and verify.unverified(existing):
        raise KeyConflictError(f"{where} was imported from this very .byok file but never shown to match "
                               f"(tag {verify.UNVERIFIED_TAG}={existing.tags[verify.UNVERIFIED_TAG]}, enabled: "
                               f"{'yes' if existing.enabled else 'no'}); rerun with the --public-key it holds to "
                               "make it live",
                               input="--name")
    if verify.made_from(existing, blob.ciphertext):
        raise KeyConflictError(f"{where} was imported from this very .byok file; nothing to do (--new-version "
                               "imports it again as another version)", input="--name")
    if expected is not None and existing.fingerprint == expected.fingerprint:
        raise KeyConflictError(f"{where} already holds this material ({expected.fingerprint}); nothing to do "
                               "(--new-version imports it again as another version)", input="--name")
    if expected is None:  # --kty: nothing to compare with, so the held key may well be this very material
        raise KeyConflictError(f"{where} holds a key ({_held(existing)}) and without --public-key byok cannot tell "
                               "whether this file holds the same material; importing would make this file the key's "
                               "current version: add --public-key to compare, --new-version if a rotation is meant, "
                               "or choose another --name", input="--name")
    raise KeyConflictError(f"{where} holds other key material ({_held(existing)}); importing would make this file "
                           "the key's current version: add --new-version if a rotation is meant, or choose another "
                           "--name", input="--name")


def refuse_existing_kek(existing: "VaultKey | None", name: str, vault_url: str) -> None:
    """``byok kek create`` makes a new key: a name that holds any key is refused (a signing key would get an
    RSA-HSM ``[import]`` version stacked on top of it)."""
    if existing is None:
        return
    if existing.kty == "RSA-HSM" and sorted(existing.key_ops) == ["import"] and existing.enabled:
        hint = (f"it is already a KEK ({existing.kid}): use it, e.g. byok kek download --vault-url {vault_url} "
                f"--name {name}")
    else:
        hint = f"it is not a KEK ({existing.kty}, ops {' '.join(existing.key_ops) or 'none'}): choose another --name"
    raise KeyConflictError(f"key {name} already exists in {vault_url}; {hint}", input="--name")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What ``byok verify`` proved about the vault's current version, line by line."""

    ok: bool
    lines: tuple[str, ...]
    data: dict[str, Any] = field(default_factory=dict)


def verdict(vk: "VaultKey", *, public: PublicKeyInfo | None = None, aes_match: bool | None = None,
            aes_file: PublicKeyInfo | None = None, expect_ops: Sequence[str] | None = None,
            expect_enabled: bool = True) -> Verdict:
    """Compare a version with a key file (public half, or for AES the vault's wrapKey probe) and what the user
    expects of it. ``ok`` only when the material is proven the same and enabled/ops are as expected."""
    lines: list[str] = []
    data: dict[str, Any] = {"kid": vk.kid, "kty": vk.kty, "enabled": vk.enabled, "key_ops": sorted(vk.key_ops)}
    if public is not None:
        same = vk.fingerprint == public.fingerprint
        data.update(material="same" if same else "other", vault_fingerprint=vk.fingerprint,
                    file_fingerprint=public.fingerprint)
        lines.append(f"material: {'holds this key' if same else 'holds OTHER material'} (vault "
                     f"{vk.fingerprint}, file {public.fingerprint}) - compared public keys")
    else:
        assert aes_file is not None
        same = aes_match is True
        data.update(material={True: "same", False: "other", None: "unknown"}[aes_match],
                    file_fingerprint=aes_file.fingerprint, key_size=aes_file.size)
        if aes_match is None:
            why = ("the version lacks the wrapKey operation or is disabled, or the principal may not use it"
                   if vk.kty.startswith("oct") else f"the vault holds a {vk.kty} key, not an AES key")
            lines.append(f"material: cannot be proven ({why})")
        else:
            lines.append(f"material: holds this AES-{aes_file.size} key - the vault wrapped a random probe with its "
                         "key and the result was compared with the file's" if same else
                         f"material: holds OTHER material than this AES-{aes_file.size} key - the vault's wrap of a "
                         "random probe differs from the file's, or its AES key has another size")
    enabled_ok = vk.enabled == expect_enabled
    lines.append(f"enabled: {'yes' if vk.enabled else 'no'}" + ("" if enabled_ok else
                                                               f" (expected {'yes' if expect_enabled else 'no'})"))
    ops_ok = expect_ops is None or set(vk.key_ops) == set(expect_ops)
    lines.append(f"ops: {' '.join(sorted(vk.key_ops)) or 'none'}" + ("" if ops_ok else
                                                                     f" (expected {' '.join(sorted(expect_ops or ()))})"))
    if verify.unverified(vk):
        lines.append(f"note: tagged {verify.UNVERIFIED_TAG}={vk.tags[verify.UNVERIFIED_TAG]} (a wrapped import "
                     "that was never shown to match)")
    data.update(enabled_as_expected=enabled_ok, ops_as_expected=ops_ok)
    ok = same and enabled_ok and ops_ok
    data["verified"] = ok
    return Verdict(ok, tuple(lines), data)
