"""ByokKeyProvider's methods called directly against local vaults over real HTTPS (the real Azure SDK inside).

Every result is scanned for private key bytes, AES keys, the password and the vault tokens.
"""

from __future__ import annotations

import copy
import secrets
from pathlib import Path
from typing import Any, Callable

import pytest

from byok_component import props as P
from byok_component.blob import TransferBlob
from byok_component.errors import ByokError, InputError, KekError, KeyConflictError, KeyDeletedError
from byok_component.keys import load_target_key
from byok_component.wrap import wrap
from tests.provider.conftest import with_tokens
from tests.provider.vaultstate import held
from tests.secretscan import assert_no_secrets


@pytest.fixture
def clean(secret_set: Any, premium_vault: Any, hsm_vault: Any) -> Callable[[Any, str], None]:
    everything = with_tokens(copy.deepcopy(secret_set), premium_vault, hsm_vault)

    def scan(value: Any, what: str = "provider result") -> None:
        assert_no_secrets(value, everything, what)
    return scan


def name() -> str:
    return f"byok-{secrets.token_hex(4)}"


def base(vault: Any, kek_id: str, key_name: str, **extra: Any) -> dict[str, Any]:
    return {"vault_url": vault.vault_url, "key_name": key_name, "kek_id": kek_id, **extra}


# --- create ------------------------------------------------------------------------------------------------------
def test_create_imports_and_outputs_reflect_the_vault(provider, premium, kek_id, keys, checked, sdk, clean) -> None:
    key_name = name()
    inputs = checked(**base(premium, kek_id, key_name, key_file=keys["rsa"].private, key_password=keys["rsa"].password,
                            tags={"env": "test"}, key_ops=["sign", "verify"], expires_on="2031-01-01T00:00:00Z"))
    before = copy.deepcopy(inputs)
    result = provider.create(inputs)
    assert inputs == before  # never mutated
    outs = result.outs
    assert result.id == f"{premium.vault_url}/keys/{key_name}"
    assert outs["fingerprint"] == keys["rsa"].info.fingerprint
    assert (outs["key_type"], outs["key_size"], outs["key_ops"], outs["tags"], outs["enabled"]) == (
        "RSA", 2048, ["sign", "verify"], {"env": "test"}, True)
    assert outs["expires_on"] == "2031-01-01T00:00:00Z"
    assert outs["kid"] == f"{result.id}/{outs['version']}"
    assert "key_password" not in outs
    assert set(outs) <= set(P.OUTPUTS)
    held = sdk(premium).get_key(key_name)
    assert held.key_type == "RSA-HSM" and held.properties.version == outs["version"]
    clean(outs)


def test_create_is_idempotent_when_the_name_holds_our_material(provider, premium, kek_id, keys, checked, sdk) -> None:
    key_name = name()
    inputs = checked(**base(premium, kek_id, key_name, key_file=keys["ec"].private))
    first = provider.create(inputs).outs
    again = provider.create(checked(**base(premium, kek_id, key_name, key_file=keys["ec"].private,
                                           tags={"adopted": "yes"}))).outs
    assert again["version"] == first["version"]  # adopted, no new version; the declared tags were PATCHed
    assert again["tags"] == {"adopted": "yes"}
    assert len(list(sdk(premium).list_properties_of_key_versions(key_name))) == 1


def test_create_refuses_other_material_unless_adopt_existing(provider, premium, kek_id, keys, checked, sdk) -> None:
    key_name = name()
    provider.create(checked(**base(premium, kek_id, key_name, key_file=keys["ec"].private)))
    with pytest.raises(KeyConflictError) as info:
        provider.create(checked(**base(premium, kek_id, key_name, key_file=keys["ec2"].private)))
    message = str(info.value)
    assert key_name in message and premium.vault_url in message and "adopt_existing" in message
    adopted = provider.create(checked(**base(premium, kek_id, key_name, key_file=keys["ec2"].private,
                                             adopt_existing=True))).outs
    assert adopted["fingerprint"] == keys["ec2"].info.fingerprint
    assert len(list(sdk(premium).list_properties_of_key_versions(key_name))) == 2


def test_create_on_a_soft_deleted_name_says_recover_or_purge(provider, premium, kek_id, keys, checked, sdk) -> None:
    key_name = name()
    sdk(premium).create_ec_key(key_name, curve="P-256")
    sdk(premium).begin_delete_key(key_name).wait()
    with pytest.raises(KeyDeletedError) as info:
        provider.create(checked(**base(premium, kek_id, key_name, key_file=keys["ec"].private)))
    message = str(info.value)
    assert "soft-deleted" in message and "recover" in message and "purge" in message and key_name in message
    assert "\n" not in message


def test_create_refuses_a_key_file_that_differs_from_public_key_file(provider, premium, kek_id, keys,
                                                                     checked) -> None:
    key_name = name()
    inputs = checked(**base(premium, kek_id, key_name, key_file="/runner/has/no/key.pem",
                            public_key_file=keys["ec"].public))
    since = premium.request_count
    with pytest.raises(InputError, match="public_key_file: does not match key_file"):
        provider.create({**inputs, "key_file": keys["ec2"].private})
    with pytest.raises(InputError, match="file not found"):
        provider.create(inputs)
    assert [m for m, _ in premium.requests_since(since) if m == "PUT"] == []


def test_a_kek_that_is_not_import_only_is_refused(provider, premium, keys, checked, sdk) -> None:
    not_a_kek = sdk(premium).create_rsa_key(name(), size=2048, hardware_protected=True,
                                            key_operations=["wrapKey", "unwrapKey"])
    with pytest.raises(KekError, match="import"):
        provider.create(checked(**base(premium, not_a_kek.id, name(), key_file=keys["ec"].private)))


def test_a_4096_bit_kek(provider, premium, keys, checked, sdk) -> None:
    kek = sdk(premium).create_rsa_key(name(), size=4096, hardware_protected=True, key_operations=["import"])
    outs = provider.create(checked(**base(premium, kek.id, name(), key_file=keys["p384"].private))).outs
    assert (outs["key_type"], outs["curve"], outs["fingerprint"]) == ("EC", "P-384", keys["p384"].info.fingerprint)


# --- wrapped elsewhere -------------------------------------------------------------------------------------------
def test_wrapped_key_file_raw_and_byok(provider, premium, kek_id, keys, checked, sdk, keydir: Path, clean) -> None:
    kek_pub = sdk(premium).get_key(kek_id.rsplit("/", 2)[1], kek_id.rsplit("/", 1)[1]).key
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
    public_key = RSAPublicNumbers(int.from_bytes(kek_pub.e, "big"), int.from_bytes(kek_pub.n, "big")).public_key()
    target = load_target_key(Path(keys["ec"].private).read_bytes())
    raw = keydir / f"{name()}.wrapped"
    raw.write_bytes(wrap(public_key, target.wrapping_plaintext()))
    blob = keydir / f"{name()}.byok"
    blob.write_bytes(TransferBlob.build(kek_id, wrap(public_key, target.wrapping_plaintext())).to_json())
    for path in (raw, blob):
        outs = provider.create(checked(**base(premium, kek_id, name(), wrapped_key_file=str(path),
                                              public_key_file=keys["ec"].public))).outs
        assert outs["fingerprint"] == keys["ec"].info.fingerprint
        clean(outs)
    # Ciphertext of other material than public_key_file describes: refused, and the vault is inspected
    # afterwards (nothing live, nothing recorded, no second import) in tests/provider/test_wrapped_verify.py.
    key_name = name()
    with pytest.raises(KeyConflictError, match="holds other key material than public_key_file"):
        provider.create(checked(**base(premium, kek_id, key_name, wrapped_key_file=str(raw),
                                       public_key_file=keys["ec2"].public)))
    assert held(sdk(premium), key_name).enabled is False


# --- update ----------------------------------------------------------------------------------------------------------
def test_update_patches_properties_without_a_new_version(provider, premium, kek_id, keys, checked, sdk) -> None:
    key_name = name()
    inputs = checked(**base(premium, kek_id, key_name, key_file=keys["ec"].private, public_key_file=keys["ec"].public))
    created = provider.create(inputs)
    # The release runner may PATCH with the public key alone: no key_file needed when the material is the same.
    news = checked(**base(premium, kek_id, key_name, key_file="/not/on/this/runner.pem",
                          public_key_file=keys["ec"].public, tags={"owner": "sec"}, enabled=False,
                          key_ops=["verify"], not_before="2026-01-01T00:00:00Z", purge_on_delete=True))
    diff = provider.diff(created.id, created.outs, news)
    assert (diff.changes, diff.replaces) == (True, [])
    outs = provider.update(created.id, created.outs, news).outs
    assert outs["version"] == created.outs["version"]
    assert (outs["tags"], outs["enabled"], outs["key_ops"], outs["not_before"], outs["purge_on_delete"]) == (
        {"owner": "sec"}, False, ["verify"], "2026-01-01T00:00:00Z", True)
    assert provider.diff(created.id, outs, news).changes is False
    held = sdk(premium).get_key(key_name)
    # The vault's version also carries the owner marker, which the outputs never show as a user tag.
    assert held.properties.enabled is False
    assert held.properties.tags == {"owner": "sec", "byok-owner": created.outs["owner"]}
    assert outs["owner"] == created.outs["owner"]


def test_update_with_new_material_imports_a_new_version(provider, premium, kek_id, keys, checked, sdk) -> None:
    key_name = name()
    created = provider.create(checked(**base(premium, kek_id, key_name, key_file=keys["ec"].private)))
    news = checked(**base(premium, kek_id, key_name, key_file=keys["ec2"].private))
    diff = provider.diff(created.id, created.outs, news)
    assert (diff.changes, diff.replaces) == (True, [])
    outs = provider.update(created.id, created.outs, news).outs
    assert outs["version"] != created.outs["version"]
    assert outs["fingerprint"] == keys["ec2"].info.fingerprint
    old = sdk(premium).get_key(key_name, created.outs["version"])  # rotation: the old version stays usable
    assert old.properties.enabled is True


def test_update_only_outputs_when_nothing_in_the_vault_changes(provider, premium, kek_id, keys, checked) -> None:
    key_name = name()
    created = provider.create(checked(**base(premium, kek_id, key_name, key_file=keys["ec"].private)))
    requests_before = premium.request_count
    news = checked(**base(premium, kek_id, key_name, key_file=keys["ec"].private, purge_on_delete=True))
    outs = provider.update(created.id, created.outs, news).outs
    assert outs["purge_on_delete"] is True
    writes = [m for m, _ in premium.requests_since(requests_before) if m in ("PUT", "PATCH")]
    assert writes == []


# --- read ------------------------------------------------------------------------------------------------------------
def test_read_reveals_out_of_band_changes(provider, premium, kek_id, keys, checked, sdk, clean) -> None:
    key_name = name()
    created = provider.create(checked(**base(premium, kek_id, key_name, key_file=keys["ec"].private,
                                             tags={"env": "prod"})))
    state = {**created.outs, "key_size": float(created.outs["key_size"]), "__provider": "opaque"}
    same = provider.read(created.id, state)
    assert same.id == created.id and same.outs["version"] == created.outs["version"]
    sdk(premium).update_key_properties(key_name, enabled=False, tags={"env": "prod", "by": "hand"})
    drifted = provider.read(created.id, state)
    assert (drifted.outs["enabled"], drifted.outs["tags"]) == (False, {"env": "prod", "by": "hand"})
    assert (drifted.inputs["enabled"], drifted.inputs["tags"]) == (False, {"env": "prod", "by": "hand"})
    assert "kid" not in drifted.inputs and "key_password" not in drifted.inputs
    declared = checked(**base(premium, kek_id, key_name, key_file=keys["ec"].private, tags={"env": "prod"}))
    assert provider.diff(created.id, drifted.outs, declared).changes is True
    clean([same.outs, drifted.outs, drifted.inputs])


def test_read_reveals_a_version_imported_by_hand_and_a_deletion(provider, premium, kek_id, keys, checked, sdk) -> None:
    key_name = name()
    created = provider.create(checked(**base(premium, kek_id, key_name, key_file=keys["ec"].private)))
    other = provider.create(checked(**base(premium, kek_id, key_name, key_file=keys["ec2"].private,
                                           adopt_existing=True)))  # "by hand": a second import on the name
    seen = provider.read(created.id, created.outs)
    assert seen.outs["version"] == other.outs["version"]
    assert seen.outs["fingerprint"] == keys["ec2"].info.fingerprint
    assert provider.diff(created.id, seen.outs, checked(**base(premium, kek_id, key_name,
                                                              key_file=keys["ec"].private))).changes is True
    sdk(premium).begin_delete_key(key_name).wait()
    gone = provider.read(created.id, created.outs)
    assert (gone.id, gone.outs) == ("", {})


def test_read_by_id_alone(provider, premium, kek_id, keys, checked) -> None:
    key_name = name()
    created = provider.create(checked(**base(premium, kek_id, key_name, key_file=keys["ec"].private)))
    found = provider.read(created.id, {})
    assert found.outs["fingerprint"] == keys["ec"].info.fingerprint and found.outs["key_name"] == key_name


# --- delete ----------------------------------------------------------------------------------------------------------
def test_delete_soft_deletes_and_purges_only_when_asked(provider, premium, kek_id, keys, checked, sdk) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    soft, purged = name(), name()
    for key_name, purge in ((soft, False), (purged, True)):
        created = provider.create(checked(**base(premium, kek_id, key_name, key_file=keys["ec"].private,
                                                 purge_on_delete=purge)))
        provider.delete(created.id, created.outs)
        provider.delete(created.id, created.outs)  # already gone: still fine
    assert sdk(premium).get_deleted_key(soft).name == soft
    with pytest.raises(ResourceNotFoundError):
        sdk(premium).get_deleted_key(purged)


# --- AES keys on a Managed HSM ---------------------------------------------------------------------------------------
def test_aes_key_file_and_wrapped_aes_on_managed_hsm(provider, hsm, hsm_kek_id, keys, checked, sdk, keydir,
                                                     clean) -> None:
    key_name = name()
    created = provider.create(checked(**base(hsm, hsm_kek_id, key_name, key_file=keys["aes"].private)))
    outs = created.outs
    assert (outs["key_type"], outs["key_size"], outs["fingerprint"]) == ("oct", 256, keys["aes"].info.fingerprint)
    assert "public_key_pem" not in outs
    again = provider.create(checked(**base(hsm, hsm_kek_id, key_name, key_file=keys["aes"].private,
                                           adopt_existing=True)))
    assert again.outs["version"] == outs["version"]  # the vault wraps a probe with it: same AES key, adopted
    same = provider.read(created.id, again.outs)
    assert same.outs["fingerprint"] == keys["aes"].info.fingerprint  # our version: identity kept from state
    sdk(hsm).update_key_properties(key_name, tags={"by": "hand"})
    news = checked(**base(hsm, hsm_kek_id, key_name, key_file=keys["aes2"].private))
    rotated = provider.update(created.id, same.outs, news).outs
    assert rotated["version"] != again.outs["version"] and rotated["fingerprint"] == keys["aes2"].info.fingerprint
    # Ciphertext wrapped by an external KMS for this KEK.
    kek = sdk(hsm).get_key(hsm_kek_id.rsplit("/", 2)[1], hsm_kek_id.rsplit("/", 1)[1]).key
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
    kek_public = RSAPublicNumbers(int.from_bytes(kek.e, "big"), int.from_bytes(kek.n, "big")).public_key()
    wrapped = keydir / f"{name()}.bin"
    wrapped.write_bytes(wrap(kek_public, Path(keys["aes"].private).read_bytes()))
    outs = provider.create(checked(**base(hsm, hsm_kek_id, name(), wrapped_key_file=str(wrapped),
                                          key_type="oct"))).outs
    assert outs["fingerprint"].startswith(P.WRAPPED_FINGERPRINT_PREFIX) and outs["key_size"] == 256
    clean([created.outs, again.outs, same.outs, rotated, outs])


def test_aes_on_a_premium_vault_is_a_clear_error(provider, premium, kek_id, keys, checked, sdk) -> None:
    """The line says what is wrong (AES keys exist only in a Managed HSM), where (this key in this vault) and
    nothing is left behind: no key, no version, no soft-deleted name."""
    from azure.core.exceptions import ResourceNotFoundError

    key_name = name()
    with pytest.raises(ByokError) as info:
        provider.create(checked(**base(premium, kek_id, key_name, key_file=keys["aes"].private)))
    message = str(info.value)
    assert "\n" not in message
    assert f"{premium.vault_url}/keys/{key_name}" in message
    assert "oct-HSM (AES) keys exist only in Managed HSM" in message and "premium" in message
    with pytest.raises(ResourceNotFoundError):
        sdk(premium).get_key(key_name)
    with pytest.raises(ResourceNotFoundError):
        sdk(premium).get_deleted_key(key_name)


# --- errors carry no secrets; update converges after out-of-band deletions -----------------------------------------
def test_errors_name_the_input_and_hold_no_secret(provider, premium, kek_id, keys, checked, clean) -> None:
    inputs = checked(**base(premium, kek_id, name(), key_file=keys["rsa"].private, key_password=keys["rsa"].password))
    wrong = "wrong-" + keys["rsa"].password[::-1]
    with pytest.raises(InputError) as info:
        provider.create({**inputs, "key_password": wrong})
    message = str(info.value)
    assert "key_password: wrong password" in message and wrong not in message and "\n" not in message
    clean(message, "error text")
    check = provider.check({}, {**inputs, "key_password": wrong})
    # The engine prints a failing property's value (pulumi/pulumi#19465): the password is named in the text only.
    assert [(f.property, f.reason.split(":")[0]) for f in check.failures] == [("", "key_password")]
    clean([f.reason for f in check.failures], "check failures")


def test_update_after_an_out_of_band_purge_imports_again(provider, premium, kek_id, keys, checked, sdk) -> None:
    key_name = name()
    inputs = checked(**base(premium, kek_id, key_name, key_file=keys["ec"].private))
    created = provider.create(inputs)
    sdk(premium).begin_delete_key(key_name).wait()
    with pytest.raises(KeyDeletedError, match="soft-deleted.*refresh"):
        provider.update(created.id, created.outs, checked(**base(premium, kek_id, key_name,
                                                                 key_file=keys["ec"].private, tags={"a": "b"})))
    sdk(premium).purge_deleted_key(key_name)
    outs = provider.update(created.id, created.outs, checked(**base(premium, kek_id, key_name,
                                                                    key_file=keys["ec"].private, tags={"a": "b"}))).outs
    assert outs["fingerprint"] == keys["ec"].info.fingerprint and outs["tags"] == {"a": "b"}
