"""Side-by-side benchmarks of byok-component: ``python -m benchmarks [--quick]`` (method: benchmarks/README.md).

Every figure is a ratio or a count measured in one run against a baseline measured in the same run,
interleaved, as the median of repetitions. Nothing here is a test: no time is ever asserted.
"""
