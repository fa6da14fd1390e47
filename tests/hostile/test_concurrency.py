"""Concurrency: Pulumi runs resources in parallel and the provider process serves up to 4 gRPC threads.

50 ByokKey creates at once against one local vault (50 threads, and 4 like the provider host), one provider
object shared by every thread: each key is imported exactly once (one PUT, one version), the KEK is fetched
once per KEK per process (GET /keys/<kek>/<version> counted at the vault), and the provider carries no
mutable state (empty ``__dict__``, unchanged class, pickled by reference); the module-level state of every module
the provider loads is a reviewed, locked cache that holds no secret.
"""

from __future__ import annotations

import base64
import secrets
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from byok_component import vault as vault_adapter
from byok_component.errors import ByokError
from byok_component.provider import ByokKeyProvider
from tests.conftest import ec_key, serve_vault
from tests.hostile.conftest import KeyFiles, add_tokens, make_kek, versions, write_key
from tests.hostile.figures import FIGURES
from tests.integration.conftest import make_key_client

if TYPE_CHECKING:
    from byok_component.localvault import LocalVault

CREATES = 50


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator["LocalVault"]:
    yield from serve_vault(tmp_path_factory.mktemp("concurrency-vault"))


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> list[KeyFiles]:
    """50 distinct EC keys (P-256 and P-384), so every version can be told apart by its fingerprint."""
    directory = tmp_path_factory.mktemp("concurrency-keys")
    return [write_key(directory, f"c{i}", ec_key("P-384" if i % 5 == 0 else "P-256", 1000 + i))
            for i in range(CREATES)]


def _kek_fetches(vault: "LocalVault", kek_id: str, since: int) -> int:
    path = "/keys/" + kek_id.split("/keys/", 1)[1]
    return sum(1 for method, seen in vault.requests_since(since) if method == "GET" and seen == path)


def _state_of(provider: ByokKeyProvider) -> tuple[Any, ...]:
    return (dict(vars(provider)), {k: v for k, v in vars(ByokKeyProvider).items() if not k.startswith("__")})


@pytest.mark.parametrize("workers,keks", [(CREATES, 1), (4, 1), (CREATES, 2)], ids=["50-threads", "4-threads",
                                                                                     "50-threads-2-keks"])
def test_parallel_creates_import_each_key_once_and_fetch_each_kek_once(
        workers: int, keks: int, vault: "LocalVault", material: list[KeyFiles], use_vault: Callable[..., Any]) -> None:
    use_vault(vault)  # also empties the process's KEK cache
    kek_ids = [make_kek(vault, f"conc-kek-{secrets.token_hex(3)}") for _ in range(keks)]
    provider = ByokKeyProvider()  # one object for every thread, as in the provider host
    before = _state_of(provider)
    run = secrets.token_hex(3)
    since = vault.request_count

    def create(i: int) -> tuple[str, dict[str, Any] | str]:
        name = f"conc-{run}-{i}"
        checked = provider.check({}, {"vault_url": vault.vault_url, "key_name": name, "kek_id": kek_ids[i % keks],
                                      "key_file": material[i].private})
        assert not checked.failures, checked.failures
        try:
            return name, dict(provider.create(checked.inputs).outs)
        except ByokError as exc:
            return name, str(exc)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(create, range(CREATES)))
    requests = vault.requests_since(since)
    client = make_key_client(vault)

    errors = [f"{name}: {outs}" for name, outs in results if isinstance(outs, str)]
    held = {name: versions(client, name) for name, _ in results}
    puts = {name: requests.count(("PUT", f"/keys/{name}")) for name, _ in results}
    wrong = [name for i, (name, outs) in enumerate(results) if isinstance(outs, dict) and (
        outs["fingerprint"] != material[i].info.fingerprint
        or outs["version"] != vault_adapter.get_key(client, name).version)]
    fetches = {kek_id.split("/keys/")[1].split("/")[0]: _kek_fetches(vault, kek_id, since) for kek_id in kek_ids}
    duplicates = sum(max(0, n - 1) for n in held.values())
    FIGURES.concurrency(CREATES, duplicates, keks, sum(fetches.values()))
    assert errors == []
    assert set(held.values()) == {1} and set(puts.values()) == {1}, (held, puts)  # imported exactly once
    assert wrong == []  # each state holds its own key and the vault's version
    assert set(fetches.values()) == {1}, fetches  # once per KEK per process
    assert _state_of(provider) == before and vars(provider) == {}


# Module-level state the provider process may keep, each reviewed: what it holds, why it is safe to share between
# the engine's threads (a lock beside it) and that it holds nothing secret (scanned below after real creates).
REVIEWED_CACHES = {
    "byok_component.vault._clients": "KeyClients per vault and settings, LRU of 16; credentials read tokens per call",
    "byok_component.vault._kek_cache": "checked KEKs (kid and public key) per versioned kid",
    "byok_component.vault._kek_locks": "one lock per KEK kid (single-flight fetch)",
    "byok_component.keys._PRIMES_CHECKED": "SHA-256 of private keys whose primes OpenSSL checked, at most 1024",
    "byok_component.pkcs11._libs": "loaded PKCS#11 libraries by path",
    "byok_component.pkcs11._verdicts": "padding-probe verdicts per token and key",
    "byok_component.pkcs11._ec_lengths": "EC point lengths per token and key",
    "byok_component.pkcs11._probe_kek": "a throwaway RSA key for the padding probe (never a user's key)",
}
_MUTABLE = (dict, list, set, bytearray, deque)


def _module_state() -> dict[str, Any]:
    """Every mutable container at module level in every byok_component module loaded, by dotted name."""
    state = {}
    for module_name, module in sorted(sys.modules.items()):
        if module_name.split(".")[0] != "byok_component" or module is None:
            continue
        for name, value in vars(module).items():
            if not name.startswith("__") and isinstance(value, _MUTABLE):
                state[f"{module_name}.{name}"] = value
    return state


def test_module_state_is_reviewed_locked_and_holds_no_secret(vault: "LocalVault", material: list[KeyFiles],
                                                             use_vault: Callable[..., Any], secret_set: Any) -> None:
    """Not only provider.py: every module the provider process loads. Eight parallel creates run first, so caches
    fill as they do in production; then every container that changed must be a reviewed cache with a lock beside
    it, constants must be unchanged, and no container may hold a secret."""
    import copy

    from tests.hostile.conftest import scan

    use_vault(vault)
    kek_id = make_kek(vault, f"state-kek-{secrets.token_hex(3)}")
    provider = ByokKeyProvider()
    before = {name: repr(value) for name, value in _module_state().items()}

    def create(i: int) -> None:
        checked = provider.check({}, {"vault_url": vault.vault_url, "key_name": f"state-{secrets.token_hex(4)}",
                                      "kek_id": kek_id, "key_file": material[i].private})
        provider.create(checked.inputs)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, range(8)))
    after = _module_state()
    changed = sorted(name for name, value in after.items() if repr(value) != before.get(name))
    unreviewed = [name for name in changed if name not in REVIEWED_CACHES]
    lowercase = [name for name in after if not name.rsplit(".", 1)[1].lstrip("_").isupper()
                 and name not in REVIEWED_CACHES]  # lowercase at module level reads as state, not a constant
    unlocked = [name for name in REVIEWED_CACHES if name in after and not any(
        isinstance(value, type(threading.Lock())) or isinstance(value, type(threading.RLock()))
        for value in vars(sys.modules[name.rsplit(".", 1)[0]]).values())]
    everything = add_tokens(copy.deepcopy(secret_set), vault)
    for i in range(8):  # the keys just imported (made as the material fixture makes them)
        everything.add_private_key(f"c{i}", ec_key("P-384" if i % 5 == 0 else "P-256", 1000 + i))
    leaks = {name: scan(repr(list(value.items()) if isinstance(value, dict) else list(value)), everything)
             for name, value in after.items()}
    assert unreviewed == [] and lowercase == [], (unreviewed, lowercase)
    assert unlocked == []
    assert {name: found for name, found in leaks.items() if found} == {}
    assert any(name in changed for name in ("byok_component.vault._kek_cache", "byok_component.vault._clients"))


def test_the_provider_object_is_stateless_and_pickled_by_reference() -> None:
    provider = ByokKeyProvider()
    assert vars(provider) == {} and [k for k in vars(ByokKeyProvider) if not k.startswith("__")] != []
    raw = serialize_provider(provider)
    assert serialize_provider(ByokKeyProvider()) == raw and len(raw) < 140  # by reference: module + class name
    assert b"byok_component.provider" in base64.b64decode(raw)


def test_parallel_creates_over_grpc_fetch_the_kek_once(tmp_path: Path, vault: "LocalVault",
                                                       material: list[KeyFiles]) -> None:
    """The real host: `python -m pulumi.dynamic` serving 4 gRPC threads; 20 Create RPCs in flight at once."""
    from tests.provider.grpc_host import ProviderHost, plain

    kek_id = make_kek(vault, f"grpc-kek-{secrets.token_hex(3)}")
    provider = serialize_provider(ByokKeyProvider())
    host = ProviderHost({"BYOK_CA_BUNDLE": vault.ca_cert, "BYOK_ACCESS_TOKEN_FILE": vault.token_file,
                         "BYOK_RBAC_WAIT_SECONDS": "0"})
    run, count = secrets.token_hex(3), 20
    since = vault.request_count
    try:
        host.configure()
        inputs = [plain(host.check({}, {"vault_url": vault.vault_url, "key_name": f"grpc-{run}-{i}", "kek_id": kek_id,
                                        "key_file": material[i].private, "__provider": provider}).inputs)
                  for i in range(count)]
        with ThreadPoolExecutor(max_workers=count) as pool:
            created = list(pool.map(host.create, inputs))
    finally:
        host.close()
    client = make_key_client(vault)
    held = [versions(client, f"grpc-{run}-{i}") for i in range(count)]
    fetches = _kek_fetches(vault, kek_id, since)
    FIGURES.concurrency(count, sum(max(0, n - 1) for n in held), 1, fetches)
    assert [c.id for c in created] == [f"{vault.vault_url}/keys/grpc-{run}-{i}" for i in range(count)]
    assert held == [1] * count
    assert fetches == 1
