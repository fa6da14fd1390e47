"""Refusals the local vault sends, in Key Vault's error shape ``{"error": {"code", "message", "innererror"}}``.

Status codes follow Key Vault's REST error codes (https://learn.microsoft.com/azure/key-vault/general/rest-error-codes)
and what Azure SDK issues show for 403s on keys.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServiceError", "bad_parameter", "key_not_found", "forbidden", "deleted_conflict", "being_deleted",
           "being_recovered", "short_repr"]


class ServiceError(Exception):
    """One HTTP error answer. The message is one line and never holds key material or tokens."""

    def __init__(self, status: int, code: str, message: str, inner_code: str | None = None) -> None:
        self.status = status
        self.code = code
        self.message = " ".join(message.split())
        self.inner_code = inner_code
        super().__init__(f"{status} {code}: {self.message}")

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner_code:
            error["innererror"] = {"code": self.inner_code}
        return {"error": error}


def bad_parameter(message: str) -> ServiceError:
    """400 BadParameter: what Azure answers for malformed or refused input (and what we chose for BYOK)."""
    return ServiceError(400, "BadParameter", message)


def key_not_found(name: str) -> ServiceError:
    """404 KeyNotFound, worded as Azure words it."""
    return ServiceError(404, "KeyNotFound",
                        f"A key with (name/id) {name} was not found in this key vault. If you recently deleted "
                        "this key you may be able to recover it using the correct recovery command.")


def forbidden(message: str, inner_code: str | None) -> ServiceError:
    """403 Forbidden with Azure's inner codes (KeyOperationForbidden, KeyDisabled, ForbiddenByRbac) or none."""
    return ServiceError(403, "Forbidden", message, inner_code)


def deleted_conflict(name: str) -> ServiceError:
    """409 Conflict for a soft-deleted name (create and import alike)."""
    return ServiceError(409, "Conflict",
                        f"Key {name} is currently in a deleted but recoverable state, and its name cannot be "
                        "reused; in this state, the key can only be recovered or purged.",
                        "ObjectIsDeletedButRecoverable")


def being_deleted(name: str) -> ServiceError:
    """409 Conflict while a delete or purge of ``name`` is in flight (azure-sdk-for-net#34322, #7199)."""
    return ServiceError(409, "Conflict", f"Key {name} is currently being deleted and cannot be re-created; retry later.",
                        "ObjectIsBeingDeleted")


def being_recovered(name: str) -> ServiceError:
    """409 Conflict while a recovery of ``name`` is in flight (hashicorp/terraform-provider-azurerm#12285)."""
    return ServiceError(409, "Conflict", f"Key {name} is currently being recovered and cannot be re-created; "
                        "retry later.", "ObjectIsBeingRecovered")


def short_repr(value: object) -> str:
    """A request value quoted in a message: repr, cut to 40 characters (never a whole blob)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
