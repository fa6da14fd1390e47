"""The BYOK transfer blob (.byok, schema 1.0.0): build, strictly parse, deterministic JSON.

Pure. Layout from the BYOK spec §"Key transfer blob" (https://learn.microsoft.com/azure/key-vault/keys/byok-specification).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from .__version__ import __version__
from .errors import BlobError, InputError
from .keys import b64url, b64url_decode
from .kid import KeyId

__all__ = ["TransferBlob", "looks_like_transfer_blob", "SCHEMA_VERSION", "ALG", "ENC", "GENERATOR", "MAX_BLOB_BYTES"]

SCHEMA_VERSION = "1.0.0"
ALG = "dir"  # "the referenced kid is used to directly protect the ciphertext"
ENC = "CKM_RSA_AES_KEY_WRAP"  # the only enc the spec documents for import
GENERATOR = f"byok-component {__version__}"
# A 4096-bit KEK wrapping an RSA-4096 target is ~3 KB of ciphertext; anything near this cap is not a blob.
MAX_BLOB_BYTES = 64 * 1024


def looks_like_transfer_blob(data: bytes) -> bool:
    """Whether ``data`` is a .byok file rather than raw CKM_RSA_AES_KEY_WRAP ciphertext.

    A .byok file is ASCII JSON. Raw ciphertext is random bytes: about 1 in 200 start with "{" (or blanks and
    "{"), but a few hundred random bytes are never all ASCII. The provider (``wrapped_key_file``) and the CLI
    (``byok blob --wrapped``) decide with this one test.
    """
    return data.lstrip().startswith(b"{") and data.isascii()


@dataclass(frozen=True, slots=True)
class TransferBlob:
    """A transfer blob: the KEK's versioned kid and CKM_RSA_AES_KEY_WRAP ciphertext (not secret once wrapped)."""

    kid: str
    ciphertext: bytes
    generator: str = GENERATOR

    @classmethod
    def build(cls, kek_id: str, ciphertext: bytes, *, generator: str = GENERATOR) -> "TransferBlob":
        """Check the kid (must be versioned) and the ciphertext, then make the blob."""
        kid = _checked_kid(kek_id) if isinstance(kek_id, str) else str(KeyId.parse(kek_id, input="kek_id"))
        if len(ciphertext) < 256 + 16:
            raise BlobError(f"ciphertext of {len(ciphertext)} bytes is too short for CKM_RSA_AES_KEY_WRAP "
                            "(at least a 2048-bit RSA part and a 16-byte KWP part)", input="ciphertext")
        return cls(kid, bytes(ciphertext), generator)

    def to_json(self) -> bytes:
        """Deterministic JSON: sorted keys, compact, unpadded base64url ciphertext, trailing newline.

        Byte for byte ``json.dumps(doc, sort_keys=True, separators=(",", ":"))`` of the document, written out
        directly (the members are fixed; base64url needs no escaping): the generic dump cost as much as the
        RSA-OAEP encryption it serialises.
        """
        return (_JSON_HEAD + b64url(self.ciphertext) + '","generator":' + json.dumps(self.generator)
                + _JSON_HEADER + json.dumps(self.kid) + _JSON_TAIL).encode("utf-8")

    @classmethod
    def parse(cls, data: bytes, *, input: str = "byok-file") -> "TransferBlob":  # noqa: A002
        """Strictly parse a .byok file: schema 1.0.0, alg dir, enc CKM_RSA_AES_KEY_WRAP, versioned kid.

        Accepts base64url with or without padding (Cosmian writes none, other tools pad).
        """
        if len(data) > MAX_BLOB_BYTES:
            raise BlobError(f"is {len(data)} bytes; a transfer blob is a few KB", input=input)
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BlobError("is not JSON (expected a BYOK transfer blob)", input=input) from None
        if not isinstance(doc, dict):
            raise BlobError("is not a JSON object", input=input)
        if doc.get("schema_version") != SCHEMA_VERSION:
            raise BlobError(f"schema_version must be {SCHEMA_VERSION!r}, got {_short(doc.get('schema_version'))}",
                            input=input)
        header = doc.get("header")
        if not isinstance(header, dict):
            raise BlobError("has no header object", input=input)
        if header.get("alg") != ALG:
            raise BlobError(f"header.alg must be {ALG!r}, got {_short(header.get('alg'))}", input=input)
        if header.get("enc") != ENC:
            raise BlobError(f"header.enc must be {ENC!r}, got {_short(header.get('enc'))}", input=input)
        try:
            kid = str(KeyId.parse(header.get("kid"), versioned=True, input="header.kid"))
        except InputError as exc:
            raise BlobError(str(exc), input=input) from None
        text = doc.get("ciphertext")
        if not isinstance(text, str) or not text:
            raise BlobError("has no ciphertext string", input=input)
        try:
            ciphertext = b64url_decode(text)
        except (ValueError, TypeError):
            raise BlobError("ciphertext is not base64url", input=input) from None
        if len(ciphertext) < 256 + 16:
            raise BlobError(f"ciphertext is {len(ciphertext)} bytes, too short for CKM_RSA_AES_KEY_WRAP "
                            "(truncated?)", input=input)
        generator = doc.get("generator", "")
        if not isinstance(generator, str):
            raise BlobError("generator must be a string", input=input)
        return cls(kid, ciphertext, generator)

    def __repr__(self) -> str:
        return f"TransferBlob(kid={self.kid!r}, ciphertext=<{len(self.ciphertext)} bytes>, generator={self.generator!r})"


# The document's members in sorted order: ciphertext, generator, header {alg, enc, kid}, schema_version.
_JSON_HEAD = '{"ciphertext":"'
_JSON_HEADER = f',"header":{{"alg":{json.dumps(ALG)},"enc":{json.dumps(ENC)},"kid":'
_JSON_TAIL = f'}},"schema_version":{json.dumps(SCHEMA_VERSION)}}}\n'


@functools.lru_cache(maxsize=256)
def _checked_kid(kek_id: str) -> str:
    """The canonical versioned kid (raises InputError). Cached: every key wrapped for one KEK shares its kid."""
    return str(KeyId.parse(kek_id, versioned=True, input="kek_id"))


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
