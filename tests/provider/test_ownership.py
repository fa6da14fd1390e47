"""Ownership: a replacement's delete never removes (or purges) the key its create adopted.

Methods called directly, in the order the engine calls them for each sequence (the gRPC replay of the same
sequences is tests/provider/test_engine_replay.py); after each, the vault is inspected with the SDK.
"""

from __future__ import annotations

import secrets
from typing import Any, Callable

import pytest

from byok_component import ownership
from byok_component.kek import DataPlaneKekProvider
from byok_component.provider import ByokKeyProvider
from tests.provider.vaultstate import held, public_of


@pytest.fixture
def premium(on_vault: Callable[..., Any], premium_vault: Any) -> Any:
    return on_vault(premium_vault)


def name() -> str:
    return f"own-{secrets.token_hex(4)}"


def declared(vault: Any, kek_id: str, key_name: str, key_file: str, **extra: Any) -> dict[str, Any]:
    return {"vault_url": vault.vault_url, "key_name": key_name, "kek_id": kek_id, "key_file": key_file, **extra}


def check(provider: Any, news: dict[str, Any], olds: dict[str, Any] | None = None) -> dict[str, Any]:
    result = provider.check(olds or {}, news)
    assert [(f.property, f.reason) for f in result.failures] == []
    return result.inputs


def legacy(outs: dict[str, Any]) -> dict[str, Any]:
    """Outputs as a provider from before owner markers wrote them."""
    return {k: v for k, v in outs.items() if k != ownership.OWNER_OUTPUT}


# --- ByokKey ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("purge", [False, True])
def test_replace_keeps_the_adopted_key(premium, kek_id, keys, sdk, capfd, purge: bool) -> None:
    """`pulumi up --replace` / taint: Check (no olds), Create, then Delete with the old outputs — no Diff."""
    provider, key_name = ByokKeyProvider(), name()
    news = declared(premium, kek_id, key_name, keys["ec"].private, purge_on_delete=purge)
    old = provider.create(check(provider, news))
    new = provider.create(check(provider, news))
    provider.delete(old.id, old.outs)
    after = held(sdk(premium), key_name)
    assert after.live and after.enabled and after.versions == 1  # re-adopted: no new version
    assert after.public == public_of(keys["ec"].private)
    assert after.owner == new.outs["owner"] != old.outs["owner"]
    assert "left in the vault" in capfd.readouterr().err
    provider.delete(new.id, new.outs)  # and the new resource still owns it: destroy removes it
    gone = held(sdk(premium), key_name)
    assert (gone.live, gone.purged) == (False, purge)


def test_destroy_deletes_and_purges_when_asked(premium, kek_id, keys, sdk) -> None:
    provider = ByokKeyProvider()
    for purge in (False, True):
        key_name = name()
        created = provider.create(check(provider, declared(premium, kek_id, key_name, keys["ec"].private,
                                                           purge_on_delete=purge)))
        provider.delete(created.id, created.outs)
        after = held(sdk(premium), key_name)
        assert (after.live, after.deleted, after.purged) == (False, not purge, purge)


def test_replacement_to_another_name_removes_the_old_key(premium, kek_id, keys, sdk) -> None:
    provider, first, second = ByokKeyProvider(), name(), name()
    old = provider.create(check(provider, declared(premium, kek_id, first, keys["ec"].private, purge_on_delete=True)))
    news = check(provider, declared(premium, kek_id, second, keys["ec"].private, purge_on_delete=True))
    assert provider.diff(old.id, old.outs, news).replaces == ["key_name"]
    provider.create(news)
    provider.delete(old.id, old.outs)
    assert held(sdk(premium), first).purged and held(sdk(premium), second).live


def test_state_without_a_marker(premium, kek_id, keys, sdk) -> None:
    """State written by an older provider (no `owner`): a replacement keeps the key, a destroy removes it."""
    provider, key_name = ByokKeyProvider(), name()
    news = check(provider, declared(premium, kek_id, key_name, keys["ec"].private, purge_on_delete=True))
    old = provider.create(news)
    sdk(premium).update_key_properties(key_name, tags={})  # what an older provider left on the version
    new = provider.create(news)
    provider.delete(old.id, legacy(old.outs))
    assert held(sdk(premium), key_name).owner == new.outs["owner"]
    # Destroy of an old-state resource whose key carries no marker: removed, as before.
    other = name()
    made = provider.create(check(provider, declared(premium, kek_id, other, keys["ec"].private, purge_on_delete=True)))
    sdk(premium).update_key_properties(other, tags={})
    provider.delete(made.id, legacy(made.outs))
    assert held(sdk(premium), other).purged
    # Its first update gives it a marker.
    kept = provider.create(check(provider, declared(premium, kek_id, name(), keys["ec"].private)))
    updated = provider.update(kept.id, legacy(kept.outs), check(provider, {**declared(
        premium, kek_id, kept.outs["key_name"], keys["ec"].private), "tags": {"a": "b"}}))
    assert ownership.marker_of(updated.outs) is not None
    assert held(sdk(premium), kept.outs["key_name"]).owner == updated.outs["owner"]


def test_crash_and_rerun(premium, kek_id, keys, sdk) -> None:
    """A replacement's Create landed but the engine never recorded it (crash); the rerun creates again and
    deletes the old resource: the key stays. A delete that crashed between soft-delete and purge purges on rerun."""
    provider, key_name = ByokKeyProvider(), name()
    news = check(provider, declared(premium, kek_id, key_name, keys["ec"].private, purge_on_delete=True))
    old = provider.create(news)
    provider.create(news)  # lost: its outputs never reached state
    rerun = provider.create(news)
    provider.delete(old.id, old.outs)
    after = held(sdk(premium), key_name)
    assert after.live and after.owner == rerun.outs["owner"] and after.versions == 1
    sdk(premium).begin_delete_key(key_name).wait()  # the destroy's soft-delete landed, then the crash
    provider.delete(rerun.id, rerun.outs)
    assert held(sdk(premium), key_name).purged


def test_a_key_another_stack_took_over_is_left_alone(premium, kek_id, keys, sdk, capfd) -> None:
    provider, key_name = ByokKeyProvider(), name()
    news = check(provider, declared(premium, kek_id, key_name, keys["ec"].private, purge_on_delete=True))
    ours = provider.create(news)
    sdk(premium).update_key_properties(key_name, tags={"byok-owner": ownership.new_marker()})
    refreshed = provider.read(ours.id, ours.outs)
    assert refreshed.outs["owner"] == ours.outs["owner"] and refreshed.outs["tags"] == {}
    provider.delete(ours.id, ours.outs)
    assert held(sdk(premium), key_name).live
    err = capfd.readouterr().err
    assert "destroying this resource will leave the key" in err and "left in the vault" in err
    # A soft-deleted key carrying another marker is not purged either.
    sdk(premium).begin_delete_key(key_name).wait()
    provider.delete(ours.id, ours.outs)
    assert held(sdk(premium), key_name).deleted


def test_the_marker_is_never_a_user_tag(premium, kek_id, keys, sdk) -> None:
    provider, key_name = ByokKeyProvider(), name()
    news = check(provider, declared(premium, kek_id, key_name, keys["ec"].private, tags={"env": "prod"}))
    created = provider.create(news)
    assert created.outs["tags"] == {"env": "prod"}
    assert held(sdk(premium), key_name).tags == {"env": "prod", "byok-owner": created.outs["owner"]}
    refreshed = provider.read(created.id, created.outs)
    assert refreshed.outs["tags"] == refreshed.inputs["tags"] == {"env": "prod"}
    assert provider.diff(created.id, refreshed.outs, news).changes is False
    # A PATCH of the user's tags keeps the marker.
    retagged = provider.update(created.id, created.outs, check(provider, {**news, "tags": {"env": "dev"}}))
    assert held(sdk(premium), key_name).tags == {"env": "dev", "byok-owner": created.outs["owner"]}
    assert retagged.outs["owner"] == created.outs["owner"]
    for tags in ({"byok-owner": "x"}, {"BYOK-Owner": "x"}, {f"t{i}": "v" for i in range(15)}):
        failures = provider.check({}, {**news, "tags": tags}).failures
        assert [f.property for f in failures] == ["tags"]


# --- DataPlaneKek ----------------------------------------------------------------------------------------------
def kek_inputs(vault: Any, key_name: str, purge: bool = False) -> dict[str, Any]:
    return check(DataPlaneKekProvider(), {"vault_url": vault.vault_url, "key_name": key_name,
                                          "key_size": 2048.0, "purge_on_delete": purge})


def test_kek_replace_keeps_the_adopted_kek(premium, sdk) -> None:
    provider, key_name = DataPlaneKekProvider(), name()
    old = provider.create(kek_inputs(premium, key_name, purge=True))
    new = provider.create(kek_inputs(premium, key_name, purge=True))
    provider.delete(old.id, old.outs)
    after = held(sdk(premium), key_name)
    assert after.live and after.versions == 1 and after.version == old.outs["version"] == new.outs["version"]
    assert after.owner == new.outs["owner"] != old.outs["owner"]
    provider.delete(new.id, new.outs)
    assert held(sdk(premium), key_name).purged


def test_kek_names_compare_case_insensitively(premium, sdk) -> None:
    """KEKforBYOK -> kekforbyok is the same KEK: an update recording the spelling, never a replacement."""
    provider, key_name = DataPlaneKekProvider(), "KEK" + secrets.token_hex(4)
    created = provider.create(kek_inputs(premium, key_name, purge=True))
    news = kek_inputs(premium, key_name.lower(), purge=True)
    diff = provider.diff(created.id, created.outs, news)
    assert (diff.changes, diff.replaces) == (True, [])
    updated = provider.update(created.id, created.outs, news)
    assert updated.outs["key_name"] == key_name.lower() and updated.outs["owner"] == created.outs["owner"]
    assert updated.outs["version"] == created.outs["version"]
    # Were it replaced anyway (taint, a cascade), the old resource's delete leaves the adopted KEK alone.
    again = provider.create(news)
    provider.delete(created.id, created.outs)
    assert held(sdk(premium), key_name).owner == again.outs["owner"]


def test_kek_destroy_and_legacy_state(premium, sdk) -> None:
    provider = DataPlaneKekProvider()
    soft, purged, old_state = name(), name(), name()
    for key_name, purge in ((soft, False), (purged, True)):
        made = provider.create(kek_inputs(premium, key_name, purge=purge))
        provider.delete(made.id, made.outs)
    assert held(sdk(premium), soft).deleted and held(sdk(premium), purged).purged
    made = provider.create(kek_inputs(premium, old_state, purge=True))
    sdk(premium).update_key_properties(old_state, tags={})
    provider.delete(made.id, legacy(made.outs))
    assert held(sdk(premium), old_state).purged
