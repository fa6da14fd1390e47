"""The two-phase flow as docs/azure.md documents it, run: its blocks marked ``<!-- docs-test: officer -->`` and
``local-phases`` (found as tests/docs/test_readme.py finds every marked block) are executed in one bash script (phase 1 of the local rehearsal, the key officer's block, phase 3), against a
SoftHSM token holding a P-384 key generated in it and the local vault. The PIN goes in on stdin, as the
officer types it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.conftest import serve_vault
from tests.docs.test_readme import marked
from tests.integration.conftest import make_key_client
from tests.pkcs11.conftest import SoftHsm
from tests.secretscan import SecretSet, assert_no_secrets

DOC = Path(__file__).resolve().parents[2] / "docs" / "azure.md"


def test_the_documented_two_phase_flow_runs(softhsm: SoftHsm, tmp_path_factory: pytest.TempPathFactory) -> None:
    blocks = {name: found[0][1] for name, found in marked("test").items() if name in ("officer", "local-phases")}
    assert len(blocks) == 2 and all(marked("test")[name][0][2] == DOC for name in blocks)
    phase_1, phase_3 = blocks["local-phases"].split("# Phase 2", 1)
    phase_3 = phase_3.split("\n", 1)[1]
    work = tmp_path_factory.mktemp("docs-two-phase")
    softhsm.make_ec("TestECKey", "P-384")  # the docs' label; made in the token, never outside it
    for vault in serve_vault(tmp_path_factory.mktemp("docs-vault")):
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               "BYOK_VAULT_URL": vault.vault_url, "BYOK_CA_BUNDLE": vault.ca_cert,
               "BYOK_ACCESS_TOKEN_FILE": vault.token_file, "PKCS11_MODULE": softhsm.module,
               "KEY_URI": f"pkcs11:token={softhsm.label};object=TestECKey;type=private"}
        env.pop("BYOK_PKCS11_PIN", None)
        script = "set -euo pipefail\n" + phase_1 + blocks["officer"] + phase_3
        done = subprocess.run(["bash", "-c", script], cwd=work, env=env, input=softhsm.pin + "\n",
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "KEK pinned, for KEK " in done.stdout  # the officer pinned the stack's KEK
        held = make_key_client(vault).get_key("TestECKey")
        assert held.properties.enabled is True and "byok-unverified" not in held.properties.tags
        committed = serialization.load_pem_public_key((work / "keys" / "TestECKey.pub.pem").read_bytes())
        assert held.key.x == committed.public_numbers().x.to_bytes(48, "big")  # type: ignore[attr-defined]
        assert held.key.y == committed.public_numbers().y.to_bytes(48, "big")  # type: ignore[attr-defined]
        assert sorted(os.listdir(work / "keys")) == ["TestECKey.byok", "TestECKey.pub.pem"]  # what gets committed
    pins = SecretSet().add_password("pin", softhsm.pin)
    assert_no_secrets([done.stdout, done.stderr], pins, "the documented commands' output")
