"""Key identifiers (``kid``), vault URLs and key names, validated as Key Vault defines them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import InputError

__all__ = ["KeyId", "check_key_name", "normalize_vault_url", "KEY_NAME_RE", "VAULT_DNS_SUFFIXES"]

# Names: 1-127 of 0-9 a-z A-Z - (learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates). Versions: 32 hex (system-made).
KEY_NAME_RE = re.compile(r"^[0-9A-Za-z-]{1,127}\Z")  # \Z: "$" would let a trailing newline through
_LABEL_RE = re.compile(r"^[0-9a-z](?:[0-9a-z-]{0,62})\Z")
_VERSION_RE = re.compile(r"^[0-9A-Za-z]{32}\Z")
# Key Vault and Managed HSM DNS suffixes (public and sovereign clouds), plus loopback for local vaults.
VAULT_DNS_SUFFIXES: tuple[str, ...] = (
    ".vault.azure.net", ".managedhsm.azure.net",
    ".vault.azure.cn", ".managedhsm.azure.cn",
    ".vault.usgovcloudapi.net", ".managedhsm.usgovcloudapi.net",
    ".vault.microsoftazure.de",
)
LOOPBACK_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")


def is_loopback(vault_url: str) -> bool:
    """True when ``vault_url``'s host is a loopback host: the local vault, never Azure."""
    return (urlsplit(vault_url).hostname or "") in LOOPBACK_HOSTS


def check_key_name(name: object, *, input: str = "key_name") -> str:  # noqa: A002
    """Return ``name`` if Key Vault accepts it, else raise InputError."""
    if not isinstance(name, str) or not KEY_NAME_RE.match(name):
        raise InputError("must be 1-127 characters of 0-9, a-z, A-Z and '-'", input=input)
    return name


def normalize_vault_url(url: object, *, input: str = "vault_url") -> str:  # noqa: A002
    """``https://host[:port]`` without path or trailing slash; raise InputError for anything else."""
    if not isinstance(url, str) or not url:
        raise InputError("must be an https URL such as https://myvault.vault.azure.net", input=input)
    parts = urlsplit(url.strip())
    if parts.scheme != "https":
        raise InputError("must use https (Key Vault refuses tokens over plain HTTP)", input=input)
    if not parts.hostname or parts.query or parts.fragment or parts.path not in ("", "/") or parts.username \
            or "\\" in parts.netloc:
        raise InputError("must be a vault URL with only a host (and port), e.g. https://myvault.vault.azure.net",
                         input=input)
    try:
        port = parts.port
    except ValueError:
        raise InputError("has an invalid port", input=input) from None
    host = parts.hostname.lower()
    if host not in LOOPBACK_HOSTS and not (host.endswith(VAULT_DNS_SUFFIXES) and _LABEL_RE.match(host.split(".")[0])):
        raise InputError(f"host {host} is not a Key Vault or Managed HSM host (*.vault.azure.net, "
                         "*.managedhsm.azure.net, sovereign clouds) nor a loopback local vault", input=input)
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}" if port and port != 443 else f"https://{host}"


@dataclass(frozen=True, slots=True)
class KeyId:
    """A parsed key identifier: ``https://{host}/keys/{name}[/{version}]``."""

    vault_url: str
    name: str
    version: str | None

    @classmethod
    def parse(cls, kid: object, *, versioned: bool = True, input: str = "kid") -> "KeyId":  # noqa: A002
        """Parse and check a kid; ``versioned`` demands the 32-character version (BYOK spec: KEK kid)."""
        if not isinstance(kid, str) or not kid:
            raise InputError("must be a key identifier https://{vault}/keys/{name}/{version}", input=input)
        if "://" not in kid:  # a bare key name: say what a kid is and where to get one, not "must use https"
            raise InputError(f"{kid.strip()[:130]!r} is not a key identifier URL — give the versioned kid "
                             "https://{vault}/keys/{name}/{version} (byok kek create prints it; "
                             "az keyvault key show --query key.kid)", input=input)
        parts = urlsplit(kid.strip())
        if parts.query or parts.fragment:
            raise InputError("must not carry a query string or fragment", input=input)
        vault_url = normalize_vault_url(f"{parts.scheme}://{parts.netloc}", input=input)
        segments = parts.path.strip("/").split("/") if parts.path.strip("/") else []
        if len(segments) not in (2, 3) or segments[0] != "keys":
            raise InputError("must look like https://{vault}/keys/{name}/{version}", input=input)
        name = check_key_name(segments[1], input=input)
        version = segments[2] if len(segments) == 3 else None
        if version is not None and not _VERSION_RE.match(version):
            raise InputError("has a malformed version (expected 32 characters of 0-9a-zA-Z)", input=input)
        if versioned and version is None:
            raise InputError("must include the key version (https://{vault}/keys/{name}/{version}); "
                             "the BYOK spec needs the exact KEK version", input=input)
        return cls(vault_url, name, version)

    def __str__(self) -> str:
        base = f"{self.vault_url}/keys/{self.name}"
        return f"{base}/{self.version}" if self.version else base
