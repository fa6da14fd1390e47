"""Tokens only where they belong: a hostile listener never receives an Azure token it could use elsewhere.

The listener speaks TLS with a CA of its own (the client trusts it through BYOK_CA_BUNDLE, the worst case) and
answers every request with 401 and a challenge naming https://management.azure.com, so a client that obeys the
challenge asks its credential for an ARM token and sends it. Azure's credential is replaced by one that records
every scope asked of it and hands out a token naming that scope: exactly what DefaultAzureCredential would do
with a logged-in ``az``. The vault adapter, the SDK's challenge policy and the HTTP stack are the real ones.

- A loopback vault URL never uses Azure's credential (it needs BYOK_ACCESS_TOKEN_FILE and says so in one line);
  with the token file it sends that token and nothing else.
- A Key Vault host name (resolved to the listener) keeps the SDK's challenge-resource check: the challenge is
  refused and no token at all is sent.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from byok_component import vault as vault_adapter
from byok_component.errors import ByokError, VaultAuthError
from byok_component.provider import ByokKeyProvider
from tests.hostile.conftest import KeyFiles, clear_error_problems
from tests.hostile.figures import FIGURES

FOREIGN_RESOURCE = "https://management.azure.com"
AZURE_HOST = "contoso-hostile.vault.azure.net"
KEK_ID_PATH = "/keys/kek/" + "0" * 32


class Listener(ThreadingHTTPServer):
    """127.0.0.1, TLS with its own CA; every request gets 401 with a challenge for another resource."""

    daemon_threads = True

    def __init__(self, directory: Path) -> None:
        self.authorizations: list[str | None] = []
        self.requests = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)
        self.ca_file, cert, key = _tls_files(directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def tokens(self) -> list[str]:
        with self.lock:
            return [a for a in self.authorizations if a]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Listener

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with self.server.lock:
            self.server.requests += 1
            self.server.authorizations.append(self.headers.get("Authorization"))
        body = b'{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}'
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Bearer authorization="https://login.microsoftonline.com/'
                         f'00000000-0000-0000-0000-000000000bad", resource="{FOREIGN_RESOURCE}"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_POST = do_PATCH = do_DELETE = do_GET


def _tls_files(directory: Path) -> tuple[str, str, str]:
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hostile listener CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, AZURE_HOST)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(AZURE_HOST), x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [directory / "ca.pem", directory / "cert.pem", directory / "key.pem"]
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(paths[0]), str(paths[1]), str(paths[2])


class AzureCredential:
    """Stands in for DefaultAzureCredential with a signed-in user: any scope asked gets a token naming it."""

    made: list["AzureCredential"] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.scopes: list[str] = []
        AzureCredential.made.append(self)

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken
        self.scopes += scopes
        return AccessToken("azure-token-for " + " ".join(scopes), 2**31)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo
        self.scopes += scopes
        return AccessTokenInfo("azure-token-for " + " ".join(scopes), 2**31)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    server = Listener(tmp_path)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def azure_login(monkeypatch: pytest.MonkeyPatch, listener: Listener) -> Iterator[type[AzureCredential]]:
    """The process is 'signed in to Azure'; it trusts the listener's CA; no token file is set."""
    import azure.identity

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", AzureCredential)
    monkeypatch.setattr(vault_adapter, "_default_credential", None)
    monkeypatch.delenv(vault_adapter.ENV_TOKEN_FILE, raising=False)
    monkeypatch.setenv(vault_adapter.ENV_CA_BUNDLE, listener.ca_file)
    monkeypatch.setenv("BYOK_RBAC_WAIT_SECONDS", "0")
    AzureCredential.made = []
    with vault_adapter._clients_lock:  # noqa: SLF001 - clients cached by earlier tests hold other credentials
        vault_adapter._clients.clear()  # noqa: SLF001
    vault_adapter.clear_kek_cache()
    yield AzureCredential
    with vault_adapter._clients_lock:  # noqa: SLF001
        vault_adapter._clients.clear()  # noqa: SLF001


def _foreign_tokens(listener: Listener) -> list[str]:
    return [t for t in listener.tokens() if "azure-token-for" in t]


def _scopes(credentials: type[AzureCredential]) -> list[str]:
    return [scope for made in credentials.made for scope in made.scopes]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_loopback_vault_without_a_token_file_gets_no_azure_token(
        host: str, listener: Listener, azure_login: type[AzureCredential], keys: dict[str, KeyFiles],
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"https://{host}:{listener.port}"
    outcomes = []
    # The adapter, the provider (check passes offline, create fails before sending anything) and the CLI.
    with pytest.raises(VaultAuthError) as info:
        vault_adapter.get_key(vault_adapter.client(url), "any")
    outcomes.append(str(info.value))
    provider = ByokKeyProvider()
    inputs = provider.check({}, {"vault_url": url, "key_name": "app", "kek_id": url + KEK_ID_PATH,
                                 "key_file": keys["ec"].private}).inputs
    with pytest.raises(ByokError) as info:
        provider.create(inputs)
    outcomes.append(str(info.value))
    from byok_component.cli import main
    assert main(["kek", "download", "--vault-url", url, "--name", "kek", "-o", str(tmp_path / "kek.pem")]) != 0
    outcomes.append(capsys.readouterr().err)
    problems = [f"{text}: {p}" for text in outcomes
                for p in clear_error_problems(text, names=(vault_adapter.ENV_TOKEN_FILE,))]
    problems += [f"sent {t}" for t in _foreign_tokens(listener)]
    problems += [f"Azure credential asked for {s}" for s in _scopes(azure_login)]
    FIGURES.security(not problems)
    assert not problems
    assert azure_login.made == [] and listener.tokens() == []


def test_a_loopback_vault_with_a_token_file_gets_that_token_only(listener: Listener, tmp_path: Path,
                                                                 azure_login: type[AzureCredential],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("local-vault-token-0123456789abcdef\n")
    monkeypatch.setenv(vault_adapter.ENV_TOKEN_FILE, str(token_file))
    with pytest.raises(VaultAuthError):
        vault_adapter.get_key(vault_adapter.client(f"https://127.0.0.1:{listener.port}"), "any")
    sent = listener.tokens()
    passed = bool(sent) and set(sent) == {"Bearer local-vault-token-0123456789abcdef"} and azure_login.made == []
    FIGURES.security(passed)
    assert passed, sent


def test_a_key_vault_host_keeps_the_challenge_check(listener: Listener, azure_login: type[AzureCredential],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """*.vault.azure.net resolved to the listener: its challenge names ARM, so no token is asked for or sent."""
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == AZURE_HOST:
            return real("127.0.0.1", listener.port, *args, **kwargs)
        return real(host, port, *args, **kwargs)
    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(VaultAuthError) as info:
        vault_adapter.get_key(vault_adapter.client(f"https://{AZURE_HOST}"), "any")
    problems = clear_error_problems(str(info.value), names=("challenge",))
    problems += [f"sent {t}" for t in listener.tokens()]
    problems += [f"Azure credential asked for {s}" for s in _scopes(azure_login) if FOREIGN_RESOURCE in s]
    FIGURES.security(not problems and listener.requests >= 1)
    assert listener.requests >= 1  # the listener was reached: the refusal is the challenge check's
    assert not problems, problems
