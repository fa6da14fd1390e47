"""The benchmark harness runs end to end in its tiny mode and ends with one JSON line of numbers.

No timing is asserted (benchmarks are not tests); only that every figure is there and numeric.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGURES = (
    "wrap_overhead_ratio", "preview_ms_per_key", "preview_http_calls", "create_http_calls_per_key",
    "refresh_http_calls_per_key", "create_ratio_vs_sdk_floor", "provider_start_ratio", "scaling",
    "provider_peak_rss_mb", "create_wrapped_http_calls_per_key",
)
SCALING = ("preview_ms_per_key", "preview_growth", "create_ms_per_key", "create_growth")


def _numbers(value: Any, where: str) -> list[str]:
    """Paths of leaves that are not plain numbers (bools are not numbers here)."""
    if isinstance(value, dict):
        return [bad for k, v in value.items() for bad in _numbers(v, f"{where}.{k}")] if value else [where]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return []
    return [where]


@pytest.mark.slow
def test_tiny_run_prints_a_table_and_ends_with_the_json_figures() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BYOK_", "AZURE_", "PULUMI_"))}
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--tiny"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert any(line.startswith("measure") for line in lines), done.stdout[:2000]
    figures = json.loads(lines[-1])
    assert isinstance(figures, dict)
    missing = [name for name in FIGURES if name not in figures]
    assert not missing, missing
    assert [name for name in SCALING if name not in figures["scaling"]] == []
    assert _numbers(figures, "figures") == []
