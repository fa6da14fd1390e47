"""Input files must be regular files read with a bound; outputs are written atomically and honour the umask.

A FIFO or a device given as a key file used to hang ``byok wrap`` and ByokKey's check (a FIFO's size is 0, then
the open blocks) or be read up to the size limit (``/dev/zero``). Each read here runs in a thread with a
deadline, so the defect shows as a failure, never as a hung suite.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from byok_component import files
from byok_component.cli import main
from byok_component.errors import InputError, VaultAuthError
from byok_component.files import read_input, write_output


def _within(call: Callable[[], Any], release: Path | None = None, seconds: float = 20.0) -> Any:
    """``call()``'s result or its exception; AssertionError if it blocks (a FIFO is then released)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, unchanged
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        if release is not None:
            os.close(os.open(release, os.O_WRONLY | os.O_NONBLOCK))
        raise AssertionError(f"blocked for {seconds:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "key.pem"
    os.mkfifo(path)
    return path


def test_a_regular_file_and_a_symlink_to_one_are_read(tmp_path: Path) -> None:
    real = tmp_path / "key.pem"
    real.write_bytes(b"x" * 5000)
    link = tmp_path / "link.pem"
    link.symlink_to(real)
    assert read_input(str(real), input="key_file") == b"x" * 5000
    assert read_input(str(link), input="key_file") == b"x" * 5000


def test_a_fifo_is_refused_at_once_without_a_writer(fifo: Path) -> None:
    with pytest.raises(InputError) as info:
        _within(lambda: read_input(str(fifo), input="key_file"), release=fifo)
    assert str(info.value) == f"key_file: {fifo} is a named pipe (FIFO), not a regular file"


def test_a_symlink_to_a_fifo_is_refused(fifo: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(fifo)
    with pytest.raises(InputError, match="named pipe"):
        _within(lambda: read_input(str(link), input="key_file"), release=fifo)


def test_dev_zero_is_refused_and_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    real_read = os.read
    monkeypatch.setattr(files.os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    with pytest.raises(InputError) as info:
        _within(lambda: read_input("/dev/zero", input="--kek-pem"))
    assert str(info.value) == "--kek-pem: /dev/zero is a character device, not a regular file"
    assert reads == []  # not one byte read


def test_a_socket_and_a_directory_are_refused(tmp_path: Path) -> None:
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(tmp_path / "sock"))
        with pytest.raises(InputError, match="is a socket, not a regular file"):
            read_input(str(tmp_path / "sock"), input="key_file")
    finally:
        server.close()
    with pytest.raises(InputError, match="is a directory, not a regular file"):
        read_input(str(tmp_path), input="key_file")


def test_the_read_is_bounded_by_the_reported_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.pem"
    with open(big, "wb") as handle:  # sparse: 10 GiB reported, nothing allocated
        handle.truncate(10 * 1024 ** 3)
    asked: list[int] = []
    real_read = os.read
    monkeypatch.setattr(files.os, "read", lambda fd, n: asked.append(n) or real_read(fd, n))
    with pytest.raises(InputError, match="10737418240 bytes, too large"):
        read_input(str(big), input="key_file")
    assert asked == []
    small = tmp_path / "small.pem"
    small.write_bytes(b"k" * 100)
    assert read_input(str(small), input="key_file") == b"k" * 100
    assert max(asked) <= 101  # never a buffer of max_bytes for a file that says it is 100 bytes


def test_a_fifo_token_file_fails_at_once(fifo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from byok_component import vault

    monkeypatch.setenv(vault.ENV_TOKEN_FILE, str(fifo))
    credential = vault._credential("https://127.0.0.1:8443")  # noqa: SLF001 - what the clients use
    with pytest.raises(VaultAuthError) as info:
        _within(lambda: credential.get_token("https://vault.azure.net/.default"), release=fifo)
    assert "BYOK_ACCESS_TOKEN_FILE" in str(info.value) and "not a regular file" in str(info.value)


# --- outputs ----------------------------------------------------------------------------------------------------
@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    saved = os.umask(0o022)
    os.umask(saved)

    def set_to(mask: int) -> None:
        os.umask(mask)
    try:
        yield set_to
    finally:
        os.umask(saved)


@pytest.mark.parametrize("mask,public,private", [(0o022, 0o644, 0o600), (0o077, 0o600, 0o600), (0o027, 0o640, 0o600),
                                                 (0o000, 0o644, 0o600)],
                         ids=["umask-022", "umask-077", "umask-027", "umask-000"])
def test_outputs_honour_the_umask_and_private_files_stay_0600(tmp_path: Path, umask: Callable[[int], None],
                                                              mask: int, public: int, private: int) -> None:
    umask(mask)
    write_output(str(tmp_path / "pub.pem"), b"public", input="--public-out")
    write_output(str(tmp_path / "key.pem"), b"private", private=True)
    assert stat.S_IMODE((tmp_path / "pub.pem").stat().st_mode) == public
    assert stat.S_IMODE((tmp_path / "key.pem").stat().st_mode) == private


def test_keygen_and_wrap_outputs_under_umask_077(tmp_path: Path, umask: Callable[[int], None],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    umask(0o077)
    assert main(["keygen", "--kty", "EC", "-o", str(tmp_path / "k.pem"), "--public-out",
                 str(tmp_path / "k.pub.pem")]) == 0
    kek = tmp_path / "kek.pem"
    from tests.conftest import rsa_key
    from cryptography.hazmat.primitives import serialization
    kek.write_bytes(rsa_key(2048).public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    assert main(["wrap", "--kek-pem", str(kek), "--kek-id", "https://127.0.0.1:8443/keys/kek/" + "0" * 32,
                 "--key", str(tmp_path / "k.pem"), "-o", str(tmp_path / "k.byok")]) == 0
    capsys.readouterr()
    modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("k.pem", "k.pub.pem", "k.byok")}
    assert modes == {"k.pem": 0o600, "k.pub.pem": 0o600, "k.byok": 0o600}


def test_force_never_replaces_a_fifo_and_a_failed_write_leaves_nothing(tmp_path: Path, fifo: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="named pipe"):
        write_output(str(fifo), b"data", force=True)
    assert stat.S_ISFIFO(fifo.stat().st_mode)

    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(files.os, "fsync", broken)
    with pytest.raises(OSError):
        write_output(str(tmp_path / "out.byok"), b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem"]
