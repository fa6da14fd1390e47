"""The hostile suite's figures: what was injected, tried and scanned, and how much of it came out clean.

Tests record into ``FIGURES`` as they run; ``pytest_terminal_summary`` (conftest) prints the table at the end
of any run that includes hostile tests. ``python -m tests.hostile.figures`` runs just this suite and prints it.
"""

from __future__ import annotations

import sys
import textwrap
import threading
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["FIGURES", "Figures", "main"]


@dataclass
class Figures:
    """Counters, thread-safe (concurrency tests record from worker threads)."""

    fault_scenarios: int = 0
    fault_scenarios_clean: int = 0
    faults_injected: Counter[str] = field(default_factory=Counter)
    fault_outcomes: Counter[str] = field(default_factory=Counter)  # "ok", "one clear error"
    duplicate_versions: int = 0
    state_disagreements: int = 0
    bad_inputs: int = 0
    bad_inputs_clean: int = 0
    bad_input_surfaces: Counter[str] = field(default_factory=Counter)
    secret_scans: int = 0
    secrets_found: int = 0
    concurrent_creates: int = 0
    concurrent_duplicates: int = 0
    kek_runs: list[tuple[int, int]] = field(default_factory=list)  # (KEKs used, GETs of them seen at the vault)
    security_checks: int = 0
    security_checks_passed: int = 0
    client_checks: Counter[str] = field(default_factory=Counter)  # hostile-client behaviour -> runs
    client_checks_passed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fault(self, injected: dict[str, int], outcome: str, *, clean: bool, duplicates: int = 0,
              disagreements: int = 0) -> None:
        with self._lock:
            self.fault_scenarios += 1
            self.fault_scenarios_clean += clean
            self.faults_injected.update({k: v for k, v in injected.items() if v})
            self.fault_outcomes[outcome] += 1
            self.duplicate_versions += duplicates
            self.state_disagreements += disagreements

    def bad_input(self, surface: str, *, clean: bool) -> None:
        with self._lock:
            self.bad_inputs += 1
            self.bad_inputs_clean += clean
            self.bad_input_surfaces[surface] += 1

    def scan(self, leaked: int) -> None:
        with self._lock:
            self.secret_scans += 1
            self.secrets_found += leaked

    def concurrency(self, creates: int, duplicates: int, keks: int, kek_fetches: int) -> None:
        with self._lock:
            self.concurrent_creates += creates
            self.concurrent_duplicates += duplicates
            self.kek_runs.append((keks, kek_fetches))

    def security(self, passed: bool) -> None:
        with self._lock:
            self.security_checks += 1
            self.security_checks_passed += passed

    def hostile_client(self, kind: str, passed: bool) -> None:
        with self._lock:
            self.client_checks[kind] += 1
            self.client_checks_passed += passed

    @property
    def empty(self) -> bool:
        return not (self.fault_scenarios or self.bad_inputs or self.secret_scans or self.concurrent_creates
                    or self.security_checks or self.client_checks)

    def table(self) -> str:
        injected = sum(self.faults_injected.values())
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.faults_injected.items()))
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.fault_outcomes.items()))
        surfaces = ", ".join(f"{k} {v}" for k, v in sorted(self.bad_input_surfaces.items()))
        rows = [
            ("faults injected / survived cleanly",
             f"{injected} faults in {self.fault_scenarios} scenarios / {self.fault_scenarios_clean} clean",
             f"{kinds}; outcomes: {outcomes}" if self.fault_scenarios else ""),
            ("duplicate versions from retries", str(self.duplicate_versions), "counted with the SDK"),
            ("state disagreeing with the vault", str(self.state_disagreements), "after success and after rerun"),
            ("bad inputs tried / refused cleanly", f"{self.bad_inputs} / {self.bad_inputs_clean}", surfaces),
            ("secrets found", str(self.secrets_found), f"in {self.secret_scans} scans"),
            ("concurrent creates / duplicates", f"{self.concurrent_creates} / {self.concurrent_duplicates}", ""),
            ("KEK fetches / KEKs used", f"{sum(f for _, f in self.kek_runs)} / {sum(k for k, _ in self.kek_runs)}",
             f"in {len(self.kek_runs)} concurrent runs (GET /keys/<kek>/<version> counted at the vault)"),
            ("local vault security checks", f"{self.security_checks} / {self.security_checks_passed} passed", ""),
            ("hostile-client checks", f"{sum(self.client_checks.values())} / {self.client_checks_passed} passed",
             ", ".join(sorted(self.client_checks))),
        ]
        wrapped: list[tuple[str, str, str]] = []
        for figure, value, detail in rows:  # long details continue on rows of their own
            parts = textwrap.wrap(detail, 64) or [""]
            wrapped += [(figure, value, parts[0])] + [("", "", part) for part in parts[1:]]
        width = [max(len(r[i]) for r in wrapped + [("figure", "value", "detail")]) for i in range(3)]
        line = "-+-".join("-" * w for w in width)
        out = [line, " | ".join(h.ljust(w) for h, w in zip(("figure", "value", "detail"), width)), line]
        out += [" | ".join(c.ljust(w) for c, w in zip(row, width)).rstrip() for row in wrapped]
        return "\n".join(out + [line])


FIGURES = Figures()


def main() -> int:
    """Run the hostile suite alone and print its figures table."""
    import pytest

    code = pytest.main(["-q", "-p", "no:cacheprovider", "tests/hostile", *sys.argv[1:]])
    return int(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
