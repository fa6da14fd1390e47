"""Ownership of a vault key by one Pulumi resource: the marker that decides what ``delete`` may remove.

Why: the engine replaces a resource create-before-delete without asking Diff (``pulumi up --replace``,
``pulumi state taint``, replace cascades). For a key that lives under a fixed name, the new resource's Create
adopts the very key the old resource's Delete is about to remove. Names cannot tell the two resources apart;
a marker can. Every create/adopt mints a fresh random marker, keeps it in the resource's outputs (``owner``)
and writes it onto the key's current version as the reserved tag ``byok-owner``. Delete removes (and purges)
only a key whose current version carries its own marker — or no marker at all (a key made by an older
version of the provider, or a version imported by hand): a marker of another resource means a newer resource
holds the key, so it is left alone and the reason is written to the provider's stderr, which the engine
shows to the user.

Reserved tags are the provider's, not the user's: ``check`` refuses them in ``tags``, ``read``/``diff`` never
show them (no drift), and a PATCH of the user's tags keeps them. Pure: no I/O beyond minting a marker.
"""

from __future__ import annotations

import re
import secrets
import sys
from dataclasses import dataclass
from typing import Any, Mapping

from . import verify

__all__ = ["OWNER_TAG", "RESERVED_TAGS", "OWNER_OUTPUT", "MAX_USER_TAGS", "new_marker", "marker_of", "user_tags",
           "vault_tags", "Verdict", "may_remove", "warn"]

OWNER_TAG = "byok-owner"
# Every tag name the provider writes onto a key version (one list, shared by all resources of this package).
# With verify.py's tags on versions imported from wrapped_key_file (byok-ciphertext-sha256, byok-unverified).
RESERVED_TAGS: tuple[str, ...] = (OWNER_TAG, *verify.RESERVED)
OWNER_OUTPUT = "owner"
_VAULT_MAX_TAGS = 15  # Key Vault (about-keys-details): a key version holds at most 15 tags
MAX_USER_TAGS = _VAULT_MAX_TAGS - len(RESERVED_TAGS)
_MARKER = re.compile(r"^[0-9a-f]{32}$")


def new_marker() -> str:
    """A fresh marker: 128 random bits, so two resources (or two stacks) never mint the same one."""
    return secrets.token_hex(16)


def marker_of(state: Mapping[str, Any]) -> str | None:
    """The marker a resource's outputs hold; None for state written before markers existed (or mangled)."""
    value = state.get(OWNER_OUTPUT)
    return value if isinstance(value, str) and _MARKER.match(value) else None


def _reserved(name: object) -> bool:
    return isinstance(name, str) and name.lower() in RESERVED_TAGS


def user_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    """A version's tags as the user declares them: reserved tags removed, sorted."""
    return dict(sorted((k, v) for k, v in (tags or {}).items() if not _reserved(k)))


def vault_tags(user: Mapping[str, str], marker: str, held: Mapping[str, str] | None = None) -> dict[str, str]:
    """The tags to write on a version: the user's, the reserved tags it already ``held`` (other than the
    owner's), and our marker."""
    kept = {k: v for k, v in (held or {}).items() if _reserved(k) and k.lower() != OWNER_TAG}
    return dict(sorted({**user_tags(user), **kept, OWNER_TAG: marker}.items()))


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a delete may remove the key, and why (a sentence for the log)."""

    remove: bool
    why: str


def may_remove(ours: str | None, tags: Mapping[str, str] | None) -> Verdict:
    """Decide from the resource's marker (``ours``) and the tags of the key's current version."""
    theirs = next((v for k, v in (tags or {}).items() if k.lower() == OWNER_TAG), None)
    if theirs is None:
        return Verdict(True, "the key carries no owner marker (made before markers, or a version imported by hand)")
    if ours is not None and theirs == ours:
        return Verdict(True, "the key carries this resource's owner marker")
    held = "this resource has no marker (state from an older provider version)" if ours is None else \
        f"this resource's marker is {ours}"
    return Verdict(False, f"its current version carries owner marker {theirs} of another resource (a replacement "
                          f"adopted it, or another stack declares it); {held}")


def warn(message: str) -> None:
    """One line on stderr: the engine shows a dynamic provider's stderr to the user (plugin.go runtrace)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)
