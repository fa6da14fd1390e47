"""The ``byok`` command line: the manual BYOK ceremony as commands (also ``python -m byok_component``)."""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import sys
import traceback
from typing import TYPE_CHECKING, Callable, NoReturn, Sequence

from .__version__ import __version__
from .blob import TransferBlob, looks_like_transfer_blob
from .console import (HelpFormatter, LOCAL_VAULT_ENV_HINT, ONLINE_EPILOG, add_json, add_out, add_vault_url,
                      next_step, progress, quiet_azure_logs, report)
from .files import read_input, write_output
from .hardening import no_core_dumps
from .errors import ByokError, InputError, KekError, KeyMaterialError, UnwrapError, VaultError
from .keys import (AES_KEY_ENCODINGS, KeyType, describe_public_key, generate_private_key, load_kek_public_key,
                   load_public_key, load_target_key, private_key_pem)
from . import guard, ownership, verify
from .wrap import check_kek, split, wrap

if TYPE_CHECKING:  # pragma: no cover
    from .vault import VaultKey

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_ERROR, EXIT_MISMATCH, EXIT_INTERNAL = 0, 1, 1, 3


# --- small I/O helpers (the shell around the pure core) ------------------------------------------
def read_file(path: str, *, input: str) -> bytes:  # noqa: A002
    return read_input(path, input=input)


def password_from_env(var: str | None) -> bytes | None:
    """The password lives in an environment variable, never on the command line (shell history, ps)."""
    if not var:
        return None
    value = os.environ.get(var)
    if value is None:
        raise InputError(next_step(f"environment variable {var} is not set",
                                   f"export {var} with the key's password (read with: read -rs {var}; export {var})"),
                         input="--password-env")
    if not value:
        raise InputError(f"environment variable {var} is empty", input="--password-env")
    return value.encode("utf-8")


def write_file(path: str, data: bytes, *, private: bool = False, force: bool = False, input: str = "-o") -> None:  # noqa: A002
    """Write atomically; private files are 0600, others 0644, both narrowed by the umask (files.write_output)."""
    write_output(path, data, private=private, force=force, input=input)


# What the library says in its own terms (property names), and the flag a CLI user gives instead.
_KEY_HINTS = (
    (re.compile(r"encrypted and no password"),
     "give its password with --password-env VAR (VAR: an environment variable holding it)"),
    (re.compile(r"\s*\([^()]*\bkey type oct\)"), "for a raw AES key file add --kty oct"),
)


def load_key_arg(path: str, password_env: str | None, kty: KeyType | None, *, input: str = "--key",  # noqa: A002, ANN201
                 encoding: str | None = None, prime_check: bool = False):
    try:
        return load_target_key(read_file(path, input=input), password=password_from_env(password_env), kty=kty,
                               input=input, encoding=encoding, prime_check=prime_check)  # type: ignore[arg-type]
    except KeyMaterialError as exc:
        for said, step in _KEY_HINTS:
            if said.search(exc.reason):
                reason = said.sub("", exc.reason) if "oct" in said.pattern else exc.reason
                raise KeyMaterialError(next_step(reason, step), input=exc.input) from None
        raise


def _describe(info) -> str:  # noqa: ANN001
    """'EC P-256', 'RSA 4096-bit', 'AES-256 (oct)': an AES key's size up front (a text file read as raw bytes
    would show here as the wrong size)."""
    if info.kty == "oct":
        return f"AES-{info.size} (oct)"
    return f"{info.kty} {info.curve or info.size}{'' if info.curve else '-bit'}"


# --- offline commands ----------------------------------------------------------------------------
def cmd_keygen(args: argparse.Namespace) -> int:
    kty: KeyType = args.kty
    if kty == "oct":
        size = args.size or 256
        if size not in (128, 192, 256):
            raise InputError(f"AES key size must be 128, 192 or 256 bits, got {size}", input="--size")
        if args.curve or args.password_env:
            raise InputError("only RSA and EC keys take --curve or --password-env", input="--kty")
        if args.public_out:
            raise InputError("an AES key has no public half", input="--public-out")
        write_file(args.out, secrets.token_bytes(size // 8), private=True, force=args.force)
        report(args, {"file": args.out, "kty": "oct", "size": size},
               f"wrote {args.out}: oct {size}-bit raw AES key (test material)")
        return EXIT_OK
    if kty == "RSA" and args.curve:
        raise InputError("RSA keys take --size, not --curve", input="--curve")
    if kty == "EC" and args.size:
        raise InputError("EC keys take --curve, not --size", input="--size")
    if kty == "RSA" and (args.size or 4096) >= 4096:
        progress(f"generating RSA-{args.size or 4096} (a few seconds)")
    key = generate_private_key(kty, size=args.size, curve=args.curve)
    info = describe_public_key(key.public_key())  # type: ignore[attr-defined]
    write_file(args.out, private_key_pem(key, password_from_env(args.password_env)), private=True, force=args.force)
    if args.public_out:
        write_file(args.public_out, (info.public_pem or "").encode("ascii"), force=args.force, input="--public-out")
    report(args, {"file": args.out, "public_file": args.public_out, "kty": info.kty, "size": info.size,
                  "curve": info.curve, "fingerprint": info.fingerprint},
           f"wrote {args.out}: {info.kty} {info.curve or info.size} test key, fingerprint {info.fingerprint}"
           + (f"; public key in {args.public_out}" if args.public_out else ""))
    return EXIT_OK


def _kek_from_pem(path: str):  # noqa: ANN202
    """--kek-pem read as a BYOK KEK: an RSA public key of a size the vault uses (wrap.check_kek)."""
    return check_kek(load_kek_public_key(read_file(path, input="--kek-pem"), input="--kek-pem"), input="--kek-pem")


def _wrap_kek(args: argparse.Namespace):  # noqa: ANN202
    """The KEK a wrap uses, from --kek-pem or from the vault (--vault-url), checked against a --kek-fingerprint pin."""
    from .kekpin import check_pin, kek_from_vault
    if bool(args.kek_pem) == bool(args.vault_url):
        raise InputError("give the KEK as --kek-pem FILE, or --vault-url URL to read it from the vault (one of them)",
                         input="--kek-pem")
    if args.kek_pem:
        kek = _kek_from_pem(args.kek_pem)
        source = args.kek_pem
    else:
        kek = check_kek(kek_from_vault(args.vault_url, args.kek_id), input="--kek-id")
        source = f"the vault ({args.kek_id})"
    return kek, check_pin(kek, args.kek_fingerprint, source=source)


def cmd_wrap(args: argparse.Namespace) -> int:
    if bool(args.key) == bool(args.pkcs11):
        raise InputError("give the target key as --key FILE or --pkcs11 URI (one of them)", input="--key")
    kek, kek_fingerprint = _wrap_kek(args)
    if args.pkcs11:
        wrapped = _wrap_in_token(args, kek)
        public, ciphertext, how = wrapped.public, wrapped.ciphertext, f"inside the token, {wrapped.mechanism}"
    else:
        if args.pkcs11_module or args.public_out:
            raise InputError("applies to --pkcs11 only", input="--pkcs11-module" if args.pkcs11_module
                             else "--public-out")
        target = load_key_arg(args.key, args.password_env, args.kty, encoding=args.key_encoding, prime_check=True)
        public, ciphertext, how = target.public, wrap(kek, target.wrapping_plaintext()), "CKM_RSA_AES_KEY_WRAP"
    blob = _build_blob(args.kek_id, ciphertext)
    write_file(args.out, blob.to_json(), force=args.force)
    if args.public_out:
        write_file(args.public_out, (public.public_pem or "").encode("ascii"), force=args.force, input="--public-out")
    parts = split(blob.ciphertext, kek.key_size // 8)
    report(args, {"file": args.out, "public_file": args.public_out, "kek_id": blob.kid, "kty": public.kty,
                  "size": public.size, "curve": public.curve, "fingerprint": public.fingerprint,
                  "ciphertext_bytes": len(blob.ciphertext), "rsa_part_bytes": len(parts.rsa_part),
                  "kwp_part_bytes": len(parts.kwp_part), "wrapped": how, "kek_fingerprint": kek_fingerprint,
                  "kek_pinned": bool(args.kek_fingerprint), "kek_source": "file" if args.kek_pem else "vault"},
           f"wrote {args.out}" + (f" and {args.public_out}" if args.public_out else "") +
           f": {_describe(public)} key, fingerprint {public.fingerprint}, ciphertext "
           f"{len(blob.ciphertext)} bytes (RSA-OAEP {len(parts.rsa_part)} + AES-KWP {len(parts.kwp_part)}; {how}), "
           + ("KEK pinned" if args.kek_fingerprint else "KEK read from the vault over TLS" if args.vault_url
              else "KEK NOT pinned: compare with the stack's kekFingerprint")
           + f", for KEK {kek_fingerprint}")
    return EXIT_OK


def _token_key(args: argparse.Namespace):  # noqa: ANN202
    """The --pkcs11 key source; the PIN comes from $VAR (--pin-env) or the URI's pin-source, never argv."""
    from .pkcs11 import ENV_PIN, TokenKey
    if args.password_env or args.kty:
        raise InputError("does not apply to --pkcs11 (the token knows the key's type)",
                         input="--password-env" if args.password_env else "--kty")
    var = args.pin_env or ENV_PIN
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", var):
        raise InputError("must name an environment variable (the PIN itself never goes on the command line)",
                         input="--pin-env")
    pin = os.environ.get(var) or None
    if args.pin_env and pin is None:
        raise InputError(f"environment variable {var} is not set or empty", input="--pin-env")
    try:
        return TokenKey.from_inputs(args.pkcs11, args.pkcs11_module, pin, uri_input="--pkcs11",
                                    module_input="--pkcs11-module")
    except InputError as exc:
        raise exc.for_input("--pin-env" if exc.input == "pkcs11_pin" else exc.input or "--pkcs11") from None


def _token_error(exc: ByokError) -> ByokError:
    names = {"pkcs11_uri": "--pkcs11", "pkcs11_module": "--pkcs11-module", "pkcs11_pin": "--pin-env"}
    return exc.for_input(names.get(exc.input or "", exc.input or "--pkcs11"))


def _wrap_in_token(args: argparse.Namespace, kek: object):  # noqa: ANN202
    from .pkcs11 import wrap_in_token
    key = _token_key(args)
    try:
        wrapped = wrap_in_token(key, kek)
    except ByokError as exc:
        raise _token_error(exc) from None
    if args.public_out and wrapped.public.public_pem is None:
        raise InputError("an AES key has no public key to write", input="--public-out")
    return wrapped


def cmd_pkcs11_probe(args: argparse.Namespace) -> int:
    """Test a token's key wrap with a throwaway secret, then whether the named key can be wrapped exactly on it;
    exit 1 when the key would be refused."""
    from .pkcs11 import describe_verdict, preflight, probe
    args.password_env = args.kty = None
    key = _token_key(args)
    try:
        verdict = probe(key)
    except ByokError as exc:
        raise _token_error(exc) from None
    try:
        public, problem = preflight(key), None
    except ByokError as exc:
        public, problem = None, _token_error(exc)
    lines = [describe_verdict(verdict)] + ([] if public is None else [
        f"{key.where()}: {public.kty} {public.curve or public.size}, fingerprint {public.fingerprint}: wraps "
        "exactly on this token"])
    report(args, {"token": verdict.token, "mechanism": verdict.mechanism, "exact": verdict.exact,
                  "pads": verdict.pads, "detail": verdict.detail, "key_ok": problem is None,
                  "fingerprint": public.fingerprint if public else None}, lines)
    if problem is not None:
        print(f"byok: error: {problem}", file=sys.stderr)
        return EXIT_MISMATCH
    return EXIT_OK


def _build_blob(kek_id: str, ciphertext: bytes) -> TransferBlob:
    try:
        return TransferBlob.build(kek_id, ciphertext)
    except InputError as exc:
        raise exc.for_input("--kek-id" if exc.input == "kek_id" else (exc.input or "--wrapped")) from None


def cmd_blob(args: argparse.Namespace) -> int:
    ciphertext = read_file(args.wrapped, input="--wrapped")
    if looks_like_transfer_blob(ciphertext):  # the provider's wrapped_key_file test
        # The provider's wrapped_key_file takes a .byok file as well as raw ciphertext; here the output *is*
        # a .byok file, so packaging one again would nest JSON in JSON: say what to do with it instead.
        raise InputError(next_step(f"{args.wrapped} is already a .byok transfer blob, not raw ciphertext",
                                   f"import it as it is (byok import --byok-file {args.wrapped}) or check it "
                                   f"with byok inspect {args.wrapped}"), input="--wrapped")
    if args.kek_pem:
        kek = _kek_from_pem(args.kek_pem)
        try:
            split(ciphertext, kek.key_size // 8)
        except UnwrapError as exc:
            raise InputError(exc.reason, input="--wrapped") from None
    blob = _build_blob(args.kek_id, ciphertext)
    write_file(args.out, blob.to_json(), force=args.force)
    report(args, {"file": args.out, "kek_id": blob.kid, "ciphertext_bytes": len(ciphertext)},
           f"wrote {args.out}: ciphertext {len(ciphertext)} bytes for KEK {blob.kid}")
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    blob = TransferBlob.parse(read_file(args.file, input="FILE"), input=args.file)
    report_: dict[str, object] = {
        "file": args.file, "schema_version": "1.0.0", "kid": blob.kid, "alg": "dir",
        "enc": "CKM_RSA_AES_KEY_WRAP", "generator": blob.generator, "ciphertext_bytes": len(blob.ciphertext),
    }
    exit_code = EXIT_OK
    if args.kek_fingerprint and not args.kek_pem:
        raise InputError("needs --kek-pem (the pin is checked against that file)", input="--kek-fingerprint")
    if args.kek_pem:
        from .kekpin import check_pin
        kek = load_kek_public_key(read_file(args.kek_pem, input="--kek-pem"), input="--kek-pem")
        modulus = kek.key_size // 8
        report_.update(kek_bits=kek.key_size, kek_fingerprint=check_pin(kek, args.kek_fingerprint,
                                                                        source=args.kek_pem))
        try:
            parts = split(blob.ciphertext, modulus)
            # Only sizes can be checked offline: any RSA key of this size (even the target's own) gives the same
            # split; whether the ciphertext opens under the vault's KEK only the vault can say.
            report_.update(rsa_part_bytes=len(parts.rsa_part), kwp_part_bytes=len(parts.kwp_part),
                           sizes_fit_kek=True, wrapped_key_bytes_max=len(parts.kwp_part) - 8,
                           checked="sizes fit this KEK; only the vault can prove the wrap (byok import)")
        except UnwrapError as exc:
            report_.update(sizes_fit_kek=False, problem=exc.reason)
            exit_code = EXIT_MISMATCH
    else:  # no KEK: show the split for every KEK size the length admits
        report_["possible_splits"] = [
            {"kek_bits": bits, "rsa_part_bytes": bits // 8, "kwp_part_bytes": len(blob.ciphertext) - bits // 8}
            for bits in (2048, 3072, 4096)
            if len(blob.ciphertext) - bits // 8 >= 16 and (len(blob.ciphertext) - bits // 8) % 8 == 0]
    report(args, report_, [f"{key:>22}: {_human(value)}" for key, value in report_.items()])
    return exit_code


def _human(value: object) -> str:
    """A value as a person reads it: lists of dicts as 'a=1 b=2; ...', booleans as yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "; ".join(" ".join(f"{k}={v}" for k, v in item.items()) if isinstance(item, dict) else str(item)
                         for item in value) or "none"
    return str(value)


# --- online commands -----------------------------------------------------------------------------
def _vault_client(url: str):  # noqa: ANN202
    from . import vault
    try:
        return vault.client(url)
    except InputError as exc:
        raise exc.for_input("--vault-url") if exc.input in (None, "vault_url") else exc from None


def _key_name(name: str) -> str:
    from .kid import check_key_name
    return check_key_name(name, input="--name")


def cmd_kek_create(args: argparse.Namespace) -> int:
    from . import vault
    from .guard import refuse_existing_kek
    _key_name(args.name)
    kv = _vault_client(args.vault_url)
    refuse_existing_kek(vault.get_key(kv, args.name), args.name, args.vault_url)
    progress(f"creating KEK {args.name} (RSA-HSM {args.size}, ops import) in {args.vault_url}")
    created = vault.create_kek(kv, args.name, args.size)
    report(args, {"kid": created.kid, "name": created.name, "version": created.version, "kty": created.kty,
                  "key_ops": list(created.key_ops), "fingerprint": created.fingerprint}, created.kid)
    return EXIT_OK


def cmd_kek_download(args: argparse.Namespace) -> int:
    from . import vault
    kv = _vault_client(args.vault_url)
    vk = vault.get_key(kv, _key_name(args.name), args.version)
    if vk is None:
        if args.version and (current := vault.get_key(kv, args.name)) is not None:
            # az cannot reach a local (loopback) vault, so it is suggested only for Azure's.
            listing = ("" if vault.is_loopback(args.vault_url) else ", or list them: az keyvault key "
                       f"list-versions --id {args.vault_url}/keys/{args.name}")
            raise InputError(next_step(f"key {args.name} in {args.vault_url} has no version {args.version}",
                                       f"leave out --version for the current one ({current.version}){listing}"),
                             input="--version")
        raise InputError(next_step(f"no key {args.name} in {args.vault_url}",
                                   f"create one: byok kek create --vault-url {args.vault_url} --name {args.name}"),
                         input="--name")
    if vk.public is None or vk.public.public_pem is None:
        raise KekError(f"{vk.kid} has no public key to download ({vk.kty})", input="--name")
    write_file(args.out, vk.public.public_pem.encode("ascii"), force=args.force)
    report(args, {"file": args.out, "kid": vk.kid, "kty": vk.kty, "size": vk.public.size,
                  "key_ops": list(vk.key_ops), "fingerprint": vk.public.fingerprint},
           f"wrote {args.out}: {vk.kty} {vk.public.size}-bit public key of {vk.kid}")
    return EXIT_OK


def _parse_tags(pairs: Sequence[str] | None) -> dict[str, str] | None:
    if pairs is None:
        return None
    tags: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InputError(f"tags must be name=value, got {pair[:40]!r}", input="--tags")
        if name.lower() in ownership.RESERVED_TAGS:
            raise InputError(f"tag {name} is reserved (byok writes {', '.join(ownership.RESERVED_TAGS)})",
                             input="--tags")
        tags[name] = value
    # Key Vault's 15 tags per version, less the ones byok import may add (verify.py).
    if len(tags) > ownership.MAX_USER_TAGS or any(len(k) > 256 or len(v) > 256 for k, v in tags.items()):
        raise InputError(f"at most {ownership.MAX_USER_TAGS} tags (Key Vault keeps 15 and byok reserves "
                         f"{len(ownership.RESERVED_TAGS)}), names and values up to 256 characters", input="--tags")
    return tags


def cmd_import(args: argparse.Namespace) -> int:
    from . import rfc3339, vault
    from .kid import check_key_name
    check_key_name(args.name, input="--name")
    kty, curve, expected = args.kty, args.curve, None
    if args.public_key:  # the type comes from the key itself, and the import is checked against it
        public = load_public_key(read_file(args.public_key, input="--public-key"), input="--public-key")
        if curve and curve != public.curve:
            raise InputError(f"--curve {curve} disagrees with --public-key, which is {_describe(public)}",
                             input="--curve")
        kty, curve, expected = public.kty, public.curve, public.fingerprint
    if kty == "EC" and not curve:
        raise InputError("--kty EC needs --curve (P-256, P-384, P-521 or P-256K)", input="--curve")
    if kty != "EC" and curve:
        raise InputError("--curve applies to --kty EC only", input="--curve")
    blob = TransferBlob.parse(read_file(args.byok_file, input="--byok-file"), input="--byok-file")
    guard.check_blob_vault(blob, args.vault_url)  # before anything is sent
    not_before = rfc3339.parse(args.not_before, input="--not-before") if args.not_before else None
    expires = rfc3339.parse(args.expires, input="--expires") if args.expires else None
    if not_before and expires and not_before >= expires:
        raise InputError("--not-before must be before --expires", input="--not-before")
    tags = _parse_tags(args.tags)
    kv = _vault_client(args.vault_url)
    existing = vault.get_key(kv, args.name)
    if guard.finishes(existing, blob, public if args.public_key else None, new_version=args.new_version):
        # This very file's version, left disabled by an earlier run, holds --public-key: compare and make it live
        # (verify.settle, as the provider does for wrapped_key_file) instead of refusing or importing it again.
        assert existing is not None
        progress(f"{args.name}'s current version {existing.version} came from this file and was left disabled "
                 "unverified; it holds --public-key: making it live (nothing is imported)")
        imported = verify.settle(kv, existing, public, enabled=not args.disabled, wrapped="--byok-file",
                                 source="--public-key")
        return _report_import(args, imported)
    guard.refuse_taken(existing, blob, public if args.public_key else None, new_version=args.new_version)
    # As the provider does with wrapped_key_file (verify.py): tagged with the ciphertext's digest, and with
    # --public-key imported disabled, compared, and only then enabled.
    checked = expected is not None
    tags = verify.pending_tags(tags or {}, blob.ciphertext, checkable=checked)
    progress(f"importing {args.name} ({kty}-HSM) into {args.vault_url}"
             + (", disabled until its public key matches --public-key" if checked else
                "" if kty == "oct" else ", live without a check: --public-key would import it disabled and "
                "enable it only if it holds that key"))
    args.interrupted_hint = _landed_hint(args)
    try:
        imported = vault.import_blob(kv, args.name, blob, kty=kty, curve=curve, key_ops=args.ops,
                                     enabled=not args.disabled and not checked, not_before=not_before,
                                     expires_on=expires, tags=tags, current=existing,
                                     expected_tags={verify.CIPHERTEXT_TAG: tags[verify.CIPHERTEXT_TAG]})
    except VaultError as exc:
        if exc.status is None or exc.status >= 500:  # no answer, or the vault failed: it may have landed
            raise VaultError(next_step(exc.reason, _landed_hint(args)), input=exc.input, status=exc.status,
                             code=exc.code) from None
        raise
    if checked:
        try:
            imported = verify.settle(kv, imported, public, enabled=not args.disabled, wrapped="--byok-file",
                                     source="--public-key")
        except ByokError as exc:
            raise exc.for_input("--byok-file") from None
    return _report_import(args, imported)


def _report_import(args: argparse.Namespace, imported: "VaultKey") -> int:
    report(args, {"kid": imported.kid, "kty": imported.kty, "key_ops": list(imported.key_ops),
                  "enabled": imported.enabled, "fingerprint": imported.fingerprint},
           f"imported {imported.kid}: {imported.kty}, ops {' '.join(imported.key_ops) or '(none)'}"
           + (f", fingerprint {imported.fingerprint}" if imported.fingerprint else "")
           + ("" if imported.enabled else ", disabled"))
    return EXIT_OK


def _landed_hint(args: argparse.Namespace) -> str:
    return (f"the import may or may not have landed; check before importing again: byok verify --vault-url "
            f"{args.vault_url} --name {args.name} --public-key FILE")


def cmd_verify(args: argparse.Namespace) -> int:
    """Prove what the vault's current version holds: the material (public keys compared, or for an AES key the
    vault's wrapKey probe), enabled and ops against what is expected. Exit 0 only when all of it holds."""
    from . import guard, vault
    if bool(args.key) == bool(args.public_key):
        raise InputError("give --public-key FILE (RSA/EC: nothing secret needed) or --key FILE (a private key, or "
                         "an AES key file)", input="--public-key")
    if args.public_key:
        if args.password_env or args.key_encoding or args.kty:
            raise InputError("applies to --key only", input="--password-env" if args.password_env else
                             "--key-encoding" if args.key_encoding else "--kty")
        public = load_public_key(read_file(args.public_key, input="--public-key"), input="--public-key")
        target = None
    else:
        target = load_key_arg(args.key, args.password_env, args.kty, encoding=args.key_encoding)
        public = target.public if target.kty != "oct" else None
    kv = _vault_client(args.vault_url)
    vk = vault.get_key(kv, _key_name(args.name))
    if vk is None:
        report(args, {"name": args.name, "vault_url": args.vault_url, "verified": False, "found": False},
               f"{args.name}: not found in {args.vault_url}")
        return EXIT_MISMATCH
    if public is not None:
        result = guard.verdict(vk, public=public, expect_ops=args.ops, expect_enabled=not args.disabled)
    else:
        assert target is not None
        probe = vault.holds_aes_key(kv, vk, target.wrapping_plaintext()) if vk.kty.startswith("oct") else None
        result = guard.verdict(vk, aes_match=probe, aes_file=target.public, expect_ops=args.ops,
                               expect_enabled=not args.disabled)
    report(args, {"name": args.name, "vault_url": args.vault_url, "found": True, **result.data},
           [f"{vk.kid}: {'VERIFIED' if result.ok else 'NOT verified'}", *(f"  {line}" for line in result.lines)])
    return EXIT_OK if result.ok else EXIT_MISMATCH


def cmd_local_vault_serve(args: argparse.Namespace) -> int:
    from .localvault.serve import main as serve_main
    return serve_main(args.data, args.port, args.sku, args.faults, args.behaviour)


def cmd_local_vault_env(args: argparse.Namespace) -> int:
    from .localvault.serve import running_info
    info = running_info(args.data, wait=args.wait)
    exports = {"BYOK_VAULT_URL": info["vault_url"], "BYOK_CA_BUNDLE": info["ca_cert"],
               "BYOK_ACCESS_TOKEN_FILE": info["token_file"]}
    report(args, exports, [f"export {name}={shlex.quote(value)}" for name, value in exports.items()])
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    return run_demo(keep=args.keep)


# --- parser --------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr like every other error (exit status 2), and no
    abbreviated options: ``--pin 1234`` must not be taken as ``--pin-env 1234`` (and echoed as a variable name)."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments: "):
            # Only the option names: a value typed by mistake (``--pin 1234``) must not be echoed to logs.
            names = [word for word in message.split()[2:] if word.startswith("-")]
            message = f"unrecognized arguments: {' '.join(names) or '(values only)'}"
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


KTYS = ["RSA", "EC", "oct"]
CURVES = ["P-256", "P-384", "P-521", "P-256K"]
KEY_OPS = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]


def key_encoding(command: argparse.ArgumentParser) -> None:
    command.add_argument("--key-encoding", choices=AES_KEY_ENCODINGS,
                         help="how an AES --key file holds its key: raw bytes, or hex/base64 text (text is refused "
                              "without this)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="byok", description="Azure Key Vault BYOK: wrap, package and import "
                                     "key material you own (CKM_RSA_AES_KEY_WRAP transfer blobs).",
                     epilog="Results go to stdout (add --json for one JSON object), progress and errors to "
                            "stderr; an error is one line naming the input at fault, exit status 1 "
                            "(2 for usage errors).")
    parser.add_argument("--version", action="version", version=f"byok-component {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help: str,  # noqa: A002
            into: argparse._SubParsersAction = sub, *, online: bool = False) -> argparse.ArgumentParser:
        command = into.add_parser(name, help=help, description=help, formatter_class=HelpFormatter,
                                  epilog=ONLINE_EPILOG if online else None)
        command.set_defaults(handler=handler)
        return command

    def pkcs11_args(command: argparse.ArgumentParser) -> None:
        command.add_argument("--pkcs11", metavar="URI", help="target key in a PKCS#11 token, wrapped inside it: "
                             "pkcs11:token=LABEL;object=KEY (RFC 7512)")
        command.add_argument("--pkcs11-module", metavar="SO", help="the PKCS#11 module (or module-path in the URI, "
                             "or $BYOK_PKCS11_MODULE)")
        command.add_argument("--pin-env", metavar="VAR", help="the token's user PIN is in $VAR (default "
                             "$BYOK_PKCS11_PIN); never on the command line")

    p = add("keygen", cmd_keygen, "generate a TEST target key (real keys come from your HSM/KMS)")
    p.add_argument("--kty", choices=KTYS, default="RSA", help="key type")
    p.add_argument("--size", type=int, help="RSA: 2048/3072/4096 (default 4096); oct: 128/192/256 bits (default 256)")
    p.add_argument("--curve", choices=CURVES, help="EC curve (default P-256)")
    p.add_argument("--password-env", metavar="VAR", help="encrypt the PEM with the password in $VAR")
    p.add_argument("--public-out", metavar="FILE", help="also write the public key (lets previews run without "
                                                       "the private key)")
    add_out(p, "private key file (written 0600)")
    add_json(p)

    p = add("wrap", cmd_wrap, "wrap a key for a KEK into a .byok transfer blob", online=True)  # --vault-url
    p.add_argument("--kek-pem", metavar="FILE",
                   help="the KEK's public key (byok kek download / az keyvault key download); or --vault-url")
    p.add_argument("--vault-url", metavar="URL", help="read the KEK --kek-id from this vault over TLS instead of "
                                                      "--kek-pem (checked: RSA-HSM, ops exactly import, enabled)")
    p.add_argument("--kek-fingerprint", metavar="THUMBPRINT",
                   help="refuse unless the KEK's RFC 7638 thumbprint is this (the stack output kekFingerprint)")
    p.add_argument("--kek-id", required=True, metavar="KID",
                   help="the KEK's versioned kid, https://VAULT/keys/NAME/VERSION (byok kek create prints it)")
    p.add_argument("--key", metavar="FILE",
                   help="target key: PEM/DER private key, or an AES key file with --kty oct (or --pkcs11)")
    p.add_argument("--password-env", metavar="VAR", help="password of an encrypted key, read from $VAR")
    p.add_argument("--kty", choices=KTYS, help="expected key type; oct reads --key as an AES key "
                                               "(default: RSA or EC, from the file)")
    key_encoding(p)
    pkcs11_args(p)
    p.add_argument("--public-out", metavar="FILE", help="with --pkcs11: also write the target's public key PEM")
    add_out(p, "the .byok file to write")
    add_json(p)

    p = add("pkcs11", lambda a: EXIT_ERROR, "PKCS#11 tokens: test that a token wraps exactly")
    pkcs11_sub = p.add_subparsers(dest="pkcs11_command", required=True, metavar="ACTION")
    p = add("probe", cmd_pkcs11_probe, "wrap a throwaway secret in the token, unwrap it here, compare; then "
            "check the named key can be wrapped exactly there (exit 1: it would be refused)", pkcs11_sub)
    p.add_argument("pkcs11", metavar="URI", help="pkcs11: URI of a key on the token (RFC 7512)")
    p.add_argument("--pkcs11-module", metavar="SO", help="the PKCS#11 module (or module-path in the URI, or "
                   "$BYOK_PKCS11_MODULE)")
    p.add_argument("--pin-env", metavar="VAR", help="the user PIN is in $VAR (default $BYOK_PKCS11_PIN)")
    add_json(p)

    p = add("blob", cmd_blob, "package ciphertext wrapped elsewhere (KMS/HSM, CKM_RSA_AES_KEY_WRAP) as .byok")
    p.add_argument("--kek-id", required=True, metavar="KID", help="the KEK's versioned kid it was wrapped for")
    p.add_argument("--wrapped", required=True, metavar="FILE",
                   help="raw ciphertext (RSA-OAEP part || AES-KWP part); a .byok file is refused")
    p.add_argument("--kek-pem", metavar="FILE", help="check the ciphertext length against this KEK public key")
    add_out(p, "the .byok file to write")
    add_json(p)

    p = add("inspect", cmd_inspect, "show a .byok file's header and ciphertext layout")
    p.add_argument("file", metavar="FILE", help="the .byok transfer blob")
    p.add_argument("--kek-pem", metavar="FILE", help="check the blob's sizes fit this KEK public key (only the "
                                                     "vault can prove the wrap)")
    p.add_argument("--kek-fingerprint", metavar="THUMBPRINT",
                   help="refuse unless --kek-pem's RFC 7638 thumbprint is this (the stack output kekFingerprint)")
    add_json(p)

    kek = add("kek", lambda a: EXIT_ERROR, "create or download the Key Exchange Key")
    kek_sub = kek.add_subparsers(dest="kek_command", required=True, metavar="ACTION")
    p = add("create", cmd_kek_create, "create a KEK (RSA-HSM, ops exactly [import]); prints its versioned kid",
            kek_sub, online=True)
    add_vault_url(p)
    p.add_argument("--name", required=True, help="the KEK's key name (e.g. KEKforBYOK)")
    p.add_argument("--size", type=int, choices=[2048, 3072, 4096], default=4096, help="RSA modulus bits")
    add_json(p)
    p = add("download", cmd_kek_download, "write the KEK's public key (SubjectPublicKeyInfo PEM)", kek_sub,
            online=True)
    add_vault_url(p)
    p.add_argument("--name", required=True, help="the KEK's key name")
    p.add_argument("--version", help="a key version (32 characters; default: the current version)")
    add_out(p, "the public key file to write")
    add_json(p)

    p = add("import", cmd_import, "import a .byok file (like az keyvault key import --byok-file)", online=True)
    add_vault_url(p)
    p.add_argument("--name", required=True, help="the key name in the vault (1-127 of 0-9 a-z A-Z -)")
    p.add_argument("--byok-file", required=True, metavar="FILE", help="the transfer blob (byok wrap / byok blob)")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--kty", choices=KTYS, help="the wrapped key's type, sent as RSA-HSM/EC-HSM/oct-HSM "
                                                   "(oct: AES, Managed HSM only)")
    kind.add_argument("--public-key", metavar="FILE", help="the wrapped key's public key file: type and curve "
                                                           "are read from it, and the import is checked against it")
    p.add_argument("--curve", choices=CURVES, help="EC curve (needed with --kty EC)")
    p.add_argument("--ops", nargs="+", metavar="OP", choices=KEY_OPS,
                   help=f"allowed operations, from {' '.join(KEY_OPS)} (default: the vault's, all the type allows)")
    p.add_argument("--tags", nargs="+", metavar="NAME=VALUE", help="up to 12 tags (Key Vault keeps 15; byok reserves 3)")
    p.add_argument("--disabled", action="store_true", help="import the key disabled")
    p.add_argument("--new-version", action="store_true",
                   help="the name already holds a key and a new version of it is meant (rotation); refused "
                        "otherwise")
    p.add_argument("--not-before", metavar="RFC3339", help="activation date, e.g. 2030-01-01T00:00:00Z")
    p.add_argument("--expires", metavar="RFC3339", help="expiry date, e.g. 2035-01-01T00:00:00Z")
    add_json(p)

    p = add("verify", cmd_verify, "exit 0 when the vault's current version holds this key, is enabled and has "
                                  "the expected ops (1 otherwise); says what it proved", online=True)
    add_vault_url(p)
    p.add_argument("--name", required=True, help="the key name in the vault")
    p.add_argument("--public-key", metavar="FILE", help="the key's public key file (RSA/EC): compared with the "
                                                        "vault's")
    p.add_argument("--key", metavar="FILE", help="a private key file (its public half is compared), or an AES key "
                                                 "file (the vault wraps a probe with its key to compare)")
    p.add_argument("--password-env", metavar="VAR", help="password of an encrypted --key, read from $VAR")
    p.add_argument("--kty", choices=KTYS, help="with --key: the expected type; oct reads it as an AES key")
    key_encoding(p)
    p.add_argument("--ops", nargs="+", metavar="OP", choices=KEY_OPS, help="the operations the version must allow "
                                                                         "(default: not checked)")
    p.add_argument("--disabled", action="store_true", help="the version is expected to be disabled")
    add_json(p)

    lv = add("local-vault", lambda a: EXIT_ERROR, "a local Key Vault test double (no place for real keys)")
    lv_sub = lv.add_subparsers(dest="lv_command", required=True, metavar="ACTION")
    p = add("serve", cmd_local_vault_serve, "serve a BYOK-enforcing Key Vault on https://127.0.0.1 until "
                                            "Ctrl-C; prints one JSON line (vault_url, ca_cert, token_file)", lv_sub)
    p.add_argument("--data", metavar="DIR", help="state directory, kept across restarts (default: a new private "
                                                 "temporary directory, removed on exit)")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    p.add_argument("--sku", choices=["premium", "standard", "managedhsm"], default="premium",
                   help="which vault to imitate (managedhsm: oct-HSM keys allowed; standard: no HSM keys)")
    p.add_argument("--faults", metavar="FILE", help="fault-injection JSON (tests; off by default)")
    p.add_argument("--behaviour", metavar="FILE",
                   help="Azure behaviours JSON: purge protection, RBAC propagation, asynchronous deletion (tests)")
    p = add("env", cmd_local_vault_env, "print export lines for a running local vault, for "
                                        + LOCAL_VAULT_ENV_HINT, lv_sub)
    p.add_argument("--data", required=True, metavar="DIR", help="the --data directory the vault was started with")
    p.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                   help="wait up to this long for a vault that is still starting")
    add_json(p)

    p = add("demo", cmd_demo, "the whole BYOK flow on an embedded local vault, in a temporary directory")
    p.add_argument("--keep", action="store_true", help="keep the demo directory (deleted by default)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code. Errors are one line on stderr, tracebacks only with --debug."""
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_azure_logs()
    no_core_dumps()  # keygen, wrap and verify hold private keys; a core dump would copy them to disk
    try:
        return args.handler(args)
    except ByokError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"byok: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        hint = getattr(args, "interrupted_hint", None)
        print(f"byok: interrupted{f' — {hint}' if hint else ''}", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last line of defence: no traceback (it may quote secrets)
        if args.debug:
            traceback.print_exc()
        print(f"byok: internal error ({type(exc).__name__}); rerun with --debug for details", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
