"""RbacGate: a small resource between a role assignment and what needs the role, created only once the vault's
data plane stops answering 403 ``ForbiddenByRbac`` to the deploying principal.

Why: ARM answers a role assignment at once, but the role takes effect later -- Key Vault's RBAC guide said up
to 10 minutes, its migration guide "several minutes ... implement retry logic". An ARM ``keyvault.Key``
ordered only by ``depends_on`` on the assignment fails its existence check with ``ForbiddenByRbac``
(pulumi/pulumi-azure-native#890, pulumi/pulumi-azure-nextgen#195), and azure-native does not retry it. The gate
reads the KEK's name through the data plane (``GET /keys/{name}``: 200 or 404 both mean the role applies) and
waits on ForbiddenByRbac with the client's bounded backoff (``BYOK_RBAC_WAIT_SECONDS``, 10 minutes by default,
progress logged); any other refusal fails the gate at once with its remedy.

A new role assignment (``role_assignment_id`` changes) replaces the gate, so it waits again. Destroying it
does nothing. The provider holds no state (pickled by reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, Resource, ResourceProvider

from .errors import ByokError
from .kid import check_key_name, normalize_vault_url
from .unknown import is_unknown

__all__ = ["RbacGate", "RbacGateArgs", "RbacGateProvider"]

_REPLACE_ON = ("vault_url", "key_name", "role_assignment_id")


class RbacGateProvider(ResourceProvider):
    """Create waits until the role applies; check and diff are offline (previews)."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = dict(news)
        failures: list[CheckFailure] = []
        for name, check in (("vault_url", lambda v: normalize_vault_url(v, input="vault_url")),
                            ("key_name", lambda v: check_key_name(v, input="key_name"))):
            if is_unknown(news.get(name)):
                continue
            try:
                inputs[name] = check(news.get(name))
            except ByokError as exc:
                failures.append(CheckFailure(name, exc.reason))
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Another vault, probe name or role assignment: wait again (a replacement)."""
        replaces = [k for k in _REPLACE_ON if is_unknown(news.get(k)) or news.get(k) != olds.get(k)]
        return DiffResult(changes=bool(replaces), replaces=replaces, stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Called by `pulumi up` after the role assignment: returns once the data plane accepts the principal."""
        from . import vault

        vault_url = normalize_vault_url(props.get("vault_url"), input="vault_url")
        key_name = check_key_name(props.get("key_name"), input="key_name")
        vault.get_key(vault.client(vault_url), key_name)  # waits out ForbiddenByRbac; 404 is fine
        outs = {"vault_url": vault_url, "key_name": key_name, "role_assignment_id": props.get("role_assignment_id")}
        return CreateResult(f"{vault_url}/keys/{key_name}#rbac", outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh keeps the gate as it is: once passed it has nothing to report."""
        return ReadResult(id_, dict(props))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing to remove: the gate holds nothing in the vault."""


@dataclass
class RbacGateArgs:
    """The vault whose data plane must accept the principal, the key name read to find out (the KEK's), and the
    role assignment's id (a new assignment replaces the gate)."""

    vault_url: pulumi.Input[str]
    key_name: pulumi.Input[str]
    role_assignment_id: Optional[pulumi.Input[str]] = None


class RbacGate(Resource, module="byok", name="RbacGate"):
    """Passes once the role applies (type ``pulumi-python:dynamic/byok:RbacGate``)."""

    vault_url: pulumi.Output[str]
    key_name: pulumi.Output[str]
    role_assignment_id: pulumi.Output[Optional[str]]

    def __init__(self, resource_name: str, args: RbacGateArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {"vault_url": args.vault_url, "key_name": args.key_name,
                 "role_assignment_id": args.role_assignment_id}
        super().__init__(RbacGateProvider(), resource_name, props, opts)
