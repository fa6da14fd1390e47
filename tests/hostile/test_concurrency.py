"""Concurrency: Pulumi runs resources in parallel and the provider process serves up to 4 gRPC threads.

50 ByokKey creates at once against one local vault (50 threads, and 4 like the provider host), one provider
object shared by every thread: each key is imported exactly once (one PUT, one version), the KEK is fetched
once per KEK per process (GET /keys/<kek>/<version> counted at the vault), and the provider carries no
mutable state (empty ``__dict__``, unchanged class, pickled by reference, no mutable module globals).
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from byok_component import provider as provider_module
from byok_component import vault as vault_adapter
from byok_component.errors import ByokError
from byok_component.provider import ByokKeyProvider
from tests.conftest import ec_key, serve_vault
from tests.hostile.conftest import KeyFiles, make_kek, versions, write_key
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


def test_the_provider_has_no_shared_mutable_state() -> None:
    provider = ByokKeyProvider()
    assert vars(provider) == {}
    mutable = [name for name, value in vars(provider_module).items()
               if not name.startswith("__") and isinstance(value, (dict, list, set, bytearray))]
    assert mutable == []  # the module keeps nothing between calls either
    raw = serialize_provider(provider)
    assert serialize_provider(ByokKeyProvider()) == raw and len(raw) < 140  # by reference: module + class name


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
