"""Waiting on Key Vault: exponential backoff with jitter inside a bounded total time.

Key Vault's throttling guidance ("overview-throttling", learn.microsoft.com/azure/key-vault/general/
overview-throttling) tells clients to back off exponentially on 429 -- wait 1, 2, 4, 8, 16 seconds -- and a
real 429 may carry no ``Retry-After`` (vcsjones/AzureSignTool#219). The same shape serves the other waits:
RBAC propagation (role assignments can take minutes to apply) and deletions that complete asynchronously.

``Waiter`` is pure apart from its injectable clock and random source: it says how long to sleep next, or
None once the budget would be overrun; callers sleep. Jitter ("equal jitter": a delay in [d/2, d]) keeps
parallel callers (several imports throttled at once) from retrying in lockstep.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable

__all__ = ["Backoff", "Waiter"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays ``base * 2**n`` (jittered), each at most ``cap``, for at most ``budget`` seconds in total."""

    base: float = 1.0
    cap: float = 16.0
    budget: float = 120.0

    def nominal(self, attempt: int) -> float:
        """The un-jittered delay before retry number ``attempt`` (0-based): 1, 2, 4, 8, 16, 16... for base 1."""
        return min(self.cap, self.base * (2 ** min(attempt, 32)))


class Waiter:
    """One bounded wait: call ``next_delay()`` after each refusal; sleep what it returns, or give up on None."""

    def __init__(self, backoff: Backoff, *, clock: Callable[[], float] = time.monotonic,
                 rng: Callable[[], float] = random.random) -> None:
        self.backoff = backoff
        self._clock, self._rng = clock, rng
        self._started = clock()
        self.attempts = 0

    @property
    def waited(self) -> float:
        """Seconds since the wait began."""
        return self._clock() - self._started

    def next_delay(self, retry_after: float | None = None) -> float | None:
        """Seconds to sleep before the next try (the server's ``retry_after`` when it gave one), or None when that
        would take the wait past its budget."""
        if retry_after is not None and retry_after > 0:
            delay = float(retry_after)
        else:
            delay = self.backoff.nominal(self.attempts) * (0.5 + 0.5 * self._rng())
        if self.waited + delay > self.backoff.budget:
            return None
        self.attempts += 1
        return delay
