"""A small Pulumi program using ByokKey, run under ``pulumi.runtime.set_mocks`` in its own interpreter.

Usage: ``python mock_program.py SPEC_JSON`` with SPEC ``{"key_file": ..., "public_key_file": ...,
"password": ..., "vault_url": ..., "preview": bool}``. The mock plays the engine's part for our dynamic
resources by running the provider's real (offline) ``check`` and returning its inputs as state, plus a kid
and version, so the program's outputs are what a real ``pulumi up`` would give. Prints one JSON document:
``{"resources": [{typ, name, custom, inputs, state}], "outputs": {...}}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pulumi

SECRET_SIG = "4dabf18193072939515e22adb298388d"


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict) and SECRET_SIG in value:
        return value["value"]
    return value


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[dict[str, Any]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state: dict[str, Any] = dict(args.inputs)
        if args.typ == "pulumi-python:dynamic/byok:Kek":
            state.update(kid=f"{args.inputs['vault_url']}/keys/{args.inputs['key_name']}/{'7' * 32}",
                         version="7" * 32)
        if args.typ == "pulumi-python:dynamic/byok:ByokKey":
            from byok_component.provider import ByokKeyProvider

            plain = {k: _unwrap(v) for k, v in args.inputs.items() if k != "__provider"}
            checked = ByokKeyProvider().check({}, plain)
            if checked.failures:
                raise ValueError(f"check failed: {[(f.property, f.reason) for f in checked.failures]}")
            state = dict(checked.inputs)  # as the engine keeps them: what check marked secret stays marked
            state.update(kid=f"{state['vault_url']}/keys/{state['key_name']}/{'9' * 32}", version="9" * 32)
        self.resources.append({"typ": args.typ, "name": args.name, "custom": args.custom,
                               "inputs": args.inputs, "state": state})
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


def main(spec: dict[str, Any]) -> dict[str, Any]:
    mocks = Mocks()
    pulumi.runtime.set_mocks(mocks, project="byok-component", stack="test", preview=spec.get("preview", False))

    from byok_component.kek import DataPlaneKek, DataPlaneKekArgs
    from byok_component.resource import ByokKey, ByokKeyArgs

    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> Any:
        kek = DataPlaneKek("kek", DataPlaneKekArgs(vault_url=spec["vault_url"], key_name="KEKforBYOK"))
        args = ByokKeyArgs(vault_url=kek.vault_url, key_name="app-key", kek_id=kek.kid, key_file=spec["key_file"],
                           key_password=spec["password"], public_key_file=spec["public_key_file"],
                           tags={"env": "prod"}, key_ops=["sign", "verify"])
        first = ByokKey("app", args)
        second = ByokKey("app-copy", ByokKeyArgs(**{**vars(args), "key_name": "app-key-2"}))  # fresh props each
        names = ["kid", "version", "fingerprint", "key_type", "key_size", "curve", "key_ops", "enabled", "tags",
                 "vault_url", "kek_id", "public_key_pem", "not_before", "expires_on", "purge_on_delete"]

        def record(values: list[Any]) -> None:
            outputs.update(dict(zip(["urn", "second_urn", *names], values)))

        return pulumi.Output.all(first.urn, second.urn, *[getattr(first, n) for n in names]).apply(record)

    program()
    return {"resources": mocks.resources, "outputs": outputs}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1])), default=repr))
