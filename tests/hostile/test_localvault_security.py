"""The local vault under attack: it listens on loopback only, speaks TLS only, refuses requests without the
right token, lets the read-only token read and nothing else (403 on create, import, update, delete, purge,
recover and crypto operations), refuses key names that try path traversal or odd characters, bounds request
bodies, and keeps its files private (0700 directory, 0600 files; only the certificates are public).
"""

from __future__ import annotations

import json
import secrets
import socket
import ssl
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest

from byok_component.errors import VaultPermissionError
from byok_component.provider import ByokKeyProvider
from tests.conftest import serve_vault
from tests.hostile.conftest import KeyFiles, clear_error_problems, inventory, make_kek, start_vault
from tests.hostile.figures import FIGURES
from tests.integration.conftest import make_key_client, raw_request

if TYPE_CHECKING:
    from byok_component.localvault import LocalVault

PUBLIC_FILES = {"ca.pem", "server.pem"}  # certificates: meant to be read by clients


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator["LocalVault"]:
    yield from serve_vault(tmp_path_factory.mktemp("security-vault"))


@pytest.fixture(scope="module")
def target(vault: "LocalVault") -> dict[str, str]:
    """A KEK and an ordinary EC key to aim writes at."""
    client = make_key_client(vault)
    kek_id = make_kek(vault)
    key = client.create_ec_key(f"victim-{secrets.token_hex(3)}", curve="P-256", hardware_protected=True)
    assert key.id is not None
    return {"kek_id": kek_id, "name": key.name or "", "version": key.properties.version or ""}


def _record(passed: bool) -> None:
    FIGURES.security(passed)
    assert passed


# --- network: loopback only, TLS only ----------------------------------------------------------------------
def _outbound_address() -> str | None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # sends nothing: only picks the interface a packet would leave by
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


@pytest.mark.parametrize("address", ["127.0.0.2", "127.1.2.3", "outbound"])
def test_only_127_0_0_1_answers(vault: "LocalVault", address: str) -> None:
    host = _outbound_address() if address == "outbound" else address
    # The bound address alone proves it; the connection probe adds a second witness where one exists.
    assert vault._server is not None and vault._server.socket.getsockname()[0] == "127.0.0.1"  # noqa: SLF001
    refused = True
    if host is not None:
        try:
            socket.create_connection((host, vault.port), timeout=5).close()
            refused = False
        except OSError:
            pass
    _record(refused)


def test_the_command_line_cannot_bind_elsewhere(capsys: pytest.CaptureFixture[str]) -> None:
    from byok_component.cli import main

    with pytest.raises(SystemExit) as info:
        main(["local-vault", "serve", "--host", "0.0.0.0"])
    err = capsys.readouterr().err
    _record(info.value.code == 2 and "--host" in err)


def test_plain_http_gets_no_answer_and_does_no_harm(vault: "LocalVault") -> None:
    answered = False
    for request in (b"GET /keys?api-version=7.5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                    b"PUT /keys/x?api-version=7.5 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}"):
        with socket.create_connection(("127.0.0.1", vault.port), timeout=10) as plain:
            plain.sendall(request)
            try:
                reply = plain.recv(4096)
            except OSError:  # reset: refused
                reply = b""
            answered = answered or reply.startswith(b"HTTP/")
    _record(not answered and raw_request(vault, "GET", "/keys")[0] == 200)


def _old_tls_client(ca_cert: str) -> ssl.SSLContext:
    """A client that offers TLS 1.0 and 1.1 only, with the legacy ciphers those need (OpenSSL security level 0)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca_cert)
    context.minimum_version, context.maximum_version = ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def _handshake(port: int, context: ssl.SSLContext) -> str:
    """The negotiated version, or the failure's OpenSSL reason."""
    try:
        with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                 server_hostname="127.0.0.1") as connection:
            return str(connection.version())
    except ssl.SSLError as exc:
        return f"refused: {exc.reason}"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_1_0_and_1_1_are_refused_by_the_server(vault: "LocalVault") -> None:
    """The server, not the client, refuses: the same TLS 1.0/1.1 client first completes a handshake with a control
    server that allows them (so it really offers them), then fails against the vault."""
    import threading

    from byok_component.localvault.tls import TlsFiles

    files = TlsFiles(vault.data_dir / "ca.pem", vault.data_dir / "server.pem", vault.data_dir / "server-key.pem")
    control = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    control.load_cert_chain(files.server_cert, files.server_key)
    control.minimum_version = ssl.TLSVersion.TLSv1
    control.set_ciphers("DEFAULT:@SECLEVEL=0")
    listener = socket.create_server(("127.0.0.1", 0))

    def accept_one() -> None:
        raw, _ = listener.accept()
        try:
            control.wrap_socket(raw, server_side=True).close()
        except (ssl.SSLError, OSError):
            raw.close()
    acceptor = threading.Thread(target=accept_one, daemon=True)
    acceptor.start()
    try:
        offered = _handshake(listener.getsockname()[1], _old_tls_client(vault.ca_cert))
    finally:
        acceptor.join(10)
        listener.close()
    against_vault = _handshake(vault.port, _old_tls_client(vault.ca_cert))
    assert offered in ("TLSv1", "TLSv1.1"), f"this client cannot offer TLS <= 1.1 here ({offered})"
    _record(against_vault.startswith("refused"))
    assert vault._server is not None  # noqa: SLF001
    assert vault._server.context.minimum_version >= ssl.TLSVersion.TLSv1_2  # noqa: SLF001


def test_a_client_that_does_not_trust_the_vaults_ca_fails_verification(vault: "LocalVault") -> None:
    """The system CAs only: the vault's certificate does not verify (its CA is its own, never a public one)."""
    with pytest.raises(ssl.SSLCertVerificationError):
        with ssl.create_default_context().wrap_socket(socket.create_connection(("127.0.0.1", vault.port), timeout=10),
                                                      server_hostname="127.0.0.1"):
            pass
    _record(True)


# --- authentication ------------------------------------------------------------------------------------------
def _other_vault_token(tmp_path: Path) -> str:
    other = start_vault(tmp_path / "other")
    other.stop()
    return Path(other.token_file).read_text().strip()


@pytest.mark.parametrize("header", ["none", "wrong", "basic", "empty-bearer", "other-vault", "token-plus-junk",
                                    "huge", "readonly-as-basic"])
def test_requests_without_the_right_token_get_401(vault: "LocalVault", target: dict[str, str], header: str,
                                                 tmp_path: Path) -> None:
    token = Path(vault.token_file).read_text().strip()
    readonly = Path(vault.readonly_token_file).read_text().strip()
    headers = {
        "none": None, "wrong": "Bearer " + secrets.token_urlsafe(32), "basic": "Basic " + token,
        "empty-bearer": "Bearer ", "other-vault": "Bearer " + _other_vault_token(tmp_path),
        "token-plus-junk": f"Bearer {token}x", "huge": "Bearer " + "A" * 60000, "readonly-as-basic": "Basic " + readonly,
    }
    client = make_key_client(vault)
    before = inventory(client)
    statuses, challenges = [], []
    for method, path, body in (("GET", f"/keys/{target['name']}", b""), ("DELETE", f"/keys/{target['name']}", b""),
                               ("POST", "/keys/intruder/create", b'{"kty": "EC-HSM", "crv": "P-256"}')):
        status, reply_headers, _ = _raw_exchange(vault, method, path, body, authorization=headers[header])
        statuses.append(status)
        challenges.append(reply_headers.get("www-authenticate", ""))
    _record(statuses == [401] * 3 and all(c.startswith('Bearer authorization="https://login.microsoftonline.com/')
                                          for c in challenges) and inventory(client) == before)
    assert statuses == [401] * 3, statuses


# --- the read-only token -----------------------------------------------------------------------------------
READONLY_WRITES = {
    "create": ("POST", "/keys/ro-{rand}/create", {"kty": "EC-HSM", "crv": "P-256"}),
    "import": ("PUT", "/keys/ro-{rand}", {"key": {"kty": "EC-HSM", "crv": "P-256", "key_hsm": "e30"}}),
    "update": ("PATCH", "/keys/{name}/{version}", {"attributes": {"enabled": False}}),
    "delete": ("DELETE", "/keys/{name}", None),
    "purge": ("DELETE", "/deletedkeys/{name}", None),
    "recover": ("POST", "/deletedkeys/{name}/recover", None),
    "sign": ("POST", "/keys/{name}/{version}/sign", {"alg": "ES256", "value": "A" * 43}),
    "wrapkey": ("POST", "/keys/{name}/{version}/wrapkey", {"alg": "RSA-OAEP", "value": "A" * 43}),
    "kek-delete": ("DELETE", "/keys/{kek}", None),
}


@pytest.mark.parametrize("operation", list(READONLY_WRITES))
def test_readonly_token_gets_403_for_anything_but_reading(vault: "LocalVault", target: dict[str, str],
                                                         operation: str) -> None:
    method, path, body = READONLY_WRITES[operation]
    path = path.format(rand=secrets.token_hex(3), kek=target["kek_id"].split("/keys/")[1].split("/")[0], **target)
    client = make_key_client(vault)
    before = inventory(client)
    status, _, reply = raw_request(vault, method, path, body, token="readonly")
    readable = raw_request(vault, "GET", f"/keys/{target['name']}", token="readonly")[0]
    _record(status == 403 and reply["error"]["code"] == "Forbidden" and readable == 200
            and inventory(client) == before and client.get_key(target["name"]).properties.enabled)


def test_provider_with_the_readonly_token_fails_in_one_line(vault: "LocalVault", target: dict[str, str],
                                                            keys: dict[str, KeyFiles],
                                                            use_vault: Callable[..., Any]) -> None:
    use_vault(vault, BYOK_ACCESS_TOKEN_FILE=vault.readonly_token_file)
    client = make_key_client(vault)
    before = inventory(client)
    name = f"ro-{secrets.token_hex(3)}"
    provider = ByokKeyProvider()
    inputs = provider.check({}, {"vault_url": vault.vault_url, "key_name": name, "kek_id": target["kek_id"],
                                 "key_file": keys["ec"].private}).inputs
    with pytest.raises(VaultPermissionError) as info:
        provider.create(inputs)
    problems = clear_error_problems(str(info.value), names=(name,))
    _record(not problems and "Crypto Officer" in str(info.value) and inventory(client) == before)


# --- odd key names and paths ---------------------------------------------------------------------------------
ODD_PATHS = {
    "dot-dot-encoded": ("GET", "/keys/..%2F..%2Fdeletedkeys%2Fx"),
    "dot-dot-encoded-put": ("PUT", "/keys/..%2F..%2Fetc%2Fpasswd"),
    "dot-dot-raw": ("GET", "/keys/../../etc/passwd"),
    "dot-dot-dir": ("PUT", "/keys/%2e%2e"),
    "encoded-slash": ("PUT", "/keys/a%2Fb"),
    "backslash": ("PUT", "/keys/a%5Cb"),
    "nul-byte": ("PUT", "/keys/a%00b"),
    "newline": ("PUT", "/keys/a%0D%0AX-Injected:%201"),
    "space": ("PUT", "/keys/two%20words"),
    "unicode": ("PUT", "/keys/cl%C3%A9"),
    "underscore": ("PUT", "/keys/a_b"),
    "dots": ("PUT", "/keys/a.b"),
    "too-long": ("PUT", "/keys/" + "k" * 128),
    "sql": ("PUT", "/keys/x'%3B%20DROP%20TABLE%20keys%3B--"),
    "version-traversal": ("GET", "/keys/kek/..%2F..%2Fx"),  # the module's KEK is named "kek"
    "deleted-traversal": ("DELETE", "/deletedkeys/..%2Fkeys%2Fkek"),
}


def _raw_exchange(vault: "LocalVault", method: str, path: str, body: bytes = b"", *,
                  authorization: str | None = "full", headers: dict[str, str | None] | None = None,
                  ) -> tuple[int, dict[str, str], Any]:
    """Send the request as written over TLS (no HTTP client to refuse, re-encode or cut it first) and read the
    vault's answer: ``(status, headers, JSON body)``. A connection the vault drops fails the test, never passes it.
    ``authorization``: "full" (the vault's token), None (no header) or the header's literal value."""
    sent = {"Host": "127.0.0.1", "Content-Type": "application/json", "Content-Length": str(len(body))}
    if authorization == "full":
        sent["Authorization"] = "Bearer " + Path(vault.token_file).read_text().strip()
    elif authorization is not None:
        sent["Authorization"] = authorization
    sent.update(headers or {})
    sent = {k: v for k, v in sent.items() if v is not None}
    head = f"{method} {path}?api-version=7.5 HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in sent.items())
    context = ssl.create_default_context(cafile=vault.ca_cert)
    with context.wrap_socket(socket.create_connection(("127.0.0.1", vault.port), timeout=30),
                             server_hostname="127.0.0.1") as connection:
        connection.sendall(head.encode("latin-1") + b"Connection: close\r\n\r\n" + body)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    head_bytes, _, payload = reply.partition(b"\r\n\r\n")
    status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
    reply_headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), reply_headers, json.loads(payload or b"null")


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("case", list(ODD_PATHS))
def test_odd_key_names_are_refused(vault: "LocalVault", target: dict[str, str], case: str) -> None:
    """Each odd name reaches the vault byte for byte and is refused for its name (not for the body, not by the
    client); nothing appears in the key store (SDK inventory and the store's own names) or on disk anywhere
    under the directory that holds the data dir."""
    method, path = ODD_PATHS[case]
    client = make_key_client(vault)
    store = vault._store  # noqa: SLF001 - the store's own view, beside the SDK's
    assert store is not None
    names_before = (store.active_names(), store.deleted_names())
    keys_before, files_before = inventory(client), _tree(vault.data_dir.parent)
    body = json.dumps({"key": {"kty": "EC-HSM", "crv": "P-256", "key_hsm": "e30"}}).encode() if method == "PUT" else b""
    status, _, reply = _raw_exchange(vault, method, path, body)
    error = reply["error"] if isinstance(reply, dict) else {}
    if case == "version-traversal":  # the name is the KEK's; the version cannot exist
        refused = status == 404 and error.get("code") == "KeyNotFound"
    else:
        refused = status == 400 and error.get("code") == "BadParameter" and "key name" in error.get("message", "")
    unchanged = (inventory(client) == keys_before and (store.active_names(), store.deleted_names()) == names_before
                 and _tree(vault.data_dir.parent) == files_before)
    _record(refused and unchanged)
    assert refused, (status, reply)


# --- request bodies ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["over-1-MiB", "chunked", "bad-length", "not-json"])
def test_hostile_bodies_are_refused(vault: "LocalVault", case: str) -> None:
    client = make_key_client(vault)
    before = inventory(client)
    headers: dict[str, str | None] = {
        "over-1-MiB": {"Content-Length": str(64 * 1024 * 1024)},
        "chunked": {"Transfer-Encoding": "chunked", "Content-Length": None},
        "bad-length": {"Content-Length": "12abc"}, "not-json": {}}[case]
    body = {"not-json": b"{not json", "chunked": b"0\r\n\r\n"}.get(case, b"")
    expected = {"over-1-MiB": 413, "chunked": 411, "bad-length": 400, "not-json": 400}[case]
    status, _, _ = _raw_exchange(vault, "PUT", "/keys/body-test", body, headers=headers)  # type: ignore[arg-type]
    _record(status == expected and inventory(client) == before)
    assert status == expected


# --- files ------------------------------------------------------------------------------------------------------
def test_files_are_private_after_writes_and_a_restart(tmp_path: Path, use_vault: Callable[..., Any],
                                                      keys: dict[str, KeyFiles]) -> None:
    from tests.hostile.conftest import restart_with

    vault = start_vault(tmp_path / "files")
    try:
        use_vault(vault)
        kek_id = make_kek(vault)
        provider = ByokKeyProvider()
        provider.create(provider.check({}, {"vault_url": vault.vault_url, "key_name": "file-check", "kek_id": kek_id,
                                            "key_file": keys["ec"].private}).inputs)
        vault = restart_with(vault)
        bad = [f"{p.name} {oct(stat.S_IMODE(p.stat().st_mode))}" for p in vault.data_dir.iterdir()
               if p.name not in PUBLIC_FILES and stat.S_IMODE(p.stat().st_mode) != 0o600]
        bad += [] if stat.S_IMODE(vault.data_dir.stat().st_mode) == 0o700 else ["the data dir"]
        bad += [f"{p.name} is writable by others" for p in vault.data_dir.iterdir()
                if stat.S_IMODE(p.stat().st_mode) & 0o022]
    finally:
        vault.stop()
    _record(not bad)
    assert not bad, bad


def test_keygen_writes_private_keys_0600(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from byok_component.cli import main

    modes = {}
    for kty, extra in (("EC", []), ("oct", ["--size", "256"])):
        out = tmp_path / f"{kty}.key"
        assert main(["keygen", "--kty", kty, *extra, "-o", str(out)]) == 0
        modes[kty] = stat.S_IMODE(out.stat().st_mode)
    capsys.readouterr()
    _record(set(modes.values()) == {0o600})
