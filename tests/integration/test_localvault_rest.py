"""The local vault's Key Vault REST surface, through the real azure-keyvault-keys SDK over HTTPS."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceExistsError, \
    ResourceNotFoundError
from azure.keyvault.keys import JsonWebKey, KeyClient
from azure.keyvault.keys.crypto import EncryptionAlgorithm, KeyWrapAlgorithm, \
    SignatureAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from byok_component.keys import b64url
from tests.conftest import ec_key, rsa_key

VERSION = re.compile(r"^[0-9a-f]{32}$")
PRIVATE = {"d", "p", "q", "dp", "dq", "qi", "k"}


@pytest.fixture
def crypto_client(crypto_client_factory):
    return crypto_client_factory


def public_of(key) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    jwk = key.key
    if jwk.n:
        return rsa.RSAPublicNumbers(int.from_bytes(jwk.e, "big"), int.from_bytes(jwk.n, "big")).public_key()
    curves = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1, "P-256K": ec.SECP256K1}
    return ec.EllipticCurvePublicNumbers(int.from_bytes(jwk.x, "big"), int.from_bytes(jwk.y, "big"),
                                         curves[str(jwk.crv.value if hasattr(jwk.crv, "value") else jwk.crv)]()
                                         ).public_key()


# --- create, get, versions, list -----------------------------------------------------------------
def test_create_kek_and_key_bundle_shape(local_vault, key_client: KeyClient, vault_http, unique_name) -> None:
    name = unique_name("kek")
    kek = key_client.create_rsa_key(name, size=2048, hardware_protected=True, key_operations=["import"])
    assert kek.id.startswith(f"{local_vault.vault_url}/keys/{name}/")
    assert VERSION.match(kek.properties.version)
    assert kek.key_type == "RSA-HSM" and kek.key_operations == ["import"]
    status, _, body = vault_http(local_vault, "GET", f"/keys/{name}")
    assert status == 200
    assert set(body) == {"key", "attributes"}  # no tags given: no tags member, as Azure
    assert set(body["key"]) == {"kid", "kty", "key_ops", "n", "e"}
    attributes = body["attributes"]
    assert attributes["enabled"] is True and attributes["recoveryLevel"] == "Recoverable+Purgeable"
    assert attributes["recoverableDays"] == 90 and attributes["created"] == attributes["updated"]
    assert len(body["key"]["n"]) == 342  # 256 bytes as unpadded base64url


@pytest.mark.parametrize("kind,kwargs,kty", [
    ("rsa", {"size": 3072}, "RSA"),
    ("rsa", {"size": 2048, "hardware_protected": True}, "RSA-HSM"),
    ("ec", {"curve": "P-384"}, "EC"),
    ("ec", {"curve": "P-256K", "hardware_protected": True}, "EC-HSM"),
])
def test_create_key_types(key_client: KeyClient, unique_name, kind, kwargs, kty) -> None:
    create = key_client.create_rsa_key if kind == "rsa" else key_client.create_ec_key
    key = create(unique_name(kind), **kwargs)
    assert key.key_type == kty
    if kind == "rsa":
        assert key.key_operations == ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]
        assert public_of(key).key_size == kwargs["size"]
    else:
        assert key.key_operations == ["sign", "verify"]
        assert key.key.crv == kwargs["curve"]


def test_get_latest_by_version_and_trailing_slash(local_vault, key_client: KeyClient, vault_http,
                                                   unique_name) -> None:
    name = unique_name("v")
    first = key_client.create_ec_key(name, curve="P-256", tags={"gen": "1"})
    second = key_client.create_ec_key(name, curve="P-256", tags={"gen": "2"})
    assert first.properties.version != second.properties.version
    assert key_client.get_key(name).id == second.id
    assert key_client.get_key(name, first.properties.version).id == first.id
    assert key_client.get_key(name, first.properties.version).properties.tags == {"gen": "1"}
    status, _, body = vault_http(local_vault, "GET", f"/keys/{name}/")
    assert status == 200 and body["key"]["kid"] == second.id
    versions = sorted(p.version for p in key_client.list_properties_of_key_versions(name))
    assert versions == sorted([first.properties.version, second.properties.version])
    with pytest.raises(ResourceNotFoundError, match="KeyNotFound"):
        key_client.get_key(name, "0" * 32)
    with pytest.raises(ResourceNotFoundError):
        key_client.get_key(unique_name("absent"))


def test_names_are_case_insensitive_and_keep_their_first_spelling(key_client: KeyClient, unique_name) -> None:
    name = unique_name("Mixed")
    key_client.create_ec_key(name)
    again = key_client.create_ec_key(name.lower())
    assert again.name == name
    assert len(list(key_client.list_properties_of_key_versions(name.upper()))) == 2


def test_list_keys_pages_with_next_link(local_vault, key_client: KeyClient, vault_http, unique_name) -> None:
    names = {unique_name("page") for _ in range(3)}
    for name in names:
        key_client.create_ec_key(name)
    listed = {p.name for p in key_client.list_properties_of_keys(max_page_size=2)}
    assert names <= listed
    status, _, body = vault_http(local_vault, "GET", "/keys?maxresults=1")
    assert status == 200 and len(body["value"]) == 1 and "$skiptoken=1" in body["nextLink"]
    assert body["value"][0]["kid"].count("/") == 4  # unversioned kids in the key list
    status, _, body = vault_http(local_vault, "GET", "/keys?maxresults=26")
    assert status == 400 and body["error"]["code"] == "BadParameter"


def test_update_properties(key_client: KeyClient, unique_name) -> None:
    name = unique_name("upd")
    key = key_client.create_rsa_key(name, size=2048)
    nbf = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    exp = dt.datetime(2031, 1, 1, tzinfo=dt.timezone.utc)
    updated = key_client.update_key_properties(name, enabled=False, not_before=nbf, expires_on=exp,
                                               key_operations=["sign", "verify"], tags={"env": "test"})
    assert updated.properties.version == key.properties.version
    assert updated.properties.enabled is False
    assert updated.properties.not_before == nbf and updated.properties.expires_on == exp
    assert updated.key_operations == ["sign", "verify"] and updated.properties.tags == {"env": "test"}
    by_version = key_client.update_key_properties(name, key.properties.version, enabled=True)
    assert by_version.properties.enabled is True and by_version.properties.tags == {"env": "test"}
    assert key_client.get_key(name).properties.updated_on >= key.properties.created_on
    with pytest.raises(HttpResponseError, match="nbf"):
        key_client.update_key_properties(name, expires_on=dt.datetime(2029, 1, 1, tzinfo=dt.timezone.utc))


@pytest.mark.parametrize("tags,expected", [
    ({f"t{i}": "v" for i in range(16)}, "at most 15"),
    ({"n" * 257: "v"}, "1-256"),
    ({"n": "v" * 257}, "longer than 256"),
    ({"n": 1}, "string value"),
])
def test_tag_limits(local_vault, vault_http, unique_name, tags, expected) -> None:
    name = unique_name("tags")
    status, _, body = vault_http(local_vault, "POST", f"/keys/{name}/create", {"kty": "EC", "tags": tags})
    assert status == 400 and expected in body["error"]["message"]
    ok = {f"t{i}": "v" * 256 for i in range(15)}
    assert vault_http(local_vault, "POST", f"/keys/{name}/create", {"kty": "EC", "tags": ok})[0] == 200
    status, _, body = vault_http(local_vault, "PATCH", f"/keys/{name}", {"tags": tags})
    assert status == 400 and expected in body["error"]["message"]


def test_longest_name_is_accepted(key_client: KeyClient) -> None:
    name = "a-" + "Z9" * 62 + "b"
    assert len(name) == 127 and key_client.create_ec_key(name).name == name


# --- soft delete, recover, purge -----------------------------------------------------------------
def test_soft_delete_conflict_recover_purge(local_vault, key_client: KeyClient, vault_http, unique_name) -> None:
    name = unique_name("del")
    kept = key_client.create_ec_key(name)
    key_client.create_ec_key(name)
    deleted = key_client.begin_delete_key(name).result()
    assert deleted.recovery_id == f"{local_vault.vault_url}/deletedkeys/{name}"
    assert deleted.scheduled_purge_date - deleted.deleted_date == dt.timedelta(days=90)
    assert name in {d.name for d in key_client.list_deleted_keys()}
    assert key_client.get_deleted_key(name).name == name
    with pytest.raises(ResourceNotFoundError):
        key_client.get_key(name)
    with pytest.raises(ResourceExistsError) as info:
        key_client.create_ec_key(name)
    assert info.value.error.code == "Conflict"
    assert info.value.error.innererror["code"] == "ObjectIsDeletedButRecoverable"
    status, _, body = vault_http(local_vault, "PUT", f"/keys/{name}", {"key": {"kty": "EC", "crv": "P-256"}})
    assert status == 409 and body["error"]["innererror"]["code"] == "ObjectIsDeletedButRecoverable"
    with pytest.raises(ResourceNotFoundError):
        key_client.begin_delete_key(name)  # already deleted

    poller = key_client.begin_recover_deleted_key(name)
    poller.wait()
    recovered = poller.result()
    assert recovered.name == name and len(list(key_client.list_properties_of_key_versions(name))) == 2
    assert key_client.get_key(name, kept.properties.version).id == kept.id
    with pytest.raises(ResourceNotFoundError):
        key_client.purge_deleted_key(name)  # not deleted: nothing to purge

    key_client.begin_delete_key(name).wait()
    key_client.purge_deleted_key(name)
    status, _, _ = vault_http(local_vault, "DELETE", f"/deletedkeys/{name}")
    assert status == 404
    with pytest.raises(ResourceNotFoundError):
        key_client.get_deleted_key(name)
    assert key_client.create_ec_key(name).name == name  # a purged name is free again


def test_purge_answers_204(local_vault, key_client: KeyClient, vault_http, unique_name) -> None:
    name = unique_name("p204")
    key_client.create_ec_key(name)
    key_client.begin_delete_key(name).wait()
    status, headers, body = vault_http(local_vault, "DELETE", f"/deletedkeys/{name}")
    assert status == 204 and body is None and headers["content-length"] == "0"


# --- cryptographic operations --------------------------------------------------------------------
_SIGN_CASES = [
    ("RS256", 2048, None, hashes.SHA256), ("RS384", 2048, None, hashes.SHA384), ("RS512", 2048, None, hashes.SHA512),
    ("PS256", 2048, None, hashes.SHA256), ("PS512", 2048, None, hashes.SHA512),
    ("ES256", None, "P-256", hashes.SHA256), ("ES384", None, "P-384", hashes.SHA384),
    ("ES512", None, "P-521", hashes.SHA512), ("ES256K", None, "P-256K", hashes.SHA256),
]


@pytest.mark.parametrize("alg,size,curve,hash_cls", _SIGN_CASES, ids=[c[0] for c in _SIGN_CASES])
def test_sign_verifies_with_the_public_key(crypto_client, local_vault, key_client: KeyClient, unique_name, alg,
                                           size, curve, hash_cls) -> None:
    key = (key_client.create_rsa_key(unique_name("s"), size=size) if size
           else key_client.create_ec_key(unique_name("s"), curve=curve))
    digest = hashlib.new(hash_cls.name, b"proof of possession").digest()
    client = crypto_client(local_vault, key.id)
    signature = client.sign(SignatureAlgorithm(alg), digest).signature
    public = public_of(key)
    if isinstance(public, rsa.RSAPublicKey):
        pad = (padding.PSS(padding.MGF1(hash_cls()), hash_cls().digest_size) if alg.startswith("PS")
               else padding.PKCS1v15())
        public.verify(signature, digest, pad, utils.Prehashed(hash_cls()))
    else:
        half = len(signature) // 2
        der = utils.encode_dss_signature(int.from_bytes(signature[:half], "big"),
                                         int.from_bytes(signature[half:], "big"))
        public.verify(der, digest, ec.ECDSA(utils.Prehashed(hash_cls())))
    assert client.verify(SignatureAlgorithm(alg), digest, signature).is_valid


def test_server_side_verify_and_bad_digest(crypto_client, local_vault, key_client: KeyClient, vault_http,
                                           unique_name) -> None:
    name = unique_name("ver")
    key = key_client.create_ec_key(name, curve="P-256")
    digest = hashlib.sha256(b"m").digest()
    signature = crypto_client(local_vault, key.id).sign(SignatureAlgorithm.es256, digest).signature
    path = f"/keys/{name}/{key.properties.version}/verify"
    body = {"alg": "ES256", "digest": b64url(digest), "value": b64url(signature)}
    assert vault_http(local_vault, "POST", path, body)[2] == {"value": True}
    body["digest"] = b64url(hashlib.sha256(b"other").digest())
    assert vault_http(local_vault, "POST", path, body)[2] == {"value": False}
    status, _, error = vault_http(local_vault, "POST", f"/keys/{name}/{key.properties.version}/sign",
                                  {"alg": "ES256", "value": b64url(b"short")})
    assert status == 400 and "digest" in error["error"]["message"]
    status, _, error = vault_http(local_vault, "POST", f"/keys/{name}/{key.properties.version}/sign",
                                  {"alg": "ES384", "value": b64url(hashlib.sha384(b"m").digest())})
    assert status == 400 and "P-384" in error["error"]["message"]


@pytest.mark.parametrize("alg", ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5"])
def test_encrypt_decrypt_wrap_unwrap(crypto_client, local_vault, key_client: KeyClient, vault_http, unique_name,
                                     alg) -> None:
    name = unique_name("enc")
    key = key_client.create_rsa_key(name, size=2048)
    client = crypto_client(local_vault, key.id)
    ciphertext = client.encrypt(EncryptionAlgorithm(alg), b"attack at dawn").ciphertext  # local, public key
    assert client.decrypt(EncryptionAlgorithm(alg), ciphertext).plaintext == b"attack at dawn"
    wrapped = client.wrap_key(KeyWrapAlgorithm(alg), b"\x01" * 32).encrypted_key
    assert client.unwrap_key(KeyWrapAlgorithm(alg), wrapped).key == b"\x01" * 32
    # and the server-side halves, which the SDK did locally above
    path = f"/keys/{name}/{key.properties.version}"
    status, _, body = vault_http(local_vault, "POST", f"{path}/encrypt", {"alg": alg, "value": b64url(b"x")})
    assert status == 200 and body["kid"] == key.id
    assert client.decrypt(EncryptionAlgorithm(alg), _b64(body["value"])).plaintext == b"x"
    status, _, body = vault_http(local_vault, "POST", f"{path}/wrapkey", {"alg": alg, "value": b64url(b"k" * 16)})
    assert client.unwrap_key(KeyWrapAlgorithm(alg), _b64(body["value"])).key == b"k" * 16


def _b64(text: str) -> bytes:
    from byok_component.keys import b64url_decode
    return b64url_decode(text)


def test_key_ops_and_disabled_keys_are_enforced(local_vault, key_client: KeyClient, vault_http,
                                                unique_name) -> None:
    name = unique_name("ops")
    key = key_client.create_rsa_key(name, size=2048, key_operations=["verify"])
    path = f"/keys/{name}/{key.properties.version}/sign"
    digest = b64url(hashlib.sha256(b"m").digest())
    status, _, body = vault_http(local_vault, "POST", path, {"alg": "RS256", "value": digest})
    assert status == 403 and body["error"]["innererror"]["code"] == "KeyOperationForbidden"
    key_client.update_key_properties(name, key_operations=["sign", "verify"], enabled=False)
    status, _, body = vault_http(local_vault, "POST", path, {"alg": "RS256", "value": digest})
    assert status == 403 and body["error"]["innererror"]["code"] == "KeyDisabled"
    assert key_client.get_key(name).properties.enabled is False  # reading a disabled key works
    key_client.update_key_properties(name, enabled=True)
    assert vault_http(local_vault, "POST", path, {"alg": "RS256", "value": digest})[0] == 200


def test_kek_cannot_sign(local_vault, key_client: KeyClient, vault_http, unique_name) -> None:
    name = unique_name("kek")
    kek = key_client.create_rsa_key(name, size=2048, hardware_protected=True, key_operations=["import"])
    status, _, body = vault_http(local_vault, "POST", f"/keys/{name}/{kek.properties.version}/decrypt",
                                 {"alg": "RSA-OAEP", "value": b64url(b"\x00" * 256)})
    assert status == 403 and body["error"]["innererror"]["code"] == "KeyOperationForbidden"


# --- plain JWK import ----------------------------------------------------------------------------
def test_plain_jwk_import_rsa_and_ec(crypto_client, local_vault, key_client: KeyClient, vault_http,
                                     unique_name) -> None:
    private = rsa_key(2048, 7)
    numbers = private.private_numbers()
    jwk = JsonWebKey(kty="RSA", n=_int(numbers.public_numbers.n), e=_int(numbers.public_numbers.e),
                     d=_int(numbers.d), p=_int(numbers.p), q=_int(numbers.q), dp=_int(numbers.dmp1),
                     dq=_int(numbers.dmq1), qi=_int(numbers.iqmp))
    imported = key_client.import_key(unique_name("jwk"), jwk, hardware_protected=True)
    assert imported.key_type == "RSA-HSM"
    assert public_of(imported).public_numbers() == private.public_key().public_numbers()
    digest = hashlib.sha256(b"jwk").digest()
    signature = crypto_client(local_vault, imported.id).sign(SignatureAlgorithm.rs256, digest).signature
    private.public_key().verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))

    ec_private = ec_key("P-384")
    ec_numbers = ec_private.private_numbers()
    ec_jwk = JsonWebKey(kty="EC", crv="P-384", x=_int(ec_numbers.public_numbers.x, 48),
                        y=_int(ec_numbers.public_numbers.y, 48), d=_int(ec_numbers.private_value, 48))
    imported_ec = key_client.import_key(unique_name("jwk"), ec_jwk)
    assert imported_ec.key_type == "EC" and imported_ec.key_operations == ["sign", "verify"]

    status, _, body = vault_http(local_vault, "PUT", f"/keys/{unique_name('jwk')}",
                                 {"key": {"kty": "RSA", "n": b64url(_int(numbers.public_numbers.n)),
                                          "e": b64url(b"\x01\x00\x01"), "d": b64url(b"\x05" * 256)}})
    assert status == 400 and body["error"]["code"] == "BadParameter"
    status, _, body = vault_http(local_vault, "PUT", f"/keys/{unique_name('jwk')}",
                                 {"key": {"kty": "RSA", "n": b64url(_int(numbers.public_numbers.n)),
                                          "e": b64url(b"\x01\x00\x01")}})
    assert status == 400 and "'d'" in body["error"]["message"]


def _int(value: int, length: int | None = None) -> bytes:
    return value.to_bytes(length or (value.bit_length() + 7) // 8, "big")


# --- never a private member ----------------------------------------------------------------------
def test_no_private_member_in_any_response(local_vault, vault_http, unique_name) -> None:
    name = unique_name("priv")
    for kty, extra in (("RSA", {"key_size": 2048}), ("EC", {"crv": "P-256"}), ("RSA-HSM", {"key_size": 2048})):
        status, _, body = vault_http(local_vault, "POST", f"/keys/{name}/create", {"kty": kty, **extra})
        assert status == 200
    responses = [vault_http(local_vault, "GET", f"/keys/{name}")[2],
                 vault_http(local_vault, "GET", f"/keys/{name}/versions")[2],
                 vault_http(local_vault, "GET", "/keys")[2],
                 vault_http(local_vault, "DELETE", f"/keys/{name}")[2],
                 vault_http(local_vault, "GET", f"/deletedkeys/{name}")[2],
                 vault_http(local_vault, "GET", "/deletedkeys")[2],
                 vault_http(local_vault, "POST", f"/deletedkeys/{name}/recover")[2]]

    def walk(node: object) -> set[str]:
        if isinstance(node, dict):
            return set(node) | set().union(*(walk(v) for v in node.values()))
        if isinstance(node, list):
            return set().union(*(walk(v) for v in node)) if node else set()
        return set()

    for response in responses:
        assert not walk(response) & PRIVATE, json.dumps(response)[:200]


# --- authentication ------------------------------------------------------------------------------
def test_challenge_without_token(local_vault, vault_http) -> None:
    status, headers, body = vault_http(local_vault, "GET", "/keys", token=None)
    assert status == 401 and body["error"]["code"] == "Unauthorized"
    assert re.fullmatch(r'Bearer authorization="https://login\.microsoftonline\.com/[0-9a-f-]+", '
                        r'resource="https://vault\.azure\.net"', headers["www-authenticate"])
    # the SDK's first request is bodiless even for a PUT: the challenge comes before any body check
    status, _, _ = vault_http(local_vault, "PUT", "/keys/x", token=None, raw_body=b"")
    assert status == 401


def test_wrong_token_is_refused(local_vault, tmp_path, key_client_factory) -> None:
    bad = tmp_path / "bad-token"
    bad.write_text("not-the-token")
    client = key_client_factory(local_vault, bad)
    with pytest.raises(ClientAuthenticationError) as info:
        client.get_key("anything")
    assert info.value.status_code == 401 and "not-the-token" not in str(info.value)


def test_readonly_token_reads_but_cannot_write(local_vault, key_client: KeyClient, key_client_factory,
                                               vault_http, unique_name) -> None:
    name = unique_name("ro")
    key_client.create_ec_key(name)
    reader = key_client_factory(local_vault, local_vault.readonly_token_file)
    assert reader.get_key(name).name == name
    assert name in {p.name for p in reader.list_properties_of_keys()}
    with pytest.raises(HttpResponseError) as info:
        reader.create_ec_key(unique_name("ro"))
    assert info.value.status_code == 403 and info.value.error.code == "Forbidden"
    for method, path, body in (("PATCH", f"/keys/{name}", {"tags": {}}), ("DELETE", f"/keys/{name}", None),
                               ("PUT", f"/keys/{name}", {"key": {}}), ("POST", f"/deletedkeys/{name}/recover", None),
                               ("POST", f"/keys/{name}//sign", {"alg": "ES256", "value": b64url(bytes(32))})):
        status, _, error = vault_http(local_vault, method, path, body, token="readonly")
        assert status == 403 and error["error"]["innererror"]["code"] == "ForbiddenByRbac", method
    assert key_client.get_key(name).properties.enabled is True


# --- odd requests ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/keys/a..b", "/keys/..%2Fetc", "/keys/a_b", "/keys/" + "a" * 128,
                                  "/keys/%C3%A9", "/deletedkeys/a.b"])
def test_bad_key_names_are_refused(local_vault, vault_http, path) -> None:
    status, _, body = vault_http(local_vault, "GET", path)
    assert status == 400 and body["error"]["code"] == "BadParameter"


def test_unknown_routes_and_unmodelled_operations(local_vault, vault_http) -> None:
    assert vault_http(local_vault, "GET", "/secrets/x")[0] == 404
    assert vault_http(local_vault, "POST", "/keys/x/backup")[0] == 501
    assert vault_http(local_vault, "POST", "/keys/x/create", raw_body=b"{not json")[0] == 400
    assert vault_http(local_vault, "POST", "/keys")[0] == 405
