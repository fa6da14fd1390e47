"""RFC 3339 timestamps for key dates (``not_before``, ``expires_on``): strict parse, canonical format."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from .errors import InputError

__all__ = ["parse", "format"]

# Date, 'T', time, optional fraction, and an explicit offset (Z or ±hh:mm): RFC 3339 §5.6.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse(value: object, *, input: str) -> datetime:  # noqa: A002
    """Parse an RFC 3339 timestamp with an explicit offset into an aware UTC datetime (whole seconds)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InputError("must carry a UTC offset (e.g. 2027-01-01T00:00:00Z)", input=input)
        return value.astimezone(timezone.utc).replace(microsecond=0)
    if not isinstance(value, str) or not _RFC3339.match(value.strip()):
        raise InputError("must be an RFC 3339 timestamp such as 2027-01-01T00:00:00Z", input=input)
    text = value.strip().replace("z", "Z").replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InputError("is not a valid date and time", input=input) from None
    # Key Vault stores nbf/exp as Unix seconds: sub-second parts cannot round-trip.
    return parsed.astimezone(timezone.utc).replace(microsecond=0)


def format(value: datetime | None) -> str | None:  # noqa: A001 - mirrors datetime.isoformat
    """Canonical form used in outputs: ``YYYY-MM-DDTHH:MM:SSZ`` in UTC."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
