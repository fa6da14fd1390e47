"""Bearer tokens of the local vault: a full token and a read-only one, random, kept in the data dir (0600).

Made with ``secrets`` on first start and reused, so clients keep working across restarts.
Compared in constant time; never logged.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .tls import write_private

__all__ = ["Tokens", "load_or_create_tokens", "TOKEN_FILE", "READONLY_TOKEN_FILE"]

TOKEN_FILE, READONLY_TOKEN_FILE = "token", "token-readonly"
Access = Literal["full", "readonly"]


@dataclass(frozen=True, slots=True)
class Tokens:
    full: str = field(repr=False)
    readonly: str = field(repr=False)

    def access(self, authorization: str | None) -> Access | None:
        """What an ``Authorization`` header grants: full, readonly, or nothing (None)."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        presented = token.strip().encode("utf-8", "replace")
        if hmac.compare_digest(presented, self.full.encode("ascii")):
            return "full"
        if hmac.compare_digest(presented, self.readonly.encode("ascii")):
            return "readonly"
        return None


def _load_or_create(path: Path) -> str:
    if path.exists():
        text = path.read_text(encoding="ascii").strip()
        if len(text) >= 32:
            path.chmod(0o600)
            return text
    token = secrets.token_urlsafe(32)
    write_private(path, token.encode("ascii") + b"\n")
    return token


def load_or_create_tokens(data_dir: Path) -> Tokens:
    return Tokens(_load_or_create(data_dir / TOKEN_FILE), _load_or_create(data_dir / READONLY_TOKEN_FILE))
