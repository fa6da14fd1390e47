"""Fault injection for reliability tests: off by default, fixed when the vault starts.

A *rule* is ``"METHOD /path-prefix"``: an HTTP method or ``*``, and a prefix of the request path
(query string ignored). ``"PUT /keys"`` matches every import, ``"POST /keys/kek/create"`` one
create, ``"* /"`` everything.

``FaultConfig`` fields; a ``--faults FILE`` JSON object uses the same names, e.g.
``{"fail_500": {"PUT /keys": 2}, "rate_limit_writes_per_10s": 10, "drop_after_commit": 1}``:

- ``fail_500: {rule: N}`` - the first N requests matching the rule get ``500 InternalServerError``
  and nothing is done.
- ``fail_429: {rule: N}`` - the first N requests matching the rule get ``429 Throttled`` (with
  ``Retry-After: 1`` when ``retry_after``) and nothing is done (Key Vault throttles every kind of transaction, reads and
  deletes too; the write rate limit below only counts creates and imports).
- ``rate_limit_writes_per_10s: N`` - key creates and imports (``POST /keys/{n}/create``,
  ``PUT /keys/{n}``) beyond N in any sliding 10-second window get ``429 Throttled`` (with
  ``Retry-After: <whole seconds until a slot frees>`` when ``retry_after``), and nothing is done (Key Vault allows about
  10 HSM creates per 10 s per vault; refused requests do not use up slots).
- ``retry_after: bool`` (default **false**) - whether 429s carry ``Retry-After``. A real Key Vault 429 may
  carry none: body ``{"error":{"code":"Throttled","message":"Request was not processed because too many
  requests were received. Reason: VaultRequestTypeLimitReached"}}`` and no header (vcsjones/AzureSignTool#219);
  Key Vault's "overview-throttling" page tells clients to back off exponentially (1, 2, 4, 8, 16 s).
- ``drop_before_commit: N`` - the first N imports that pass every check are dropped (connection closed,
  no response) before anything is stored.
- ``drop_after_commit: N`` - the first N imports are stored, then the connection is closed without a
  response (the client cannot know it succeeded).
- ``delay_seconds: {rule: seconds}`` - matching requests are processed, then the response is held
  back that long (a committed write with a slow answer, for client timeouts).
- ``delay_limit: {rule: N}`` - only the first N requests matching that ``delay_seconds`` rule are held
  back (a transient slowdown); without it every matching request is.
- The read-only token (``LocalVault.readonly_token_file``) is always there: GETs work, everything else
  (writes and cryptographic operations alike) gets ``403 Forbidden`` (innererror ``ForbiddenByRbac``).

Order for each request: authentication (401, 403) -> ``fail_500`` -> ``fail_429`` -> rate limit ->
processing (drops) -> delay -> response. ``FaultState.injected()`` (``LocalVault.faults_injected``) counts
the faults actually injected, by kind. Only authenticated requests count, so the SDK's bodiless challenge
request never uses a fault up. Counters start afresh each time the vault starts.

Choices where Azure is unconfirmed: imports count as creates; every sku has the same limit. Harsher sides of
Azure that are not faults (purge protection, RBAC propagation, asynchronous deletion) are in behaviour.py.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from ..errors import InputError
from ..files import read_input

__all__ = ["FaultConfig", "FaultState", "rule_matches", "read_json_file"]

_FIELDS = ("fail_500", "fail_429", "delay_seconds", "delay_limit", "rate_limit_writes_per_10s", "drop_before_commit",
           "drop_after_commit", "retry_after")
_KINDS = ("fail_500", "fail_429", "throttled", "drop_before_commit", "drop_after_commit", "delayed")
_METHODS = ("GET", "PUT", "POST", "PATCH", "DELETE", "HEAD", "*")
WINDOW_SECONDS = 10.0


def _check_rule(rule: object) -> str:
    method, _, prefix = str(rule).partition(" ")
    if not isinstance(rule, str) or method not in _METHODS or not prefix.startswith("/"):
        raise ValueError(f"fault rule {rule!r} must look like 'PUT /keys' (METHOD or *, then a path prefix)")
    return rule


def _check_counts(name: str, value: Mapping[str, int]) -> dict[str, int]:
    counts = {_check_rule(k): v for k, v in dict(value).items()}
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in counts.values()):
        raise ValueError(f"{name} counts must be whole numbers >= 0")
    return counts


def read_json_file(path: str | Path) -> Any:
    """A settings file (``--faults``, ``--behaviour``) as JSON; ValueError naming the file when it is not JSON."""
    try:  # a regular file, bounded (files.py): a FIFO here must not hang serve
        return json.loads(read_input(str(path), input=str(path), max_bytes=64 * 1024).decode("utf-8"))
    except InputError as exc:
        raise ValueError(exc.reason) from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None


def settings_object(doc: Any, known: tuple[str, ...], what: str) -> dict[str, Any]:
    """A settings document (``--faults``, ``--behaviour``) as keyword arguments: it must be a JSON object naming
    only ``known`` settings, so a misspelt setting is refused rather than silently ignored."""
    if not isinstance(doc, Mapping):
        raise ValueError(f"a {what} config must be a JSON object")
    unknown = sorted(set(doc) - set(known))
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {', '.join(unknown)} (known: {', '.join(known)})")
    return dict(doc)


def rule_matches(rule: str, method: str, path: str) -> bool:
    rule_method, _, prefix = rule.partition(" ")
    return rule_method in ("*", method) and path.startswith(prefix)


@dataclass(frozen=True)
class FaultConfig:
    """Which faults to inject (all off by default). See the module docstring for the semantics."""

    fail_500: Mapping[str, int] = field(default_factory=dict)
    delay_seconds: Mapping[str, float] = field(default_factory=dict)
    fail_429: Mapping[str, int] = field(default_factory=dict)
    delay_limit: Mapping[str, int] = field(default_factory=dict)
    rate_limit_writes_per_10s: int | None = None
    drop_before_commit: int = 0
    drop_after_commit: int = 0
    retry_after: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.retry_after, bool):
            raise ValueError("retry_after must be true or false")
        counts = {name: _check_counts(name, getattr(self, name)) for name in ("fail_500", "fail_429", "delay_limit")}
        delay = {_check_rule(k): v for k, v in dict(self.delay_seconds).items()}
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 300 for v in delay.values()):
            raise ValueError("delay_seconds values must be numbers of seconds between 0 and 300")
        stray = sorted(set(counts["delay_limit"]) - set(delay))
        if stray:
            raise ValueError(f"delay_limit rule(s) {', '.join(stray)} have no delay_seconds rule")
        rate = self.rate_limit_writes_per_10s
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate < 1):
            raise ValueError("rate_limit_writes_per_10s must be a whole number >= 1 (or null for no limit)")
        for name in ("drop_before_commit", "drop_after_commit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0")
        for name, value in counts.items():
            object.__setattr__(self, name, MappingProxyType(value))
        object.__setattr__(self, "delay_seconds", MappingProxyType({k: float(v) for k, v in delay.items()}))

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "FaultConfig":
        doc = settings_object(doc, _FIELDS, "fault")
        for name in ("fail_500", "fail_429", "delay_seconds", "delay_limit"):
            if name in doc and not isinstance(doc[name], Mapping):
                raise ValueError(f"{name} must be an object of rule -> value")
        return cls(**doc)

    @classmethod
    def from_file(cls, path: str | Path) -> "FaultConfig":
        return cls.from_dict(read_json_file(path))

    @property
    def enabled(self) -> bool:
        return bool(self.fail_500 or self.fail_429 or self.delay_seconds or self.rate_limit_writes_per_10s
                    or self.drop_before_commit or self.drop_after_commit)


class FaultState:
    """The running counters of one vault's faults (thread-safe; ``clock`` injectable for tests)."""

    def __init__(self, config: FaultConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._fail_left = dict(config.fail_500)
        self._fail_429_left = dict(config.fail_429)
        self._delay_left = dict(config.delay_limit)
        self._injected = dict.fromkeys(_KINDS, 0)
        self._writes: deque[float] = deque()
        self._drops_left = {"drop_before_commit": config.drop_before_commit,
                            "drop_after_commit": config.drop_after_commit}

    def injected(self) -> dict[str, int]:
        """How many faults of each kind were injected since the vault started."""
        with self._lock:
            return dict(self._injected)

    def _take(self, budget: dict[str, int], kind: str, method: str, path: str) -> bool:
        with self._lock:
            for rule, left in budget.items():
                if left > 0 and rule_matches(rule, method, path):
                    budget[rule] = left - 1
                    self._injected[kind] += 1
                    return True
        return False

    def take_fail_500(self, method: str, path: str) -> bool:
        return self._take(self._fail_left, "fail_500", method, path)

    def take_fail_429(self, method: str, path: str) -> bool:
        return self._take(self._fail_429_left, "fail_429", method, path)

    def throttle_write(self) -> int | None:
        """Count one create/import; return Retry-After seconds if it is over the rate, else None."""
        limit = self.config.rate_limit_writes_per_10s
        if limit is None:
            return None
        with self._lock:
            now = self._clock()
            while self._writes and self._writes[0] <= now - WINDOW_SECONDS:
                self._writes.popleft()
            if len(self._writes) >= limit:
                self._injected["throttled"] += 1
                return max(1, math.ceil(self._writes[0] + WINDOW_SECONDS - now))
            self._writes.append(now)
            return None

    def take_drop_before_commit(self) -> bool:
        return self._take_drop("drop_before_commit")

    def take_drop_after_commit(self) -> bool:
        return self._take_drop("drop_after_commit")

    def _take_drop(self, kind: str) -> bool:
        """Whether this request is dropped (``kind`` is the config setting): each one spends a drop."""
        with self._lock:
            if self._drops_left[kind] > 0:
                self._drops_left[kind] -= 1
                self._injected[kind] += 1
                return True
        return False

    def delay_for(self, method: str, path: str) -> float:
        """Seconds to hold this response back (the longest matching rule with budget left), counted once."""
        with self._lock:
            matching = [rule for rule in self.config.delay_seconds if rule_matches(rule, method, path)
                        and self._delay_left.get(rule, 1) > 0]
            if not matching:
                return 0.0
            for rule in matching:
                if rule in self._delay_left:
                    self._delay_left[rule] -= 1
            delay = max(self.config.delay_seconds[rule] for rule in matching)
            if delay:
                self._injected["delayed"] += 1
            return delay
