"""What a newcomer or an adopter relies on in the repository itself: license, version, changelog, ignored key
files, no references to files that are not in the repository, and the provider paths stored in stack state."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import byok_component

REPO = Path(__file__).resolve().parents[2]


def repository_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    return [REPO / name for name in listed if (REPO / name).is_file()]


def test_no_file_cites_material_outside_the_repository() -> None:
    # Built from pieces so this file does not match itself.
    outside = re.compile("|".join([r"\b" + "reference" + r"/", r"\b" + "shared" + r"/", "azure" + r"-byok\.md",
                                   "azure" + r"-harsh\.md", "DESIGN" + r"\.md", r"\.md " + "§"]))
    hits = [f"{path.relative_to(REPO)}:{number}: {line.strip()[:100]}"
            for path in repository_files() if path.suffix in (".py", ".md", ".toml", ".yaml", ".txt", "")
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1) if outside.search(line)]
    assert not hits, hits


@pytest.mark.parametrize("name", ["TestRSAKey.pem", "TestECKey.pem", "KEK.pem", "k.bin", "keys/signing.pem",
                                  ".byok-data/token", ".byok-data-docs/ca.pem"])
def test_private_key_files_the_docs_make_are_ignored(name: str) -> None:
    assert subprocess.run(["git", "check-ignore", "-q", name], cwd=REPO).returncode == 0, name


@pytest.mark.parametrize("name", ["TestRSAKey.pub.pem", "KEKforBYOK.publickey.pem"])
def test_public_key_files_are_not_ignored(name: str) -> None:
    assert subprocess.run(["git", "check-ignore", "-q", name], cwd=REPO).returncode == 1, name


def test_license_version_and_changelog_agree() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert "Apache License" in (REPO / "LICENSE").read_text() and "Version 2.0" in (REPO / "LICENSE").read_text()
    assert importlib.metadata.version("byok-component") == byok_component.__version__
    released = re.findall(r"^## (\d+\.\d+\.\d+)", (REPO / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert released and released[0] == byok_component.__version__, released


# ``__provider`` exactly as stacks made with 0.1.0 hold it in their state (pulumi.dynamic's serialize_provider:
# dill, by reference). These strings are frozen: they stand for state that already exists.
STORED_PROVIDERS = {
    "byok_component.provider.ByokKeyProvider":
        "gASVMgAAAAAAAACMF2J5b2tfY29tcG9uZW50LnByb3ZpZGVylIwPQnlva0tleVByb3ZpZGVylJOUKYGULg==",
    "byok_component.kek.DataPlaneKekProvider":
        "gASVMgAAAAAAAACMEmJ5b2tfY29tcG9uZW50Lmtla5SMFERhdGFQbGFuZUtla1Byb3ZpZGVylJOUKYGULg==",
}


@pytest.mark.parametrize("path", list(STORED_PROVIDERS))
def test_the_provider_paths_stored_in_stack_state_do_not_move(path: str) -> None:
    """Every stack's state holds its provider pickled *by reference*: module path and class name. Moving or renaming
    the class breaks refresh, update and destroy of every existing stack, so the path is a promise (README)."""
    from pulumi.dynamic.dynamic import serialize_provider

    module, _, name = path.rpartition(".")
    provider_class = getattr(importlib.import_module(module), name)
    # Old state still loads, in a fresh interpreter as the engine's provider host would load it.
    loaded = subprocess.run([sys.executable, "-c", "import base64, sys, dill; "
                             "p = dill.loads(base64.b64decode(sys.argv[1])); "
                             "print(type(p).__module__ + '.' + type(p).__qualname__)", STORED_PROVIDERS[path]],
                            cwd=REPO, capture_output=True, text=True)
    assert loaded.returncode == 0 and loaded.stdout.strip() == path, loaded.stderr[-500:]
    # ... and new state is written the same way (no spurious diff on every resource after an upgrade).
    assert serialize_provider(provider_class()) == STORED_PROVIDERS[path]
    assert f"`{path}`" in (REPO / "README.md").read_text(), "README must state the stable provider path"
