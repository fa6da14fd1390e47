"""ByokKey with a key in a SoftHSM token, driven over gRPC the way the engine drives the provider: a preview on a
runner with only the public key file (no token, no PIN), then `up` wrapping inside the token and importing, and
the vault proven to hold the token's key. Every response and the host's stderr are scanned for the PIN and the
key as the vault holds it."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Any, Iterator

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from google.protobuf import json_format
from pulumi.dynamic.dynamic import serialize_provider

from byok_component.provider import ByokKeyProvider
from tests.conftest import serve_vault
from tests.integration.conftest import make_key_client
from tests.pkcs11.conftest import SoftHsm
from tests.pkcs11.test_token_vault import crypto_client, held_material
from tests.provider.grpc_host import ProviderHost, plain
from tests.secretscan import SecretSet, assert_no_secrets

PROVIDER = serialize_provider(ByokKeyProvider())


@pytest.fixture(scope="module")
def premium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from serve_vault(tmp_path_factory.mktemp("pkcs11-provider-premium"))


@pytest.fixture(scope="module")
def mhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from serve_vault(tmp_path_factory.mktemp("pkcs11-provider-mhsm"), sku="managedhsm")


def kek(local_vault: Any) -> str:
    key = make_key_client(local_vault).create_rsa_key(f"kek-{secrets.token_hex(3)}", size=2048,
                                                      hardware_protected=True, key_operations=["import"])
    assert key.id is not None
    return key.id


def host_for(local_vault: Any, **extra: str) -> ProviderHost:
    return ProviderHost({"BYOK_CA_BUNDLE": local_vault.ca_cert, "BYOK_ACCESS_TOKEN_FILE": local_vault.token_file,
                         "BYOK_RBAC_WAIT_SECONDS": "0", **extra})


def create_refused(host: ProviderHost, checked: Any) -> str:
    """The text of the error a create over gRPC fails with (the engine shows the gRPC error's details)."""
    with pytest.raises(Exception) as caught:
        host.create(plain(checked.inputs))
    return str(getattr(caught.value, "details", lambda: caught.value)())


def scan(pin_set: SecretSet, *things: Any, what: str) -> None:
    texts = [json_format.MessageToJson(t) if hasattr(t, "DESCRIPTOR") else t for t in things]
    assert_no_secrets(texts, pin_set, what)


def test_preview_without_the_token_then_up_wraps_inside_it(softhsm: SoftHsm, premium: Any, tmp_path: Path) -> None:
    """P-384 (80-byte PKCS#8 in SoftHSM, exact even on 2.6.1); the PIN comes from the provider's environment."""
    obj = softhsm.make_ec(f"p384-{secrets.token_hex(3)}", "P-384")
    kek_id, name = kek(premium), f"tok-{secrets.token_hex(3)}"
    pins = SecretSet().add_password("pin", softhsm.pin).add_password("so_pin", softhsm.so_pin)
    inputs = {"vault_url": premium.vault_url, "key_name": name, "kek_id": kek_id,
              "pkcs11_uri": softhsm.uri(obj, "private"), "__provider": PROVIDER}

    # Phase 3's preview on a PR runner: public key file only, no module there, no PIN.
    from byok_component.pkcs11 import TokenKey, public_info
    public = public_info(TokenKey.from_inputs(softhsm.uri(obj), softhsm.module))
    (tmp_path / "key.pub.pem").write_text(public.public_pem or "")
    with host_for(premium) as runner:
        response = runner.check({}, {**inputs, "public_key_file": str(tmp_path / "key.pub.pem"),
                                     "pkcs11_module": "/nonexistent/libvendor-pkcs11.so"})
        assert [(f.property, f.reason) for f in response.failures] == []
        assert plain(response.inputs)["fingerprint"] == public.fingerprint
        response = runner.check({}, {**inputs, "pkcs11_module": "/nonexistent/libvendor-pkcs11.so"})
        failures = [(f.property, f.reason) for f in response.failures]
        assert failures == [("pkcs11_module", "PKCS#11 module not found: /nonexistent/libvendor-pkcs11.so (for "
                                              "previews without the token give public_key_file)")]

    # `pulumi up` on the protected runner that reaches the token.
    host = host_for(premium, BYOK_PKCS11_PIN=softhsm.pin)
    try:
        news = {**inputs, "pkcs11_module": softhsm.module, "public_key_file": str(tmp_path / "key.pub.pem")}
        checked = host.check({}, news)
        assert [(f.property, f.reason) for f in checked.failures] == []
        created = host.create(plain(checked.inputs))
    finally:
        stderr = host.close()
    outs = plain(created.properties)
    assert outs["fingerprint"] == public.fingerprint and outs["curve"] == "P-384"
    assert "pkcs11_pin" not in outs and outs["pkcs11_uri"] == softhsm.uri(obj, "private")

    # The token's ciphertext could not be checked before the import: imported disabled, compared, made live.
    held = make_key_client(premium).get_key(name)
    assert held.properties.enabled is True and "byok-ciphertext-sha256" in held.properties.tags
    assert "byok-unverified" not in held.properties.tags
    digest = hashlib.sha384(b"signed by the vault").digest()
    signature = crypto_client(premium, outs["kid"]).sign("ES384", digest).signature
    key = serialization.load_pem_public_key(public.public_pem.encode())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(utils.encode_dss_signature(int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")),
               digest, ec.ECDSA(utils.Prehashed(hashes.SHA384())))
    pins.add_private_key("p384", serialization.load_der_private_key(held_material(premium, name), None))
    scan(pins.add_vault_tokens(premium), checked, created, stderr, what="the provider's responses and stderr")


def test_aes_key_with_the_pin_as_a_secret_input(softhsm: SoftHsm, mhsm: Any) -> None:
    import PyKCS11 as P

    obj = softhsm.make_aes(f"aes-{secrets.token_hex(3)}")
    name = f"tok-{secrets.token_hex(3)}"
    news = {"vault_url": mhsm.vault_url, "key_name": name, "kek_id": kek(mhsm), "key_type": "oct",
            "pkcs11_uri": softhsm.uri(obj, "secret-key"), "pkcs11_module": softhsm.module,
            "pkcs11_pin": softhsm.pin, "__provider": PROVIDER}
    host = host_for(mhsm)
    try:
        checked = host.check({}, news)
        assert [(f.property, f.reason) for f in checked.failures] == []
        inputs = plain(checked.inputs)
        assert inputs["fingerprint"].startswith("pkcs11-aes:") and inputs["key_size"] == 256
        created = host.create(inputs)
        outs = plain(created.properties)
        assert "pkcs11_pin" not in outs
        again = host.check(outs, news)  # the next preview: same fingerprint, so no change
        diff = host.diff(created.id, outs, plain(again.inputs))
    finally:
        stderr = host.close()
    assert diff.changes == diff.DIFF_NONE

    iv, message = os.urandom(16), os.urandom(48)
    sealed = crypto_client(mhsm, outs["kid"]).encrypt("A256CBC", message, iv=iv).ciphertext
    with softhsm.session() as s:
        handle = s.findObjects([(P.CKA_LABEL, obj)])[0]
        assert bytes(s.decrypt(handle, sealed, P.Mechanism(P.CKM_AES_CBC, iv))) == message

    found = SecretSet().add_bytes("aes", held_material(mhsm, name)).add_password("so_pin", softhsm.so_pin)
    scan(found.add_vault_tokens(mhsm), checked, created, stderr, what="responses and stderr")
    # Check hands the secret input back to the engine (which keeps it encrypted); create never echoes it.
    scan(SecretSet().add_password("pin", softhsm.pin), created, diff, stderr, what="create, diff and stderr")


def test_p256_on_softhsm_26_is_refused_in_preview_and_up_and_nothing_is_imported(softhsm: SoftHsm, premium: Any,
                                                                                  tmp_path: Path) -> None:
    obj = softhsm.make_ec(f"p256-{secrets.token_hex(3)}", "P-256")
    name = f"tok-{secrets.token_hex(3)}"
    news = {"vault_url": premium.vault_url, "key_name": name, "kek_id": kek(premium),
            "pkcs11_uri": softhsm.uri(obj), "pkcs11_module": softhsm.module, "__provider": PROVIDER}
    host = host_for(premium, BYOK_PKCS11_PIN=softhsm.pin)
    try:
        # A preview that reaches the token with a PIN refuses already; one that has only the public file cannot
        # know, and `up` refuses before anything is wrapped or imported.
        failures = [(f.property, f.reason) for f in host.check({}, news).failures]
        assert len(failures) == 1 and failures[0][0] == "pkcs11_uri" and "zero-pads" in failures[0][1]
        public = tmp_path / "p256.pub.pem"
        from byok_component.pkcs11 import TokenKey, public_info
        public.write_text(public_info(TokenKey.from_inputs(softhsm.uri(obj), softhsm.module)).public_pem or "")
        checked = host.check({}, {**news, "public_key_file": str(public)})
        assert [(f.property, f.reason) for f in checked.failures] == []
        detail = create_refused(host, checked)
    finally:
        host.close()
    assert "zero-pads wrapped keys to a multiple of 8 bytes" in detail and "P-256" in detail
    assert softhsm.pin not in detail and softhsm.pin not in failures[0][1]
    from azure.core.exceptions import ResourceNotFoundError
    with pytest.raises(ResourceNotFoundError):
        make_key_client(premium).get_key(name)


def test_a_token_whose_public_key_object_is_not_the_pair_is_refused_naming_pkcs11_uri(softhsm: SoftHsm,
                                                                                       premium: Any) -> None:
    """The public key the token shows beside the private key belongs to another pair (here: relabelled). The
    token wraps the private key, the vault unwraps it to that key, and the comparison with the shown public key
    fails: the version stays disabled and the error names pkcs11_uri with a hint about the token's key pair,
    not wrapped_key_file (an input this resource does not have)."""
    import PyKCS11 as P

    obj, other = softhsm.make_ec(f"pair-{secrets.token_hex(3)}", "P-384"), softhsm.make_ec(
        f"other-{secrets.token_hex(3)}", "P-384")
    with softhsm.session() as s:  # obj's public key object goes; other's takes its label
        for handle in s.findObjects([(P.CKA_CLASS, P.CKO_PUBLIC_KEY), (P.CKA_LABEL, obj)]):
            s.destroyObject(handle)
        (moved,) = s.findObjects([(P.CKA_CLASS, P.CKO_PUBLIC_KEY), (P.CKA_LABEL, other)])
        s.setAttributeValue(moved, [(P.CKA_LABEL, obj)])
    name = f"tok-{secrets.token_hex(3)}"
    news = {"vault_url": premium.vault_url, "key_name": name, "kek_id": kek(premium),
            "pkcs11_uri": softhsm.uri(obj), "pkcs11_module": softhsm.module, "__provider": PROVIDER}
    host = host_for(premium, BYOK_PKCS11_PIN=softhsm.pin)
    try:
        checked = host.check({}, news)
        assert [(f.property, f.reason) for f in checked.failures] == []
        detail = create_refused(host, checked)
    finally:
        host.close()
    assert "pkcs11_uri: the token wrapped other key material than its public key object shows" in detail
    assert "make pkcs11_uri name one key pair" in detail
    assert "wrapped_key_file" not in detail and "public_key_file" not in detail and softhsm.pin not in detail
    held = make_key_client(premium).get_key(name)
    assert held.properties.enabled is False and held.properties.tags["byok-unverified"] == "mismatch"
