"""Transfer blob: deterministic JSON, strict parsing, versioned kids."""

from __future__ import annotations

import base64
import json

import pytest

from byok_component.blob import GENERATOR, TransferBlob
from byok_component.errors import BlobError, InputError

KID = "https://contoso.vault.azure.net/keys/mykek/eba63d27e4e34e028839b53fac905621"
CIPHERTEXT = bytes(range(256)) * 2 + bytes(40)


def test_json_is_the_spec_layout_deterministic_and_unpadded() -> None:
    blob = TransferBlob.build(KID, CIPHERTEXT)
    data = blob.to_json()
    assert data == TransferBlob.build(KID, CIPHERTEXT).to_json()
    doc = json.loads(data)
    assert doc == {"schema_version": "1.0.0", "header": {"kid": KID, "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"},
                   "ciphertext": doc["ciphertext"], "generator": GENERATOR}
    assert "=" not in doc["ciphertext"] and "+" not in doc["ciphertext"] and "/" not in doc["ciphertext"]
    assert TransferBlob.parse(data) == blob


@pytest.mark.parametrize("generator", [GENERATOR, "", 'quote" backslash\\ accent\u00e9 control\x01 sep\u2028'])
def test_json_bytes_are_the_sorted_compact_dump(generator: str) -> None:
    """to_json writes the document out directly (fast); it must equal the generic sorted, compact dump."""
    blob = TransferBlob.build(KID, CIPHERTEXT, generator=generator)
    doc = {"schema_version": "1.0.0", "header": {"kid": KID, "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"},
           "ciphertext": base64.urlsafe_b64encode(CIPHERTEXT).rstrip(b"=").decode(), "generator": generator}
    assert blob.to_json() == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    assert TransferBlob.parse(blob.to_json()) == blob


def test_padded_and_unpadded_base64url_both_parse() -> None:
    doc = json.loads(TransferBlob.build(KID, CIPHERTEXT[:-1] + b"\xff").to_json())
    doc["ciphertext"] = base64.urlsafe_b64encode(CIPHERTEXT[:-1] + b"\xff").decode()
    assert TransferBlob.parse(json.dumps(doc).encode()).ciphertext == CIPHERTEXT[:-1] + b"\xff"


@pytest.mark.parametrize("kid", [
    "https://myhsm.managedhsm.azure.net/keys/kek/0123456789abcdef0123456789abcdef",
    "https://127.0.0.1:8443/keys/kek/0123456789abcdef0123456789abcdef",
    "https://localhost:1234/keys/k-1/0123456789abcdef0123456789abcdef",
])
def test_vault_hsm_and_loopback_kids_are_accepted(kid: str) -> None:
    assert TransferBlob.build(kid, CIPHERTEXT).kid == kid


@pytest.mark.parametrize("kid,match", [
    ("https://contoso.vault.azure.net/keys/mykek", "must include the key version"),
    ("http://contoso.vault.azure.net/keys/mykek/eba63d27e4e34e028839b53fac905621", "must use https"),
    ("https://evil.example.com/keys/mykek/eba63d27e4e34e028839b53fac905621", "not a Key Vault"),
    (KID + "?api-version=7.4", "query string"),
    ("https://contoso.vault.azure.net/secrets/mykek/eba63d27e4e34e028839b53fac905621", "must look like"),
    ("https://contoso.vault.azure.net/keys/my_kek/eba63d27e4e34e028839b53fac905621", "1-127 characters"),
    ("https://contoso.vault.azure.net/keys/mykek/nothex", "malformed version"),
    ("", "must be a key identifier"),
])
def test_bad_kids_are_refused(kid: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        TransferBlob.build(kid, CIPHERTEXT)


def _doc(**changes: object) -> bytes:
    doc = json.loads(TransferBlob.build(KID, CIPHERTEXT).to_json())
    for path, value in changes.items():
        if path.startswith("header_"):
            doc["header"][path[7:]] = value
        else:
            doc[path] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize("data,match", [
    (b"{not json", "is not JSON"),
    (b"[1,2]", "not a JSON object"),
    (b"\xff\xfe", "is not JSON"),
    (_doc(schema_version="2.0.0"), "schema_version must be '1.0.0'"),
    (_doc(header_alg="RSA-OAEP"), "header.alg must be 'dir'"),
    (_doc(header_enc="RSA_AES_KEY_WRAP_256"), "header.enc must be 'CKM_RSA_AES_KEY_WRAP'"),
    (_doc(header_kid="https://contoso.vault.azure.net/keys/mykek"), "must include the key version"),
    (_doc(ciphertext="not base64!"), "not base64url"),
    (_doc(ciphertext="AAAA"), "too short"),
    (_doc(ciphertext=12), "no ciphertext string"),
    (_doc(header=None), "no header object"),
    (b" " * 70000, "a transfer blob is a few KB"),
])
def test_malformed_blobs_are_refused(data: bytes, match: str) -> None:
    with pytest.raises(BlobError, match=match):
        TransferBlob.parse(data)


def test_repr_shows_no_ciphertext() -> None:
    assert "AAEC" not in repr(TransferBlob.build(KID, CIPHERTEXT)) and "552 bytes" in repr(
        TransferBlob.build(KID, CIPHERTEXT))
