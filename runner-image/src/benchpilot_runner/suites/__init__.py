"""Benchmark suites, found by name.

The built-in suites (``workflow``, ``text2sql``) and any other package's are registered in the
``benchpilot.suites`` entry-point group::

    [project.entry-points."benchpilot.suites"]
    mysuite = "mypackage.suite:SUITE"

The object named must follow :class:`.base.Suite`. A suite is loaded only when a spec names it
(:func:`benchpilot_runner.contract.registry.find_suite`); loading must stay light (no model
weights, no dataset): heavy work belongs in ``prepare``.
"""
