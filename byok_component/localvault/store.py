"""Persistence for the local vault: key versions and soft-deleted names in one SQLite file in the data dir.

One connection guarded by a re-entrant lock (the HTTP server is threaded); ``transaction()`` lets the
service check and write atomically. Names compare case-insensitively, as Key Vault names do; the
case of the first version is the one shown in kids. Private material is stored in clear: this is a
test double and its directory is 0700, its files 0600.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

from .crypto import KeyMaterial

__all__ = ["KeyVersion", "Deletion", "KeyStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS names (
  name TEXT PRIMARY KEY COLLATE NOCASE,
  deleted_date INTEGER,            -- NULL while the key is active
  scheduled_purge_date INTEGER
);
CREATE TABLE IF NOT EXISTS versions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- creation order: the latest version has the highest seq
  name TEXT NOT NULL COLLATE NOCASE REFERENCES names(name) ON DELETE CASCADE,
  version TEXT NOT NULL,
  kty TEXT NOT NULL,
  origin TEXT NOT NULL,            -- 'generated' in the vault or 'imported'
  base TEXT NOT NULL, size INTEGER NOT NULL, curve TEXT,
  private BLOB NOT NULL,
  public_jwk TEXT NOT NULL,
  key_ops TEXT NOT NULL,
  enabled INTEGER NOT NULL, nbf INTEGER, exp INTEGER,
  created INTEGER NOT NULL, updated INTEGER NOT NULL,
  tags TEXT NOT NULL,
  UNIQUE (name, version)
);
"""


@dataclass(frozen=True, slots=True)
class KeyVersion:
    """One stored key version (its repr never shows the material)."""

    name: str
    version: str
    kty: str
    origin: str
    material: KeyMaterial = field(repr=False)
    key_ops: tuple[str, ...]
    enabled: bool
    nbf: int | None
    exp: int | None
    created: int
    updated: int
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Deletion:
    deleted_date: int
    scheduled_purge_date: int


class KeyStore:
    """SQLite-backed key store; every method is thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():  # create it private before SQLite opens it
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(self.path, 0o600)
        self.lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA foreign_keys = ON")
        # Purged and deleted rows are overwritten with zeros, not left in free pages for anyone who reads the
        # file later; the build's default (SQLITE_SECURE_DELETE) is not relied on. https://sqlite.org/pragma.html
        self._db.execute("PRAGMA secure_delete = ON")
        if self._db.execute("PRAGMA secure_delete").fetchone()[0] != 1:
            raise RuntimeError("this SQLite cannot overwrite deleted content (secure_delete)")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self.lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock and one SQLite transaction; an exception rolls everything back."""
        with self.lock:
            if self._db.in_transaction:  # nested: join the outer transaction
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- names -----------------------------------------------------------------------------------
    def name_state(self, name: str) -> tuple[str, Deletion | None] | None:
        """``(canonical name, deletion or None)`` or None if the name is unknown."""
        with self.lock:
            row = self._db.execute("SELECT name, deleted_date, scheduled_purge_date FROM names WHERE name = ?",
                                   (name,)).fetchone()
        if row is None:
            return None
        return row[0], (Deletion(row[1], row[2]) if row[1] is not None else None)

    def active_names(self) -> list[str]:
        with self.lock:
            rows = self._db.execute("SELECT name FROM names WHERE deleted_date IS NULL ORDER BY name").fetchall()
        return [r[0] for r in rows]

    def deleted_names(self) -> list[tuple[str, Deletion]]:
        with self.lock:
            rows = self._db.execute("SELECT name, deleted_date, scheduled_purge_date FROM names "
                                    "WHERE deleted_date IS NOT NULL ORDER BY name").fetchall()
        return [(r[0], Deletion(r[1], r[2])) for r in rows]

    def mark_deleted(self, name: str, deletion: Deletion) -> None:
        with self.transaction():
            self._db.execute("UPDATE names SET deleted_date = ?, scheduled_purge_date = ? WHERE name = ?",
                             (deletion.deleted_date, deletion.scheduled_purge_date, name))

    def mark_recovered(self, name: str) -> None:
        with self.transaction():
            self._db.execute("UPDATE names SET deleted_date = NULL, scheduled_purge_date = NULL WHERE name = ?",
                             (name,))

    def purge(self, name: str) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM versions WHERE name = ?", (name,))
            self._db.execute("DELETE FROM names WHERE name = ?", (name,))

    # --- versions ----------------------------------------------------------------------------------
    def add_version(self, key: KeyVersion) -> KeyVersion:
        """Insert a version (creating the name if new); returns it with the canonical name."""
        with self.transaction():
            self._db.execute("INSERT OR IGNORE INTO names (name) VALUES (?)", (key.name,))
            canonical = self._db.execute("SELECT name FROM names WHERE name = ?", (key.name,)).fetchone()[0]
            m = key.material
            self._db.execute(
                "INSERT INTO versions (name, version, kty, origin, base, size, curve, private, public_jwk, key_ops,"
                " enabled, nbf, exp, created, updated, tags) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (canonical, key.version, key.kty, key.origin, m.base, m.size, m.curve, m.private,
                 json.dumps(dict(m.public_jwk)), json.dumps(list(key.key_ops)), int(key.enabled), key.nbf, key.exp,
                 key.created, key.updated, json.dumps(dict(key.tags))))
        return replace(key, name=canonical)

    def save(self, key: KeyVersion) -> None:
        """Write back the mutable properties of an existing version."""
        with self.transaction():
            self._db.execute(
                "UPDATE versions SET key_ops = ?, enabled = ?, nbf = ?, exp = ?, updated = ?, tags = ? "
                "WHERE name = ? AND version = ?",
                (json.dumps(list(key.key_ops)), int(key.enabled), key.nbf, key.exp, key.updated,
                 json.dumps(dict(key.tags)), key.name, key.version))

    def latest(self, name: str) -> KeyVersion | None:
        with self.lock:
            row = self._db.execute(f"{_SELECT} WHERE v.name = ? ORDER BY v.seq DESC LIMIT 1", (name,)).fetchone()
        return _row(row) if row else None

    def get(self, name: str, version: str) -> KeyVersion | None:
        with self.lock:
            row = self._db.execute(f"{_SELECT} WHERE v.name = ? AND v.version = ?", (name, version)).fetchone()
        return _row(row) if row else None

    def versions(self, name: str) -> list[KeyVersion]:
        with self.lock:
            rows = self._db.execute(f"{_SELECT} WHERE v.name = ? ORDER BY v.seq", (name,)).fetchall()
        return [_row(r) for r in rows]


_SELECT = ("SELECT n.name, v.version, v.kty, v.origin, v.base, v.size, v.curve, v.private, v.public_jwk, v.key_ops,"
           " v.enabled, v.nbf, v.exp, v.created, v.updated, v.tags FROM versions v JOIN names n ON n.name = v.name")


def _row(row: tuple) -> KeyVersion:  # type: ignore[type-arg]
    (name, version, kty, origin, base, size, curve, private, public_jwk, key_ops,
     enabled, nbf, exp, created, updated, tags) = row
    material = KeyMaterial(base, bytes(private), tuple(json.loads(public_jwk).items()), size, curve)
    return KeyVersion(name, version, kty, origin, material, tuple(json.loads(key_ops)), bool(enabled), nbf, exp,
                      created, updated, tuple(json.loads(tags).items()))
