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


@pytest.fixture(scope="session")
def local_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator["LocalVault"]:
    """A premium-sku local vault shared by the session (tests use unique key names)."""
    from byok_component.localvault import LocalVault

    vault = LocalVault(tmp_path_factory.mktemp("local-vault"))
    vault.start()
    try:
        yield vault
    finally:
        vault.stop()


@pytest.fixture(scope="session")
def key_client(local_vault: "LocalVault") -> "KeyClient":
    """A KeyClient on ``local_vault`` with its full read-write token."""
    return make_key_client(local_vault)


@pytest.fixture(scope="session")
def key_client_factory() -> Callable[..., "KeyClient"]:
    """``factory(vault, token_file=None, **kwargs)`` -> KeyClient, for other vaults or the read-only token."""
    return make_key_client


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``unique_name("kek")`` -> a key name unique to this test (the session vault is shared)."""
    import secrets

    def make(prefix: str = "k") -> str:
        return f"{prefix}-{secrets.token_hex(4)}"

    return make
