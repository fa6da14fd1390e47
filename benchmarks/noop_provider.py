"""A dynamic provider that does nothing: the baseline for a preview's cost per key over gRPC.

Its Check echoes the inputs it is sent and its Diff says "no change", so Check + Diff through
``python -m pulumi.dynamic`` costs only what the Pulumi servicer and gRPC cost for the same properties.
"""

from __future__ import annotations

from typing import Any

from pulumi.dynamic import CheckResult, DiffResult, ResourceProvider


class NoopProvider(ResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=False, replaces=[], stables=[], delete_before_replace=True)
