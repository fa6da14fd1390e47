"""Fault injection on the local vault: 500s, 429 + Retry-After, dropped imports, delays, and the config itself."""

from __future__ import annotations

import dataclasses
import http.client
import json
import time
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError
from azure.keyvault.keys import JsonWebKey
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from byok_component import wrap
from byok_component.keys import b64url
from byok_component.localvault import FaultConfig, LocalVault
from byok_component.localvault.faults import FaultState
from tests.conftest import ec_key


def _start(tmp_path: Path, **faults: Any) -> LocalVault:
    return LocalVault(tmp_path / "vault", faults=FaultConfig(**faults)).start()


@pytest.fixture
def faulty(request: pytest.FixtureRequest, tmp_path: Path):
    vault = _start(tmp_path, **request.param)
    yield vault
    vault.stop()


def _import_body(vault: LocalVault, vault_http) -> dict[str, Any]:
    """An import body for a fresh KEK in ``vault`` (the KEK create is one POST)."""
    status, _, kek = vault_http(vault, "POST", "/keys/kek/create",
                                {"kty": "RSA-HSM", "key_size": 2048, "key_ops": ["import"]})
    assert status == 200, kek
    public = rsa.RSAPublicNumbers(_int(kek["key"]["e"]), _int(kek["key"]["n"])).public_key()
    der = ec_key("P-256", 4).private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())
    blob = json.dumps({"schema_version": "1.0.0", "header": {"kid": kek["key"]["kid"], "alg": "dir",
                                                             "enc": "CKM_RSA_AES_KEY_WRAP"},
                       "ciphertext": b64url(wrap.wrap(public, der))}).encode()
    return {"key": {"kty": "EC-HSM", "crv": "P-256", "key_hsm": b64url(blob)}}


def _int(text: str) -> int:
    from byok_component.keys import b64url_decode
    return int.from_bytes(b64url_decode(text), "big")


def _versions(vault: LocalVault, vault_http, name: str) -> int:
    status, _, body = vault_http(vault, "GET", f"/keys/{name}/versions")
    return 0 if status == 404 else len(body["value"])


@pytest.mark.parametrize("faulty", [{"fail_500": {"PUT /keys": 2}}], indirect=True)
def test_fail_500_first_n_matching(faulty: LocalVault, vault_http) -> None:
    body = _import_body(faulty, vault_http)  # a POST: does not match the rule
    for _ in range(2):
        status, _, error = vault_http(faulty, "PUT", "/keys/t", body)
        assert status == 500 and error["error"]["code"] == "InternalServerError"
        assert _versions(faulty, vault_http, "t") == 0  # nothing was done
    assert vault_http(faulty, "PUT", "/keys/t", body)[0] == 200
    assert vault_http(faulty, "PUT", "/keys/t", body)[0] == 200


@pytest.mark.parametrize("faulty", [{"fail_500": {"POST /keys/a/create": 1}}], indirect=True)
def test_fail_500_spares_the_sdk_challenge(faulty: LocalVault, key_client_factory) -> None:
    client = key_client_factory(faulty, retry_total=0)
    with pytest.raises(HttpResponseError) as info:
        client.create_ec_key("a")  # the bodiless challenge gets its 401; the real request gets the 500
    assert info.value.status_code == 500
    assert client.create_ec_key("a").name == "a"
    assert faulty.requests.count(("POST", "/keys/a/create")) == 3


@pytest.mark.parametrize("faulty", [{"rate_limit_writes_per_10s": 2, "retry_after": True}], indirect=True)
def test_rate_limit_answers_429_with_retry_after(faulty: LocalVault, vault_http) -> None:
    for name in ("a", "b"):
        assert vault_http(faulty, "POST", f"/keys/{name}/create", {"kty": "EC"})[0] == 200
    status, headers, error = vault_http(faulty, "POST", "/keys/c/create", {"kty": "EC"})
    assert status == 429 and error["error"]["code"] == "Throttled"
    assert 1 <= int(headers["retry-after"]) <= 10
    assert vault_http(faulty, "GET", "/keys/c")[0] == 404  # not created
    assert vault_http(faulty, "PUT", "/keys/d", {"key": {}})[0] == 429  # imports count too
    assert vault_http(faulty, "GET", "/keys")[0] == 200  # reads are not limited
    assert vault_http(faulty, "PATCH", "/keys/a", {"tags": {"x": "y"}})[0] == 200  # nor updates


def test_rate_limit_window_slides() -> None:
    now = [1000.0]
    state = FaultState(FaultConfig(rate_limit_writes_per_10s=2), clock=lambda: now[0])
    assert state.throttle_write() is None
    now[0] += 4
    assert state.throttle_write() is None
    assert state.throttle_write() == 6  # the first slot frees at 1010
    now[0] += 6
    assert state.throttle_write() is None  # 1010: the first write has left the window
    assert state.throttle_write() == 4


@pytest.mark.parametrize("faulty", [{"drop_before_commit": 1}], indirect=True)
def test_drop_before_commit(faulty: LocalVault, vault_http, key_client_factory) -> None:
    body = _import_body(faulty, vault_http)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        vault_http(faulty, "PUT", "/keys/t", body)
    assert _versions(faulty, vault_http, "t") == 0
    assert vault_http(faulty, "PUT", "/keys/t", body)[0] == 200
    assert _versions(faulty, vault_http, "t") == 1


@pytest.mark.parametrize("faulty", [{"drop_after_commit": 1}], indirect=True)
def test_drop_after_commit(faulty: LocalVault, vault_http) -> None:
    body = _import_body(faulty, vault_http)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        vault_http(faulty, "PUT", "/keys/t", body)
    assert _versions(faulty, vault_http, "t") == 1  # stored, though the client never heard so
    assert vault_http(faulty, "PUT", "/keys/t", body)[0] == 200
    assert _versions(faulty, vault_http, "t") == 2


@pytest.mark.parametrize("faulty", [{"drop_after_commit": 1}], indirect=True)
def test_sdk_retry_after_a_dropped_commit_adds_a_second_version(faulty: LocalVault, vault_http,
                                                                key_client_factory) -> None:
    """What a naive client does: azure-core retries the PUT, so the material lands twice."""
    body = _import_body(faulty, vault_http)
    client = key_client_factory(faulty)
    from byok_component.keys import b64url_decode
    key = JsonWebKey(kty="EC-HSM", crv="P-256", t=b64url_decode(body["key"]["key_hsm"]))
    client.import_key("t", key)
    assert _versions(faulty, vault_http, "t") == 2
    without_retry = key_client_factory(faulty, retry_total=0)
    assert without_retry.import_key("u", key).name == "u"  # the budget of one drop is spent


@pytest.mark.parametrize("faulty", [{"delay_seconds": {"GET /keys/slow": 0.3}}], indirect=True)
def test_delay(faulty: LocalVault, vault_http) -> None:
    assert vault_http(faulty, "POST", "/keys/slow/create", {"kty": "EC"})[0] == 200  # POST: no delay
    started = time.monotonic()
    assert vault_http(faulty, "GET", "/keys/slow")[0] == 200
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize("faulty", [{"delay_seconds": {"GET /keys": 5}}], indirect=True)
def test_delay_makes_client_timeouts_observable(faulty: LocalVault, key_client_factory) -> None:
    client = key_client_factory(faulty, retry_total=0, read_timeout=1)
    with pytest.raises(ServiceResponseError):
        client.get_key("anything")
    started = time.monotonic()
    faulty.stop()  # a pending delay does not hold up stop()
    assert time.monotonic() - started < 2


# --- the config -------------------------------------------------------------------------------------
def test_faults_are_off_by_default() -> None:
    assert not FaultConfig().enabled
    assert FaultConfig(drop_after_commit=1).enabled


def test_config_is_frozen_and_read_only() -> None:
    config = FaultConfig(fail_500={"PUT /keys": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.drop_after_commit = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.fail_500["PUT /keys"] = 9  # type: ignore[index]


@pytest.mark.parametrize("doc,message", [
    ({"fail_500": {"PUT": 1}}, "must look like"),
    ({"fail_500": {"FETCH /keys": 1}}, "must look like"),
    ({"fail_500": {"PUT /keys": -1}}, ">= 0"),
    ({"fail_500": ["PUT /keys"]}, "object of rule"),
    ({"delay_seconds": {"* /": 301}}, "between 0 and 300"),
    ({"rate_limit_writes_per_10s": 0}, ">= 1"),
    ({"drop_after_commit": True}, "whole number"),
    ({"drop_on_tuesdays": 1}, "unknown fault setting"),
])
def test_config_errors(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultConfig.from_dict(doc)


def test_config_from_file(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    path.write_text(json.dumps({"fail_500": {"PUT /keys": 2}, "rate_limit_writes_per_10s": 10,
                                "drop_after_commit": 1, "drop_before_commit": 0, "delay_seconds": {"* /": 0.5}}))
    config = FaultConfig.from_file(path)
    assert config.fail_500 == {"PUT /keys": 2} and config.delay_seconds == {"* /": 0.5}
    assert config.rate_limit_writes_per_10s == 10 and config.drop_after_commit == 1
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        FaultConfig.from_file(path)


@pytest.mark.parametrize("faulty", [{"rate_limit_writes_per_10s": 1, "fail_429": {"GET /keys/x": 1}}], indirect=True)
def test_429s_carry_no_retry_after_by_default(faulty: LocalVault, vault_http) -> None:
    """Azure's own shape (vcsjones/AzureSignTool#219): code Throttled, the reason, and no Retry-After header."""
    assert vault_http(faulty, "POST", "/keys/a/create", {"kty": "EC"})[0] == 200
    for method, path, body in (("POST", "/keys/b/create", {"kty": "EC"}), ("GET", "/keys/x", None)):
        status, headers, error = vault_http(faulty, method, path, body)
        assert status == 429 and "retry-after" not in headers
        assert error["error"]["code"] == "Throttled"
        assert "too many requests were received. Reason: VaultRequestTypeLimitReached" in error["error"]["message"]


def test_retry_after_must_be_a_boolean() -> None:
    with pytest.raises(ValueError, match="retry_after must be true or false"):
        FaultConfig.from_dict({"retry_after": "yes"})
