"""Bad-input corpus: every ByokKey input through check and create, and every ``byok`` command, fed malformed,
truncated and oversized keys, wrong/absent/unneeded passwords, unsupported curves and key kinds, bad KEKs and
kids, bad names, tags, dates, ops and transfer blobs.

Each case must be refused with one clear line that names the input at fault, no traceback, no secret in the
text, and nothing imported (the vault's inventory is compared before and after, with the SDK).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dh, dsa, ec, ed25519, rsa, x25519

from byok_component.blob import TransferBlob
from byok_component import cli
from byok_component import props as P
from byok_component.cli import main
from byok_component.errors import ByokError
from byok_component.keys import b64url
from byok_component.provider import ByokKeyProvider
from byok_component.wrap import wrap
from tests.conftest import ec_key, rsa_key, serve_vault
from tests.hostile.conftest import (KEY_PASSWORD, KeyFiles, add_tokens, clear_error_problems, inventory, make_kek,
                                    scan)
from tests.hostile.figures import FIGURES
from tests.integration.conftest import make_key_client
from tests.secretscan import SecretSet

if TYPE_CHECKING:
    from byok_component.localvault import LocalVault

NO_PASSWORD = serialization.NoEncryption()


def _armour(body: bytes, label: bytes = b"PRIVATE KEY") -> bytes:
    """PEM armour built at run time (no key-shaped block is committed)."""
    dashes = b"-" * 5
    return b"".join([dashes, b"BEGIN ", label, dashes, b"\n", body, b"\n", dashes, b"END ", label, dashes, b"\n"])


def _pkcs8(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, NO_PASSWORD)


@dataclass
class Corpus:
    """The bad files, the vault's KEKs and the secrets of everything written here."""

    dir: Path
    files: dict[str, str]
    kek_id: str
    other_kek_id: str
    ec_kek_id: str
    wrap_kek_id: str
    secrets: SecretSet
    pem_text: str = ""  # the good EC key's PKCS#8 PEM itself: what a user passes by mistake for a path
    pin: str = ""       # a PKCS#11 PIN put where it must never be: a pin-value in the URI

    def path(self, name: str) -> str:
        return self.files[name]


@pytest.fixture(scope="module")
def bad_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator["LocalVault"]:
    """A vault of the corpus's own, so its inventory holds only what the corpus made."""
    yield from serve_vault(tmp_path_factory.mktemp("bad-inputs-vault"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, bad_vault: "LocalVault", keys: dict[str, KeyFiles],
           secret_set: SecretSet) -> Corpus:
    import copy

    shared_vault, shared_kek = bad_vault, make_kek(bad_vault)
    root = tmp_path_factory.mktemp("bad-inputs")
    found = add_tokens(copy.deepcopy(secret_set), shared_vault)
    files: dict[str, str] = {}

    def put(name: str, data: bytes) -> None:
        path = root / name
        path.write_bytes(data)
        files[name] = str(path)

    def private(name: str, key: Any) -> None:
        put(name, _pkcs8(key))
        found.add_private_key(name, key)

    good = ec_key("P-256", 61)  # the same key as keys["ec"]
    good_pem = _pkcs8(good)
    good_der = good.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, NO_PASSWORD)
    put("malformed.pem", _armour(b"bm90IGEga2V5IGF0IGFsbA==" * 3))
    put("truncated.pem", good_pem[: len(good_pem) * 2 // 3])
    put("truncated.der", good_der[: len(good_der) // 2])
    put("oversized.pem", good_pem + b"\n" * (1024 * 1024 + 10))
    put("empty.pem", b"")
    put("random.bin", secrets.token_bytes(100))
    private("p224.pem", ec.generate_private_key(ec.SECP224R1()))
    private("brainpool.pem", ec.generate_private_key(ec.BrainpoolP256R1()))
    private("ed25519.pem", ed25519.Ed25519PrivateKey.generate())
    private("x25519.pem", x25519.X25519PrivateKey.generate())
    private("dsa.pem", dsa.generate_private_key(2048))
    private("dh.pem", dh.generate_parameters(generator=2, key_size=512).generate_private_key())
    private("rsa1024.pem", rsa_key(1024, 61))
    private("rsa2056.pem", rsa_key(2056, 61))
    put("public.pem", good.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    other = ec_key("P-256", 62)
    put("other.pub.pem", other.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    # An RSA-8192 public key: any odd 8192-bit modulus will do (generating a real pair costs seconds).
    modulus = int.from_bytes(secrets.token_bytes(1024), "big") | (1 << 8191) | 1
    rsa8192 = rsa.RSAPublicNumbers(65537, modulus).public_key()
    put("rsa8192.pub.pem", rsa8192.public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo))
    put("rsa1024.pub.pem", rsa_key(1024, 61).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    put("ec.pub.pem", Path(keys["ec"].public or "").read_bytes())
    (root / "a-directory").mkdir()
    files["a-directory"] = str(root / "a-directory")
    os.mkfifo(root / "a-fifo")  # open() blocks on a FIFO until a writer comes: a read must never get that far
    files["a-fifo"] = str(root / "a-fifo")
    files["dev-zero"] = "/dev/zero"  # size 0 and endless: must be refused, not read up to a limit
    (root / "fifo-link").symlink_to(root / "a-fifo")
    files["fifo-link"] = str(root / "fifo-link")

    # The vault's KEKs: ours, another import-only one, an EC key and an RSA-HSM key that may wrap, not import.
    client = make_key_client(shared_vault)
    other_kek = client.create_rsa_key(f"other-kek-{secrets.token_hex(3)}", size=2048, hardware_protected=True,
                                      key_operations=["import"])
    ec_kek = client.create_ec_key(f"ec-kek-{secrets.token_hex(3)}", curve="P-256", hardware_protected=True)
    wrap_kek = client.create_rsa_key(f"wrap-kek-{secrets.token_hex(3)}", size=2048, hardware_protected=True,
                                     key_operations=["wrapKey", "unwrapKey"])
    kek_jwk = client.get_key(shared_kek.rsplit("/", 2)[1], shared_kek.rsplit("/", 1)[1]).key
    kek_public = rsa.RSAPublicNumbers(int.from_bytes(kek_jwk.e, "big"), int.from_bytes(kek_jwk.n, "big")).public_key()
    put("kek.pub.pem", kek_public.public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo))
    ciphertext = wrap(kek_public, good_der)
    put("wrapped.bin", ciphertext)
    blob = json.loads(TransferBlob.build(shared_kek, ciphertext).to_json())
    put("good.byok", json.dumps(blob).encode())

    def blob_file(name: str, **changes: Any) -> None:
        doc = json.loads(json.dumps(blob))
        for dotted, value in changes.items():
            target = doc
            *parents, last = dotted.split(".")
            for parent in parents:
                target = target[parent]
            target[last] = value
        put(name, json.dumps(doc).encode())

    put("bad-json.byok", b'{"schema_version": "1.0.0", "header": ')
    blob_file("schema.byok", schema_version="2.0.0")
    blob_file("alg.byok", **{"header.alg": "RSA-OAEP-256"})
    blob_file("enc.byok", **{"header.enc": "A256GCM"})
    blob_file("base64.byok", ciphertext="!!not*base64url!!")
    blob_file("truncated-ciphertext.byok", ciphertext=b64url(ciphertext[:-24]))
    blob_file("short-ciphertext.byok", ciphertext=b64url(ciphertext[:100]))
    blob_file("other-kek.byok", **{"header.kid": other_kek.id})
    put("short.bin", ciphertext[:100])
    pin = "pin-" + secrets.token_hex(8)
    found.add_password("a PIN in a pkcs11 URI", pin)
    return Corpus(root, files, shared_kek, str(other_kek.id), str(ec_kek.id), str(wrap_kek.id), found,
                  pem_text=good_pem.decode(), pin=pin)


# --- ByokKey inputs through check and create ---------------------------------------------------------------
@dataclass(frozen=True)
class InputCase:
    """Changes to a valid declaration (values may name corpus files as ``@file``); ``prop`` is the input at
    fault; ``at`` says where it is caught: "check" (offline, so create refuses too) or "create" (needs the vault).
    """

    changes: dict[str, Any]
    prop: str
    at: str = "check"
    key: str = "ec"
    also: tuple[str, ...] = ()  # other words that name the culprit (a refusal only the vault can make)
    reason: str | None = None  # words the refusal must hold besides the input's name


TAGS_16 = {f"t{i}": "v" for i in range(16)}
ODD = "not a regular file"  # FIFOs, devices: refused before they are opened for reading
INPUT_CASES: dict[str, InputCase] = {
    # key material: malformed, truncated, oversized, not a key
    "key-malformed-pem": InputCase({"key_file": "@malformed.pem"}, "key_file"),
    "key-truncated-pem": InputCase({"key_file": "@truncated.pem"}, "key_file"),
    "key-truncated-der": InputCase({"key_file": "@truncated.der"}, "key_file"),
    "key-oversized": InputCase({"key_file": "@oversized.pem"}, "key_file"),
    "key-empty": InputCase({"key_file": "@empty.pem"}, "key_file"),
    "key-random-bytes": InputCase({"key_file": "@random.bin"}, "key_file"),
    "key-missing-file": InputCase({"key_file": "/nonexistent/key.pem"}, "key_file"),
    "key-is-a-directory": InputCase({"key_file": "@a-directory"}, "key_file"),
    "key-is-a-fifo": InputCase({"key_file": "@a-fifo"}, "key_file", reason=ODD),
    "key-is-a-link-to-a-fifo": InputCase({"key_file": "@fifo-link"}, "key_file", reason=ODD),
    "key-is-dev-zero": InputCase({"key_file": "@dev-zero"}, "key_file", reason=ODD),
    "public-key-is-a-fifo": InputCase({"key_file": "/pr-runner/has/no/key.pem", "public_key_file": "@a-fifo"},
                                      "public_key_file", reason=ODD),
    "wrapped-key-is-dev-zero": InputCase({"key_file": None, "wrapped_key_file": "@dev-zero",
                                          "public_key_file": "@ec.pub.pem"}, "wrapped_key_file", reason=ODD),
    "key-is-public": InputCase({"key_file": "@public.pem"}, "key_file"),
    # unsupported curves and kinds, RSA sizes
    "curve-p224": InputCase({"key_file": "@p224.pem"}, "key_file"),
    "curve-brainpool": InputCase({"key_file": "@brainpool.pem"}, "key_file"),
    "kind-ed25519": InputCase({"key_file": "@ed25519.pem"}, "key_file"),
    "kind-x25519": InputCase({"key_file": "@x25519.pem"}, "key_file"),
    "kind-dsa": InputCase({"key_file": "@dsa.pem"}, "key_file"),
    "kind-dh": InputCase({"key_file": "@dh.pem"}, "key_file"),
    "rsa-1024": InputCase({"key_file": "@rsa1024.pem"}, "key_file"),
    "rsa-2056-odd-size": InputCase({"key_file": "@rsa2056.pem"}, "key_file"),
    "rsa-8192-public-preview": InputCase({"key_file": "/pr-runner/has/no/key.pem", "public_key_file":
                                          "@rsa8192.pub.pem"}, "public_key_file"),
    # passwords
    # a secret where a path or URI goes: the engine prints a failing property's value, so it must not be one
    "key-file-holds-the-key-itself": InputCase({"key_file": "{pem_text}"}, "key_file", reason="not a file path"),
    "public-key-file-holds-the-key-itself": InputCase({"key_file": None, "wrapped_key_file": "@wrapped.bin",
                                                       "public_key_file": "{pem_text}"}, "public_key_file",
                                                      reason="not a file path"),
    "pkcs11-uri-with-pin-value": InputCase({"key_file": None, "key_password": None,
                                            "pkcs11_uri": "pkcs11:token=T;object=K;type=private?pin-value={pin}"},
                                           "pkcs11_uri", reason="pin-value"),
    "password-wrong": InputCase({"key_password": "wrong-" + KEY_PASSWORD[::-1]}, "key_password", key="rsa"),
    "password-absent": InputCase({"key_password": None}, "key_password", key="rsa"),
    "password-unneeded": InputCase({"key_password": KEY_PASSWORD}, "key_password"),
    "password-with-wrapped-key": InputCase({"key_file": None, "wrapped_key_file": "@wrapped.bin",
                                            "public_key_file": "@ec.pub.pem", "key_password": KEY_PASSWORD},
                                           "key_password"),
    # declared type/curve disagreeing with the material; unknown values
    "key-type-disagrees": InputCase({"key_type": "RSA"}, "key_type"),
    "key-type-unknown": InputCase({"key_type": "DSA"}, "key_type"),
    "curve-disagrees": InputCase({"curve": "P-384"}, "curve"),
    "curve-on-rsa": InputCase({"curve": "P-256"}, "curve", key="rsa"),
    "curve-unknown": InputCase({"curve": "P-224"}, "curve"),
    "public-key-mismatch": InputCase({"public_key_file": "@other.pub.pem"}, "public_key_file"),
    "both-key-and-wrapped": InputCase({"wrapped_key_file": "@wrapped.bin"}, "wrapped_key_file"),
    "wrapped-without-public": InputCase({"key_file": None, "wrapped_key_file": "@wrapped.bin"}, "public_key_file"),
    "no-material": InputCase({"key_file": None}, "key_file"),
    # the KEK
    "kek-not-rsa": InputCase({"kek_id": "{ec_kek}"}, "kek_id", at="create"),
    "kek-not-import-only": InputCase({"kek_id": "{wrap_kek}"}, "kek_id", at="create"),
    "kek-absent-version": InputCase({"kek_id": "{kek_base}/" + "0" * 32}, "kek_id", at="create"),
    "kek-id-http": InputCase({"kek_id": "{kek_http}"}, "kek_id"),
    "kek-id-unversioned": InputCase({"kek_id": "{kek_unversioned}"}, "kek_id"),
    "kek-id-other-host": InputCase({"kek_id": "https://elsewhere.vault.azure.net/keys/kek/" + "a" * 32}, "kek_id"),
    "kek-id-query-string": InputCase({"kek_id": "{kek}?api-version=7.4"}, "kek_id"),
    "kek-id-missing": InputCase({"kek_id": None}, "kek_id"),
    # where the key goes
    "name-underscore": InputCase({"key_name": "bad_name"}, "key_name"),
    "name-too-long": InputCase({"key_name": "k" * 128}, "key_name"),
    "name-path-traversal": InputCase({"key_name": "../../deletedkeys/x"}, "key_name"),
    "name-space": InputCase({"key_name": "two words"}, "key_name"),
    "name-empty": InputCase({"key_name": ""}, "key_name"),
    "name-is-the-kek": InputCase({"key_name": "{kek_name}"}, "key_name"),
    "vault-url-http": InputCase({"vault_url": "{vault_http}"}, "vault_url"),
    "vault-url-with-path": InputCase({"vault_url": "{vault}/keys"}, "vault_url"),
    "vault-url-not-a-url": InputCase({"vault_url": "my vault"}, "vault_url"),
    # properties
    "tags-16": InputCase({"tags": TAGS_16}, "tags"),
    "tag-name-257": InputCase({"tags": {"n" * 257: "v"}}, "tags"),
    "tag-value-257": InputCase({"tags": {"n": "v" * 257}}, "tags"),
    "tag-value-not-string": InputCase({"tags": {"n": 7}}, "tags"),
    "tags-not-a-map": InputCase({"tags": "owner=secops"}, "tags"),
    "date-garbage": InputCase({"not_before": "yesterday"}, "not_before"),
    "date-month-13": InputCase({"expires_on": "2030-13-01T00:00:00Z"}, "expires_on"),
    "date-no-timezone": InputCase({"expires_on": "2030-01-01T00:00:00"}, "expires_on"),
    "dates-reversed": InputCase({"not_before": "2031-01-01T00:00:00Z", "expires_on": "2030-01-01T00:00:00Z"},
                                "not_before"),
    "ops-unknown": InputCase({"key_ops": ["fly"]}, "key_ops"),
    "ops-import": InputCase({"key_ops": ["import"]}, "key_ops"),
    "ops-export": InputCase({"key_ops": ["export"]}, "key_ops"),
    "ops-empty": InputCase({"key_ops": []}, "key_ops"),
    "ops-not-a-list": InputCase({"key_ops": "sign"}, "key_ops"),
    "ops-encrypt-on-ec": InputCase({"key_ops": ["encrypt"]}, "key_ops"),
    "enabled-not-bool": InputCase({"enabled": "yes"}, "enabled"),
    # transfer blobs given as wrapped_key_file
    "blob-bad-json": InputCase({"key_file": None, "wrapped_key_file": "@bad-json.byok",
                                "public_key_file": "@ec.pub.pem"}, "wrapped_key_file"),
    "blob-schema-version": InputCase({"key_file": None, "wrapped_key_file": "@schema.byok",
                                      "public_key_file": "@ec.pub.pem"}, "wrapped_key_file"),
    "blob-alg": InputCase({"key_file": None, "wrapped_key_file": "@alg.byok",
                           "public_key_file": "@ec.pub.pem"}, "wrapped_key_file"),
    "blob-enc": InputCase({"key_file": None, "wrapped_key_file": "@enc.byok",
                           "public_key_file": "@ec.pub.pem"}, "wrapped_key_file"),
    "blob-bad-base64": InputCase({"key_file": None, "wrapped_key_file": "@base64.byok",
                                  "public_key_file": "@ec.pub.pem"}, "wrapped_key_file"),
    "blob-truncated-ciphertext": InputCase({"key_file": None, "wrapped_key_file": "@truncated-ciphertext.byok",
                                            "public_key_file": "@ec.pub.pem"}, "wrapped_key_file", at="create",
                                           also=("transfer blob",)),
    "blob-short-ciphertext": InputCase({"key_file": None, "wrapped_key_file": "@short-ciphertext.byok",
                                        "public_key_file": "@ec.pub.pem"}, "wrapped_key_file"),
    "blob-for-another-kek": InputCase({"key_file": None, "wrapped_key_file": "@other-kek.byok",
                                       "public_key_file": "@ec.pub.pem"}, "wrapped_key_file"),
    "raw-ciphertext-too-short": InputCase({"key_file": None, "wrapped_key_file": "@short.bin",
                                           "public_key_file": "@ec.pub.pem"}, "wrapped_key_file"),
}


def _finishes(call: Callable[[], Any], corpus: Corpus, seconds: float = 20.0) -> Any:
    """``call()``'s result, or AssertionError if it blocks (a FIFO opened for reading waits for a writer forever).

    It runs in a daemon thread; a stuck one is released by opening the corpus's FIFO for writing and closing it.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below, unchanged
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        os.close(os.open(corpus.path("a-fifo"), os.O_WRONLY | os.O_NONBLOCK))  # EOF for the blocked reader
        worker.join(seconds)
        raise AssertionError(f"blocked for {seconds:.0f} s (an odd file was opened or read)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


class Refusals:
    """The vault's inventory (every name and its version count) before a case, compared with the one after."""

    def __init__(self, vault: "LocalVault") -> None:
        self.client = make_key_client(vault)
        self.before = inventory(self.client)

    def imported_since(self) -> dict[str, Any]:
        after = inventory(self.client)
        return {k: (self.before.get(k), v) for k, v in after.items() if self.before.get(k) != v}


@pytest.fixture
def refusals(corpus: Corpus, bad_vault: "LocalVault") -> Refusals:
    return Refusals(bad_vault)


def _declared(case: InputCase, vault: "LocalVault", corpus: Corpus, keys: dict[str, KeyFiles],
              name: str) -> dict[str, Any]:
    kek_base = corpus.kek_id.rsplit("/", 1)[0]
    names = {
        "kek": corpus.kek_id, "kek_base": kek_base, "kek_http": corpus.kek_id.replace("https://", "http://"),
        "kek_unversioned": kek_base, "kek_name": kek_base.rsplit("/", 1)[1], "ec_kek": corpus.ec_kek_id,
        "wrap_kek": corpus.wrap_kek_id, "vault": vault.vault_url,
        "vault_http": vault.vault_url.replace("https://", "http://"), "pem_text": corpus.pem_text, "pin": corpus.pin,
    }
    key = keys[case.key]
    declared: dict[str, Any] = {"vault_url": vault.vault_url, "key_name": name, "kek_id": corpus.kek_id,
                                "key_file": key.private, "key_password": key.password}
    for prop, value in case.changes.items():
        if isinstance(value, str) and value.startswith("@"):
            value = corpus.path(value[1:])
        elif isinstance(value, str):
            value = value.format(**names)
        declared[prop] = value
    return {k: v for k, v in declared.items() if v is not None}


@pytest.mark.parametrize("case_id", list(INPUT_CASES))
def test_byok_key_input_is_refused_cleanly(case_id: str, corpus: Corpus, refusals: Refusals,
                                           bad_vault: "LocalVault", use_vault: Callable[..., Any],
                                           keys: dict[str, KeyFiles]) -> None:
    case = INPUT_CASES[case_id]
    use_vault(bad_vault)
    provider = ByokKeyProvider()
    name = f"bad-{secrets.token_hex(4)}"
    declared = _declared(case, bad_vault, corpus, keys, name)
    problems: list[str] = []

    result = _finishes(lambda: provider.check({}, declared), corpus)
    failures = [(f.property, f.reason) for f in result.failures]
    if case.at == "check":
        if len(failures) != 1:
            problems.append(f"check: {len(failures)} failures {failures}")
        for prop, reason in failures:
            # The engine prints the failing property's value (pulumi/pulumi#19465): a secret input is named in the
            # reason of a failure against no property instead.
            if prop in P.SECRET_INPUTS:
                problems.append(f"check names the secret property {prop}: the engine would print its value")
            elif prop and scan(str(declared.get(prop, "")), corpus.secrets):
                problems.append(f"check names {prop}, whose value holds a secret: the engine would print it")
            blamed = prop or reason.split(":", 1)[0]
            if blamed != case.prop:
                problems.append(f"check blames {blamed}, not {case.prop}: {reason}")
            problems += [f"check: {p}" for p in clear_error_problems(f"{prop}: {reason}", names=(case.prop,),
                                                                     secret_set=corpus.secrets)]
            if case.reason and case.reason not in reason:
                problems.append(f"check: the reason does not say {case.reason!r}: {reason}")
        inputs = declared  # the engine would stop here; create must refuse the raw inputs all the same
    else:
        if failures:
            problems.append(f"check should pass offline, got {failures}")
        inputs = result.inputs
    # At create (the engine calls it only with checked inputs; for "check" cases this is defence in depth, where
    # the refusal may name another input: the first one create reads).
    names = (case.prop, *case.also) if case.at == "create" else ()
    try:
        created = _finishes(lambda: provider.create(inputs), corpus)
        problems.append(f"create accepted it: {created.id}")
    except ByokError as exc:
        problems += [f"create: {p}" for p in clear_error_problems(str(exc), names=names, secret_set=corpus.secrets)]
        if case.reason and f"{case.prop}:" in str(exc) and case.reason not in str(exc):
            problems.append(f"create: the error does not say {case.reason!r}: {exc}")
    except Exception as exc:  # noqa: BLE001 - anything but a ByokError reaches the user as a traceback
        problems.append(f"create raised {type(exc).__name__} (a traceback for the user)")
    if refusals.imported_since():
        problems.append(f"imported: {refusals.imported_since()}")
    FIGURES.bad_input("ByokKey", clean=not problems)
    assert not problems, problems


# --- every byok command ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CliCase:
    """argv (``@file`` names a corpus file, ``{...}`` a vault fact); ``names``: what the error line must name."""

    argv: tuple[str, ...]
    names: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    writes: str | None = None  # an output the command must not leave behind
    reason: str | None = None  # words the error line must hold besides what it names


CLI_CASES: dict[str, CliCase] = {
    "keygen-rsa-1024": CliCase(("keygen", "--kty", "RSA", "--size", "1024", "-o", "{out}"), ("--size", "size"), writes="{out}"),
    "keygen-aes-512": CliCase(("keygen", "--kty", "oct", "--size", "512", "-o", "{out}"), ("--size",), writes="{out}"),
    "keygen-aes-password": CliCase(("keygen", "--kty", "oct", "--password-env", "PW", "-o", "{out}"), ("--kty",),
                                   env=(("PW", KEY_PASSWORD),), writes="{out}"),
    "keygen-rsa-with-curve": CliCase(("keygen", "--kty", "RSA", "--curve", "P-256", "-o", "{out}"), ("--curve",),
                                     writes="{out}"),
    "keygen-no-such-dir": CliCase(("keygen", "--kty", "EC", "-o", "/nonexistent/dir/k.pem"), ("-o",)),
    "keygen-exists": CliCase(("keygen", "--kty", "EC", "-o", "@public.pem"), ("-o",)),
    "keygen-password-env-unset": CliCase(("keygen", "--kty", "EC", "--password-env", "BYOK_UNSET_VAR", "-o",
                                          "{out}"), ("--password-env",), writes="{out}"),
    "wrap-kek-not-rsa": CliCase(("wrap", "--kek-pem", "@ec.pub.pem", "--kek-id", "{kek}", "--key", "@ec.pem",
                                 "-o", "{out}"), ("--kek-pem",), writes="{out}"),
    "wrap-kek-too-small": CliCase(("wrap", "--kek-pem", "@rsa1024.pub.pem", "--kek-id", "{kek}", "--key",
                                   "@ec.pem", "-o", "{out}"), ("--kek-pem",), writes="{out}"),
    "wrap-kek-too-big": CliCase(("wrap", "--kek-pem", "@rsa8192.pub.pem", "--kek-id", "{kek}", "--key",
                                 "@ec.pem", "-o", "{out}"), ("--kek-pem",), writes="{out}"),
    "wrap-kek-id-http": CliCase(("wrap", "--kek-pem", "@kek.pub.pem", "--kek-id", "{kek_http}", "--key",
                                 "@ec.pem", "-o", "{out}"), ("--kek-id",), writes="{out}"),
    "wrap-kek-id-unversioned": CliCase(("wrap", "--kek-pem", "@kek.pub.pem", "--kek-id", "{kek_unversioned}",
                                        "--key", "@ec.pem", "-o", "{out}"), ("--kek-id",), writes="{out}"),
    "wrap-key-is-the-key-itself": CliCase(("wrap", "--kek-pem", "@kek.pub.pem", "--kek-id", "{kek}", "--key",
                                           "{pem_text}", "-o", "{out}"), ("--key",), writes="{out}",
                                          reason="not a file path"),
    "wrap-key-truncated": CliCase(("wrap", "--kek-pem", "@kek.pub.pem", "--kek-id", "{kek}", "--key",
                                   "@truncated.pem", "-o", "{out}"), ("--key",), writes="{out}"),
    "wrap-key-ed25519": CliCase(("wrap", "--kek-pem", "@kek.pub.pem", "--kek-id", "{kek}", "--key",
                                 "@ed25519.pem", "-o", "{out}"), ("--key",), writes="{out}"),
    "wrap-key-public": CliCase(("wrap", "--kek-pem", "@kek.pub.pem", "--kek-id", "{kek}", "--key", "@public.pem",
                                "-o", "{out}"), ("--key",), writes="{out}"),
    "wrap-wrong-password": CliCase(("wrap", "--kek-pem", "@kek.pub.pem", "--kek-id", "{kek}", "--key", "@rsa.pem",
                                    "--password-env", "PW", "-o", "{out}"), ("--key", "password"),
                                   env=(("PW", "wrong-" + KEY_PASSWORD[::-1]),), writes="{out}"),
    "wrap-absent-password": CliCase(("wrap", "--kek-pem", "@kek.pub.pem", "--kek-id", "{kek}", "--key", "@rsa.pem",
                                     "-o", "{out}"), ("--key", "password"), writes="{out}"),
    "wrap-unneeded-password": CliCase(("wrap", "--kek-pem", "@kek.pub.pem", "--kek-id", "{kek}", "--key",
                                       "@ec.pem", "--password-env", "PW", "-o", "{out}"), ("--key", "password"),
                                      env=(("PW", KEY_PASSWORD),), writes="{out}"),
    "blob-ciphertext-too-short": CliCase(("blob", "--kek-id", "{kek}", "--wrapped", "@short.bin", "--kek-pem",
                                          "@kek.pub.pem", "-o", "{out}"), ("--wrapped",), writes="{out}"),
    "blob-kek-id-query": CliCase(("blob", "--kek-id", "{kek}?x=1", "--wrapped", "@wrapped.bin", "-o", "{out}"),
                                 ("--kek-id",), writes="{out}"),
    "wrap-key-fifo": CliCase(("wrap", "--kek-pem", "@kek.pub.pem", "--kek-id", "{kek}", "--key", "@a-fifo",
                              "-o", "{out}"), ("--key",), writes="{out}", reason=ODD),
    "wrap-kek-pem-dev-zero": CliCase(("wrap", "--kek-pem", "@dev-zero", "--kek-id", "{kek}", "--key", "@ec.pem",
                                      "-o", "{out}"), ("--kek-pem",), writes="{out}", reason=ODD),
    "blob-wrapped-fifo": CliCase(("blob", "--kek-id", "{kek}", "--wrapped", "@fifo-link", "-o", "{out}"),
                                 ("--wrapped",), writes="{out}", reason=ODD),
    "inspect-dev-zero": CliCase(("inspect", "@dev-zero"), ("/dev/zero",), reason=ODD),
    "import-byok-file-fifo": CliCase(("import", "--vault-url", "{vault}", "--name", "{name}", "--byok-file",
                                      "@a-fifo", "--kty", "EC", "--curve", "P-256"), ("--byok-file",), reason=ODD),
    "verify-key-dev-zero": CliCase(("verify", "--vault-url", "{vault}", "--name", "{kek_name}", "--key",
                                    "@dev-zero"), ("--key",), reason=ODD),
    "blob-wrapped-missing": CliCase(("blob", "--kek-id", "{kek}", "--wrapped", "/nonexistent.bin", "-o", "{out}"),
                                    ("--wrapped",), writes="{out}"),
    "inspect-bad-json": CliCase(("inspect", "@bad-json.byok"), ("bad-json.byok",)),
    "inspect-schema-version": CliCase(("inspect", "@schema.byok"), ("schema.byok",)),
    "inspect-alg": CliCase(("inspect", "@alg.byok"), ("alg.byok",)),
    "inspect-enc": CliCase(("inspect", "@enc.byok"), ("enc.byok",)),
    "inspect-bad-base64": CliCase(("inspect", "@base64.byok"), ("base64.byok",)),
    "inspect-short-ciphertext": CliCase(("inspect", "@short-ciphertext.byok"), ("short-ciphertext.byok",)),
    "kek-create-http": CliCase(("kek", "create", "--vault-url", "{vault_http}", "--name", "k"), ("--vault-url",)),
    "kek-create-bad-name": CliCase(("kek", "create", "--vault-url", "{vault}", "--name", "bad_name"), ("--name",)),
    "kek-create-size-1024": CliCase(("kek", "create", "--vault-url", "{vault}", "--name", "k", "--size", "1024"),
                                    ("--size",)),
    "kek-download-absent": CliCase(("kek", "download", "--vault-url", "{vault}", "--name", "no-such-kek", "-o",
                                    "{out}"), ("--name", "no-such-kek"), writes="{out}"),
    "kek-download-url-path": CliCase(("kek", "download", "--vault-url", "{vault}/keys", "--name", "k", "-o",
                                      "{out}"), ("--vault-url",), writes="{out}"),
    "kek-download-bad-name": CliCase(("kek", "download", "--vault-url", "{vault}", "--name", "a/../b", "-o",
                                      "{out}"), ("--name",), writes="{out}"),
    "verify-bad-name": CliCase(("verify", "--vault-url", "{vault}", "--name", "no such key", "--key", "@ec.pem"),
                               ("--name",)),
    "import-bad-json": CliCase(("import", "--vault-url", "{vault}", "--name", "{name}", "--byok-file",
                                "@bad-json.byok", "--kty", "EC", "--curve", "P-256"), ("--byok-file",)),
    "import-no-kty": CliCase(("import", "--vault-url", "{vault}", "--name", "{name}", "--byok-file",
                              "@good.byok"), ("--kty", "--public-key")),
    "import-other-kek": CliCase(("import", "--vault-url", "{vault}", "--name", "{name}", "--byok-file",
                                 "@other-kek.byok", "--kty", "EC", "--curve", "P-256"), ("--byok-file", "{name}")),
    "import-truncated-ciphertext": CliCase(("import", "--vault-url", "{vault}", "--name", "{name}", "--byok-file",
                                            "@truncated-ciphertext.byok", "--kty", "EC", "--curve", "P-256"),
                                           ("--byok-file", "{name}")),
    "import-bad-name": CliCase(("import", "--vault-url", "{vault}", "--name", "../keys/x", "--byok-file",
                                "@good.byok", "--kty", "EC", "--curve", "P-256"), ("--name",)),
    "import-17-tags": CliCase(("import", "--vault-url", "{vault}", "--name", "{name}", "--byok-file", "@good.byok",
                               "--kty", "EC", "--curve", "P-256", "--tags", *[f"t{i}=v" for i in range(17)]),
                              ("--tags",)),
    "import-dates-reversed": CliCase(("import", "--vault-url", "{vault}", "--name", "{name}", "--byok-file",
                                      "@good.byok", "--kty", "EC", "--curve", "P-256", "--not-before",
                                      "2031-01-01T00:00:00Z", "--expires", "2030-01-01T00:00:00Z"),
                                     ("--not-before",)),
    "import-bad-date": CliCase(("import", "--vault-url", "{vault}", "--name", "{name}", "--byok-file",
                                "@good.byok", "--kty", "EC", "--curve", "P-256", "--expires", "soon"),
                               ("--expires",)),
    "import-unknown-op": CliCase(("import", "--vault-url", "{vault}", "--name", "{name}", "--byok-file",
                                  "@good.byok", "--ops", "fly"), ("--ops",)),
    "verify-key-malformed": CliCase(("verify", "--vault-url", "{vault}", "--name", "{kek_name}", "--key",
                                     "@malformed.pem"), ("--key",)),
    "verify-key-dsa": CliCase(("verify", "--vault-url", "{vault}", "--name", "{kek_name}", "--key", "@dsa.pem"),
                              ("--key",)),
    "serve-faults-fifo": CliCase(("local-vault", "serve", "--faults", "@a-fifo"), ("--faults",), reason=ODD),
    "serve-behaviour-dev-zero": CliCase(("local-vault", "serve", "--behaviour", "@dev-zero"), ("--behaviour",),
                                        reason=ODD),
    "serve-bad-faults-file": CliCase(("local-vault", "serve", "--faults", "@bad-json.byok"), ("--faults",)),
    "serve-data-is-a-file": CliCase(("local-vault", "serve", "--data", "@empty.pem"), ("--data",)),
    "serve-port-out-of-range": CliCase(("local-vault", "serve", "--port", "70000"), ("--port",)),
    "demo-unknown-argument": CliCase(("demo", "--fast"), ("--fast",)),
}


def _argv(case: CliCase, corpus: Corpus, vault: "LocalVault", out: str, name: str) -> list[str]:
    kek_base = corpus.kek_id.rsplit("/", 1)[0]
    names = {"kek": corpus.kek_id, "kek_http": corpus.kek_id.replace("https://", "http://"),
             "kek_unversioned": kek_base, "kek_name": kek_base.rsplit("/", 1)[1], "vault": vault.vault_url,
             "vault_http": vault.vault_url.replace("https://", "http://"), "out": out, "name": name,
             "pem_text": corpus.pem_text}
    return [corpus.path(arg[1:]) if arg.startswith("@") else arg.format(**names) for arg in case.argv]


@pytest.fixture(scope="module")
def cli_keys(corpus: Corpus, keys: dict[str, KeyFiles]) -> None:
    """The good key files the CLI cases name (``@ec.pem``, ``@rsa.pem``), beside the corpus."""
    for name in ("ec", "rsa"):
        Path(corpus.dir / f"{name}.pem").write_bytes(Path(keys[name].private).read_bytes())
        corpus.files[f"{name}.pem"] = str(corpus.dir / f"{name}.pem")


@pytest.mark.parametrize("case_id", list(CLI_CASES))
def test_byok_command_refuses_cleanly(case_id: str, corpus: Corpus, cli_keys: None, refusals: Refusals,
                                      bad_vault: "LocalVault", use_vault: Callable[..., Any],
                                      capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    case = CLI_CASES[case_id]
    use_vault(bad_vault)
    monkeypatch.setattr(cli, "progress", lambda message: None)  # status lines, not errors
    for var, value in case.env:
        monkeypatch.setenv(var, value)
    out = str(corpus.dir / f"out-{secrets.token_hex(4)}")
    name = f"cli-bad-{secrets.token_hex(4)}"
    argv = _argv(case, corpus, bad_vault, out, name)
    try:
        code = _finishes(lambda: main(argv), corpus)
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 2
    captured = capsys.readouterr()
    names = tuple(n.format(name=name) for n in case.names)
    problems = [] if code not in (0, None) else [f"exit code {code}"]
    problems += clear_error_problems(captured.err, names=names, secret_set=corpus.secrets)
    if case.reason and case.reason not in captured.err:
        problems.append(f"the error line does not say {case.reason!r}")
    if any(found for found in [captured.out.strip()] if found):
        problems += [f"stdout: {p}" for p in clear_error_problems(captured.out, names=(), secret_set=corpus.secrets)
                     if "traceback" in p or "leaks" in p]
    if case.writes and os.path.exists(case.writes.format(out=out)):
        problems.append(f"left {case.writes.format(out=out)} behind")
    if refusals.imported_since():
        problems.append(f"imported: {refusals.imported_since()}")
    FIGURES.bad_input("byok " + argv[0] + (f" {argv[1]}" if argv[0] in ("kek", "local-vault") else ""),
                      clean=not problems)
    assert not problems, (problems, captured.err)
