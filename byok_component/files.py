"""Reading the user's input files (keys, public keys, blobs, ciphertext): bounded, errors name the input."""

from __future__ import annotations

import os

from .errors import InputError

__all__ = ["read_input", "MAX_INPUT_BYTES"]

# A key, public key, transfer blob or ciphertext is a few KB; refuse to slurp anything huge.
MAX_INPUT_BYTES = 1024 * 1024


def read_input(path: object, *, input: str, max_bytes: int = MAX_INPUT_BYTES) -> bytes:  # noqa: A002
    """Read ``path``; every failure is an InputError naming ``input`` and the path, never any content."""
    if not isinstance(path, str) or not path:
        raise InputError("is required (a file path)", input=input)
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise InputError(f"{path} is {size} bytes, too large to be a key or blob file", input=input)
        with open(path, "rb") as handle:
            return handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise InputError(f"file not found: {path}", input=input) from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a file", input=input) from None
    except PermissionError:
        raise InputError(f"cannot read {path} (permission denied)", input=input) from None
    except OSError as exc:
        raise InputError(f"cannot read {path} ({exc.strerror or type(exc).__name__})", input=input) from None
