"""provider_start_ratio: a fresh ``python -m pulumi.dynamic`` answering its first Check for a ByokKey ÷
``python -c "import pulumi"``, both as wall time from spawn, run back to back in pairs (alternating which goes
first); the figure is the median of the pairs' ratios.

The provider side is timed from spawn through its port line, Configure (the engine's first call) and the
first Check of a ByokKey with an EC key file (unpickles the provider: imports byok_component.provider).
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from .common import Bench, ROOT, child_env, median, ms, peak_rss_mb
from .grpc_host import Host, check_request, provider_token


def run(bench: Bench) -> dict[str, Any]:
    key = bench.keys.make("ec")
    request = check_request(bench.inputs("start", key), provider_token())
    env = child_env()
    provider_env = bench.provider_env()
    baseline: list[float] = []
    provider: list[float] = []
    to_port: list[float] = []
    rss: list[float] = []

    def import_pulumi() -> None:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import pulumi"], env=env, cwd=ROOT, check=True)
        baseline.append(time.perf_counter() - t0)

    def first_check() -> None:
        t0 = time.perf_counter()
        with Host(provider_env) as host:
            host.configure()
            host.check(request)
            provider.append(time.perf_counter() - t0)
            to_port.append(host.started)
            rss.append(peak_rss_mb(host.pid))

    import_pulumi(), first_check()  # warm the OS file cache for both
    for rep in range(bench.sizes.start_reps):
        for fn in ((import_pulumi, first_check) if rep % 2 == 0 else (first_check, import_pulumi)):
            fn()
    modules = _heavy_modules(key.private)
    base, mine = median(baseline[1:]), median(provider[1:])
    ratios = [a / b for a, b in zip(provider[1:], baseline[1:])]  # each pair ran back to back
    return {"import_pulumi_ms": ms(base), "first_check_ms": ms(mine), "to_port_ms": ms(median(to_port[1:])),
            "ratio": median(ratios), "reps": bench.sizes.start_reps, "rss_mb": median(rss[1:]), "loads": modules}


def _heavy_modules(key_file: str) -> dict[str, bool]:
    """Whether a ByokKey's Check loads the Azure SDK or requests (it should not: a plain preview runs only Check
    and Diff, which are offline; ``preview --refresh`` also runs Read, which does load them)."""
    code = ("import sys, pulumi.dynamic.dynamic\n"
            "from byok_component.provider import ByokKeyProvider\n"
            "ByokKeyProvider().check({}, {'vault_url': 'https://x.vault.azure.net', 'key_name': 'k',"
            " 'kek_id': 'https://x.vault.azure.net/keys/kek/' + '0' * 32, 'key_file': sys.argv[1]})\n"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n")
    done = subprocess.run([sys.executable, "-c", code, key_file], env=child_env(), cwd=ROOT, capture_output=True,
                          text=True, check=False)
    top = set(done.stdout.split())
    return {"azure": "azure" in top, "requests": "requests" in top}
