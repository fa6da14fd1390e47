"""create_ratio_vs_sdk_floor and create scaling: N provider creates ÷ N bare ``KeyClient.import_key`` calls.

Both run in one client process (create_worker), same vault, same KEK, interleaved key by key (the side that
goes first alternates). A repetition's ratio is its N provider creates' time ÷ its N imports' time; the figure
is the median over repetitions. The provider
side is ``ByokKeyProvider.create`` on checked inputs (it reads and parses the key file, wraps, builds the blob,
makes its KeyClient, asks the vault what the name holds, imports and confirms). The SDK side imports transfer
blobs made beforehand (untimed) through one KeyClient. Both sides import the same kind of key with the same
ops and tags. Timing excludes the first create of each side (KEK fetch, SDK challenge, imports).

A third side, interleaved too, is the least a create can do and stay safe to rerun with the bare SDK:
``get_key`` (404) then ``import_key``. provider ÷ that shows what the provider adds beyond its two round trips.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from .common import ROOT, Bench, child_env, median, ms, pem_private


def run(bench: Bench) -> dict[str, Any]:
    sizes = bench.sizes
    steps = [{"label": f"ec{n}", "n": n, "reps": reps} for n, reps in zip(sizes.scaling_create,
                                                                         sizes.scaling_create_reps)]
    count = 2 + sum(3 * s["n"] * s["reps"] for s in steps)
    files = [k.private for k in bench.keys.many("ec", count)]
    if sizes.create_rsa_keys:
        step = {"label": "rsa2048", "n": sizes.create_rsa_keys, "reps": 3}
        steps.append(step)
        for i in range(3 * step["n"] * step["reps"]):
            path = bench.keys.root / f"create-rsa2048-{i}.pem"
            path.write_bytes(pem_private(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
            files.append(str(path))
    plan = {"vault_url": bench.vault.vault_url, "kek_id": bench.kek_id, "env": bench.provider_env(),
            "tags": {"team": "platform", "env": "bench"}, "prefix": "c", "files": files, "steps": steps}
    done = subprocess.run([sys.executable, "-m", "benchmarks.create_worker"], input=json.dumps(plan), text=True,
                          capture_output=True, env={**child_env(), "PYTHONPATH": str(ROOT)},  # the worker is ours, not a provider host
                          cwd=bench.keys.root.parent, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"create worker failed:\n{done.stderr[-4000:]}")
    out: dict[str, Any] = {}
    for step in json.loads(done.stdout.strip().splitlines()[-1])["steps"]:
        n = step["n"]
        provider_ms, sdk_ms = ms(median(step["provider_s"])) / n, ms(median(step["sdk_s"])) / n
        ratios = [a / b for a, b in zip(step["provider_s"], step["sdk_s"])]
        vs_get = [a / b for a, b in zip(step["provider_s"], step["sdk_get_s"])]
        out[step["label"]] = {"n": n, "reps": len(step["provider_s"]), "provider_ms_per_key": provider_ms,
                              "sdk_ms_per_key": sdk_ms, "ratio": median(ratios),
                              "sdk_get_ms_per_key": ms(median(step["sdk_get_s"])) / n,
                              "ratio_vs_get_import": median(vs_get)}
    return out
