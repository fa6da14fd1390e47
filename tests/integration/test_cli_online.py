"""The online ``byok`` commands and the demo, against the local vault over HTTPS with the real SDK."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from byok_component import vault
from byok_component.cli import main
from byok_component.keys import private_key_pem
from tests.conftest import ec_key, rsa_key


@pytest.fixture()
def env(local_vault, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BYOK_CA_BUNDLE", local_vault.ca_cert)
    monkeypatch.setenv("BYOK_ACCESS_TOKEN_FILE", local_vault.token_file)
    monkeypatch.setenv("BYOK_RBAC_WAIT_SECONDS", "0")
    vault.clear_kek_cache()
    return local_vault


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_manual_flow_kek_download_wrap_import_verify(env, tmp_path: Path, capsys, unique_name) -> None:
    url = env.vault_url
    kek_name, rsa_name, ec_name = unique_name("kek"), unique_name("rsa"), unique_name("ec")
    code, out, _ = run(capsys, "kek", "create", "--vault-url", url, "--name", kek_name, "--size", "2048")
    assert code == 0
    kek_id = out.strip()
    assert kek_id.startswith(f"{url}/keys/{kek_name}/") and len(kek_id.rsplit("/", 1)[1]) == 32
    kek_pem = tmp_path / "kek.pem"
    assert run(capsys, "kek", "download", "--vault-url", url, "--name", kek_name, "-o", str(kek_pem))[0] == 0
    assert kek_pem.read_text().startswith("-----BEGIN PUBLIC KEY-----")

    (tmp_path / "rsa.pem").write_bytes(private_key_pem(rsa_key(2048, 3)))
    (tmp_path / "ec.pem").write_bytes(private_key_pem(ec_key("P-256", 3)))
    for name in ("rsa", "ec"):
        assert run(capsys, "wrap", "--kek-pem", str(kek_pem), "--kek-id", kek_id, "--key",
                   str(tmp_path / f"{name}.pem"), "-o", str(tmp_path / f"{name}.byok"))[0] == 0

    code, out, err = run(capsys, "import", "--vault-url", url, "--name", rsa_name, "--byok-file",
                         str(tmp_path / "rsa.byok"), "--kty", "RSA", "--json")
    assert code == 0, err
    assert json.loads(out)["kty"] == "RSA-HSM"
    code, out, err = run(capsys, "import", "--vault-url", url, "--name", ec_name, "--byok-file",
                         str(tmp_path / "ec.byok"), "--kty", "EC", "--curve", "P-256", "--ops", "sign", "verify",
                         "--tags", "owner=secops", "--expires", "2035-01-01T00:00:00Z", "--json")
    assert code == 0, err
    imported = json.loads(out)
    assert imported["kty"] == "EC-HSM" and sorted(imported["key_ops"]) == ["sign", "verify"]

    assert run(capsys, "verify", "--vault-url", url, "--name", ec_name, "--key", str(tmp_path / "ec.pem"))[0] == 0
    code, out, _ = run(capsys, "verify", "--vault-url", url, "--name", ec_name, "--key", str(tmp_path / "rsa.pem"))
    assert code == 1 and "OTHER material" in out
    code, out, _ = run(capsys, "verify", "--vault-url", url, "--name", unique_name("absent"), "--key",
                       str(tmp_path / "rsa.pem"))
    assert code == 1 and "not found" in out


def test_import_errors_are_one_line_and_name_the_problem(env, tmp_path: Path, capsys, unique_name) -> None:
    url = env.vault_url
    kek_name = unique_name("kek")
    kek_id = run(capsys, "kek", "create", "--vault-url", url, "--name", kek_name, "--size", "2048")[1].strip()
    kek_pem = tmp_path / "kek.pem"
    run(capsys, "kek", "download", "--vault-url", url, "--name", kek_name, "-o", str(kek_pem))
    (tmp_path / "ec.pem").write_bytes(private_key_pem(ec_key("P-256", 3)))
    run(capsys, "wrap", "--kek-pem", str(kek_pem), "--kek-id", kek_id, "--key", str(tmp_path / "ec.pem"),
        "-o", str(tmp_path / "ec.byok"))
    cases = [
        (["--kty", "EC"], "--curve: --kty EC needs --curve"),
        (["--kty", "RSA"], "BadParameter"),  # the vault unwraps an EC key where RSA was declared
        (["--kty", "EC", "--curve", "P-256", "--not-before", "2030-01-01T00:00:00Z", "--expires",
          "2029-01-01T00:00:00Z"], "--not-before: --not-before must be before --expires"),
        (["--kty", "EC", "--curve", "P-256", "--expires", "tomorrow"], "--expires: must be an RFC 3339"),
    ]
    for extra, expected in cases:
        code, _, err = run(capsys, "import", "--vault-url", url, "--name", unique_name("bad"), "--byok-file",
                           str(tmp_path / "ec.byok"), *extra)
        errors = [line for line in err.splitlines() if line.startswith("byok: error: ")]
        assert code == 1 and len(errors) == 1 and expected in errors[0] and "Traceback" not in err, (extra, err)
    code, _, err = run(capsys, "import", "--vault-url", "http://127.0.0.1:1", "--name", "x", "--byok-file",
                       str(tmp_path / "ec.byok"), "--kty", "EC", "--curve", "P-256")
    assert code == 1 and "--vault-url: must use https" in err


def test_soft_deleted_name_says_recover_or_purge(env, tmp_path: Path, capsys, unique_name, key_client) -> None:
    url, name = env.vault_url, unique_name("gone")
    kek_name = unique_name("kek")
    kek_id = run(capsys, "kek", "create", "--vault-url", url, "--name", kek_name, "--size", "2048")[1].strip()
    run(capsys, "kek", "download", "--vault-url", url, "--name", kek_name, "-o", str(tmp_path / "kek.pem"))
    (tmp_path / "ec.pem").write_bytes(private_key_pem(ec_key("P-256", 3)))
    run(capsys, "wrap", "--kek-pem", str(tmp_path / "kek.pem"), "--kek-id", kek_id, "--key",
        str(tmp_path / "ec.pem"), "-o", str(tmp_path / "ec.byok"))
    argv = ["import", "--vault-url", url, "--name", name, "--byok-file", str(tmp_path / "ec.byok"), "--kty", "EC",
            "--curve", "P-256"]
    assert run(capsys, *argv)[0] == 0
    key_client.begin_delete_key(name).result()
    code, _, err = run(capsys, *argv)
    assert code == 1 and "deleted but recoverable" in err and "recover" in err and "purge" in err


def test_unauthorised_token_is_a_clear_error(env, tmp_path: Path, capsys, monkeypatch) -> None:
    bad = tmp_path / "token"
    bad.write_text("not-the-token")
    monkeypatch.setenv("BYOK_ACCESS_TOKEN_FILE", str(bad))
    code, _, err = run(capsys, "kek", "create", "--vault-url", env.vault_url, "--name", "nope")
    assert code == 1 and ("401" in err or "Unauthorized" in err)
    assert "not-the-token" not in err and err.splitlines()[-1].startswith("byok: error: ")


def test_demo_runs_the_whole_flow_and_leaves_nothing_running(capsys) -> None:
    import threading
    before = {t.ident for t in threading.enumerate()}
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0].split() == ["name", "type", "kid", "fingerprint", "verified"]
    assert [line.split()[0] for line in lines[1:]] == ["TestRSAKey", "TestECKey"]
    assert all(line.split()[-1] == "yes" for line in lines[1:])
    assert "RSA-HSM" in lines[1] and "EC-HSM" in lines[2]
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert not leftover, leftover


def test_import_reads_the_type_from_a_public_key_and_missing_versions_say_what_exists(env, tmp_path: Path, capsys,
                                                                                     unique_name) -> None:
    url, kek_name = env.vault_url, unique_name("kek")
    kek_id = run(capsys, "kek", "create", "--vault-url", url, "--name", kek_name, "--size", "2048")[1].strip()
    code, _, err = run(capsys, "kek", "download", "--vault-url", url, "--name", kek_name, "--version", "deadbeef",
                       "-o", str(tmp_path / "kek.pem"))
    assert code == 1 and f"--version: key {kek_name} in {url} has no version deadbeef" in err
    assert f"leave out --version for the current one ({kek_id.rsplit('/', 1)[1]})" in err
    assert "az keyvault" not in err  # az cannot reach a local vault; the hint is for Azure's
    assert not (tmp_path / "kek.pem").exists()
    run(capsys, "kek", "download", "--vault-url", url, "--name", kek_name, "-o", str(tmp_path / "kek.pem"))
    assert run(capsys, "keygen", "--kty", "EC", "--curve", "P-384", "-o", str(tmp_path / "ec.pem"), "--public-out",
               str(tmp_path / "ec.pub.pem"))[0] == 0
    run(capsys, "wrap", "--kek-pem", str(tmp_path / "kek.pem"), "--kek-id", kek_id, "--key", str(tmp_path / "ec.pem"),
        "-o", str(tmp_path / "ec.byok"))
    name = unique_name("ec")
    code, out, err = run(capsys, "import", "--vault-url", url, "--name", name, "--byok-file", str(tmp_path / "ec.byok"),
                         "--public-key", str(tmp_path / "ec.pub.pem"), "--ops", "sign", "verify")
    assert code == 0, err
    assert out.startswith(f"imported {url}/keys/{name}/") and "EC-HSM, ops sign verify" in out
    code, _, err = run(capsys, "import", "--vault-url", url, "--name", unique_name("ec"), "--byok-file",
                       str(tmp_path / "ec.byok"), "--public-key", str(tmp_path / "ec.pub.pem"), "--curve", "P-256")
    assert code == 1 and "--curve: --curve P-256 disagrees with --public-key, which is EC P-384" in err
