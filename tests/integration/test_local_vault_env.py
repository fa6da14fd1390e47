"""``byok local-vault serve`` + ``eval "$(byok local-vault env --data DIR)"`` from another directory, and the one-line
errors a shell gets when the environment is missing or wrong (each names the variable and the fix)."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import pytest

FIX = 'eval "$(byok local-vault env --data DIR)"'


def byok_env(cwd: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "BYOK_"))}
    env["BYOK_RBAC_WAIT_SECONDS"] = "0"
    return env


def bash(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with ``byok`` on PATH as this interpreter's module (the venv's console script's twin)."""
    shim = cwd / ".bin"
    shim.mkdir(exist_ok=True)
    (shim / "byok").write_text(f'#!/bin/sh\nexec {sys.executable} -m byok_component "$@"\n')
    (shim / "byok").chmod(0o755)
    env = byok_env(cwd) | {"PATH": f"{shim}:{os.environ['PATH']}"}
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_relative_data_dir_gives_absolute_paths_and_env_works_from_anywhere(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    process = subprocess.Popen([sys.executable, "-m", "byok_component", "local-vault", "serve", "--data", "vd"],
                               cwd=tmp_path, env=byok_env(tmp_path), text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:  # readiness: the line, no sleeping
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(60), "the local vault printed nothing"
        info = json.loads(process.stdout.readline())
        assert info["ca_cert"] == str(tmp_path / "vd" / "ca.pem")
        assert info["token_file"] == str(tmp_path / "vd" / "token")
        assert (tmp_path / "vd" / "serving.json").stat().st_mode & 0o777 == 0o600

        shown = bash("byok local-vault env --data ../vd", tmp_path / "elsewhere")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines() == [f"export BYOK_VAULT_URL={info['vault_url']}",
                                             f"export BYOK_CA_BUNDLE={info['ca_cert']}",
                                             f"export BYOK_ACCESS_TOKEN_FILE={info['token_file']}"]
        done = bash('eval "$(byok local-vault env --data ../vd)" && cd / && '
                    'byok kek create --vault-url "$BYOK_VAULT_URL" --name EnvKek --size 2048', tmp_path / "elsewhere")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().startswith(f"{info['vault_url']}/keys/EnvKek/")

        url = info["vault_url"]
        create = f"byok kek create --vault-url {url} --name K --size 2048"
        cases = {  # what is missing or wrong -> what the one error line must name
            f"unset BYOK_ACCESS_TOKEN_FILE; export BYOK_CA_BUNDLE={info['ca_cert']}; {create}":
                ["BYOK_ACCESS_TOKEN_FILE:", "is a loopback (local) vault", FIX],
            f"export BYOK_ACCESS_TOKEN_FILE={info['token_file']}; {create}":
                ["BYOK_CA_BUNDLE:", "not trusted", "CERTIFICATE_VERIFY_FAILED", FIX],
            f"export BYOK_ACCESS_TOKEN_FILE={info['token_file']} BYOK_CA_BUNDLE=nope.pem; {create}":
                ["BYOK_CA_BUNDLE: nope.pem is not a file", FIX],
            f"echo wrong-token-xyz > t; export BYOK_ACCESS_TOKEN_FILE=t BYOK_CA_BUNDLE={info['ca_cert']}; {create}":
                ["BYOK_ACCESS_TOKEN_FILE:", "refused the token in t", FIX],
            f"export BYOK_ACCESS_TOKEN_FILE=missing BYOK_CA_BUNDLE={info['ca_cert']}; {create}":
                ["BYOK_ACCESS_TOKEN_FILE: cannot use the token file: file not found: missing", FIX],
        }
        for script, needles in cases.items():
            result = bash(script, tmp_path / "elsewhere")
            errors = [line for line in result.stderr.splitlines() if not line.startswith("byok: creating")]
            assert result.returncode == 1 and len(errors) == 1, (script, result.stderr)
            assert all(needle in errors[0] for needle in needles), (script, errors[0])
            assert "wrong-token-xyz" not in result.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    assert process.returncode == 0
    assert not (tmp_path / "vd" / "serving.json").exists()
    gone = bash("byok local-vault env --data vd", tmp_path)
    assert gone.returncode == 1 and gone.stdout == ""
    assert gone.stderr.strip() == "byok: error: --data: no local vault is serving from vd — start it: " \
                                  "byok local-vault serve --data vd &"
