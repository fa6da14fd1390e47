"""ByokKey properties: their names, the offline ``check``, the typed view of checked inputs, the pure diff.

Offline and side-effect free: ``check`` (every preview) has ``material`` read the key files the inputs name,
never the network, and it imports neither pulumi nor an Azure SDK. Values the engine does not
know yet (``pulumi.output.Unknown``, or the wire sentinel) are recognised by shape and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

from . import rfc3339
from .errors import ByokError, InputError
from .keys import EC_CURVES, KeyType, PublicKeyInfo
from .kid import KeyId, check_key_name, normalize_vault_url
# Material rules live in .material, unknowns in .unknown; re-exported here for callers that use props alone.
from .keys import AesKeyEncoding
from .material import (MAX_KEY_FILE_BYTES, WRAPPED_FINGERPRINT_PREFIX, Material, agree, key_encoding,
                       load_material, public_material)
from .unknown import UNKNOWN_WIRE, has_unknown, is_unknown
from .ownership import MAX_USER_TAGS, OWNER_OUTPUT, RESERVED_TAGS

__all__ = [
    "INPUTS", "SECRET_INPUTS", "DERIVED", "OUTPUTS", "REPLACE_ON", "NEW_VERSION_ON", "PATCH_ON", "OUTPUT_ONLY",
    "IGNORED", "KEY_OPS_BY_TYPE", "KEY_OPS_ALLOWED", "MAX_TAGS", "MAX_TAG_LENGTH", "MAX_KEY_FILE_BYTES", "UNKNOWN_WIRE",
    "is_unknown", "has_unknown", "check", "Check", "KeyProps", "Material", "load_material", "public_material",
    "diff", "Diff", "key_id", "WRAPPED_FINGERPRINT_PREFIX",
]

# --- the contract: property names --------------------------------------------------------------------------
INPUTS: tuple[str, ...] = (
    "vault_url", "key_name", "kek_id", "key_file", "key_password", "wrapped_key_file", "public_key_file",
    "key_type", "curve", "key_ops", "enabled", "not_before", "expires_on", "tags", "purge_on_delete",
    "adopt_existing", "key_encoding", "pkcs11_uri", "pkcs11_module", "pkcs11_pin",
)
SECRET_INPUTS: tuple[str, ...] = ("key_password", "pkcs11_pin")
# Pulumi's wire encoding of a secret: an object {SECRET_SIG_KEY: SECRET_SIG, "value": ...} (the engine's resource
# signatures, sdk/go/common/resource/sig: Key and Secret). The engine keeps secrets in Check's response.
SECRET_SIG_KEY, SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"
# Added to the checked inputs by ``check`` from the key material (public facts only).
DERIVED: tuple[str, ...] = ("fingerprint", "key_type", "key_size", "curve", "public_key_pem")
# Outputs: every input but the secret ones, the derived facts, and what only the vault knows.
OUTPUTS: tuple[str, ...] = tuple(n for n in INPUTS if n not in SECRET_INPUTS) + (
    "kid", "version", "key_size", "public_key_pem", "fingerprint", OWNER_OUTPUT)

# The diff table (README "ByokKey"): which property changes do what.
REPLACE_ON: tuple[str, ...] = ("vault_url", "key_name")        # another key altogether
NEW_VERSION_ON: tuple[str, ...] = ("fingerprint",)              # other material: import a new version
PATCH_ON: tuple[str, ...] = ("key_ops", "enabled", "not_before", "expires_on", "tags")  # PATCH in place
OUTPUT_ONLY: tuple[str, ...] = ("purge_on_delete",)             # no vault call, but delete reads it from state
IGNORED: tuple[str, ...] = ("kek_id", "key_file", "key_password", "wrapped_key_file", "public_key_file",
                            "adopt_existing", "key_type", "curve", "key_size", "public_key_pem", "key_encoding",
                            "pkcs11_uri", "pkcs11_module", "pkcs11_pin")

# What each target type can do in Key Vault; "import" is for KEKs only and "export" needs a release policy.
KEY_OPS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "RSA": ("decrypt", "encrypt", "sign", "unwrapKey", "verify", "wrapKey"),
    "EC": ("sign", "verify"),
    "oct": ("decrypt", "encrypt", "unwrapKey", "wrapKey"),
}
# ...and what each may be given: Managed HSM oct keys also sign/verify (HMAC HS256/384/512, "about-keys-details").
# The defaults above stay without them: an AES key asked for nothing gets the AES operations only.
KEY_OPS_ALLOWED: dict[str, tuple[str, ...]] = {
    **KEY_OPS_BY_TYPE, "oct": ("decrypt", "encrypt", "sign", "unwrapKey", "verify", "wrapKey")}
_ALL_OPS = {op.lower(): op for op in ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey",
                                      "import", "export")}
MAX_TAGS = MAX_USER_TAGS  # up to 15 tags (Key Vault: about-keys-details), less the provider's reserved ones (ownership.py)
MAX_TAG_LENGTH = 256     # ... names and values up to 256 characters

def key_id(vault_url: str, key_name: str) -> str:
    """The resource id: the unversioned key identifier (stable across new versions)."""
    return f"{vault_url}/keys/{key_name}"


# --- single-property validators (raise InputError naming the property) -------------------------------------
def mark_secrets(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The checked inputs with every secret input (SECRET_INPUTS) marked secret on the wire, by the provider itself:
    the engine would copy the program's secret marks onto Check's answer, but nothing should depend on that."""
    return {k: {SECRET_SIG_KEY: SECRET_SIG, "value": v} if k in SECRET_INPUTS and isinstance(v, str) and v else v
            for k, v in inputs.items()}


def unwrap_secrets(props: Mapping[str, Any]) -> dict[str, Any]:
    """``props`` with secret-marked values as plain values (what a provider without secret support receives)."""
    return {k: v["value"] if isinstance(v, dict) and v.get(SECRET_SIG_KEY) == SECRET_SIG else v
            for k, v in props.items()}


def _str(value: object, prop: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise InputError("is required", input=prop)
        return None
    if not isinstance(value, str):
        raise InputError(f"must be a string, got {type(value).__name__}", input=prop)
    return value


def _bool(value: object, prop: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InputError(f"must be true or false, got {type(value).__name__}", input=prop)
    return value


def _key_type(value: object) -> KeyType | None:
    text = _str(value, "key_type")
    if text is None:
        return None
    base = text.strip()
    if base.upper().endswith("-HSM"):
        base = base[:-4]
    for kty in ("RSA", "EC", "oct"):
        if base.lower() == kty.lower():
            return kty  # type: ignore[return-value]
    raise InputError(f"must be RSA, EC or oct, got {_short(text)}", input="key_type")


def _curve(value: object) -> str | None:
    text = _str(value, "curve")
    if text is None:
        return None
    for name in EC_CURVES:
        if text.strip().upper() == name.upper():
            return name
    raise InputError(f"must be one of {', '.join(EC_CURVES)}, got {_short(text)}", input="curve")


def _key_ops(value: object, kty: str | None) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(op, str) for op in value):
        raise InputError("must be a list of operation names", input="key_ops")
    if not value:
        raise InputError("must list at least one operation (leave it out for every operation the type allows)",
                         input="key_ops")
    ops: set[str] = set()
    for op in value:
        canonical = _ALL_OPS.get(op.strip().lower())
        if canonical is None:
            raise InputError(f"unknown operation {_short(op)} (Key Vault has encrypt, decrypt, sign, verify, "
                             "wrapKey, unwrapKey)", input="key_ops")
        if canonical == "import":
            raise InputError("'import' is only for a Key Exchange Key, not for an imported target key",
                             input="key_ops")
        if canonical == "export":
            raise InputError("'export' needs a key release policy, which ByokKey does not manage", input="key_ops")
        ops.add(canonical)
    if kty is not None:
        allowed = KEY_OPS_ALLOWED[kty]
        bad = sorted(ops - set(allowed))
        if bad:
            raise InputError(f"{', '.join(bad)} not valid for an {kty} key (allowed: {', '.join(allowed)})",
                             input="key_ops")
    return sorted(ops)


def _tags(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError("must be a map of strings to strings", input="tags")
    if len(value) > MAX_TAGS:
        raise InputError(f"has {len(value)} tags; Key Vault allows at most 15 and the provider reserves "
                         f"{len(RESERVED_TAGS)} ({', '.join(RESERVED_TAGS)}), so at most {MAX_TAGS}", input="tags")
    tags: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not name:
            raise InputError("tag names must be non-empty strings", input="tags")
        if name.lower() in RESERVED_TAGS:
            raise InputError(f"tag {_short(name)} is reserved by the provider (it marks which resource owns the "
                             "key); choose another tag name", input="tags")
        if not isinstance(text, str):
            raise InputError(f"tag {_short(name)} must have a string value, got {type(text).__name__}",
                             input="tags")
        if len(name) > MAX_TAG_LENGTH or len(text) > MAX_TAG_LENGTH:
            raise InputError(f"tag {_short(name)}: names and values are at most {MAX_TAG_LENGTH} characters",
                             input="tags")
        tags[name] = text
    return dict(sorted(tags.items()))


def _date(value: object, prop: str) -> datetime | None:
    if value is None or value == "":
        return None
    return rfc3339.parse(value, input=prop)


def _kek_id(value: object, vault_url: str | None) -> str:
    kid = KeyId.parse(_str(value, "kek_id", required=True), versioned=True, input="kek_id")
    if vault_url is not None and kid.vault_url != vault_url:
        raise InputError(f"the KEK must be in the same vault as the key (BYOK spec): {kid.vault_url} is not "
                         f"{vault_url}", input="kek_id")
    return str(kid)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- check -----------------------------------------------------------------------------------------------
@dataclass
class Check:
    """The result of ``check``: the inputs to use (normalised, plus derived facts) and (property, reason) pairs."""

    inputs: dict[str, Any]
    failures: list[tuple[str, str]]


def check(olds: Mapping[str, Any], news: Mapping[str, Any]) -> Check:
    """Validate and normalise ByokKey inputs offline; add ``fingerprint`` and the other derived facts.

    Unknown values (previews) skip the checks that need them and leave what depends on them unknown. The
    mapping passed in is never modified.
    """
    del olds  # nothing carries over from the previous inputs: every fact is recomputed from the material
    inputs: dict[str, Any] = {k: v for k, v in news.items() if v is not None}
    failures: list[tuple[str, str]] = []
    unknown: Any = next((v for v in news.values() if is_unknown(v)), UNKNOWN_WIRE)

    def run(prop: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ByokError as exc:
            failures.append((exc.input or prop, exc.reason))
            return _FAILED

    def known(prop: str) -> bool:
        return not has_unknown(news.get(prop))

    # Where the key lives.
    vault_url: str | None = None
    if known("vault_url"):
        value = run("vault_url", normalize_vault_url, news.get("vault_url"))
        if value is not _FAILED:
            vault_url = inputs["vault_url"] = value
    if known("key_name"):
        run("key_name", lambda: check_key_name(_str(news.get("key_name"), "key_name", required=True)))
    if known("key_encoding"):
        encoding = run("key_encoding", key_encoding, news.get("key_encoding"))
        if encoding is not _FAILED:
            inputs.pop("key_encoding", None)
            if encoding is not None:
                inputs["key_encoding"] = encoding
    kek_id: str | None = None
    if known("kek_id"):
        value = run("kek_id", _kek_id, news.get("kek_id"), vault_url)
        if value is not _FAILED:
            kek_id = inputs["kek_id"] = value
            key_name = news.get("key_name")
            if known("key_name") and isinstance(key_name, str) and KeyId.parse(value).name.lower() == key_name.lower():
                failures.append(("key_name", "is the KEK's name; the imported key needs a name of its own"))

    # The material and the facts derived from it.
    declared_kty = run("key_type", _key_type, news.get("key_type")) if known("key_type") else None
    declared_curve = run("curve", _curve, news.get("curve")) if known("curve") else None
    kty_hint = None if declared_kty is _FAILED else declared_kty
    preview_path = bool(news.get("public_key_file")) and not news.get("wrapped_key_file")
    needed = ["wrapped_key_file", "public_key_file", "key_encoding", "pkcs11_uri"] + (
        [] if preview_path else ["key_file", "key_password", "pkcs11_module", "pkcs11_pin"])
    public: PublicKeyInfo | None = None
    if all(known(p) for p in needed):
        value = run("key_file", public_material, news, kek_id=kek_id, key_type=kty_hint)
        if value is not _FAILED:
            public = value
            if declared_kty is not _FAILED and declared_curve is not _FAILED:
                run("key_type", agree, public, declared_kty, declared_curve)
    material_failed = any(p in _MATERIAL_PROPS for p, _ in failures)
    for name in DERIVED:
        inputs.pop(name, None)
    if public is not None:
        inputs.update(fingerprint=public.fingerprint, key_type=public.kty, key_size=public.size)
        if public.curve is not None:
            inputs["curve"] = public.curve
        if public.public_pem is not None:
            inputs["public_key_pem"] = public.public_pem
    elif not material_failed:  # some material input is unknown: so is every derived fact not declared
        inputs.update(fingerprint=unknown, key_size=unknown, public_key_pem=unknown)
        inputs["key_type"] = declared_kty if isinstance(declared_kty, str) else unknown
        inputs["curve"] = declared_curve if isinstance(declared_curve, str) else unknown
    kty = public.kty if public is not None else kty_hint

    # Properties of the key version.
    if known("key_ops"):
        ops = run("key_ops", _key_ops, news.get("key_ops"), kty)
        if isinstance(ops, list):
            inputs["key_ops"] = ops
        elif ops is None and kty is not None:
            inputs["key_ops"] = list(KEY_OPS_BY_TYPE[kty])
        elif ops is None and not material_failed:
            inputs["key_ops"] = unknown
    for prop, default in (("enabled", True), ("purge_on_delete", False), ("adopt_existing", False)):
        if known(prop):
            value = run(prop, _bool, news.get(prop), prop, default)
            if value is not _FAILED:
                inputs[prop] = value
    dates: dict[str, datetime | None] = {}
    for prop in ("not_before", "expires_on"):
        if known(prop):
            value = run(prop, _date, news.get(prop), prop)
            if value is not _FAILED:
                dates[prop] = value
                if value is None:
                    inputs.pop(prop, None)
                else:
                    inputs[prop] = rfc3339.format(value)
    nbf, exp = dates.get("not_before"), dates.get("expires_on")
    if nbf is not None and exp is not None and nbf >= exp:
        failures.append(("not_before", f"must be before expires_on ({rfc3339.format(nbf)} is not before "
                                       f"{rfc3339.format(exp)})"))
    if known("tags"):
        tags = run("tags", _tags, news.get("tags"))
        if tags is not _FAILED:
            inputs["tags"] = tags
    return Check(inputs, _dedupe(failures))


_MATERIAL_PROPS = ("key_file", "wrapped_key_file", "public_key_file", "key_password", "key_type", "curve",
                   "key_encoding", "pkcs11_uri", "pkcs11_module", "pkcs11_pin")


def _dedupe(failures: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for item in failures:
        seen.setdefault(item, None)
    return list(seen)


class _Failed:
    def __repr__(self) -> str:
        return "<failed>"


_FAILED: Any = _Failed()


# --- typed, checked inputs -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KeyProps:
    """Checked ByokKey inputs (what ``create``/``update`` act on). The password never reaches a repr."""

    vault_url: str
    key_name: str
    kek_id: str
    key_file: str | None
    key_password: str | None = field(repr=False)
    wrapped_key_file: str | None
    public_key_file: str | None
    key_encoding: AesKeyEncoding | None
    declared_key_type: KeyType | None
    declared_curve: str | None
    key_ops: list[str] | None
    enabled: bool
    not_before: datetime | None
    expires_on: datetime | None
    tags: dict[str, str]
    purge_on_delete: bool
    adopt_existing: bool
    fingerprint: str | None
    pkcs11_uri: str | None = None
    pkcs11_module: str | None = None
    pkcs11_pin: str | None = field(default=None, repr=False)

    @classmethod
    def from_inputs(cls, props: Mapping[str, Any]) -> "KeyProps":
        """Parse checked inputs (numbers may be floats, nothing is unknown any more); raise InputError."""
        vault_url = normalize_vault_url(props.get("vault_url"), input="vault_url")
        key_type = _key_type(props.get("key_type"))
        nbf, exp = _date(props.get("not_before"), "not_before"), _date(props.get("expires_on"), "expires_on")
        if nbf is not None and exp is not None and nbf >= exp:
            raise InputError("must be before expires_on", input="not_before")
        return cls(
            vault_url=vault_url,
            key_name=check_key_name(props.get("key_name")),
            kek_id=_kek_id(props.get("kek_id"), vault_url),
            key_file=_str(props.get("key_file"), "key_file"),
            key_password=_str(props.get("key_password"), "key_password"),
            wrapped_key_file=_str(props.get("wrapped_key_file"), "wrapped_key_file"),
            public_key_file=_str(props.get("public_key_file"), "public_key_file"),
            key_encoding=key_encoding(props.get("key_encoding")),
            declared_key_type=key_type,
            declared_curve=_curve(props.get("curve")),
            key_ops=_key_ops(props.get("key_ops"), key_type),
            enabled=_bool(props.get("enabled"), "enabled", True),
            not_before=nbf,
            expires_on=exp,
            tags=_tags(props.get("tags")),
            purge_on_delete=_bool(props.get("purge_on_delete"), "purge_on_delete", False),
            adopt_existing=_bool(props.get("adopt_existing"), "adopt_existing", False),
            fingerprint=_str(props.get("fingerprint"), "fingerprint"),
            pkcs11_uri=_str(props.get("pkcs11_uri"), "pkcs11_uri"),
            pkcs11_module=_str(props.get("pkcs11_module"), "pkcs11_module"),
            pkcs11_pin=_str(props.get("pkcs11_pin"), "pkcs11_pin"),
        )

    @property
    def id(self) -> str:
        return key_id(self.vault_url, self.key_name)

    def echo(self) -> dict[str, Any]:
        """The inputs as outputs echo them: canonical values, never the password."""
        out: dict[str, Any] = {
            "vault_url": self.vault_url, "key_name": self.key_name, "kek_id": self.kek_id,
            "key_file": self.key_file, "wrapped_key_file": self.wrapped_key_file,
            "public_key_file": self.public_key_file, "key_encoding": self.key_encoding, "key_ops": self.key_ops,
            "enabled": self.enabled,
            "not_before": rfc3339.format(self.not_before), "expires_on": rfc3339.format(self.expires_on),
            "tags": dict(self.tags), "purge_on_delete": self.purge_on_delete,
            "adopt_existing": self.adopt_existing, "pkcs11_uri": self.pkcs11_uri,
            "pkcs11_module": self.pkcs11_module,
        }
        return out


# --- diff ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Diff:
    """What a change of inputs does to the key (the provider turns it into a DiffResult)."""

    replaces: tuple[str, ...] = ()
    new_version: tuple[str, ...] = ()
    patches: tuple[str, ...] = ()
    output_only: tuple[str, ...] = ()
    delete_before_replace: bool = False

    @property
    def changes(self) -> bool:
        return bool(self.replaces or self.new_version or self.patches or self.output_only)

    @property
    def changed(self) -> tuple[str, ...]:
        return self.replaces + self.new_version + self.patches + self.output_only


def _norm(prop: str, value: Any) -> Any:
    """Canonical comparable form of an old output or a new checked input."""
    if prop == "key_ops":
        return tuple(sorted({str(op) for op in value})) if isinstance(value, (list, tuple)) else value
    if prop == "tags":
        return tuple(sorted((str(k), str(v)) for k, v in value.items())) if isinstance(value, Mapping) else ()
    if prop in ("enabled",):
        return True if value is None else value
    if prop in ("purge_on_delete",):
        return bool(value) if value is not None else False
    if prop in ("not_before", "expires_on") and isinstance(value, str):
        try:
            return rfc3339.format(rfc3339.parse(value, input=prop))
        except InputError:
            return value
    if prop == "vault_url" and isinstance(value, str):
        try:
            return normalize_vault_url(value)
        except InputError:
            return value
    return value


def diff(olds: Mapping[str, Any], news: Mapping[str, Any]) -> Diff:
    """Compare the old outputs (what the vault held at the last up/refresh) with the new checked inputs.

    By fingerprint, never by path. An unknown value counts as changed (the preview may not say "no change"
    for something it cannot see). Dates that are not declared are left alone: Key Vault cannot clear them.
    """
    def changed(prop: str) -> bool:
        new = news.get(prop)
        if has_unknown(new):
            return True
        return _norm(prop, olds.get(prop)) != _norm(prop, new)

    replaces = tuple(p for p in REPLACE_ON if changed(p))
    new_version = tuple(p for p in NEW_VERSION_ON if changed(p))
    patches = tuple(p for p in PATCH_ON if (p not in ("not_before", "expires_on") or news.get(p) is not None)
                    and (p != "key_ops" or news.get(p) is not None) and changed(p))
    output_only = tuple(p for p in OUTPUT_ONLY if changed(p))
    old_name, new_name = olds.get("key_name"), news.get("key_name")
    if "key_name" in replaces and isinstance(old_name, str) and isinstance(new_name, str) \
            and old_name.lower() == new_name.lower():
        # Key Vault names are case-insensitive: the same key. A replacement would adopt it and then delete it.
        replaces = tuple(p for p in replaces if p != "key_name")
        output_only += ("key_name",)
    # A replacement (another vault or name) creates the new key before deleting the old one: nothing is lost if the
    # create fails. The engine never asks Diff on --replace/taint/cascades; the owner marker (ownership.py), not
    # this flag, is what keeps a replacement's delete off the key its create adopted.
    return Diff(replaces, new_version, patches, output_only, delete_before_replace=False)
