"""``./dev engine`` (tools/pulumi-engine/get) picks the engine a user has, or the pinned build, and says why.

Runs the script against stand-in ``pulumi`` executables and a pre-filled cache directory, so nothing is built;
the real build is what the ``engine_bin`` fixture does for the rest of this folder.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.engine.conftest import GET_ENGINE

VERSION = next(line.split()[2] for line in (GET_ENGINE.parent / "go.mod").read_text().splitlines()
               if line.startswith("require github.com/pulumi/pulumi/pkg/v3 "))


def fake_pulumi(directory: Path, version: str, *, launcher: bool) -> Path:
    directory.mkdir(parents=True)
    (directory / "pulumi").write_text(f"#!/bin/sh\necho {version}\n")
    (directory / "pulumi").chmod(0o755)
    if launcher:
        (directory / "pulumi-resource-pulumi-python").write_text("#!/bin/sh\n")
        (directory / "pulumi-resource-pulumi-python").chmod(0o755)
    return directory


def get(tmp_path: Path, *args: str, path: list[Path] = ()) -> subprocess.CompletedProcess[str]:
    """The script with only ``path`` + the system directories on PATH (no Go) and ``tmp_path/cache`` as cache."""
    env = {**os.environ, "PATH": os.pathsep.join([*map(str, path), "/usr/bin", "/bin"])}
    return subprocess.run([str(GET_ENGINE), "--cache", str(tmp_path / "cache"), *args], env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)


@pytest.fixture
def cached(tmp_path: Path) -> Path:
    """A finished pinned build in the cache."""
    return fake_pulumi(tmp_path / "cache" / VERSION / "bin", VERSION, launcher=True)


def test_a_users_pulumi_on_path_is_used(tmp_path: Path, cached: Path) -> None:
    mine = fake_pulumi(tmp_path / "mine", "v3.280.0", launcher=True)
    done = get(tmp_path, path=[mine])
    assert done.returncode == 0 and done.stdout == f"{mine}\n", done.stderr
    assert f"using {mine}/pulumi (v3.280.0)" in done.stderr


@pytest.mark.parametrize(("version", "launcher", "reason"), [
    ("v3.100.0", True, "is version 'v3.100.0', older than 3.181.0"),
    ("v3.280.0", False, "has no pulumi-resource-pulumi-python beside it or on PATH"),
])
def test_an_unusable_pulumi_on_path_falls_back_to_the_pinned_build_saying_why(
        tmp_path: Path, cached: Path, version: str, launcher: bool, reason: str) -> None:
    mine = fake_pulumi(tmp_path / "mine", version, launcher=launcher)
    done = get(tmp_path, path=[mine])
    assert done.returncode == 0 and done.stdout == f"{cached}\n", done.stderr
    assert f"{mine}/pulumi {reason}; using the pinned {VERSION}" in done.stderr


def test_build_ignores_path(tmp_path: Path, cached: Path) -> None:
    mine = fake_pulumi(tmp_path / "mine", "v3.280.0", launcher=True)
    done = get(tmp_path, "--build", path=[mine])
    assert done.returncode == 0 and done.stdout == f"{cached}\n", done.stderr


def test_without_pulumi_cache_or_go_it_fails_saying_what_to_install(tmp_path: Path) -> None:
    done = get(tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert "no pulumi on PATH and no Go to build" in done.stderr and "install the Pulumi CLI or Go" in done.stderr
