"""Ciphertext wrapped elsewhere goes live only once the vault shows it holds the declared material.

Why: ``wrapped_key_file`` is ciphertext we cannot open, so nothing says which key it holds until the vault has
unwrapped it. Imported enabled, a wrong file would be the current, usable version before anyone could look.
So such a version is imported **disabled**, its public key (the vault's answer to the import) is compared
with ``public_key_file``, and only then does one PATCH apply the declared ``enabled``.

Two reserved tags on the version record what happened, so a rerun recognises its own work:

- ``byok-ciphertext-sha256`` = base64url(SHA-256 of the ciphertext): this version came from that ciphertext
  (the same digest as a wrapped AES key's fingerprint ``wrapped-sha256:…``). A rerun with the same file imports
  nothing: the version is adopted (verified), verified now (an earlier run stopped after the import), or
  refused again (it did not match). It also lets a wrapped AES key, which the vault can never compare, be
  recognised instead of imported twice.
- ``byok-unverified`` = ``pending`` from the import until the comparison, ``mismatch`` after a failed one (the
  version stays disabled). The PATCH that makes a matching version live removes it. ``read`` (refresh) never
  takes a version that carries it into state, unless someone enabled it by hand (then it is live: drift).

Wrapped AES keys have no public half, so there is nothing to compare: they go live as imported (the vault's
unwrap proves the KEK; their identity is the ciphertext itself).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Mapping

from .errors import KeyConflictError
from .keys import PublicKeyInfo, b64url

if TYPE_CHECKING:  # pragma: no cover
    from azure.keyvault.keys import KeyClient

    from .vault import VaultKey

__all__ = ["CIPHERTEXT_TAG", "UNVERIFIED_TAG", "PENDING", "MISMATCH", "RESERVED", "ciphertext_digest",
           "made_from", "unverified", "pending_tags", "settle", "mismatch_reason", "live_version"]

CIPHERTEXT_TAG = "byok-ciphertext-sha256"
UNVERIFIED_TAG = "byok-unverified"
PENDING, MISMATCH = "pending", "mismatch"
RESERVED: tuple[str, ...] = (CIPHERTEXT_TAG, UNVERIFIED_TAG)


def ciphertext_digest(ciphertext: bytes) -> str:
    """base64url SHA-256 of the ciphertext (public: it is a hash of data that is itself safe to publish)."""
    return b64url(hashlib.sha256(ciphertext).digest())


def made_from(vk: "VaultKey", ciphertext: bytes) -> bool:
    """Whether ``vk`` was imported from exactly this ciphertext."""
    return vk.tags.get(CIPHERTEXT_TAG) == ciphertext_digest(ciphertext)


def unverified(vk: "VaultKey") -> bool:
    """Whether ``vk`` is a wrapped version not (yet) shown to hold the declared material."""
    return UNVERIFIED_TAG in vk.tags


def pending_tags(tags: Mapping[str, str], ciphertext: bytes, *, checkable: bool) -> dict[str, str]:
    """The tags to import a wrapped version with: the given ones, the ciphertext digest, and ``pending`` when
    the version will be compared before it goes live."""
    out = {**tags, CIPHERTEXT_TAG: ciphertext_digest(ciphertext)}
    if checkable:
        out[UNVERIFIED_TAG] = PENDING
    return out


def settle(kv: "KeyClient", vk: "VaultKey", expected: PublicKeyInfo, *, enabled: bool, wrapped: str,
           source: str) -> "VaultKey":
    """Compare an unverified version with the declared public key: PATCH it live (``enabled`` as declared, the
    ``byok-unverified`` tag removed), or mark it ``mismatch``, leave it disabled and raise one clear line.

    ``wrapped`` names the input the ciphertext came from (``wrapped_key_file``, ``--byok-file``, or
    ``pkcs11_uri`` for a key wrapped inside its token) and ``source`` the one the expected public key came from;
    the error is attributed to ``wrapped`` and its hint names what the user can change.
    """
    from . import vault

    live_tags = {k: v for k, v in vk.tags.items() if k != UNVERIFIED_TAG}
    if vk.fingerprint == expected.fingerprint:
        return vault.update_properties(kv, vk.name, vk.version, enabled=enabled, tags=live_tags)
    if vk.tags.get(UNVERIFIED_TAG) != MISMATCH:  # once marked, a rerun only reports it again
        vault.update_properties(kv, vk.name, vk.version, enabled=False, tags={**live_tags, UNVERIFIED_TAG: MISMATCH})
    raise KeyConflictError(mismatch_reason(vk, expected, wrapped=wrapped, source=source), input=wrapped)


def mismatch_reason(vk: "VaultKey", expected: PublicKeyInfo, *, wrapped: str, source: str) -> str:
    """The one line for a version that does not hold the expected key, with a hint that fits where it came from.

    A key wrapped inside a token (``wrapped == source == "pkcs11_uri"``) was compared with the public key the
    token shows beside it: a mismatch means the URI's private key and public key object are not one pair.
    """
    held = vk.public.kty if vk.public is not None else vk.kty
    token = wrapped == source
    shown = "the token's public key object" if token else source
    facts = (f"the vault unwrapped it to {held} public key {vk.fingerprint}, {shown} holds {expected.kty} key "
             f"{expected.fingerprint}; version {vk.version} was left disabled (tag {UNVERIFIED_TAG}={MISMATCH}) "
             "and nothing went live")
    if token:
        return (f"the token wrapped other key material than its public key object shows: {facts}: make {source} "
                "name one key pair (its private key and public key object share object= and id=; add id=)")
    return f"holds other key material than {source}: {facts}: give the matching {wrapped} and {source}"


def live_version(kv: "KeyClient", current: "VaultKey") -> "VaultKey | None":
    """The version refresh should record: ``current`` unless it is unverified, else the newest version that is
    not (None when there is none). One list call, and one GET, only in that case.

    An unverified version that is *enabled* was enabled by hand (we import it disabled and disable it on a
    mismatch): it is what the vault serves now, so it is recorded and the drift shows.
    """
    from . import vault

    if not unverified(current) or current.enabled:
        return current
    return vault.newest_version(kv, current.name, lambda tags: UNVERIFIED_TAG not in tags)
