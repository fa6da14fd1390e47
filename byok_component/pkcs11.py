"""A PKCS#11 token as a key source: the target key is wrapped for the KEK inside the token, never seen in clear.

Mechanisms, best first (chosen from what the token's mechanism list offers with CKF_WRAP):

1. ``CKM_RSA_AES_KEY_WRAP`` (0x1054, PKCS#11 v2.40 §2.1.21): the exact Azure mechanism in one C_WrapKey,
   with ``CK_RSA_AES_KEY_WRAP_PARAMS`` {256, OAEP SHA-1 / MGF1-SHA1 / empty label}.
2. Two steps: C_GenerateKey of an ephemeral AES-256 session key (CKA_SENSITIVE, CKA_EXTRACTABLE: it leaves
   the token only wrapped), C_WrapKey(``CKM_RSA_PKCS_OAEP`` SHA-1, KEK, ephemeral key) ‖ C_WrapKey(
   ``CKM_AES_KEY_WRAP_KWP`` 0x210B, or ``CKM_AES_KEY_WRAP_PAD`` 0x210A — both RFC 5649 — ephemeral key, target).
   The concatenation is the CKM_RSA_AES_KEY_WRAP output (Azure BYOK spec, "Key transfer blob").

The KEK public key is imported as a session object (CKA_TOKEN false, CKA_WRAP true) and destroyed afterwards,
like the ephemeral key. Before a token is trusted, :func:`probe` wraps a throwaway non-sensitive 13-byte
secret under keys the host knows and unwraps it in software: a token that zero-pads wrap input to a
multiple of 8 (Debian's SoftHSM 2.6.1) is refused for every target whose encoding is not a multiple of 8
bytes — an AES key never is; an EC key's encoding length is measured on a throwaway key of the same curve;
an RSA key's cannot be known without seeing it, so RSA is refused on such a token. Verdicts are cached per
module and token for the life of the process.

The PIN comes from a secret input, ``$BYOK_PKCS11_PIN`` or the URI's ``pin-source`` file; it never appears
in a repr, a message or a URI we print. PyKCS11 is imported lazily: nothing else needs it.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import secrets
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

from .errors import InputError, TokenError, UnwrapError
from .files import read_input
from .keys import EC_CURVES, PublicKeyInfo, b64url, describe_public_key
from .pkcs11uri import Pkcs11Uri
from .wrap import AES_KEY_BYTES, check_kek, unwrap

if TYPE_CHECKING:  # pragma: no cover
    import PyKCS11

__all__ = [
    "ENV_PIN", "ENV_MODULE", "TokenKey", "TokenWrap", "Verdict", "Mechanisms", "public_info", "wrap_in_token",
    "probe", "preflight", "rsa_aes_key_wrap_params", "TOKEN_AES_FINGERPRINT_PREFIX", "clear_verdicts",
]

ENV_PIN = "BYOK_PKCS11_PIN"
ENV_MODULE = "BYOK_PKCS11_MODULE"
# An AES key in a token shows nothing public; its identity is a hash of the token serial, the object's
# CKA_ID/label and its CKA_CHECK_VALUE (PKCS#11 v2.40 §4.10: a key check value, public by design).
TOKEN_AES_FINGERPRINT_PREFIX = "pkcs11-aes:"

CKM_RSA_AES_KEY_WRAP = 0x1054
CKM_AES_KEY_WRAP_PAD = 0x210A
CKM_AES_KEY_WRAP_KWP = 0x210B
_MECH_NAMES = {CKM_RSA_AES_KEY_WRAP: "CKM_RSA_AES_KEY_WRAP", CKM_AES_KEY_WRAP_PAD: "CKM_AES_KEY_WRAP_PAD",
               CKM_AES_KEY_WRAP_KWP: "CKM_AES_KEY_WRAP_KWP"}
PROBE_SECRET_BYTES = 13  # not a multiple of 8: a padding token shows itself
# Named-curve OIDs as CKA_EC_PARAMS holds them (DER, RFC 5480 §2.1.1.1; secp256k1 SEC 2 §A.2.1).
_CURVE_BY_PARAMS = {
    bytes.fromhex("06082a8648ce3d030107"): "P-256",
    bytes.fromhex("06052b81040022"): "P-384",
    bytes.fromhex("06052b81040023"): "P-521",
    bytes.fromhex("06052b8104000a"): "P-256K",
}
_PARAMS_BY_CURVE = {curve: params for params, curve in _CURVE_BY_PARAMS.items()}
_OAEP_SHA1 = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


# --- the key source (a value: where the key is, and how to log in) -------------------------------------
@dataclass(frozen=True, slots=True)
class TokenKey:
    """A target key in a PKCS#11 token: its URI, the module (shared library) and the PIN (never in a repr)."""

    uri: Pkcs11Uri
    module: str
    pin: str | None = field(default=None, repr=False)

    @classmethod
    def from_inputs(cls, uri: object, module: object = None, pin: object = None, *, uri_input: str = "pkcs11_uri",
                    module_input: str = "pkcs11_module") -> "TokenKey":
        """Parse the inputs; the module comes from the argument, the URI's module-path or $BYOK_PKCS11_MODULE."""
        parsed = Pkcs11Uri.parse(uri, input=uri_input)
        if module is not None and not isinstance(module, str):
            raise InputError("must be a file path", input=module_input)
        if module and parsed.module_path and os.path.realpath(module) != os.path.realpath(parsed.module_path):
            raise InputError(f"{module} differs from the URI's module-path {parsed.module_path}; give one",
                             input=module_input)
        chosen = module or parsed.module_path or os.environ.get(ENV_MODULE) or None
        if not chosen:
            raise InputError(f"is required: the PKCS#11 module (.so) path, here, as module-path in the URI or in "
                             f"${ENV_MODULE}", input=module_input)
        if pin is not None and not isinstance(pin, str):
            raise InputError("must be a string", input="pkcs11_pin")
        return cls(parsed, chosen, pin or None)

    def resolve_pin(self) -> str:
        """The PIN: the secret input, else $BYOK_PKCS11_PIN, else the URI's pin-source file."""
        if self.pin:
            return self.pin
        value = os.environ.get(ENV_PIN)
        if value:
            return value
        if self.uri.pin_source:
            path = self.uri.pin_source.removeprefix("file://").removeprefix("file:")
            text = read_input(path, input="pin-source", max_bytes=4096).decode("utf-8", "replace")
            pin = text.rstrip("\r\n")
            if pin:
                return pin
            raise InputError(f"{path} is empty", input="pin-source")
        raise InputError(f"no PIN for {self.uri.describe()}: give it as a secret input, in ${ENV_PIN}, or as a "
                         "pin-source file in the URI (never on a command line)", input="pkcs11_pin")

    def has_pin(self) -> bool:
        """Whether a PIN can be had without asking (secret input, environment, pin-source)."""
        return bool(self.pin or os.environ.get(ENV_PIN) or self.uri.pin_source)

    def where(self) -> str:
        return self.uri.describe()


@dataclass(frozen=True, slots=True)
class Mechanisms:
    """What the token offers for wrapping (mechanisms with CKF_WRAP)."""

    rsa_aes_key_wrap: bool
    rsa_oaep: bool
    aes_keygen: bool
    aes_kwp: int | None  # CKM_AES_KEY_WRAP_KWP or CKM_AES_KEY_WRAP_PAD, whichever is offered (KWP first)

    @property
    def name(self) -> str:
        if self.rsa_aes_key_wrap:
            return "CKM_RSA_AES_KEY_WRAP"
        if self.two_step:
            assert self.aes_kwp is not None
            return f"CKM_RSA_PKCS_OAEP + {_MECH_NAMES[self.aes_kwp]}"
        return "none"

    @property
    def two_step(self) -> bool:
        return self.rsa_oaep and self.aes_keygen and self.aes_kwp is not None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the probe found: whether the token's wrap is RFC 5649-exact, and the mechanism it was tested with."""

    mechanism: str
    exact: bool          # a 13-byte secret came back as 13 bytes
    pads: bool           # ... came back zero-padded to a multiple of 8 (SoftHSM 2.6.1)
    token: str           # "label (manufacturer model, serial S)", for messages and notes
    detail: str


@dataclass(frozen=True, slots=True)
class TokenWrap:
    """The result of a wrap inside the token: CKM_RSA_AES_KEY_WRAP ciphertext and the target's public facts."""

    ciphertext: bytes
    public: PublicKeyInfo
    mechanism: str


# --- PyKCS11 plumbing (the thin I/O shell) ------------------------------------------------------------
_lock = threading.RLock()  # one login state per token per process: operations on tokens do not interleave
_libs: dict[str, Any] = {}
_verdicts: dict[tuple[str, str, str], Verdict] = {}
_ec_lengths: dict[tuple[str, str, str, str], int] = {}


def clear_verdicts() -> None:
    """Forget cached probe verdicts (tests that swap tokens)."""
    with _lock:
        _verdicts.clear()
        _ec_lengths.clear()


def _pykcs11() -> Any:
    try:
        import PyKCS11
    except ImportError:  # pragma: no cover - a requirement; only a broken install lacks it
        raise TokenError("PyKCS11 is not installed (pip install PyKCS11)", input="pkcs11_module") from None
    return PyKCS11


def _library(module: str) -> Any:
    P = _pykcs11()
    path = os.path.realpath(module)
    with _lock:
        if path in _libs:
            return _libs[path]
        if not os.path.isfile(path):
            raise TokenError(f"PKCS#11 module not found: {module}", input="pkcs11_module")
        lib = P.PyKCS11Lib()
        try:
            lib.load(path)
        except P.PyKCS11Error as exc:
            raise TokenError(f"cannot load PKCS#11 module {module} ({_ckr(exc)})", input="pkcs11_module") from None
        _libs[path] = lib
        return lib


def _ckr(exc: Exception) -> str:
    """The CKR_* name of a PyKCS11 error (its text holds the code only, never a PIN or key bytes)."""
    value = getattr(exc, "value", None)
    P = _pykcs11()
    name = P.CKR.get(value) if isinstance(value, int) else None
    return str(name) if isinstance(name, str) else type(exc).__name__


def _text(value: Any) -> str:
    return str(value).strip().rstrip("\x00").strip()


def _describe_token(info: Any) -> str:
    return (f"{_text(info.label)} ({_text(info.manufacturerID)} {_text(info.model)}, serial "
            f"{_text(info.serialNumber)})")


def _find_slot(lib: Any, uri: Pkcs11Uri, module: str) -> tuple[int, Any]:
    P = _pykcs11()
    try:
        slots = lib.getSlotList(tokenPresent=True)
        found = []
        for slot in slots:
            if uri.slot_id is not None and int(slot) != uri.slot_id:
                continue
            info = lib.getTokenInfo(slot)
            if all(want is None or _text(have) == want for want, have in (
                    (uri.token, info.label), (uri.manufacturer, info.manufacturerID), (uri.model, info.model),
                    (uri.serial, info.serialNumber))):
                found.append((slot, info))
    except P.PyKCS11Error as exc:
        raise TokenError(f"cannot list the tokens of {module} ({_ckr(exc)})", input="pkcs11_uri") from None
    if not found:
        raise TokenError(f"no token matches {uri.describe()} in {module} ({len(slots)} token(s) present)",
                         input="pkcs11_uri")
    if len(found) > 1:
        raise TokenError(f"{len(found)} tokens match {uri.describe()}; add serial= to the URI", input="pkcs11_uri")
    return found[0]


@dataclass
class _Open:
    lib: Any
    slot: int
    session: Any
    token: str
    serial: str
    key: TokenKey


@contextmanager
def _open(key: TokenKey, *, login: bool) -> Iterator[_Open]:
    """A read-only session on the token (session objects need no R/W session), logged in when asked."""
    P = _pykcs11()
    with _lock:
        lib = _library(key.module)
        slot, info = _find_slot(lib, key.uri, key.module)
        try:
            session = lib.openSession(slot, P.CKF_SERIAL_SESSION)
        except P.PyKCS11Error as exc:
            raise TokenError(f"cannot open a session on {_describe_token(info)} ({_ckr(exc)})",
                             input="pkcs11_uri") from None
        logged_in = False
        try:
            if login:
                pin = key.resolve_pin()
                try:
                    session.login(pin)
                    logged_in = True
                except P.PyKCS11Error as exc:
                    if exc.value != P.CKR_USER_ALREADY_LOGGED_IN:
                        reason = {P.CKR_PIN_INCORRECT: "the PIN is incorrect", P.CKR_PIN_LOCKED: "the PIN is locked",
                                  P.CKR_PIN_EXPIRED: "the PIN has expired"}.get(exc.value, _ckr(exc))
                        raise TokenError(f"login to {_describe_token(info)} failed: {reason}",
                                         input="pkcs11_pin") from None
                finally:
                    del pin
            yield _Open(lib, slot, session, _describe_token(info), _text(info.serialNumber), key)
        finally:
            try:
                if logged_in:
                    session.logout()
            finally:
                session.closeSession()


def _attrs(o: _Open, handle: Any, names: list[int]) -> list[Any]:
    P = _pykcs11()
    try:
        return list(o.session.getAttributeValue(handle, names))
    except P.PyKCS11Error as exc:
        raise TokenError(f"cannot read the attributes of {o.key.where()} ({_ckr(exc)})", input="pkcs11_uri") from None


def _find(o: _Open, classes: tuple[int, ...]) -> list[tuple[int, Any]]:
    P = _pykcs11()
    found: list[tuple[int, Any]] = []
    for cls in classes:
        template: list[tuple[int, Any]] = [(P.CKA_CLASS, cls)]
        if o.key.uri.object is not None:
            template.append((P.CKA_LABEL, o.key.uri.object))
        if o.key.uri.id is not None:
            template.append((P.CKA_ID, tuple(o.key.uri.id)))
        try:
            found += [(cls, h) for h in o.session.findObjects(template)]
        except P.PyKCS11Error as exc:
            raise TokenError(f"cannot search {o.token} ({_ckr(exc)})", input="pkcs11_uri") from None
    return found


def _target(o: _Open) -> tuple[int, Any]:
    """The one private or secret key the URI names (type=public cannot be wrapped)."""
    P = _pykcs11()
    kind = o.key.uri.type
    if kind == "public":
        raise InputError("type=public names a public key, which cannot be imported; use type=private",
                         input="pkcs11_uri")
    classes = {"private": (P.CKO_PRIVATE_KEY,), "secret-key": (P.CKO_SECRET_KEY,)}.get(
        kind or "", (P.CKO_PRIVATE_KEY, P.CKO_SECRET_KEY))
    found = _find(o, classes)
    if not found:
        raise TokenError(f"no private or secret key {o.key.where()} (is the PIN for the right token? are "
                         "object=/id= right?)", input="pkcs11_uri")
    if len(found) > 1:
        raise TokenError(f"{len(found)} keys match {o.key.where()}; add id= or type= to the URI", input="pkcs11_uri")
    return found[0]


def _curve(params: Any, where: str) -> str:
    curve = _CURVE_BY_PARAMS.get(bytes(params or b""))
    if curve is None:
        raise TokenError(f"{where}: the EC key is on a curve Azure does not take (use P-256, P-384, P-521 or "
                         "P-256K)", input="pkcs11_uri")
    return curve


def _ec_point(raw: bytes) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING around the X9.62 point (PKCS#11 v2.40 §2.3.3); some tokens omit it."""
    if raw[:1] == b"\x04" and len(raw) > 2:
        length, offset = raw[1], 2
        if length & 0x80:
            count = length & 0x7F
            length, offset = int.from_bytes(raw[2:2 + count], "big"), 2 + count
        if offset + length == len(raw) and raw[offset:offset + 1] in (b"\x04", b"\x02", b"\x03"):
            return raw[offset:]
    return raw


def _public_of(o: _Open, cls: int, handle: Any) -> PublicKeyInfo:
    """The public facts of the target: from the private object (RSA) or its public twin (EC); AES: see prefix."""
    P = _pykcs11()
    (key_type,) = _attrs(o, handle, [P.CKA_KEY_TYPE])
    where = o.key.where()
    if cls == P.CKO_SECRET_KEY:
        if key_type != P.CKK_AES:
            raise TokenError(f"{where} is not an AES key (Key Vault takes AES-128/192/256 as oct-HSM)",
                             input="pkcs11_uri")
        length, label, ident, kcv = _attrs(o, handle, [P.CKA_VALUE_LEN, P.CKA_LABEL, P.CKA_ID, P.CKA_CHECK_VALUE])
        if int(length) not in (16, 24, 32):
            raise TokenError(f"{where} is {int(length) * 8} bits; Key Vault takes AES-128/192/256", input="pkcs11_uri")
        identity = b"|".join([o.serial.encode(), bytes(ident or b""), str(label or "").encode(), bytes(kcv or b"")])
        return PublicKeyInfo("oct", int(length) * 8, None,
                             TOKEN_AES_FINGERPRINT_PREFIX + b64url(hashlib.sha256(identity).digest()), None, ())
    if key_type == P.CKK_RSA:
        modulus, exponent = _attrs(o, handle, [P.CKA_MODULUS, P.CKA_PUBLIC_EXPONENT])
        public: object = rsa.RSAPublicNumbers(int.from_bytes(bytes(exponent), "big"),
                                              int.from_bytes(bytes(modulus), "big")).public_key()
    elif key_type == P.CKK_EC:
        (params,) = _attrs(o, handle, [P.CKA_EC_PARAMS])
        curve = _curve(params, where)
        point = None
        if cls == P.CKO_PUBLIC_KEY:
            (point,) = _attrs(o, handle, [P.CKA_EC_POINT])
        else:
            twins = [h for c, h in _find(o, (P.CKO_PUBLIC_KEY,))]
            if len(twins) == 1:
                (point,) = _attrs(o, twins[0], [P.CKA_EC_POINT])
        if not point:
            raise TokenError(f"{where}: the token holds no public key object beside the EC private key (same "
                             "label/id); create one or give public_key_file", input="pkcs11_uri")
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(EC_CURVES[curve](), _ec_point(bytes(point)))
        except ValueError:
            raise TokenError(f"{where}: the public key object holds no valid {curve} point", input="pkcs11_uri") from None
    else:
        raise TokenError(f"{where} is neither an RSA nor an EC key", input="pkcs11_uri")
    return describe_public_key(public, input="pkcs11_uri")


def public_info(key: TokenKey) -> PublicKeyInfo:
    """The target's public facts for previews: the public key object without logging in when the token shows
    it; otherwise (or for an AES key) after logging in with the PIN, when there is one."""
    P = _pykcs11()
    if key.uri.type in (None, "private", "public"):
        with _open(key, login=False) as o:
            publics = _find(o, (P.CKO_PUBLIC_KEY,))
            if len(publics) == 1:
                return _public_of(o, *publics[0])
    with _open(key, login=True) as o:
        return _public_of(o, *_target(o))


# --- the mechanisms ------------------------------------------------------------------------------------
def _mechanisms(o: _Open) -> Mechanisms:
    P = _pykcs11()
    try:
        offered = {P.CKM[name] if isinstance(name, str) else int(name) for name in o.lib.getMechanismList(o.slot)
                   if not isinstance(name, str) or name in P.CKM}

        def wraps(mech: int) -> bool:
            return mech in offered and bool(o.lib.getMechanismInfo(o.slot, P.CKM[mech]).flags & P.CKF_WRAP)

        return Mechanisms(
            rsa_aes_key_wrap=wraps(CKM_RSA_AES_KEY_WRAP), rsa_oaep=wraps(P.CKM_RSA_PKCS_OAEP),
            aes_keygen=P.CKM_AES_KEY_GEN in offered,
            aes_kwp=next((m for m in (CKM_AES_KEY_WRAP_KWP, CKM_AES_KEY_WRAP_PAD) if wraps(m)), None))
    except P.PyKCS11Error as exc:
        raise TokenError(f"cannot read the mechanisms of {o.token} ({_ckr(exc)})", input="pkcs11_uri") from None


@dataclass
class _RsaAesParams:
    """CK_RSA_AES_KEY_WRAP_PARAMS and the CK_RSA_PKCS_OAEP_PARAMS it points to, kept alive together."""

    raw: bytes
    keepalive: Any


class _CkOaepParams(ctypes.Structure):
    # PKCS#11 v2.40 §2.1.8: {hashAlg, mgf, source, pSourceData, ulSourceDataLen}; CK_ULONG is C unsigned long.
    _fields_ = [("hashAlg", ctypes.c_ulong), ("mgf", ctypes.c_ulong), ("source", ctypes.c_ulong),
                ("pSourceData", ctypes.c_void_p), ("ulSourceDataLen", ctypes.c_ulong)]


class _CkRsaAesKeyWrapParams(ctypes.Structure):
    # PKCS#11 v2.40 §2.1.21: {ulAESKeyBits, pOAEPParams}.
    _fields_ = [("ulAESKeyBits", ctypes.c_ulong), ("pOAEPParams", ctypes.POINTER(_CkOaepParams))]


CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED = 0x220, 0x1, 0x1


def rsa_aes_key_wrap_params() -> _RsaAesParams:
    """The mechanism parameter for CKM_RSA_AES_KEY_WRAP as Azure needs it: AES-256, OAEP SHA-1/MGF1-SHA1, no label.

    PyKCS11 has no class for it, so the C structure is laid out with ctypes and handed over as the parameter
    bytes; the OAEP structure it points to lives as long as the returned value.
    """
    oaep = _CkOaepParams(CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, None, 0)
    params = _CkRsaAesKeyWrapParams(AES_KEY_BYTES * 8, ctypes.pointer(oaep))
    return _RsaAesParams(ctypes.string_at(ctypes.addressof(params), ctypes.sizeof(params)), (oaep, params))


@contextmanager
def _session_objects(o: _Open) -> Iterator[list[Any]]:
    """Handles created inside the block are destroyed when it ends, whatever happens."""
    created: list[Any] = []
    try:
        yield created
    finally:
        for handle in reversed(created):
            try:
                o.session.destroyObject(handle)
            except Exception:  # noqa: BLE001 - a session object dies with the session anyway
                pass


def _import_rsa_public(o: _Open, objects: list[Any], public: rsa.RSAPublicKey) -> Any:
    P = _pykcs11()
    numbers = public.public_numbers()
    handle = o.session.createObject([
        (P.CKA_CLASS, P.CKO_PUBLIC_KEY), (P.CKA_KEY_TYPE, P.CKK_RSA), (P.CKA_TOKEN, False),
        (P.CKA_WRAP, True), (P.CKA_ENCRYPT, False), (P.CKA_VERIFY, False),
        (P.CKA_LABEL, "byok-component KEK (session)"),
        (P.CKA_MODULUS, tuple(numbers.n.to_bytes((public.key_size + 7) // 8, "big"))),
        (P.CKA_PUBLIC_EXPONENT, tuple(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")))])
    objects.append(handle)
    return handle


def _aes_session_key(o: _Open, objects: list[Any], value: bytes | None = None) -> Any:
    """An AES-256 session key for wrapping: generated in the token (sensitive, leaves it only wrapped), or — for
    the probe only — created from a value the host chose."""
    P = _pykcs11()
    template = [(P.CKA_CLASS, P.CKO_SECRET_KEY), (P.CKA_KEY_TYPE, P.CKK_AES), (P.CKA_TOKEN, False),
                (P.CKA_WRAP, True), (P.CKA_UNWRAP, False), (P.CKA_ENCRYPT, False), (P.CKA_DECRYPT, False)]
    if value is None:
        template += [(P.CKA_VALUE_LEN, AES_KEY_BYTES), (P.CKA_SENSITIVE, True), (P.CKA_EXTRACTABLE, True)]
        handle = o.session.generateKey(template, P.Mechanism(P.CKM_AES_KEY_GEN))
    else:
        template += [(P.CKA_VALUE, tuple(value)), (P.CKA_SENSITIVE, False), (P.CKA_EXTRACTABLE, True)]
        handle = o.session.createObject(template)
    objects.append(handle)
    return handle


def _wrap(o: _Open, mechanism: Any, wrapping: Any, target: Any, what: str) -> bytes:
    P = _pykcs11()
    try:
        return bytes(o.session.wrapKey(wrapping, target, mechanism))
    except P.PyKCS11Error as exc:
        hint = {P.CKR_KEY_UNEXTRACTABLE: ": the key is not extractable (CKA_EXTRACTABLE false); it must be made "
                                         "extractable-when-wrapped to leave the token for Azure",
                P.CKR_KEY_NOT_WRAPPABLE: ": the token does not allow this key to be wrapped"}.get(exc.value, "")
        raise TokenError(f"{o.token}: {what} failed ({_ckr(exc)}){hint}", input="pkcs11_uri") from None


def _two_step(o: _Open, mechs: Mechanisms, kek_handle: Any, target: Any, objects: list[Any]) -> tuple[bytes, bytes]:
    P = _pykcs11()
    assert mechs.aes_kwp is not None
    ephemeral = _aes_session_key(o, objects)
    oaep = P.RSAOAEPMechanism(P.CKM_SHA_1, P.CKG_MGF1_SHA1)
    rsa_part = _wrap(o, oaep, kek_handle, ephemeral, "C_WrapKey(CKM_RSA_PKCS_OAEP) of the ephemeral AES key")
    kwp_part = _wrap(o, P.Mechanism(mechs.aes_kwp), ephemeral, target,
                     f"C_WrapKey({_MECH_NAMES[mechs.aes_kwp]}) of the target key")
    return rsa_part, kwp_part


# --- the probe -----------------------------------------------------------------------------------------
_probe_kek: list[rsa.RSAPrivateKey] = []


def _throwaway_kek() -> rsa.RSAPrivateKey:
    with _lock:
        if not _probe_kek:
            _probe_kek.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return _probe_kek[0]


def _classify(sent: bytes, got: bytes | None) -> tuple[bool, bool]:
    """(exact, pads): the same bytes, or the same bytes followed by zeros up to a multiple of 8."""
    if got is None:
        return False, False
    padded = sent + b"\x00" * (-len(sent) % 8)
    return got == sent, got != sent and got == padded


def _probe(o: _Open, mechs: Mechanisms) -> Verdict:
    P = _pykcs11()
    key = (os.path.realpath(o.key.module), o.serial + "|" + o.token, mechs.name)
    with _lock:
        if key in _verdicts:
            return _verdicts[key]
    secret = secrets.token_bytes(PROBE_SECRET_BYTES)
    with _session_objects(o) as objects:
        throwaway = o.session.createObject([
            (P.CKA_CLASS, P.CKO_SECRET_KEY), (P.CKA_KEY_TYPE, P.CKK_GENERIC_SECRET), (P.CKA_TOKEN, False),
            (P.CKA_SENSITIVE, False), (P.CKA_EXTRACTABLE, True), (P.CKA_LABEL, "byok-component probe"),
            (P.CKA_VALUE, tuple(secret))])
        objects.append(throwaway)
        kek = _throwaway_kek()
        kek_handle = _import_rsa_public(o, objects, kek.public_key())
        got: bytes | None
        if mechs.rsa_aes_key_wrap:
            params = rsa_aes_key_wrap_params()
            ciphertext = _wrap(o, P.Mechanism(CKM_RSA_AES_KEY_WRAP, params.raw), kek_handle, throwaway,
                               "the probe's C_WrapKey(CKM_RSA_AES_KEY_WRAP)")
            try:
                got = unwrap(kek, ciphertext)
            except UnwrapError:
                got = None
        else:
            assert mechs.aes_kwp is not None
            aes = secrets.token_bytes(AES_KEY_BYTES)
            aes_handle = _aes_session_key(o, objects, aes)
            oaep = _wrap(o, P.RSAOAEPMechanism(P.CKM_SHA_1, P.CKG_MGF1_SHA1), kek_handle, aes_handle,
                         "the probe's C_WrapKey(CKM_RSA_PKCS_OAEP)")
            kwp = _wrap(o, P.Mechanism(mechs.aes_kwp), aes_handle, throwaway,
                        f"the probe's C_WrapKey({_MECH_NAMES[mechs.aes_kwp]})")
            try:
                oaep_ok = kek.decrypt(oaep, _OAEP_SHA1) == aes
            except ValueError:
                oaep_ok = False
            try:
                got = aes_key_unwrap_with_padding(aes, kwp) if oaep_ok else None
            except InvalidUnwrap:
                got = None
    exact, pads = _classify(secret, got)
    if exact:
        detail = f"a {PROBE_SECRET_BYTES}-byte test secret wrapped with {mechs.name} unwrapped exactly"
    elif pads:
        detail = (f"a {PROBE_SECRET_BYTES}-byte test secret wrapped with {mechs.name} unwrapped as {len(got or b'')} "
                  "bytes: the token zero-pads wrap input to a multiple of 8")
    else:
        detail = f"a test secret wrapped with {mechs.name} did not unwrap to itself in software"
    verdict = Verdict(mechs.name, exact, pads, o.token, detail)
    with _lock:
        _verdicts[key] = verdict
    return verdict


def probe(key: TokenKey) -> Verdict:
    """Test the token's wrap with a throwaway secret (cached per module and token for this process)."""
    with _open(key, login=True) as o:
        mechs = _mechanisms(o)
        _require(o, mechs)
        return _probe(o, mechs)


def _require(o: _Open, mechs: Mechanisms) -> None:
    if not mechs.rsa_aes_key_wrap and not mechs.two_step:
        missing = [name for ok, name in ((mechs.rsa_oaep, "CKM_RSA_PKCS_OAEP"), (mechs.aes_keygen, "CKM_AES_KEY_GEN"),
                                         (mechs.aes_kwp is not None, "CKM_AES_KEY_WRAP_KWP or _PAD")) if not ok]
        raise TokenError(f"{o.token} offers neither CKM_RSA_AES_KEY_WRAP nor the two-step wrap (missing: "
                         f"{', '.join(missing)})", input="pkcs11_uri")


_FIX = ("use a token whose RFC 5649 key wrap is exact or that offers CKM_RSA_AES_KEY_WRAP (SoftHSM 2.7.0 or "
        "later, or your HSM)")


def _ec_encoding_length(o: _Open, mechs: Mechanisms, curve: str) -> int:
    """The length of the token's PKCS#8 for ``curve``, measured on a throwaway non-sensitive key of that curve.

    RFC 5915 §3 fixes the private key's length per curve, so one key tells the length of all of them.
    """
    P = _pykcs11()
    cache = (os.path.realpath(o.key.module), o.serial + "|" + o.token, mechs.name, curve)
    with _lock:
        if cache in _ec_lengths:
            return _ec_lengths[cache]
    assert mechs.aes_kwp is not None
    with _session_objects(o) as objects:
        try:
            public, private = o.session.generateKeyPair(
                [(P.CKA_CLASS, P.CKO_PUBLIC_KEY), (P.CKA_TOKEN, False), (P.CKA_EC_PARAMS, tuple(_PARAMS_BY_CURVE[curve]))],
                [(P.CKA_CLASS, P.CKO_PRIVATE_KEY), (P.CKA_TOKEN, False), (P.CKA_SENSITIVE, False),
                 (P.CKA_EXTRACTABLE, True)], P.Mechanism(P.CKM_EC_KEY_PAIR_GEN))
        except P.PyKCS11Error as exc:
            raise TokenError(f"{o.token}: cannot make a throwaway {curve} key to measure its encoding ({_ckr(exc)})",
                             input="pkcs11_uri") from None
        objects += [public, private]
        aes = secrets.token_bytes(AES_KEY_BYTES)
        wrapped = _wrap(o, P.Mechanism(mechs.aes_kwp), _aes_session_key(o, objects, aes), private,
                        f"the throwaway {curve} key's wrap")
    try:
        der = aes_key_unwrap_with_padding(aes, wrapped)
    except InvalidUnwrap:
        raise TokenError(f"{o.token}: a throwaway {curve} key does not unwrap in software; the token's key wrap "
                         f"is broken; {_FIX}", input="pkcs11_uri") from None
    length = _der_length(der)
    with _lock:
        _ec_lengths[cache] = length
    return length


def _der_length(der: bytes) -> int:
    """Total length of the DER SEQUENCE at the start of ``der`` (X.690 §8.1.3)."""
    if len(der) < 2 or der[0] != 0x30:
        raise TokenError("the token's PKCS#8 encoding is not a DER SEQUENCE", input="pkcs11_uri")
    first = der[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    return 2 + count + int.from_bytes(der[2:2 + count], "big")


def _check_safe(o: _Open, mechs: Mechanisms, verdict: Verdict, public: PublicKeyInfo) -> None:
    """Refuse what the token would get wrong; one line naming the problem and the fix."""
    if verdict.exact:
        return
    where = o.key.where()
    if not verdict.pads:
        raise TokenError(f"{verdict.token}: its key wrap is broken ({verdict.detail}); {_FIX}", input="pkcs11_uri")
    if public.kty == "oct":
        return  # 16/24/32 bytes: a multiple of 8, nothing to pad
    if public.kty == "EC":
        assert public.curve is not None
        length = _ec_encoding_length(o, mechs, public.curve)
        if length % 8 == 0:
            return
        raise TokenError(
            f"{verdict.token} zero-pads wrapped keys to a multiple of 8 bytes, so {where} ({public.curve}, a "
            f"{length}-byte PKCS#8) would reach Azure as {length + (-length % 8)} bytes with trailing zeros; {_FIX}; "
            "or use an AES-256 or P-384 key on this token", input="pkcs11_uri")
    raise TokenError(
        f"{verdict.token} zero-pads wrapped keys to a multiple of 8 bytes, and the length of an RSA key's PKCS#8 "
        f"inside it cannot be known without seeing the key, so {where} could reach Azure with trailing zeros; "
        f"{_FIX}", input="pkcs11_uri")


# --- the wrap ------------------------------------------------------------------------------------------
def _preflight(o: _Open) -> tuple[Any, PublicKeyInfo, Mechanisms, Verdict]:
    """Everything a wrap needs to be safe, without wrapping: the one target, extractable, a mechanism, a probe
    verdict that allows this key."""
    P = _pykcs11()
    cls, handle = _target(o)
    public = _public_of(o, cls, handle)
    (extractable,) = _attrs(o, handle, [P.CKA_EXTRACTABLE])
    if not extractable:
        raise TokenError(f"{o.key.where()} is not extractable (CKA_EXTRACTABLE false): no token will wrap it; "
                         "BYOK needs a key generated extractable-when-wrapped", input="pkcs11_uri")
    mechs = _mechanisms(o)
    _require(o, mechs)
    verdict = _probe(o, mechs)
    _check_safe(o, mechs, verdict, public)
    return handle, public, mechs, verdict


def preflight(key: TokenKey) -> PublicKeyInfo:
    """Log in and check that the key can be wrapped safely (previews that reach the token); returns its public
    facts. Refuses, as :func:`wrap_in_token` would, before anything is wrapped."""
    with _open(key, login=True) as o:
        return _preflight(o)[1]


def wrap_in_token(key: TokenKey, kek: object, *, expected_fingerprint: str | None = None) -> TokenWrap:
    """CKM_RSA_AES_KEY_WRAP of the target key for ``kek`` (the KEK's RSA public key), done inside the token.

    ``expected_fingerprint`` (from the preview) must match the key found now, or nothing is wrapped.
    """
    public_kek = check_kek(kek, input="kek")
    P = _pykcs11()
    with _open(key, login=True) as o:
        handle, public, mechs, verdict = _preflight(o)
        if expected_fingerprint is not None and public.fingerprint != expected_fingerprint:
            raise TokenError(f"{key.where()} now holds key {public.fingerprint}, not {expected_fingerprint} as "
                             "planned; run the preview again", input="pkcs11_uri")
        with _session_objects(o) as objects:
            kek_handle = _import_rsa_public(o, objects, public_kek)
            if mechs.rsa_aes_key_wrap:
                params = rsa_aes_key_wrap_params()
                ciphertext = _wrap(o, P.Mechanism(CKM_RSA_AES_KEY_WRAP, params.raw), kek_handle, handle,
                                   "C_WrapKey(CKM_RSA_AES_KEY_WRAP)")
            else:
                rsa_part, kwp_part = _two_step(o, mechs, kek_handle, handle, objects)
                ciphertext = rsa_part + kwp_part
    modulus = (public_kek.key_size + 7) // 8
    kwp = len(ciphertext) - modulus
    if kwp < 16 or kwp % 8:
        raise TokenError(f"{verdict.token} returned {len(ciphertext)} bytes, which is not CKM_RSA_AES_KEY_WRAP "
                         f"output for a {public_kek.key_size}-bit KEK", input="pkcs11_uri")
    if public.kty == "oct" and kwp != public.size // 8 + 8:
        raise TokenError(f"{verdict.token} wrapped a {public.size}-bit AES key into {kwp} bytes, not "
                         f"{public.size // 8 + 8} (RFC 5649 §4.1)", input="pkcs11_uri")
    return TokenWrap(ciphertext, public, verdict.mechanism)


def describe_verdict(verdict: Verdict) -> str:
    """One line for the CLI and the closing notes."""
    state = "exact" if verdict.exact else "PADS (refused for keys whose encoding is not a multiple of 8)" \
        if verdict.pads else "BROKEN (refused)"
    return f"{verdict.token}: {verdict.mechanism}: {state}; {verdict.detail}"


__all__ += ["describe_verdict"]
