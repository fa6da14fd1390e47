"""The local vault where Azure is harsh (behaviour.py): purge protection, recovery levels, the RBAC propagation
window, deletes/purges/recoveries that complete later. Raw REST, so what is asserted is the wire."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from byok_component.localvault import Behaviour, LocalVault
from byok_component.localvault.behaviour import Pending, RbacWindow, recovery_level


@pytest.fixture
def harsh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalVault]:
    with LocalVault(tmp_path / "vault", behaviour=Behaviour(**getattr(request, "param", {}))) as vault:
        yield vault


def _ec(vault: LocalVault, vault_http: Any, name: str) -> dict[str, Any]:
    status, _, body = vault_http(vault, "POST", f"/keys/{name}/create", {"kty": "EC"})
    assert status == 200, body
    return body


# --- purge protection and recovery levels -------------------------------------------------------------------
def test_purge_protection_is_on_by_default_and_refuses_purge(harsh: LocalVault, vault_http: Any) -> None:
    created = _ec(harsh, vault_http, "k")
    assert created["attributes"]["recoveryLevel"] == "Recoverable"
    assert created["attributes"]["recoverableDays"] == 90
    status, _, deleted = vault_http(harsh, "DELETE", "/keys/k")
    assert status == 200 and deleted["attributes"]["recoveryLevel"] == "Recoverable"
    status, _, error = vault_http(harsh, "DELETE", "/deletedkeys/k")
    assert status == 403 and error["error"]["code"] == "Forbidden" and "innererror" not in error["error"]
    assert error["error"]["message"].startswith('Operation "purge" is not allowed because purge protection is '
                                                "enabled for this vault.")
    assert vault_http(harsh, "GET", "/deletedkeys/k")[0] == 200  # still there, recoverable
    assert harsh.harsh_answers["purge_protected"] == 1
    assert vault_http(harsh, "POST", "/deletedkeys/k/recover")[0] == 200  # recovery stays allowed


@pytest.mark.parametrize("harsh", [{"purge_protection": False, "retention_days": 30}], indirect=True)
def test_without_purge_protection_purge_works_and_retention_is_reported(harsh: LocalVault, vault_http: Any) -> None:
    assert _ec(harsh, vault_http, "k")["attributes"]["recoveryLevel"] == "CustomizedRecoverable+Purgeable"
    _, _, deleted = vault_http(harsh, "DELETE", "/keys/k")
    assert deleted["attributes"]["recoverableDays"] == 30
    assert deleted["scheduledPurgeDate"] - deleted["deletedDate"] == 30 * 86400
    assert vault_http(harsh, "DELETE", "/deletedkeys/k")[0] == 204
    assert vault_http(harsh, "GET", "/deletedkeys/k")[0] == 404


@pytest.mark.parametrize("protected,days,level", [
    (True, 90, "Recoverable"), (True, 7, "CustomizedRecoverable"),
    (False, 90, "Recoverable+Purgeable"), (False, 89, "CustomizedRecoverable+Purgeable")])
def test_recovery_levels_follow_key_vaults_enum(protected: bool, days: int, level: str) -> None:
    assert recovery_level(protected, days) == level


@pytest.mark.parametrize("doc,message", [
    ({"retention_days": 6}, "between 7 and 90"), ({"purge_protection": "yes"}, "true or false"),
    ({"rbac_window_requests": -1}, ">= 0"), ({"async_seconds": 3601}, "between 0 and 3600"),
    ({"rbac_window": 3}, "unknown behaviour setting")])
def test_behaviour_config_errors(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Behaviour.from_dict(doc)


# --- RBAC propagation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("harsh", [{"rbac_window_requests": 2}], indirect=True)
def test_rbac_window_answers_forbidden_by_rbac_until_the_role_applies(harsh: LocalVault, vault_http: Any) -> None:
    assert vault_http(harsh, "GET", "/keys/k", token=None)[0] == 401  # unauthenticated: not counted
    for method, path, body in (("GET", "/keys/k", None), ("POST", "/keys/k/create", {"kty": "EC"})):
        status, _, error = vault_http(harsh, method, path, body)
        assert status == 403 and error["error"]["innererror"] == {"code": "ForbiddenByRbac"}
        assert "please observe propagation time" in error["error"]["message"]
    assert vault_http(harsh, "GET", "/keys/k")[0] == 404  # the role applies: an ordinary answer
    assert vault_http(harsh, "GET", "/keys/k")[0] == 404  # (nothing was created while refused)
    harsh.assign_role()  # the named event: a new role assignment opens the window again
    assert vault_http(harsh, "GET", "/keys")[0] == 403
    assert harsh.harsh_answers["forbidden_by_rbac"] == 3


def test_rbac_window_by_seconds_starts_again_on_assign() -> None:
    now = [100.0]
    window = RbacWindow(seconds=60, requests=0, clock=lambda: now[0])
    assert window.denies()
    now[0] += 60
    assert not window.denies()
    window.start()
    assert window.denies() and window.denied == 2


# --- asynchronous delete, purge, recover ---------------------------------------------------------------------
@pytest.mark.parametrize("harsh", [{"async_seconds": 300, "purge_protection": False}], indirect=True)
def test_a_delete_in_flight(harsh: LocalVault, vault_http: Any) -> None:
    _ec(harsh, vault_http, "k")
    assert vault_http(harsh, "DELETE", "/keys/k")[0] == 200  # answered at once...
    assert vault_http(harsh, "GET", "/keys/k")[0] == 404
    assert vault_http(harsh, "GET", "/deletedkeys/k")[0] == 404  # ...but not listed as deleted yet
    assert vault_http(harsh, "GET", "/deletedkeys")[2]["value"] == []
    for method, path, body in (("DELETE", "/deletedkeys/k", None), ("POST", "/deletedkeys/k/recover", None),
                               ("POST", "/keys/k/create", {"kty": "EC"})):
        status, _, error = vault_http(harsh, method, path, body)
        assert status == 409 and error["error"]["innererror"] == {"code": "ObjectIsBeingDeleted"}, (method, path)
    assert harsh.harsh_answers["being_deleted"] == 3


@pytest.mark.parametrize("harsh", [{"purge_protection": False}], indirect=True)
def test_a_purge_and_a_recover_in_flight(harsh: LocalVault, vault_http: Any) -> None:
    for name in ("p", "r"):
        _ec(harsh, vault_http, name)
        assert vault_http(harsh, "DELETE", f"/keys/{name}")[0] == 200
    harsh.stop()
    harsh.behaviour = Behaviour(async_seconds=300, purge_protection=False)  # from here on, completion is late
    harsh.start()
    assert vault_http(harsh, "DELETE", "/deletedkeys/p")[0] == 204
    status, _, error = vault_http(harsh, "POST", "/keys/p/create", {"kty": "EC"})
    assert status == 409 and error["error"]["innererror"] == {"code": "ObjectIsBeingDeleted"}
    assert error["error"]["message"] == "Key p is currently being deleted and cannot be re-created; retry later."
    assert vault_http(harsh, "POST", "/deletedkeys/r/recover")[0] == 200
    assert vault_http(harsh, "GET", "/keys/r")[0] == 404  # not usable yet
    status, _, error = vault_http(harsh, "PUT", "/keys/r", {"key": {"kty": "EC"}})
    assert status == 409 and error["error"]["innererror"] == {"code": "ObjectIsBeingRecovered"}
    harsh.stop()
    harsh.start()  # a restart completes what was in flight
    assert vault_http(harsh, "GET", "/keys/r")[0] == 200
    assert _ec(harsh, vault_http, "p")["key"]["kid"].endswith(tuple("0123456789abcdef"))


def test_pending_completes_after_its_time() -> None:
    now = [0.0]
    pending = Pending(2.0, clock=lambda: now[0])
    pending.begin("Key", "purge")
    assert pending.kind("key") == "purge"  # names compare case-insensitively, as Key Vault's do
    now[0] = 2.0
    assert pending.kind("key") is None
    assert Pending(0.0).kind("x") is None


def test_behaviour_from_file_and_serve_refuses_a_bad_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from byok_component.localvault.serve import main

    good = tmp_path / "b.json"
    good.write_text('{"purge_protection": false, "rbac_window_requests": 2}')
    assert Behaviour.from_file(good) == Behaviour(purge_protection=False, rbac_window_requests=2)
    bad = tmp_path / "bad.json"
    bad.write_text('{"async_seconds": -1}')
    assert main(str(tmp_path / "data"), 0, "premium", None, str(bad)) == 2
    assert "--behaviour" in capsys.readouterr().err


# --- Managed HSM: oct keys sign and verify with HMAC ---------------------------------------------------------
def test_managed_hsm_oct_keys_may_sign_and_verify_with_hmac(tmp_path: Path, vault_http: Any) -> None:
    """Key Vault's "about-keys-details": oct (Managed HSM only) signs/verifies HS256/HS384/HS512."""
    import base64
    import hashlib
    import hmac as std_hmac

    from byok_component.keys import b64url

    key = bytes(range(32))
    with LocalVault(tmp_path / "hsm", sku="managedhsm") as hsm:
        status, _, made = vault_http(hsm, "PUT", "/keys/mac", {"key": {"kty": "oct-HSM", "k": b64url(key),
                                                                       "key_ops": ["sign", "verify"]}})
        assert status == 200 and made["key"]["key_ops"] == ["sign", "verify"], made
        version = made["key"]["kid"].rsplit("/", 1)[1]
        data = b"message to authenticate"
        status, _, signed = vault_http(hsm, "POST", f"/keys/mac/{version}/sign", {"alg": "HS256", "value": b64url(data)})
        assert status == 200
        expected = std_hmac.new(key, data, hashlib.sha256).digest()
        assert base64.urlsafe_b64decode(signed["value"] + "==") == expected
        for mac, valid in ((expected, True), (bytes(32), False)):
            status, _, answer = vault_http(hsm, "POST", f"/keys/mac/{version}/verify",
                                           {"alg": "HS256", "digest": b64url(data), "value": b64url(mac)})
            assert status == 200 and answer["value"] is valid
        status, _, error = vault_http(hsm, "POST", f"/keys/mac/{version}/sign", {"alg": "ES256", "value": b64url(data)})
        assert status == 400
        _, _, default = vault_http(hsm, "PUT", "/keys/aes", {"key": {"kty": "oct-HSM", "k": b64url(key)}})
        assert default["key"]["key_ops"] == ["encrypt", "decrypt", "wrapKey", "unwrapKey"]  # defaults unchanged
