"""Backoff arithmetic (overview-throttling's 1, 2, 4, 8, 16 s) and what each Key Vault refusal means."""

from __future__ import annotations

import pytest

from byok_component.backoff import Backoff, Waiter
from byok_component.refusals import cli_target, kind_of, remedy, role_hint


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    assert [Backoff(1, 16, 100).nominal(n) for n in range(7)] == [1, 2, 4, 8, 16, 16, 16]
    assert [Backoff(0.01, 0.16, 1).nominal(n) for n in range(3)] == [0.01, 0.02, 0.04]


def test_waiter_jitters_within_half_to_full_and_stops_at_its_budget() -> None:
    now = [0.0]
    waiter = Waiter(Backoff(1, 16, 10), clock=lambda: now[0], rng=lambda: 0.0)
    delays = []
    while (delay := waiter.next_delay()) is not None:
        delays.append(delay)
        now[0] += delay
    assert delays == [0.5, 1.0, 2.0, 4.0]  # the next (8 s) would end past 10 s
    high = Waiter(Backoff(1, 16, 100), clock=lambda: 0.0, rng=lambda: 0.999999)
    assert 0.99 < high.next_delay() <= 1.0  # type: ignore[operator]


def test_waiter_honours_retry_after_within_its_budget() -> None:
    waiter = Waiter(Backoff(0.01, 0.16, 5), clock=lambda: 0.0, rng=lambda: 0.0)
    assert waiter.next_delay(retry_after=3) == 3.0
    assert waiter.next_delay(retry_after=6) is None


@pytest.mark.parametrize("status,code,inner,message,kind", [
    (429, "Throttled", None, "Reason: VaultRequestTypeLimitReached", "throttled"),
    (403, "Forbidden", "ForbiddenByRbac", "Caller is not authorized", "rbac"),
    (403, "Forbidden", "KeyOperationForbidden", "Operation decrypt is not permitted on this key.", "key_ops"),
    (403, "Forbidden", "KeyDisabled", "Operation sign is not allowed on a disabled key.", "disabled"),
    (403, "Forbidden", None, 'Operation "purge" is not allowed because purge protection is enabled', "purge_protection"),
    (403, "Forbidden", None, "Access denied. Caller was not found on any access policy.", "forbidden"),
    (403, "Forbidden", "ForbiddenByPolicy", "does not have keys purge permission on key vault", "forbidden"),
    (409, "Conflict", "ObjectIsBeingDeleted", "currently being deleted", "pending"),
    (409, "Conflict", "ObjectIsBeingRecovered", "currently being recovered", "pending"),
    (409, "Conflict", "ObjectIsDeletedButRecoverable", "deleted but recoverable", "other"),
])
def test_refusal_kinds(status: int, code: str, inner: str | None, message: str, kind: str) -> None:
    assert kind_of(status, code, inner, message) == kind


def test_managed_hsm_hints_name_the_hsm_flag_and_the_role_per_operation() -> None:
    hsm, kv = "https://contoso.managedhsm.azure.net", "https://contoso.vault.azure.net"
    assert cli_target(hsm) == "--hsm-name contoso" and cli_target(kv) == "--vault-name contoso"
    assert cli_target("https://127.0.0.1:8443") == "--vault-name <vault>"
    assert "'Managed HSM Crypto Officer'" in role_hint(hsm, "purge")
    assert "'Managed HSM Crypto Officer'" in role_hint(hsm, "recover")
    assert "'Managed HSM Crypto User'" in role_hint(hsm, "import") and "--hsm-name" in role_hint(hsm, "import")
    assert "'Key Vault Crypto Officer'" in role_hint(kv, "purge")
    assert "Crypto Officer" not in remedy("key_ops", kv, "sign")
    assert "access policies: the key permission 'purge'" in remedy("forbidden", kv, "purge")
    assert "ForbiddenByRbac after waiting 600 s (BYOK_RBAC_WAIT_SECONDS)" in remedy(
        "rbac", kv, "import", waited=600, setting="BYOK_RBAC_WAIT_SECONDS")


def test_the_soft_deleted_hint_uses_hsm_name_and_the_officer_role_on_a_managed_hsm() -> None:
    from types import SimpleNamespace

    from byok_component.provider import _deleted_message

    hsm = _deleted_message(SimpleNamespace(vault_url="https://contoso.managedhsm.azure.net", key_name="k"))
    assert "az keyvault key recover --hsm-name contoso --name k" in hsm and "--vault-name" not in hsm
    assert "Managed HSM Crypto Officer" in hsm and "refused under purge protection" in hsm
    kv = _deleted_message(SimpleNamespace(vault_url="https://contoso.vault.azure.net", key_name="k"))
    assert "az keyvault key purge --vault-name contoso --name k" in kv and "Managed HSM" not in kv


def test_byok_key_accepts_hmac_sign_verify_on_an_aes_key_but_does_not_default_to_them() -> None:
    from byok_component.errors import InputError
    from byok_component.props import KEY_OPS_BY_TYPE, _key_ops

    assert _key_ops(["sign", "verify", "wrapKey"], "oct") == ["sign", "verify", "wrapKey"]
    assert "sign" not in KEY_OPS_BY_TYPE["oct"]
    with pytest.raises(InputError, match="encrypt not valid for an EC key"):
        _key_ops(["encrypt"], "EC")
