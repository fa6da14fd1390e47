"""Subprocess half of create_cost: provider creates and bare SDK imports, interleaved, in one client process.

Run as ``python -m benchmarks.create_worker`` with a JSON plan on stdin; prints one JSON line of timings.
It is a process of its own so that neither side shares the GIL with the local vault's server threads.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


class _StaticToken:
    """A bearer token from the local vault's token file (what BYOK_ACCESS_TOKEN_FILE gives the provider)."""

    def __init__(self, path: str) -> None:
        self._token = open(path, encoding="utf-8").read().strip()

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken
        return AccessToken(self._token, int(time.time()) + 3600)


def main() -> None:
    plan = json.loads(sys.stdin.read())
    os.environ.update(plan["env"])
    from azure.core.exceptions import ResourceNotFoundError
    from azure.keyvault.keys import JsonWebKey, KeyClient

    from byok_component.blob import TransferBlob
    from byok_component.keys import load_target_key
    from byok_component.provider import ByokKeyProvider
    from byok_component.vault import fetch_kek
    from byok_component.wrap import wrap

    url, kek_id = plan["vault_url"], plan["kek_id"]
    provider = ByokKeyProvider()
    # The floor: one bare KeyClient, made once (as any SDK user would), the same vault and CA.
    sdk = KeyClient(url, _StaticToken(plan["env"]["BYOK_ACCESS_TOKEN_FILE"]), verify_challenge_resource=False,
                    connection_verify=plan["env"]["BYOK_CA_BUNDLE"])
    kek = fetch_kek(kek_id).public_key  # untimed here; the provider caches it per process the same way
    tags = plan["tags"]

    def inputs(name: str, path: str) -> dict[str, Any]:
        result = provider.check({}, {"vault_url": url, "key_name": name, "kek_id": kek_id, "key_file": path,
                                     "tags": tags})
        assert not result.failures, result.failures
        return result.inputs

    def blob(path: str) -> tuple[bytes, str, str | None, list[str]]:
        target = load_target_key(open(path, "rb").read())
        ops = ["sign", "verify"] if target.kty == "EC" else ["decrypt", "encrypt", "sign", "unwrapKey", "verify",
                                                             "wrapKey"]
        return (TransferBlob.build(kek_id, wrap(kek, target.wrapping_plaintext())).to_json(),
                f"{target.kty}-HSM", target.public.curve, ops)

    def sdk_import(name: str, made: tuple[bytes, str, str | None, list[str]]) -> None:
        t, kty, crv, ops = made
        sdk.import_key(name, JsonWebKey(kty=kty, crv=crv, key_ops=ops, t=t), hardware_protected=True,
                       enabled=True, tags=tags)

    def sdk_get_then_import(name: str, made: tuple[bytes, str, str | None, list[str]]) -> None:
        """The least a create can do and stay safe to rerun: ask what the name holds, then import."""
        try:
            sdk.get_key(name)
        except ResourceNotFoundError:
            pass
        else:  # pragma: no cover - the names are fresh
            raise RuntimeError(f"{name} exists")
        sdk_import(name, made)

    files = iter(plan["files"])
    warm = next(files)
    provider.create(inputs(f"{plan['prefix']}-warm-p", warm))   # KEK fetch, challenge, imports
    sdk_import(f"{plan['prefix']}-warm-s", blob(next(files)))   # the SDK client's connection
    results: list[dict[str, Any]] = []
    for step in plan["steps"]:
        n, reps, label = step["n"], step["reps"], step["label"]
        spent_by_rep: dict[str, list[float]] = {"provider": [], "sdk": [], "sdk_get": []}
        for rep in range(reps):
            mine = [inputs(f"{plan['prefix']}-{label}-p{rep}-{i}", next(files)) for i in range(n)]
            theirs = [(f"{plan['prefix']}-{label}-s{rep}-{i}", blob(next(files))) for i in range(n)]
            checked = [(f"{plan['prefix']}-{label}-g{rep}-{i}", blob(next(files))) for i in range(n)]
            spent = dict.fromkeys(spent_by_rep, 0.0)
            # Key by key, rotating which side goes first: load from elsewhere falls on all sides alike.
            for i in range(n):
                sides = [("provider", lambda: provider.create(mine[i])), ("sdk", lambda: sdk_import(*theirs[i])),
                         ("sdk_get", lambda: sdk_get_then_import(*checked[i]))]
                shift = (rep + i) % len(sides)
                for side, call in sides[shift:] + sides[:shift]:
                    t0 = time.perf_counter()
                    call()
                    spent[side] += time.perf_counter() - t0
            for side, total in spent.items():
                spent_by_rep[side].append(total)
        results.append({"label": label, "n": n, "provider_s": spent_by_rep["provider"], "sdk_s": spent_by_rep["sdk"],
                        "sdk_get_s": spent_by_rep["sdk_get"]})
    print(json.dumps({"steps": results}))


if __name__ == "__main__":
    main()
