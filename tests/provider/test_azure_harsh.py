"""The RBAC gate and the seed's setup against a local vault with Azure's harsh side on (localvault/behaviour.py).

- The gate (rbacgate.py) called as the engine calls it: Check, Create after the role assignment; it passes only
  once the vault stops answering 403 ForbiddenByRbac, so the KEK after it meets no 403 at all.
- The seed's setup -- the role gate, the KEK and both keys -- replayed over gRPC in the engine's order for
  `pulumi up` and then `pulumi destroy`, against a vault with the propagation window, 429s without
  Retry-After (a write rate limit plus injected 429s on reads and deletes), purge protection and
  asynchronous deletion all on. It must succeed without a rerun; the destroy leaves the documented state:
  every key soft-deleted, recoverable until its retention ends (purge protection refuses the purge that
  purge_on_delete asks for, and the destroy still succeeds).
Waits are shortened with BYOK_* settings; nothing here asserts a duration.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from byok_component.errors import VaultPermissionError
from byok_component.kek import DataPlaneKekProvider
from byok_component.localvault import Behaviour, FaultConfig, LocalVault
from byok_component.localvault import faults as fault_rules
from byok_component.rbacgate import RbacGateProvider
from tests.secretscan import find_secrets

FAST = {"BYOK_BACKOFF_BASE_SECONDS": "0.02", "BYOK_RBAC_WAIT_SECONDS": "60", "BYOK_THROTTLE_WAIT_SECONDS": "60",
        "BYOK_PENDING_WAIT_SECONDS": "60"}


@pytest.fixture
def harsh_vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., LocalVault]]:
    """``harsh_vault(behaviour, **faults)``: a started vault; this process's provider calls are pointed at it."""
    started: list[LocalVault] = []

    def start(behaviour: Behaviour, **faults: Any) -> LocalVault:
        lv = LocalVault(tmp_path / f"v{len(started)}", faults=FaultConfig(**faults), behaviour=behaviour).start()
        started.append(lv)
        for name, value in {"BYOK_CA_BUNDLE": lv.ca_cert, "BYOK_ACCESS_TOKEN_FILE": lv.token_file, **FAST}.items():
            monkeypatch.setenv(name, value)
        return lv

    yield start
    for lv in started:
        lv.stop()


def _checked(provider: Any, news: dict[str, Any]) -> dict[str, Any]:
    result = provider.check({}, news)
    assert [(f.property, f.reason) for f in result.failures] == []
    return dict(result.inputs)


# --- the gate, method by method ------------------------------------------------------------------------------
def test_the_gate_passes_once_the_role_applies_and_the_kek_meets_no_403(harsh_vault: Callable[..., LocalVault]) -> None:
    lv = harsh_vault(Behaviour(rbac_window_requests=4))
    gate = RbacGateProvider()
    inputs = _checked(gate, {"vault_url": lv.vault_url, "key_name": "KEKforBYOK", "role_assignment_id": "ra-1"})
    created = gate.create(inputs)
    assert created.id == f"{lv.vault_url}/keys/KEKforBYOK#rbac"
    assert lv.harsh_answers["forbidden_by_rbac"] == 4  # all of the window was spent inside the gate
    kek = DataPlaneKekProvider()
    made = kek.create(_checked(kek, {"vault_url": lv.vault_url, "key_name": "KEKforBYOK", "key_size": 2048}))
    assert made.outs["key_ops"] == ["import"]
    assert lv.harsh_answers["forbidden_by_rbac"] == 4  # the KEK after the gate: not one 403


def test_a_new_role_assignment_replaces_the_gate_which_waits_again(harsh_vault: Callable[..., LocalVault]) -> None:
    lv = harsh_vault(Behaviour(rbac_window_requests=2))
    gate = RbacGateProvider()
    olds = _checked(gate, {"vault_url": lv.vault_url, "key_name": "kek", "role_assignment_id": "ra-1"})
    gate.create(olds)
    news = {**olds, "role_assignment_id": "ra-2"}
    assert gate.diff("id", olds, news).replaces == ["role_assignment_id"]
    assert not gate.diff("id", olds, dict(olds)).changes
    lv.assign_role()  # the named event: the new assignment opens the window again
    gate.create(news)
    assert lv.harsh_answers["forbidden_by_rbac"] == 4


def test_a_gate_that_outwaits_its_budget_names_the_role(harsh_vault: Callable[..., LocalVault],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    lv = harsh_vault(Behaviour(rbac_window_requests=10_000))
    monkeypatch.setenv("BYOK_RBAC_WAIT_SECONDS", "0.3")
    gate = RbacGateProvider()
    with pytest.raises(VaultPermissionError) as info:
        gate.create(_checked(gate, {"vault_url": lv.vault_url, "key_name": "kek"}))
    text = str(info.value)
    assert len(text.splitlines()) == 1 and "still ForbiddenByRbac after waiting" in text
    assert "'Key Vault Crypto Officer'" in text


def test_gate_check_refuses_bad_inputs_offline() -> None:
    result = RbacGateProvider().check({}, {"vault_url": "http://x.vault.azure.net", "key_name": "no spaces"})
    assert sorted(f.property for f in result.failures) == ["key_name", "vault_url"]


def test_destroy_then_up_again_waits_out_a_purge_in_flight(harsh_vault: Callable[..., LocalVault], keys: Any,
                                                            sdk: Callable[..., Any]) -> None:
    """`pulumi destroy` with purge_on_delete, then `pulumi up` of the same key at once: Key Vault answers the
    re-create 409 ObjectIsBeingDeleted while the purge completes (azure-sdk-for-net#34322); the create waits
    it out and imports one version."""
    from byok_component.provider import ByokKeyProvider

    lv = harsh_vault(Behaviour(async_seconds=0.5, purge_protection=False))
    kv = sdk(lv)
    kek_id = kv.create_rsa_key("kek", size=2048, hardware_protected=True, key_operations=["import"]).id
    provider = ByokKeyProvider()
    inputs = _checked(provider, {"vault_url": lv.vault_url, "key_name": "k", "kek_id": kek_id,
                                 "key_file": keys["ec"].private, "purge_on_delete": True})
    first = provider.create(inputs)
    provider.delete(first.id, dict(first.outs))
    assert not [d for d in kv.list_deleted_keys() if d.name == "k"]  # purged, as far as anyone can see
    again = provider.create(inputs)
    assert again.outs["fingerprint"] == keys["ec"].info.fingerprint
    assert len(list(kv.list_properties_of_key_versions("k"))) == 1
    assert lv.harsh_answers["being_deleted"] >= 1


# --- the seed's setup, replayed over gRPC in the engine's order ----------------------------------------------
def test_the_seed_setup_succeeds_in_one_up_against_every_harsh_behaviour(
        harsh_vault: Callable[..., LocalVault], keys: Any, secret_set: Any, sdk: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine-replay driver (tests/provider/engine.py) runs `pulumi up` then `pulumi destroy` of the seed's
    setup: the role gate, the KEK after it, TestRSAKey and TestECKey with the KEK's kid."""
    from pulumi.dynamic.dynamic import serialize_provider

    from byok_component.provider import ByokKeyProvider
    from tests.provider.engine import Engine, Goal, Ref, Secret
    from tests.provider.grpc_host import ProviderHost

    monkeypatch.setattr(fault_rules, "WINDOW_SECONDS", 2.0)  # Key Vault's 10 s window, shortened
    lv = harsh_vault(Behaviour(rbac_window_requests=6, async_seconds=0.4),  # + purge protection, the default
                     rate_limit_writes_per_10s=1,  # the KEK and both imports queue behind each other
                     fail_429={"GET /keys": 2, "DELETE /keys": 1, "GET /deletedkeys": 1})  # no Retry-After
    env = {"BYOK_CA_BUNDLE": lv.ca_cert, "BYOK_ACCESS_TOKEN_FILE": lv.token_file, **FAST}
    kek_name = f"KEKforBYOK-{secrets.token_hex(2)}"
    key_provider = serialize_provider(ByokKeyProvider())
    common = {"vault_url": lv.vault_url, "kek_id": Ref("kek", "kid"), "purge_on_delete": True,
              "__provider": key_provider}
    goals = [
        Goal("pulumi-python:dynamic/byok:RbacGate", "rbac-gate",
             {"vault_url": lv.vault_url, "key_name": kek_name, "role_assignment_id": "ra-1",
              "__provider": serialize_provider(RbacGateProvider())}),
        Goal("pulumi-python:dynamic/byok:Kek", "kek",
             {"vault_url": lv.vault_url, "key_name": kek_name, "key_size": 2048, "purge_on_delete": True,
              "__provider": serialize_provider(DataPlaneKekProvider())}),
        Goal("pulumi-python:dynamic/byok:ByokKey", "TestRSAKey",
             {**common, "key_name": "TestRSAKey", "key_file": keys["rsa"].private,
              "key_password": Secret(keys["rsa"].password)}),
        Goal("pulumi-python:dynamic/byok:ByokKey", "TestECKey",
             {**common, "key_name": "TestECKey", "key_file": keys["ec"].private, "key_ops": ["sign", "verify"]}),
    ]

    with ProviderHost(env) as host:
        host.configure({})
        engine = Engine(host)
        lv.assign_role()  # the role assignment was just created: the propagation window opens
        assert engine.up(goals) == ["create rbac-gate", "create kek", "create TestRSAKey", "create TestECKey"]
        assert engine.calls == ["Check rbac-gate", "Create rbac-gate", "Check kek", "Create kek", "Check TestRSAKey",
                                "Create TestRSAKey", "Check TestECKey", "Create TestECKey"]
        after_up = {name: (sdk(lv).get_key(name), len(list(sdk(lv).list_properties_of_key_versions(name))))
                    for name in ("TestRSAKey", "TestECKey", kek_name)}
        up_answers = lv.harsh_answers | lv.faults_injected
        kids = {name: engine.state[name].outputs["kid"] for name in ("TestRSAKey", "TestECKey")}
        engine.destroy()
        stderr = host.stderr()

    # up, in one go: one version each, enabled, state agreeing with the vault, and the harsh side really was on
    for name, (key, versions) in after_up.items():
        assert key.properties.enabled and versions == 1, name
    assert kids == {name: after_up[name][0].id for name in kids}
    assert up_answers["forbidden_by_rbac"] == 6 and up_answers["throttled"] >= 1 and up_answers["fail_429"] >= 1
    # destroy: nothing live, everything soft-deleted and kept (purge protection), recoverable for 90 days
    client = sdk(lv)
    assert [k.name for k in client.list_properties_of_keys()] == []
    deleted = {k.name: k for k in client.list_deleted_keys()}
    assert set(deleted) == {"TestRSAKey", "TestECKey", kek_name}
    assert {k.properties.recovery_level for k in deleted.values()} == {"Recoverable"}
    assert lv.harsh_answers["not_yet_visible"] >= 1  # the deletes did complete later
    # what the user saw: progress while waiting, the kept keys explained, no secret
    assert "waiting for the role assignment to take effect" in stderr
    assert stderr.count("has purge protection (recoveryLevel Recoverable): the deleted key is kept until") == 3
    assert find_secrets(stderr, secret_set.add_vault_tokens(lv)) == []


@pytest.mark.parametrize("behaviour,faults,fired", [
    (Behaviour(rbac_window_requests=3, purge_protection=False), {}, "forbidden_by_rbac"),
    (Behaviour(purge_protection=False), {"fail_429": {"POST /keys": 2, "PUT /keys": 2, "DELETE /": 2}}, "fail_429"),
    (Behaviour(), {}, "purge_protection"),
    (Behaviour(async_seconds=0.3, purge_protection=False), {}, "not_yet_visible"),
], ids=["rbac-window", "429-no-retry-after", "purge-protection", "async-deletion"])
def test_each_harsh_behaviour_alone_over_grpc(harsh_vault: Callable[..., LocalVault], keys: Any,
                                             sdk: Callable[..., Any], behaviour: Behaviour, faults: dict[str, Any],
                                             fired: str) -> None:
    """The KEK and one key, `pulumi up` then `pulumi destroy` with purge_on_delete, one behaviour at a time."""
    from pulumi.dynamic.dynamic import serialize_provider

    from byok_component.provider import ByokKeyProvider
    from tests.provider.engine import Engine, Goal, Ref
    from tests.provider.grpc_host import ProviderHost

    lv = harsh_vault(behaviour, **faults)
    env = {"BYOK_CA_BUNDLE": lv.ca_cert, "BYOK_ACCESS_TOKEN_FILE": lv.token_file, **FAST}
    goals = [Goal("pulumi-python:dynamic/byok:Kek", "kek",
                  {"vault_url": lv.vault_url, "key_name": "kek", "key_size": 2048, "purge_on_delete": True,
                   "__provider": serialize_provider(DataPlaneKekProvider())}),
             Goal("pulumi-python:dynamic/byok:ByokKey", "key",
                  {"vault_url": lv.vault_url, "key_name": "key", "kek_id": Ref("kek", "kid"), "purge_on_delete": True,
                   "key_file": keys["ec"].private, "__provider": serialize_provider(ByokKeyProvider())})]
    with ProviderHost(env) as host:
        host.configure({})
        engine = Engine(host)
        assert engine.up(goals) == ["create kek", "create key"]
        assert len(list(sdk(lv).list_properties_of_key_versions("key"))) == 1
        engine.destroy()
    answers = lv.harsh_answers | lv.faults_injected
    deleted = {k.name: k.properties.recovery_level for k in sdk(lv).list_deleted_keys()}
    assert [k.name for k in sdk(lv).list_properties_of_keys()] == []
    if fired == "purge_protection":  # nothing could be purged: both kept, recoverable
        assert deleted == {"kek": "Recoverable", "key": "Recoverable"}
    else:
        assert deleted == {} and answers[fired] >= 1, answers
