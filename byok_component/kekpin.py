"""Binding an offline wrap to the right KEK: its RFC 7638 thumbprint, a pin, or the vault itself.

Why: a KEK public key file says nothing about which vault key it belongs to. ``byok wrap --kek-pem X --kek-id K``
with a swapped X wraps the target key for someone else's KEK (whoever holds X's private key can open it), and
the blob still names K. So the wrap prints the KEK's thumbprint (the stack exports the same as
``kekFingerprint``), refuses a KEK that does not match a ``--kek-fingerprint`` pin, and can take the KEK from the
vault over TLS (``--vault-url``) instead of from a file.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import rsa

from .errors import InputError, KekError
from .keys import describe_public_key
from .kid import KeyId, normalize_vault_url

__all__ = ["kek_thumbprint", "check_pin", "kek_from_vault"]


def kek_thumbprint(kek: rsa.RSAPublicKey, *, input: str = "--kek-pem") -> str:  # noqa: A002
    """RFC 7638 §3 thumbprint (SHA-256, base64url) of the KEK's public JWK {e, kty, n}: what the vault's JWK gives."""
    return describe_public_key(kek, input=input).fingerprint


def check_pin(kek: rsa.RSAPublicKey, pin: str | None, *, source: str, input: str = "--kek-fingerprint") -> str:  # noqa: A002
    """The KEK's thumbprint; a KekError naming both when it is not the pinned one."""
    thumbprint = kek_thumbprint(kek)
    if pin is not None:
        wanted = pin.strip()
        if not wanted:
            raise InputError("is empty (give the KEK's RFC 7638 thumbprint, e.g. the stack output kekFingerprint)",
                             input=input)
        if wanted != thumbprint:
            raise KekError(f"the KEK from {source} has thumbprint {thumbprint}, not the pinned {wanted}: it is not "
                           "the KEK you meant (a swapped file, or another vault's KEK); nothing was written",
                           input=input)
    return thumbprint


def kek_from_vault(vault_url: str, kek_id: str) -> rsa.RSAPublicKey:
    """The KEK read from the vault over TLS (checked: RSA-HSM, ops exactly import, enabled); ``kek_id`` must be
    in ``vault_url``."""
    from . import vault

    url = normalize_vault_url(vault_url, input="--vault-url")
    kid = KeyId.parse(kek_id, versioned=True, input="--kek-id")
    if kid.vault_url != url:
        raise InputError(f"{kek_id} is a key of {kid.vault_url}, not of --vault-url {url}", input="--kek-id")
    try:
        return vault.fetch_kek(str(kid)).public_key
    except KekError as exc:
        raise exc.for_input("--kek-id") from None
