"""The package version, in one place (the transfer blob's ``generator`` names it)."""

__version__ = "0.1.0"
