"""``python -m byok_component.localvault``: the same server as ``byok local-vault serve``."""

import sys

from .serve import cli

sys.exit(cli())
