"""The CLI's conventions (byok_component/console.py) hold for every command, and dead ends say what to do next."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from byok_component import wrap
from byok_component.cli import build_parser, main
from byok_component.keys import private_key_pem
from tests.conftest import ec_key, rsa_key

REPO = Path(__file__).resolve().parents[2]
KID = "https://127.0.0.1:8443/keys/kek/0123456789abcdef0123456789abcdef"
ONLINE = {"kek create", "kek download", "import", "verify", "wrap"}  # wrap: with --vault-url
# Commands that only act (their result is a running process or the demo's table).
NO_REPORT = {"local-vault serve", "demo"}


def commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every leaf command of the parser, by its full name ("kek create")."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = commands(sub, f"{prefix}{name} ")
                found.update(nested or {f"{prefix}{name}": sub})
    return found


def test_every_flag_has_help_and_reporting_commands_take_json() -> None:
    leaves = commands(build_parser())
    assert {"keygen", "wrap", "blob", "inspect", "kek create", "kek download", "import", "verify",
            "local-vault serve", "local-vault env", "demo"} <= set(leaves)
    for name, command in leaves.items():
        for action in command._actions:
            assert action.help, f"byok {name} {action.option_strings or action.dest}: no help text"
        flags = {flag for action in command._actions for flag in action.option_strings}
        assert ("--json" in flags) == (name not in NO_REPORT), name


def test_help_shows_defaults_and_online_commands_name_the_credentials() -> None:
    leaves = commands(build_parser())
    assert "(default: 4096)" in leaves["kek create"].format_help()
    assert "(default: RSA)" in leaves["keygen"].format_help()
    assert "(0: any free port) (default: 0)" in leaves["local-vault serve"].format_help()  # 0 is not "no default"
    assert "(default: 0)" in leaves["local-vault env"].format_help()
    assert "(default: None)" not in "".join(c.format_help() for c in leaves.values())
    for name, command in leaves.items():
        text = command.format_help()
        for needle in ("DefaultAzureCredential", "BYOK_ACCESS_TOKEN_FILE", "BYOK_CA_BUNDLE", "byok local-vault env"):
            assert (needle in text) == (name in ONLINE) or name == "local-vault env", (name, needle)


def test_import_needs_the_key_type_from_the_user(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["import", "--vault-url", "https://127.0.0.1:1", "--name", "k", "--byok-file", "x.byok"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--kty" in err and "--public-key" in err and err.count("\n") == 1


@pytest.fixture()
def kek_pub(tmp_path: Path) -> Path:
    path = tmp_path / "kek.pub.pem"
    path.write_bytes(rsa_key(2048).public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def error_of(capsys, argv: list[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("byok: error: "), err
    return err


def test_dead_ends_say_what_to_do_next(tmp_path: Path, kek_pub: Path, capsys) -> None:
    ec = tmp_path / "ec.pem"
    ec.write_bytes(private_key_pem(ec_key("P-256")))
    enc = tmp_path / "enc.pem"
    enc.write_bytes(private_key_pem(ec_key("P-256"), b"pw-pw-pw"))
    aes = tmp_path / "aes.bin"
    aes.write_bytes(bytes(range(32)))
    w = ["wrap", "--kek-pem", str(kek_pub), "--key"]
    err = error_of(capsys, [*w, str(ec), "--kek-id", "KEKforBYOK", "-o", str(tmp_path / "o.byok")])
    assert "--kek-id: 'KEKforBYOK' is not a key identifier URL" in err and "byok kek create prints it" in err
    assert "https" not in err.split("—")[0]
    err = error_of(capsys, [*w, str(enc), "--kek-id", KID, "-o", str(tmp_path / "o.byok")])
    assert "encrypted and no password was given" in err and "--password-env VAR" in err
    err = error_of(capsys, [*w, str(aes), "--kek-id", KID, "-o", str(tmp_path / "o.byok")])
    assert "add --kty oct" in err and "give the key type oct" not in err
    assert not (tmp_path / "o.byok").exists()


def test_blob_refuses_a_byok_file_as_ciphertext_like_the_provider_tells_them_apart(tmp_path: Path, kek_pub: Path,
                                                                                   capsys) -> None:
    ciphertext = wrap.wrap(serialization.load_pem_public_key(kek_pub.read_bytes()), bytes(32))
    (tmp_path / "raw.bin").write_bytes(ciphertext)
    assert main(["blob", "--kek-id", KID, "--wrapped", str(tmp_path / "raw.bin"), "-o", str(tmp_path / "a.byok"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ciphertext_bytes"] == len(ciphertext)
    err = error_of(capsys, ["blob", "--kek-id", KID, "--wrapped", str(tmp_path / "a.byok"), "-o",
                            str(tmp_path / "b.byok")])
    assert "already a .byok transfer blob" in err and "byok import --byok-file" in err
    assert not (tmp_path / "b.byok").exists()


def test_human_output_by_default_json_on_request(tmp_path: Path, kek_pub: Path, capsys) -> None:
    assert main(["keygen", "--kty", "EC", "-o", str(tmp_path / "k.pem")]) == 0
    human = capsys.readouterr().out
    assert human.startswith(f"wrote {tmp_path / 'k.pem'}: EC P-256 test key")
    assert main(["wrap", "--kek-pem", str(kek_pub), "--kek-id", KID, "--key", str(tmp_path / "k.pem"), "-o",
                 str(tmp_path / "k.byok"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kek_id"] == KID and report["kty"] == "EC" and report["ciphertext_bytes"] == 256 + 152
    assert main(["inspect", str(tmp_path / "k.byok")]) == 0
    text = capsys.readouterr().out
    assert "possible_splits: kek_bits=2048 rsa_part_bytes=256 kwp_part_bytes=152" in text and "{" not in text


def test_dev_without_arguments_prints_its_usage() -> None:
    result = subprocess.run([str(REPO / "dev")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and result.stdout == ""
    assert "usage: ./dev" in result.stderr and "demo" in result.stderr and "test" in result.stderr


def test_no_azure_credential_is_one_line_that_says_how_to_sign_in() -> None:
    """DefaultAzureCredential's failure is ~20 lines (one per credential it tried); the user gets one."""
    from azure.core.exceptions import ClientAuthenticationError

    from byok_component import vault
    from byok_component.errors import VaultAuthError

    raw = ClientAuthenticationError(message="DefaultAzureCredential failed to retrieve a token from the included "
                                            "credentials.\nAttempted credentials:\n\tEnvironmentCredential: ...\n"
                                            "\tManagedIdentityCredential: ...\n\tAzureCliCredential: ...")
    error = vault._map_error(raw, "get key KEKforBYOK")
    assert isinstance(error, VaultAuthError) and "\n" not in str(error)
    assert str(error).startswith("get key KEKforBYOK: no Azure credential")
    assert "az login" in str(error) and "BYOK_ACCESS_TOKEN_FILE" in str(error) and "local-vault env" in str(error)
