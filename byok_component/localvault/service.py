"""The Key Vault data-plane REST semantics of the local vault, apart from HTTP plumbing.

``VaultService.handle(Request) -> Response`` routes one authenticated request. Key Vault shapes:
KeyBundle / DeletedKeyBundle / KeyItem JSON, versioned kids (32 lowercase hex), soft delete with the
``recoveryLevel``, retention, purge protection and asynchronous completion of behaviour.py, paging with ``maxresults`` (1-25,
default 25) and a ``nextLink`` carrying ``$skiptoken``. Private JWK members (d, p, q, dp, dq, qi, k)
never appear in a response.

Choices where Azure's behaviour is unconfirmed or not modelled:

- A plain JWK import (no ``key_hsm``) takes RSA (n, e, d; p, q, dp, dq, qi derived when missing), EC
  (crv, x, y, d) or oct (k, Managed HSM only); ``"Hsm": true`` or a ``*-HSM`` kty records it as HSM.
  A BYOK import must not carry private JWK members beside ``key_hsm``.
- Crypto operations check ``key_ops`` (403 Forbidden / KeyOperationForbidden) and, for sign, decrypt
  and unwrapKey, that the key is enabled (403 Forbidden / KeyDisabled), as Azure does (Azure SDK
  issues #11518, #45342); ``nbf``/``exp`` are stored and returned but not enforced on operations.
- Reading a disabled key works (GET returns it with ``enabled: false``).
- Purging or recovering a name that is not soft-deleted answers 404 KeyNotFound.
- Unmodelled Key Vault operations (backup, restore, rotate, rotation policy, release, attestation,
  random bytes) answer 501 NotImplemented; unknown paths 404 NotFound; wrong methods 405.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Collection, Mapping, NoReturn
from urllib.parse import quote

from ..keys import b64url, b64url_decode
from . import byok, crypto, policy
from .behaviour import PURGE_PROTECTED_MESSAGE, Behaviour, Pending
from .errors import (ServiceError, bad_parameter, being_deleted, being_recovered, deleted_conflict, forbidden,
                     key_not_found)
from .faults import FaultState
from .store import Deletion, KeyStore, KeyVersion

__all__ = ["Request", "Response", "DropConnection", "Route", "route_of", "VaultService"]

MAX_PAGE = 25
_CRYPTO_OPS = {"sign": "sign", "verify": "verify", "encrypt": "encrypt", "decrypt": "decrypt",
               "wrapkey": "wrapKey", "unwrapkey": "unwrapKey"}
_UNMODELLED = {"backup", "rotate", "rotationpolicy", "release", "attestation", "restore"}
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # without the query string
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: Mapping[str, Any] | None = None


class DropConnection(Exception):
    """Fault injection: close the connection without an answer."""


@dataclass(frozen=True, slots=True)
class Route:
    """What a request is, before it is run: its operation and what the read-only token and rate limit see."""

    operation: str  # "create", "import", "sign", ... or the lower-case method for anything else
    read_only_ok: bool  # GET only: the read-only token may do nothing else (crypto operations included)
    creates_version: bool  # create or import: what the write rate limit counts


def route_of(method: str, path: str) -> Route:
    """Classify a request for authorization and rate limiting (handle() routes it again, fully)."""
    parts = _segments(path)
    if len(parts) == 3 and parts[0] == "keys" and parts[2] == "create" and method == "POST":
        return Route("create", False, True)
    if len(parts) == 2 and parts[0] == "keys" and method == "PUT":
        return Route("import", False, True)
    if len(parts) == 4 and parts[0] == "keys" and parts[3].lower() in _CRYPTO_OPS and method == "POST":
        return Route(_CRYPTO_OPS[parts[3].lower()], False, False)
    return Route(method.lower(), method == "GET", False)


def _segments(path: str) -> list[str]:
    parts = path[1:].split("/") if path.startswith("/") else [path]
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # "/keys/name/" is "/keys/name" (latest version)
    return parts


class VaultService:
    """Key Vault REST semantics over a KeyStore. Thread-safe (the store serializes writes)."""

    def __init__(self, store: KeyStore, *, sku: policy.Sku, vault_url: str, vault_urls: Collection[str],
                 faults: FaultState, behaviour: Behaviour | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.sku = sku
        self.vault_url = vault_url
        self.vault_urls = frozenset(vault_urls)
        self.faults = faults
        self.behaviour = behaviour or Behaviour()
        self.pending = Pending(self.behaviour.async_seconds)
        self._clock = clock
        self._harsh_lock = threading.Lock()
        self._harsh = dict.fromkeys(("purge_protected", "being_deleted", "being_recovered", "not_yet_visible"), 0)

    def harsh_answers(self) -> dict[str, int]:
        """How often behaviour.py's harsh sides answered (purge refused, 409 in flight, 404 while in flight)."""
        with self._harsh_lock:
            return dict(self._harsh)

    def _harsh_answer(self, kind: str) -> None:
        with self._harsh_lock:
            self._harsh[kind] += 1

    def _now(self) -> int:
        return int(self._clock())

    # --- routing -------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        """Run one request; ServiceErrors become Key Vault error answers, DropConnection propagates."""
        try:
            return self._route(request)
        except ServiceError as exc:
            return Response(exc.status, exc.body())

    def _route(self, r: Request) -> Response:
        parts, m = _segments(r.path), r.method
        if parts[0] == "keys":
            if len(parts) == 1:
                return self._only(m, "GET") or self._list_keys(r)
            name = policy.check_key_name(parts[1])
            if len(parts) == 2:
                if m == "GET":
                    return self._get(name, "")
                if m == "PUT":
                    return self._import(name, _json(r.body))
                if m == "DELETE":
                    return self._delete(name)
                if m == "PATCH":
                    return self._update(name, "", _json(r.body))
                return _method_not_allowed(m, r.path)
            if len(parts) == 3:
                tail = parts[2]
                if tail == "create":
                    return self._only(m, "POST") or self._create(name, _json(r.body))
                if tail == "versions":
                    return self._only(m, "GET") or self._list_versions(name, r)
                if tail in _UNMODELLED:
                    return _not_implemented(tail)
                if m == "GET":
                    return self._get(name, tail)
                if m == "PATCH":
                    return self._update(name, tail, _json(r.body))
                return _method_not_allowed(m, r.path)
            if len(parts) == 4 and parts[3].lower() in _CRYPTO_OPS:
                return self._only(m, "POST") or self._crypto(name, parts[2], _CRYPTO_OPS[parts[3].lower()],
                                                             _json(r.body))
            if len(parts) == 4 and parts[3] in _UNMODELLED:
                return _not_implemented(parts[3])
        elif parts[0] == "deletedkeys":
            if len(parts) == 1:
                return self._only(m, "GET") or self._list_deleted(r)
            name = policy.check_key_name(parts[1])
            if len(parts) == 2:
                if m == "GET":
                    return self._get_deleted(name)
                if m == "DELETE":
                    return self._purge(name)
                return _method_not_allowed(m, r.path)
            if len(parts) == 3 and parts[2] == "recover":
                return self._only(m, "POST") or self._recover(name)
        elif parts[0] == "rng" and len(parts) == 1:
            return _not_implemented("rng")
        raise ServiceError(404, "NotFound", f"{r.method} {r.path[:100]} is not a Key Vault keys operation")

    @staticmethod
    def _only(method: str, allowed: str) -> None:
        """Refuse any other method with 405 (used as ``self._only(...) or self._handler(...)``)."""
        if method != allowed:
            raise ServiceError(405, "MethodNotAllowed", f"use {allowed} here, not {method}")

    # --- JSON shapes -----------------------------------------------------------------------------
    def _kid(self, name: str, version: str | None = None) -> str:
        return f"{self.vault_url}/keys/{name}" + (f"/{version}" if version else "")

    def _attributes(self, k: KeyVersion) -> dict[str, Any]:
        attributes: dict[str, Any] = {"enabled": k.enabled}
        if k.nbf is not None:
            attributes["nbf"] = k.nbf
        if k.exp is not None:
            attributes["exp"] = k.exp
        attributes.update(created=k.created, updated=k.updated, recoveryLevel=self.behaviour.recovery_level,
                          recoverableDays=self.behaviour.retention_days, exportable=False)
        return attributes

    def _bundle(self, k: KeyVersion) -> dict[str, Any]:
        jwk: dict[str, Any] = {"kid": self._kid(k.name, k.version), "kty": k.kty, "key_ops": list(k.key_ops)}
        jwk.update(crypto.jwk_members(k.material))
        assert not set(jwk) & set(_PRIVATE_MEMBERS), "a private JWK member must never leave the vault"
        bundle: dict[str, Any] = {"key": jwk, "attributes": self._attributes(k)}
        if k.tags:
            bundle["tags"] = dict(k.tags)
        return bundle

    def _item(self, k: KeyVersion, *, versioned: bool) -> dict[str, Any]:
        item: dict[str, Any] = {"kid": self._kid(k.name, k.version if versioned else None),
                                "attributes": self._attributes(k)}
        if k.tags:
            item["tags"] = dict(k.tags)
        return item

    def _deleted_fields(self, name: str, deletion: Deletion) -> dict[str, Any]:
        return {"recoveryId": f"{self.vault_url}/deletedkeys/{name}",
                "scheduledPurgeDate": deletion.scheduled_purge_date, "deletedDate": deletion.deleted_date}

    def _page(self, r: Request, items: list[dict[str, Any]]) -> Response:
        try:
            size = int(r.query.get("maxresults", MAX_PAGE))
            start = int(r.query.get("$skiptoken", 0))
        except ValueError:
            raise bad_parameter("maxresults and $skiptoken must be whole numbers") from None
        if not 1 <= size <= MAX_PAGE or start < 0:
            raise bad_parameter(f"maxresults must be between 1 and {MAX_PAGE}")
        end = start + size
        next_link = None
        if end < len(items):
            api = quote(r.query.get("api-version", ""), safe="")
            next_link = f"{self.vault_url}{r.path}?api-version={api}&$skiptoken={end}&maxresults={size}"
        return Response(200, {"value": items[start:end], "nextLink": next_link})

    # --- reads -----------------------------------------------------------------------------------
    def _active(self, name: str, version: str) -> KeyVersion:
        state = self.store.name_state(name)
        if state is None or state[1] is not None:
            raise key_not_found(name)
        if self.pending.kind(name) == "recover":
            self._harsh_answer("not_yet_visible")
            raise key_not_found(name)
        key = self.store.get(name, version) if version else self.store.latest(name)
        if key is None:
            raise key_not_found(f"{name}/{version}" if version else name)
        return key

    def _get(self, name: str, version: str) -> Response:
        return Response(200, self._bundle(self._active(name, version)))

    def _list_keys(self, r: Request) -> Response:
        latest = [self.store.latest(n) for n in self.store.active_names() if self.pending.kind(n) != "recover"]
        return self._page(r, [self._item(k, versioned=False) for k in latest if k is not None])

    def _list_versions(self, name: str, r: Request) -> Response:
        state = self.store.name_state(name)
        if state is None or state[1] is not None or self.pending.kind(name) == "recover":
            raise key_not_found(name)
        return self._page(r, [self._item(k, versioned=True) for k in self.store.versions(name)])

    # --- create / import -------------------------------------------------------------------------
    def _refuse_if_deleted(self, name: str) -> None:
        pending = self.pending.kind(name)
        if pending in ("delete", "purge"):
            self._harsh_answer("being_deleted")
            raise being_deleted(name)
        if pending == "recover":
            self._harsh_answer("being_recovered")
            raise being_recovered(name)
        state = self.store.name_state(name)
        if state is not None and state[1] is not None:
            raise deleted_conflict(state[0])

    def _create(self, name: str, body: dict[str, Any]) -> Response:
        self._refuse_if_deleted(name)
        policy.refuse_unmodelled(body)
        kty = policy.stored_kty(body.get("kty"), self.sku)
        base = kty.removesuffix("-HSM")
        size, curve = 0, "P-256"
        if base == "RSA":
            size = policy.check_rsa_size(body.get("key_size"))
            if body.get("public_exponent") not in (None, 65537):
                raise bad_parameter("public_exponent must be 65537")
        elif base == "EC":
            curve = policy.check_curve(body.get("crv"))
        else:
            size = policy.check_oct_bits(body.get("key_size"))
        ops = policy.check_key_ops(body.get("key_ops"), kty, generated=True)
        attributes = policy.parse_attributes(body.get("attributes"))
        tags = policy.check_tags(body.get("tags"))
        material = crypto.generate(base, size=size, curve=curve)  # type: ignore[arg-type]
        return Response(200, self._bundle(self._commit(name, kty, "generated", material, ops, attributes, tags)))

    def _import(self, name: str, body: dict[str, Any]) -> Response:
        jwk = body.get("key")
        if not isinstance(jwk, dict):
            raise bad_parameter('The property "key" must be a valid JsonWebKey object.')
        self._refuse_if_deleted(name)
        policy.refuse_unmodelled(body)
        hsm = body.get("Hsm")
        if hsm is not None and not isinstance(hsm, bool):
            raise bad_parameter("Hsm must be true or false")
        attributes = policy.parse_attributes(body.get("attributes"))
        tags = policy.check_tags(body.get("tags"))
        if jwk.get("key_hsm") is not None:
            present = [m for m in _PRIVATE_MEMBERS if jwk.get(m) is not None]
            if present:
                raise bad_parameter(f"a BYOK import carries its key only inside key_hsm; remove {present}")
            opened = byok.open_transfer_blob(request_kty=jwk.get("kty"), crv=jwk.get("crv"),
                                             key_hsm=jwk["key_hsm"], sku=self.sku, vault_urls=self.vault_urls,
                                             find_kek=self._find_kek, now=self._now())
            kty, material = opened.kty, crypto.from_target_key(opened.target)
        else:
            kty = policy.stored_kty(jwk.get("kty"), self.sku, hsm=bool(hsm))
            material = crypto.from_jwk(jwk, kty.removesuffix("-HSM"))  # type: ignore[arg-type]
        ops = policy.check_key_ops(jwk.get("key_ops"), kty, generated=False)
        if self.faults.take_drop_before_commit():
            raise DropConnection("fault injection: drop_before_commit")
        key = self._commit(name, kty, "imported", material, ops, attributes, tags)
        if self.faults.take_drop_after_commit():
            raise DropConnection("fault injection: drop_after_commit")
        return Response(200, self._bundle(key))

    def _commit(self, name: str, kty: str, origin: str, material: crypto.KeyMaterial, ops: tuple[str, ...],
                attributes: policy.Attributes, tags: dict[str, str]) -> KeyVersion:
        now = self._now()
        key = KeyVersion(name, secrets.token_hex(16), kty, origin, material, ops,
                         True if attributes.enabled is None else attributes.enabled, attributes.nbf, attributes.exp,
                         now, now, tuple(tags.items()))
        with self.store.transaction():
            self._refuse_if_deleted(name)  # again, inside the transaction: a delete may have raced us
            return self.store.add_version(key)

    def _find_kek(self, name: str, version: str) -> byok.KekView | None:
        state = self.store.name_state(name)
        if state is None or state[1] is not None or self.pending.kind(name) == "recover":
            return None
        key = self.store.get(name, version)
        if key is None:
            return None
        private = key.material.private if key.material.base == "RSA" else b""
        return byok.KekView(key.kty, key.key_ops, key.enabled, key.nbf, key.exp, private)

    # --- update / delete / recover / purge -------------------------------------------------------
    def _update(self, name: str, version: str, body: dict[str, Any]) -> Response:
        policy.refuse_unmodelled(body)
        with self.store.transaction():
            key = self._active(name, version)
            changes: dict[str, Any] = {}
            if body.get("key_ops") is not None:
                changes["key_ops"] = policy.check_key_ops(body["key_ops"], key.kty,
                                                          generated=key.origin == "generated")
            attributes = policy.parse_attributes(body.get("attributes"))
            if attributes.enabled is not None:
                changes["enabled"] = attributes.enabled
            for field_name in ("nbf", "exp"):
                if field_name in attributes.given:
                    changes[field_name] = getattr(attributes, field_name)
            nbf, exp = changes.get("nbf", key.nbf), changes.get("exp", key.exp)
            if nbf is not None and exp is not None and nbf > exp:
                raise bad_parameter("attributes.nbf (not before) would be after attributes.exp (expires)")
            if body.get("tags") is not None:
                changes["tags"] = tuple(policy.check_tags(body["tags"]).items())
            key = replace(key, updated=self._now(), **changes)
            self.store.save(key)
        return Response(200, self._bundle(key))

    def _delete(self, name: str) -> Response:
        with self.store.transaction():
            key = self._active(name, "")
            now = self._now()
            deletion = Deletion(now, now + self.behaviour.retention_days * 86400)
            self.store.mark_deleted(key.name, deletion)
            self.pending.begin(key.name, "delete")
        return Response(200, {**self._bundle(key), **self._deleted_fields(key.name, deletion)})

    def _deleted(self, name: str, *, acting: bool = False) -> tuple[KeyVersion, Deletion]:
        """The soft-deleted key; while its deletion is in flight a read answers 404, a purge or recover 409."""
        state = self.store.name_state(name)
        pending = self.pending.kind(name)
        if pending == "delete" and acting:
            self._harsh_answer("being_deleted")
            raise being_deleted(state[0] if state else name)
        if pending == "delete":
            self._harsh_answer("not_yet_visible")
        if state is None or state[1] is None or pending == "delete":
            raise ServiceError(404, "KeyNotFound", f"Deleted Key not found: {name}")
        key = self.store.latest(name)
        assert key is not None
        return key, state[1]

    def _get_deleted(self, name: str) -> Response:
        key, deletion = self._deleted(name)
        return Response(200, {**self._bundle(key), **self._deleted_fields(key.name, deletion)})

    def _list_deleted(self, r: Request) -> Response:
        items = []
        for name, deletion in self.store.deleted_names():
            key = self.store.latest(name)
            if key is not None and self.pending.kind(name) != "delete":
                items.append({**self._item(key, versioned=False), **self._deleted_fields(name, deletion)})
        return self._page(r, items)

    def _purge(self, name: str) -> Response:
        with self.store.transaction():
            key, _ = self._deleted(name, acting=True)
            if self.behaviour.purge_protection:
                self._harsh_answer("purge_protected")
                raise forbidden(PURGE_PROTECTED_MESSAGE, None)
            self.store.purge(key.name)
            self.pending.begin(key.name, "purge")
        return Response(204)

    def _recover(self, name: str) -> Response:
        with self.store.transaction():
            key, _ = self._deleted(name, acting=True)
            self.store.mark_recovered(key.name)
            self.pending.begin(key.name, "recover")
        return Response(200, self._bundle(key))

    # --- cryptographic operations ----------------------------------------------------------------
    def _crypto(self, name: str, version: str, op: str, body: dict[str, Any]) -> Response:
        key = self._active(name, version)
        alg = body.get("alg")
        if not isinstance(alg, str) or not alg:
            raise bad_parameter("alg is required")
        if op not in key.key_ops:
            raise forbidden(f"Operation {op} is not permitted on this key.", "KeyOperationForbidden")
        if not key.enabled and op in ("sign", "decrypt", "unwrapKey"):
            raise forbidden(f"Operation {op} is not allowed on a disabled key.", "KeyDisabled")
        value = _b64(body, "value", required=True)
        assert value is not None
        kid = self._kid(key.name, key.version)
        m = key.material
        if op == "sign":
            return Response(200, {"kid": kid, "value": b64url(crypto.sign(m, alg, value))})
        if op == "verify":
            digest = _b64(body, "digest", required=True)
            assert digest is not None
            return Response(200, {"value": crypto.verify(m, alg, digest, value)})
        if op == "encrypt":
            out = crypto.encrypt(m, alg, value, iv=_b64(body, "iv"), aad=_b64(body, "aad"))
            result: dict[str, Any] = {"kid": kid, "value": b64url(out.value)}
            if out.iv is not None:
                result["iv"] = b64url(out.iv)
            if out.tag is not None:
                result["tag"] = b64url(out.tag)
            if body.get("aad") is not None:
                result["aad"] = body["aad"]
            return Response(200, result)
        if op == "decrypt":
            plain = crypto.decrypt(m, alg, value, iv=_b64(body, "iv"), aad=_b64(body, "aad"), tag=_b64(body, "tag"))
            return Response(200, {"kid": kid, "value": b64url(plain)})
        if op == "wrapKey":
            return Response(200, {"kid": kid, "value": b64url(crypto.wrap_key(m, alg, value))})
        return Response(200, {"kid": kid, "value": b64url(crypto.unwrap_key(m, alg, value))})


_MAX_JSON_DEPTH = 32  # a Key Vault request body nests 3 levels; 100 000 '[' made json.loads raise RecursionError


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad_parameter("the request body is not JSON") from None
    except RecursionError:
        raise bad_parameter(f"the request body nests deeper than {_MAX_JSON_DEPTH} levels") from None
    if not isinstance(doc, dict):
        raise bad_parameter("the request body must be a JSON object")
    if _depth(doc) > _MAX_JSON_DEPTH:
        raise bad_parameter(f"the request body nests deeper than {_MAX_JSON_DEPTH} levels")
    return doc


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (the parser already bounded it below the recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _b64(body: Mapping[str, Any], name: str, *, required: bool = False) -> bytes | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_parameter(f"{name} is required")
        return None
    try:
        return b64url_decode(value)
    except ValueError:
        raise bad_parameter(f"{name} is not base64url") from None


def _method_not_allowed(method: str, path: str) -> NoReturn:
    raise ServiceError(405, "MethodNotAllowed", f"{method} is not allowed on {path[:100]}")


def _not_implemented(operation: str) -> NoReturn:
    raise ServiceError(501, "NotImplemented", f"the local vault does not model '{operation}'")
