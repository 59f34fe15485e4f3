"""Benchmark suites. ``workflow`` is the built-in tool-use workflow suite."""
