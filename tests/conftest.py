"""Shared fixtures: key material generated at test time (no private key is ever committed)."""

from __future__ import annotations

import functools
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa


@functools.lru_cache(maxsize=None)
def rsa_key(bits: int, index: int = 0) -> rsa.RSAPrivateKey:
    """A cached RSA key per (size, index): RSA-4096 generation costs seconds, so each is made once per run."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.lru_cache(maxsize=None)
def ec_key(curve: str, index: int = 0) -> ec.EllipticCurvePrivateKey:
    from byok_component.keys import EC_CURVES
    return ec.generate_private_key(EC_CURVES[curve]())


def pem_armour(body: bytes, label: bytes = b"PRIVATE KEY") -> bytes:
    """PEM armour around ``body`` (garbage-key fixtures; built here so no key-shaped block is committed)."""
    dashes = b"-" * 5
    return b"".join([dashes, b"BEGIN ", label, dashes, b"\n", body, b"\n", dashes, b"END ", label, dashes, b"\n"])


PURGEABLE = {"purge_protection": False}  # Behaviour fields of a vault whose deleted keys may be purged


def serve_vault(data_dir, **options):  # -> Iterator[LocalVault]
    """``yield from serve_vault(dir, sku=..., faults=...)``: a local vault running for a fixture's lifetime.

    ``behaviour`` may be a dict of Behaviour fields (e.g. ``PURGEABLE``: suites that test purging need a vault
    without the purge protection a local vault has by default)."""
    from byok_component.localvault import Behaviour, LocalVault

    if isinstance(options.get("behaviour"), dict):
        options["behaviour"] = Behaviour(**options["behaviour"])

    with LocalVault(data_dir, **options) as vault:
        yield vault


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches Azure or inherits the developer's credentials, proxies or CA settings."""
    for name in list(os.environ):
        if name.startswith(("AZURE_", "BYOK_")) or name in (
                "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def sdk():  # -> Callable[[LocalVault], KeyClient]
    """``sdk(vault)``: the operator's own KeyClient (full token), one per vault: for out-of-band changes and
    for looking behind the provider and the CLI."""
    from tests.integration.conftest import make_key_client

    clients: dict = {}

    def get(vault):
        if vault.vault_url not in clients:
            clients[vault.vault_url] = make_key_client(vault)
        return clients[vault.vault_url]

    return get
