"""The CLI's vault-side rules (guard.py) and the KEK pin (kekpin.py), decided on what a vault returned."""

from __future__ import annotations

import pytest

from byok_component import guard, kekpin, verify
from byok_component.blob import TransferBlob
from byok_component.errors import InputError, KekError, KeyConflictError
from byok_component.keys import describe_public_key
from byok_component.vault import VaultKey
from tests.conftest import ec_key, rsa_key

VAULT = "https://contoso.vault.azure.net"
KEK_ID = f"{VAULT}/keys/kek/{'0' * 32}"
BLOB = TransferBlob.build(KEK_ID, bytes(range(256)) * 1 + bytes(40))


def version(kty: str = "EC-HSM", public: object = None, tags: dict[str, str] | None = None, ops=("sign", "verify"),
            enabled: bool = True) -> VaultKey:
    info = describe_public_key(public) if public is not None else None
    return VaultKey(f"{VAULT}/keys/k/{'1' * 32}", "k", "1" * 32, kty, tuple(ops), enabled, None, None,
                    tags or {}, info)


def test_the_blob_must_be_for_a_kek_of_the_vault_it_is_sent_to() -> None:
    assert guard.check_blob_vault(BLOB, VAULT + "/") == VAULT
    with pytest.raises(InputError, match="--byok-file: was wrapped for KEK .* not for a KEK of --vault-url "
                                         "https://other.vault.azure.net.*nothing was sent — import it into "
                                         f"{VAULT}, or wrap the key again for this vault's KEK"):
        guard.check_blob_vault(BLOB, "https://other.vault.azure.net")


def test_a_taken_name_is_refused_unless_a_new_version_is_meant() -> None:
    mine, other = ec_key("P-256", 1).public_key(), ec_key("P-256", 2).public_key()
    guard.refuse_taken(None, BLOB, None, new_version=False)
    with pytest.raises(KeyConflictError, match="holds other key material .*--new-version"):
        guard.refuse_taken(version(public=other), BLOB, describe_public_key(mine), new_version=False)
    with pytest.raises(KeyConflictError, match="already holds this material"):
        guard.refuse_taken(version(public=mine), BLOB, describe_public_key(mine), new_version=False)
    same_file = version(public=other, tags={verify.CIPHERTEXT_TAG: verify.ciphertext_digest(BLOB.ciphertext)})
    with pytest.raises(KeyConflictError, match="imported from this very .byok file"):
        guard.refuse_taken(same_file, BLOB, None, new_version=False)
    failed = version(public=other, enabled=False, tags={verify.CIPHERTEXT_TAG: verify.ciphertext_digest(
        BLOB.ciphertext), verify.UNVERIFIED_TAG: verify.MISMATCH})
    with pytest.raises(KeyConflictError, match="never shown to match .*mismatch, enabled: no"):
        guard.refuse_taken(failed, BLOB, describe_public_key(mine), new_version=False)
    with pytest.raises(KeyConflictError, match="an AES key"):
        guard.refuse_taken(version(kty="oct-HSM", ops=("wrapKey",)), BLOB, None, new_version=False)
    # Without --public-key nothing was compared: the same material in another .byok must not be called "other".
    with pytest.raises(KeyConflictError, match="cannot tell whether .* --public-key .*--new-version") as caught:
        guard.refuse_taken(version(public=mine), BLOB, None, new_version=False)
    assert "other key material" not in str(caught.value)
    guard.refuse_taken(version(public=other), BLOB, describe_public_key(mine), new_version=True)


def test_kek_create_refuses_any_existing_name() -> None:
    guard.refuse_existing_kek(None, "k", VAULT)
    with pytest.raises(KeyConflictError, match="not a KEK .*sign verify.*another --name"):
        guard.refuse_existing_kek(version(public=ec_key("P-256", 1).public_key()), "k", VAULT)
    with pytest.raises(KeyConflictError, match="already a KEK .*byok kek download"):
        guard.refuse_existing_kek(version("RSA-HSM", rsa_key(2048).public_key(), ops=("import",)), "k", VAULT)


def test_verify_reports_material_enabled_and_ops_against_what_was_expected() -> None:
    mine = ec_key("P-256", 1).public_key()
    good = guard.verdict(version(public=mine), public=describe_public_key(mine))
    assert good.ok and good.lines[0].startswith("material: holds this key")
    assert not guard.verdict(version(public=mine, enabled=False), public=describe_public_key(mine)).ok
    assert guard.verdict(version(public=mine, enabled=False), public=describe_public_key(mine),
                         expect_enabled=False).ok
    wrong_ops = guard.verdict(version(public=mine), public=describe_public_key(mine), expect_ops=["sign"])
    assert not wrong_ops.ok and "(expected sign)" in wrong_ops.lines[2]
    other = guard.verdict(version(public=ec_key("P-256", 2).public_key()), public=describe_public_key(mine))
    assert not other.ok and "OTHER" in other.lines[0]
    from byok_component.keys import load_target_key
    aes_file = load_target_key(bytes(range(32)), kty="oct").public
    unknown = guard.verdict(version("oct-HSM", ops=("encrypt",)), aes_match=None, aes_file=aes_file)
    assert not unknown.ok and "cannot be proven" in unknown.lines[0]
    assert guard.verdict(version("oct-HSM", ops=("wrapKey",)), aes_match=True, aes_file=aes_file).ok
    pending = guard.verdict(version(public=mine, tags={verify.UNVERIFIED_TAG: verify.MISMATCH}),
                            public=describe_public_key(mine))
    assert "byok-unverified=mismatch" in pending.lines[-1]


def test_the_kek_pin() -> None:
    kek = rsa_key(2048, 5).public_key()
    thumbprint = kekpin.kek_thumbprint(kek)
    assert thumbprint == describe_public_key(kek).fingerprint and len(thumbprint) == 43
    assert kekpin.check_pin(kek, None, source="--kek-pem") == thumbprint
    assert kekpin.check_pin(kek, f" {thumbprint}\n", source="--kek-pem") == thumbprint
    other = kekpin.kek_thumbprint(rsa_key(2048, 6).public_key())
    with pytest.raises(KekError, match=f"thumbprint {thumbprint}, not the pinned {other}"):
        kekpin.check_pin(kek, other, source="--kek-pem")
    with pytest.raises(InputError, match="is empty"):
        kekpin.check_pin(kek, " ", source="--kek-pem")
