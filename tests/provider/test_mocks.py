"""A program using ByokKey under ``pulumi.runtime.set_mocks`` (own interpreter: set_mocks is process-global).

Not a provider host and not started the engine's way (the repository is on PYTHONPATH): under mocks the
provider's methods are never called through ``python -m pulumi.dynamic``; grpc_host.py is the host."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.provider.conftest import KEY_PASSWORD, KeyFiles
from tests.provider.grpc_host import ROOT
from tests.secretscan import SecretSet, assert_no_secrets, outside_secrets, secret_values

SECRET_SIG = "4dabf18193072939515e22adb298388d"


def run_program(**spec: Any) -> tuple[dict[str, Any], str]:
    process = subprocess.run([sys.executable, str(Path(__file__).with_name("mock_program.py")), json.dumps(spec)],
                             cwd=ROOT, capture_output=True, text=True, timeout=120,
                             env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(process.stdout), process.stdout + process.stderr


@pytest.fixture(scope="module")
def graph(keys: dict[str, KeyFiles]) -> tuple[dict[str, Any], str]:
    return run_program(vault_url="https://contoso-byok.vault.azure.net", key_file="/release-runner/only/rsa.pem",
                       public_key_file=keys["rsa"].public, password=KEY_PASSWORD)


def test_types_and_inputs_as_the_engine_receives_them(graph: tuple[dict[str, Any], str]) -> None:
    resources = graph[0]["resources"]
    keys = sorted((r for r in resources if r["typ"] == "pulumi-python:dynamic/byok:ByokKey"), key=lambda r: r["name"])
    assert [r["name"] for r in keys] == ["app", "app-copy"] and all(r["custom"] for r in keys)
    inputs = keys[0]["inputs"]
    # Python names (no camelCase), None seeds dropped, the KEK's kid flowed in from the other resource.
    assert inputs["key_name"] == "app-key" and inputs["tags"] == {"env": "prod"}
    assert inputs["kek_id"] == f"https://contoso-byok.vault.azure.net/keys/KEKforBYOK/{'7' * 32}"
    assert "kid" not in inputs and "fingerprint" not in inputs
    # key_password is a secret input; __provider is secret and pickled by reference (tiny, no code).
    assert inputs["key_password"] == {SECRET_SIG: "1b47061264138c4ac30d75fd1eb44270", "value": KEY_PASSWORD}
    pickled = base64.b64decode(inputs["__provider"]["value"])
    assert inputs["__provider"][SECRET_SIG] and len(pickled) < 100 and b"byok_component.provider" in pickled


def test_outputs_of_the_program(graph: tuple[dict[str, Any], str], keys: dict[str, KeyFiles]) -> None:
    outputs = graph[0]["outputs"]
    assert outputs["urn"].endswith("pulumi-python:dynamic/byok:ByokKey::app")
    assert outputs["fingerprint"] == keys["rsa"].info.fingerprint  # previewable from public_key_file alone
    assert (outputs["key_type"], outputs["key_size"], outputs["curve"]) == ("RSA", 2048, None)
    assert (outputs["key_ops"], outputs["enabled"], outputs["purge_on_delete"]) == (["sign", "verify"], True, False)
    assert outputs["kid"].endswith("/keys/app-key/" + "9" * 32)
    assert outputs["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")


@pytest.fixture(scope="module")
def graph_with_key(keys: dict[str, KeyFiles]) -> tuple[dict[str, Any], str]:
    """The same program where the key file exists (encrypted with the password): material is really loaded."""
    return run_program(vault_url="https://contoso-byok.vault.azure.net", key_file=keys["rsa"].private,
                       public_key_file=keys["rsa"].public, password=KEY_PASSWORD)


def test_nothing_secret_outside_the_secret_wrapper(graph_with_key: tuple[dict[str, Any], str],
                                                   secret_set: SecretSet) -> None:
    """The whole secret set (key, password) against everything the run produced; only values inside Pulumi's
    secret wrapper are set aside, and the password must be there (inputs and state), so the scan is not vacuous."""
    result, raw = graph_with_key
    stdout, _, stderr = raw.partition("\n")  # one JSON document on the first line, then stderr
    assert_no_secrets(stderr, secret_set, "the mocked run's stderr")
    assert_no_secrets(outside_secrets(json.loads(stdout)), secret_set, "the mocked run's output")
    keys = [r for r in result["resources"] if r["typ"] == "pulumi-python:dynamic/byok:ByokKey"]
    for resource in keys:
        assert resource["state"]["fingerprint"]  # the material was read
        assert KEY_PASSWORD in secret_values(resource["inputs"])
        assert KEY_PASSWORD in secret_values(resource["state"])
    assert len(keys) == 2


def test_preview(keys: dict[str, KeyFiles]) -> None:
    result, _ = run_program(vault_url="https://contoso-byok.vault.azure.net", key_file=keys["ec"].private,
                            public_key_file=keys["ec"].public, password=None, preview=True)
    assert sorted(r["name"] for r in result["resources"]) == ["app", "app-copy", "kek"]
    assert all(r["state"].get("fingerprint") == keys["ec"].info.fingerprint
               for r in result["resources"] if r["name"] != "kek")
