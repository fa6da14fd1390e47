"""The user's files: bounded reads of inputs (keys, public keys, blobs, ciphertext, token files) and atomic writes
of outputs. Errors name the input and the path, never any content.

An input must be a regular file (a symlink to one is fine): a FIFO would block the open or the read forever, and
a device such as ``/dev/zero`` reports size 0 and never ends. So the path is stat'ed before it is opened (a device
is never even opened), opened non-blocking, stat'ed again through the descriptor (it may have been swapped in
between), and read with a bound fixed by the size the descriptor reports, never more than ``max_bytes``.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from .errors import InputError

__all__ = ["read_input", "write_output", "holds_content", "MAX_INPUT_BYTES"]

# A key, public key, transfer blob or ciphertext is a few KB; refuse to slurp anything huge.
MAX_INPUT_BYTES = 1024 * 1024

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _not_regular(mode: int) -> str | None:
    """What a non-regular file is ("a named pipe (FIFO)"), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def holds_content(value: object) -> bool:
    """Whether a value given for a path is text, not a path: a line break, a NUL, PEM armour, or longer than any
    path (PATH_MAX 4096). A key pasted where its path goes must never be echoed in an error (nor be the value of a
    failing property, which the engine prints)."""
    return isinstance(value, str) and (any(c in value for c in "\n\r\0") or "-----BEGIN" in value
                                       or len(value) > 4096)


def read_input(path: object, *, input: str, max_bytes: int = MAX_INPUT_BYTES) -> bytes:  # noqa: A002
    """Read the regular file ``path`` (at most ``max_bytes``); every failure is one InputError naming ``input``."""
    if not isinstance(path, str) or not path:
        raise InputError("is required (a file path)", input=input)
    if holds_content(path):
        raise InputError("is not a file path: it holds text such as key material (give the path of the file that "
                         "holds it)", input=input)
    try:
        kind = _not_regular(os.stat(path).st_mode)  # follows symlinks: a link to a regular file is fine
        if kind is not None:
            raise InputError(f"{path} is {kind}, not a regular file", input=input)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
        try:
            st = os.fstat(fd)
            kind = _not_regular(st.st_mode)
            if kind is not None:  # swapped after the first stat
                raise InputError(f"{path} is {kind}, not a regular file", input=input)
            if st.st_size > max_bytes:
                raise InputError(f"{path} is {st.st_size} bytes, too large to be a key or blob file", input=input)
            chunks: list[bytes] = []
            left = min(st.st_size, max_bytes) + 1  # one byte more than reported: a file growing under us is seen
            while left > 0:
                chunk = os.read(fd, min(left, 65536))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            data = b"".join(chunks)
            if len(data) > max_bytes:
                raise InputError(f"{path} grew past {max_bytes} bytes while being read", input=input)
            return data
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise InputError(f"file not found: {path}", input=input) from None
    except NotADirectoryError:
        raise InputError(f"file not found: {path} (a part of the path is not a directory)", input=input) from None
    except PermissionError:
        raise InputError(f"cannot read {path} (permission denied)", input=input) from None
    except OSError as exc:
        raise InputError(f"cannot read {path} ({exc.strerror or type(exc).__name__})", input=input) from None


def write_output(path: str, data: bytes, *, private: bool = False, force: bool = False,
                 input: str = "-o") -> None:  # noqa: A002
    """Write ``path`` atomically (a new file beside it, then a rename) so a failure leaves nothing behind.

    The new file is created with mode 0600 (private) or 0644 and the kernel applies the umask to it, as it does
    for any file a tool writes: under ``umask 077`` a public key is 0600 too; a private file is never wider than
    0600. An existing target is replaced only with ``force``, and only if it is a regular file.
    """
    target = Path(path)
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise InputError(f"cannot write {path} ({exc.strerror or type(exc).__name__})", input=input) from None
    if existing is not None:
        if not force:
            raise InputError(f"{path} already exists (use --force to overwrite)", input=input)
        kind = _not_regular(existing.st_mode)
        if kind is not None:
            raise InputError(f"{path} is {kind}; only a regular file is overwritten", input=input)
    if not target.parent.is_dir():
        raise InputError(f"directory {target.parent} does not exist", input=input)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0),
                     0o600 if private else 0o644)
    except OSError as exc:
        raise InputError(f"cannot write {path} ({exc.strerror or type(exc).__name__})", input=input) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
