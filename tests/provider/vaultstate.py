"""What a vault holds for one key name, read with the operator's own azure-keyvault-keys client.

Scenario tests end by looking behind the provider: is the key live, enabled, holding the declared material
(public numbers compared with the key file's, through pyca ``cryptography`` — not through our fingerprint
code), how many versions it has, which owner marker its current version carries, and whether it is
soft-deleted or purged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

if TYPE_CHECKING:
    from azure.keyvault.keys import KeyClient


@dataclass(frozen=True)
class Held:
    """One key name in the vault: ``live`` (current version), ``deleted`` (soft-deleted, recoverable)."""

    live: bool
    deleted: bool
    versions: int = 0
    enabled: bool | None = None
    public: tuple[Any, ...] | None = None
    owner: str | None = None
    tags: dict[str, str] | None = None
    version: str | None = None

    @property
    def purged(self) -> bool:
        return not self.live and not self.deleted


def held(kv: "KeyClient", name: str) -> Held:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        key = kv.get_key(name)
    except ResourceNotFoundError:
        try:
            kv.get_deleted_key(name)
            return Held(live=False, deleted=True)
        except ResourceNotFoundError:
            return Held(live=False, deleted=False)
    jwk = key.key
    public: tuple[Any, ...] | None
    if jwk.n:
        public = ("RSA", int.from_bytes(jwk.n, "big"), int.from_bytes(jwk.e, "big"))
    elif jwk.x:
        public = ("EC", int.from_bytes(jwk.x, "big"), int.from_bytes(jwk.y, "big"))
    else:
        public = None
    tags = dict(key.properties.tags or {})
    versions = sum(1 for _ in kv.list_properties_of_key_versions(name))
    return Held(live=True, deleted=False, versions=versions, enabled=key.properties.enabled, public=public,
                owner=tags.get("byok-owner"), tags=tags, version=key.properties.version)


def aes_holds(kv: "KeyClient", name: str, version: str, key: bytes) -> bool:
    """Whether ``version`` of ``name`` holds the AES key ``key``, which Key Vault never shows:
    the vault wraps a random probe with it (A256KW etc., RFC 3394, deterministic) and pyca wraps it with ``key``."""
    import base64
    import os

    from azure.core.rest import HttpRequest
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap

    probe = os.urandom(32)
    algorithm = {16: "A128KW", 24: "A192KW", 32: "A256KW"}[len(key)]
    response = kv.send_request(HttpRequest("POST", f"/keys/{name}/{version}/wrapkey", json={
        "alg": algorithm, "value": base64.urlsafe_b64encode(probe).rstrip(b"=").decode()}))
    response.raise_for_status()
    value = response.json()["value"]
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)) == aes_key_wrap(key, probe)


def public_of(key_file: str, password: str | None = None) -> tuple[Any, ...]:
    """The public numbers of a PEM private key file, as ``held`` reports them."""
    private = load_pem_private_key(Path(key_file).read_bytes(), password.encode() if password else None)
    if isinstance(private, rsa.RSAPrivateKey):
        numbers = private.public_key().public_numbers()
        return ("RSA", numbers.n, numbers.e)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    point = private.public_key().public_numbers()
    return ("EC", point.x, point.y)
