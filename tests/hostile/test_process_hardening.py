"""What a process leaves behind: no core dump of a process holding private keys, no purged key in the local vault's
SQLite file, no temporary vault directory (keys and tokens) after a ``serve`` was killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from pulumi.dynamic.dynamic import serialize_provider

from byok_component.provider import ByokKeyProvider
from tests.hostile.conftest import KeyFiles, start_vault
from tests.hostile.figures import FIGURES
from tests.integration.test_localvault_serve import _first_line
from tests.integration.conftest import make_key_client
from tests.provider.grpc_host import ROOT, ProviderHost


def _core_limit(pid: int) -> str:
    """The soft and hard RLIMIT_CORE of a running process, as /proc shows them ("0 0")."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            return " ".join(line.split()[4:6])
    raise AssertionError("no core limit line")


# --- core dumps --------------------------------------------------------------------------------------------------
def test_the_cli_cannot_dump_core_once_it_runs(tmp_path: Path, keys: dict[str, KeyFiles]) -> None:
    """``byok`` in its own process: after a command, RLIMIT_CORE is 0 and the process is not dumpable."""
    probe = ("import ctypes, resource, sys\n"
             "from byok_component.cli import main\n"
             "code = main(sys.argv[1:])\n"
             "dumpable = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)\n"  # PR_GET_DUMPABLE
             "print(code, resource.getrlimit(resource.RLIMIT_CORE), dumpable)\n")
    out = subprocess.run([sys.executable, "-c", probe, "keygen", "--kty", "EC", "-o", str(tmp_path / "k.pem")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    last = out.stdout.strip().splitlines()[-1]
    FIGURES.hostile_client("no core dumps", last == "0 (0, 0) 0")
    assert last == "0 (0, 0) 0", out.stderr[-2000:]


def test_the_provider_host_cannot_dump_core_once_it_reads_a_key(keys: dict[str, KeyFiles]) -> None:
    """The engine's provider process (``python -m pulumi.dynamic``): Check reads key_file, then the limit is 0."""
    host = ProviderHost({})
    try:
        host.configure()
        before = _core_limit(host.pid)
        checked = host.check({}, {"vault_url": "https://contoso.vault.azure.net", "key_name": "app",
                                  "kek_id": "https://contoso.vault.azure.net/keys/kek/" + "0" * 32,
                                  "key_file": keys["ec"].private, "__provider": serialize_provider(ByokKeyProvider())})
        after = _core_limit(host.pid)
    finally:
        host.close()
    assert not checked.failures
    FIGURES.hostile_client("no core dumps", after == "0 0")
    assert after == "0 0", (before, after)


def test_serve_cannot_dump_core(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "byok_component.localvault", "--data", str(tmp_path / "v")],
                               cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        json.loads(_first_line(process))
        limit = _core_limit(process.pid)
    finally:
        process.terminate()
        process.communicate(timeout=30)
    FIGURES.hostile_client("no core dumps", limit == "0 0")
    assert limit == "0 0"


# --- the store overwrites what it deletes -----------------------------------------------------------------------
def test_a_purged_key_is_not_left_in_the_store_file(tmp_path: Path) -> None:
    vault = start_vault(tmp_path / "store", behaviour={"purge_protection": False})
    try:
        client = make_key_client(vault)
        names = [f"gone-{i}" for i in range(3)]
        private = []
        for name in names:
            client.create_ec_key(name, curve="P-256")
            private.append(vault._store.latest(name).material.private)  # noqa: SLF001 - what must disappear
            client.begin_delete_key(name).wait()
            client.purge_deleted_key(name)
        client.create_ec_key("kept", curve="P-256")
        kept = vault._store.latest("kept").material.private  # noqa: SLF001 - the positive control
    finally:
        vault.stop()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "store").glob("vault.sqlite3*"))
    assert kept in raw  # the scan can see a key where there is one
    found = [name for name, material in zip(names, private) if material in raw]
    FIGURES.hostile_client("purged keys overwritten", not found)
    assert found == []


# --- serve cleans up after a killed serve --------------------------------------------------------------------------
def _serve_temporary(tmpdir: Path) -> tuple[subprocess.Popen[str], Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "BYOK_"))}
    env["TMPDIR"] = str(tmpdir)
    process = subprocess.Popen([sys.executable, "-m", "byok_component.localvault"], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    info = json.loads(_first_line(process))
    return process, Path(info["ca_cert"]).parent


def test_serve_removes_directories_left_by_killed_vaults_and_keeps_live_ones(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    bystander = tmpdir / "byok-local-vault-not-ours"  # same prefix, no lock file: never touched
    bystander.mkdir()
    killed, killed_dir = _serve_temporary(tmpdir)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=30)
    assert (killed_dir / "token").exists()  # kill -9: keys and tokens stay behind
    live, live_dir = _serve_temporary(tmpdir)
    try:
        second, second_dir = _serve_temporary(tmpdir)  # starts while `live` runs: must not remove its directory
        second.terminate()
        _, second_err = second.communicate(timeout=30)
        state = {"killed": killed_dir.exists(), "live": live_dir.exists(), "second": second_dir.exists(),
                 "bystander": bystander.exists()}
    finally:
        live.terminate()
        _, live_err = live.communicate(timeout=30)
    passed = state == {"killed": False, "live": True, "second": False, "bystander": True}
    FIGURES.hostile_client("stale serve directories removed", passed)
    assert passed, state
    assert "removed 1 temporary vault directory left by vaults that were killed" in live_err
    assert sorted(p.name for p in tmpdir.iterdir()) == ["byok-local-vault-not-ours"]

