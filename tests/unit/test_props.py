"""ByokKey ``check`` and the typed props: offline validation, derived facts, unknowns, preview without key."""

from __future__ import annotations

import copy
import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import pem_armour
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pulumi.output import Unknown

from byok_component import props as P
from byok_component.blob import TransferBlob
from byok_component.errors import InputError
from byok_component.keys import generate_private_key, load_target_key, private_key_pem
from byok_component.provider import ByokKeyProvider
from byok_component.wrap import wrap

VAULT = "https://127.0.0.1:8443"
KEK_ID = f"{VAULT}/keys/kek/{'0123456789abcdef' * 2}"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def ec_key(keydir: Path) -> dict[str, Any]:
    key = generate_private_key("EC", curve="P-256")
    (keydir / "ec.pem").write_bytes(private_key_pem(key))
    (keydir / "ec.der").write_bytes(key.private_bytes(serialization.Encoding.DER,
                                                      serialization.PrivateFormat.TraditionalOpenSSL,
                                                      serialization.NoEncryption()))
    (keydir / "ec-enc.pem").write_bytes(private_key_pem(key, PASSWORD.encode()))
    (keydir / "ec.pub.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    info = load_target_key(private_key_pem(key)).public
    return {"key": key, "pem": str(keydir / "ec.pem"), "der": str(keydir / "ec.der"),
            "enc": str(keydir / "ec-enc.pem"), "pub": str(keydir / "ec.pub.pem"), "info": info}


@pytest.fixture(scope="module")
def rsa_key(keydir: Path) -> dict[str, Any]:
    key = generate_private_key("RSA", size=2048)
    (keydir / "rsa.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                                       serialization.NoEncryption()))
    (keydir / "rsa.pub.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return {"key": key, "pem": str(keydir / "rsa.pem"), "pub": str(keydir / "rsa.pub.pem"),
            "info": load_target_key(private_key_pem(key)).public}


@pytest.fixture(scope="module")
def kek() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def base(**extra: Any) -> dict[str, Any]:
    return {"vault_url": VAULT, "key_name": "k1", "kek_id": KEK_ID, **extra}


def failures(news: dict[str, Any]) -> dict[str, str]:
    return dict(P.check({}, news).failures)


# --- the happy path and derived facts ------------------------------------------------------------------
def test_check_adds_fingerprint_and_derived_facts(ec_key: dict[str, Any]) -> None:
    result = P.check({}, base(key_file=ec_key["pem"], vault_url=VAULT + "/"))
    assert result.failures == []
    inputs = result.inputs
    assert inputs["fingerprint"] == ec_key["info"].fingerprint
    assert (inputs["key_type"], inputs["key_size"], inputs["curve"]) == ("EC", 256, "P-256")
    assert inputs["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert inputs["vault_url"] == VAULT  # normalised
    assert inputs["key_ops"] == ["sign", "verify"]  # every op an EC key can do, when none is declared
    assert (inputs["enabled"], inputs["tags"], inputs["purge_on_delete"], inputs["adopt_existing"]) == (
        True, {}, False, False)
    assert "not_before" not in inputs and "expires_on" not in inputs


def test_same_material_in_other_encodings_and_paths_has_one_fingerprint(ec_key: dict[str, Any]) -> None:
    prints = {P.check({}, base(key_file=ec_key[k], key_password=PASSWORD if k == "enc" else None))
              .inputs["fingerprint"] for k in ("pem", "der", "enc")}
    prints.add(P.check({}, base(key_file="/nowhere/ec.pem", public_key_file=ec_key["pub"])).inputs["fingerprint"])
    assert prints == {ec_key["info"].fingerprint}


def test_rsa_pkcs1_pem(rsa_key: dict[str, Any]) -> None:
    inputs = P.check({}, base(key_file=rsa_key["pem"])).inputs
    assert (inputs["key_type"], inputs["key_size"]) == ("RSA", 2048)
    assert "curve" not in inputs
    assert inputs["key_ops"] == ["decrypt", "encrypt", "sign", "unwrapKey", "verify", "wrapKey"]


def test_declared_type_and_curve_are_normalised(ec_key: dict[str, Any]) -> None:
    result = P.check({}, base(key_file=ec_key["pem"], key_type="ec-hsm", curve="p-256",
                              key_ops=["Verify", "sign", "sign"], tags={"b": "2", "a": "1"},
                              not_before="2027-01-01T01:00:00.25+01:00", expires_on="2028-01-01T00:00:00z"))
    assert result.failures == []
    inputs = result.inputs
    assert (inputs["key_type"], inputs["curve"], inputs["key_ops"]) == ("EC", "P-256", ["sign", "verify"])
    assert (inputs["not_before"], inputs["expires_on"]) == ("2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z")
    assert list(inputs["tags"]) == ["a", "b"]


def test_raw_aes_key_is_oct(keydir: Path) -> None:
    path = keydir / "aes.bin"
    path.write_bytes(secrets.token_bytes(32))
    inputs = P.check({}, base(key_file=str(path))).inputs
    assert (inputs["key_type"], inputs["key_size"]) == ("oct", 256)
    assert inputs["key_ops"] == ["decrypt", "encrypt", "unwrapKey", "wrapKey"]
    assert "public_key_pem" not in inputs and "curve" not in inputs


def test_check_never_mutates_its_arguments(ec_key: dict[str, Any]) -> None:
    news = base(key_file=ec_key["pem"], tags={"a": "1"}, key_ops=["verify", "sign"], key_password=None)
    olds = base(key_file=ec_key["pem"])
    snapshot = copy.deepcopy((olds, news))
    P.check(olds, news)
    assert (olds, news) == snapshot


# --- the check failures, one by one --------------------------------------------------------------------------
@pytest.mark.parametrize(("extra", "prop", "words"), [
    ({"key_name": "bad_name"}, "key_name", "1-127"),
    ({"key_name": "x" * 128}, "key_name", "1-127"),
    ({"key_name": None}, "key_name", "required"),
    ({"vault_url": "http://127.0.0.1:8443"}, "vault_url", "https"),
    ({"vault_url": "https://example.com"}, "vault_url", "not a Key Vault"),
    ({"kek_id": f"{VAULT}/keys/kek"}, "kek_id", "version"),
    ({"kek_id": "https://other.vault.azure.net/keys/kek/" + "a" * 32}, "kek_id", "same vault"),
    ({"key_name": "kek"}, "key_name", "KEK's name"),
    ({"key_name": "KEK"}, "key_name", "KEK's name"),
    ({"key_type": "DSA"}, "key_type", "RSA, EC or oct"),
    ({"key_type": "RSA"}, "key_type", "EC key"),
    ({"curve": "P-384"}, "curve", "P-256"),
    ({"curve": "P-999"}, "curve", "must be one of"),
    ({"key_ops": ["encrypt"]}, "key_ops", "not valid for an EC key"),
    ({"key_ops": ["import"]}, "key_ops", "Key Exchange Key"),
    ({"key_ops": ["export"]}, "key_ops", "release policy"),
    ({"key_ops": ["fly"]}, "key_ops", "unknown operation"),
    ({"key_ops": []}, "key_ops", "at least one"),
    ({"tags": {f"t{i}": "v" for i in range(16)}}, "tags", "at most 15"),
    ({"tags": {"n": 1.0}}, "tags", "string value"),
    ({"tags": {"n": "x" * 257}}, "tags", "256"),
    ({"not_before": "tomorrow"}, "not_before", "RFC 3339"),
    ({"expires_on": "2027-01-01T00:00:00"}, "expires_on", "RFC 3339"),
    ({"not_before": "2028-01-01T00:00:00Z", "expires_on": "2027-01-01T00:00:00Z"}, "not_before", "before"),
    ({"enabled": "yes"}, "enabled", "true or false"),
    ({"purge_on_delete": 1.0}, "purge_on_delete", "true or false"),
])
def test_each_bad_input_is_named(ec_key: dict[str, Any], extra: dict[str, Any], prop: str, words: str) -> None:
    found = failures(base(key_file=ec_key["pem"], **extra))
    assert prop in found, found
    assert words in found[prop]


def test_material_failures(ec_key: dict[str, Any], keydir: Path) -> None:
    assert "file not found" in failures(base(key_file=str(keydir / "missing.pem")))["key_file"]
    assert "directory" in failures(base(key_file=str(keydir)))["key_file"]
    assert "wrong password" in failures(base(key_file=ec_key["enc"], key_password="not the password!"))[
        "key_password"]
    assert "no password" in failures(base(key_file=ec_key["enc"]))["key_password"]
    assert "not encrypted" in failures(base(key_file=ec_key["pem"], key_password=PASSWORD))["key_password"]
    assert "give key_file" in failures(base())["key_file"]
    garbage = keydir / "garbage.pem"
    garbage.write_bytes(pem_armour(b"nope"))
    assert "key_file" in failures(base(key_file=str(garbage)))
    public_only = failures(base(key_file=ec_key["pub"]))
    assert "public key" in public_only["key_file"]


@pytest.mark.parametrize("make", [
    lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
    lambda: ec.generate_private_key(ec.SECP192R1()),
], ids=["rsa-1024", "secp192r1"])
def test_unsupported_sizes_and_curves(keydir: Path, make: Any) -> None:
    path = keydir / f"unsupported-{secrets.token_hex(4)}.pem"
    path.write_bytes(private_key_pem(make()))
    reason = failures(base(key_file=str(path)))["key_file"]
    assert "not supported" in reason


def test_failure_reasons_never_hold_the_password(ec_key: dict[str, Any]) -> None:
    wrong = "a-wrong-password-" + secrets.token_hex(8)
    result = P.check({}, base(key_file=ec_key["enc"], key_password=wrong))
    assert result.failures and all(wrong not in reason for _, reason in result.failures)


# --- previews without the private key --------------------------------------------------------------------------
def test_public_key_file_alone_is_enough_for_a_preview(ec_key: dict[str, Any]) -> None:
    result = P.check({}, base(key_file="/hsm/only/on/the/release/runner.pem", key_password="whatever-it-is-here",
                              public_key_file=ec_key["pub"]))
    assert result.failures == []
    assert result.inputs["fingerprint"] == ec_key["info"].fingerprint


def test_public_key_file_must_match_key_file_when_both_are_there(ec_key: dict[str, Any],
                                                                 rsa_key: dict[str, Any]) -> None:
    assert P.check({}, base(key_file=ec_key["pem"], public_key_file=ec_key["pub"])).failures == []
    found = failures(base(key_file=ec_key["pem"], public_key_file=rsa_key["pub"]))
    assert "does not match key_file" in found["public_key_file"]


# --- unknown values (previews) -----------------------------------------------------------------------------------
@pytest.mark.parametrize("unknown", [Unknown(), P.UNKNOWN_WIRE], ids=["Unknown", "wire-sentinel"])
def test_unknown_material_leaves_derived_facts_unknown(ec_key: dict[str, Any], unknown: Any) -> None:
    result = P.check({}, base(key_file=unknown))
    assert result.failures == []
    for name in ("fingerprint", "key_type", "key_size", "key_ops"):
        assert P.is_unknown(result.inputs[name]), name


def test_unknown_vault_url_skips_the_same_vault_check(ec_key: dict[str, Any]) -> None:
    result = P.check({}, base(key_file=ec_key["pem"], vault_url=Unknown(),
                              kek_id="https://other.vault.azure.net/keys/kek/" + "a" * 32))
    assert result.failures == []
    assert P.is_unknown(result.inputs["vault_url"])
    assert result.inputs["fingerprint"] == ec_key["info"].fingerprint


def test_unknown_password_with_public_key_file_still_fingerprints(ec_key: dict[str, Any]) -> None:
    result = P.check({}, base(key_file=ec_key["enc"], key_password=Unknown(), public_key_file=ec_key["pub"]))
    assert result.failures == []
    assert result.inputs["fingerprint"] == ec_key["info"].fingerprint


def test_unknown_tags_ops_and_dates_pass_through(ec_key: dict[str, Any]) -> None:
    result = P.check({}, base(key_file=ec_key["pem"], tags={"a": Unknown()}, key_ops=Unknown(),
                              not_before=Unknown(), key_name=Unknown(), kek_id=Unknown()))
    assert result.failures == []
    assert P.has_unknown(result.inputs["tags"]) and P.is_unknown(result.inputs["key_ops"])


# --- wrapped elsewhere ----------------------------------------------------------------------------------------------
def test_wrapped_key_file_raw_or_byok_with_public_key_file(ec_key: dict[str, Any], kek: Any, keydir: Path) -> None:
    target = load_target_key(private_key_pem(ec_key["key"]))
    ciphertext = wrap(kek.public_key(), target.wrapping_plaintext())
    (keydir / "ec.wrapped").write_bytes(ciphertext)
    (keydir / "ec.byok").write_bytes(TransferBlob.build(KEK_ID, ciphertext).to_json())
    for name in ("ec.wrapped", "ec.byok"):
        result = P.check({}, base(wrapped_key_file=str(keydir / name), public_key_file=ec_key["pub"]))
        assert result.failures == []
        assert result.inputs["fingerprint"] == ec_key["info"].fingerprint
    other_kek = f"{VAULT}/keys/kek/{'f' * 32}"
    found = failures(base(kek_id=other_kek, wrapped_key_file=str(keydir / "ec.byok"), public_key_file=ec_key["pub"]))
    assert "wrapped for KEK" in found["wrapped_key_file"]
    assert "required with wrapped_key_file" in failures(base(wrapped_key_file=str(keydir / "ec.wrapped")))[
        "public_key_file"]
    both = failures(base(key_file=ec_key["pem"], wrapped_key_file=str(keydir / "ec.wrapped")))
    assert "not both" in both["wrapped_key_file"]
    with_password = failures(base(wrapped_key_file=str(keydir / "ec.wrapped"), public_key_file=ec_key["pub"],
                                  key_password=PASSWORD))
    assert "only to key_file" in with_password["key_password"]
    (keydir / "short.wrapped").write_bytes(b"\x01" * 100)
    assert "CKM_RSA_AES_KEY_WRAP" in failures(base(wrapped_key_file=str(keydir / "short.wrapped"),
                                                   public_key_file=ec_key["pub"]))["wrapped_key_file"]


def test_raw_ciphertext_that_starts_like_json_is_still_raw(kek: Any, keydir: Path) -> None:
    """About 1 raw ciphertext in 200 starts with "{" (or whitespace and "{"); it is not a .byok file."""
    ciphertext = wrap(kek.public_key(), secrets.token_bytes(32))
    for start in (b"{", b" {", b"\n{"):
        odd = start + ciphertext[len(start):]
        if odd.isascii():  # pragma: no cover - astronomically unlikely
            continue
        (keydir / "odd.wrapped").write_bytes(odd)
        result = P.check({}, base(wrapped_key_file=str(keydir / "odd.wrapped"), key_type="oct"))
        assert result.failures == []
        assert (result.inputs["key_type"], result.inputs["key_size"]) == ("oct", 256)


def test_wrapped_aes_key_is_identified_by_its_ciphertext(kek: Any, keydir: Path) -> None:
    ciphertext = wrap(kek.public_key(), secrets.token_bytes(32))
    assert len(ciphertext) == 256 + 40
    (keydir / "aes.wrapped").write_bytes(ciphertext)
    (keydir / "aes.byok").write_bytes(TransferBlob.build(KEK_ID, ciphertext).to_json())
    prints = set()
    for name in ("aes.wrapped", "aes.byok"):
        result = P.check({}, base(wrapped_key_file=str(keydir / name), key_type="oct"))
        assert result.failures == []
        assert (result.inputs["key_type"], result.inputs["key_size"]) == ("oct", 256)
        prints.add(result.inputs["fingerprint"])
    assert len(prints) == 1 and prints.pop().startswith(P.WRAPPED_FINGERPRINT_PREFIX)
    found = failures(base(wrapped_key_file=str(keydir / "aes.wrapped"), key_type="oct",
                          public_key_file=str(keydir / "aes.wrapped")))
    assert "no public key" in found["public_key_file"]


# --- typed props -------------------------------------------------------------------------------------------------------
def test_key_props_from_checked_inputs(ec_key: dict[str, Any]) -> None:
    checked = P.check({}, base(key_file=ec_key["enc"], key_password=PASSWORD, tags={"a": "1"},
                               expires_on="2030-01-01T00:00:00Z")).inputs
    p = P.KeyProps.from_inputs({**checked, "key_size": 256.0})  # numbers arrive as floats
    assert p.id == f"{VAULT}/keys/k1"
    assert PASSWORD not in repr(p)
    echo = p.echo()
    assert "key_password" not in echo
    assert echo["expires_on"] == "2030-01-01T00:00:00Z"
    material = P.load_material(p)
    assert material.public.fingerprint == ec_key["info"].fingerprint
    assert "Material(" in repr(material) and "target" not in repr(material)
    with pytest.raises(InputError, match="key_name"):
        P.KeyProps.from_inputs({**checked, "key_name": "no spaces allowed"})


def test_load_material_refuses_a_key_file_that_differs_from_public_key_file(ec_key: dict[str, Any],
                                                                            rsa_key: dict[str, Any]) -> None:
    checked = P.check({}, base(key_file="/not/yet.pem", public_key_file=ec_key["pub"])).inputs
    p = P.KeyProps.from_inputs({**checked, "key_file": rsa_key["pem"]})
    with pytest.raises(InputError, match="public_key_file: does not match key_file"):
        P.load_material(p)


def test_provider_check_returns_check_failures(ec_key: dict[str, Any]) -> None:
    result = ByokKeyProvider().check({}, base(key_file=ec_key["pem"], key_name="bad name", tags={"n": 1.0}))
    assert sorted(f.property for f in result.failures) == ["key_name", "tags"]
    assert result.inputs["fingerprint"] == ec_key["info"].fingerprint


# --- issue 12: AES key files as text, key names in full ---------------------------------------------------------
def test_aes_key_file_as_text_needs_key_encoding(keydir: Path) -> None:
    key = secrets.token_bytes(16)
    hex_file = keydir / "aes.hex"
    hex_file.write_bytes(key.hex().encode() + b"\n")  # `openssl rand -hex 16 > aes.hex`
    found = failures(base(key_file=str(hex_file)))
    assert "hex of a 128-bit AES key" in found["key_file"] and "key_encoding" in found["key_file"]
    assert key.hex() not in found["key_file"]
    result = P.check({}, base(key_file=str(hex_file), key_encoding="HEX"))
    assert result.failures == []
    raw_jwk_print = load_target_key(key, kty="oct").public.fingerprint
    assert (result.inputs["key_type"], result.inputs["key_size"], result.inputs["fingerprint"],
            result.inputs["key_encoding"]) == ("oct", 128, raw_jwk_print, "hex")
    p = P.KeyProps.from_inputs(result.inputs)
    assert (p.key_encoding, P.load_material(p).public.fingerprint, p.echo()["key_encoding"]) == (
        "hex", raw_jwk_print, "hex")
    assert "must be one of raw, hex, base64" in failures(base(key_file=str(hex_file), key_encoding="b64"))[
        "key_encoding"]
    assert "AES (oct) key files only" in failures(base(key_file=str(hex_file), key_encoding="hex",
                                                       key_type="RSA"))["key_encoding"]


def test_key_encoding_is_refused_with_wrapped_key_file(kek: Any, keydir: Path) -> None:
    (keydir / "enc.wrapped").write_bytes(wrap(kek.public_key(), secrets.token_bytes(32)))
    found = failures(base(wrapped_key_file=str(keydir / "enc.wrapped"), key_type="oct", key_encoding="raw"))
    assert "only to key_file" in found["key_encoding"]


def test_key_names_are_matched_in_full(ec_key: dict[str, Any]) -> None:
    for bad in ("k1\n", "k1\r\n", "\nk1"):
        assert "key_name" in failures(base(key_file=ec_key["pem"], key_name=bad))


def test_create_path_tests_rsa_primes_previews_do_not(keydir: Path) -> None:
    import math
    small = [generate_private_key("RSA", size=2048).private_numbers() for _ in range(2)]
    while True:  # p = p1*p2 (composite, 2048 bits), q prime: the cheap relations hold
        p, q = small[0].p * small[1].p, small[0].q
        if (p * q).bit_length() in (3072,):
            break
        small[1] = generate_private_key("RSA", size=2048).private_numbers()
    lam = math.lcm(p - 1, q - 1)
    d = pow(65537, -1, lam)
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p),
                                    rsa.RSAPublicNumbers(65537, p * q))
    path = keydir / "composite.pem"
    path.write_bytes(private_key_pem(numbers.private_key(unsafe_skip_rsa_key_validation=True)))
    result = P.check({}, base(key_file=str(path)))
    assert result.failures == []  # previews stay cheap
    with pytest.raises(InputError, match="key_file: .*p or q is not prime"):
        P.load_material(P.KeyProps.from_inputs(result.inputs))
