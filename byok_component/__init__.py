"""byok-component: Azure Key Vault BYOK keys declared as Pulumi infrastructure."""

from .__version__ import __version__
from .errors import ByokError

__all__ = ["ByokError", "__version__"]
