"""The README runs as written: its marked shell blocks run in a temporary directory (the offline example, the
local-vault walkthrough against a vault it starts itself, the quick start's demo), its Python snippets run as
Pulumi programs under mocks, and blocks that docs/azure.md repeats are the same text.

A block is marked by an HTML comment on the line before its fence:

    <!-- docs-test: NAME -->          run this block (```bash: as a script; ```python: as a Pulumi program)
    <!-- docs-same: NAME -->          this block must equal every other block of that name in README.md and docs/

so README cannot drift from the code: a changed flag or output breaks this test, not a newcomer's first hour.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.component import harness

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARK = re.compile(r"^<!-- docs-(test|same): ([\w -]+?) -->\n```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def marked(kind: str) -> dict[str, list[tuple[str, str, Path]]]:
    """{name: [(language, code, file), ...]} of the blocks marked ``docs-<kind>: name``."""
    found: dict[str, list[tuple[str, str, Path]]] = {}
    for path in DOCS:
        for match in MARK.finditer(path.read_text()):
            if match[1] == kind:
                found.setdefault(match[2], []).append((match[3], match[4], path))
    return found


def shell_block(name: str) -> str:
    (language, code, path), = marked("test")[name]
    assert language == "bash" and path.name == "README.md", (name, language, path)
    return code


def run_block(code: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as a bash script from ``cwd``, stopping at the first failed command, in a process group of its
    own so that anything it starts in the background goes when it ends (or fails)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BYOK_", "AZURE_", "VIRTUAL_ENV"))}
    process = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", code], cwd=cwd, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # a server the block left running (none when it passed)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture()
def checkout(tmp_path: Path) -> Path:
    """A directory that looks like the repository root to a reader's shell: ``venv`` is this test run's venv."""
    (tmp_path / "venv").symlink_to(Path(sys.prefix))
    return tmp_path


def test_the_readme_marks_the_blocks_a_newcomer_runs() -> None:
    assert {"quickstart", "offline", "local-vault", "python existing-vault"} <= set(marked("test"))


def test_quick_start_is_the_two_commands_and_ci_runs_the_second() -> None:
    commands = [line.split("#")[0].strip() for line in shell_block("quickstart").splitlines()]
    assert commands == ["./dev demo", "./dev test"]
    # `./dev test` is this very suite: CI runs it as written (.ci/run), so here only `./dev demo` is run.
    assert (REPO / ".ci" / "run").read_text().strip().splitlines()[-1] == "./dev test"


@pytest.mark.slow
def test_quick_start_demo_runs_as_written() -> None:
    result = run_block("./dev demo", REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = result.stdout.strip().splitlines()
    assert rows[0].split() == ["name", "type", "kid", "fingerprint", "verified"]
    assert [row.split()[-1] for row in rows[1:]] == ["yes", "yes"]
    assert "removed" in result.stderr and "next:" in result.stderr


@pytest.mark.slow
def test_offline_example_runs_as_written(checkout: Path) -> None:
    result = run_block(shell_block("offline"), checkout)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (checkout / "try" / "offline" / "TestECKey.byok").is_file()
    assert "sizes_fit_kek: yes" in result.stdout and "kid: https://myvault.vault.azure.net/keys/KEKforBYOK/" in result.stdout


@pytest.mark.slow
def test_local_vault_walkthrough_runs_as_written(checkout: Path) -> None:
    result = run_block(shell_block("local-vault"), checkout)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    assert re.search(r"^imported https://127\.0\.0\.1:\d+/keys/TestECKey/\w{32}: EC-HSM, ops sign verify",
                     result.stdout, re.MULTILINE), result.stdout
    assert re.search(r"/keys/TestECKey/\w{32}: VERIFIED", result.stdout) and "holds this key" in result.stdout, \
        result.stdout
    assert not (checkout / "try" / "local" / ".byok-data" / "serving.json").exists()  # `kill %1` stopped it


@pytest.mark.parametrize("name", sorted(n for n, blocks in marked("test").items() if blocks[0][0] == "python"))
def test_python_snippets_are_complete_pulumi_programs(name: str, tmp_path: Path) -> None:
    (language, code, path), = marked("test")[name]
    program = tmp_path / "__main__.py"
    program.write_text(code)
    graph = harness.run_one({"mode": "program", "program": str(program), "cwd": str(tmp_path)})
    assert graph.error is None, (path.name, graph.error, graph.stderr[-2000:])
    assert "pulumi-python:dynamic/byok:ByokKey" in graph.types(), graph.outline()


def test_python_snippet_wires_the_data_plane_kek_into_the_key(tmp_path: Path) -> None:
    (_, code, _), = marked("test")["python existing-vault"]
    (tmp_path / "__main__.py").write_text(code)
    graph = harness.run_one({"mode": "program", "program": str(tmp_path / "__main__.py"), "cwd": str(tmp_path)})
    kek, key = graph.one("pulumi-python:dynamic/byok:Kek"), graph.one("pulumi-python:dynamic/byok:ByokKey")
    assert key["inputs"]["kek_id"] == kek["state"]["kid"] and kek["urn"] in key["dependencies"]
    assert set(graph.stack_outputs) == {"kid", "fingerprint"}


def test_blocks_repeated_across_the_docs_are_the_same() -> None:
    same = marked("same")
    assert same, "no docs-same blocks"
    for name, blocks in same.items():
        assert len(blocks) >= 2, f"docs-same: {name} appears once"
        texts = {code for _, code, _ in blocks}
        assert len(texts) == 1, f"docs-same: {name} differs between {[p.name for _, _, p in blocks]}"


@pytest.mark.slow
def test_the_package_builds_from_a_path_as_an_adopter_installs_it(tmp_path: Path) -> None:
    """`pip install /path/to/byok-component` (README "Add it to your own program") builds this wheel."""
    import byok_component

    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "--disable-pip-version-check", "-w", str(tmp_path), str(REPO)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel, = tmp_path.glob("byok_component-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert f"Version: {byok_component.__version__}" in metadata and "Apache-2.0" in metadata
    assert {"byok_component/provider.py", "byok_component/kek.py", "byok_component/py.typed"} <= set(names)
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert "byok = byok_component.cli:main" in archive.read(entry_points).decode()
