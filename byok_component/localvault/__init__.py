"""A local Key Vault-compatible HTTPS server that enforces the BYOK spec: a test double, never a place
for real keys.

``LocalVault`` (server.py) serves the Key Vault keys REST API (service.py) over TLS on 127.0.0.1 with
challenge auth, persists keys in SQLite in its data dir (store.py), enforces BYOK imports (byok.py,
policy.py), is as harsh as Azure where it hurts (behaviour.py: purge protection, RBAC propagation,
asynchronous deletion) and injects faults on request (faults.py). ``python -m byok_component.localvault`` and
``byok local-vault serve`` run it (serve.py).
"""

from .behaviour import Behaviour
from .faults import FaultConfig
from .server import Limits, LocalVault

__all__ = ["LocalVault", "FaultConfig", "Behaviour", "Limits"]
