"""Process hardening for the processes that hold private keys: no core dumps.

A core dump is a copy of the process's memory on disk, private keys and passwords included, written wherever
``kernel.core_pattern`` says (often a crash collector that keeps it). Before a process reads private key
material it sets its core size limit to 0 (``RLIMIT_CORE``, POSIX) and, on Linux, marks itself non-dumpable
(``prctl(PR_SET_DUMPABLE, 0)``, which also stops a piped core_pattern collector and ptrace by other processes
of the same user). Both are one-way for the process and cost nothing. Where the OS offers neither, nothing
happens: this is defence in depth, never a reason to refuse to run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading

__all__ = ["no_core_dumps"]

PR_SET_DUMPABLE = 4  # <linux/prctl.h>
_done = threading.Event()
_lock = threading.Lock()


def no_core_dumps() -> None:
    """Disable core dumps for this process (idempotent, thread-safe, silent where unsupported)."""
    if _done.is_set():
        return
    with _lock:
        if _done.is_set():
            return
        try:
            import resource
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        except (ImportError, ValueError, OSError):  # no resource module (Windows) or a limit we may not lower
            pass
        if sys.platform.startswith("linux"):
            libc = _libc()
            if libc is not None:
                libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        _done.set()


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
