"""Real-engine fixtures: the Pulumi CLI (found or built by ``./dev engine``), a local vault, a project copy.

The engine is obtained by the same script as ``./dev engine`` and ``.ci/run`` use; when no ``pulumi`` is on
PATH and none is cached, this builds it (minutes, once per machine). These tests never skip.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.engine.project import PASSPHRASE, ROOT, EngineProject
from tests.secretscan import SecretSet

GET_ENGINE = ROOT / "tools" / "pulumi-engine" / "get"


@pytest.fixture(scope="session")
def engine_bin(request: pytest.FixtureRequest) -> Path:
    """The directory with ``pulumi`` and ``pulumi-resource-pulumi-python``. The script's progress goes to the
    terminal, uncaptured: a first build takes minutes and should not look like a hang."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        done = subprocess.run([str(GET_ENGINE)], stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{GET_ENGINE} failed (exit {done.returncode}; its reason is above)"
    bin_dir = Path(done.stdout.strip().splitlines()[-1])
    assert (bin_dir / "pulumi").is_file(), f"no pulumi in {bin_dir}"
    return bin_dir


@pytest.fixture
def engine_vault(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A premium local vault per test: the seed's key names are reused by every test, and its request
    counter is what 'reached the vault' means. Indirect parametrization passes ``serve_vault`` options
    (e.g. ``{"behaviour": PURGEABLE}``)."""
    from tests.conftest import serve_vault

    yield from serve_vault(tmp_path_factory.mktemp("engine-vault"), **getattr(request, "param", {}))


@pytest.fixture
def new_project(engine_bin: Path, engine_vault: object, tmp_path: Path) -> EngineProject:
    """A fresh project copy with no stack yet (call ``.init()``)."""
    return EngineProject(engine_bin, tmp_path, engine_vault)


@dataclass
class Material:
    """The key files of a project copy and everything that must never leak from using them."""

    rsa: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey
    password: str  # TestRSAKey.pem is encrypted with it; the stack holds it as a secret config value
    secrets: SecretSet


def write_keys(project: EngineProject, *, password: str | None = None) -> Material:
    """TestRSAKey.pem (RSA-2048, encrypted) and TestECKey.pem (P-256) beside Pulumi.yaml, as the seed has them,
    plus their public halves (TestRSAKey.pub.pem, TestECKey.pub.pem)."""
    rsa_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_private = ec.generate_private_key(ec.SECP256R1())
    password = password or f"pw-{secrets.token_urlsafe(24)}"
    files = {
        "TestRSAKey.pem": rsa_private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password.encode())),
        "TestECKey.pem": ec_private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        "TestRSAKey.pub.pem": rsa_private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "TestECKey.pub.pem": ec_private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    }
    for name, data in files.items():
        path = project.dir / name
        path.write_bytes(data)
        path.chmod(0o600)
    found = (SecretSet().add_private_key("TestRSAKey", rsa_private).add_private_key("TestECKey", ec_private)
             .add_password("rsaKeyPassword", password).add_password("state passphrase", PASSPHRASE)
             .add_vault_tokens(project.vault))
    return Material(rsa_private, ec_private, password, found)


@pytest.fixture
def project(new_project: EngineProject) -> EngineProject:
    """A project copy with its stack initialised on the local vault (example-local shape), keys not yet written."""
    return new_project.init()
