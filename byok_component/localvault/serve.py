"""``byok local-vault serve``: run a LocalVault in the foreground until SIGTERM or SIGINT.

Prints a one-line warning on stderr (a test double, no place for real keys), then exactly one JSON
line on stdout once the vault accepts connections:
``{"vault_url": "https://127.0.0.1:N", "ca_cert": "<path>", "token_file": "<path>"}``.
Paths are absolute. While it serves, the same line sits in ``DIR/serving.json`` (0600, removed when it stops),
which ``byok local-vault env --data DIR`` turns into ``export`` lines.
Without ``--data`` the vault lives in a new private temporary directory, removed when it stops; directories
left by vaults that were killed (kill -9, a crash) are removed by the next ``serve`` without ``--data``.
Exit status: 0 after a clean stop, 2 for bad arguments (sku, port, data, faults or behaviour file), 1 if it
cannot start.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shlex
import shutil
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

from .behaviour import Behaviour
from ..errors import InputError
from ..hardening import no_core_dumps
from .faults import FaultConfig
from .policy import SKUS
from .server import LocalVault
from .tls import write_private

__all__ = ["main", "cli", "running_info", "remove_stale_temporaries", "SERVING_FILE"]

SERVING_FILE = "serving.json"
LOCK_FILE = "serve.lock"  # held while a temporary vault runs; unheld, its directory is stale
TEMP_PREFIX = "byok-local-vault-"


def main(data: str | None, port: int, sku: str, faults_file: str | None, behaviour_file: str | None = None) -> int:
    """Serve until SIGTERM/SIGINT; see the module docstring for the output contract."""
    no_core_dumps()  # the vault holds its keys (test keys, but keys) in memory
    if sku not in SKUS:
        print(f"byok local-vault: --sku must be one of {', '.join(SKUS)}", file=sys.stderr)
        return 2
    if not 0 <= port <= 65535:
        print(f"byok local-vault: --port must be between 0 (any free port) and 65535, got {port}", file=sys.stderr)
        return 2
    if data is not None and Path(data).exists() and not Path(data).is_dir():
        print(f"byok local-vault: --data {data} is not a directory", file=sys.stderr)
        return 2
    try:
        faults = FaultConfig.from_file(faults_file) if faults_file else None
    except (OSError, ValueError, TypeError) as exc:
        print(f"byok local-vault: --faults {faults_file}: {exc}", file=sys.stderr)
        return 2
    try:
        behaviour = Behaviour.from_file(behaviour_file) if behaviour_file else None
    except (OSError, ValueError, TypeError) as exc:
        print(f"byok local-vault: --behaviour {behaviour_file}: {exc}", file=sys.stderr)
        return 2
    temporary = data is None
    lock = None
    if temporary:
        removed = remove_stale_temporaries()
        if removed:
            print(f"byok local-vault: removed {removed} temporary vault director{'y' if removed == 1 else 'ies'} "
                  "left by vaults that were killed", file=sys.stderr)
        data_dir = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
        lock = _hold_lock(data_dir)
    else:
        data_dir = Path(data).absolute()  # type: ignore[arg-type]
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    vault = LocalVault(data_dir, port=port, sku=sku, faults=faults, behaviour=behaviour)
    try:
        try:
            vault.start()
        except OSError as exc:
            print(f"byok local-vault: cannot start on 127.0.0.1:{port} with data in {data_dir}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return 1
        try:
            print(f"byok local-vault: WARNING: this is a TEST DOUBLE of Azure Key Vault; keys are stored "
                  f"unprotected in {data_dir}. Never put real keys in it.", file=sys.stderr, flush=True)
            line = json.dumps(vault.info())
            partial = data_dir / f".{SERVING_FILE}.tmp"  # renamed into place: env never reads half a line
            write_private(partial, line.encode("utf-8") + b"\n")
            partial.replace(data_dir / SERVING_FILE)
            print(line, flush=True)
            stop.wait()
        finally:
            vault.stop()
            (data_dir / SERVING_FILE).unlink(missing_ok=True)
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
        if lock is not None:
            os.close(lock)


def _hold_lock(data_dir: Path) -> int:
    """Lock ``data_dir/serve.lock`` for this process's lifetime (the kernel drops it when the process dies, even
    by kill -9). Locked under another name first, then renamed: a cleaner never sees it unlocked."""
    staging = data_dir / f".{LOCK_FILE}.new"
    fd = os.open(staging, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.replace(staging, data_dir / LOCK_FILE)
    return fd


def remove_stale_temporaries(root: str | None = None) -> int:
    """Remove the temporary data directories of vaults that died without cleaning up (kill -9, a crash).

    Only directories this command makes are candidates: named ``byok-local-vault-*`` in the temporary directory,
    real directories owned by this user, holding a ``serve.lock`` that no live process holds. Returns how many.
    """
    base = Path(root or tempfile.gettempdir())
    removed = 0
    try:
        candidates = [p for p in base.iterdir() if p.name.startswith(TEMP_PREFIX)]
    except OSError:
        return 0
    for directory in candidates:
        try:
            info = os.lstat(directory)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                continue
            fd = os.open(directory / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:  # no lock file: not ours, or a vault still setting up
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: that vault is alive
            os.close(fd)
            continue
        try:
            shutil.rmtree(directory)
            removed += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def running_info(data: str, *, wait: float = 0.0) -> dict[str, str]:
    """What a local vault serving from ``data`` printed, once it is checked to be answering on its port.

    With ``wait``, keep asking for that many seconds (a vault started in the background a moment ago).
    Each way this can fail says how to start the vault, so ``eval "$(byok local-vault env --data DIR)"``
    is never silently empty.
    """
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        try:
            return _serving(data)
        except InputError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)  # a user-facing wait for a process we did not start; nothing else to block on


def _serving(data: str) -> dict[str, str]:
    start = f"start it: byok local-vault serve --data {shlex.quote(data)} &"
    directory = Path(data)
    if not directory.is_dir():
        raise InputError(f"{data} is not a local vault's data directory (it does not exist) — {start}",
                         input="--data")
    try:
        info = json.loads((directory / SERVING_FILE).read_text(encoding="utf-8"))
        port = int(info["vault_url"].rsplit(":", 1)[1])
        paths = {name: str(info[name]) for name in ("vault_url", "ca_cert", "token_file")}
    except FileNotFoundError:
        raise InputError(f"no local vault is serving from {data} — {start}", input="--data") from None
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        raise InputError(f"{directory / SERVING_FILE} is unreadable — stop the vault and {start}",
                         input="--data") from None
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        raise InputError(f"the local vault that served from {data} on port {port} is gone (stale "
                         f"{SERVING_FILE}) — {start}", input="--data") from None
    return paths


def cli(argv: list[str] | None = None) -> int:
    """``python -m byok_component.localvault [--data DIR] [--port N] [--sku ...] [--faults FILE]``."""
    parser = argparse.ArgumentParser(prog="python -m byok_component.localvault",
                                     description="Run the local Key Vault test double (never for real keys).")
    parser.add_argument("--data", help="data directory (default: a new temporary directory)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--sku", choices=SKUS, default="premium")
    parser.add_argument("--faults", help="JSON file of faults to inject (see byok_component/localvault/faults.py)")
    parser.add_argument("--behaviour", help="JSON file of Azure behaviours (purge protection, RBAC propagation window, "
                        "asynchronous deletion; see byok_component/localvault/behaviour.py)")
    args = parser.parse_args(argv)
    return main(args.data, args.port, args.sku, args.faults, args.behaviour)


if __name__ == "__main__":
    sys.exit(cli())
