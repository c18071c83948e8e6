"""Benchmarks: configs, the runner, the results store and the execution engines."""
