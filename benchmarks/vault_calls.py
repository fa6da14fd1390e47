"""Vault calls per key for create, refresh (read), rotation (update importing a new version) and a create from a
``wrapped_key_file`` (ciphertext wrapped elsewhere: imported disabled, compared, enabled), counted at the
local vault while a fresh ``python -m pulumi.dynamic`` process is driven over gRPC as the engine drives it.

Excluded, each identified in the vault's access log rather than assumed: the KEK fetch (GET of the KEK's
versioned kid; the provider caches the checked KEK per process, so once per KEK per process) and the SDK's
challenge round trip (a request sent without a token that the vault answers 401; azure-keyvault caches the
challenge per vault per process, so once). Everything else the provider sends is counted.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from .common import Bench
from .grpc_host import Host, check_request, provider_token


def _template(method: str, path: str, kek_name: str) -> str:
    parts = path.split("/")
    if len(parts) > 2 and parts[1] in ("keys", "deletedkeys"):
        parts[2] = "{kek}" if parts[2] == kek_name else "{name}"
        if len(parts) > 3 and parts[3]:
            parts[3] = "{version}"
    return f"{method} {'/'.join(parts)}"


def _count(bench: Bench, mark: int, n: int) -> dict[str, Any]:
    kek_name = bench.kek_id.split("/keys/", 1)[1].split("/", 1)[0]
    records = bench.access.since(mark)
    kek = [r for r in records if r[0] == "GET" and r[1].startswith(f"/keys/{kek_name}/") and r[2] != "401"]
    challenges = [r for r in records if r[2] == "401"]
    counted = [r for r in records if r not in kek and r[2] != "401"]
    kinds = Counter(_template(m, p, kek_name) for m, p, _ in counted)
    return {"per_key": len(counted) / n, "total": len(records), "kek_fetches": len(kek),
            "challenges": len(challenges), "keys": n,
            "calls": {k: v / n for k, v in sorted(kinds.items())}}


def run(bench: Bench) -> dict[str, Any]:
    n = bench.sizes.lifecycle_keys
    token = provider_token()
    keys = bench.keys.many("ec", n)
    before = bench.vault.request_count
    with Host(bench.provider_env()) as host:
        host.configure()
        checked = [host.check(check_request(bench.inputs(f"life-{i}", k), token)).inputs for i, k in enumerate(keys)]
        offline = bench.vault.request_count - before  # Check never calls the vault

        mark = len(bench.access)
        created = [host.create(props) for props in checked]
        create = _count(bench, mark, n)

        mark = len(bench.access)
        for result in created:
            host.read(result.id, result.properties)
        refresh = _count(bench, mark, n)

        rotated = bench.keys.many("ec", n)
        news = [host.check(check_request(bench.inputs(f"life-{i}", k), token)).inputs for i, k in enumerate(rotated)]
        mark = len(bench.access)
        for result, new in zip(created, news):
            host.update(result.id, result.properties, new)
        rotate = _count(bench, mark, n)

        wrapped = [host.check(check_request(inputs, token)).inputs for inputs in _wrapped_inputs(bench, n)]
        mark = len(bench.access)
        for props in wrapped:
            host.create(props)
        create_wrapped = _count(bench, mark, n)
    return {"create": create, "refresh": refresh, "rotate": rotate, "create_wrapped": create_wrapped,
            "check_calls": offline}


def _wrapped_inputs(bench: Bench, n: int) -> list[dict[str, Any]]:
    """N EC keys wrapped elsewhere (as an officer's ``byok wrap`` would, untimed) and declared with
    ``wrapped_key_file`` + ``public_key_file``: the provider imports each disabled, compares, then enables it."""
    from byok_component.keys import load_target_key
    from byok_component.vault import fetch_kek, pointed_at
    from byok_component.wrap import wrap

    with pointed_at(bench.vault.ca_cert, bench.vault.token_file):
        kek = fetch_kek(bench.kek_id).public_key
    out = []
    for i, key in enumerate(bench.keys.many("ec", n)):
        path = Path(key.private).with_suffix(".wrapped.bin")
        path.write_bytes(wrap(kek, load_target_key(Path(key.private).read_bytes()).wrapping_plaintext()))
        out.append({**bench.inputs(f"wrapped-{i}", key, private=False, public=True), "wrapped_key_file": str(path)})
    return out
