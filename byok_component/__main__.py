"""``python -m byok_component`` is the ``byok`` command."""

import sys

from .cli import main

sys.exit(main())
