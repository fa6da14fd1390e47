"""The local vault as a server: persistence across restarts, TLS only on 127.0.0.1, private files, clean stop."""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest
from azure.keyvault.keys import JsonWebKey
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from byok_component import wrap
from byok_component.keys import b64url
from byok_component.localvault import FaultConfig, LocalVault
from tests.conftest import ec_key


def _p256_der() -> bytes:
    return ec_key("P-256", 2).private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())


def _blob(kek, plaintext: bytes) -> bytes:
    public = rsa.RSAPublicNumbers(int.from_bytes(kek.key.e, "big"), int.from_bytes(kek.key.n, "big")).public_key()
    return json.dumps({"schema_version": "1.0.0", "header": {"kid": kek.id, "alg": "dir",
                                                             "enc": "CKM_RSA_AES_KEY_WRAP"},
                       "ciphertext": b64url(wrap.wrap(public, plaintext))}).encode()


def test_state_survives_a_restart(tmp_path: Path, key_client_factory) -> None:
    data = tmp_path / "vault"
    vault = LocalVault(data)
    with vault:
        client = key_client_factory(vault)
        kek = client.create_rsa_key("kek", size=2048, hardware_protected=True, key_operations=["import"])
        first = client.import_key("target", JsonWebKey(kty="EC-HSM", crv="P-256", t=_blob(kek, _p256_der())))
        client.update_key_properties("target", tags={"kept": "yes"})
        client.create_ec_key("gone")
        client.begin_delete_key("gone").wait()
        port, ca, token = vault.port, Path(vault.ca_cert).read_bytes(), Path(vault.token_file).read_bytes()

    with vault:  # the same object restarts on the same port: kids and the KEK kid stay valid
        assert vault.port == port
        assert Path(vault.ca_cert).read_bytes() == ca and Path(vault.token_file).read_bytes() == token
        client = key_client_factory(vault)
        assert client.get_key("target").id == first.id
        assert client.get_key("target").properties.tags == {"kept": "yes"}
        assert client.get_deleted_key("gone").name == "gone"
        second = client.import_key("target", JsonWebKey(kty="EC-HSM", crv="P-256", t=_blob(kek, _p256_der())))
        assert second.properties.version != first.properties.version

    with LocalVault(data, port=port) as again:  # a new process would do the same
        client = key_client_factory(again)
        assert len(list(client.list_properties_of_key_versions("target"))) == 2
        assert {k.name for k in client.list_properties_of_keys()} == {"kek", "target"}


def test_files_are_private(tmp_path: Path, key_client_factory) -> None:
    data = tmp_path / "vault"
    with LocalVault(data) as vault:
        key_client_factory(vault).create_ec_key("k")
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        names = sorted(p.name for p in data.iterdir())
        assert {"ca.pem", "server.pem", "server-key.pem", "token", "token-readonly", "vault.sqlite3"} <= set(names)
        for path in data.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
        assert not list(data.glob("*ca-key*"))  # the CA's private key is never kept


def test_existing_data_dir_is_made_private(tmp_path: Path) -> None:
    data = tmp_path / "loose"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    with LocalVault(data):
        assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_plain_http_is_refused(local_vault: LocalVault, vault_http) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", local_vault.port, timeout=10)
    with pytest.raises((ConnectionError, http.client.HTTPException)):  # reset, or a TLS alert as a bad status
        connection.request("GET", "/keys?api-version=7.5")
        connection.getresponse()
    connection.close()
    assert vault_http(local_vault, "GET", "/keys")[0] == 200  # the vault itself is unaffected


def test_listens_on_loopback_only(local_vault: LocalVault) -> None:
    # The listening socket itself is bound to 127.0.0.1 (not 0.0.0.0) ...
    assert local_vault._server is not None  # noqa: SLF001 - the bound address is the fact under test
    assert local_vault._server.socket.getsockname()[0] == "127.0.0.1"  # noqa: SLF001
    # ... so any other address of this machine is refused (when it has one).
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outbound interface
        address = probe.getsockname()[0]
    except OSError:
        address = "127.0.0.1"
    finally:
        probe.close()
    if not address.startswith("127."):
        with pytest.raises(OSError):
            socket.create_connection((address, local_vault.port), timeout=5).close()


def test_untrusted_clients_fail_tls(local_vault: LocalVault) -> None:
    import ssl

    connection = http.client.HTTPSConnection("127.0.0.1", local_vault.port, timeout=10,
                                             context=ssl.create_default_context())
    with pytest.raises(ssl.SSLCertVerificationError):
        connection.request("GET", "/keys")
    connection.close()


def test_certificate_names(local_vault: LocalVault) -> None:
    from cryptography import x509
    import ipaddress

    server = x509.load_pem_x509_certificate((Path(local_vault.ca_cert).parent / "server.pem").read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]


def test_localhost_url_works_too(local_vault: LocalVault, token_credential) -> None:
    from azure.keyvault.keys import KeyClient

    client = KeyClient(f"https://localhost:{local_vault.port}", token_credential(local_vault.token_file),
                       verify_challenge_resource=False, connection_verify=local_vault.ca_cert)
    assert client.create_ec_key("via-localhost").id.startswith(local_vault.vault_url)


def test_stop_closes_keep_alive_connections_and_joins(tmp_path: Path, key_client_factory) -> None:
    before_threads = set(threading.enumerate())
    vault = LocalVault(tmp_path / "v").start()
    client = key_client_factory(vault)
    client.create_ec_key("k")  # leaves a pooled keep-alive connection open in the client
    before = time.monotonic()
    vault.stop()
    assert time.monotonic() - before < 5
    assert not [t for t in set(threading.enumerate()) - before_threads if t.is_alive()]
    vault.stop()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", vault.port), timeout=5).close()


def test_api_contract(tmp_path: Path) -> None:
    vault = LocalVault(tmp_path / "v", sku="premium", faults=FaultConfig())
    with pytest.raises(RuntimeError):
        vault.vault_url  # no port before start
    with vault as started:
        assert started is vault and vault.running
        info = vault.info()
        assert info == {"vault_url": vault.vault_url, "ca_cert": vault.ca_cert, "token_file": vault.token_file}
        assert vault.vault_url == f"https://127.0.0.1:{vault.port}"
        assert Path(vault.readonly_token_file).is_file()
        with pytest.raises(RuntimeError):
            vault.start()
    assert not vault.running
    with pytest.raises(ValueError):
        LocalVault(tmp_path / "x", sku="basic")


def test_requests_are_counted(tmp_path: Path, vault_http) -> None:
    with LocalVault(tmp_path / "v") as vault:
        vault_http(vault, "GET", "/keys", token=None)
        vault_http(vault, "POST", "/keys/c/create", {"kty": "EC"})
        assert vault.request_count == 2
        assert vault.requests == [("GET", "/keys"), ("POST", "/keys/c/create")]


def test_access_log_holds_no_secrets(tmp_path: Path, key_client_factory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="byok_component.localvault")
    with LocalVault(tmp_path / "v") as vault:
        client = key_client_factory(vault)
        kek = client.create_rsa_key("kek", size=2048, hardware_protected=True, key_operations=["import"])
        blob = _blob(kek, _p256_der())
        client.import_key("t", JsonWebKey(kty="EC-HSM", crv="P-256", t=blob))
        token = Path(vault.token_file).read_text().strip()
    text = caplog.text
    assert "PUT /keys/t 200" in text and "POST /keys/kek/create 401" in text
    assert token not in text and "api-version" not in text
    assert b64url(blob)[:40] not in text and "Bearer" not in text
