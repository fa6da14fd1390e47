"""Ciphertext wrapped elsewhere never goes live unverified (issue 12, verify.py).

Methods called directly in the engine's order (check, then create/update/read); after each step the vault is
inspected with the operator's own SDK client: how many versions, which is current, enabled or not, which
material (public numbers through pyca, not through our fingerprint code), and how many requests of each kind
the provider sent (counted at the local vault).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from byok_component import verify
from byok_component.errors import KeyConflictError
from byok_component.keys import load_target_key
from byok_component.provider import ByokKeyProvider
from byok_component.wrap import wrap
from tests.conftest import ec_key
from tests.provider.vaultstate import held, public_of


def name() -> str:
    return f"wrapped-{secrets.token_hex(4)}"


def check(provider: Any, news: dict[str, Any]) -> dict[str, Any]:
    result = provider.check({}, news)
    assert [(f.property, f.reason) for f in result.failures] == []
    return result.inputs


def wrapped_for(sdk_client: Any, kek_id: str, plaintext: bytes, path: Path) -> str:
    """``plaintext`` wrapped for the KEK the way an external KMS would (we never see it again)."""
    name_, version = kek_id.rsplit("/", 2)[1:]
    jwk = sdk_client.get_key(name_, version).key
    kek = RSAPublicNumbers(int.from_bytes(jwk.e, "big"), int.from_bytes(jwk.n, "big")).public_key()
    path.write_bytes(wrap(kek, plaintext))
    return str(path)


def key_plaintext(key_file: str) -> bytes:
    return load_target_key(Path(key_file).read_bytes()).wrapping_plaintext()


def calls(vault: Any, since: int) -> list[str]:
    """The provider's requests since ``since`` as METHOD words (the SDK's bodiless challenge GETs excluded: they
    are answered 401 before any work and are made once per client)."""
    return [method for method, _ in vault.requests_since(since)]


def test_a_mismatch_leaves_the_version_disabled_and_a_rerun_imports_nothing(premium, kek_id, keys, sdk,
                                                                             keydir: Path) -> None:
    provider, key_name = ByokKeyProvider(), name()
    other = wrapped_for(sdk(premium), kek_id, key_plaintext(keys["ec2"].private), keydir / f"{key_name}.bin")
    news = {"vault_url": premium.vault_url, "key_name": key_name, "kek_id": kek_id, "wrapped_key_file": other,
            "public_key_file": keys["ec"].public}
    for attempt in (1, 2):  # the first run imports (disabled) and refuses; the rerun recognises it
        before = premium.request_count
        with pytest.raises(KeyConflictError) as caught:
            provider.create(check(provider, news))
        message = str(caught.value)
        assert "\n" not in message and "wrapped_key_file: holds other key material than public_key_file" in message
        assert message.endswith("give the matching wrapped_key_file and public_key_file") and "token" not in message
        assert keys["ec"].info.fingerprint in message and keys["ec2"].info.fingerprint in message
        now = held(sdk(premium), key_name)
        assert (now.versions, now.enabled, now.public) == (1, False, public_of(keys["ec2"].private))
        assert now.tags is not None and now.tags[verify.UNVERIFIED_TAG] == verify.MISMATCH
        assert now.tags[verify.CIPHERTEXT_TAG] == verify.ciphertext_digest(Path(other).read_bytes())
        if attempt == 2:
            assert "PUT" not in calls(premium, before) and "PATCH" not in calls(premium, before)
    # The matching public key for that same ciphertext: the version is verified and made live, not imported again.
    fixed = provider.create(check(provider, {**news, "public_key_file": keys["ec2"].public}))
    now = held(sdk(premium), key_name)
    assert (now.versions, now.enabled, now.version) == (1, True, fixed.outs["version"])
    assert now.tags is not None and verify.UNVERIFIED_TAG not in now.tags
    assert fixed.outs["tags"] == {} and fixed.outs["fingerprint"] == keys["ec2"].info.fingerprint


def test_an_update_with_mismatched_ciphertext_keeps_the_old_version_live_and_out_of_state(
        premium, kek_id, keys, sdk, keydir: Path) -> None:
    provider, key_name = ByokKeyProvider(), name()
    first = provider.create(check(provider, {"vault_url": premium.vault_url, "key_name": key_name,
                                             "kek_id": kek_id, "key_file": keys["ec"].private}))
    third = keydir / "ec3.pub.pem"  # a third P-256 key: the vault refuses a curve or type that disagrees
    third.write_bytes(ec_key("P-256", 13).public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    other = wrapped_for(sdk(premium), kek_id, key_plaintext(keys["ec2"].private), keydir / f"{key_name}.bin")
    news = check(provider, {"vault_url": premium.vault_url, "key_name": key_name, "kek_id": kek_id,
                            "wrapped_key_file": other, "public_key_file": str(third)})
    for attempt in (1, 2):
        before = premium.request_count
        with pytest.raises(KeyConflictError, match="left disabled"):
            provider.update(first.id, first.outs, news)
        if attempt == 2:
            assert "PUT" not in calls(premium, before)
    versions = {v.version: v for v in sdk(premium).list_properties_of_key_versions(key_name)}
    assert len(versions) == 2 and versions[first.outs["version"]].enabled is True
    failed = next(v for k, v in versions.items() if k != first.outs["version"])
    assert failed.enabled is False and failed.tags[verify.UNVERIFIED_TAG] == verify.MISMATCH
    # Refresh records the version that is live, never the failed one.
    seen = provider.read(first.id, first.outs)
    assert (seen.outs["version"], seen.outs["fingerprint"], seen.outs["enabled"]) == (
        first.outs["version"], keys["ec"].info.fingerprint, True)
    assert verify.UNVERIFIED_TAG not in seen.outs["tags"]
    # Someone enables the failed version by hand: it is now the live current version holding other material, so
    # refresh must record it (the drift shows, and the next up imports the declared key again), not hide it.
    sdk(premium).update_key_properties(key_name, failed.version, enabled=True)
    seen = provider.read(first.id, first.outs)
    assert (seen.outs["version"], seen.outs["fingerprint"]) == (failed.version, keys["ec2"].info.fingerprint)
    declared = check(provider, {"vault_url": premium.vault_url, "key_name": key_name, "kek_id": kek_id,
                                "key_file": keys["ec"].private})
    assert provider.diff(first.id, seen.outs, declared).changes is True
    provider.update(first.id, seen.outs, declared)  # the next up puts the declared key back in front
    now = held(sdk(premium), key_name)
    assert (now.versions, now.enabled, now.public) == (3, True, public_of(keys["ec"].private))


def test_matching_ciphertext_goes_live_with_one_patch(premium, kek_id, keys, sdk, keydir: Path) -> None:
    provider, key_name = ByokKeyProvider(), name()
    ours = wrapped_for(sdk(premium), kek_id, key_plaintext(keys["ec"].private), keydir / f"{key_name}.bin")
    news = check(provider, {"vault_url": premium.vault_url, "key_name": key_name, "kek_id": kek_id,
                            "wrapped_key_file": ours, "public_key_file": keys["ec"].public, "tags": {"a": "b"}})
    provider.create(check(provider, {**news, "key_name": name()}))  # the KEK is now fetched (once per process)
    before = premium.request_count
    created = provider.create(news)
    assert calls(premium, before) == ["GET", "PUT", "PATCH"]  # 404 on the name, disabled import, made live
    now = held(sdk(premium), key_name)
    assert (now.versions, now.enabled, now.public) == (1, True, public_of(keys["ec"].private))
    assert now.tags is not None and now.tags["a"] == "b" and verify.UNVERIFIED_TAG not in now.tags
    assert created.outs["tags"] == {"a": "b"} and created.outs["enabled"] is True
    before = premium.request_count
    again = provider.create(news)  # rerun: recognised by the public key, adopted (owner marker PATCHed)
    assert "PUT" not in calls(premium, before) and again.outs["version"] == created.outs["version"]
    # Declared disabled: still verified first, then left disabled without the pending tag.
    off = name()
    provider.create(check(provider, {**news, "key_name": off, "enabled": False}))
    now = held(sdk(premium), off)
    assert now.enabled is False and now.tags is not None and verify.UNVERIFIED_TAG not in now.tags


def test_a_run_that_stopped_after_the_import_is_finished_by_the_rerun(premium, kek_id, keys, sdk, keydir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    provider, key_name = ByokKeyProvider(), name()
    ours = wrapped_for(sdk(premium), kek_id, key_plaintext(keys["ec"].private), keydir / f"{key_name}.bin")
    news = check(provider, {"vault_url": premium.vault_url, "key_name": key_name, "kek_id": kek_id,
                            "wrapped_key_file": ours, "public_key_file": keys["ec"].public})
    real_settle = verify.settle

    def crash(*args: Any, **kwargs: Any) -> Any:  # the process dies between the import and the comparison
        raise KeyboardInterrupt

    monkeypatch.setattr(verify, "settle", crash)
    with pytest.raises(KeyboardInterrupt):
        provider.create(news)
    pending = held(sdk(premium), key_name)
    assert (pending.versions, pending.enabled, pending.tags[verify.UNVERIFIED_TAG]) == (1, False, verify.PENDING)
    monkeypatch.setattr(verify, "settle", real_settle)
    before = premium.request_count
    done = provider.create(news)
    assert "PUT" not in calls(premium, before)
    now = held(sdk(premium), key_name)
    assert (now.versions, now.enabled, now.version) == (1, True, done.outs["version"])
    assert verify.UNVERIFIED_TAG not in (now.tags or {})


def test_a_wrapped_aes_key_is_recognised_by_its_ciphertext(hsm, hsm_kek_id, keys, sdk, keydir: Path) -> None:
    """The vault never shows an AES key, so a rerun could not tell it had imported it: the digest tag can."""
    provider, key_name = ByokKeyProvider(), name()
    aes = wrapped_for(sdk(hsm), hsm_kek_id, Path(keys["aes"].private).read_bytes(), keydir / f"{key_name}.bin")
    news = check(provider, {"vault_url": hsm.vault_url, "key_name": key_name, "kek_id": hsm_kek_id,
                            "wrapped_key_file": aes, "key_type": "oct"})
    first = provider.create(news)
    before = hsm.request_count
    again = provider.create(news)
    assert "PUT" not in calls(hsm, before) and again.outs["version"] == first.outs["version"]
    now = held(sdk(hsm), key_name)
    assert (now.versions, now.enabled) == (1, True)  # nothing to compare: live as imported
    assert now.tags is not None and verify.UNVERIFIED_TAG not in now.tags
