"""What a vault of each sku accepts: key types, sizes, curves, key operations, tags, names, attributes.

Pure rules shared by create, import and update. Choices where Azure's behaviour is unconfirmed
(the public docs are silent), each tested in tests/integration/test_localvault_policy.py:

- sku ``standard`` refuses every ``*-HSM`` key type (create and import) with **400 BadParameter**
  "Hardware key operation not allowed on standard vault" (the text is Azure's; the status is not
  documented anywhere we could find).
- sku ``premium`` takes RSA, EC (software) and RSA-HSM, EC-HSM; ``oct``/``oct-HSM`` are refused (AES
  keys exist only in Managed HSM). Sku ``managedhsm`` keeps everything in the "HSM": RSA/EC/oct requests
  are recorded and returned as RSA-HSM/EC-HSM/oct-HSM.
- Key operations must be ones the key type can do (EC: sign, verify; oct: encrypt, decrypt, wrapKey,
  unwrapKey by default, and sign, verify (HMAC) when asked; RSA: all six); ``import`` is only for an RSA-HSM key generated in the vault and excludes
  every other op (the BYOK how-to: "'import' is mutually exclusive with all other key operations");
  ``export`` (key release) is not modelled and refused. Duplicates are dropped, order is kept.
- Tags: at most 15, names and values strings of at most 256 characters (https://learn.microsoft.com/azure/key-vault/keys/about-keys-details).
- ``nbf`` after ``exp`` is refused; ``exportable: true`` and ``release_policy`` are refused (not modelled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

from ..keys import EC_CURVES, RSA_SIZES
from ..kid import KEY_NAME_RE
from .errors import bad_parameter, short_repr

__all__ = [
    "Sku", "SKUS", "KEY_OPS", "OCT_BITS", "check_sku", "stored_kty", "check_key_name", "check_key_ops",
    "default_key_ops", "check_tags", "Attributes", "parse_attributes", "check_rsa_size", "check_curve",
    "check_oct_bits", "refuse_unmodelled", "STANDARD_HSM_MESSAGE",
]

Sku = Literal["premium", "standard", "managedhsm"]
SKUS: tuple[str, ...] = ("premium", "standard", "managedhsm")
KEY_OPS: tuple[str, ...] = ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export")
OCT_BITS: tuple[int, ...] = (128, 192, 256)
_KTYS = ("RSA", "RSA-HSM", "EC", "EC-HSM", "oct", "oct-HSM")
_OPS_BY_BASE: dict[str, tuple[str, ...]] = {
    "RSA": ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"),
    "EC": ("sign", "verify"),
    "oct": ("encrypt", "decrypt", "wrapKey", "unwrapKey"),
}
# Operations a key may be given beyond its defaults: Managed HSM oct keys sign and verify with HMAC
# (HS256/HS384/HS512; "about-keys-details", Key Vault's key types and algorithms page).
_ALLOWED_BY_BASE: dict[str, tuple[str, ...]] = {**_OPS_BY_BASE, "oct": _OPS_BY_BASE["oct"] + ("sign", "verify")}
STANDARD_HSM_MESSAGE = "Hardware key operation not allowed on standard vault"


def check_sku(sku: str) -> Sku:
    if sku not in SKUS:
        raise ValueError(f"sku must be one of {', '.join(SKUS)}, got {sku!r}")
    return sku  # type: ignore[return-value]


def stored_kty(requested: object, sku: Sku, *, hsm: bool = False) -> str:
    """The kty the vault records for a create/import request (``hsm``: the import body's ``Hsm`` flag)."""
    if requested not in _KTYS:
        raise bad_parameter(f"kty {short_repr(requested)} is not a key type (use RSA, RSA-HSM, EC, EC-HSM or oct-HSM)")
    text = str(requested)
    base = text.removesuffix("-HSM")
    in_hsm = text.endswith("-HSM") or hsm or sku == "managedhsm"
    if in_hsm and sku == "standard":
        raise bad_parameter(STANDARD_HSM_MESSAGE)
    if base == "oct" and sku != "managedhsm":
        raise bad_parameter("oct-HSM (AES) keys exist only in Managed HSM (this vault's sku is "
                            f"{sku}; start the local vault with sku managedhsm)")
    return f"{base}-HSM" if in_hsm else base


def check_key_name(name: str) -> str:
    if not KEY_NAME_RE.match(name):
        raise bad_parameter(f"key name {short_repr(name)} is invalid: use 1-127 characters of 0-9, a-z, A-Z and '-'")
    return name


def default_key_ops(kty: str) -> tuple[str, ...]:
    """Every operation the key type can do (what Azure gives a key created or imported without key_ops)."""
    return _OPS_BY_BASE[kty.removesuffix("-HSM")]


def check_key_ops(ops: object, kty: str, *, generated: bool) -> tuple[str, ...]:
    """Validate requested key_ops for a key of stored type ``kty`` (``generated``: made in the vault)."""
    if ops is None:
        return default_key_ops(kty)
    if not isinstance(ops, list) or not all(isinstance(op, str) for op in ops):
        raise bad_parameter("key_ops must be a list of strings")
    unique = tuple(dict.fromkeys(ops))
    for op in unique:
        if op not in KEY_OPS:
            raise bad_parameter(f"key operation {short_repr(op)} is not valid (use {', '.join(KEY_OPS)})")
    if "export" in unique:
        raise bad_parameter("key operation 'export' (key release) is not supported by the local vault")
    if "import" in unique:
        if len(unique) != 1:
            raise bad_parameter("'import' is mutually exclusive with all other key operations")
        if kty != "RSA-HSM":
            raise bad_parameter(f"a key exchange key (key_ops ['import']) must be RSA-HSM, not {kty}")
        if not generated:
            raise bad_parameter("'import' can only be set on a key exchange key generated in the vault, "
                                "not on imported key material")
        return unique
    allowed = _ALLOWED_BY_BASE[kty.removesuffix("-HSM")]
    for op in unique:
        if op not in allowed:
            raise bad_parameter(f"key operation {op!r} is not valid for a {kty} key (use {', '.join(allowed)})")
    return unique


def check_tags(tags: object) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise bad_parameter("tags must be an object of string names and values")
    if len(tags) > 15:
        raise bad_parameter(f"at most 15 tags are allowed, got {len(tags)}")
    for name, value in tags.items():
        if not isinstance(value, str):
            raise bad_parameter(f"tag {short_repr(name)} must have a string value")
        if not name or len(name) > 256:
            raise bad_parameter("tag names must be 1-256 characters")
        if len(value) > 256:
            raise bad_parameter(f"tag {short_repr(name)} has a value longer than 256 characters")
    return dict(tags)


@dataclass(frozen=True, slots=True)
class Attributes:
    """Settable key attributes from a request; ``given`` names those present (``null`` clears nbf/exp)."""

    enabled: bool | None
    nbf: int | None
    exp: int | None
    given: frozenset[str]


def parse_attributes(obj: object) -> Attributes:
    if obj is None:
        return Attributes(None, None, None, frozenset())
    if not isinstance(obj, dict):
        raise bad_parameter("attributes must be an object")
    if obj.get("exportable"):
        raise bad_parameter("exportable keys (key release) are not supported by the local vault")
    enabled = obj.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise bad_parameter("attributes.enabled must be true or false")
    times: dict[str, int | None] = {}
    for field in ("nbf", "exp"):
        value = obj.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise bad_parameter(f"attributes.{field} must be a Unix time in seconds")
        times[field] = value
    nbf, exp = times["nbf"], times["exp"]
    if nbf is not None and exp is not None and nbf > exp:
        raise bad_parameter("attributes.nbf (not before) is after attributes.exp (expires)")
    given = frozenset(k for k in ("enabled", "nbf", "exp") if k in obj)
    return Attributes(enabled, nbf, exp, given)


def refuse_unmodelled(body: Mapping[str, Any]) -> None:
    if body.get("release_policy") is not None:
        raise bad_parameter("release_policy (key release) is not supported by the local vault")


def check_rsa_size(size: object) -> int:
    if size is None:
        return 2048
    if size not in RSA_SIZES or isinstance(size, bool):
        raise bad_parameter(f"key_size {short_repr(size)} is not allowed for RSA (use 2048, 3072 or 4096)")
    return int(size)  # type: ignore[arg-type]


def check_curve(crv: object, *, default: str | None = "P-256") -> str:
    if crv is None and default is not None:
        return default
    if crv not in EC_CURVES:
        raise bad_parameter(f"crv {short_repr(crv)} is not allowed (use P-256, P-384, P-521 or P-256K)")
    return str(crv)


def check_oct_bits(size: object) -> int:
    if size is None:
        return 256
    if size not in OCT_BITS or isinstance(size, bool):
        raise bad_parameter(f"key_size {short_repr(size)} is not allowed for oct-HSM (use 128, 192 or 256)")
    return int(size)  # type: ignore[arg-type]
