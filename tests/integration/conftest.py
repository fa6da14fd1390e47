"""Shared integration fixtures: a local vault over real HTTPS and a real azure-keyvault-keys client for it.

Generic on purpose: the local-vault tests, the provider tests and the CLI tests all reuse them.
The vault runs in this process on an ephemeral 127.0.0.1 port; ``start()`` returns once the port accepts
connections, so nothing here sleeps.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest

if TYPE_CHECKING:
    from azure.keyvault.keys import KeyClient

    from byok_component.localvault import LocalVault


class TokenFileCredential:
    """The smallest azure-core TokenCredential: the bearer token is whatever the file holds (read per call)."""

    def __init__(self, token_file: str | Path) -> None:
        self._path = Path(token_file)

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._path.read_text(encoding="ascii").strip(), int(time.time()) + 3600)

    def __repr__(self) -> str:  # never the token
        return f"TokenFileCredential({str(self._path)!r})"


def make_key_client(vault: "LocalVault", token_file: str | Path | None = None, **kwargs: Any) -> "KeyClient":
    """A real KeyClient for ``vault``: challenge auth on, resource check off, the vault's CA trusted."""
    from azure.keyvault.keys import KeyClient

    credential = TokenFileCredential(token_file or vault.token_file)
    return KeyClient(vault.vault_url, credential, verify_challenge_resource=False,
                     connection_verify=vault.ca_cert, **kwargs)


def raw_request(vault: "LocalVault", method: str, path: str, body: object = None, *,
                token: str | None = "full", headers: dict[str, str] | None = None,
                raw_body: bytes | None = None) -> tuple[int, dict[str, str], Any]:
    """One HTTPS request to ``vault`` without the SDK: ``(status, headers, parsed JSON or None)``.

    ``token``: "full", "readonly", None (no Authorization header) or any other literal token.
    """
    import http.client
    import json
    import ssl

    context = ssl.create_default_context(cafile=vault.ca_cert)
    connection = http.client.HTTPSConnection("127.0.0.1", vault.port, context=context, timeout=30)
    sent = dict(headers or {})
    if token is not None:
        files = {"full": vault.token_file, "readonly": vault.readonly_token_file}
        value = Path(files[token]).read_text().strip() if token in files else token
        sent["Authorization"] = f"Bearer {value}"
    data = raw_body if raw_body is not None else (None if body is None else json.dumps(body).encode())
    if data is not None:
        sent.setdefault("Content-Type", "application/json")
    try:
        sep = "&" if "?" in path else "?"
        connection.request(method, f"{path}{sep}api-version=7.5", body=data, headers=sent)
        response = connection.getresponse()
        payload = response.read()
        parsed = json.loads(payload) if payload else None
        return response.status, {k.lower(): v for k, v in response.getheaders()}, parsed
    finally:
        connection.close()


@pytest.fixture(scope="session")
def vault_http() -> Callable[..., tuple[int, dict[str, str], Any]]:
    """``vault_http(vault, method, path, body=None, token="full")`` -> (status, headers, JSON): raw REST calls."""
    return raw_request


@pytest.fixture(scope="session")
def local_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator["LocalVault"]:
    """A premium-sku local vault shared by the session (tests use unique key names). Without purge protection:
    these tests purge; purge protection has tests of its own (test_localvault_azure.py)."""
    from tests.conftest import PURGEABLE, serve_vault

    yield from serve_vault(tmp_path_factory.mktemp("local-vault"), behaviour=PURGEABLE)


@pytest.fixture(scope="session")
def key_client(local_vault: "LocalVault") -> "KeyClient":
    """A KeyClient on ``local_vault`` with its full read-write token."""
    return make_key_client(local_vault)


@pytest.fixture(scope="session")
def key_client_factory() -> Callable[..., "KeyClient"]:
    """``factory(vault, token_file=None, **kwargs)`` -> KeyClient, for other vaults or the read-only token."""
    return make_key_client


@pytest.fixture(scope="session")
def token_credential() -> Callable[[str | Path], TokenFileCredential]:
    """``token_credential(path)`` -> a TokenCredential that reads the bearer token from ``path``."""
    return TokenFileCredential


@pytest.fixture(scope="session")
def crypto_client_factory() -> Callable[..., Any]:
    """``factory(vault, key_or_kid, token_file=None)`` -> a CryptographyClient on the vault."""
    def make(vault: "LocalVault", key: Any, token_file: str | Path | None = None) -> Any:
        from azure.keyvault.keys.crypto import CryptographyClient

        return CryptographyClient(key, TokenFileCredential(token_file or vault.token_file),
                                  verify_challenge_resource=False, connection_verify=vault.ca_cert)

    return make


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``unique_name("kek")`` -> a key name unique to this test (the session vault is shared)."""
    import secrets

    def make(prefix: str = "k") -> str:
        return f"{prefix}-{secrets.token_hex(4)}"

    return make
