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
from concurrent.futures import ThreadPoolExecutor
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


# --- the seed's setup, replayed over gRPC in the engine's order ----------------------------------------------
def test_the_seed_setup_succeeds_in_one_up_against_every_harsh_behaviour(
        harsh_vault: Callable[..., LocalVault], keys: Any, secret_set: Any, sdk: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pulumi.dynamic.dynamic import serialize_provider

    from byok_component.provider import ByokKeyProvider
    from tests.provider.grpc_host import ProviderHost, plain

    monkeypatch.setattr(fault_rules, "WINDOW_SECONDS", 2.0)  # Key Vault's 10 s window, shortened
    lv = harsh_vault(Behaviour(rbac_window_requests=6, async_seconds=0.4),  # + purge protection, the default
                     rate_limit_writes_per_10s=1,  # the KEK and both imports queue behind each other
                     fail_429={"GET /keys": 2, "DELETE /keys": 1, "GET /deletedkeys": 1})  # no Retry-After
    env = {"BYOK_CA_BUNDLE": lv.ca_cert, "BYOK_ACCESS_TOKEN_FILE": lv.token_file, **FAST}
    gate_provider = serialize_provider(RbacGateProvider())
    kek_provider = serialize_provider(DataPlaneKekProvider())
    key_provider = serialize_provider(ByokKeyProvider())
    kek_name = f"KEKforBYOK-{secrets.token_hex(2)}"
    declared = {
        "TestRSAKey": {"key_file": keys["rsa"].private, "key_password": keys["rsa"].password},
        "TestECKey": {"key_file": keys["ec"].private, "key_ops": ["sign", "verify"]},
    }

    with ProviderHost(env) as host:
        host.configure()
        lv.assign_role()  # the role assignment was just created: the propagation window opens
        # `pulumi up`: the gate after the role, the KEK after the gate, then both keys at once
        gate_in = plain(host.check({}, {"vault_url": lv.vault_url, "key_name": kek_name, "__provider": gate_provider,
                                        "role_assignment_id": "ra-1"}).inputs)
        gate = host.create(gate_in)
        kek_in = plain(host.check({}, {"vault_url": lv.vault_url, "key_name": kek_name, "key_size": 2048,
                                       "purge_on_delete": True, "__provider": kek_provider}).inputs)
        kek = host.create(kek_in)
        kek_out = plain(kek.properties)
        key_ins = {name: plain(host.check({}, {"vault_url": lv.vault_url, "key_name": name, "kek_id": kek_out["kid"],
                                               "purge_on_delete": True, "__provider": key_provider,
                                               **spec}).inputs)
                   for name, spec in declared.items()}
        with ThreadPoolExecutor(max_workers=2) as pool:
            created = dict(zip(key_ins, pool.map(host.create, key_ins.values())))
        after_up = {name: (sdk(lv).get_key(name), len(list(sdk(lv).list_properties_of_key_versions(name))))
                    for name in (*declared, kek_name)}
        up_answers = lv.harsh_answers | lv.faults_injected
        # `pulumi destroy`: the keys at once, then the KEK, then the gate
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda n: host.delete(created[n].id, plain(created[n].properties)), created))
        host.delete(kek.id, kek_out)
        host.delete(gate.id, plain(gate.properties))
        stderr = host.stderr()

    # up: one version each, enabled, the KEK's kid in the keys' state, and the harsh side really was on
    for name, (key, versions) in after_up.items():
        assert key.properties.enabled and versions == 1, name
    assert plain(created["TestECKey"].properties)["kid"] == after_up["TestECKey"][0].id
    assert up_answers["forbidden_by_rbac"] == 6 and up_answers["throttled"] >= 1 and up_answers["fail_429"] >= 1
    # destroy: nothing live, everything soft-deleted and kept (purge protection), recoverable for 90 days
    client = sdk(lv)
    assert [k.name for k in client.list_properties_of_keys()] == []
    deleted = {k.name: k for k in client.list_deleted_keys()}
    assert set(deleted) == {*declared, kek_name}
    assert {k.properties.recovery_level for k in deleted.values()} == {"Recoverable"}
    assert lv.harsh_answers["not_yet_visible"] >= 1  # the deletes did complete later
    # what the user saw: progress while waiting, the kept keys explained, no secret
    assert "waiting for the role assignment to take effect" in stderr
    assert stderr.count("has purge protection (recoveryLevel Recoverable): the deleted key is kept until") == 3
    assert find_secrets(stderr, secret_set.add_vault_tokens(lv)) == []
