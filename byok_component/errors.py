"""One exception tree for the whole tool: every failure a user can see is a ByokError."""

from __future__ import annotations

import copy

__all__ = [
    "ByokError",
    "InputError",
    "KeyMaterialError",
    "KekError",
    "BlobError",
    "UnwrapError",
    "TokenError",
    "VaultError",
    "VaultAuthError",
    "VaultPermissionError",
    "KeyNotFoundError",
    "KeyConflictError",
    "KeyDeletedError",
    "ThrottledError",
]


class ByokError(Exception):
    """Root of the tree. The message is one line and never holds key material, passwords or tokens.

    ``input`` names the input at fault (a flag, a file, a resource property) so the CLI and the
    provider can point at it; it is prefixed to the message.
    """

    def __init__(self, message: str, *, input: str | None = None) -> None:  # noqa: A002 - the spec's word
        self.input = input
        self.reason = " ".join(str(message).split())  # one line, always
        super().__init__(f"{input}: {self.reason}" if input else self.reason)

    def for_input(self, input: str) -> "ByokError":  # noqa: A002
        """The same error re-attributed to another input name (e.g. a CLI flag or a property)."""
        clone = copy.copy(self)
        clone.input = input
        clone.args = (f"{input}: {self.reason}",)
        return clone


# --- bad input, found before any network call -------------------------------------------------
class InputError(ByokError):
    """An input is malformed, missing or not allowed."""


class KeyMaterialError(InputError):
    """Target key material cannot be read, decrypted or is of a type/size/curve Azure refuses."""


class KekError(InputError):
    """The Key Exchange Key is unusable: not RSA, wrong size, not import-only, not versioned."""


class BlobError(InputError):
    """A transfer blob (.byok) is malformed or does not follow schema 1.0.0."""


# --- cryptographic failure ------------------------------------------------------------------------
class UnwrapError(ByokError):
    """Ciphertext does not open under the given KEK (OAEP or KWP integrity failure)."""


# --- a PKCS#11 token -------------------------------------------------------------------------------
class TokenError(ByokError):
    """A PKCS#11 module or token cannot be used: not found, login refused, mechanism missing, or unsafe."""


# --- the vault said no --------------------------------------------------------------------------
class VaultError(ByokError):
    """A Key Vault request failed; the message carries Azure's code and message, never a token."""

    def __init__(self, message: str, *, input: str | None = None, status: int | None = None,
                 code: str | None = None, inner: str | None = None) -> None:  # noqa: A002
        self.status = status
        self.code = code
        self.inner = inner  # Azure's innererror code (ForbiddenByRbac, ObjectIsBeingDeleted, ...)
        super().__init__(message, input=input)


class VaultAuthError(VaultError):
    """401: no usable credential or token."""


class VaultPermissionError(VaultError):
    """403: the principal lacks the role (or the vault forbids the operation)."""


class KeyNotFoundError(VaultError):
    """404: the key or version does not exist."""


class KeyConflictError(VaultError):
    """The name holds key material other than ours (or another 409)."""


class KeyDeletedError(KeyConflictError):
    """409 ObjectIsDeletedButRecoverable: the name is soft-deleted; recover or purge it."""


class ThrottledError(VaultError):
    """429 after the retry budget: the vault's rate limit was exceeded."""
