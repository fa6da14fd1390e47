"""KekPublicKey: the KEK's public key and RFC 7638 thumbprint, read from a local vault over HTTPS."""

from __future__ import annotations

import secrets

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from byok_component import keys, vault
from byok_component.errors import KekError
from byok_component.kekview import KekPublicKeyProvider


def test_the_view_shows_the_vaults_kek_and_refuses_a_key_that_is_no_kek(premium, kek_id, sdk) -> None:
    provider = KekPublicKeyProvider()
    checked = provider.check({}, {"kek_id": kek_id})
    assert checked.failures == []
    created = provider.create(checked.inputs)
    jwk = sdk(premium).get_key(kek_id.rsplit("/", 2)[1], kek_id.rsplit("/", 1)[1]).key
    # The PEM is the vault's key (numbers compared through pyca), the thumbprint RFC 7638's over n and e.
    pem_numbers = load_pem_public_key(created.outs["public_key_pem"].encode()).public_numbers()
    assert (pem_numbers.n, pem_numbers.e) == (int.from_bytes(jwk.n, "big"), int.from_bytes(jwk.e, "big"))
    assert created.outs["fingerprint"] == keys.jwk_thumbprint(
        {"kty": "RSA", "n": keys.b64url(jwk.n), "e": keys.b64url(jwk.e)})
    assert created.id == kek_id and created.outs["key_size"] == 2048
    again = provider.read(created.id, created.outs)
    assert again.outs == created.outs
    assert provider.diff(created.id, created.outs, {"kek_id": kek_id}).changes is False
    signing = sdk(premium).create_rsa_key(f"notkek-{secrets.token_hex(3)}", size=2048, hardware_protected=True,
                                          key_operations=["sign"])
    vault.clear_kek_cache()
    with pytest.raises(KekError, match="exactly \\['import'\\]"):
        provider.create({"kek_id": signing.id})
    assert [f.property for f in provider.check({}, {"kek_id": kek_id.rsplit("/", 1)[0]}).failures] == ["kek_id"]
