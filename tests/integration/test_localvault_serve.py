"""``python -m byok_component.localvault`` / ``serve.main``: one JSON line when ready, a warning, clean signal stop."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from byok_component.localvault import serve

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Served:
    """A vault started by ``serve`` in another process, described as the fixtures' helpers expect."""

    vault_url: str
    ca_cert: str
    token_file: str

    @property
    def port(self) -> int:
        return int(self.vault_url.rsplit(":", 1)[1])

    @property
    def readonly_token_file(self) -> str:
        return str(Path(self.token_file).with_name("token-readonly"))


def _spawn(*args: str, module: str = "byok_component.localvault") -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "BYOK_"))}
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _first_line(process: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """Block until the server prints its line (or exits): readiness without sleeping."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            process.kill()
            pytest.fail("the local vault printed nothing within 30 s")
    return process.stdout.readline()


def _stop(process: subprocess.Popen[str], signum: int) -> tuple[int, str, str]:
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    return process.returncode, out, err


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_prints_one_line_and_stops_on_signal(tmp_path: Path, key_client_factory, signum: int) -> None:
    data = tmp_path / "data"
    process = _spawn("--data", str(data))
    try:
        info: dict[str, Any] = json.loads(_first_line(process))
        assert set(info) == {"vault_url", "ca_cert", "token_file"}
        assert info["vault_url"].startswith("https://127.0.0.1:")
        assert info["ca_cert"] == str(data / "ca.pem") and info["token_file"] == str(data / "token")
        assert key_client_factory(Served(**info)).create_ec_key("served").name == "served"
    finally:
        code, out, err = _stop(process, signum)
    assert code == 0
    assert out == ""  # exactly one line was printed
    assert "TEST DOUBLE" in err and "Never put real keys" in err
    assert Path(info["token_file"]).read_text().strip() not in err
    assert (data / "vault.sqlite3").is_file()  # --data is kept


@pytest.mark.slow
def test_serve_without_data_uses_and_removes_a_private_temp_dir(tmp_path: Path) -> None:
    process = _spawn(module="byok_component.localvault.serve")
    try:
        info = json.loads(_first_line(process))
        data = Path(info["ca_cert"]).parent
        assert oct(data.stat().st_mode & 0o777) == "0o700"
    finally:
        code, _, _ = _stop(process, signal.SIGTERM)
    assert code == 0 and not data.exists()


@pytest.mark.slow
def test_serve_on_a_busy_port_fails_cleanly(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        process = _spawn("--data", str(tmp_path / "d"), "--port", str(busy.getsockname()[1]))
        out, err = process.communicate(timeout=30)
    assert process.returncode == 1 and out == ""
    assert "cannot start on 127.0.0.1" in err and "Traceback" not in err


def test_main_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert serve.main(str(tmp_path / "d"), 0, "basic", None) == 2
    faults = tmp_path / "faults.json"
    faults.write_text('{"explode": 1}')
    assert serve.main(str(tmp_path / "d"), 0, "premium", str(faults)) == 2
    assert serve.main(str(tmp_path / "d"), 0, "premium", str(tmp_path / "missing.json")) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--sku" in captured.err and "unknown fault setting" in captured.err and "missing.json" in captured.err
    assert not (tmp_path / "d").exists()  # nothing was started


@pytest.mark.slow
def test_serve_with_faults_file(tmp_path: Path, vault_http) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"fail_500": {"GET /keys": 1}}))
    data = tmp_path / "data"
    process = _spawn("--data", str(data), "--sku", "managedhsm", "--faults", str(faults))
    try:
        served = Served(**json.loads(_first_line(process)))
        assert vault_http(served, "GET", "/keys")[0] == 500
        assert vault_http(served, "GET", "/keys")[0] == 200
        assert "managedhsm" in vault_http(served, "GET", "/keys", token=None)[1]["www-authenticate"]
    finally:
        assert _stop(process, signal.SIGTERM)[0] == 0
