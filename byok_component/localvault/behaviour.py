"""Where the local vault is as harsh as Azure Key Vault: purge protection, retention, RBAC propagation and
deletion that completes later. Fixed when the vault starts; each part switchable per vault.

``Behaviour`` fields (``--behaviour FILE`` JSON uses the same names):

- ``purge_protection`` (default **on**, as ``ByokVault`` creates its vault): a purge is refused with
  ``403 Forbidden`` "Operation "purge" is not allowed because purge protection is enabled for this vault. Key
  Vault service will automatically purge it after the retention period has passed." (text as Azure returns it,
  quoted in microsoft/AzureTRE#1760; "soft-delete-overview": with purge protection a deleted object cannot be
  purged until its retention period has passed). No innererror is sent: none is documented for this refusal.
- ``retention_days`` (7-90, default 90): ``recoverableDays`` and the ``scheduledPurgeDate`` of deleted keys.
  ``recoveryLevel`` is reported as Key Vault's DeletionRecoveryLevel enum defines it (azure-keyvault-keys
  ``KeyProperties.recovery_level``; "soft-delete-overview"): ``Recoverable+Purgeable`` / ``Recoverable``
  with purge protection off / on at 90 days, ``CustomizedRecoverable+Purgeable`` / ``CustomizedRecoverable``
  below 90 days. (``+ProtectedSubscription`` levels depend on the subscription and are not modelled.)
- ``rbac_window_seconds`` / ``rbac_window_requests``: a role assignment that has not taken effect yet. For
  that many seconds, or that many authenticated requests, after the vault starts or after
  ``LocalVault.assign_role()`` (the named event: a new role assignment), every request is answered
  ``403 Forbidden`` with innererror ``ForbiddenByRbac`` and Azure's message "Caller is not authorized to
  perform action on resource. If role assignments, deny assignments or role definitions were changed
  recently, please observe propagation time." (pulumi/pulumi-azure-nextgen#195, pulumi/pulumi-azure-native#890).
  The Key Vault RBAC guide said role changes can take up to 10 minutes to apply.
- ``async_seconds``: delete, purge and recover are answered at once but complete this much later
  (azure-sdk-for-net#26027: after delete and purge, GETs answer 404 for 1-5 s while the name is still
  taken; azure-sdk-for-net#34322: "no way to monitor when a purge is complete", ~30 s in the field).
  Meanwhile: after a **delete**, ``GET /keys/{n}`` and ``GET /deletedkeys/{n}`` answer 404 (the SDKs'
  delete pollers wait for the deleted key to appear), and purge, recover, create and import answer
  ``409 Conflict`` innererror ``ObjectIsBeingDeleted`` (azure-sdk-for-net#7199, Azure/azure-cli#12722);
  after a **purge**, create and import answer ``409`` ``ObjectIsBeingDeleted`` "Key {n} is currently being
  deleted and cannot be re-created; retry later." (azure-sdk-for-net#34322); after a **recover**,
  ``GET /keys/{n}`` answers 404 and create/import answer ``409`` ``ObjectIsBeingRecovered``
  (hashicorp/terraform-provider-azurerm#12285). A restart completes whatever was in flight.

Throttling has its own switches in ``FaultConfig`` (faults.py), including whether a 429 carries Retry-After.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

from .faults import read_json_file, settings_object

__all__ = ["Behaviour", "RbacWindow", "Pending", "PendingKind", "recovery_level", "PURGE_PROTECTED_MESSAGE",
           "RBAC_MESSAGE"]

PURGE_PROTECTED_MESSAGE = ('Operation "purge" is not allowed because purge protection is enabled for this vault. '
                           "Key Vault service will automatically purge it after the retention period has passed.")
RBAC_MESSAGE = ("Caller is not authorized to perform action on resource. If role assignments, deny assignments or "
                "role definitions were changed recently, please observe propagation time.")
PendingKind = Literal["delete", "purge", "recover"]


@dataclass(frozen=True)
class Behaviour:
    """How harsh the vault is (see the module docstring). The defaults: purge protection on, 90 days retention,
    role assignments effective at once, deletion complete at once."""

    purge_protection: bool = True
    retention_days: int = 90
    rbac_window_seconds: float = 0.0
    rbac_window_requests: int = 0
    async_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.purge_protection, bool):
            raise ValueError("purge_protection must be true or false")
        days = self.retention_days
        if isinstance(days, bool) or not isinstance(days, int) or not 7 <= days <= 90:
            raise ValueError("retention_days must be a whole number of days between 7 and 90")
        for name in ("rbac_window_seconds", "async_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 3600:
                raise ValueError(f"{name} must be a number of seconds between 0 and 3600")
            object.__setattr__(self, name, float(value))
        count = self.rbac_window_requests
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError("rbac_window_requests must be a whole number >= 0")

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "Behaviour":
        return cls(**settings_object(doc, tuple(f.name for f in fields(cls)), "behaviour"))

    @classmethod
    def from_file(cls, path: str | Path) -> "Behaviour":
        return cls.from_dict(read_json_file(path))

    @property
    def recovery_level(self) -> str:
        return recovery_level(self.purge_protection, self.retention_days)


def recovery_level(purge_protection: bool, retention_days: int) -> str:
    """Key Vault's DeletionRecoveryLevel for a vault with soft delete (always on) and this setting."""
    level = "Recoverable" if retention_days == 90 else "CustomizedRecoverable"
    return level if purge_protection else f"{level}+Purgeable"


class RbacWindow:
    """The role-propagation window: open for N seconds or N requests after start() (thread-safe)."""

    def __init__(self, seconds: float, requests: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds, self._requests, self._clock = seconds, requests, clock
        self._lock = threading.Lock()
        self._until = 0.0
        self._left = 0
        self.denied = 0
        self.start()

    def start(self) -> None:
        """A role was (re)assigned: deny again for the configured window."""
        with self._lock:
            self._until = self._clock() + self._seconds
            self._left = self._requests

    def denies(self) -> bool:
        """Count one authenticated request; True while the role has not taken effect."""
        with self._lock:
            deny = self._clock() < self._until
            if self._left > 0:
                self._left -= 1
                deny = True
            self.denied += deny
            return deny


class Pending:
    """Deletes, purges and recoveries answered but not complete yet, by lower-case key name (thread-safe)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds, self._clock = seconds, clock
        self._lock = threading.Lock()
        self._until: dict[str, tuple[PendingKind, float]] = {}

    def begin(self, name: str, kind: PendingKind) -> None:
        if self._seconds > 0:
            with self._lock:
                self._until[name.lower()] = (kind, self._clock() + self._seconds)

    def kind(self, name: str) -> PendingKind | None:
        """What is still in flight for ``name``, if anything."""
        with self._lock:
            entry = self._until.get(name.lower())
            if entry is None:
                return None
            if self._clock() >= entry[1]:
                del self._until[name.lower()]
                return None
            return entry[0]
