"""Measurement scripts (results in BENCHMARKS.md) and the GPU device runner (device.py).

A regular package, so `python3 -m benchmarks.device` finds this folder before any `benchmarks` a carried wheel
might install on PYTHONPATH."""
