"""The vault client against Azure's harsh side, each behaviour alone: 429s without Retry-After on every method
(POSTs too), the RBAC propagation window, the 403s that must fail at once, purge protection, and deletes,
purges and recoveries that complete later. Waits are shortened through the BYOK_* settings; no timing is
asserted, only outcomes, request counts at the vault, and the words a user reads."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from byok_component import vault
from byok_component.errors import KeyDeletedError, ThrottledError, VaultPermissionError
from byok_component.localvault import Behaviour, FaultConfig, LocalVault

FAST = {"BYOK_BACKOFF_BASE_SECONDS": "0.01", "BYOK_RBAC_WAIT_SECONDS": "60", "BYOK_THROTTLE_WAIT_SECONDS": "60",
        "BYOK_PENDING_WAIT_SECONDS": "60"}


@pytest.fixture
def harsh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., LocalVault]]:
    """``harsh(behaviour={...}, **faults)``: a running local vault the client is pointed at, fast waits."""
    started: list[LocalVault] = []

    def start(behaviour: dict[str, Any] | None = None, **faults: Any) -> LocalVault:
        lv = LocalVault(tmp_path / f"v{len(started)}", faults=FaultConfig(**faults),
                        behaviour=Behaviour(**(behaviour or {}))).start()
        started.append(lv)
        monkeypatch.setenv("BYOK_CA_BUNDLE", lv.ca_cert)
        monkeypatch.setenv("BYOK_ACCESS_TOKEN_FILE", lv.token_file)
        for name, value in FAST.items():
            monkeypatch.setenv(name, value)
        return lv

    yield start
    for lv in started:
        lv.stop()


def _count(lv: LocalVault, method: str, path: str) -> int:
    return lv.requests.count((method, path))


# --- 429 without Retry-After ---------------------------------------------------------------------------------
def test_a_post_throttled_without_retry_after_is_retried(harsh: Callable[..., LocalVault]) -> None:
    """azure-core does not retry a POST 429 that has no Retry-After; create_kek (a POST) must still succeed."""
    lv = harsh(fail_429={"POST /keys/kek/create": 3})
    made = vault.create_kek(vault.client(lv.vault_url), "kek", size=2048)
    assert made.key_ops == ("import",)
    assert lv.faults_injected["fail_429"] == 3
    assert _count(lv, "POST", "/keys/kek/create") == 5  # the SDK's bodiless challenge, three 429s, the create


def test_every_method_waits_out_429s(harsh: Callable[..., LocalVault]) -> None:
    lv = harsh(fail_429={"GET /keys/k": 2, "PATCH /keys/k": 2, "DELETE /keys/k": 2, "GET /deletedkeys/k": 2})
    kv = vault.client(lv.vault_url)
    vault.create_kek(kv, "k", size=2048)
    assert vault.get_key(kv, "k") is not None
    assert vault.update_properties(kv, "k", None, tags={"a": "b"}).tags == {"a": "b"}
    assert vault.delete(kv, "k", purge=False).kept
    assert lv.faults_injected["fail_429"] == 8


def test_throttling_past_its_budget_is_one_clear_error(harsh: Callable[..., LocalVault],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    lv = harsh(fail_429={"POST /keys/kek/create": 100})
    monkeypatch.setenv("BYOK_THROTTLE_WAIT_SECONDS", "0.2")
    with pytest.raises(ThrottledError) as info:
        vault.create_kek(vault.client(lv.vault_url), "kek", size=2048)
    text = str(info.value)
    assert len(text.splitlines()) == 1 and "(Throttled)" in text
    assert "still throttled after waiting" in text and "BYOK_THROTTLE_WAIT_SECONDS" in text


def test_retry_after_is_honoured_when_sent(harsh: Callable[..., LocalVault], monkeypatch: pytest.MonkeyPatch) -> None:
    """With Retry-After: 1 and a budget under a second the call gives up instead of sleeping past it."""
    lv = harsh(fail_429={"GET /keys/k": 1}, retry_after=True)
    monkeypatch.setenv("BYOK_THROTTLE_WAIT_SECONDS", "0.5")
    with pytest.raises(ThrottledError):
        vault.get_key(vault.client(lv.vault_url), "k")


# --- 403: only ForbiddenByRbac waits -------------------------------------------------------------------------
def test_forbidden_by_rbac_is_waited_out_with_progress_logged(harsh: Callable[..., LocalVault],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    lv = harsh(behaviour={"rbac_window_requests": 4})
    with caplog.at_level(logging.WARNING, logger="byok_component.vault"):
        made = vault.create_kek(vault.client(lv.vault_url), "kek", size=2048)
    assert made.name == "kek" and lv.harsh_answers["forbidden_by_rbac"] == 4
    progress = [r.getMessage() for r in caplog.records if "role assignment to take effect" in r.getMessage()]
    assert len(progress) == 4 and all("BYOK_RBAC_WAIT_SECONDS" in line for line in progress)


def test_forbidden_by_rbac_past_its_budget_names_the_role(harsh: Callable[..., LocalVault],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    lv = harsh(behaviour={"rbac_window_requests": 1000})
    monkeypatch.setenv("BYOK_RBAC_WAIT_SECONDS", "0.2")
    with pytest.raises(VaultPermissionError) as info:
        vault.get_key(vault.client(lv.vault_url), "k")
    text = str(info.value)
    assert len(text.splitlines()) == 1 and "still ForbiddenByRbac after waiting" in text
    assert "'Key Vault Crypto Officer'" in text and "BYOK_RBAC_WAIT_SECONDS" in text


def test_other_403s_fail_at_once_with_their_remedy(harsh: Callable[..., LocalVault]) -> None:
    """KeyOperationForbidden (azure-sdk-for-net#11518) and a disabled key are final: one request, no wait even
    with ten minutes of RBAC patience, and the remedy that fits."""
    lv = harsh()
    kv = vault.client(lv.vault_url)
    for name, options in (("ec", {"key_operations": ["verify"]}), ("off", {"enabled": False})):
        version = kv.create_ec_key(name, **options).properties.version
        with pytest.raises(VaultPermissionError) as info:
            vault.sign_digest(f"{lv.vault_url}/keys/{name}/{version}", "ES256", b"\0" * 32)
        text = str(info.value)
        assert len(text.splitlines()) == 1 and "Crypto Officer" not in text
        assert ("key_ops do not allow this operation" if name == "ec" else "the key is disabled: enable it") in text
        assert info.value.inner == ("KeyOperationForbidden" if name == "ec" else "KeyDisabled")
        assert _count(lv, "POST", f"/keys/{name}/{version}/sign") <= 2  # (a challenge and) one refusal: no retry


# --- purge protection ----------------------------------------------------------------------------------------
def test_purge_on_delete_under_purge_protection_keeps_the_key_and_says_so(
        harsh: Callable[..., LocalVault], caplog: pytest.LogCaptureFixture) -> None:
    lv = harsh()  # purge protection: the default, as ByokVault's vault has it
    kv = vault.client(lv.vault_url)
    vault.create_kek(kv, "k", size=2048)
    with caplog.at_level(logging.WARNING, logger="byok_component.vault"):
        outcome = vault.delete(kv, "k", purge=True)
    assert outcome.kept and outcome.recovery_level == "Recoverable" and outcome.scheduled_purge_date is not None
    assert vault.is_deleted(kv, "k")
    assert _count(lv, "DELETE", "/deletedkeys/k") == 0  # recoveryLevel said it: no purge was even tried
    [line] = [r.getMessage() for r in caplog.records]
    assert "has purge protection (recoveryLevel Recoverable): the deleted key is kept until" in line
    with pytest.raises(VaultPermissionError, match="kept until its retention period ends") as info:
        vault.purge(kv, "k")
    assert info.value.inner is None and _count(lv, "DELETE", "/deletedkeys/k") == 1  # refused once, not retried


# --- asynchronous delete, purge, recover ---------------------------------------------------------------------
def test_delete_waits_until_the_vault_shows_it_deleted(harsh: Callable[..., LocalVault]) -> None:
    lv = harsh(behaviour={"async_seconds": 0.3})
    kv = vault.client(lv.vault_url)
    vault.create_kek(kv, "k", size=2048)
    assert vault.delete(kv, "k", purge=False).kept
    assert vault.is_deleted(kv, "k")  # at once: the delete returned only once it was complete
    with pytest.raises(KeyDeletedError):  # the name is soft-deleted, not "being deleted"
        vault.create_kek(kv, "k", size=2048)


def test_purge_then_recreate_waits_out_object_is_being_deleted(harsh: Callable[..., LocalVault]) -> None:
    lv = harsh(behaviour={"async_seconds": 0.3, "purge_protection": False})
    kv = vault.client(lv.vault_url)
    vault.create_kek(kv, "k", size=2048)
    assert not vault.delete(kv, "k", purge=True).kept
    again = vault.create_kek(kv, "k", size=2048)  # 409 ObjectIsBeingDeleted while the purge completes
    assert again.name == "k" and lv.harsh_answers["being_deleted"] >= 1


def test_recover_waits_until_the_key_is_usable(harsh: Callable[..., LocalVault]) -> None:
    lv = harsh(behaviour={"async_seconds": 0.3})
    kv = vault.client(lv.vault_url)
    vault.create_kek(kv, "k", size=2048)
    vault.delete(kv, "k", purge=False)
    assert vault.recover(kv, "k").name == "k"
    assert vault.get_key(kv, "k") is not None and lv.harsh_answers["not_yet_visible"] >= 1
