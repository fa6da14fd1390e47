"""``python -m benchmarks [--quick]``: run every measurement, print the table, then one JSON line (last line).

Progress goes to stderr; stdout is the table and, as its last line, the JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any, Callable

from . import create_cost, preview, startup, vault_calls, wrap_cost
from .common import FULL, QUICK, TINY, Bench, Sizes, bench_setup, median, table

TARGETS = {
    "wrap_overhead_ratio": ("<=", 1.2),
    "preview_ms_per_key": ("<=", 2.0),
    "preview_http_calls": ("<=", 0),
    "create_http_calls_per_key": ("<=", 2),
    "refresh_http_calls_per_key": ("<=", 1),
    "create_ratio_vs_sdk_floor": ("<=", 1.3),
    "provider_start_ratio": ("<=", 1.5),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fewer keys and repetitions (under two minutes)")
    mode.add_argument("--tiny", action="store_true", help="smoke mode: a few keys, one repetition (figures noisy)")
    args = parser.parse_args(argv)
    sizes = TINY if args.tiny else QUICK if args.quick else FULL
    started = time.perf_counter()
    results: dict[str, Any] = {}
    with bench_setup(sizes) as bench:
        _log(f"{sizes.name} mode: vault {bench.vault.vault_url}, KEK {sizes.rsa_bits} bits "
             f"({time.perf_counter() - started:.1f} s setup)")
        steps: list[tuple[str, Callable[[Bench], Any]]] = [
            ("wrap", wrap_cost.run), ("preview", preview.run), ("calls", vault_calls.run),
            ("create", create_cost.run), ("start", startup.run)]
        for name, fn in steps:
            t0 = time.perf_counter()
            results[name] = fn(bench)
            _log(f"{name}: {time.perf_counter() - t0:.1f} s")
    figures = summarize(results)
    print(report(sizes, results, figures, time.perf_counter() - started))
    print(json.dumps(figures, sort_keys=True))
    return 0


def _log(text: str) -> None:
    print(f"[benchmarks] {text}", file=sys.stderr, flush=True)


def summarize(r: dict[str, Any]) -> dict[str, Any]:
    """The JSON figures (all numbers)."""
    kinds = r["preview"]["by_kind"]
    by_kind = {k: v["in_process_ms"] for k, v in kinds.items()}
    scaling_preview = {str(n): v["ms_per_key"] for n, v in r["preview"]["scaling"].items()}
    ec_steps = [s for label, s in r["create"].items() if label.startswith("ec")]
    first, last = ec_steps[0], ec_steps[-1]
    preview_sizes = sorted(r["preview"]["scaling"])
    return {
        "wrap_overhead_ratio": round(r["wrap"]["ratio"], 3),
        "preview_ms_per_key": round(max(by_kind.values()), 3),
        "preview_ms_per_key_by_file": {k: round(v, 3) for k, v in by_kind.items()},
        "preview_grpc_ms_per_key_by_file": {k: round(v["grpc_ms"], 3) for k, v in kinds.items()},
        "preview_grpc_added_ms_per_key_by_file": {k: round(v["added_ms"], 3) for k, v in kinds.items()},
        "preview_grpc_noop_floor_ms_per_key": round(median([v["noop_floor_ms"] for v in kinds.values()]), 3),
        "preview_http_calls": r["preview"]["http_calls"] + r["calls"]["check_calls"],
        "create_http_calls_per_key": r["calls"]["create"]["per_key"],
        "refresh_http_calls_per_key": r["calls"]["refresh"]["per_key"],
        "rotate_http_calls_per_key": r["calls"]["rotate"]["per_key"],
        "create_wrapped_http_calls_per_key": r["calls"]["create_wrapped"]["per_key"],
        "create_ratio_vs_sdk_floor": round(first["ratio"], 3),
        "create_ratio_vs_sdk_get_then_import": round(first["ratio_vs_get_import"], 3),
        "provider_start_ratio": round(r["start"]["ratio"], 3),
        "scaling": {
            "preview_ms_per_key": {k: round(v, 3) for k, v in scaling_preview.items()},
            "preview_growth": round(r["preview"]["scaling"][preview_sizes[-1]]["ms_per_key"]
                                    / r["preview"]["scaling"][preview_sizes[0]]["ms_per_key"], 3),
            "create_ms_per_key": {str(s["n"]): round(s["provider_ms_per_key"], 2) for s in ec_steps},
            "create_sdk_ms_per_key": {str(s["n"]): round(s["sdk_ms_per_key"], 2) for s in ec_steps},
            "create_ratio": {str(s["n"]): round(s["ratio"], 3) for s in ec_steps},
            "create_growth": round(last["provider_ms_per_key"] / first["provider_ms_per_key"], 3),
            "create_sdk_growth": round(last["sdk_ms_per_key"] / first["sdk_ms_per_key"], 3),
        },
        "provider_peak_rss_mb": round(r["preview"]["peak_rss_mb"]["after_previews_mb"], 1),
        "provider_peak_rss_keys": r["preview"]["peak_rss_mb"]["keys"],
    }


def _met(name: str, value: float) -> str:
    op, target = TARGETS[name]
    return "yes" if value <= target else "NO"


def report(sizes: Sizes, r: dict[str, Any], f: dict[str, Any], elapsed: float) -> str:
    rsa = f"RSA-{sizes.rsa_bits}"
    w, s, c = r["wrap"], r["start"], r["calls"]
    rows: list[list[Any]] = [
        ["wrap + transfer blob, ms/key", w["ours_ms_per_key"], w["bare_ms_per_key"], f["wrap_overhead_ratio"],
         "<= 1.2", _met("wrap_overhead_ratio", f["wrap_overhead_ratio"])],
    ]
    labels = {"rsa_key_file": f"{rsa} key_file", "rsa_key_and_public_file": f"{rsa} key_file + public_key_file",
              "rsa_public_file_only": f"{rsa} public_key_file only (PR runner)", "ec_key_file": "EC P-256 key_file"}
    for kind, v in r["preview"]["by_kind"].items():
        rows.append([f"preview check+diff, ms/key: {labels[kind]}", v["in_process_ms"], "",
                     v["in_process_ms"], "<= 2 ms", _met("preview_ms_per_key", v["in_process_ms"])])
    for kind, v in r["preview"]["by_kind"].items():
        rows.append([f"  same over gRPC vs a no-op provider: {labels[kind]}", v["grpc_ms"], v["noop_floor_ms"],
                     f"+{v['added_ms']:.3g}", "-", ""])
    rows += [
        ["preview: requests at the vault", f["preview_http_calls"], "", f["preview_http_calls"], "0",
         _met("preview_http_calls", f["preview_http_calls"])],
        ["create: vault calls/key", _calls(c["create"]), "floor 1", f["create_http_calls_per_key"], "<= 2",
         _met("create_http_calls_per_key", f["create_http_calls_per_key"])],
        ["refresh: vault calls/key", _calls(c["refresh"]), "floor 1", f["refresh_http_calls_per_key"], "1",
         _met("refresh_http_calls_per_key", f["refresh_http_calls_per_key"])],
        ["rotation (update, new version): calls/key", _calls(c["rotate"]), "floor 1",
         f["rotate_http_calls_per_key"], "-", ""],
        ["create from wrapped_key_file + public_key_file: calls/key", _calls(c["create_wrapped"]), "floor 1",
         f["create_wrapped_http_calls_per_key"], "-", ""],
    ]
    for label, v in r["create"].items():
        what = "EC P-256" if label.startswith("ec") else "RSA-2048"
        is_headline = label == next(iter(r["create"]))
        rows.append([f"create {what}, N={v['n']} x{v['reps']}: provider vs bare import_key, ms/key",
                     v["provider_ms_per_key"], v["sdk_ms_per_key"], round(v["ratio"], 3),
                     "<= 1.3" if is_headline else "-",
                     _met("create_ratio_vs_sdk_floor", v["ratio"]) if is_headline else ""])
        rows.append(["  same vs bare get_key (404) + import_key", v["provider_ms_per_key"],
                     v["sdk_get_ms_per_key"], round(v["ratio_vs_get_import"], 3), "-", ""])
    rows.append(["start: first Check answered vs import pulumi, ms", s["first_check_ms"], s["import_pulumi_ms"],
                 f["provider_start_ratio"], "<= 1.5", _met("provider_start_ratio", f["provider_start_ratio"])])
    out = [f"byok-component benchmarks — {sizes.name} mode, Python {platform.python_version()}, "
           f"{os.cpu_count()} CPUs, {elapsed:.0f} s",
           f"(KEK RSA-{sizes.rsa_bits}; medians of interleaved repetitions; method: benchmarks/README.md)", "",
           table(rows, ["measure", "ours", "baseline", "result", "target", "met"]), ""]
    scale_rows: list[list[Any]] = []
    for n, v in sorted(r["preview"]["scaling"].items()):
        scale_rows.append([f"preview, N={n} (half {rsa}, half EC key files)", v["ms_per_key"],
                           v["first_rep_ms_per_key"], v["reps"]])
    for label, v in r["create"].items():
        if label.startswith("ec"):
            scale_rows.append([f"create EC P-256, N={v['n']} (bare import_key: {v['sdk_ms_per_key']:.3g})",
                               v["provider_ms_per_key"], "", v["reps"]])
    out += [table(scale_rows, ["scaling", "ms/key (median)", "first rep", "reps"]),
            f"per-key growth, smallest to largest N: preview x{f['scaling']['preview_growth']}, "
            f"create x{f['scaling']['create_growth']} (bare import_key alongside: "
            f"x{f['scaling']['create_sdk_growth']})", ""]
    rss = r["preview"]["peak_rss_mb"]
    out.append(f"provider process peak RSS: {rss['after_first_check_mb']:.1f} MiB after its first Check, "
               f"{rss['after_previews_mb']:.1f} MiB after previews of {rss['keys']} keys; start-up alone "
               f"{s['rss_mb']:.1f} MiB. A ByokKey Check loads azure: {s['loads']['azure']}, "
               f"requests: {s['loads']['requests']}.")
    out.append(f"excluded from create calls: {c['create']['kek_fetches']} KEK fetch(es) and "
               f"{c['create']['challenges']} challenge 401(s) in {c['create']['keys']} creates.")
    return "\n".join(out)


def _calls(counted: dict[str, Any]) -> str:
    return ", ".join(f"{k} x{v:g}" for k, v in counted["calls"].items()) or "none"


if __name__ == "__main__":
    raise SystemExit(main())
