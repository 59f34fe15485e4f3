"""PURE statistics for the report and the plan: distributions, intervals, paired tests, power.

numpy and the standard library only (no scipy at run time, no I/O): import-linter keeps it so.
"""
