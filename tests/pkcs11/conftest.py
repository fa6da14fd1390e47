"""A private SoftHSM token per test session, and target keys generated inside it.

SoftHSM (Debian's ``softhsm2``) is installed by ``./dev test`` when run as root (CI runs as root) and by
``.ci/run`` through it. A missing SoftHSM fails these tests with the one line saying how to install it: the
layer is never skipped. Each session gets its own ``SOFTHSM2_CONF`` and token directory, set before the
module is first loaded (SoftHSM reads it in C_Initialize), and fresh random PINs.

Fixtures are chosen within what Debian's SoftHSM 2.6.1 wraps exactly (its CKM_AES_KEY_WRAP_PAD zero-pads
input to a multiple of 8 bytes): an AES-256 key (32 bytes) and an EC P-384 key (SoftHSM's minimal RFC 5915
PKCS#8 is 80 bytes). A P-256 key (67 bytes) and an RSA key (length unknowable from outside) are the keys the
probe must refuse on it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

INSTALL_HINT = ("SoftHSM is not installed: run `apt-get install -y softhsm2` as root (./dev test does it when run "
                "as root) — these tests wrap keys inside a PKCS#11 token and are never skipped")
MODULE_CANDIDATES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                     "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so", "/usr/lib64/pkcs11/libsofthsm2.so",
                     "/usr/local/lib/softhsm/libsofthsm2.so")
TOKEN_LABEL = "byok-test"
# Named-curve OIDs (RFC 5480 §2.1.1.1) for CKA_EC_PARAMS.
EC_PARAMS = {"P-256": bytes.fromhex("06082a8648ce3d030107"), "P-384": bytes.fromhex("06052b81040022")}


def find_module() -> str | None:
    return next((m for m in [os.environ.get("SOFTHSM2_MODULE", "")] + list(MODULE_CANDIDATES)
                 if m and os.path.isfile(m)), None)


@dataclass(frozen=True)
class SoftHsm:
    """One initialised token in a private token directory."""

    module: str
    conf: str
    pin: str
    so_pin: str
    label: str = TOKEN_LABEL

    def uri(self, obj: str, kind: str | None = None) -> str:
        return f"pkcs11:token={self.label};object={obj}" + (f";type={kind}" if kind else "")

    @contextmanager
    def session(self) -> Iterator[Any]:
        """A logged-in R/W session (test setup only; closed before the code under test runs)."""
        import PyKCS11 as P

        from byok_component.pkcs11 import _library

        lib = _library(self.module)
        slot = next(s for s in lib.getSlotList(tokenPresent=True) if lib.getTokenInfo(s).label.strip() == self.label)
        session = lib.openSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION)
        session.login(self.pin)
        try:
            yield session
        finally:
            session.logout()
            session.closeSession()

    def make_aes(self, label: str, *, extractable: bool = True) -> str:
        """An AES-256 key generated in the token: sensitive, extractable only wrapped; usable for encrypt/decrypt
        so a test can prove the vault holds the same key."""
        import PyKCS11 as P

        with self.session() as s:
            s.generateKey([(P.CKA_CLASS, P.CKO_SECRET_KEY), (P.CKA_KEY_TYPE, P.CKK_AES), (P.CKA_VALUE_LEN, 32),
                           (P.CKA_TOKEN, True), (P.CKA_PRIVATE, True), (P.CKA_SENSITIVE, True),
                           (P.CKA_EXTRACTABLE, extractable), (P.CKA_ENCRYPT, True), (P.CKA_DECRYPT, True),
                           (P.CKA_LABEL, label), (P.CKA_ID, tuple(secrets.token_bytes(4)))],
                          P.Mechanism(P.CKM_AES_KEY_GEN))
        return label

    def make_ec(self, label: str, curve: str) -> str:
        """An EC key pair generated in the token (private: sensitive, extractable only wrapped; can sign)."""
        import PyKCS11 as P

        ident = tuple(secrets.token_bytes(4))
        with self.session() as s:
            s.generateKeyPair(
                [(P.CKA_CLASS, P.CKO_PUBLIC_KEY), (P.CKA_TOKEN, True), (P.CKA_EC_PARAMS, tuple(EC_PARAMS[curve])),
                 (P.CKA_VERIFY, True), (P.CKA_LABEL, label), (P.CKA_ID, ident)],
                [(P.CKA_CLASS, P.CKO_PRIVATE_KEY), (P.CKA_TOKEN, True), (P.CKA_PRIVATE, True),
                 (P.CKA_SENSITIVE, True), (P.CKA_EXTRACTABLE, True), (P.CKA_SIGN, True), (P.CKA_LABEL, label),
                 (P.CKA_ID, ident)], P.Mechanism(P.CKM_EC_KEY_PAIR_GEN))
        return label

    def make_rsa(self, label: str, bits: int = 2048) -> str:
        import PyKCS11 as P

        ident = tuple(secrets.token_bytes(4))
        with self.session() as s:
            s.generateKeyPair(
                [(P.CKA_CLASS, P.CKO_PUBLIC_KEY), (P.CKA_TOKEN, True), (P.CKA_MODULUS_BITS, bits),
                 (P.CKA_PUBLIC_EXPONENT, (1, 0, 1)), (P.CKA_VERIFY, True), (P.CKA_LABEL, label), (P.CKA_ID, ident)],
                [(P.CKA_CLASS, P.CKO_PRIVATE_KEY), (P.CKA_TOKEN, True), (P.CKA_PRIVATE, True),
                 (P.CKA_SENSITIVE, True), (P.CKA_EXTRACTABLE, True), (P.CKA_SIGN, True), (P.CKA_LABEL, label),
                 (P.CKA_ID, ident)], P.Mechanism(P.CKM_RSA_PKCS_KEY_PAIR_GEN))
        return label


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """A fresh token labelled byok-test in a private SOFTHSM2_CONF/tokendir, with random PINs."""
    module, util = find_module(), shutil.which("softhsm2-util")
    if module is None or util is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    home = tmp_path_factory.mktemp("softhsm")
    home.chmod(0o700)
    (home / "tokens").mkdir(mode=0o700)
    conf = home / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {home / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    hsm = SoftHsm(module, str(conf), pin="pin-" + secrets.token_hex(8), so_pin="so-" + secrets.token_hex(8))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(conf))
        subprocess.run([util, "--init-token", "--free", "--label", TOKEN_LABEL, "--so-pin", hsm.so_pin,
                        "--pin", hsm.pin], check=True, capture_output=True)
        yield hsm


@pytest.fixture
def pin_env(softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch) -> str:
    """The PIN in $BYOK_PKCS11_PIN for this test (the conftest's autouse fixture clears BYOK_* first)."""
    monkeypatch.setenv("BYOK_PKCS11_PIN", softhsm.pin)
    return softhsm.pin


@pytest.fixture
def label(request: pytest.FixtureRequest) -> Any:
    """``label("aes")`` -> an object label unique to this test."""
    return lambda prefix: f"{prefix}-{secrets.token_hex(4)}"
