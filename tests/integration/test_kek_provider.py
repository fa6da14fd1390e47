"""DataPlaneKekProvider against the local vault over real HTTPS with the real azure-keyvault-keys SDK:
create (idempotent, refusing foreign keys), read (refresh, gone -> blank id), update (new version on a
new size), delete (soft, purge), and the KEK being one the BYOK import path accepts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from byok_component import vault
from byok_component.errors import KeyConflictError, KeyDeletedError
from byok_component.kek import DataPlaneKekProvider
from byok_component.keys import load_public_key
from byok_component.kid import KeyId

if TYPE_CHECKING:
    from azure.keyvault.keys import KeyClient

    from byok_component.localvault import LocalVault

P = DataPlaneKekProvider()


@pytest.fixture
def provider_env(local_vault: "LocalVault", monkeypatch: pytest.MonkeyPatch) -> "LocalVault":
    """Point the provider at the local vault the way a user does: CA bundle + token file in the env."""
    monkeypatch.setenv("BYOK_CA_BUNDLE", local_vault.ca_cert)
    monkeypatch.setenv("BYOK_ACCESS_TOKEN_FILE", local_vault.token_file)
    monkeypatch.setenv("BYOK_RBAC_WAIT_SECONDS", "0")
    vault.clear_kek_cache()
    return local_vault


def props(v: "LocalVault", name: str, size: int = 2048, purge: bool = False) -> dict[str, Any]:
    checked = P.check({}, {"vault_url": v.vault_url, "key_name": name, "key_size": float(size),
                           "purge_on_delete": purge})
    assert checked.failures == []
    return checked.inputs


def test_create_makes_an_import_only_rsa_hsm_kek(provider_env: "LocalVault", key_client: "KeyClient",
                                                 unique_name: Callable[[str], str]) -> None:
    name = unique_name("kek")
    created = P.create(props(provider_env, name, 4096))
    assert created.id == f"{provider_env.vault_url}/keys/{name}"
    outs = created.outs
    kid = KeyId.parse(outs["kid"], versioned=True)
    assert (kid.vault_url, kid.name, kid.version) == (provider_env.vault_url, name, outs["version"])
    assert outs["key_size"] == 4096 and outs["key_ops"] == ["import"] and outs["enabled"] is True
    public = load_pem_public_key(outs["public_key_pem"].encode())
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 4096
    assert outs["fingerprint"] == load_public_key(outs["public_key_pem"].encode()).fingerprint
    assert set(outs) >= {"vault_url", "key_name", "key_size", "purge_on_delete"}  # inputs echoed for diff
    held = key_client.get_key(name)
    assert held.key_type == "RSA-HSM" and held.key_operations == ["import"] and held.id == outs["kid"]
    # The BYOK import path accepts it as a KEK (RSA-HSM, ops exactly ["import"], enabled, allowed size).
    assert vault.fetch_kek(outs["kid"]).size == 4096


def test_create_is_idempotent_and_read_reports_the_same_version(provider_env: "LocalVault",
                                                                unique_name: Callable[[str], str]) -> None:
    p = props(provider_env, unique_name("kek"))
    first = P.create(p)
    again = P.create(p)  # e.g. a retried `pulumi up` after a lost response: adopts, no new version
    assert again.outs["kid"] == first.outs["kid"]
    read = P.read(first.id, {**first.outs, "__provider": "x"})
    assert read.id == first.id and read.outs["kid"] == first.outs["kid"]
    assert read.outs["fingerprint"] == first.outs["fingerprint"]
    assert read.inputs == {k: first.outs[k] for k in ("vault_url", "key_name", "key_size", "purge_on_delete")}


def test_create_refuses_a_name_that_holds_another_key(provider_env: "LocalVault", key_client: "KeyClient",
                                                      unique_name: Callable[[str], str]) -> None:
    name = unique_name("taken")
    existing = key_client.create_rsa_key(name, size=2048, hardware_protected=True, key_operations=["sign"])
    with pytest.raises(KeyConflictError, match="a KEK needs a name of its own"):
        P.create(props(provider_env, name))
    assert key_client.get_key(name).properties.version == existing.properties.version  # untouched


def test_a_new_size_is_a_new_version_and_the_old_one_stays(provider_env: "LocalVault", key_client: "KeyClient",
                                                           unique_name: Callable[[str], str]) -> None:
    name = unique_name("kek")
    created = P.create(props(provider_env, name, 2048))
    new = props(provider_env, name, 3072)
    assert P.diff(created.id, created.outs, new).replaces == []
    updated = P.update(created.id, created.outs, new).outs
    assert updated["key_size"] == 3072 and updated["kid"] != created.outs["kid"]
    assert key_client.get_key(name, created.outs["version"]).key.n is not None  # old version still there
    only_flag = P.update(created.id, updated, {**new, "purge_on_delete": True}).outs
    assert only_flag["kid"] == updated["kid"] and only_flag["purge_on_delete"] is True


def test_refresh_after_out_of_band_delete_drops_it(provider_env: "LocalVault", key_client: "KeyClient",
                                                   unique_name: Callable[[str], str]) -> None:
    name = unique_name("kek")
    created = P.create(props(provider_env, name))
    key_client.begin_delete_key(name).wait()
    read = P.read(created.id, created.outs)
    assert read.id == "" and read.outs == {}
    # Re-creating on the soft-deleted name: a KEK of the declared size is recovered (what a delete-before-replace
    # replacement leaves behind); one of another size is not, and the refusal says what to do instead of a bare 409.
    with pytest.raises(KeyDeletedError, match="recover it .* or purge it"):
        P.create(props(provider_env, name, size=3072))
    again = P.create(props(provider_env, name))
    assert again.outs["version"] == created.outs["version"] and key_client.get_key(name).properties.enabled


def test_delete_soft_deletes_and_purge_frees_the_name(provider_env: "LocalVault", key_client: "KeyClient",
                                                      unique_name: Callable[[str], str]) -> None:
    soft, purged = unique_name("kek"), unique_name("kek")
    a = P.create(props(provider_env, soft))
    P.delete(a.id, a.outs)
    assert key_client.get_deleted_key(soft).name == soft
    b = P.create(props(provider_env, purged, purge=True))
    P.delete(b.id, b.outs)
    assert not vault.is_deleted(vault.client(provider_env.vault_url), purged)
    P.delete(b.id, b.outs)  # already gone: nothing to do
    assert P.create(props(provider_env, purged)).outs["key_ops"] == ["import"]  # the name is free again


@pytest.fixture(scope="module")
def hsm_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator["LocalVault"]:
    from byok_component.localvault import LocalVault

    with LocalVault(tmp_path_factory.mktemp("kek-hsm"), sku="managedhsm") as v:
        yield v


def test_create_on_a_managed_hsm(hsm_vault: "LocalVault", monkeypatch: pytest.MonkeyPatch,
                                 unique_name: Callable[[str], str]) -> None:
    monkeypatch.setenv("BYOK_CA_BUNDLE", hsm_vault.ca_cert)
    monkeypatch.setenv("BYOK_ACCESS_TOKEN_FILE", hsm_vault.token_file)
    created = P.create(props(hsm_vault, unique_name("kek"), 3072))
    assert created.outs["key_size"] == 3072 and created.outs["kid"].startswith(hsm_vault.vault_url)
