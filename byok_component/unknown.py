"""Values the Pulumi engine does not know yet (previews), recognised by shape without importing pulumi."""

from __future__ import annotations

from typing import Mapping

__all__ = ["UNKNOWN_WIRE", "is_unknown", "has_unknown"]

UNKNOWN_WIRE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # pulumi.runtime.rpc.UNKNOWN


def is_unknown(value: object) -> bool:
    """A value the engine does not know yet (a preview): ``pulumi.output.Unknown`` or the wire sentinel."""
    if isinstance(value, str):
        return value == UNKNOWN_WIRE
    kind = type(value)
    return kind.__name__ == "Unknown" and kind.__module__.startswith("pulumi")


def has_unknown(value: object) -> bool:
    """``is_unknown`` anywhere inside lists and dicts."""
    if is_unknown(value):
        return True
    if isinstance(value, Mapping):
        return any(has_unknown(k) or has_unknown(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_unknown(v) for v in value)
    return False
