"""``byok demo``: the seed's whole BYOK flow on an embedded local vault in a temporary directory."""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

from . import vault
from .blob import TransferBlob
from .files import write_output
from .keys import generate_private_key, load_kek_public_key, load_target_key, private_key_pem
from .wrap import check_kek, wrap

__all__ = ["run_demo"]

MESSAGE = b"byok-component demo: this message was signed inside the vault"


def _say(text: str) -> None:
    print(f"byok demo: {text}", file=sys.stderr, flush=True)


def _verified_by_vault(kid: str, private_key: object) -> bool:
    """The vault signs SHA-256(MESSAGE) with the imported key; we verify with the local public key."""
    digest = hashlib.sha256(MESSAGE).digest()
    public = private_key.public_key()  # type: ignore[attr-defined]
    if isinstance(public, ec.EllipticCurvePublicKey):
        signature = vault.sign_digest(kid, "ES256", digest)
        half = len(signature) // 2  # JWS ES256 signatures are r || s (RFC 7518 §3.4)
        der = utils.encode_dss_signature(int.from_bytes(signature[:half], "big"),
                                         int.from_bytes(signature[half:], "big"))
        verify = lambda: public.verify(der, MESSAGE, ec.ECDSA(hashes.SHA256()))  # noqa: E731
    else:
        signature = vault.sign_digest(kid, "RS256", digest)
        verify = lambda: public.verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())  # noqa: E731
    try:
        verify()
    except InvalidSignature:
        return False
    return True


def run_demo(*, keep: bool = False) -> int:
    """Create KEK -> download it -> make TestRSAKey/TestECKey -> wrap -> import -> prove each works -> table."""
    from .localvault import LocalVault

    workdir = Path(tempfile.mkdtemp(prefix="byok-demo-"))  # mkdtemp is 0700
    _say(f"working in {workdir} (an embedded local vault: a test double, no place for real keys)")
    try:
        with LocalVault(workdir / "vault", sku="premium") as local, vault.pointed_at(local.ca_cert, local.token_file):
            kv = vault.client(local.vault_url)
            _say(f"local vault at {local.vault_url}")
            _say("1/6 create the KEK: RSA-HSM 4096, key_ops [import]")
            kek = vault.create_kek(kv, "KEKforBYOK", 4096)
            _say("2/6 download the KEK public key")
            kek_pem = workdir / "KEKforBYOK.publickey.pem"
            assert kek.public is not None and kek.public.public_pem is not None
            kek_pem.write_text(kek.public.public_pem)
            kek_public = check_kek(load_kek_public_key(kek_pem.read_bytes()))
            specs = [("TestRSAKey", "RSA", generate_private_key("RSA", size=4096), None, None),
                     ("TestECKey", "EC", generate_private_key("EC", curve="P-256"), "P-256", ["sign", "verify"])]
            _say("3/6 created TestRSAKey (RSA 4096) and TestECKey (EC P-256) locally")
            rows = []
            for name, kty, private_key, curve, ops in specs:
                key_file = workdir / f"{name}.pem"
                write_output(str(key_file), private_key_pem(private_key), private=True)
                target = load_target_key(key_file.read_bytes())
                blob = TransferBlob.build(kek.kid, wrap(kek_public, target.wrapping_plaintext()))
                byok_file = workdir / f"{name}.byok"
                byok_file.write_bytes(blob.to_json())
                _say(f"4/6 wrapped {name} -> {byok_file.name} ({len(blob.ciphertext)} bytes of ciphertext)")
                imported = vault.import_blob(kv, name, TransferBlob.parse(byok_file.read_bytes()), kty=kty,
                                             curve=curve, key_ops=ops, expected_fingerprint=target.public.fingerprint)
                _say(f"5/6 imported {name} as {imported.kty}, ops {list(imported.key_ops)}")
                same = imported.fingerprint == target.public.fingerprint
                works = same and _verified_by_vault(imported.kid, private_key)
                _say(f"6/6 {name}: the vault signed a message, verified with the local public key: {works}")
                rows.append((name, imported.kty, imported.kid, imported.fingerprint or "", works))
        _print_table(rows)
        return 0 if all(row[4] for row in rows) else 1
    finally:
        if keep:
            _say(f"kept {workdir} (the key files, .byok files and the vault's data; delete it when done)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            _say(f"removed {workdir} and its test keys (byok demo --keep keeps them)")
        _say("next: the same steps by hand on a local vault you keep running — README.md, 'The local vault'")


def _print_table(rows: list[tuple[str, str, str, str, bool]]) -> None:
    header = ("name", "type", "kid", "fingerprint", "verified")
    table = [header] + [(n, t, k, f, "yes" if ok else "NO") for n, t, k, f, ok in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
