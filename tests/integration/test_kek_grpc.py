"""DataPlaneKek over gRPC through ``python -m pulumi.dynamic`` started as the engine starts it (RPCs chosen per
test; the engine's sequences are replayed in tests/provider/test_engine_replay.py), the provider
unpickled from ``__provider`` in that process, the local vault reached through BYOK_* env vars."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc

from byok_component.kek import DataPlaneKekProvider
from tests.provider.grpc_host import ProviderHost, plain

if TYPE_CHECKING:
    from azure.keyvault.keys import KeyClient

    from byok_component.localvault import LocalVault

PROVIDER = serialize_provider(DataPlaneKekProvider())


@pytest.fixture(scope="module")
def host(local_vault: "LocalVault") -> Iterator[ProviderHost]:
    h = ProviderHost({"BYOK_CA_BUNDLE": local_vault.ca_cert, "BYOK_ACCESS_TOKEN_FILE": local_vault.token_file,
                      "BYOK_RBAC_WAIT_SECONDS": "0"})
    h.configure({})
    try:
        yield h
    finally:
        h.close()


def test_preview_check_with_an_unknown_vault_url(host: ProviderHost) -> None:
    """During a preview the vault may not exist yet: check passes the unknown through and fails nothing."""
    response = host.check({}, {"vault_url": rpc.UNKNOWN, "key_name": "KEKforBYOK", "key_size": 4096,
                               "__provider": PROVIDER})
    assert list(response.failures) == []
    assert plain(response.inputs)["vault_url"] == rpc.UNKNOWN


def test_check_failures_name_the_property(host: ProviderHost) -> None:
    response = host.check({}, {"vault_url": "https://127.0.0.1:1", "key_name": "no_underscores",
                               "key_size": 1024, "__provider": PROVIDER})
    assert sorted(f.property for f in response.failures) == ["key_name", "key_size"]


def test_lifecycle_over_grpc(host: ProviderHost, local_vault: "LocalVault", key_client: "KeyClient",
                             unique_name: Callable[[str], str]) -> None:
    name = unique_name("kek")
    news: dict[str, Any] = {"vault_url": local_vault.vault_url + "/", "key_name": name, "key_size": 2048,
                            "__provider": PROVIDER}
    checked = plain(host.check({}, news).inputs)
    assert checked["vault_url"] == local_vault.vault_url  # normalised

    created = host.create(checked)
    outs = plain(created.properties)
    assert created.id == f"{local_vault.vault_url}/keys/{name}"
    assert outs["kid"].startswith(created.id + "/") and outs["key_ops"] == ["import"]
    assert outs["__provider"] == PROVIDER and outs["key_size"] == 2048
    assert key_client.get_key(name).id == outs["kid"]

    read = host.read(created.id, outs)
    assert read.id == created.id and plain(read.properties)["kid"] == outs["kid"]
    assert plain(read.inputs)["key_name"] == name

    bigger = plain(host.check(checked, {**news, "key_size": 3072}).inputs)
    diff = host.diff(created.id, outs, bigger)
    assert list(diff.replaces) == [] and diff.changes == diff.DIFF_SOME
    updated = plain(host.update(created.id, outs, bigger).properties)
    assert updated["key_size"] == 3072 and updated["kid"] != outs["kid"]

    moved = plain(host.check(bigger, {**news, "key_name": name + "-b"}).inputs)
    assert list(host.diff(created.id, updated, moved).replaces) == ["key_name"]

    host.delete(created.id, updated)
    assert key_client.get_deleted_key(name).name == name
    gone = host.read(created.id, updated)
    assert gone.id == ""
