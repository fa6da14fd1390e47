"""KekPublicKey: the public key and RFC 7638 thumbprint of a KEK the stack did not create through the data plane.

Why: an officer who wraps offline (``byok wrap --kek-pem ... --kek-fingerprint ...``) must be able to pin the
KEK the stack will import with, and the ARM ``keyvault.Key`` (or a KEK given by ``kek_id``) exposes no public
key. This resource reads it from the data plane (TLS-authenticated, the same checks the provider applies:
RSA-HSM, ops exactly ``import``, enabled) and keeps it as outputs. It owns nothing: delete is a no-op, another
``kek_id`` is a replacement (a new view), refresh reads the key again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, Resource, ResourceProvider

from .errors import ByokError
from .keys import describe_public_key
from .kid import KeyId
from .unknown import has_unknown

__all__ = ["KekPublicKey", "KekPublicKeyArgs", "KekPublicKeyProvider", "kek_facts"]

_OUTPUTS = ("public_key_pem", "fingerprint", "key_size")


def kek_facts(kek_id: str) -> dict[str, Any]:
    """Fetch and check the KEK; its public key PEM, RFC 7638 thumbprint and size."""
    from . import vault

    kek = vault.fetch_kek(kek_id)
    info = describe_public_key(kek.public_key, input="kek_id")
    return {"kek_id": kek.kid, "public_key_pem": info.public_pem, "fingerprint": info.fingerprint,
            "key_size": info.size}


class KekPublicKeyProvider(ResourceProvider):
    """Stateless; pickled by reference like ByokKeyProvider."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        kek_id = news.get("kek_id")
        if has_unknown(kek_id):
            return CheckResult(dict(news), [])
        try:
            normalised = str(KeyId.parse(kek_id, versioned=True, input="kek_id"))
        except ByokError as exc:
            return CheckResult(dict(news), [CheckFailure("kek_id", exc.reason)])
        return CheckResult({**news, "kek_id": normalised}, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = has_unknown(news.get("kek_id")) or olds.get("kek_id") != news.get("kek_id")
        return DiffResult(changes=changed, replaces=["kek_id"] if changed else [], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        facts = kek_facts(props["kek_id"])
        return CreateResult(facts["kek_id"], facts)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from . import vault

        vault.clear_kek_cache()  # a refresh must see the vault now, not this process's first fetch
        facts = kek_facts(props.get("kek_id") or id_)
        return ReadResult(facts["kek_id"], facts, inputs={"kek_id": facts["kek_id"]})

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """A view owns nothing."""


@dataclass(kw_only=True)
class KekPublicKeyArgs:
    kek_id: pulumi.Input[str]


class KekPublicKey(Resource, module="byok", name="KekPublicKey"):
    """The KEK's public key (type ``pulumi-python:dynamic/byok:KekPublicKey``)."""

    kek_id: pulumi.Output[str]
    public_key_pem: pulumi.Output[str]
    fingerprint: pulumi.Output[str]
    key_size: pulumi.Output[int]

    def __init__(self, resource_name: str, args: KekPublicKeyArgs,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props: dict[str, Any] = {name: None for name in _OUTPUTS}
        props["kek_id"] = args.kek_id
        super().__init__(KekPublicKeyProvider(), resource_name, props, opts)
