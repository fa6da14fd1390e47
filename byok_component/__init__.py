"""byok-component: Azure Key Vault BYOK keys declared as Pulumi infrastructure."""

from .__version__ import __version__
from .errors import ByokError

__all__ = ["ByokError", "__version__", "ByokKey", "ByokKeyArgs", "ByokVault", "ByokVaultArgs", "ByokKeySpec",
           "DataPlaneKek", "DataPlaneKekArgs"]

# Pulumi-facing names load on first use, so `import byok_component` (the CLI, wrap, blob) stays light.
_LAZY = {"ByokKey": "resource", "ByokKeyArgs": "resource", "ByokVault": "component", "ByokVaultArgs": "component", "ByokKeySpec": "component",
         "DataPlaneKek": "kek", "DataPlaneKekArgs": "kek"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from importlib import import_module
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
