"""Key Vault data-plane adapter over azure-keyvault-keys: the only module that talks to a vault.

It maps Azure's errors onto our tree (refusals.py says what each means) and waits, with bounded exponential
backoff (backoff.py), on exactly the refusals that go away by themselves: 429 with or without Retry-After on
every method, POSTs included; 403 ForbiddenByRbac while a role assignment propagates (up to 10 minutes by
default, progress logged); 409 ObjectIsBeingDeleted/ObjectIsBeingRecovered. Every other 403 fails at once
with its remedy. Delete, purge and recover wait until the vault shows them complete. Imports are safe to
retry: an import is never blindly re-sent after an ambiguous failure — the vault is asked first whether the
import already landed, so a retry never makes a duplicate version (a 429 was not processed, so it is re-sent).

The Azure SDK is imported lazily: previews (check/diff) never load it.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence, TypeVar

from cryptography.hazmat.primitives.asymmetric import rsa

from . import refusals
from .backoff import Backoff, Waiter
from .blob import TransferBlob
from .files import read_input
from .errors import (ByokError, InputError, KekError, KeyConflictError, KeyDeletedError, KeyNotFoundError,
                     ThrottledError, VaultAuthError, VaultError, VaultPermissionError)
from .keys import PublicKeyInfo, public_key_from_jwk
from .kid import KeyId, is_loopback, normalize_vault_url
from .wrap import check_kek

if TYPE_CHECKING:  # pragma: no cover
    from azure.keyvault.keys import KeyClient, KeyVaultKey

__all__ = [
    "VaultKey", "Kek", "client", "fetch_kek", "get_key", "is_deleted", "import_blob", "update_properties",
    "get_deleted_key", "delete", "create_kek", "recover", "purge", "clear_kek_cache", "settings", "Settings",
    "holds_aes_key", "ENV_CA_BUNDLE", "ENV_TOKEN_FILE", "pointed_at", "newest_version", "Deleted",
]

log = logging.getLogger("byok_component.vault")

ENV_CA_BUNDLE = "BYOK_CA_BUNDLE"
ENV_TOKEN_FILE = "BYOK_ACCESS_TOKEN_FILE"
ENV_RBAC_WAIT = "BYOK_RBAC_WAIT_SECONDS"
ENV_TIMEOUT = "BYOK_HTTP_TIMEOUT_SECONDS"
ENV_IMPORT_ATTEMPTS = "BYOK_IMPORT_ATTEMPTS"
_MAX_TOKEN_BYTES = 64 * 1024  # an Entra ID access token is a few KB
ENV_THROTTLE_WAIT = "BYOK_THROTTLE_WAIT_SECONDS"
ENV_PENDING_WAIT = "BYOK_PENDING_WAIT_SECONDS"
ENV_BACKOFF_BASE = "BYOK_BACKOFF_BASE_SECONDS"

# How to point this process at a local vault (byok local-vault serve), said by every credential/CA error.
_FIX_LOCAL = 'for a local vault: eval "$(byok local-vault env --data DIR)"'

T = TypeVar("T")
_UNKNOWN = object()  # "not read yet", distinct from None ("read: absent")


@dataclass(frozen=True, slots=True)
class Settings:
    """Knobs read from the environment at call time (never stored in state)."""

    rbac_wait_seconds: float = 600.0     # 403 ForbiddenByRbac: role assignments take up to 10 minutes to apply
    timeout_seconds: float = 60.0        # per-request read timeout
    import_attempts: int = 4             # imports re-sent after ambiguous failures, each after checking the vault
    throttle_wait_seconds: float = 120.0  # 429s: back off for at most this long in total per call
    pending_wait_seconds: float = 300.0  # deletes, purges, recoveries in flight: wait at most this long
    backoff_base_seconds: float = 1.0    # first delay of every backoff (1, 2, 4, 8, 16 s; capped at 16 x base)

    def backoff(self, kind: str) -> Backoff:
        budget = {"throttled": self.throttle_wait_seconds, "rbac": self.rbac_wait_seconds}.get(
            kind, self.pending_wait_seconds)
        return Backoff(self.backoff_base_seconds, 16 * self.backoff_base_seconds, budget)


_WAIT_SETTING = {"throttled": ENV_THROTTLE_WAIT, "rbac": ENV_RBAC_WAIT, "pending": ENV_PENDING_WAIT}


def settings() -> Settings:
    def number(name: str, default: float) -> float:
        raw = os.environ.get(name)
        try:
            return float(raw) if raw else default
        except ValueError:
            raise ByokError(f"must be a number, got {raw!r}", input=name) from None

    base = Settings()
    return Settings(number(ENV_RBAC_WAIT, base.rbac_wait_seconds), number(ENV_TIMEOUT, base.timeout_seconds),
                    max(1, int(number(ENV_IMPORT_ATTEMPTS, base.import_attempts))),
                    number(ENV_THROTTLE_WAIT, base.throttle_wait_seconds),
                    number(ENV_PENDING_WAIT, base.pending_wait_seconds),
                    max(0.001, number(ENV_BACKOFF_BASE, base.backoff_base_seconds)))


@dataclass(frozen=True, slots=True)
class VaultKey:
    """What the vault holds for one key version (public parts only)."""

    kid: str
    name: str
    version: str
    kty: str
    key_ops: tuple[str, ...]
    enabled: bool
    not_before: datetime | None
    expires_on: datetime | None
    tags: Mapping[str, str] = field(default_factory=dict)
    public: PublicKeyInfo | None = None

    @property
    def fingerprint(self) -> str | None:
        return self.public.fingerprint if self.public else None


@dataclass(frozen=True, slots=True)
class Kek:
    """A checked Key Exchange Key: versioned kid and RSA public key."""

    kid: str
    public_key: rsa.RSAPublicKey = field(repr=False)

    @property
    def size(self) -> int:
        return self.public_key.key_size


# --- credentials and clients --------------------------------------------------------------------
class _TokenFileCredential:
    """A bearer token read from a file at each call (BYOK_ACCESS_TOKEN_FILE). Its repr names the file only."""

    def __init__(self, path: str) -> None:
        self._path = path

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken
        try:  # a regular file, bounded: a FIFO or a device here must not hang the provider
            token = read_input(self._path, input=ENV_TOKEN_FILE, max_bytes=_MAX_TOKEN_BYTES).decode("utf-8").strip()
        except InputError as exc:
            raise VaultAuthError(f"cannot use the token file: {exc.reason} — {_FIX_LOCAL}",
                                 input=ENV_TOKEN_FILE) from None
        except UnicodeDecodeError:
            raise VaultAuthError("the token file is not UTF-8 text", input=ENV_TOKEN_FILE) from None
        if not token:
            raise VaultAuthError(f"the token file {self._path} is empty — {_FIX_LOCAL}", input=ENV_TOKEN_FILE)
        return AccessToken(token, int(time.time()) + 3600)

    def __repr__(self) -> str:
        return f"_TokenFileCredential({self._path!r})"


_default_credential: Any = None
_credential_lock = threading.Lock()


def _credential(vault_url: str) -> Any:
    """The credential for ``vault_url``: the token file when BYOK_ACCESS_TOKEN_FILE is set, else Azure's.

    A loopback vault never gets DefaultAzureCredential. Key Vault's challenge check (the 401 must name a resource
    the vault's host belongs to) cannot hold on 127.0.0.1, so it is off there, and whatever listens on a loopback
    port could name any resource in its challenge (https://management.azure.com) and be handed a real Azure token
    for it. A loopback vault is the local test double, which has its own token file.
    """
    token_file = os.environ.get(ENV_TOKEN_FILE)
    if token_file:
        return _TokenFileCredential(token_file)
    if is_loopback(vault_url):
        raise VaultAuthError(f"{vault_url} is a loopback (local) vault: set {ENV_TOKEN_FILE} to its token file "
                             f"({_FIX_LOCAL}); Azure credentials are never sent to a loopback address",
                             input=ENV_TOKEN_FILE)
    global _default_credential
    with _credential_lock:  # one DefaultAzureCredential per process: it caches tokens
        if _default_credential is None:
            from azure.identity import DefaultAzureCredential
            _default_credential = DefaultAzureCredential()
        return _default_credential


_clients: "OrderedDict[tuple[Any, ...], KeyClient]" = OrderedDict()
_clients_lock = threading.Lock()
_MAX_CLIENTS = 16


def client(vault_url: str) -> "KeyClient":
    """A KeyClient for ``vault_url``: retries for 429/5xx honouring Retry-After, our timeout, our CA bundle.

    One per vault and settings per process (the settings come from the environment at each call and are part
    of the cache key), so a provider process keeps its TLS connection to the vault: a new client per call paid
    a TLS handshake each time, which made a create cost 1.5x a bare import. Azure SDK clients are thread-safe;
    nothing here is pickled (the provider holds no state).
    """
    from azure.keyvault.keys import KeyClient

    url = normalize_vault_url(vault_url)
    options = _client_options(url)
    key = (url, os.environ.get(ENV_TOKEN_FILE) or None, tuple(sorted(options.items())))
    with _clients_lock:
        kv = _clients.get(key)
        if kv is not None:
            _clients.move_to_end(key)
            return kv
    kv = KeyClient(url, _credential(url), **_with_retry_policy(options))
    with _clients_lock:
        kv = _clients.setdefault(key, kv)
        _clients.move_to_end(key)
        while len(_clients) > _MAX_CLIENTS:  # dropped, not closed: another thread may still be using it
            _clients.popitem(last=False)
    return kv


def _with_retry_policy(options: Mapping[str, Any]) -> dict[str, Any]:
    """azure-core keeps retrying 5xx and dropped connections on idempotent methods; 429s are ours (``_call``):
    azure-core would not retry a POST 429 without Retry-After, and its few retries end after seconds."""
    from azure.core.pipeline.policies import RetryPolicy

    class _RetryPolicy(RetryPolicy):
        def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
            if response.http_response.status_code == 429:
                return False
            return bool(super().is_retry(settings, response))

    retry = {k: options[k] for k in ("retry_total", "retry_status", "retry_backoff_factor", "retry_backoff_max")}
    return {**options, "retry_policy": _RetryPolicy(**retry)}


def _client_options(url: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        # A local vault on loopback cannot be *.vault.azure.net, so the challenge check is off there only: a
        # loopback vault gets nothing but its token file's token (_credential). Everywhere else it stays on.
        "verify_challenge_resource": not is_loopback(url),
        "retry_total": 6, "retry_status": 6, "retry_backoff_factor": 0.8, "retry_backoff_max": 30,
        "read_timeout": settings().timeout_seconds, "connection_timeout": 10,
    }
    ca_bundle = os.environ.get(ENV_CA_BUNDLE)
    if ca_bundle:
        if not os.path.isfile(ca_bundle):  # else requests fails later with a bare OSError
            raise InputError(f"{ca_bundle} is not a file (from {os.getcwd()}) — {_FIX_LOCAL}", input=ENV_CA_BUNDLE)
        options["connection_verify"] = ca_bundle
    return options


# --- errors --------------------------------------------------------------------------------------
def _one_line(text: str) -> str:
    words = " ".join(str(text).split())
    return words if len(words) <= 400 else words[:397] + "..."


def _map_error(exc: Exception, what: str, vault_url: str | None = None) -> ByokError:
    """Translate an azure-core error into our tree; the text is Azure's code and message, one line, and for a
    refusal that will not pass by itself the remedy (refusals.py)."""
    from azure.core.exceptions import (ClientAuthenticationError, HttpResponseError, ResourceExistsError,
                                       ResourceNotFoundError, ServiceRequestError, ServiceResponseError)

    if isinstance(exc, ByokError):
        return exc
    if isinstance(exc, ValueError) and "challenge resource" in str(exc):  # azure-keyvault-keys' challenge check
        return VaultAuthError(f"{what}: the vault's 401 challenge names a resource its host does not belong to; "
                              "no token was sent (is this URL really a Key Vault?)")
    if isinstance(exc, ServiceRequestError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
        ca_bundle = os.environ.get(ENV_CA_BUNDLE)
        said = f"by {ca_bundle}" if ca_bundle else f"and {ENV_CA_BUNDLE} is not set"
        return VaultError(f"{what}: the vault's TLS certificate is not trusted {said} (CERTIFICATE_VERIFY_FAILED) — "
                          f"point {ENV_CA_BUNDLE} at the CA that signed it ({_FIX_LOCAL}; behind a "
                          "TLS-inspecting proxy: the proxy's CA)", input=ENV_CA_BUNDLE)
    if isinstance(exc, ServiceRequestError):  # nothing was sent
        return VaultError(f"{what}: could not reach the vault ({type(exc).__name__}: {_one_line(exc.message)}) — "
                          "check the vault URL, and that the vault (or byok local-vault serve) is running")
    if isinstance(exc, ServiceResponseError):  # sent, but the answer was lost or late: it may have been applied
        return VaultError(f"{what}: no answer from the vault, so it may or may not have been applied "
                          f"({type(exc).__name__}: {_one_line(exc.message)})")
    if not isinstance(exc, HttpResponseError):
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else None
        return VaultError(f"{what}: {type(exc).__name__}{f' ({detail})' if detail else ''}")
    if isinstance(exc, ClientAuthenticationError) and exc.response is None:  # no credential produced a token
        return VaultAuthError(f"{what}: no Azure credential (DefaultAzureCredential found none) — run `az login` "
                              "or set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, or set "
                              f"{ENV_TOKEN_FILE} ({_FIX_LOCAL})")
    status = exc.status_code
    code = getattr(exc.error, "code", None) if exc.error else None
    message = getattr(exc.error, "message", None) if exc.error else None
    inner = getattr(exc.error, "innererror", None) if exc.error else None
    inner_code = inner.get("code") if isinstance(inner, dict) else None
    text = f"{what}: ({code or status}) {_one_line(message or str(exc).splitlines()[0])}"
    kind = refusals.kind_of(status, code, inner_code, text)
    if isinstance(exc, ClientAuthenticationError) or status == 401:
        token_file = os.environ.get(ENV_TOKEN_FILE)
        if token_file:
            return VaultAuthError(f"{text} — the vault refused the token in {token_file} "
                                  f"({_FIX_LOCAL})", input=ENV_TOKEN_FILE, status=status, code=code, inner=inner_code)
        return VaultAuthError(text, status=status, code=code, inner=inner_code)
    if isinstance(exc, ResourceNotFoundError) or status == 404:
        return KeyNotFoundError(text, status=status, code=code, inner=inner_code)
    if status == 409 and (inner_code == "ObjectIsDeletedButRecoverable" or "deleted but recoverable" in text):
        flag = refusals.cli_target(vault_url) if vault_url else "--vault-name V"
        return KeyDeletedError(f"{text} — recover it (`az keyvault key recover {flag} --name N`) or purge it "
                               f"(`az keyvault key purge {flag} --name N`, refused under purge protection until "
                               "the retention period ends) first",
                               status=status, code=code, inner=inner_code)
    if isinstance(exc, ResourceExistsError) or status == 409:
        return KeyConflictError(text, status=status, code=code, inner=inner_code)
    if status == 403:
        hint = "" if kind == "rbac" else refusals.remedy(kind, vault_url, what.split(" ", 1)[0])
        return VaultPermissionError(f"{text} — {hint}" if hint else text, status=status, code=code, inner=inner_code)
    if status == 429:
        throttled = ThrottledError(text, status=status, code=code, inner=inner_code)
        headers = exc.response.headers if exc.response is not None else {}
        try:  # None: no header (a real Key Vault 429 may carry none), so back off exponentially
            throttled.retry_after = float(headers["Retry-After"]) if headers.get("Retry-After") else None  # type: ignore[attr-defined]
        except ValueError:
            throttled.retry_after = None  # type: ignore[attr-defined]
        return throttled
    return VaultError(text, status=status, code=code, inner=inner_code)


def _ambiguous(error: ByokError) -> bool:
    """A failure after which the request may have been applied: no answer, a timeout, a 5xx."""
    return isinstance(error, VaultError) and not isinstance(
        error, (ThrottledError, KeyConflictError, KeyNotFoundError, VaultAuthError, VaultPermissionError)) and (
        error.status is None or error.status >= 500)


def _transient(error: ByokError) -> str | None:
    """Which wait cures this error: 'throttled', 'rbac', 'pending', or None (it is final)."""
    if not isinstance(error, VaultError):
        return None
    kind = refusals.kind_of(error.status, error.code, error.inner, str(error))
    return kind if kind in refusals.TRANSIENT else None


def _call(what: str, fn: Callable[[], T], *, vault_url: str | None = None, rbac: bool = True) -> T:
    """Run one SDK call, mapping errors. 429s are retried with backoff (Retry-After honoured when sent),
    ForbiddenByRbac while the role may still be propagating (not with ``rbac=False``), ObjectIsBeingDeleted/
    Recovered while the vault finishes; each wait bounded by its setting, then one clear error."""
    cfg = settings()
    waits: dict[str, Waiter] = {}
    while True:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - mapped and re-raised typed
            error = _map_error(exc, what, vault_url)
            kind = _transient(error)
            if kind is None or (kind == "rbac" and not rbac):
                raise error from None
            waiter = waits.setdefault(kind, Waiter(cfg.backoff(kind)))
            delay = waiter.next_delay(getattr(error, "retry_after", None))
            if delay is None:
                raise _exhausted(error, kind, waiter, vault_url, what) from None
            (log.warning if kind == "rbac" else log.info)(
                "%s: %s (%s); retrying in %.1f s, waited %.0f s of at most %.0f s (%s)", what, _WAIT_REASON[kind],
                error.code or error.status, delay, waiter.waited, waiter.backoff.budget, _WAIT_SETTING[kind])
            time.sleep(delay)


_WAIT_REASON = {"throttled": "the vault is throttling", "rbac": "waiting for the role assignment to take effect",
                "pending": "waiting for a delete, purge or recover of this name to complete"}


def _exhausted(error: ByokError, kind: str, waiter: Waiter, vault_url: str | None, what: str) -> ByokError:
    """The last refusal of a wait that ran out, with what to do now."""
    assert isinstance(error, VaultError)
    advice = refusals.remedy(kind, vault_url, what.split(" ", 1)[0],  # type: ignore[arg-type]
                             waited=waiter.waited, setting=_WAIT_SETTING[kind])
    final = copy.copy(error)
    final.reason = f"{error.reason} — {advice}"
    final.args = (f"{error.input}: {final.reason}" if error.input else final.reason,)
    return final


# --- reading -------------------------------------------------------------------------------------
def _text(value: Any) -> str:
    """SDK enums (JsonWebKeyType.RSA_HSM) as their wire strings ("RSA-HSM")."""
    return str(getattr(value, "value", value))


def _to_vault_key(key: "KeyVaultKey") -> VaultKey:
    jwk = key.key
    kty = _text(key.key_type)
    public: PublicKeyInfo | None = None
    if not kty.startswith("oct"):
        members = {"kty": kty, "n": jwk.n, "e": jwk.e, "crv": _text(jwk.crv) if jwk.crv else None,
                   "x": jwk.x, "y": jwk.y}
        public = public_key_from_jwk({k: v for k, v in members.items() if v is not None}, input=key.name)
    props = key.properties
    return VaultKey(
        kid=key.id, name=key.name, version=props.version or "", kty=kty,
        key_ops=tuple(_text(op) for op in (key.key_operations or ())),
        enabled=bool(props.enabled), not_before=props.not_before, expires_on=props.expires_on,
        tags=dict(props.tags or {}), public=public)


def get_key(kv: "KeyClient", name: str, version: str | None = None) -> VaultKey | None:
    """The key's current (or given) version, or None when the vault holds no such key."""
    try:
        return _to_vault_key(_call(f"get key {name}", lambda: kv.get_key(name, version), vault_url=kv.vault_url))
    except KeyNotFoundError:
        return None


def get_deleted_key(kv: "KeyClient", name: str) -> VaultKey | None:
    """The soft-deleted key ``name`` as it was when deleted (tags included), or None when none is."""
    try:
        return _to_vault_key(_call(f"get deleted key {name}", lambda: kv.get_deleted_key(name), vault_url=kv.vault_url))
    except KeyNotFoundError:
        return None


def newest_version(kv: "KeyClient", name: str, wanted: Callable[[Mapping[str, str]], bool]) -> VaultKey | None:
    """The newest version of ``name`` whose tags satisfy ``wanted`` (one list, one GET), or None."""
    def listed() -> list[Any]:
        return list(kv.list_properties_of_key_versions(name))

    try:
        versions = _call(f"list versions of key {name}", listed, vault_url=kv.vault_url)
    except KeyNotFoundError:
        return None
    chosen = [v for v in versions if v.version and wanted(dict(v.tags or {}))]
    if not chosen:
        return None
    newest = max(chosen, key=lambda v: (v.created_on is not None, v.created_on))
    return get_key(kv, name, newest.version)


def is_deleted(kv: "KeyClient", name: str) -> bool:
    """Whether ``name`` is soft-deleted (recoverable or purgeable)."""
    try:
        _call(f"get deleted key {name}", lambda: kv.get_deleted_key(name), vault_url=kv.vault_url)
        return True
    except KeyNotFoundError:
        return False


# --- the KEK -------------------------------------------------------------------------------------
_kek_cache: dict[str, Kek] = {}
_kek_locks: dict[str, threading.Lock] = {}
_kek_guard = threading.Lock()


def clear_kek_cache() -> None:
    with _kek_guard:
        _kek_cache.clear()
        _kek_locks.clear()


def fetch_kek(kek_id: str) -> Kek:
    """Fetch and check the KEK (RSA-HSM, ops exactly ["import"], enabled, 2048/3072/4096) once per process."""
    kid = KeyId.parse(kek_id, versioned=True, input="kek_id")
    key = str(kid)
    with _kek_guard:
        cached = _kek_cache.get(key)
        if cached is not None:
            return cached
        lock = _kek_locks.setdefault(key, threading.Lock())
    with lock:  # single flight: concurrent creates wait for one fetch
        cached = _kek_cache.get(key)
        if cached is not None:
            return cached
        vk = get_key(client(kid.vault_url), kid.name, kid.version)
        if vk is None:
            raise KekError(f"no KEK {key} in the vault", input="kek_id")
        kek = Kek(vk.kid, _check_kek_properties(vk))
        with _kek_guard:
            _kek_cache[key] = kek
        return kek


def _check_kek_properties(vk: VaultKey) -> rsa.RSAPublicKey:
    if vk.kty != "RSA-HSM":
        raise KekError(f"the KEK must be an RSA-HSM key, {vk.kid} is {vk.kty}", input="kek_id")
    if sorted(vk.key_ops) != ["import"]:
        raise KekError(f"the KEK's key_ops must be exactly ['import'], {vk.kid} has {list(vk.key_ops)}",
                       input="kek_id")
    if not vk.enabled:
        raise KekError(f"the KEK {vk.kid} is disabled", input="kek_id")
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    assert vk.public is not None and vk.public.public_pem is not None
    return check_kek(load_pem_public_key(vk.public.public_pem.encode("ascii")), input="kek_id")


def create_kek(kv: "KeyClient", name: str, size: int = 4096, tags: Mapping[str, str] | None = None) -> VaultKey:
    """Create a KEK: RSA-HSM, ``size`` bits, ops exactly ["import"] (BYOK spec), with ``tags``."""
    if int(size) not in (2048, 3072, 4096):
        raise KekError(f"KEK size must be 2048, 3072 or 4096, got {size}", input="size")
    return _to_vault_key(_call(f"create KEK {name}", lambda: kv.create_rsa_key(
        name, size=int(size), hardware_protected=True, key_operations=["import"],
        tags=dict(tags) if tags is not None else None), vault_url=kv.vault_url))


# --- writing -------------------------------------------------------------------------------------
def import_blob(kv: "KeyClient", name: str, blob: TransferBlob, *, kty: str, curve: str | None = None,
                key_ops: Sequence[str] | None = None, enabled: bool | None = None,
                not_before: datetime | None = None, expires_on: datetime | None = None,
                tags: Mapping[str, str] | None = None, expected_fingerprint: str | None = None,
                current: VaultKey | None | object = _UNKNOWN, expected_tags: Mapping[str, str] | None = None,
                ) -> VaultKey:
    """Import a transfer blob as a new version of ``name`` (PUT /keys/{name}, kty ``{kty}-HSM``).

    azure-core's own retries are off for this PUT: after a dropped connection, a timeout or a 5xx the
    vault is asked whether the import landed (a new current version, with ``expected_fingerprint`` and
    ``expected_tags`` when given) before anything is re-sent. A 429, a 403 ForbiddenByRbac or a 409
    ObjectIsBeingDeleted was not processed, so ``_call`` re-sends it after its backoff. ``current`` is what the
    caller already read of ``name`` (a VaultKey, or None when absent), which saves one GET.
    """
    from azure.keyvault.keys import JsonWebKey

    jwk = JsonWebKey(kty=f"{kty}-HSM", crv=curve, key_ops=list(key_ops) if key_ops else None, t=blob.to_json())
    cfg = settings()
    before = get_key(kv, name) if current is _UNKNOWN else current
    before_version = before.version if isinstance(before, VaultKey) else None
    what = f"import key {name}"
    for attempt in range(1, cfg.import_attempts + 1):
        try:
            return _call(what, lambda: _to_vault_key(kv.import_key(
                name, jwk, hardware_protected=True, enabled=enabled, tags=dict(tags) if tags is not None else None,
                not_before=not_before, expires_on=expires_on, retry_total=0)), vault_url=kv.vault_url)
        except VaultError as error:
            if not _ambiguous(error):
                raise
            landed = get_key(kv, name)
            if landed is not None and landed.version != before_version and (
                    expected_fingerprint is None or landed.fingerprint == expected_fingerprint) and all(
                    landed.tags.get(k) == v for k, v in (expected_tags or {}).items()):
                return landed  # the import committed; the response was lost
            if attempt == cfg.import_attempts:
                raise
            time.sleep(min(0.5 * 2 ** attempt, 8.0) * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover


def update_properties(kv: "KeyClient", name: str, version: str | None, *, key_ops: Sequence[str] | None = None,
                      enabled: bool | None = None, not_before: datetime | None = None,
                      expires_on: datetime | None = None, tags: Mapping[str, str] | None = None) -> VaultKey:
    """PATCH a version's properties (no new version; material is untouched).

    azure-core never re-sends a PATCH that timed out, and the vault may have applied it: after an answer that
    was lost or late (or a 5xx) the version is read back, and if it already holds what was asked that is success.
    """
    try:
        return _to_vault_key(_call(f"update key {name}", lambda: kv.update_key_properties(
            name, version, key_operations=list(key_ops) if key_ops is not None else None, enabled=enabled,
            not_before=not_before, expires_on=expires_on, tags=dict(tags) if tags is not None else None),
            vault_url=kv.vault_url))
    except VaultError as error:
        if not _ambiguous(error):
            raise
        landed = get_key(kv, name, version)
        if landed is None or not _has_properties(landed, key_ops, enabled, not_before, expires_on, tags):
            raise
        return landed


def _has_properties(vk: VaultKey, key_ops: Sequence[str] | None, enabled: bool | None, not_before: datetime | None,
                    expires_on: datetime | None, tags: Mapping[str, str] | None) -> bool:
    """Whether ``vk`` holds every property that is given (None: not asked for)."""
    wanted = ((key_ops, lambda: set(vk.key_ops) == set(key_ops or ())), (enabled, lambda: vk.enabled == enabled),
              (not_before, lambda: vk.not_before == not_before), (expires_on, lambda: vk.expires_on == expires_on),
              (tags, lambda: dict(vk.tags) == dict(tags or {})))
    return all(check() for value, check in wanted if value is not None)


@dataclass(frozen=True, slots=True)
class Deleted:
    """What a delete left in the vault: nothing (``kept`` False: purged, or never there), or a soft-deleted key
    kept until ``scheduled_purge_date`` (``recovery_level`` as the vault reports it: "Recoverable" or
    "CustomizedRecoverable" under purge protection, "...+Purgeable" without)."""

    name: str
    kept: bool
    recovery_level: str | None = None
    scheduled_purge_date: datetime | None = None


def delete(kv: "KeyClient", name: str, *, purge: bool) -> Deleted:
    """Soft-delete ``name`` and wait until the vault shows it deleted; with ``purge`` also purge it and wait
    until it is gone -- unless the vault has purge protection: then the deleted key stays until its retention
    ends, which is logged, and the delete still succeeds (nobody can purge it earlier). Absent counts as deleted."""
    url = kv.vault_url
    try:
        answer = _call(f"delete key {name}", lambda: kv.begin_delete_key(name, _polling_interval=0).result(),
                       vault_url=url)
    except KeyNotFoundError:
        answer = None
    if answer is None:  # not live: never there, deleted before, or a delete in flight (then it shows up later)
        try:
            deleted = _call(f"get deleted key {name}", lambda: kv.get_deleted_key(name), vault_url=url)
        except KeyNotFoundError:
            return Deleted(name, kept=False)
    elif answer.recovery_id:  # soft delete: complete once the vault lists it as deleted
        deleted = _wait_for(f"wait for deletion of {name}", lambda: kv.get_deleted_key(name), url, present=True)
    else:
        return Deleted(name, kept=False)  # a vault without soft delete: gone at once
    assert deleted is not None
    kept = Deleted(name, True, _text(deleted.properties.recovery_level) if deleted.properties.recovery_level
                   else None, deleted.scheduled_purge_date)
    if not purge:
        return kept
    if kept.recovery_level is not None and "Purgeable" not in kept.recovery_level:
        _log_kept(kept, url)
        return kept
    try:
        _call(f"purge key {name}", lambda: kv.purge_deleted_key(name), vault_url=url)
    except KeyNotFoundError:
        return Deleted(name, kept=False)
    except VaultPermissionError as error:
        if refusals.kind_of(error.status, error.code, error.inner, str(error)) != "purge_protection":
            raise
        _log_kept(kept, url)
        return kept
    _wait_for(f"wait for purge of {name}", lambda: kv.get_deleted_key(name), url, present=False)
    return Deleted(name, kept=False)


def delete_if_owned(kv: "KeyClient", name: str, marker: str | None, *, purge: bool, key: str) -> None:
    """``delete`` only while the resource holding ``marker`` still owns the key (ownership.py); else leave it and
    say why on stderr. Absent counts as deleted; a soft-deleted key is looked at only when it would be purged.
    ``key`` names the key in the warning."""
    from . import ownership

    held = get_key(kv, name) or (get_deleted_key(kv, name) if purge else None)
    if held is None:
        return  # gone already (and nothing to purge)
    verdict = ownership.may_remove(marker, held.tags)
    if not verdict.remove:
        ownership.warn(f"delete {key}: left in the vault, not deleted{' or purged' if purge else ''}: {verdict.why}")
        return
    delete(kv, name, purge=purge)

def _log_kept(kept: Deleted, vault_url: str) -> None:
    until = f" until {kept.scheduled_purge_date:%Y-%m-%d}" if kept.scheduled_purge_date else ""
    log.warning("purge key %s: %s has purge protection (recoveryLevel %s): the deleted key is kept%s, when its "
                "retention period ends; its name stays taken and nobody can purge it earlier", kept.name, vault_url,
                kept.recovery_level or "unknown", until)


def _wait_for(what: str, read: Callable[[], T], vault_url: str, *, present: bool) -> T | None:
    """Poll ``read`` until it finds the object (``present``) or stops finding it; bounded by the pending wait."""
    waiter = Waiter(settings().backoff("pending"))
    while True:
        try:
            found: T | None = _call(what, read, vault_url=vault_url)
        except KeyNotFoundError:
            found = None
        if (found is not None) == present:
            return found
        delay = waiter.next_delay()
        if delay is None:
            raise VaultError(f"{what}: the vault did not show it {'done' if present else 'gone'} after "
                             f"{waiter.waited:.0f} s ({ENV_PENDING_WAIT}); retry later")
        log.info("%s: not complete yet; checking again in %.1f s", what, delay)
        time.sleep(delay)


def recover(kv: "KeyClient", name: str) -> VaultKey:
    """Recover a soft-deleted key and wait until it is usable (Key Vault recovers asynchronously)."""
    _call(f"recover key {name}", lambda: kv.begin_recover_deleted_key(name, _polling_interval=0).result(),
          vault_url=kv.vault_url)
    found = _wait_for(f"wait for recovery of {name}", lambda: kv.get_key(name), kv.vault_url, present=True)
    assert found is not None
    return _to_vault_key(found)


def purge(kv: "KeyClient", name: str) -> None:
    """Purge a soft-deleted key (refused by the vault under purge protection, with that remedy)."""
    _call(f"purge key {name}", lambda: kv.purge_deleted_key(name), vault_url=kv.vault_url)



def holds_aes_key(kv: "KeyClient", vk: VaultKey, key: bytes) -> bool | None:
    """Whether the AES (oct-HSM) version ``vk`` holds ``key``, which Key Vault never shows.

    The vault wraps a random probe with that version (A128KW/A192KW/A256KW: RFC 3394, deterministic) and we
    wrap it with ``key``: the results are equal only for the same key, and neither reveals either key. When the
    vault refuses the file's size (400) but wraps with another size's algorithm, its key has another size: False.
    None when the vault cannot say: the version lacks ``wrapKey`` or is disabled, or the principal may not use it.
    """
    from cryptography.hazmat.primitives import constant_time
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap

    algorithm = {16: "A128KW", 24: "A192KW", 32: "A256KW"}.get(len(key))
    if algorithm is None or not vk.kty.startswith("oct") or "wrapKey" not in vk.key_ops or not vk.enabled:
        return None
    from azure.core.rest import HttpRequest

    from .keys import b64url, b64url_decode

    probe = os.urandom(32)

    def wrap(alg: str) -> bytes | None:
        # Not CryptographyClient: for an oct key (whose k Key Vault never returns) azure-keyvault-keys 4.11 wraps
        # *locally* with a random key of its own and never asks the vault.
        request = HttpRequest("POST", f"/keys/{vk.name}/{vk.version}/wrapkey",
                              json={"alg": alg, "value": b64url(probe)})

        def send() -> bytes:
            response = kv.send_request(request)
            response.raise_for_status()
            return b64url_decode(response.json()["value"])

        try:  # throttling is waited out; a 403 here is a missing permission or key op, not RBAC still propagating
            return _call(f"compare key {vk.name}", send, vault_url=kv.vault_url, rbac=False)
        except VaultError as error:
            if error.status in (400, 403, 404):
                return None  # the vault will not wrap with it (permission, operation, algorithm)
            raise

    wrapped = wrap(algorithm)
    if wrapped is not None:
        return constant_time.bytes_eq(wrapped, aes_key_wrap(key, probe))
    if any(wrap(other) is not None for other in ("A128KW", "A192KW", "A256KW") if other != algorithm):
        return False  # it wraps at another key size: an AES key of another size, so not this key
    return None


def sign_digest(kid: str, algorithm: str, digest: bytes) -> bytes:
    """Have the vault sign ``digest`` with the key version ``kid`` (proves an imported key works)."""
    from azure.keyvault.keys.crypto import CryptographyClient

    parsed = KeyId.parse(kid, versioned=True, input="kid")
    crypto = CryptographyClient(kid, _credential(parsed.vault_url),
                                **_with_retry_policy(_client_options(parsed.vault_url)))
    return _call(f"sign with {parsed.name}", lambda: crypto.sign(algorithm, digest).signature,
                 vault_url=parsed.vault_url)


@contextmanager
def pointed_at(ca_bundle: str, token_file: str) -> Iterator[None]:
    """Point this process's vault clients at a vault (a local one: its CA and token file), then restore."""
    saved = {name: os.environ.get(name) for name in (ENV_CA_BUNDLE, ENV_TOKEN_FILE)}
    os.environ[ENV_CA_BUNDLE], os.environ[ENV_TOKEN_FILE] = ca_bundle, token_file
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
