"""The provider over gRPC through ``python -m pulumi.dynamic``, started as the engine starts it (grpc_host.py).

The RPCs here are chosen per test, not planned as the engine plans them; the engine's step sequences are
replayed in test_engine_replay.py.

One host process per test module, a full lifecycle with out-of-band changes made by the operator's own SDK
between steps (disable, retag, a version imported by hand, a deletion) that reads must reveal, previews
with unknowns, concurrent creates sharing one KEK fetch, and an error path. Every response, the pickled
provider and the host's stderr are scanned for private key bytes, AES keys, the password and tokens.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import dill
import grpc
import pytest

from byok_component import props as P
from google.protobuf import json_format
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2

from byok_component.blob import TransferBlob
from byok_component.keys import load_target_key
from byok_component.provider import ByokKeyProvider
from byok_component.wrap import wrap
from tests.provider.conftest import KeyFiles, with_tokens
from tests.provider.grpc_host import ProviderHost, plain
from tests.secretscan import SecretSet, assert_no_secrets

PROVIDER = serialize_provider(ByokKeyProvider())


@pytest.fixture(scope="module")
def scans(secret_set: SecretSet, premium_vault: Any) -> dict[str, SecretSet]:
    everything = with_tokens(copy.deepcopy(secret_set), premium_vault)
    without_password = copy.deepcopy(everything)
    without_password.text_needles.pop("key_password")
    without_password.byte_needles.pop("key_password")
    return {"all": everything, "check": without_password}


@pytest.fixture(scope="module")
def host(premium_vault: Any, scans: dict[str, SecretSet]) -> Iterator[ProviderHost]:
    process = ProviderHost({"BYOK_CA_BUNDLE": premium_vault.ca_cert,
                            "BYOK_ACCESS_TOKEN_FILE": premium_vault.token_file,
                            "BYOK_RBAC_WAIT_SECONDS": "0"})
    try:
        configured = process.configure({"byok-component:someSetting": "x"})
        assert configured.acceptSecrets is False  # the engine strips secrets before calling us
        yield process
    finally:
        stderr = process.close()
        assert_no_secrets(stderr, scans["all"], "the provider host's stderr")


class Wire:
    """Calls through the host that scan every response; returns plain dicts as the engine would see them."""

    def __init__(self, host: ProviderHost, scans: dict[str, SecretSet]) -> None:
        self.host, self.scans = host, scans

    def _scan(self, response: Any, what: str, scan: str = "all") -> None:
        assert_no_secrets(json_format.MessageToJson(response), self.scans[scan], what)

    def check(self, news: dict[str, Any], olds: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        response = self.host.check(olds or {}, {**news, "__provider": PROVIDER})
        # Checked inputs carry key_password back to the engine (which keeps it encrypted): nothing else may.
        self._scan(response, "Check", scan="check")
        return plain(response.inputs), [(f.property, f.reason) for f in response.failures]

    def checked(self, **news: Any) -> dict[str, Any]:
        inputs, failures = self.check(news)
        assert failures == []
        return inputs

    def create(self, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        response = self.host.create(inputs)
        self._scan(response, "Create")
        return response.id, plain(response.properties)

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        response = self.host.diff(id_, olds, news)
        self._scan(response, "Diff")
        return response

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        response = self.host.update(id_, olds, news)
        self._scan(response, "Update")
        return plain(response.properties)

    def read(self, id_: str, outs: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        response = self.host.read(id_, outs)
        self._scan(response, "Read")
        return response.id, plain(response.properties), plain(response.inputs)

    def delete(self, id_: str, outs: dict[str, Any]) -> None:
        self.host.delete(id_, outs)


@pytest.fixture
def wire(host: ProviderHost, scans: dict[str, SecretSet]) -> Wire:
    return Wire(host, scans)


def _kek_public(sdk_client: Any, kek_id: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
    jwk = sdk_client.get_key(kek_id.rsplit("/", 2)[1], kek_id.rsplit("/", 1)[1]).key
    return RSAPublicNumbers(int.from_bytes(jwk.e, "big"), int.from_bytes(jwk.n, "big")).public_key()


def _import_by_hand(sdk_client: Any, kek_id: str, key_name: str, key: KeyFiles) -> str:
    """The operator imports another version with the SDK, outside Pulumi."""
    from azure.keyvault.keys import JsonWebKey

    target = load_target_key(Path(key.private).read_bytes())
    blob = TransferBlob.build(kek_id, wrap(_kek_public(sdk_client, kek_id), target.wrapping_plaintext()))
    imported = sdk_client.import_key(key_name, JsonWebKey(kty="EC-HSM", crv="P-256", key_ops=["sign", "verify"],
                                                          t=blob.to_json()), hardware_protected=True)
    return imported.properties.version


def test_the_pickled_provider_is_a_small_reference_with_nothing_secret(scans: dict[str, SecretSet]) -> None:
    raw = base64.b64decode(PROVIDER)
    assert len(raw) < 100, len(raw)  # module + class name only: no bytecode, no globals, no state
    assert b"byok_component.provider" in raw and b"ByokKeyProvider" in raw
    assert serialize_provider(ByokKeyProvider()) == PROVIDER  # deterministic: no spurious diffs
    assert type(dill.loads(raw)) is ByokKeyProvider
    assert_no_secrets(raw, scans["all"], "the pickled provider")


def test_full_lifecycle_with_out_of_band_changes(wire: Wire, premium_vault: Any, kek_id: str,
                                                 keys: dict[str, KeyFiles], sdk: Callable[..., Any]) -> None:
    operator = sdk(premium_vault)
    key_name = f"grpc-{secrets.token_hex(4)}"
    declared = {"vault_url": premium_vault.vault_url, "key_name": key_name, "kek_id": kek_id,
                "key_file": keys["rsa"].private, "key_password": keys["rsa"].password,
                "public_key_file": keys["rsa"].public, "tags": {"env": "prod"}}

    # Preview of a new key whose vault is not created yet: unknowns pass, the fingerprint is already known.
    preview, failures = wire.check({**declared, "vault_url": rpc.UNKNOWN})
    assert failures == []
    assert preview["vault_url"] == rpc.UNKNOWN and preview["fingerprint"] == keys["rsa"].info.fingerprint
    unknown_material, failures = wire.check({**declared, "key_file": rpc.UNKNOWN, "public_key_file": rpc.UNKNOWN})
    assert failures == [] and unknown_material["fingerprint"] == rpc.UNKNOWN
    # A PR runner without the private key: public_key_file suffices for check.
    pr_runner = wire.checked(**{**declared, "key_file": "/hsm/only.pem"})
    assert pr_runner["fingerprint"] == keys["rsa"].info.fingerprint
    _, failures = wire.check({**declared, "key_name": "bad name", "tags": {"n": 1}, "key_ops": ["import"]})
    assert sorted(p for p, _ in failures) == ["key_name", "key_ops", "tags"]

    # up: create.
    inputs = wire.checked(**declared)
    # Handed to create, and marked secret on the wire by the provider itself (the engine keeps Check's secrets).
    assert inputs["key_password"] == {P.SECRET_SIG_KEY: P.SECRET_SIG, "value": keys["rsa"].password}
    key_id, outs = wire.create(inputs)
    assert key_id == f"{premium_vault.vault_url}/keys/{key_name}"
    assert outs["key_size"] == 2048.0 and "key_password" not in outs
    first_version = outs["version"]
    assert wire.diff(key_id, outs, inputs).changes == provider_pb2.DiffResponse.DIFF_NONE

    # Out of band: disable and retag. Refresh reveals it; the next up restores the declaration in place.
    operator.update_key_properties(key_name, enabled=False, tags={"env": "prod", "by": "hand"})
    read_id, outs, read_inputs = wire.read(key_id, outs)
    assert read_id == key_id
    assert (outs["enabled"], outs["tags"]) == (False, {"env": "prod", "by": "hand"})
    assert (read_inputs["enabled"], read_inputs["tags"]) == (False, {"env": "prod", "by": "hand"})
    diff = wire.diff(key_id, outs, inputs)
    assert (diff.changes, list(diff.replaces)) == (provider_pb2.DiffResponse.DIFF_SOME, [])
    outs = wire.update(key_id, outs, inputs)
    assert (outs["enabled"], outs["tags"], outs["version"]) == (True, {"env": "prod"}, first_version)

    # Out of band: a version of other material imported by hand. Refresh reveals it; up rotates back.
    hand_version = _import_by_hand(operator, kek_id, key_name, keys["ec2"])
    _, outs, _ = wire.read(key_id, outs)
    assert (outs["version"], outs["fingerprint"], outs["key_type"]) == (
        hand_version, keys["ec2"].info.fingerprint, "EC")
    assert wire.diff(key_id, outs, inputs).changes == provider_pb2.DiffResponse.DIFF_SOME
    outs = wire.update(key_id, outs, inputs)
    assert outs["fingerprint"] == keys["rsa"].info.fingerprint and outs["version"] not in (first_version, hand_version)

    # The same material at another path, or another KEK: nothing to do.
    moved = wire.checked(**{**declared, "key_file": keys["rsa"].private + ".moved", "kek_id": kek_id.replace(
        kek_id.rsplit("/", 1)[1], "f" * 32)})
    assert wire.diff(key_id, outs, moved).changes == provider_pb2.DiffResponse.DIFF_NONE
    # A new name replaces (create first: the names differ); a new material is an update, never a replace.
    renamed = wire.diff(key_id, outs, wire.checked(**{**declared, "key_name": key_name + "-b"}))
    assert (list(renamed.replaces), renamed.deleteBeforeReplace) == (["key_name"], False)
    rotated_inputs = wire.checked(**{**declared, "key_file": keys["ec"].private, "key_password": None,
                                     "public_key_file": keys["ec"].public})
    rotation = wire.diff(key_id, outs, rotated_inputs)
    assert (rotation.changes, list(rotation.replaces)) == (provider_pb2.DiffResponse.DIFF_SOME, [])
    before_rotation = outs["version"]
    outs = wire.update(key_id, outs, rotated_inputs)
    assert outs["fingerprint"] == keys["ec"].info.fingerprint
    assert operator.get_key(key_name, before_rotation).properties.enabled is True  # old versions stay usable

    # Out of band: deleted. Refresh drops it (blank id); destroy of an absent key succeeds.
    operator.begin_delete_key(key_name).wait()
    gone_id, gone_outs, _ = wire.read(key_id, outs)
    assert gone_id == "" and set(gone_outs) <= {"__provider"}
    wire.delete(key_id, outs)

    # Create on the soft-deleted name fails with one clear line through the engine's error channel.
    with pytest.raises(grpc.RpcError) as info:
        wire.create(inputs)
    details = info.value.details()
    assert info.value.code() == grpc.StatusCode.UNKNOWN
    assert "soft-deleted" in details and "recover" in details and key_name in details
    assert_no_secrets(details, wire.scans["all"], "error details")


def test_destroy_purges_when_asked(wire: Wire, premium_vault: Any, kek_id: str, keys: dict[str, KeyFiles],
                                   sdk: Callable[..., Any]) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    key_name = f"grpc-{secrets.token_hex(4)}"
    inputs = wire.checked(vault_url=premium_vault.vault_url, key_name=key_name, kek_id=kek_id,
                          key_file=keys["ec"].private)
    key_id, outs = wire.create(inputs)
    outs = wire.update(key_id, outs, wire.checked(**{**{k: inputs[k] for k in ("vault_url", "key_name", "kek_id",
                                                                                "key_file")}, "purge_on_delete": True}))
    assert outs["purge_on_delete"] is True
    wire.delete(key_id, outs)
    with pytest.raises(ResourceNotFoundError):
        sdk(premium_vault).get_deleted_key(key_name)


def test_concurrent_creates_share_one_kek_fetch(wire: Wire, premium_vault: Any, keys: dict[str, KeyFiles],
                                                sdk: Callable[..., Any]) -> None:
    kek = sdk(premium_vault).create_rsa_key(f"kek-{secrets.token_hex(3)}", size=2048, hardware_protected=True,
                                            key_operations=["import"])
    names = [f"grpc-par-{i}-{secrets.token_hex(3)}" for i in range(4)]
    inputs = [wire.checked(vault_url=premium_vault.vault_url, key_name=n, kek_id=kek.id, key_file=keys["ec"].private)
              for n in names]
    start = premium_vault.request_count
    with ThreadPoolExecutor(4) as pool:  # the engine's host serves 4 RPCs at once with one provider object
        results = list(pool.map(wire.create, inputs))
    assert [r[0].rsplit("/", 1)[1] for r in results] == names
    kek_path = "/" + "/".join(kek.id.split("/")[3:])
    kek_gets = [p for m, p in premium_vault.requests_since(start) if m == "GET" and p == kek_path]
    assert len(kek_gets) <= 2  # one fetch (plus, at most, the SDK's bodiless challenge request)
    assert json.dumps([r[1] for r in results])  # plain JSON-able outputs
