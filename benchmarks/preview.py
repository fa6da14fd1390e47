"""Preview cost: Check + Diff per key as the engine sends them to ``python -m pulumi.dynamic`` over gRPC.

Timed: the two RPC round trips per key (request messages are built beforehand; a Diff's ``news`` is the Check's
answer, its ``olds`` the state a previous `pulumi up` would have stored). Also timed in-process (the provider's
own share, no gRPC). Counted: requests reaching the local vault during all of it (must be 0: offline).
"""

from __future__ import annotations

import time
from typing import Any

from .common import Bench, KeyFile, median, ms, peak_rss_mb
from google.protobuf import struct_pb2
from pulumi.runtime.proto import provider_pb2

from .grpc_host import URN, Host, check_request, diff_request, provider_token, state_from

# (label, key kind, key_file readable?, public_key_file given?)
KINDS: tuple[tuple[str, str, bool, bool], ...] = (
    ("rsa_key_file", "rsa", True, False),
    ("rsa_key_and_public_file", "rsa", True, True),
    ("rsa_public_file_only", "rsa", False, True),
    ("ec_key_file", "ec", True, False),
)


def _inputs(bench: Bench, name: str, key: KeyFile, readable: bool, public: bool) -> dict[str, Any]:
    props = bench.inputs(name, key, private=True, public=public)
    if not readable:  # a PR runner: key_file is declared but the HSM material is not on this machine
        props["key_file"] = key.private + ".not-on-this-runner"
    return props


class _Keyset:
    """Prebuilt Check requests for some keys; Diff requests are added from the first Check's answers."""

    def __init__(self, bench: Bench, token: str, inputs: list[dict[str, Any]]) -> None:
        self.bench = bench
        self.checks = [check_request(news, token) for news in inputs]
        self.diffs: list[Any] = [None] * len(inputs)
        self.kid = bench.kek_id.replace("/keys/bench-kek/", "/keys/{name}/")

    def noop_twin(self, token: str) -> "_Keyset":
        """The same properties (our checked inputs, our state) sent to the no-op provider: the floor."""
        twin = _Keyset(self.bench, token, [])
        for diff in self.diffs:
            assert diff is not None, "run() first"
            news, olds = struct_pb2.Struct(), struct_pb2.Struct()
            news.CopyFrom(diff.news)
            olds.CopyFrom(diff.olds)
            news.update({"__provider": token})
            olds.update({"__provider": token})
            twin.checks.append(provider_pb2.CheckRequest(urn=URN, olds=struct_pb2.Struct(), news=news))
            twin.diffs.append(diff_request(diff.id, olds, news))
        return twin

    def run(self, host: Host) -> float:
        """Check + Diff for every key; seconds spent inside the RPCs only."""
        total = 0.0
        for i, request in enumerate(self.checks):
            t0 = time.perf_counter()
            checked = host.check(request)
            t1 = time.perf_counter()
            diff = self.diffs[i]
            if diff is None:
                name = request.news["key_name"]
                state = state_from(checked.inputs, self.kid.format(name=name))
                diff = self.diffs[i] = diff_request(self.bench.vault.vault_url + "/keys/" + name, state,
                                                    checked.inputs)
            t2 = time.perf_counter()
            answer = host.diff(diff)
            t3 = time.perf_counter()
            if answer.changes == answer.DIFF_SOME:
                raise RuntimeError("a preview with no changes reported changes")
            total += (t1 - t0) + (t3 - t2)
        return total


def _in_process(bench: Bench, inputs: list[dict[str, Any]], reps: int) -> float:
    """Median seconds per key of ByokKeyProvider.check + .diff called directly (no gRPC)."""
    from byok_component.provider import ByokKeyProvider

    provider = ByokKeyProvider()
    states = []
    for news in inputs:
        checked = provider.check({}, news).inputs
        states.append({**checked, "kid": bench.kek_id, "version": "0" * 32})
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for news, state in zip(inputs, states):
            provider.diff("id", state, provider.check({}, news).inputs)
        times.append((time.perf_counter() - t0) / len(inputs))
    return median(times)


def run(bench: Bench) -> dict[str, Any]:
    from .noop_provider import NoopProvider

    sizes = bench.sizes
    token = provider_token()
    noop_token = provider_token(NoopProvider())
    requests_before = bench.vault.request_count
    by_kind: dict[str, dict[str, float]] = {}
    with Host(bench.provider_env()) as host:
        host.configure()
        warm = _Keyset(bench, token, [_inputs(bench, "warm", bench.keys.make("ec"), True, False)])
        warm.run(host)  # the first Check imports the provider module: that is start-up, measured elsewhere
        sets = {}
        for label, kind, readable, public in KINDS:
            keys = bench.keys.many(kind, sizes.preview_keys)
            inputs = [_inputs(bench, f"p-{label.replace('_', '-')}-{i}", k, readable, public)
                      for i, k in enumerate(keys)]
            ours = _Keyset(bench, token, inputs)
            ours.run(host)  # builds the Diff requests; pages the files in
            floor = ours.noop_twin(noop_token)
            floor.run(host)
            sets[label] = (ours, floor, inputs)
        times: dict[str, list[float]] = {label: [] for label in sets}
        floors: dict[str, list[float]] = {label: [] for label in sets}
        for rep in range(sizes.preview_reps):
            order = list(sets) if rep % 2 == 0 else list(sets)[::-1]
            for label in order:
                ours, floor, _ = sets[label]
                pair = ((ours, times[label]), (floor, floors[label]))
                for keyset, sink in (pair if rep % 2 == 0 else pair[::-1]):
                    sink.append(keyset.run(host) / sizes.preview_keys)
        for label, (_, _, inputs) in sets.items():
            grpc_ms, floor_ms = ms(median(times[label])), ms(median(floors[label]))
            by_kind[label] = {"grpc_ms": grpc_ms, "noop_floor_ms": floor_ms, "added_ms": grpc_ms - floor_ms,
                              "in_process_ms": ms(_in_process(bench, inputs, sizes.preview_reps))}
    scaling, rss = _scaling(bench, token)
    return {"by_kind": by_kind, "scaling": scaling, "peak_rss_mb": rss,
            "http_calls": bench.vault.request_count - requests_before,
            "keys": sizes.preview_keys, "reps": sizes.preview_reps}


def _scaling(bench: Bench, token: str) -> tuple[dict[int, dict[str, float]], dict[str, float]]:
    """Preview of N keys (alternately RSA and EC key files), one fresh host per N, all alive at once.

    Each round runs every N's keyset several times (more often for small N), spread evenly through the round,
    so that load from elsewhere falls on every N alike. ms per key: the median over all runs of an N. The
    N=max host's peak RSS is read after its first Check and after all its previews.
    """
    sizes = bench.sizes
    hosts: dict[int, Host] = {}
    keysets: dict[int, _Keyset] = {}
    samples: dict[int, list[float]] = {n: [] for n in sizes.scaling_preview}
    rss: dict[str, float] = {}
    top = max(sizes.scaling_preview)
    try:
        for n in sizes.scaling_preview:
            keys = [bench.keys.make("rsa" if i % 2 == 0 else "ec") for i in range(n)]
            host = hosts[n] = Host(bench.provider_env())
            host.configure()
            _Keyset(bench, token, [bench.inputs("warm", bench.keys.make(kind)) for kind in ("rsa", "ec")]).run(host)
            if n == top:
                rss["after_first_check_mb"] = peak_rss_mb(host.pid)
            keysets[n] = _Keyset(bench, token, [bench.inputs(f"s{n}-{i}", k) for i, k in enumerate(keys)])
        runs = sorted(((k + 0.5) / reps, n) for n, reps in zip(sizes.scaling_preview, sizes.scaling_preview_reps)
                      for k in range(reps))
        for round_ in range(sizes.scaling_preview_rounds):
            for _, n in (runs if round_ % 2 == 0 else runs[::-1]):
                samples[n].append(keysets[n].run(hosts[n]) / n)
        rss.update(keys=top, after_previews_mb=peak_rss_mb(hosts[top].pid))
    finally:
        for host in hosts.values():
            host.close()
    out = {n: {"ms_per_key": ms(median(v)), "first_rep_ms_per_key": ms(v[0]), "reps": len(v)}
           for n, v in samples.items()}
    return out, rss
